import RelayProtocol
import Synchronization
import Testing
@testable import RelayCore

/// Several engines (nodes) linked by one `InMemoryBroker`.
struct Cluster {
    let clock = ManualClock(1_700_000_000)
    let broker = InMemoryBroker()
    let registry: InMemorySiteRegistry
    let site = Site(siteKey: "0123456789abcdef0123456789abcdef")
    let nodes: [RelayEngine]

    init(nodes count: Int = 2) {
        registry = InMemorySiteRegistry([site])
        var made: [RelayEngine] = []
        for i in 0..<count {
            var config = EngineConfiguration()
            config.clock = clock
            config.nodeID = "n\(i)"
            config.metricsFactory = TestMetrics()
            config.broker = broker.node()
            made.append(RelayEngine(registry: registry, configuration: config))
        }
        nodes = made
    }

    func connect(_ node: Int) throws -> RelayConnection {
        try nodes[node].connect(ConnectionGrant.siteWide(siteID: site.siteID, userID: "1", expiresAt: Int64(clock.now()) + 300)).get()
    }

    func publish(_ node: Int, _ channel: String = "events", _ data: String = "{}", key: String? = nil) async throws -> PublishReceipt {
        try await nodes[node].publish(siteID: site.siteID, channel: channel, event: "e", data: Array(data.utf8), idempotencyKey: key).get()
    }
}

@Suite struct ClusterTests {
    @Test func publicationsReachSubscribersOnEveryNodeWithOnePosition() async throws {
        let cl = Cluster()
        let a = try cl.connect(0), b = try cl.connect(1)
        #expect(await cl.nodes[0].subscribe(a, channels: ["events"])["events"]?.isSubscribed == true)
        #expect(await cl.nodes[1].subscribe(b, channels: ["site:\(cl.site.siteID):events"])["site:\(cl.site.siteID):events"]?.isSubscribed == true)
        _ = a.drain(); _ = b.drain()
        let r = try await cl.publish(0, "events", "{\"x\":1}")
        #expect(r.position.offset == 1)
        let ma = a.messages(), mb = b.messages()
        #expect(ma.count == 1 && ma == mb)
        #expect(epochOf(ma[0]) == r.position.epoch)
        let c = try cl.connect(1)
        #expect(await cl.nodes[1].publish(from: c, channel: "events", event: "e", data: Array("2".utf8)) != .failure(.brokerUnavailable))
        #expect(a.messages().map { offsetOf($0) } == [2])
        #expect(b.messages().map { offsetOf($0) } == [2])
    }

