import RelayProtocol
import DequeModule

// Broker mode: publishes go through `EngineConfiguration.broker`, which
// assigns positions in the channel's shared stream and delivers them to every
// interested node (this one included) through `brokerDidDeliver`. Recovery
// uses the node's local ring, seeded from the broker's stream when the node
// first takes interest in a channel.
//
// Presence: members live in the broker (with a TTL the owning node refreshes
// in `brokerMaintenance()`), join/leave travel as ephemeral broker frames, and
// the `sync` sent on subscribe lists the members of every node.
//
// These `async` calls are the engine's one API: with an `.inProcess` broker
// (LocalBroker, single node) they run the synchronous path without suspending,
// which `RelayEngine.synchronous` also offers to event-loop callers. Site connection counts are cluster-wide as of the last
// `brokerMaintenance()` (each node reports its count); the `wps:connections` stream is one
// stream for the cluster (published through the broker); the presence member cap stays per node.
extension RelayEngine: BrokerDelegate {
    /// Server publish, any mode.
    public func publish(siteID: String, channel: String, event: String, data: [UInt8],
                        idempotencyKey: String? = nil) async -> Result<PublishReceipt, PublishError> {
        await publishAnyMode(siteID: siteID, from: nil, spelled: channel, event: event, payload: .json(data),
                             idempotencyKey: idempotencyKey, source: .server)
    }

    /// Server binary publish, any mode.
    public func publishBinary(siteID: String, channel: String, payload: [UInt8]) async -> Result<PublishReceipt, PublishError> {
        await publishAnyMode(siteID: siteID, from: nil, spelled: channel, event: "", payload: .binary(payload),
                             idempotencyKey: nil, source: .server)
    }

    /// Client publish, any mode.
    public func publish(from conn: RelayConnection, channel: String, event: String, data: [UInt8],
                        idempotencyKey: String? = nil) async -> Result<PublishReceipt, PublishError> {
        await publishAnyMode(siteID: conn.siteID, from: conn, spelled: channel, event: event, payload: .json(data),
                             idempotencyKey: idempotencyKey, source: .client)
    }

    /// Client binary publish, any mode.
    public func publishBinary(from conn: RelayConnection, channel: String, payload: [UInt8]) async -> Result<PublishReceipt, PublishError> {
        await publishAnyMode(siteID: conn.siteID, from: conn, spelled: channel, event: "", payload: .binary(payload),
                             idempotencyKey: nil, source: .client)
    }

    /// Subscribe, any mode. With a broker, first makes sure this node receives
    /// each channel (and seeds its ring from the broker's stream) so recovery
    /// can replay publications made on other nodes.
    public func subscribe(_ conn: RelayConnection, channels: [String], positions: [String: StreamPosition] = [:]) async -> SubscribeResult {
        guard !inProcess else { return subscribeLocal(conn, channels: channels, positions: positions) }
        let broker = configuration.broker
        // Channel by channel, under the channel's interest lock, so a
        // concurrent `releaseIdleBrokerInterest` cannot drop the node's
        // broker subscription between seeding and adding the subscriber.
        var result = SubscribeResult(entries: [], closedWith: nil)
        let allowed = conn.grant.subscribePrefixes
        for spelled in channels {
            if result.closedWith != nil {
                result.entries.append(.init(channel: spelled, outcome: .notProcessed))
                continue
            }
            guard case .success(let name) = ChannelName.resolve(spelled, siteID: conn.siteID),
                  !name.isReserved || name.isConnectionsChannel, name.isAllowed(by: allowed) else {
                // Refused or relay-owned (but wps:connections, one stream for the cluster): answered locally.
                let r = subscribeLocal(conn, channels: [spelled], positions: positions)
                result.entries += r.entries
                result.closedWith = r.closedWith
                continue
            }
            let r: SubscribeResult? = await interestLocks.withLock(name.full) {
                do {
                    try await ensureInterest(name, broker: broker)
                    let members = try await presenceManager?.presence(channel: name.full, now: clock.now()) ?? []
                    return subscribeLocal(conn, channels: [spelled], positions: positions, presenceOverride: [name.full: members])
                } catch {
                    metrics.brokerFailures.increment()
                    logger.warning("broker subscribe failed", metadata: ["channel": "\(name.full)", "error": "\(error)"])
                    return nil
                }
            }
            if let r {
                result.entries += r.entries
                result.closedWith = r.closedWith
            } else {
                // The broker is unreachable: not a silent non-subscription. The client reconnects
                // with backoff and resubscribes with its positions (recovery fills what it missed).
                result.entries.append(.init(channel: spelled, outcome: .notProcessed))
                result.closedWith = .tryAgainLater
                close(conn, code: .tryAgainLater, reason: "subscribe failed: the broker is unreachable, retry later", discardPending: false)
            }
        }
        return result
    }

