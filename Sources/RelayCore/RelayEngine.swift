import RelayProtocol
import RelayJSON
import DequeModule
import Logging
import Metrics
import RelayCrypto
import Synchronization

/// The transport-agnostic relay engine: connections, channels, fan-out,
/// backpressure, history and recovery, presence, sites and limits.
///
/// Methods are thread-safe and never block on a slow consumer. One API for
/// every broker: publish, subscribe and presence are `async` (see
/// `RelayEngine+Broker.swift`); with the single-node `LocalBroker` they never
/// suspend, and `synchronous` offers the same calls without `async` for
/// callers on an event loop. State is sharded behind `Mutex`es: the channel map by channel
/// name, each channel behind its own lock (offsets are assigned and frames
/// enqueued inside it, so every subscriber sees the same order), each
/// connection behind its own outbox lock. Lock order: channel → outbox;
/// connection state, site counters and registry are leaves.
///
/// Replies the engine enqueues itself (WebSocket connections only):
/// `subscribed` (before any replayed publication), `unsubscribed`, `auth_ok`.
/// Refusals are returned as typed values for the transport to answer; the
/// engine itself closes a connection only for the rules in `Docs/core.md`
/// (4008, 4009, 4013, 1009, 4001 on expiry, 4500 on shutdown).
public final class RelayEngine: Sendable {
    public let configuration: EngineConfiguration
    public let registry: any SiteRegistry
    let clock: any RelayClock
    let logger: Logger
    let metrics: EngineMetrics
    let channelShards: [ChannelShard]
    let connectionShards: [ConnectionShard]
    let nextConnectionID = Atomic<UInt64>(1)
    let shuttingDown = Atomic<Bool>(false)

    struct SiteCounter {
        /// Connections on this node.
        var active = 0
        /// Broker mode: connections on other nodes, as of the last `brokerMaintenance()`.
        var elsewhere = 0
        var lastEmit = -Double.infinity
        var pending = false
    }
    let siteCounters = Mutex<[String: SiteCounter]>([:])

    struct PendingBrokerLeave: Sendable {
        var memberID: String
        var frame: BrokerEphemeral
    }
    /// Broker mode: presence leaves from synchronous cleanup, sent by `brokerMaintenance()`.
    let pendingBrokerLeaves = Mutex<[PendingBrokerLeave]>([])
    /// Broker mode: serializes interest changes per channel.
    let interestLocks = KeyedAsyncLock()
    /// The broker keeps no streams of its own: this engine's channel state is the stream.
    let inProcess: Bool
    /// Side channels this node is registered for (full name → registrations, handler).
    let sideChannels = Mutex<[String: SideChannel]>([:])
    /// Presence members and connection counts across nodes (broker mode).
    let presenceManager: (any PresenceManager)?

    /// The synchronous fast path, when the broker advertises `.inProcess` (single
    /// node); `nil` with a broker that must be awaited.
    public var synchronous: SynchronousEngine? { inProcess ? SynchronousEngine(engine: self) : nil }

    public init(registry: any SiteRegistry, configuration: EngineConfiguration = EngineConfiguration()) {
        self.registry = registry
        self.configuration = configuration
        self.clock = configuration.clock
        self.logger = configuration.logger
        self.metrics = EngineMetrics(factory: configuration.metricsFactory ?? MetricsSystem.factory)
        self.channelShards = (0..<max(1, configuration.channelShards)).map { _ in ChannelShard() }
        self.connectionShards = (0..<16).map { _ in ConnectionShard() }
        self.inProcess = configuration.broker.capabilities.contains(.inProcess)
        self.presenceManager = configuration.effectivePresenceManager
        if !inProcess {
            configuration.broker.attach(self)
            if presenceManager == nil {
                configuration.logger.error("the broker is not a PresenceManager and none is configured: presence calls will fail")
            }
        }
    }

    /// Channels hold their subscribers and connections their channels: an engine dropped with
    /// live connections (an embedder's, a test's) would keep them all. Break every such cycle.
    /// (Found by LeakSanitizer, `make test-asan`.)
    deinit {
        for shard in connectionShards {
            for conn in shard.map.withLock({ Array($0.values) }) {
                conn.state.withLock { s in
                    s.channels.removeAll()
                    s.presence.removeAll()
                }
            }
        }
        for shard in channelShards {
            for channel in shard.map.withLock({ Array($0.values) }) {
                channel.state.withLock { s in
                    s.subscribers.removeAll()
                    s.index.removeAll()
                    s.presence.removeAll()
                }
            }
        }
    }

    // MARK: - Connections

    /// Admits a connection whose token the server already verified.
    ///
    /// Refuses with 4001 (expired grant), 4003 (unknown or revoked site),
    /// 4029 (site connection limit) or 4500 (shutting down).
    /// `onWake` (optional) is called when the outbox goes from empty to
    /// non-empty or closes, for event-loop transports that `drain` instead of
    /// awaiting `next()`. It runs on the enqueuing thread, possibly while
    /// engine locks are held: it must only schedule the drain (e.g.
    /// `eventLoop.execute`), never call the engine synchronously.
    public func connect(_ grant: ConnectionGrant, onWake: (@Sendable () -> Void)? = nil) -> Result<RelayConnection, ConnectRefusal> {
        if shuttingDown.load(ordering: .relaxed) {
            return .failure(ConnectRefusal(code: .shuttingDown, reason: shutdownReason(delayMs: 1000)))
        }
        let now = clock.now()
        guard Double(grant.expiresAt) > now else {
            return .failure(ConnectRefusal(code: .invalidToken, reason: "token expired"))
        }
        guard let site = registry.site(id: grant.siteID), !site.revoked else {
            return .failure(ConnectRefusal(code: .siteNotFound, reason: "site not found"))
        }
        let admitted: Bool = siteCounters.withLock { counters in
            var c = counters[site.siteID] ?? SiteCounter()
            guard c.active + c.elsewhere < site.limits.maxConnections else { return false }
            c.active += 1
            counters[site.siteID] = c
            return true
        }
        guard admitted else {
            return .failure(ConnectRefusal(code: .connectionLimit, reason: "site connection limit reached"))
        }
        var g = grant.expanded()
        g.siteID = site.siteID  // share the registry's string
        let id = nextConnectionID.wrappingAdd(1, ordering: .relaxed).oldValue
        let conn = RelayConnection(id: id, nodeID: configuration.nodeID, grant: g, limits: site.limits,
                                   outboxLimits: configuration.outbox, now: now, wake: onWake)
        connectionShard(id).map.withLock { $0[id] = conn }
        metrics.addConnections(1)
        connectionCountChanged(siteID: site.siteID, now: now)
        return .success(conn)
    }

