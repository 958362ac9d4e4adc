import NIOCore
import RelayCore
import RelayProtocol
import RelayRedis
import Synchronization
import Testing

/// Several engines (nodes), each with its own `RedisBroker`, on one real redis-server, for
/// what only Redis does (pub/sub outages, its key layout); the properties every broker shares
/// are in `BrokerConformanceTests`.
final class RedisCluster: @unchecked Sendable {
    let server: RedisServerProcess
    let clock = ManualTestClock(1_700_000_000)
    let registry: InMemorySiteRegistry
    let site = Site(siteKey: "0123456789abcdef0123456789abcdef")
    let brokers: [RedisBroker]
    let nodes: [RelayEngine]
    private var running: [Task<Void, Never>] = []

    init(nodes count: Int = 2, options: RedisBroker.Options = .init()) async throws {
        server = try await RedisServerProcess()
        registry = InMemorySiteRegistry([site])
        var brokers: [RedisBroker] = [], nodes: [RelayEngine] = []
        for i in 0..<count {
            let broker = RedisBroker(server.configuration, options: options)
            var config = EngineConfiguration()
            config.clock = clock
            config.nodeID = "n\(i)"
            config.broker = broker
            brokers.append(broker)
            nodes.append(RelayEngine(registry: registry, configuration: config))
        }
        self.brokers = brokers
        self.nodes = nodes
        running = brokers.map { b in Task { await b.run() } }
        for b in brokers {
            var up = false
            for _ in 0..<300 where !up {
                up = b.isConnected
                if !up { try await Task.sleep(for: .milliseconds(10)) }
            }
            guard up else { throw RedisServerProcess.Failure(description: "broker did not connect") }
        }
    }

    func stop() async {
        for t in running { t.cancel() }
        for t in running { await t.value }
        server.stop()
    }

    func connect(_ node: Int) throws -> RelayConnection {
        try nodes[node].connect(ConnectionGrant.siteWide(siteID: site.siteID, userID: "1", expiresAt: Int64(clock.now()) + 300)).get()
    }

    func publish(_ node: Int, _ channel: String = "events", _ data: String = "{}", key: String? = nil) async throws -> PublishReceipt {
        try await nodes[node].publish(siteID: site.siteID, channel: channel, event: "e", data: Array(data.utf8), idempotencyKey: key).get()
    }
}

/// A clock the test moves (the engine's `RelayClock`).
final class ManualTestClock: RelayClock, @unchecked Sendable {
    private var value: Double
    init(_ start: Double) { value = start }
    func now() -> Double { value }
    func advance(_ seconds: Double) { value += seconds }
}