    /// Presence change, any mode. With a broker, the member is stored in the
    /// broker and join/leave reach subscribers on every node.
    public func setPresence(_ conn: RelayConnection, channel spelled: String, state: [UInt8]?) async -> Result<PresenceOutcome, PresenceError> {
        guard !inProcess else { return setPresenceLocal(conn, channel: spelled, state: state, broadcast: true) }
        let broker = configuration.broker
        guard let presenceManager else { return .failure(.unavailable) }
        let result = setPresenceLocal(conn, channel: spelled, state: state, broadcast: false)
        guard case .success(let outcome) = result, outcome != .notMember,
              case .success(let name) = ChannelName.resolve(spelled, siteID: conn.siteID) else { return result }
        let data = state.map { Self.presenceJoinData(id: conn.presenceID, state: $0) } ?? Self.presenceLeaveData(id: conn.presenceID)
        do {
            try await presenceManager.setPresence(channel: name.full, memberID: conn.presenceID, state: state,
                                         ttl: configuration.brokerPresenceTTL, now: clock.now())
            try await broker.publishEphemeral(BrokerEphemeral(channel: name, spelledChannel: spelled, event: "wps.presence",
                                                              data: data, originNode: configuration.nodeID, skipOrigin: false))
        } catch {
            metrics.brokerFailures.increment()
            logger.warning("broker presence failed", metadata: ["channel": "\(name.full)", "error": "\(error)"])
            return .failure(.unavailable)
        }
        return result
    }

    /// Members of a channel, any mode (all nodes with a broker).
    public func presence(siteID: String, channel spelled: String) async -> [PresenceMember] {
        guard !inProcess else { return presenceLocal(siteID: siteID, channel: spelled) }
        guard case .success(let name) = ChannelName.resolve(spelled, siteID: siteID) else { return [] }
        return (try? await presenceManager?.presence(channel: name.full, now: clock.now())) ?? []
    }

    /// Count-only presence query, any mode.
    public func presenceCount(siteID: String, channel spelled: String) async -> Int {
        await presence(siteID: siteID, channel: spelled).count
    }

    /// Broker-mode maintenance; call from the maintenance task (e.g. every
    /// few seconds, well within `brokerPresenceTTL`): sends presence leaves
    /// queued by disconnects, refreshes this node's members in the broker,
    /// and releases idle channel interest. No-op without a broker.
    public func brokerMaintenance() async {
        guard !inProcess else { return }
        let broker = configuration.broker
        let presenceManager = self.presenceManager
        let leaves = pendingBrokerLeaves.withLock { l in
            defer { l = [] }
            return l
        }
        let now = clock.now()
        // Cluster-wide connection counts: report ours, learn everyone's.
        let counts: [(String, Int)] = siteCounters.withLock { c in c.map { ($0.key, $0.value.active) } }
        for (siteID, mine) in counts {
            guard let total = try? await presenceManager?.reportConnections(siteID: siteID, node: configuration.nodeID, count: mine,
                                                                  ttl: configuration.brokerPresenceTTL, now: now) else { continue }
            let changed: Bool = siteCounters.withLock { c in
                guard var entry = c[siteID] else { return false }
                let elsewhere = max(0, total - mine)
                defer { c[siteID] = entry }
                if entry.elsewhere == elsewhere { return false }
                entry.elsewhere = elsewhere
                return true
            }
            if changed { connectionCountChanged(siteID: siteID, now: now) }
        }
        for leave in leaves {
            try? await presenceManager?.setPresence(channel: leave.frame.channel.full, memberID: leave.memberID, state: nil, ttl: 0, now: now)
            try? await broker.publishEphemeral(leave.frame)
        }
        for shard in channelShards {
            let channels = shard.map.withLock { Array($0.values) }
            for ch in channels {
                let members = ch.state.withLock { st in st.presence.map { ($0.connection.presenceID, $0.state) } }
                for (id, state) in members {
                    try? await presenceManager?.setPresence(channel: ch.name.full, memberID: id, state: state,
                                                  ttl: configuration.brokerPresenceTTL, now: now)
                }
            }
        }
        await releaseIdleBrokerInterest()
    }