    /// Ends a connection: closes its outbox (the transport gets the close
    /// item if it is still draining), removes its subscriptions, makes its
    /// presence leave at once, and updates the site's count. Idempotent.
    /// Transports call it when the socket or stream ends. With
    /// `flushPending`, frames already queued stay before the close item (use
    /// it when closing a live socket, e.g. 1008 after a malformed frame).
    public func disconnect(_ conn: RelayConnection, code: CloseCode = .normal, reason: String = "", flushPending: Bool = false) {
        close(conn, code: code, reason: reason, discardPending: !flushPending)
    }

    /// Enqueues a frame the transport made (e.g. an error frame or a ping),
    /// in order with publications. Returns false if the connection is closed
    /// (an overflow here closes it with 4008 like any other).
    @discardableResult
    public func send(_ frame: OutboundFrame, to conn: RelayConnection) -> Bool {
        switch conn.enqueue(frame) {
        case .queued: return true
        case .closed: return false
        case .overflow:
            overflowed(conn)
            return false
        }
    }

    /// In-band token refresh. The new grant must be for the same site and
    /// not expired (else 4001 refusal: close the connection). Subscriptions
    /// and presence the new grant no longer reaches are dropped. Enqueues
    /// `auth_ok` for WebSocket connections.
    public func refreshGrant(_ conn: RelayConnection, _ grant: ConnectionGrant) -> Result<GrantRefresh, ConnectRefusal> {
        let now = clock.now()
        guard grant.siteID == conn.siteID, Double(grant.expiresAt) > now else {
            return .failure(ConnectRefusal(code: .invalidToken, reason: "invalid token: expired or malformed grant"))
        }
        guard let site = registry.site(id: grant.siteID), !site.revoked else {
            return .failure(ConnectRefusal(code: .siteNotFound, reason: "site not found"))
        }
        var g = grant.expanded()
        g.siteID = conn.siteID
        g.wireFormat = conn.format
        let taken: ([Channel], [Channel])? = conn.state.withLock { s in
            if s.closed { return nil }
            s.grant = g
            s.limits = site.limits
            let dropped = s.channels.filter { !$0.name.isAllowed(by: g.subscribePrefixes) }
            let droppedPresence = s.presence.filter { !$0.name.isAllowed(by: g.publishPrefixes) }
            s.channels.removeAll { ch in dropped.contains { $0 === ch } }
            s.presence.removeAll { ch in droppedPresence.contains { $0 === ch } }
            return (dropped, droppedPresence)
        }
        guard let (dropped, droppedPresence) = taken else {
            return .failure(ConnectRefusal(code: .invalidToken, reason: "invalid token: connection closed"))
        }
        for ch in dropped { removeSubscriber(conn, from: ch) }
        for ch in droppedPresence { removePresence(conn, from: ch) }
        if conn.format == .webSocket {
            send(Wire.authOK(expiresAt: g.expiresAt), to: conn)
        }
        return .success(GrantRefresh(expiresAt: g.expiresAt, revokedChannels: dropped.map(\.name.full)))
    }

    /// Enqueues a keepalive to every connection: `{"type":"ping"}` for
    /// WebSocket (the wordsocket client answers `pong`; contract: every 20 s)
    /// and an SSE comment for SSE. One shared timer for all connections;
    /// returns how many were sent.
    @discardableResult
    public func sendKeepalives() -> Int {
        var sent = 0
        for shard in connectionShards {
            let conns = shard.map.withLock { Array($0.values) }
            for c in conns where send(c.format == .webSocket ? Wire.ping : Wire.sseKeepalive, to: c) { sent += 1 }
        }
        return sent
    }

    /// Connections whose grant expired more than `tokenExpiryGrace` ago.
    public func expiredConnections() -> [RelayConnection] {
        let limit = clock.now() - configuration.tokenExpiryGrace
        var out: [RelayConnection] = []
        for shard in connectionShards {
            let conns = shard.map.withLock { Array($0.values) }
            for c in conns where Double(c.grant.expiresAt) <= limit { out.append(c) }
        }
        return out
    }

    /// Closes every expired connection with 4001; returns how many.
    /// Call periodically (e.g. every few seconds).
    @discardableResult
    public func closeExpired() -> Int {
        let expired = expiredConnections()
        for c in expired { close(c, code: .invalidToken, reason: "token expired", discardPending: true) }
        return expired.count
    }

    /// Starts draining: refuses new connections and closes every connection
    /// with 4500, each with its own delay drawn from `retryAfter` (ms) in the
    /// reason (`retry_after_ms=<n>`). Queued frames are kept so transports can
    /// flush them before closing.
    public func shutdown(retryAfterMs: ClosedRange<Int> = 1000...10_000) {
        var rng = SystemRandomNumberGenerator()
        shutdown(retryAfterMs: retryAfterMs, using: &rng)
    }