/// `message` frames a connection has received so far, waiting (up to 30 s: CI runs everything
/// at once on two cores) until there are `count`.
func messages(_ c: RelayConnection, count: Int, into seen: inout [String]) async -> [String] {
    for _ in 0..<3000 {
        for item in c.drain() {
            if case .frame(let f) = item, f.text.hasPrefix("{\"type\":\"message\"") { seen.append(f.text) }
        }
        if seen.count >= count { break }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return seen
}

func field(_ name: String, _ text: String) -> String? {
    guard let r = text.firstRange(of: "\"\(name)\":") else { return nil }
    let rest = text[r.upperBound...]
    if rest.first == "\"" { return String(rest.dropFirst().prefix { $0 != "\"" }) }
    return String(rest.prefix { $0.isNumber })
}

extension RealRedis {
@Suite(.timeLimit(.minutes(3)))
struct RedisBrokerTests {
    @Test(arguments: [true, false])
    func publicationsMissedDuringAPubSubOutageAreDelivered(catchUp: Bool) async throws {
        var options = RedisBroker.Options()
        options.client.reconnectBaseDelay = .milliseconds(400)  // an outage of 200-400 ms
        options.catchUpLimit = catchUp ? 1000 : 0
        let cl = try await RedisCluster(options: options)
        let a = try cl.connect(0)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        _ = try await cl.publish(1, "events", "{\"n\":1}")
        var seen: [String] = []
        #expect(await messages(a, count: 1, into: &seen).count == 1)
        _ = try await cl.brokers[1].client.query(RedisCommand("CLIENT", "KILL", "TYPE", "pubsub"))
        _ = try await cl.publish(1, "events", "{\"n\":2}")
        _ = try await cl.publish(1, "events", "{\"n\":3}")
        // Both nodes resubscribe after their backoff.
        for _ in 0..<300 where !(cl.brokers[0].isConnected && cl.brokers[1].isConnected) { try await Task.sleep(for: .milliseconds(10)) }
        if catchUp {
            let got = await messages(a, count: 3, into: &seen)
            #expect(got.map { field("offset", $0) } == ["1", "2", "3"])
            // and the node's ring is whole again: a recovery from offset 1 replays 2 and 3 here
            let c = try cl.connect(0)
            let out = await cl.nodes[0].subscribe(c, channels: ["events"], positions: ["events": StreamPosition(offset: 1, epoch: field("epoch", got[0])!)])
            #expect(out["events"] == .subscribed(position: StreamPosition(offset: 3, epoch: field("epoch", got[0])!), recovery: .recovered(replayed: 2)))
        } else {
            try await Task.sleep(for: .seconds(1))
            #expect(await messages(a, count: 3, into: &seen).count == 1, "without the catch-up the outage's publications never arrive")
        }
        await cl.stop()
    }

    /// Side channels (a Yjs room's node-to-node traffic): a frame reaches the other nodes'
    /// handlers, not its sender's; a name that is not ASCII works; after a pub/sub outage every
    /// handler hears `.resync`; after the last leave nothing more arrives.
    @Test func sideChannelsReachOtherNodesAndHearResync() async throws {
        let cl = try await RedisCluster()
        final class Heard: @unchecked Sendable {
            let events = Mutex<[String]>([])
            func add(_ e: SideChannelEvent) {
                events.withLock { list in
                    switch e {
                    case .message(let d): list.append("message:" + String(decoding: d, as: UTF8.self))
                    case .resync: list.append("resync")
                    }
                }
            }
            var all: [String] { events.withLock { $0 } }
        }
        let heardA = Heard(), heardB = Heard()
        let room = "site:s:yjs:café/1"
        try await cl.nodes[0].joinSideChannel(room) { heardA.add($0) }
        try await cl.nodes[1].joinSideChannel(room) { heardB.add($0) }
        try await cl.nodes[0].publishSide(room, data: Array("from a".utf8))
        for _ in 0..<1000 where heardB.all.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(heardB.all == ["message:from a"])
        #expect(heardA.all.isEmpty, "a node does not hear itself")
        _ = try await cl.brokers[0].client.query(RedisCommand("CLIENT", "KILL", "TYPE", "pubsub"))
        for _ in 0..<1000 where !(heardA.all.contains("resync") && heardB.all.contains("resync")) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(heardA.all == ["resync"] && heardB.all == ["message:from a", "resync"])
        await cl.nodes[1].leaveSideChannel(room)
        #expect(!cl.nodes[1].isOnSideChannel(room) && cl.nodes[0].isOnSideChannel(room))
        try await cl.nodes[0].publishSide(room, data: Array("again".utf8))
        try await Task.sleep(for: .milliseconds(300))
        #expect(heardB.all == ["message:from a", "resync"], "nothing after the last leave")
        await cl.stop()
    }

    @Test func connectionCountsAreClusterWide() async throws {
        let cl = try await RedisCluster()
        var conns: [RelayConnection] = []
        for _ in 0..<3 { conns.append(try cl.connect(0)) }
        for _ in 0..<2 { conns.append(try cl.connect(1)) }
        await cl.nodes[0].brokerMaintenance()
        await cl.nodes[1].brokerMaintenance()
        let total = try await cl.brokers[0].reportConnections(siteID: cl.site.siteID, node: "n0", count: 3, ttl: 60, now: cl.clock.now())
        #expect(total == 5)
        // A node that stops reporting stops counting after the TTL.
        cl.clock.advance(61)
        let later = try await cl.brokers[0].reportConnections(siteID: cl.site.siteID, node: "n0", count: 3, ttl: 60, now: cl.clock.now())
        #expect(later == 3)
        await cl.stop()
    }
}
}