    public func brokerDidDeliverEphemeral(_ e: BrokerEphemeral) {
        if deliverSide(e) { return }
        if e.skipOrigin && e.originNode == configuration.nodeID { return }
        guard let channel = existingChannel(e.channel) else { return }
        var fan = FanOutResult()
        channel.state.withLock { st in
            guard !st.removed else { return }
            fan = st.fanOut(Publication(spelledChannel: e.spelledChannel, channel: channel.name, event: e.event,
                                        payload: .json(e.data), position: nil, time: 0))
        }
        for c in fan.overflowed { overflowed(c) }
    }

    /// Broker mode: stops receiving channels that have no local subscriber
    /// or presence left. Call from the maintenance task; returns how many.
    @discardableResult
    public func releaseIdleBrokerInterest() async -> Int {
        guard !inProcess else { return 0 }
        let broker = configuration.broker
        var released = 0
        for shard in channelShards {
            let channels = shard.map.withLock { Array($0.values) }
            for ch in channels {
                let candidate = ch.state.withLock { st in st.brokerInterest && st.subscribers.isEmpty && st.presence.isEmpty }
                guard candidate else { continue }
                let didRelease: Bool = await interestLocks.withLock(ch.name.full) {
                    let idle = ch.state.withLock { st -> Bool in
                        guard st.brokerInterest, st.subscribers.isEmpty, st.presence.isEmpty else { return false }
                        // Without interest the ring would go stale: forget it.
                        st.brokerInterest = false
                        st.history.removeAll()
                        st.historyBytes = 0
                        st.offset = 0
                        st.epoch = RelayEngine.newEpoch()
                        return true
                    }
                    if idle { try? await broker.unsubscribe(channel: ch.name.full) }
                    return idle
                }
                guard didRelease else { continue }
                released += 1
                if ch.state.withLock({ $0.isIdle }) { removeIfIdle(ch) }
            }
        }
        return released
    }

    public func brokerDidDeliver(_ p: BrokerPublication) {
        let now = clock.now()
        var fan = FanOutResult()
        withLiveChannel(p.channel) { channel, st in
            if st.epoch != p.position.epoch {
                st.epoch = p.position.epoch
                st.offset = 0
                st.history.removeAll()
                st.historyBytes = 0
            }
            guard p.position.offset > st.offset else { return }  // already seen (seeded or duplicate)
            if p.position.offset != st.offset + 1 {
                // A gap this node did not see: forget the ring so recovery fails closed.
                st.history.removeAll()
                st.historyBytes = 0
            }
            st.offset = p.position.offset
            let pub = Publication(spelledChannel: p.spelledChannel, channel: channel.name, event: p.event,
                                  payload: p.payload, position: p.position, time: p.time)
            if channel.policy.maxPublications > 0 {
                st.history.append(pub)
                st.historyBytes += pub.retainedBytes
            }
            st.trimHistory(policy: channel.policy, now: now)
            fan = st.fanOut(pub)
        }
        metrics.publicationsOut.increment(by: Int64(fan.deliveries))
        metrics.bytesOut.increment(by: Int64(fan.bytes))
        for c in fan.overflowed { overflowed(c) }
    }