    @Test func concurrentPublishersOnTwoNodesGiveOneOrder() async throws {
        let cl = Cluster()
        let a = try cl.connect(0), b = try cl.connect(1)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        _ = await cl.nodes[1].subscribe(b, channels: ["events"])
        _ = a.drain(); _ = b.drain()
        let nodes = cl.nodes, siteID = cl.site.siteID
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<2 {
                group.addTask {
                    for i in 0..<300 {
                        _ = await nodes[n].publish(siteID: siteID, channel: "events", event: "e", data: Array("{\"n\":\(n),\"i\":\(i)}".utf8))
                    }
                }
            }
        }
        let ma = a.messages(), mb = b.messages()
        #expect(ma.count == 600)
        #expect(ma == mb)
        #expect(ma.map { offsetOf($0)! } == Array(1...600))
    }

    @Test func recoversOnAnotherNodeFromTheSharedStream() async throws {
        let cl = Cluster(nodes: 3)
        let a = try cl.connect(0)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        for i in 1...3 { _ = try await cl.publish(1, "events", "{\"i\":\(i)}") }
        let seen = a.messages()
        let last = StreamPosition(offset: offsetOf(seen.last!)!, epoch: epochOf(seen.last!)!)
        cl.nodes[0].disconnect(a)
        for i in 4...6 { _ = try await cl.publish(1, "events", "{\"i\":\(i)}") }
        // Node 2 never had this channel: it seeds from the broker.
        let c = try cl.connect(2)
        let out = await cl.nodes[2].subscribe(c, channels: ["events"], positions: ["events": last])
        #expect(out["events"] == .subscribed(position: StreamPosition(offset: 6, epoch: last.epoch), recovery: .recovered(replayed: 3)))
        _ = try await cl.publish(0, "events", "{\"i\":7}")
        let frames = c.messages()
        #expect(frames.map { offsetOf($0) } == [4, 5, 6, 7])
        #expect(frames.allSatisfy { contains($0, "\"data\":{\"i\":\(offsetOf($0)!)}") })
    }

    @Test func lostStreamChangesTheEpochAndRecoveryFailsClosed() async throws {
        let cl = Cluster()
        let a = try cl.connect(0)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        let first = try await cl.publish(0)
        cl.broker.dropStream(channel: "site:\(cl.site.siteID):events")
        let second = try await cl.publish(1)
        #expect(second.position.epoch != first.position.epoch && second.position.offset == 1)
        #expect(a.messages().map { epochOf($0) } == [first.position.epoch, second.position.epoch])
        for node in 0..<2 {
            let c = try cl.connect(node)
            let out = await cl.nodes[node].subscribe(c, channels: ["events"], positions: ["events": first.position])
            #expect(out["events"] == .subscribed(position: second.position, recovery: .failed(.epochChanged)))
            #expect(c.messages().isEmpty)
        }
    }

    @Test func idempotencyKeysHoldAcrossNodes() async throws {
        let cl = Cluster()
        let a = try cl.connect(1)
        _ = await cl.nodes[1].subscribe(a, channels: ["events"]); _ = a.drain()
        let r1 = try await cl.publish(0, key: "k")
        let r2 = try await cl.publish(1, key: "k")
        #expect(!r1.duplicate && r2.duplicate && r2.position == r1.position)
        #expect(a.messages().count == 1)
    }

    @Test func synchronousCallsAreRefusedInBrokerModeAndInterestIsReleased() async throws {
        let cl = Cluster()
        let a = try cl.connect(0)
        // Nested functions are synchronous contexts: they pick the sync overloads.
        func syncPublish() -> Result<PublishReceipt, PublishError> {
            cl.nodes[0].publish(siteID: cl.site.siteID, channel: "events", event: "e", data: Array("1".utf8))
        }
        func syncSubscribe() -> SubscribeResult { cl.nodes[0].subscribe(a, channels: ["events", "wps:connections"]) }
        func syncPresence() -> Result<PresenceOutcome, PresenceError> { cl.nodes[0].setPresence(a, channel: "room", state: Array("1".utf8)) }
        #expect(syncPublish() == .failure(.brokerUnavailable))
        #expect(syncPresence() == .failure(.unavailable))
        let sync = syncSubscribe()
        #expect(sync["events"] == .notProcessed)
        #expect(sync["wps:connections"]?.isSubscribed == true)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        cl.nodes[0].unsubscribe(a, channels: ["events"])
        #expect(await cl.nodes[0].releaseIdleBrokerInterest() == 1)
        #expect(await cl.nodes[0].releaseIdleBrokerInterest() == 0)
        _ = a.drain()
        _ = try await cl.publish(1)
        #expect(a.messages().isEmpty)
    }

    @Test func inMemoryBrokerPresenceExpires() async throws {
        let broker = InMemoryBroker()
        let n = broker.node()
        try await n.setPresence(channel: "c", memberID: "n0-1", state: Array("{}".utf8), ttl: 30, now: 100)
        try await n.setPresence(channel: "c", memberID: "n1-1", state: Array("1".utf8), ttl: 60, now: 100)
        #expect(try await n.presence(channel: "c", now: 110).map(\.id) == ["n0-1", "n1-1"])
        #expect(try await n.presence(channel: "c", now: 140).map(\.id) == ["n1-1"])
        try await n.setPresence(channel: "c", memberID: "n1-1", state: nil, ttl: 0, now: 141)
        #expect(try await n.presence(channel: "c", now: 141).isEmpty)
    }

    @Test func presenceSpansNodes() async throws {
        let cl = Cluster()
        let shopper = try cl.connect(0), other = try cl.connect(0), staff = try cl.connect(1)
        // A member on node 0 that does not subscribe (ShopSocket shoppers).
        #expect(await cl.nodes[0].setPresence(shopper, channel: "carts", state: Array("{\"cart\":1}".utf8)) == .success(.joined))
        _ = await cl.nodes[1].subscribe(staff, channels: ["carts"])
        let sync = staff.messages()
        #expect(sync == ["{\"type\":\"message\",\"channel\":\"carts\",\"event\":\"wps.presence\",\"data\":{\"action\":\"sync\",\"members\":[{\"id\":\"\(shopper.presenceID)\",\"state\":{\"cart\":1}}]}}"])
        #expect(shopper.presenceID.hasPrefix("n0-") && staff.presenceID.hasPrefix("n1-"))

        #expect(await cl.nodes[0].setPresence(other, channel: "carts", state: Array("{}".utf8)) == .success(.joined))
        #expect(staff.messages().map { contains($0, "\"action\":\"join\",\"id\":\"\(other.presenceID)\"") } == [true])
        #expect(await cl.nodes[1].presenceCount(siteID: cl.site.siteID, channel: "carts") == 2)

        #expect(await cl.nodes[0].setPresence(other, channel: "carts", state: nil) == .success(.left))
        #expect(staff.messages().map { contains($0, "\"action\":\"leave\",\"id\":\"\(other.presenceID)\"") } == [true])

        // A disconnect on node 0 reaches node 1 with the next maintenance pass.
        cl.nodes[0].disconnect(shopper)
        #expect(staff.messages().isEmpty)
        await cl.nodes[0].brokerMaintenance()
        #expect(staff.messages().map { contains($0, "\"action\":\"leave\",\"id\":\"\(shopper.presenceID)\"") } == [true])
        #expect(await cl.nodes[1].presence(siteID: cl.site.siteID, channel: "carts").isEmpty)
    }

    @Test func membersOfACrashedNodeExpireUnlessRefreshed() async throws {
        let cl = Cluster()
        let a = try cl.connect(0), b = try cl.connect(1)
        _ = await cl.nodes[0].setPresence(a, channel: "room", state: Array("1".utf8))
        _ = await cl.nodes[1].setPresence(b, channel: "room", state: Array("2".utf8))
        cl.clock.advance(by: 50)
        await cl.nodes[1].brokerMaintenance()          // node 1 refreshes; node 0 is "dead"
        cl.clock.advance(by: 20)
        #expect(await cl.nodes[1].presence(siteID: cl.site.siteID, channel: "room").map(\.id) == [b.presenceID])
    }

    @Test func interestReleasedThenRegainedRecoversFromTheBroker() async throws {
        let cl = Cluster()
        let a = try cl.connect(0)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        let p1 = try await cl.publish(1)
        cl.nodes[0].unsubscribe(a, channels: ["events"])
        #expect(await cl.nodes[0].releaseIdleBrokerInterest() == 1)
        for _ in 0..<3 { _ = try await cl.publish(1) }       // node 0 hears none of these
        _ = a.drain()
        let out = await cl.nodes[0].subscribe(a, channels: ["events"], positions: ["events": p1.position])
        #expect(out["events"] == .subscribed(position: StreamPosition(offset: 4, epoch: p1.position.epoch), recovery: .recovered(replayed: 3)))
        #expect(a.messages().map { offsetOf($0) } == [2, 3, 4])
    }

    @Test func concurrentSubscribeAndReleaseNeverLoseTheBrokerSubscription() async throws {
        let cl = Cluster()
        let node = cl.nodes[0]
        for round in 0..<50 {
            let c = try cl.connect(0)
            async let sub = node.subscribe(c, channels: ["events"])
            async let rel = node.releaseIdleBrokerInterest()
            _ = await (sub, rel)
            _ = c.drain()
            _ = try await cl.publish(1, "events", "{\"r\":\(round)}")
            #expect(c.messages().count == 1, "round \(round)")
            node.disconnect(c)
            _ = await node.releaseIdleBrokerInterest()
        }
    }
}

