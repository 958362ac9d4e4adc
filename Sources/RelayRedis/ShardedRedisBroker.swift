import RelayCore
import RelayProtocol

/// Several Redis servers, each channel on one of them (issue 14, item 2): a channel's stream,
/// meta, idempotency keys, pub/sub channel and presence live on the shard its name hashes to,
/// so one channel's publish script stays atomic on one server. Connection counts of a site live
/// on the shard its id hashes to.
///
/// Shards are chosen by rendezvous (highest random weight) hashing of the shard's name
/// (`host:port/db`) and the channel's key: every node configured with the same set of shards,
/// in any order, picks the same shard for a channel, and adding or removing one shard moves
/// only the channels that hash to it (about 1/n). A channel that moves starts a new epoch on
/// its new shard (recovery across the change fails closed, as after a Redis restart).
public final class ShardedRedisBroker: RelayBroker, PresenceManager, Sendable {
    public let shards: [RedisBroker]
    private let names: [String]

    public struct DuplicateShard: Error, CustomStringConvertible {
        public let name: String
        public var description: String { "the Redis server \(name) is listed twice" }
    }

    /// `shards` must be distinct servers (or databases); at least one.
    public init(_ shards: [RedisBroker]) throws {
        precondition(!shards.isEmpty, "ShardedRedisBroker needs at least one shard")
        var seen: Set<String> = []
        for s in shards where !seen.insert(s.endpointName).inserted { throw DuplicateShard(name: s.endpointName) }
        self.shards = shards
        self.names = shards.map(\.endpointName)
    }

    /// The shard index for `key` among servers named `names` (rendezvous hashing).
    public static func shardIndex(for key: String, names: [String]) -> Int {
        var best = 0
        var bestScore: UInt64 = 0
        for (i, name) in names.enumerated() {
            let score = Self.score(name, key)
            if i == 0 || score > bestScore {
                best = i
                bestScore = score
            }
        }
        return best
    }

    /// FNV-1a over `name`, a 0 byte and `key`, finished with the splitmix64 mixer: stable across
    /// processes and versions (Swift's `Hasher` is seeded per process).
    static func score(_ name: String, _ key: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        h = (h ^ 0) &* 0x0000_0100_0000_01B3
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        h = (h ^ (h >> 30)) &* 0xbf58_476d_1ce4_e5b9
        h = (h ^ (h >> 27)) &* 0x94d0_49bb_1331_11eb
        return h ^ (h >> 31)
    }

    func shard(channelKey: String) -> RedisBroker { shards[Self.shardIndex(for: channelKey, names: names)] }
    func shard(channel: String) -> RedisBroker { shard(channelKey: ChannelName.exactKey(channel)) }

    public var capabilities: BrokerCapabilities { .multiNode }

    /// Runs every shard's connections until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for s in shards { group.addTask { await s.run() } }
        }
    }

    public func health() -> BrokerHealth {
        BrokerHealth(kind: "redis", endpoints: shards.flatMap { $0.health().endpoints })
    }

    /// Whether every shard's pub/sub connection is up.
    public var isConnected: Bool { shards.allSatisfy(\.isConnected) }

    public func attach(_ delegate: any BrokerDelegate) {
        for s in shards { s.attach(delegate) }
    }

    public func publish(_ request: BrokerPublishRequest) async throws -> BrokerPublishOutcome {
        try await shard(channelKey: request.channel.key).publish(request)
    }

    public func subscribe(channel: String) async throws { try await shard(channel: channel).subscribe(channel: channel) }

    public func unsubscribe(channel: String) async throws { try await shard(channel: channel).unsubscribe(channel: channel) }

    public func stream(channel: ChannelName, limit: Int) async throws -> BrokerStream {
        try await shard(channelKey: channel.key).stream(channel: channel, limit: limit)
    }

    public func claimOnce(key: String, ttlMs: Int64) async throws -> Bool {
        try await shards[Self.shardIndex(for: "\u{0}once:" + key, names: names)].claimOnce(key: key, ttlMs: ttlMs)
    }

    public func publishEphemeral(_ frame: BrokerEphemeral) async throws {
        try await shard(channelKey: frame.channel.key).publishEphemeral(frame)
    }

    public func setPresence(channel: String, memberID: String, state: [UInt8]?, ttl: Double, now: Double) async throws {
        try await shard(channel: channel).setPresence(channel: channel, memberID: memberID, state: state, ttl: ttl, now: now)
    }

    public func presence(channel: String, now: Double) async throws -> [PresenceMember] {
        try await shard(channel: channel).presence(channel: channel, now: now)
    }

    public func reportConnections(siteID: String, node: String, count: Int, ttl: Double, now: Double) async throws -> Int {
        try await shards[Self.shardIndex(for: "\u{0}connections:" + siteID, names: names)]
            .reportConnections(siteID: siteID, node: node, count: count, ttl: ttl, now: now)
    }
}
