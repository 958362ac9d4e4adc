import RelayCore
import RelayProtocol
import RelayRedis
import Testing

/// Every broker implementation, one suite: what `RelayEngine`s promise their clients whatever
/// broker links them. `local` is the single-node `LocalBroker` (its "nodes" are one engine, so
/// cross-node checks hold trivially and crash checks do not apply); `inMemory` links engines in
/// one process and delivers outside its lock, as a network broker does; `redis` is
/// `RedisBroker` on a real redis-server; `redisSharded` is `ShardedRedisBroker` over two. Checks
/// wait for deliveries (up to 30 s) instead of assuming they are synchronous.
enum BrokerKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case local, inMemory, redis, redisSharded
    var testDescription: String { rawValue }
    /// Nodes are separate engines (a node can crash, a stream can be lost under it).
    var isMultiNode: Bool { self != .local }
    var isRedis: Bool { self == .redis || self == .redisSharded }
}

/// N engines on one broker of `kind`.
final class BrokerCluster: @unchecked Sendable {
    let kind: BrokerKind
    let clock = ManualTestClock(1_700_000_000)
    let registry: InMemorySiteRegistry
    let site = Site(siteKey: "0123456789abcdef0123456789abcdef")
    let nodes: [RelayEngine]
    private let hub: InMemoryBroker?
    private let redis: [RedisServerProcess]
    /// Every node's brokers (one per shard), for waiting until connected and for FLUSHALL.
    private let redisBrokers: [RedisBroker]
    private var running: [Task<Void, Never>] = []

    init(_ kind: BrokerKind, nodes count: Int = 2) async throws {
        self.kind = kind
        let registry = InMemorySiteRegistry([site])
        self.registry = registry
        var config = EngineConfiguration()
        config.clock = clock
        switch kind {
        case .local:
            hub = nil; redis = []; redisBrokers = []
            let engine = RelayEngine(registry: registry, configuration: config)
            nodes = Array(repeating: engine, count: count)
        case .inMemory:
            let hub = InMemoryBroker()
            self.hub = hub; redis = []; redisBrokers = []
            nodes = (0..<count).map { i in
                var c = config
                c.nodeID = "n\(i)"
                c.broker = hub.node()
                return RelayEngine(registry: registry, configuration: c)
            }
        case .redis, .redisSharded:
            hub = nil
            var servers: [RedisServerProcess] = []
            for _ in 0..<(kind == .redis ? 1 : 2) { servers.append(try await RedisServerProcess()) }
            redis = servers
            var all: [RedisBroker] = [], made: [RelayEngine] = []
            for i in 0..<count {
                let shards = servers.map { RedisBroker($0.configuration) }
                all += shards
                var c = config
                c.nodeID = "n\(i)"
                c.broker = kind == .redis ? shards[0] : try ShardedRedisBroker(shards)
                made.append(RelayEngine(registry: registry, configuration: c))
            }
            redisBrokers = all
            nodes = made
        }
        running = nodes.map { engine in Task { await engine.configuration.broker.run() } }
        for b in redisBrokers {
            var up = false
            for _ in 0..<3000 where !up {
                up = b.isConnected
                if !up { try await Task.sleep(for: .milliseconds(10)) }
            }
            guard up else { throw RedisServerProcess.Failure(description: "broker did not connect") }
        }
    }

    func stop() async {
        for t in running { t.cancel() }
        for t in running { await t.value }
        for r in redis { r.stop() }
    }

    func connect(_ node: Int) throws -> RelayConnection {
        try nodes[node].connect(ConnectionGrant.siteWide(siteID: site.siteID, userID: "1", expiresAt: Int64(clock.now()) + 300)).get()
    }

    func publish(_ node: Int, _ channel: String = "events", _ data: String = "{}", key: String? = nil) async throws -> PublishReceipt {
        try await nodes[node].publish(siteID: site.siteID, channel: channel, event: "e", data: Array(data.utf8), idempotencyKey: key).get()
    }