@Suite struct ClusterConnectionCountTests {
    @Test func siteLimitAndCountsAreClusterWideAfterMaintenance() async throws {
        let cl = Cluster()
        var limited = cl.site
        limited.limits.maxConnections = 3
        cl.registry.upsert(limited)
        let watcher = try cl.connect(1)
        _ = await cl.nodes[1].subscribe(watcher, channels: ["wps:connections"])
        _ = watcher.drain()
        _ = try cl.connect(0)
        _ = try cl.connect(0)
        cl.clock.advance(by: 2)
        await cl.nodes[0].brokerMaintenance()
        await cl.nodes[1].brokerMaintenance()
        await cl.nodes[0].brokerMaintenance()
        #expect(cl.nodes[0].stats(siteID: cl.site.siteID)?.activeConnections == 3)
        #expect(cl.nodes[1].stats(siteID: cl.site.siteID)?.activeConnections == 3)
        #expect(cl.nodes[0].connect(ConnectionGrant.siteWide(siteID: cl.site.siteID, userID: "1", expiresAt: Int64(cl.clock.now()) + 300)).refusal?.code == .connectionLimit)
        let events = watcher.messages()
        #expect(contains(events.last ?? "", "{\"active_connections\":3,\"max_connections\":3}"))
        // Node 0 stops reporting (crash): its connections stop counting after the TTL.
        cl.clock.advance(by: 61)
        await cl.nodes[1].brokerMaintenance()
        #expect(cl.nodes[1].stats(siteID: cl.site.siteID)?.activeConnections == 1)
    }
}

@Suite struct KeyedAsyncLockTests {
    final class Counters: Sendable {
        let inside = Mutex<[String: Int]>([:])
        let maxSeen = Mutex<Int>(0)
    }

    @Test func serializesPerKey() async {
        let lock = KeyedAsyncLock()
        let counters = Counters()
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask {
                    let key = i % 2 == 0 ? "a" : "b"
                    await lock.withLock(key) {
                        let n = counters.inside.withLock { $0[key, default: 0] += 1; return $0[key]! }
                        counters.maxSeen.withLock { $0 = max($0, n) }
                        await Task.yield()
                        counters.inside.withLock { $0[key]! -= 1 }
                    }
                }
            }
        }
        #expect(counters.maxSeen.withLock { $0 } == 1)
    }
}