    func publishAnyMode(siteID: String, from conn: RelayConnection?, spelled: String, event: String, payload: Payload,
                        idempotencyKey: String?, source: PublishSource) async -> Result<PublishReceipt, PublishError> {
        guard !inProcess else {
            return publishInternal(siteID: siteID, from: conn, spelled: spelled, event: event, payload: payload,
                                   idempotencyKey: idempotencyKey, source: source)
        }
        let broker = configuration.broker
        let now = clock.now()
        let name: ChannelName
        switch validatePublish(siteID: siteID, from: conn, spelled: spelled, event: event, payload: payload,
                               idempotencyKey: idempotencyKey, source: source, now: now) {
        case .failure(let e): return .failure(e)
        case .success(let n): name = n
        }
        if source != .system, case .exceeded(let limit) = registry.chargeMessages(siteID: siteID, count: 1, now: now) {
            metrics.quotaRejections.increment()
            return .failure(.quotaExceeded(limit: limit))
        }
        let request = BrokerPublishRequest(channel: name, spelledChannel: spelled, event: event, payload: payload,
                                           history: configuration.history.policy(for: name),
                                           idempotencyKey: idempotencyKey, idempotencyWindow: configuration.idempotencyWindow,
                                           time: now)
        let started = ContinuousClock.now
        metrics.addBrokerPending(1)
        defer { metrics.addBrokerPending(-1) }
        do {
            let outcome = try await broker.publish(request)
            let elapsed = ContinuousClock.now - started
            metrics.brokerPublishLatency.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
            switch outcome {
            case .published(let position):
                metrics.publishedIn(source)
                return .success(PublishReceipt(channel: name.full, position: position, deliveries: 0, duplicate: false))
            case .duplicate(let position):
                return .success(PublishReceipt(channel: name.full, position: position, deliveries: 0, duplicate: true))
            }
        } catch {
            metrics.brokerFailures.increment()
            logger.warning("broker publish failed", metadata: ["channel": "\(name.full)", "error": "\(error)"])
            return .failure(.brokerUnavailable)
        }
    }

    /// Subscribes this node to `name` at the broker and seeds the local ring.
    /// Call with `interestLocks` held for `name.full`.
    func ensureInterest(_ name: ChannelName, broker: any RelayBroker) async throws {
        if withLiveChannel(name, { _, st in st.brokerInterest }) { return }
        try await broker.subscribe(channel: name.full)
        let policy = configuration.history.policy(for: name)
        let stream = try await broker.stream(channel: name, limit: policy.maxPublications)
        let now = clock.now()
        withLiveChannel(name) { channel, st in
            guard !st.brokerInterest else { return }
            st.brokerInterest = true
            Self.seed(&st, from: stream, channel: channel, now: now)
        }
    }

    /// Merges the broker's retained tail with what was delivered since the
    /// broker subscription started; keeps the contiguous run ending at the top.
    static func seed(_ st: inout ChannelState, from stream: BrokerStream, channel: Channel, now: Double) {
        if st.epoch != stream.position.epoch {
            guard st.offset == 0 else { return }  // live deliveries already define the stream
            st.epoch = stream.position.epoch
            st.history.removeAll()
            st.historyBytes = 0
        }
        var byOffset: [UInt64: Publication] = [:]
        for p in st.history { if let o = p.position?.offset { byOffset[o] = p } }
        for p in stream.publications where byOffset[p.position.offset] == nil {
            byOffset[p.position.offset] = Publication(spelledChannel: p.spelledChannel, channel: channel.name, event: p.event,
                                                      payload: p.payload, position: p.position, time: p.time)
        }
        let top = max(st.offset, stream.position.offset)
        var run: [Publication] = []
        var o = top
        while o > 0, let p = byOffset[o] {
            run.append(p)
            o -= 1
        }
        st.offset = top
        st.history = Deque(run.reversed())
        st.historyBytes = st.history.reduce(0) { $0 + $1.retainedBytes }
        st.trimHistory(policy: channel.policy, now: now)
    }
}
