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

/// The cross-node properties every broker must have are in `BrokerConformanceTests`
/// (RelayRedisTests: LocalBroker, InMemoryBroker and RedisBroker, one suite); these are
/// InMemoryBroker's own.
@Suite struct ClusterTests {
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

    /// A delegate may call the broker from a delivery (an engine publishing a reply, a network
    /// broker's callback thread): deliveries happen outside the hub's lock, still in order.
    @Test(.timeLimit(.minutes(1)))
    func deliveriesRunOutsideTheHubLockInOrder() async throws {
        final class Reentrant: BrokerDelegate, @unchecked Sendable {
            let hub: InMemoryBroker
            let seen = Mutex<[UInt64]>([])
            init(hub: InMemoryBroker) { self.hub = hub }
            func brokerDidDeliver(_ p: BrokerPublication) {
                hub.dropStream(channel: "unrelated")      // takes the hub's lock: would deadlock inside it
                seen.withLock { $0.append(p.position.offset) }
            }
            func brokerDidDeliverEphemeral(_ frame: BrokerEphemeral) {}
            func brokerDidResubscribe() {}
        }
        let hub = InMemoryBroker()
        let node = hub.node()
        let delegate = Reentrant(hub: hub)
        node.attach(delegate)
        try await node.subscribe(channel: "site:s:c")
        let name = ChannelName(full: "site:s:c", bare: "c")
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<100 {
                        _ = try? await node.publish(BrokerPublishRequest(channel: name, spelledChannel: "c", event: "e", payload: .json(Array("{}".utf8)),
                                                                         history: HistoryPolicy(), idempotencyKey: nil, idempotencyWindow: 0, time: 1))
                    }
                }
            }
        }
        #expect(delegate.seen.withLock { $0 } == Array(1...400))
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