    /// What a broker restart without persistence does to a channel's stream.
    func loseStream(_ channel: String) async throws {
        switch kind {
        case .local: Issue.record("a local stream cannot be lost under a running engine")
        case .inMemory: hub?.dropStream(channel: "site:\(site.siteID):\(channel)")
        case .redis, .redisSharded:
            for b in redisBrokers { _ = try await b.client.query(RedisCommand("FLUSHALL")) }
        }
    }

    /// Message frames `c` receives, waiting until there are `count` (or 30 s).
    func messages(_ c: RelayConnection, _ count: Int) async -> [String] {
        var seen: [String] = []
        return await RelayRedisTests.messages(c, count: count, into: &seen)
    }

    /// Message frames that arrive within a short wait (for "nothing more arrives" checks).
    func settle(_ c: RelayConnection) async -> [String] {
        try? await Task.sleep(for: .milliseconds(kind.isRedis ? 300 : 20))
        return c.drain().compactMap { item in
            if case .frame(let f) = item, f.text.hasPrefix("{\"type\":\"message\"") { return f.text }
            return nil
        }
    }
}

/// The broker seams every implementation must honour. Runs the Redis cases one at a time
/// (`.serialized`) beside the other Redis suites.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct BrokerConformanceTests {
    static let kinds: [BrokerKind] = RedisServerProcess.enabled ? BrokerKind.allCases : [.local, .inMemory]

    /// Sharded: the channels of these tests spread over both servers (else the sharded case
    /// would test one shard), and every node picks the same shard.
    @Test func shardingSpreadsChannelsAndMovesFewWhenAShardIsAdded() {
        let keys = (0..<10_000).map { "site:abc:ch\($0)" }
        let two = ["10.0.0.1:6379/0", "10.0.0.2:6379/0"], three = two + ["10.0.0.3:6379/0"]
        let onTwo = keys.map { ShardedRedisBroker.shardIndex(for: $0, names: two) }
        let onThree = keys.map { ShardedRedisBroker.shardIndex(for: $0, names: three) }
        let share = onTwo.filter { $0 == 0 }.count
        #expect((4_700...5_300).contains(share), "\(share) of 10,000 on the first of two shards")
        let moved = zip(onTwo, onThree).filter { $0 != $1 }.count
        #expect((3_000...3_700).contains(moved), "adding a third shard moved \(moved) of 10,000 channels (1/3 expected)")
        #expect(zip(onTwo, onThree).allSatisfy { $0 == $1 || $1 == 2 }, "a channel only moves to the new shard")
        // Order of the list does not matter.
        #expect(keys.prefix(500).allSatisfy { ShardedRedisBroker.shardIndex(for: $0, names: two) == 1 - ShardedRedisBroker.shardIndex(for: $0, names: two.reversed()) })
        // The channels the tests below use (on loopback, ports vary) are not all on one shard.
        let site = Site(siteKey: "0123456789abcdef0123456789abcdef").siteID
        let used = ["events", "carts", "room"].map { "site:\(site):\($0)" }
        #expect(Set(used.map { ShardedRedisBroker.shardIndex(for: $0, names: two) }).count == 2)
    }

    @Test(arguments: kinds)
    func theSynchronousPathExistsOnlyForAnInProcessBroker(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind, nodes: 1)
        #expect((cl.nodes[0].synchronous != nil) == (kind == .local))
        #expect(cl.nodes[0].configuration.broker.capabilities.contains(.inProcess) == (kind == .local))
        #expect(cl.nodes[0].configuration.broker.capabilities.contains(.multiNode) == kind.isMultiNode)
        await cl.stop()
    }

    @Test(arguments: kinds)
    func publicationsReachEveryNodeWithOnePositionAndOneOrder(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        let a = try cl.connect(0), b = try cl.connect(1)
        #expect(await cl.nodes[0].subscribe(a, channels: ["events"])["events"]?.isSubscribed == true)
        let full = "site:\(cl.site.siteID):events"
        #expect(await cl.nodes[1].subscribe(b, channels: [full])[full]?.isSubscribed == true)
        _ = a.drain(); _ = b.drain()
        let nodes = cl.nodes, siteID = cl.site.siteID
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<2 {
                group.addTask {
                    for i in 0..<150 {
                        _ = await nodes[n].publish(siteID: siteID, channel: "events", event: "e", data: Array("{\"n\":\(n),\"i\":\(i)}".utf8))
                    }
                }
            }
        }
        let ma = await cl.messages(a, 300), mb = await cl.messages(b, 300)
        #expect(ma.count == 300)
        #expect(ma.map { field("offset", $0) } == mb.map { field("offset", $0) }, "both nodes deliver one order")
        #expect(ma.map { field("data", $0) } == mb.map { field("data", $0) })
        #expect(ma.map { field("offset", $0).flatMap { Int($0) } } == Array(1...300).map { Optional($0) })
        #expect(Set(ma.compactMap { field("epoch", $0) }).count == 1)
        let extraA = await cl.settle(a), extraB = await cl.settle(b)
        #expect(extraA.isEmpty && extraB.isEmpty, "each publication exactly once")
        await cl.stop()
    }

    @Test(arguments: kinds)
    func recoversOnAnotherNodeFromTheSharedStream(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind, nodes: 3)
        let a = try cl.connect(0)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        for i in 1...3 { _ = try await cl.publish(1, "events", "{\"i\":\(i)}") }
        let first = await cl.messages(a, 3)
        let last = StreamPosition(offset: UInt64(field("offset", first[2])!)!, epoch: field("epoch", first[2])!)
        cl.nodes[0].disconnect(a)
        for i in 4...6 { _ = try await cl.publish(1, "events", "{\"i\":\(i)}") }
        // Node 2 never had this channel: it seeds its ring from the broker's stream.
        let c = try cl.connect(2)
        let out = await cl.nodes[2].subscribe(c, channels: ["events"], positions: ["events": last])
        #expect(out["events"] == .subscribed(position: StreamPosition(offset: 6, epoch: last.epoch), recovery: .recovered(replayed: 3)))
        _ = try await cl.publish(0, "events", "{\"i\":7}")
        let frames = await cl.messages(c, 4)
        #expect(frames.map { field("offset", $0) } == ["4", "5", "6", "7"])
        #expect(frames.allSatisfy { $0.contains("\"data\":{\"i\":\(field("offset", $0)!)}") })
        await cl.stop()
    }

    @Test(arguments: kinds.filter(\.isMultiNode))
    func aLostStreamStartsANewEpochAndRecoveryFailsClosed(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        let a = try cl.connect(0)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        let first = try await cl.publish(0)
        try await cl.loseStream("events")
        let second = try await cl.publish(1)
        #expect(second.position.epoch != first.position.epoch && second.position.offset == 1)
        #expect(await cl.messages(a, 2).map { field("epoch", $0) } == [first.position.epoch, second.position.epoch])
        for node in 0..<2 {
            let c = try cl.connect(node)
            let out = await cl.nodes[node].subscribe(c, channels: ["events"], positions: ["events": first.position])
            #expect(out["events"] == .subscribed(position: second.position, recovery: .failed(.epochChanged)))
            #expect(await cl.settle(c).isEmpty, "nothing replayed across an epoch change")
        }
        await cl.stop()
    }

    /// A key claimed on one node (a signed request's nonce) is refused on every node until it expires.
    @Test(arguments: kinds)
    func claimsHoldAcrossNodes(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        let b0 = cl.nodes[0].configuration.broker, b1 = cl.nodes[1].configuration.broker
        #expect(try await b0.claimOnce(key: "n.site.nonce-1", ttlMs: 400))
        if kind.isMultiNode {
            #expect(try await b1.claimOnce(key: "n.site.nonce-1", ttlMs: 400) == false)
            #expect(try await b0.claimOnce(key: "n.site.nonce-1", ttlMs: 400) == false)
            #expect(try await b1.claimOnce(key: "n.site.nonce-2", ttlMs: 400))
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await b1.claimOnce(key: "n.site.nonce-1", ttlMs: 400), "free again after its time")
        }
        await cl.stop()
    }

    @Test(arguments: kinds)
    func idempotencyKeysHoldAcrossNodes(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        let a = try cl.connect(1)
        _ = await cl.nodes[1].subscribe(a, channels: ["events"]); _ = a.drain()
        let r1 = try await cl.publish(0, key: "k")
        let r2 = try await cl.publish(1, key: "k")
        #expect(!r1.duplicate && r2.duplicate && r2.position == r1.position)
        _ = try await cl.publish(0, key: "other")
        #expect(await cl.messages(a, 2).map { field("offset", $0) } == ["1", "2"])
        #expect(await cl.settle(a).isEmpty)
        await cl.stop()
    }

    @Test(arguments: kinds)
    func presenceSpansNodes(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        let shopper = try cl.connect(0), other = try cl.connect(0), staff = try cl.connect(1)
        // A member on node 0 that does not subscribe (ShopSocket shoppers).
        #expect(await cl.nodes[0].setPresence(shopper, channel: "carts", state: Array("{\"cart\":1}".utf8)) == .success(.joined))
        _ = await cl.nodes[1].subscribe(staff, channels: ["carts"])
        #expect(await cl.messages(staff, 1) == ["{\"type\":\"message\",\"channel\":\"carts\",\"event\":\"wps.presence\",\"data\":{\"action\":\"sync\",\"members\":[{\"id\":\"\(shopper.presenceID)\",\"state\":{\"cart\":1}}]}}"])
        if kind.isMultiNode { #expect(shopper.presenceID.hasPrefix("n0-") && staff.presenceID.hasPrefix("n1-")) }

        #expect(await cl.nodes[0].setPresence(other, channel: "carts", state: Array("{}".utf8)) == .success(.joined))
        #expect(await cl.messages(staff, 1).map { $0.contains("\"action\":\"join\",\"id\":\"\(other.presenceID)\"") } == [true])
        #expect(await cl.nodes[1].presenceCount(siteID: cl.site.siteID, channel: "carts") == 2)

        #expect(await cl.nodes[0].setPresence(other, channel: "carts", state: nil) == .success(.left))
        #expect(await cl.messages(staff, 1).map { $0.contains("\"action\":\"leave\",\"id\":\"\(other.presenceID)\"") } == [true])

        // A disconnect on node 0 reaches node 1 (at once on one node, with the next maintenance pass across nodes).
        cl.nodes[0].disconnect(shopper)
        await cl.nodes[0].brokerMaintenance()
        #expect(await cl.messages(staff, 1).map { $0.contains("\"action\":\"leave\",\"id\":\"\(shopper.presenceID)\"") } == [true])
        #expect(await cl.nodes[1].presence(siteID: cl.site.siteID, channel: "carts").isEmpty)
        #expect(await cl.settle(staff).isEmpty)
        await cl.stop()
    }

    @Test(arguments: kinds.filter(\.isMultiNode))
    func membersOfACrashedNodeExpireUnlessRefreshed(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        let a = try cl.connect(0), b = try cl.connect(1)
        #expect(await cl.nodes[0].setPresence(a, channel: "room", state: Array("1".utf8)) == .success(.joined))
        #expect(await cl.nodes[1].setPresence(b, channel: "room", state: Array("2".utf8)) == .success(.joined))
        #expect(await cl.nodes[0].presenceCount(siteID: cl.site.siteID, channel: "room") == 2)
        cl.clock.advance(50)
        await cl.nodes[1].brokerMaintenance()          // node 1 refreshes; node 0 is "dead"
        cl.clock.advance(20)
        #expect(await cl.nodes[1].presence(siteID: cl.site.siteID, channel: "room").map(\.id) == [b.presenceID])
        await cl.stop()
    }

    @Test(arguments: kinds)
    func theSiteConnectionLimitIsTheClusterTotal(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        var limited = cl.site
        limited.limits.maxConnections = 3
        cl.registry.upsert(limited)
        let watcher = try cl.connect(1)
        _ = await cl.nodes[1].subscribe(watcher, channels: ["wps:connections"])
        let watcher0 = try cl.connect(0)
        _ = await cl.nodes[0].subscribe(watcher0, channels: ["wps:connections"])
        _ = await cl.settle(watcher)
        _ = await cl.settle(watcher0)
        _ = try cl.connect(0)
        cl.clock.advance(2)
        for n in [0, 1, 0] { await cl.nodes[n].brokerMaintenance() }
        for n in 0..<2 { cl.nodes[n].tick() }
        #expect(cl.nodes[0].stats(siteID: cl.site.siteID)?.activeConnections == 3)
        #expect(cl.nodes[1].stats(siteID: cl.site.siteID)?.activeConnections == 3)
        let over = cl.nodes[0].connect(ConnectionGrant.siteWide(siteID: cl.site.siteID, userID: "1", expiresAt: Int64(cl.clock.now()) + 300))
        guard case .failure(let refusal) = over else { Issue.record("a fourth connection was admitted"); return }
        #expect(refusal.code == .connectionLimit)
        let events = await cl.settle(watcher)
        #expect(events.last?.contains("{\"active_connections\":3,\"max_connections\":3}") == true, "\(events)")
        // One wps:connections stream for the cluster: both nodes' subscribers see the same
        // events at the same positions (before: each node published its own, with its own offsets).
        let events0 = await cl.settle(watcher0)
        #expect(!events.isEmpty && events0 == events, "node 0: \(events0)\nnode 1: \(events)")
        if kind.isMultiNode {
            // Node 0 stops reporting (crash): its connections stop counting after the TTL.
            cl.clock.advance(61)
            await cl.nodes[1].brokerMaintenance()
            #expect(cl.nodes[1].stats(siteID: cl.site.siteID)?.activeConnections == 1)
        }
        await cl.stop()
    }

    @Test(arguments: kinds)
    func interestReleasedThenRegainedRecoversFromTheBroker(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        let a = try cl.connect(0)
        _ = await cl.nodes[0].subscribe(a, channels: ["events"])
        let p1 = try await cl.publish(1)
        #expect(await cl.messages(a, 1).count == 1)
        cl.nodes[0].unsubscribe(a, channels: ["events"])
        #expect(await cl.nodes[0].releaseIdleBrokerInterest() == (kind.isMultiNode ? 1 : 0))
        for _ in 0..<3 { _ = try await cl.publish(1) }       // node 0 hears none of these
        _ = await cl.settle(a)
        let out = await cl.nodes[0].subscribe(a, channels: ["events"], positions: ["events": p1.position])
        #expect(out["events"] == .subscribed(position: StreamPosition(offset: 4, epoch: p1.position.epoch), recovery: .recovered(replayed: 3)))
        #expect(await cl.messages(a, 3).map { field("offset", $0) } == ["2", "3", "4"])
        await cl.stop()
    }

    @Test(arguments: kinds)
    func concurrentSubscribeAndReleaseNeverLoseTheSubscription(kind: BrokerKind) async throws {
        let cl = try await BrokerCluster(kind)
        let node = cl.nodes[0]
        for round in 0..<(kind.isRedis ? 20 : 50) {
            let c = try cl.connect(0)
            async let sub = node.subscribe(c, channels: ["events"])
            async let rel = node.releaseIdleBrokerInterest()
            _ = await (sub, rel)
            _ = c.drain()
            _ = try await cl.publish(1, "events", "{\"r\":\(round)}")
            #expect(await cl.messages(c, 1).count == 1, "round \(round)")
            node.disconnect(c)
            _ = await node.releaseIdleBrokerInterest()
        }
        await cl.stop()
    }
}