    public func shutdown<R: RandomNumberGenerator>(retryAfterMs: ClosedRange<Int>, using rng: inout R) {
        shuttingDown.store(true, ordering: .relaxed)
        for shard in connectionShards {
            let conns = shard.map.withLock { Array($0.values) }
            for c in conns {
                let delay = Int.random(in: retryAfterMs, using: &rng)
                close(c, code: .shuttingDown, reason: shutdownReason(delayMs: delay), discardPending: false)
            }
        }
    }

    func shutdownReason(delayMs: Int) -> String { "server shutting down; retry_after_ms=\(delayMs)" }

    /// Number of open connections on this engine.
    public var connectionCount: Int { metrics.connectionCount.load(ordering: .relaxed) }
    /// Number of live channels.
    public var channelCount: Int { metrics.channelCount.load(ordering: .relaxed) }
    /// Publications accepted since start, all sources (`/healthz` `published_messages`).
    public var publicationCount: Int { metrics.publicationCount.load(ordering: .relaxed) }

    /// A site's connection count (cluster-wide in broker mode, as of the last
    /// `brokerMaintenance()`) and limit.
    public func stats(siteID: String) -> SiteStats? {
        guard let site = registry.site(id: siteID) else { return nil }
        let active = siteCounters.withLock { c in (c[siteID]?.active ?? 0) + (c[siteID]?.elsewhere ?? 0) }
        return SiteStats(activeConnections: active, maxConnections: site.limits.maxConnections)
    }

    // MARK: - Subscribe

    /// Subscribes to channels spelled as the client wrote them (bare or
    /// `site:{id}:` form). A position in `positions` (keyed by the same
    /// spelling, or by the full name as in an SSE `Last-Event-ID`) asks for recovery: missed publications are replayed after
    /// the `subscribed` reply, or the outcome says `recovered: false`.
    /// Exceeding the site's channel limit closes the connection with 4009.
    ///
    /// The synchronous form, for an `.inProcess` broker (`synchronous`); the
    /// public entry is the `async` one.
    func subscribe(_ conn: RelayConnection, channels: [String], positions: [String: StreamPosition] = [:]) -> SubscribeResult {
        guard inProcess else {
            // Only relay-owned channels are this node's alone; the rest need the broker.
            let isLocal: (String) -> Bool = { spelled in
                if case .success(let n) = ChannelName.resolve(spelled, siteID: conn.siteID) { return n.isReserved }
                return true
            }
            var result = subscribeLocal(conn, channels: channels.filter(isLocal), positions: positions)
            for spelled in channels where !isLocal(spelled) {
                result.entries.append(.init(channel: spelled, outcome: .notProcessed))
            }
            return result
        }
        return subscribeLocal(conn, channels: channels, positions: positions)
    }

    func subscribeLocal(_ conn: RelayConnection, channels: [String], positions: [String: StreamPosition],
                        presenceOverride: [String: [PresenceMember]] = [:]) -> SubscribeResult {
        var result = SubscribeResult(entries: [], closedWith: nil)
        let (grant, limits, closed) = conn.state.withLock { ($0.grant, $0.limits, $0.closed) }
        for spelled in channels {
            if closed || result.closedWith != nil {
                result.entries.append(.init(channel: spelled, outcome: .notProcessed))
                continue
            }
            let name: ChannelName
            switch ChannelName.resolve(spelled, siteID: conn.siteID) {
            case .failure(.foreignSite):
                result.entries.append(.init(channel: spelled, outcome: .forbidden)); continue
            case .failure(.invalid):
                result.entries.append(.init(channel: spelled, outcome: .invalidChannel)); continue
            case .success(let n): name = n
            }
            guard name.isAllowed(by: grant.subscribePrefixes) else {
                result.entries.append(.init(channel: spelled, outcome: .forbidden)); continue
            }
            enum Admission { case ok, already, tooMany, closed }
            let admission: Admission = conn.state.withLock { s in
                if s.closed { return .closed }
                if s.channels.contains(where: { $0.name == name }) { return .already }
                if s.channels.count >= limits.maxChannelsPerConnection { return .tooMany }
                return .ok
            }
            switch admission {
            case .closed:
                result.entries.append(.init(channel: spelled, outcome: .notProcessed)); continue
            case .tooMany:
                result.entries.append(.init(channel: spelled, outcome: .notProcessed))
                result.closedWith = .tooManyChannels
                close(conn, code: .tooManyChannels, reason: "too many channels (limit \(limits.maxChannelsPerConnection))", discardPending: true)
                continue
            case .already:
                let pos = withLiveChannel(name) { _, st in st.position }
                if conn.format == .webSocket { send(Wire.subscribed(channels: [spelled], position: pos), to: conn) }
                result.entries.append(.init(channel: spelled, outcome: .alreadySubscribed(position: pos))); continue
            case .ok:
                break
            }
            let since = positions[spelled] ?? positions[name.full]
            let now = clock.now()
            var overflow = false
            let (channel, outcome): (Channel, SubscribeOutcome) = withLiveChannel(name) { channel, st in
                st.trimHistory(policy: channel.policy, now: now)
                guard st.addSubscriber(conn) else {
                    return (channel, .alreadySubscribed(position: st.position))
                }
                var recovery: Recovery?
                var replay: [Publication] = []
                if let since {
                    switch Self.recoveryPlan(st, since: since, maxRecovered: configuration.maxRecoveredPublications) {
                    case .success(let startIndex):
                        replay = Array(st.history[startIndex...])
                        recovery = .recovered(replayed: replay.count)
                    case .failure(let f):
                        recovery = .failed(f)
                    }
                }
                if conn.format == .webSocket {
                    let ack = Wire.subscribed(channels: [spelled], position: st.position, recovered: recovery.map(\.succeeded))
                    if conn.enqueue(ack) == .overflow { overflow = true }
                }
                for pub in replay where !overflow {
                    guard let f = pub.frame(for: conn.format) else { continue }
                    if conn.enqueue(f) == .overflow { overflow = true }
                }
                let members = presenceOverride[name.full]
                    ?? st.presence.map { PresenceMember(id: $0.connection.presenceID, state: $0.state) }
                if !members.isEmpty, !overflow {
                    let sync = Self.presenceSyncFrame(spelled: spelled, fullChannel: name.full, members: members, format: conn.format)
                    if conn.enqueue(sync) == .overflow { overflow = true }
                }
                return (channel, .subscribed(position: st.position, recovery: recovery))
            }
            if case .subscribed(_, let recovery) = outcome {
                metrics.addSubscriptions(1)
                switch recovery {
                case .recovered(let n)?:
                    metrics.recoveryRecovered.increment()
                    metrics.recoveredPublications.increment(by: Int64(n))
                case .failed?: metrics.recoveryFailed.increment()
                case nil: break
                }
                let stillOpen = conn.state.withLock { s -> Bool in
                    if s.closed { return false }
                    s.channels.append(channel)
                    return true
                }
                if !stillOpen { removeSubscriber(conn, from: channel) }
            }
            if overflow { overflowed(conn) }
            result.entries.append(.init(channel: spelled, outcome: outcome))
        }
        return result
    }

    /// `.success(index of the first publication to replay)` or why not.
    static func recoveryPlan(_ st: ChannelState, since: StreamPosition, maxRecovered: Int) -> Result<Int, RecoveryFailure> {
        guard since.epoch == st.epoch else { return .failure(.epochChanged) }
        guard since.offset <= st.offset else { return .failure(.positionAhead) }
        if since.offset == st.offset { return .success(st.history.count) }
        let missed = st.offset - since.offset
        guard let first = st.history.first?.position?.offset, first <= since.offset + 1 else {
            return .failure(.windowPassed)
        }
        guard missed <= UInt64(maxRecovered) else { return .failure(.tooManyMissed) }
        // Offsets in history are contiguous: index = offset - first.
        return .success(Int(since.offset + 1 - first))
    }

    /// Unsubscribes (spelled as the client wrote them). Returns the channels
    /// that were subscribed. Enqueues `unsubscribed` (WebSocket) listing all requested names.
    @discardableResult
    public func unsubscribe(_ conn: RelayConnection, channels: [String]) -> [String] {
        var removed: [String] = []
        for spelled in channels {
            guard case .success(let name) = ChannelName.resolve(spelled, siteID: conn.siteID) else { continue }
            let ch: Channel? = conn.state.withLock { s in
                guard let i = s.channels.firstIndex(where: { $0.name == name }) else { return nil }
                return s.channels.remove(at: i)
            }
            if let ch {
                removeSubscriber(conn, from: ch)
                removed.append(spelled)
            }
        }
        if conn.format == .webSocket, !channels.isEmpty {
            send(Wire.unsubscribed(channels: channels), to: conn)
        }
        return removed
    }

    // MARK: - Publish

    /// Server publish (HTTP `/publish` after HMAC verification, or an
    /// embedding app). `data` is raw JSON, validated once and passed through
    /// byte for byte. Charges the site's monthly quota.
    func publish(siteID: String, channel: String, event: String, data: [UInt8],
                 idempotencyKey: String? = nil) -> Result<PublishReceipt, PublishError> {
        publishInternal(siteID: siteID, from: nil, spelled: channel, event: event, payload: .json(data),
                        idempotencyKey: idempotencyKey, source: .server)
    }

    /// Server binary publish (delivered as binary frames to WebSocket subscribers only).
    func publishBinary(siteID: String, channel: String, payload: [UInt8]) -> Result<PublishReceipt, PublishError> {
        publishInternal(siteID: siteID, from: nil, spelled: channel, event: "", payload: .binary(payload),
                        idempotencyKey: nil, source: .server)
    }

    /// Client publish (`{"type":"message"}`): checks the publish prefixes,
    /// the site's client rate (a publish with no token left closes with 4013:
    /// transports call `clientPublishAdmission(_:maxWait:)` first and wait) and
    /// the size (`.messageTooLarge`, the connection stays open).
    func publish(from conn: RelayConnection, channel: String, event: String, data: [UInt8],
                 idempotencyKey: String? = nil) -> Result<PublishReceipt, PublishError> {
        publishInternal(siteID: conn.siteID, from: conn, spelled: channel, event: event, payload: .json(data),
                        idempotencyKey: idempotencyKey, source: .client)
    }

    /// Whether a client publish may go now under the site's client publish rate,
    /// or how long to wait for the next token. A client that has had to wait
    /// continuously for longer than `maxWait` seconds (it publishes faster than
    /// its rate, not in a burst) is closed with 4013 and `.refused` returned.
    /// Transports wait instead of refusing, so a burst (a provider flushing its
    /// offline queue) is slowed down, not lost; reading from a waiting client
    /// stops once its inbox is full, which slows the sender down in turn.
    ///
    /// Pass `waited: true` when asking again after a `.wait` for the same
    /// publish: only a publish that finds a token at its first ask ends a spell
    /// of waiting, so a client that keeps its queue full stays "waiting".
    ///
    /// `consume: true` takes the token on `.now` (for messages that are not engine publishes,
    /// such as a Yjs room's updates and awareness, which the engine does not count itself).
    public func clientPublishAdmission(_ conn: RelayConnection, maxWait: Double, waited: Bool = false,
                                       consume: Bool = false) -> ClientPublishAdmission {
        let now = clock.now()
        let decision = conn.state.withLock { s -> ClientPublishAdmission in
            if s.closed { return .refused }
            s.refillTokens(now: now)
            let rate = s.limits.clientPublishRate
            if s.tokens >= 1 {
                if !waited { s.throttledSince = nil }
                if consume { s.tokens -= 1 }
                return .now
            }
            let since = s.throttledSince ?? now
            s.throttledSince = since
            if now - since > maxWait || rate.perSecond <= 0 { return .refused }
            return .wait(seconds: (1 - s.tokens) / rate.perSecond)
        }
        if case .refused = decision, !conn.isClosed {
            metrics.rateLimited.increment()
            close(conn, code: .rateLimited, reason: "client publish rate exceeded for more than \(Int(maxWait)) s", discardPending: true)
        }
        return decision
    }

    /// True when the next client publish would have to wait (reads the bucket, changes nothing).
    public func clientPublishWouldWait(_ conn: RelayConnection) -> Bool {
        let now = clock.now()
        return conn.state.withLock { s in
            let rate = s.limits.clientPublishRate
            return s.tokens + (now - s.tokensAt) * rate.perSecond < 1
        }
    }

    /// Client binary publish (binary frame). The sender receives its own
    /// frame back if subscribed, as the wordsocket relay does.
    func publishBinary(from conn: RelayConnection, channel: String, payload: [UInt8]) -> Result<PublishReceipt, PublishError> {
        publishInternal(siteID: conn.siteID, from: conn, spelled: channel, event: "", payload: .binary(payload),
                        idempotencyKey: nil, source: .client)
    }

    func publishInternal(siteID: String, from conn: RelayConnection?, spelled: String, event: String,
                         payload: Payload, idempotencyKey: String?, source: PublishSource) -> Result<PublishReceipt, PublishError> {
        let now = clock.now()
        let name: ChannelName
        switch validatePublish(siteID: siteID, from: conn, spelled: spelled, event: event, payload: payload,
                               idempotencyKey: idempotencyKey, source: source, now: now) {
        case .failure(let e): return .failure(e)
        case .success(let n): name = n
        }
        if !inProcess && source != .system { return .failure(.brokerUnavailable) }
        return commitLocal(siteID: siteID, name: name, spelled: spelled, event: event, payload: payload,
                           idempotencyKey: idempotencyKey, source: source, now: now)
    }

    /// Every check before a publication is accepted (site, channel, ACL,
    /// event, size, JSON, client rate). Only the client rate closes the
    /// connection (4013); every other refusal, including a payload over the
    /// site's `maxMessageBytes`, is returned for the transport to report as an
    /// error frame on a socket that stays open.
    func validatePublish(siteID: String, from conn: RelayConnection?, spelled: String, event: String, payload: Payload,
                         idempotencyKey: String?, source: PublishSource, now: Double) -> Result<ChannelName, PublishError> {
        let limits: SiteLimits
        var publishPrefixes: [String] = []
        if let conn {
            guard let s = conn.state.withLock({ $0.closed ? nil : ($0.limits, $0.grant.publishPrefixes) }) else {
                return .failure(.connectionClosed)
            }
            (limits, publishPrefixes) = s
        } else {
            guard let site = registry.site(id: siteID), !site.revoked else { return .failure(.siteNotFound) }
            limits = site.limits
        }
        let name: ChannelName
        switch ChannelName.resolve(spelled, siteID: siteID) {
        case .failure(.foreignSite): return .failure(.forbidden)
        case .failure(.invalid): return .failure(.invalidChannel)
        case .success(let n): name = n
        }
        if source != .system && name.isReserved { return .failure(.reservedChannel) }
        if conn != nil, !name.isAllowed(by: publishPrefixes) { return .failure(.forbidden) }
        if case .json = payload, !isValidEvent(event) { return .failure(.invalidEvent) }
        if let key = idempotencyKey, key.isEmpty || key.utf8.count > configuration.maxIdempotencyKeyLength {
            return .failure(.invalidIdempotencyKey)
        }
        if payload.byteCount > limits.maxMessageBytes {
            return .failure(.messageTooLarge(limit: limits.maxMessageBytes))
        }
        if case .json(let bytes) = payload, !JSON.isValid(bytes) { return .failure(.invalidJSON) }
        if let conn {
            let allowed = conn.state.withLock { s -> Bool in
                s.refillTokens(now: now)
                guard s.tokens >= 1 else { return false }
                s.tokens -= 1
                return true
            }
            if !allowed {
                metrics.rateLimited.increment()
                close(conn, code: .rateLimited, reason: "client publish rate exceeded", discardPending: true)
                return .failure(.rateLimited)
            }
        }
        return .success(name)
    }

    /// Single-node publish: offset, history and fan-out under the channel lock.
    func commitLocal(siteID: String, name: ChannelName, spelled: String, event: String, payload: Payload,
                     idempotencyKey: String?, source: PublishSource, now: Double) -> Result<PublishReceipt, PublishError> {
        var fan = FanOutResult()
        let outcome: Result<PublishReceipt, PublishError> = withLiveChannel(name) { channel, st in
            if let key = idempotencyKey {
                st.pruneIdempotency(now: now)
                if let prior = st.idempotency[key] {
                    var r = prior.receipt
                    r.deliveries = 0
                    r.duplicate = true
                    return .success(r)
                }
            }
            if source != .system, case .exceeded(let limit) = registry.chargeMessages(siteID: siteID, count: 1, now: now) {
                return .failure(.quotaExceeded(limit: limit))
            }
            st.offset += 1
            let pub = Publication(spelledChannel: spelled, channel: channel.name, event: event, payload: payload,
                                  position: st.position, time: now)
            if channel.policy.maxPublications > 0 {
                st.history.append(pub)
                st.historyBytes += pub.retainedBytes
            }
            st.trimHistory(policy: channel.policy, now: now)
            fan = st.fanOut(pub)
            let receipt = PublishReceipt(channel: name.full, position: st.position, deliveries: fan.deliveries, duplicate: false)
            if let key = idempotencyKey {
                let expires = now + configuration.idempotencyWindow
                st.idempotency[key] = (expires, receipt)
                st.idempotencyOrder.append((expires, key))
            }
            return .success(receipt)
        }
        switch outcome {
        case .success(let r) where !r.duplicate:
            metrics.publishedIn(source)
            metrics.publicationsOut.increment(by: Int64(fan.deliveries))
            metrics.bytesOut.increment(by: Int64(fan.bytes))
        case .failure(.quotaExceeded):
            metrics.quotaRejections.increment()
        default: break
        }
        for c in fan.overflowed { overflowed(c) }
        return outcome
    }

    func isValidEvent(_ event: String) -> Bool {
        guard !event.isEmpty, event.utf8.count <= configuration.maxEventNameLength else { return false }
        for b in event.utf8 where b < 0x20 || b == 0x7F { return false }
        return true
    }

    // MARK: - History

    /// Retained publications of a channel after `since` (all retained when
    /// nil), oldest first, at most `limit`. With `since`, fails exactly like
    /// recovery does (epoch changed, window passed…). In broker mode this is
    /// the node's local ring (complete only while the node has interest).
    /// Creates the channel's state if it has none (a fresh epoch).
    public func history(siteID: String, channel spelled: String, since: StreamPosition? = nil, limit: Int = 100) -> HistoryResult? {
        guard case .success(let name) = ChannelName.resolve(spelled, siteID: siteID) else { return nil }
        let now = clock.now()
        return withLiveChannel(name) { channel, st in
            st.trimHistory(policy: channel.policy, now: now)
            var start = 0
            if let since {
                switch Self.recoveryPlan(st, since: since, maxRecovered: .max) {
                case .success(let i): start = i
                case .failure(let f): return .failed(f, position: st.position)
                }
            }
            let pubs = st.history[(st.history.startIndex + start)...].prefix(limit).map {
                PublicationSummary(channel: $0.spelledChannel, event: $0.event, payload: $0.payload, position: $0.position!)
            }
            return .publications(Array(pubs), position: st.position)
        }
    }

    // MARK: - Presence

    /// Enters or updates presence (`state` raw JSON) or leaves (`state == nil`)
    /// on a channel, which the connection need not subscribe to. Gated by the
    /// publish prefixes; `wps:` is refused. Subscribers get `wps.presence`
    /// `join`/`leave` message frames.
    ///
    /// The synchronous form (`synchronous`); answers `.unavailable` unless the broker is `.inProcess`.
    func setPresence(_ conn: RelayConnection, channel spelled: String, state: [UInt8]?) -> Result<PresenceOutcome, PresenceError> {
        if !inProcess { return .failure(.unavailable) }
        return setPresenceLocal(conn, channel: spelled, state: state, broadcast: true)
    }

    /// Validates and applies a presence change to this node's state;
    /// `broadcast` sends join/leave to local subscribers (broker mode sends
    /// them through the broker instead).
    func setPresenceLocal(_ conn: RelayConnection, channel spelled: String, state: [UInt8]?, broadcast: Bool) -> Result<PresenceOutcome, PresenceError> {
        let name: ChannelName
        switch ChannelName.resolve(spelled, siteID: conn.siteID) {
        case .failure(.foreignSite): return .failure(.forbidden)
        case .failure(.invalid): return .failure(.invalidChannel)
        case .success(let n): name = n
        }
        guard let (grant, limits) = conn.state.withLock({ $0.closed ? nil : ($0.grant, $0.limits) }) else {
            return .failure(.connectionClosed)
        }
        guard !name.isReserved, name.isAllowed(by: grant.publishPrefixes) else { return .failure(.forbidden) }
        guard let state else {
            let ch: Channel? = conn.state.withLock { s in
                guard let i = s.presence.firstIndex(where: { $0.name == name }) else { return nil }
                return s.presence.remove(at: i)
            }
            guard let ch else { return .success(.notMember) }
            removePresence(conn, from: ch, broadcast: broadcast)
            return .success(.left)
        }
        guard state.count <= configuration.presence.maxStateBytes else {
            return .failure(.stateTooLarge(limit: configuration.presence.maxStateBytes))
        }
        guard JSON.isValid(state) else { return .failure(.invalidState) }
        let isMember = conn.state.withLock { s in s.presence.contains { $0.name == name } }
        if !isMember {
            let count = conn.state.withLock { $0.presence.count }
            if count >= limits.maxChannelsPerConnection { return .failure(.tooManyChannels) }
        }
        let maxMembers = configuration.presence.maxMembersPerChannel
        var fan = FanOutResult()
        let (channel, outcome): (Channel, Result<PresenceOutcome, PresenceError>) = withLiveChannel(name) { channel, st in
            let existing = st.presence.firstIndex { $0.connection === conn }
            if existing == nil && st.presence.count >= maxMembers {
                return (channel, .failure(.memberLimitReached(limit: maxMembers)))
            }
            if let i = existing {
                st.presence[i].state = state
                st.presence[i].spelled = spelled
            } else {
                st.presence.append(PresenceEntry(connection: conn, spelled: spelled, state: state))
            }
            if broadcast {
                fan = st.fanOut(Self.presencePublication(spelled: spelled, name: name,
                                                         data: Self.presenceJoinData(id: conn.presenceID, state: state)))
            }
            return (channel, .success(existing == nil ? .joined : .updated))
        }
        if case .success(.joined) = outcome {
            let stillOpen = conn.state.withLock { s -> Bool in
                if s.closed { return false }
                s.presence.append(channel)
                return true
            }
            if !stillOpen { removePresence(conn, from: channel) }
        }
        for c in fan.overflowed { overflowed(c) }
        return outcome
    }

    static func presenceJoinData(id: String, state: [UInt8]) -> [UInt8] {
        var data: [UInt8] = []
        JSON.appendASCII("{\"action\":\"join\",\"id\":", to: &data)
        JSON.appendString(id, to: &data)
        JSON.appendASCII(",\"state\":", to: &data)
        data.append(contentsOf: state)
        data.append(UInt8(ascii: "}"))
        return data
    }

    static func presenceLeaveData(id: String) -> [UInt8] {
        var data: [UInt8] = []
        JSON.appendASCII("{\"action\":\"leave\",\"id\":", to: &data)
        JSON.appendString(id, to: &data)
        data.append(UInt8(ascii: "}"))
        return data
    }

    /// Current members of a channel on this node (order of joining).
    func presence(siteID: String, channel spelled: String) -> [PresenceMember] {
        presenceLocal(siteID: siteID, channel: spelled)
    }

    func presenceLocal(siteID: String, channel spelled: String) -> [PresenceMember] {
        guard case .success(let name) = ChannelName.resolve(spelled, siteID: siteID),
              let channel = existingChannel(name) else { return [] }
        return channel.state.withLock { st in
            st.presence.map { PresenceMember(id: $0.connection.presenceID, state: $0.state) }
        }
    }

    /// Count-only presence query (this node).
    func presenceCount(siteID: String, channel spelled: String) -> Int {
        guard case .success(let name) = ChannelName.resolve(spelled, siteID: siteID),
              let channel = existingChannel(name) else { return 0 }
        return channel.state.withLock { $0.presence.count }
    }

    /// Current subscriber count of a channel.
    public func subscriberCount(siteID: String, channel spelled: String) -> Int {
        guard case .success(let name) = ChannelName.resolve(spelled, siteID: siteID),
              let channel = existingChannel(name) else { return 0 }
        return channel.state.withLock { $0.subscribers.count }
    }

    static func presencePublication(spelled: String, name: ChannelName, data: [UInt8]) -> Publication {
        Publication(spelledChannel: spelled, channel: name, event: "wps.presence", payload: .json(data), position: nil, time: 0)
    }

    static func presenceSyncFrame(spelled: String, fullChannel: String, members: [PresenceMember], format: WireFormat) -> OutboundFrame {
        var data: [UInt8] = []
        JSON.appendASCII("{\"action\":\"sync\",\"members\":[", to: &data)
        for (i, m) in members.enumerated() {
            if i > 0 { data.append(UInt8(ascii: ",")) }
            JSON.appendASCII("{\"id\":", to: &data)
            JSON.appendString(m.id, to: &data)
            JSON.appendASCII(",\"state\":", to: &data)
            data.append(contentsOf: m.state)
            data.append(UInt8(ascii: "}"))
        }
        JSON.appendASCII("]}", to: &data)
        let name = ChannelName(full: fullChannel, bare: "")
        return Publication(spelledChannel: spelled, channel: name, event: "wps.presence", payload: .json(data),
                           position: nil, time: 0).frame(for: format)!
    }

    // MARK: - Maintenance

    /// Periodic work; call every ~250 ms–1 s from one task: flushes coalesced
    /// `wps.connections` events, trims history by age, forgets expired
    /// idempotency keys and removes idle channels. Cost is O(channels).
    public func tick() {
        let now = clock.now()
        let due: [String] = siteCounters.withLock { counters in
            var due: [String] = []
            for (site, c) in counters where c.pending && now - c.lastEmit >= configuration.connectionsEventInterval {
                due.append(site)
            }
            return due
        }
        for site in due { emitConnectionCount(siteID: site, now: now) }
        for shard in channelShards {
            let channels = shard.map.withLock { Array($0.values) }
            for ch in channels {
                let idle = ch.state.withLock { st -> Bool in
                    st.trimHistory(policy: ch.policy, now: now)
                    st.pruneIdempotency(now: now)
                    return st.isIdle
                }
                if idle { removeIfIdle(ch) }
            }
        }
    }

    // MARK: - Internals

    func connectionShard(_ id: UInt64) -> ConnectionShard {
        connectionShards[Int(id % UInt64(connectionShards.count))]
    }

    /// The shard of a channel, by its `ChannelName.key`.
    func channelShard(_ key: String) -> ChannelShard {
        var h = Hasher()
        h.combine(key)
        return channelShards[Int(UInt(bitPattern: h.finalize()) % UInt(channelShards.count))]
    }

    func existingChannel(_ name: ChannelName) -> Channel? {
        let key = name.key
        return channelShard(key).map.withLock { $0[key] }
    }

    /// Runs `body` under the lock of the live channel `name`, creating it if
    /// needed and retrying if it was removed concurrently.
    func withLiveChannel<R>(_ name: ChannelName, _ body: (Channel, inout ChannelState) -> R) -> R {
        let key = name.key
        let shard = channelShard(key)
        while true {
            var created = false
            let channel: Channel = shard.map.withLock { map in
                if let c = map[key] { return c }
                let c = Channel(name: name, policy: configuration.history.policy(for: name), epoch: Self.newEpoch())
                map[key] = c
                created = true
                return c
            }
            if created { metrics.addChannels(1) }
            let r: R? = channel.state.withLock { st in
                if st.removed { return nil }
                return body(channel, &st)
            }
            if let r { return r }
        }
    }

    public static func newEpoch() -> String {
        var rng = SystemRandomNumberGenerator()
        let v = rng.next() as UInt64
        return Hex.encode(withUnsafeBytes(of: v.bigEndian) { Array($0) })
    }

    /// Removes the channel from its shard if it is idle (no subscribers,
    /// presence, history or idempotency keys). Its epoch dies with it.
    func removeIfIdle(_ channel: Channel) {
        let key = channel.name.key
        let shard = channelShard(key)
        let removed: Bool = shard.map.withLock { map in
            guard map[key] === channel else { return false }
            return channel.state.withLock { st in
                guard st.isIdle, !st.removed else { return false }
                st.removed = true
                map[key] = nil
                return true
            }
        }
        if removed { metrics.addChannels(-1) }
    }

    func removeSubscriber(_ conn: RelayConnection, from channel: Channel) {
        let (removed, idle) = channel.state.withLock { st in (st.removeSubscriber(conn), st.isIdle) }
        if removed { metrics.addSubscriptions(-1) }
        if idle { removeIfIdle(channel) }
    }

    /// Removes a member. With `broadcast`, local subscribers get the leave at
    /// once; in broker mode the leave for other nodes is queued for
    /// `brokerMaintenance()` (this path runs inside synchronous cleanup).
    func removePresence(_ conn: RelayConnection, from channel: Channel, broadcast: Bool = true) {
        var fan = FanOutResult()
        var pending: PendingBrokerLeave?
        let idle: Bool = channel.state.withLock { st in
            guard let i = st.presence.firstIndex(where: { $0.connection === conn }) else { return st.isIdle }
            let entry = st.presence.remove(at: i)
            if broadcast {
                let data = Self.presenceLeaveData(id: conn.presenceID)
                fan = st.fanOut(Self.presencePublication(spelled: entry.spelled, name: channel.name, data: data))
                if !inProcess {
                    pending = PendingBrokerLeave(memberID: conn.presenceID, frame: BrokerEphemeral(
                        channel: channel.name, spelledChannel: entry.spelled, event: "wps.presence", data: data,
                        originNode: configuration.nodeID, skipOrigin: true))
                }
            }
            return st.isIdle
        }
        if let pending { pendingBrokerLeaves.withLock { $0.append(pending) } }
        for c in fan.overflowed { overflowed(c) }
        if idle { removeIfIdle(channel) }
    }

    func overflowed(_ conn: RelayConnection) {
        metrics.outboxOverflowCloses.increment()
        logger.debug("slow consumer closed", metadata: ["connection": "\(conn.presenceID)"])
        // The outbox is already closed with 4008; finish the cleanup.
        cleanup(conn, code: .slowConsumer)
    }

    func close(_ conn: RelayConnection, code: CloseCode, reason: String, discardPending: Bool) {
        conn.closeOutbox(code, reason: reason, discardPending: discardPending)
        cleanup(conn, code: code)
    }

    /// Removes every trace of a closed connection. Runs once per connection.
    func cleanup(_ conn: RelayConnection, code: CloseCode) {
        let taken: ([Channel], [Channel])? = conn.state.withLock { s in
            if s.closed { return nil }
            s.closed = true
            defer { s.channels = []; s.presence = [] }
            return (s.channels, s.presence)
        }
        guard let (channels, presence) = taken else { return }
        for ch in presence { removePresence(conn, from: ch) }
        for ch in channels { removeSubscriber(conn, from: ch) }
        let found = connectionShard(conn.id).map.withLock { $0.removeValue(forKey: conn.id) != nil }
        guard found else { return }
        metrics.addConnections(-1)
        metrics.disconnected(code, endpoint: conn.endpoint)
        let now = clock.now()
        siteCounters.withLock { counters in
            counters[conn.siteID, default: SiteCounter()].active -= 1
        }
        connectionCountChanged(siteID: conn.siteID, now: now)
    }

    /// Coalesces `wps.connections` events: at most one per
    /// `connectionsEventInterval` per site; later changes are flushed by `tick()`.
    func connectionCountChanged(siteID: String, now: Double) {
        emitConnectionCount(siteID: siteID, now: now)
    }

    func emitConnectionCount(siteID: String, now: Double) {
        let interval = configuration.connectionsEventInterval
        let active: Int? = siteCounters.withLock { counters in
            guard var c = counters[siteID] else { return nil }
            defer { counters[siteID] = c }
            if now - c.lastEmit >= interval {
                c.lastEmit = now
                c.pending = false
                return c.active + c.elsewhere
            }
            c.pending = true
            return nil
        }
        guard let active, !shuttingDown.load(ordering: .relaxed) else { return }
        let max = registry.site(id: siteID)?.limits.maxConnections ?? 0
        var data: [UInt8] = []
        JSON.appendASCII("{\"active_connections\":", to: &data)
        JSON.appendInt(active, to: &data)
        JSON.appendASCII(",\"max_connections\":", to: &data)
        JSON.appendInt(max, to: &data)
        data.append(UInt8(ascii: "}"))
        let name = ChannelName.connectionsChannel(siteID: siteID)
        guard inProcess else {
            // Several nodes: one stream for the cluster (positions from the broker), published by
            // the node whose count changed, with the cluster total it knows.
            Task { _ = await self.publishAnyMode(siteID: siteID, from: nil, spelled: name.full, event: "wps.connections",
                                                 payload: .json(data), idempotencyKey: nil, source: .system) }
            return
        }
        _ = publishInternal(siteID: siteID, from: nil, spelled: name.full, event: "wps.connections",
                            payload: .json(data), idempotencyKey: nil, source: .system)
    }
}
