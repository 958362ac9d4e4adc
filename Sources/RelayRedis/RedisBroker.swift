import Logging
import NIOCore
import NIOPosix
import RelayCore
import RelayProtocol
#if !RELAY_TSAN
import Synchronization
#endif

/// `RelayBroker` on one Redis server (issue 14): every node publishes through one Lua script that
/// assigns the channel's position (one epoch and offset sequence whichever node publishes),
/// appends to the channel's Redis Stream and `PUBLISH`es to the channel's pub/sub channel, which
/// every node with interest is subscribed to on its dedicated connection.
///
/// Keys (`prefix` defaults to `relay`; `{ch}` is the channel's full name, `{site}` the site id):
///
/// | key | type | holds |
/// |---|---|---|
/// | `{prefix}.m.{ch}` | hash | `e` epoch, `s` last offset; created with a new epoch (and the stream deleted) when missing |
/// | `{prefix}.s.{ch}` | stream | one entry per retained publication: `o` offset, `d` the encoded publication; trimmed to the history's count (`MAXLEN`) and age (`MINID`, by Redis's clock) |
/// | `{prefix}.i.{ch}.{key}` | string | `offset:epoch` of an idempotent publish, for the idempotency window (`PX`) |
/// | `{prefix}.c.{ch}` | pub/sub channel | `p{offset}:{epoch}\n{publication}` and `e{ephemeral frame}` |
/// | `{prefix}.pd.{ch}`, `{prefix}.pe.{ch}` | hash, sorted set | presence: member → state, member → expiry |
/// | `{prefix}.cd.{site}`, `{prefix}.ce.{site}` | hash, sorted set | connections: node → count, node → expiry |
/// | `{prefix}.once.{key}` | string | a claimed signed-request nonce (`claimOnce`), for the signature window (`PX`) |
///
/// Invariants: a position is assigned only inside the script, so offsets of a channel are
/// contiguous and in `PUBLISH` order, which is the order every subscriber receives them in;
/// a lost meta hash (Redis restarted without persistence) starts a new epoch and drops the old
/// stream, so recovery against the old epoch fails closed. History is trimmed by count and age,
/// not by bytes. After a pub/sub outage each channel's retained tail is delivered again (the
/// engine keeps what it lacks). Not yet here: Redis Cluster hash tags, sharding over several
/// servers.
public final class RedisBroker: RelayBroker, PresenceManager, Sendable {
    public struct Options: Sendable {
        public var prefix = "relay"
        public var client = RedisClient.Options()
        /// After the pub/sub connection comes back, each channel's retained tail is read (up to
        /// this many publications) and what this node missed is delivered, in order.
        public var catchUpLimit = 1000
        public init() {}
    }

    private final class Router: Sendable {
        struct Weak { weak var value: (any BrokerDelegate)? }
        let delegate = Mutex(Weak())
        let logger: Logger
        init(logger: Logger) { self.logger = logger }

        /// Set by the broker: what to do after a resubscription.
        let onResubscribed = Mutex<(@Sendable () -> Void)?>(nil)
        /// Resubscriptions after an outage, since start.
        let reconnects = Mutex<Int>(0)

        func handle(_ event: RedisSubscriber.Event) {
            guard case .message(_, let payload, _) = event else {
                logger.notice("redis pub/sub: \(event)")
                if case .resubscribed = event {
                    reconnects.withLock { $0 += 1 }
                    if let catchUp = onResubscribed.withLock({ $0 }) { catchUp() }
                    delegate.withLock { $0.value }?.brokerDidResubscribe()
                }
                return
            }
            guard let d = delegate.withLock({ $0.value }) else { return }
            do {
                switch try BrokerCodec.decodeMessage(payload) {
                case .publication(let p): d.brokerDidDeliver(p)
                case .ephemeral(let e): d.brokerDidDeliverEphemeral(e)
                }
            } catch {
                logger.warning("redis pub/sub: undecodable message dropped", metadata: ["error": "\(error)"])
            }
        }
    }

    public let options: Options
    public let client: RedisClient
    public let subscriber: RedisSubscriber
    private let router: Router
    /// Full names of the channels this node has interest in (for the catch-up after an outage).
    private let interest = Mutex<Set<String>>([])
    /// Catch-ups in progress, so `run` waits for them (structured: they end with it).
    private let catchUps = Mutex<[Task<Void, Never>]>([])

    public init(_ configuration: RedisConfiguration, options: Options = Options(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "relay.broker.redis")) {
        self.options = options
        let router = Router(logger: logger)
        self.router = router
        self.client = RedisClient(configuration, options: options.client, eventLoopGroup: eventLoopGroup, logger: logger)
        self.subscriber = RedisSubscriber(configuration, options: options.client, eventLoopGroup: eventLoopGroup, logger: logger,
                                          onEvent: { router.handle($0) })
        router.onResubscribed.withLock { $0 = { [weak self] in self?.startCatchUp() } }
    }

    /// Publications made while the pub/sub connection was down never reach this node by pub/sub.
    /// Reads every channel's retained tail and delivers it: the engine skips what it already has
    /// (by offset) and delivers the rest in order; a tail that does not reach back to what the
    /// node had shows as a gap, and the node's ring is forgotten (recovery fails closed).
    private func startCatchUp() {
        let task = Task { await self.catchUp() }
        catchUps.withLock { tasks in
            tasks.removeAll { $0.isCancelled }
            tasks.append(task)
        }
    }

    func catchUp() async {
        let channels = interest.withLock { Array($0) }
        guard let delegate = router.delegate.withLock({ $0.value }) else { return }
        var delivered = 0
        for full in channels {
            guard !Task.isCancelled else { return }
            guard full.hasPrefix("site:"), let colon = full.dropFirst(5).firstIndex(of: ":") else { continue }
            let site = String(full[full.index(full.startIndex, offsetBy: 5)..<colon])
            guard case .success(let name) = ChannelName.resolve(full, siteID: site),
                  let tail = try? await stream(channel: name, limit: options.catchUpLimit) else { continue }
            for p in tail.publications { delegate.brokerDidDeliver(p) }
            delivered += tail.publications.count
        }
        router.logger.notice("redis pub/sub: caught up after an outage", metadata: ["channels": "\(channels.count)", "read": "\(delivered)"])
    }

    /// Holds the pub/sub connection until the task is cancelled (run it beside the engine).
    public func run() async {
        await subscriber.run()
        let pending = catchUps.withLock { tasks in
            defer { tasks.removeAll() }
            return tasks
        }
        for t in pending { t.cancel(); await t.value }
        await client.close()
    }

    public var capabilities: BrokerCapabilities { .multiNode }

    /// `host:port/db` of the server (no credentials).
    public var endpointName: String {
        "\(client.configuration.host):\(client.configuration.port)/\(client.configuration.database)"
    }

    public func health() -> BrokerHealth {
        BrokerHealth(kind: "redis", endpoints: [.init(name: endpointName, connected: isConnected,
                                                      reconnects: router.reconnects.withLock { $0 })])
    }

    /// Whether the pub/sub connection is up (subscriptions fail while it is not).
    public var isConnected: Bool { subscriber.isConnected }

    private func key(_ kind: String, _ name: String) -> RESPArgument { .string("\(options.prefix).\(kind).\(name)") }

    public func attach(_ delegate: any BrokerDelegate) {
        router.delegate.withLock { $0 = Router.Weak(value: delegate) }
    }

    public func publish(_ r: BrokerPublishRequest) async throws -> BrokerPublishOutcome {
        let ch = r.channel.key
        let data = BrokerCodec.encode(r)
        let idempotency: RESPArgument = r.idempotencyKey.map { key("i", "\(ch).\($0)") } ?? .string("")
        let reply = try await client.evaluate(Scripts.publish,
                                              keys: [key("s", ch), key("m", ch), idempotency, key("c", ch)],
                                              arguments: [.buffer(data), .integer(Int64(max(0, r.history.maxPublications))),
                                                          .integer(Int64(max(0, r.history.maxAge) * 1000)), .string(Self.newEpoch()),
                                                          .integer(max(1, Int64(r.idempotencyWindow * 1000)))]).get()
        guard let items = reply.elements, items.count == 2, let flag = items[0].integer, let text = items[1].string,
              let position = BrokerCodec.position(text) else {
            if case .error(let e) = reply { throw RedisError.server(e) }
            throw RedisError.server(RedisServerError("ERR publish script: unexpected reply \(reply)"))
        }
        return flag == 1 ? .published(position) : .duplicate(position)
    }

    /// `SET {prefix}.once.{key} 1 NX PX ttl`: OK the first time, nil while the key lives.
    public func claimOnce(key name: String, ttlMs: Int64) async throws -> Bool {
        let reply = try await client.query(RedisCommand("SET", key("once", name), "1", "NX", "PX", .integer(max(1, ttlMs))))
        if case .null = reply { return false }
        return true
    }

    public func publishEphemeral(_ frame: BrokerEphemeral) async throws {
        _ = try await client.query(RedisCommand("PUBLISH", key("c", frame.channel.key), .buffer(BrokerCodec.encode(frame))))
    }

    public func subscribe(channel: String) async throws {
        interest.withLock { _ = $0.insert(channel) }
        try await subscriber.subscribe(["\(options.prefix).c.\(ChannelName.exactKey(channel))"]).get()
    }

    public func unsubscribe(channel: String) async throws {
        interest.withLock { _ = $0.remove(channel) }
        try await subscriber.unsubscribe(["\(options.prefix).c.\(ChannelName.exactKey(channel))"]).get()
    }

    public func stream(channel: ChannelName, limit: Int) async throws -> BrokerStream {
        let ch = channel.key
        let reply = try await client.evaluate(Scripts.stream, keys: [key("s", ch), key("m", ch)],
                                              arguments: [.string(Self.newEpoch()), .integer(Int64(max(0, limit)))]).get()
        if case .error(let e) = reply { throw RedisError.server(e) }
        guard let items = reply.elements, items.count == 3, let epoch = items[0].string,
              let top = items[1].string.flatMap(UInt64.init), let entries = items[2].elements else {
            throw RedisError.server(RedisServerError("ERR stream script: unexpected reply \(reply)"))
        }
        var publications: [BrokerPublication] = []
        for entry in entries.reversed() {
            guard let parts = entry.elements, parts.count == 2, let fields = parts[1].elements, fields.count == 4,
                  let offset = fields[1].string.flatMap(UInt64.init), case .bulkString(let data) = fields[3] else { continue }
            if let p = try? BrokerCodec.decodePublication(data, position: StreamPosition(offset: offset, epoch: epoch)) {
                publications.append(p)
            }
        }
        return BrokerStream(publications: publications, position: StreamPosition(offset: top, epoch: epoch))
    }

    public func setPresence(channel: String, memberID: String, state: [UInt8]?, ttl: Double, now: Double) async throws {
        let ch = ChannelName.exactKey(channel)
        let reply = try await client.evaluate(Scripts.setPresence, keys: [key("pd", ch), key("pe", ch)],
                                              arguments: [.string(memberID), .string(state == nil ? "0" : "1"), .bytes(state ?? []),
                                                          .string(String(now + ttl)), .string(String(now)), .integer(Int64(ttl.rounded(.up)) + 1)]).get()
        if case .error(let e) = reply { throw RedisError.server(e) }
    }

    public func presence(channel: String, now: Double) async throws -> [PresenceMember] {
        let ch = ChannelName.exactKey(channel)
        let reply = try await client.evaluate(Scripts.presence, keys: [key("pd", ch), key("pe", ch)], arguments: [.string(String(now))]).get()
        if case .error(let e) = reply { throw RedisError.server(e) }
        guard let flat = reply.elements else { return [] }
        var members: [PresenceMember] = []
        var i = 0
        while i + 1 < flat.count {
            if let id = flat[i].string, let state = flat[i + 1].bytes { members.append(PresenceMember(id: id, state: state)) }
            i += 2
        }
        return members.sorted { $0.id < $1.id }
    }

    public func reportConnections(siteID: String, node: String, count: Int, ttl: Double, now: Double) async throws -> Int {
        let reply = try await client.evaluate(Scripts.connections, keys: [key("cd", siteID), key("ce", siteID)],
                                              arguments: [.string(node), .integer(Int64(count)), .string(String(now + ttl)),
                                                          .string(String(now)), .integer(Int64(ttl.rounded(.up)) + 1)]).get()
        if case .error(let e) = reply { throw RedisError.server(e) }
        guard let total = reply.integer else { throw RedisError.server(RedisServerError("ERR connections script: \(reply)")) }
        return Int(total)
    }

    /// The engine's epoch format, so an epoch minted here looks like a single node's.
    static func newEpoch() -> String { RelayEngine.newEpoch() }

    /// The Lua scripts (run by `EVALSHA`; see the key table above).
    enum Scripts {
        /// KEYS: stream, meta, idempotency key or "", pub/sub channel.
        /// ARGV: publication, max entries, max age ms, a new epoch, idempotency window ms.
        /// Returns {1, "offset:epoch"} or, for a duplicate, {0, "offset:epoch"}.
        static let publish = """
        if KEYS[3] ~= '' then
          local prior = redis.call('GET', KEYS[3])
          if prior then return {0, prior} end
        end
        local epoch = redis.call('HGET', KEYS[2], 'e')
        if not epoch then
          epoch = ARGV[4]
          redis.call('DEL', KEYS[1])
          redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
        end
        local offset = redis.call('HINCRBY', KEYS[2], 's', 1)
        local position = offset .. ':' .. epoch
        if tonumber(ARGV[2]) > 0 then
          redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'o', offset, 'd', ARGV[1])
          local maxAge = tonumber(ARGV[3])
          if maxAge > 0 then
            local t = redis.call('TIME')
            local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - maxAge
            if minid > 0 then redis.call('XTRIM', KEYS[1], 'MINID', minid) end
          end
        end
        if KEYS[3] ~= '' then redis.call('SET', KEYS[3], position, 'PX', ARGV[5]) end
        redis.call('PUBLISH', KEYS[4], 'p' .. position .. '\\n' .. ARGV[1])
        return {1, position}
        """

        /// KEYS: stream, meta. ARGV: a new epoch, limit. Returns {epoch, top offset, entries newest first}.
        static let stream = """
        local epoch = redis.call('HGET', KEYS[2], 'e')
        if not epoch then
          epoch = ARGV[1]
          redis.call('DEL', KEYS[1])
          redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
        end
        local top = redis.call('HGET', KEYS[2], 's')
        local entries = {}
        if tonumber(ARGV[2]) > 0 then entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[2]) end
        return {epoch, top, entries}
        """

        /// KEYS: members hash, expiry set. ARGV: member, "1" set / "0" remove, state, expires at, now, key ttl s.
        static let setPresence = """
        local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
        for _, m in ipairs(dead) do redis.call('HDEL', KEYS[1], m) end
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
        if ARGV[2] == '1' then
          redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
          redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
          redis.call('EXPIRE', KEYS[1], ARGV[6])
          redis.call('EXPIRE', KEYS[2], ARGV[6])
        else
          redis.call('HDEL', KEYS[1], ARGV[1])
          redis.call('ZREM', KEYS[2], ARGV[1])
        end
        return 1
        """

        /// KEYS: members hash, expiry set. ARGV: now. Returns the live members as a flat list.
        static let presence = """
        local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
        for _, m in ipairs(dead) do redis.call('HDEL', KEYS[1], m) end
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
        return redis.call('HGETALL', KEYS[1])
        """

        /// KEYS: counts hash, expiry set. ARGV: node, count, expires at, now, key ttl s. Returns the total.
        static let connections = """
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
        local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
        for _, n in ipairs(dead) do redis.call('HDEL', KEYS[1], n) end
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
        redis.call('EXPIRE', KEYS[1], ARGV[5])
        redis.call('EXPIRE', KEYS[2], ARGV[5])
        local total = 0
        for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
        return total
        """
    }
}

/// The broker's own binary layout of publications and ephemeral frames (version 1): strings and
/// byte arrays as a 32-bit length and the bytes; the channel travels as site id and bare name.
enum BrokerCodec {
    struct Malformed: Error {}

    enum Message {
        case publication(BrokerPublication)
        case ephemeral(BrokerEphemeral)
    }

    static func siteID(_ name: ChannelName) -> String {
        // full = "site:{siteID}:{bare}"
        String(name.full.utf8.dropFirst(5).dropLast(name.bare.utf8.count + 1))!
    }

    private static func write(_ s: String, _ b: inout ByteBuffer) {
        b.writeInteger(UInt32(s.utf8.count))
        b.writeString(s)
    }

    private static func write(_ bytes: [UInt8], _ b: inout ByteBuffer) {
        b.writeInteger(UInt32(bytes.count))
        b.writeBytes(bytes)
    }

    private static func readString(_ b: inout ByteBuffer) throws -> String {
        guard let n = b.readInteger(as: UInt32.self), let s = b.readString(length: Int(n)) else { throw Malformed() }
        return s
    }

    private static func readBytes(_ b: inout ByteBuffer) throws -> [UInt8] {
        guard let n = b.readInteger(as: UInt32.self), let s = b.readBytes(length: Int(n)) else { throw Malformed() }
        return s
    }

    /// A site channel travels as its site id and bare name; a side channel (`side:{key}`, the
    /// engine's node-to-node traffic) as an empty site id and its key.
    private static func channel(_ b: inout ByteBuffer) throws -> ChannelName {
        let site = try readString(&b), bare = try readString(&b)
        if site.isEmpty {
            guard !bare.isEmpty else { throw Malformed() }
            return ChannelName.side(bare)
        }
        guard case .success(let name) = ChannelName.resolve(bare, siteID: site) else { throw Malformed() }
        return name
    }

    private static func writeChannel(_ name: ChannelName, _ b: inout ByteBuffer) {
        if name.full.hasPrefix("side:") {
            write("", &b)
            write(String(name.full.dropFirst(5)), &b)
        } else {
            write(siteID(name), &b)
            write(name.bare, &b)
        }
    }

    static func encode(_ r: BrokerPublishRequest) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(UInt8(1))
        writeChannel(r.channel, &b)
        write(r.spelledChannel, &b)
        write(r.event, &b)
        switch r.payload {
        case .json(let bytes): b.writeInteger(UInt8(0)); write(bytes, &b)
        case .binary(let bytes): b.writeInteger(UInt8(1)); write(bytes, &b)
        }
        b.writeInteger(r.time.bitPattern)
        return b
    }

    static func decodePublication(_ data: ByteBuffer, position: StreamPosition) throws -> BrokerPublication {
        var b = data
        guard b.readInteger(as: UInt8.self) == 1 else { throw Malformed() }
        let name = try channel(&b)
        let spelled = try readString(&b), event = try readString(&b)
        let kind = b.readInteger(as: UInt8.self)
        let bytes = try readBytes(&b)
        guard let bits = b.readInteger(as: UInt64.self), kind == 0 || kind == 1 else { throw Malformed() }
        return BrokerPublication(channel: name, spelledChannel: spelled, event: event, payload: kind == 0 ? .json(bytes) : .binary(bytes),
                                 position: position, time: Double(bitPattern: bits))
    }

    static func encode(_ e: BrokerEphemeral) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeString("e")
        b.writeInteger(UInt8(1))
        writeChannel(e.channel, &b)
        write(e.spelledChannel, &b)
        write(e.event, &b)
        write(e.data, &b)
        write(e.originNode, &b)
        b.writeInteger(UInt8(e.skipOrigin ? 1 : 0))
        return b
    }

    /// "offset:epoch"
    static func position(_ text: String) -> StreamPosition? {
        guard let colon = text.firstIndex(of: ":"), let offset = UInt64(text[..<colon]) else { return nil }
        return StreamPosition(offset: offset, epoch: String(text[text.index(after: colon)...]))
    }

    /// A pub/sub message: `p{offset}:{epoch}\n{publication}` or `e{ephemeral}`.
    static func decodeMessage(_ data: ByteBuffer) throws -> Message {
        var b = data
        guard let tag = b.readInteger(as: UInt8.self) else { throw Malformed() }
        if tag == UInt8(ascii: "p") {
            guard let nl = b.readableBytesView.firstIndex(of: UInt8(ascii: "\n")),
                  let header = b.readString(length: nl - b.readerIndex), let position = position(header) else { throw Malformed() }
            b.moveReaderIndex(forwardBy: 1)
            return .publication(try decodePublication(b, position: position))
        }
        guard tag == UInt8(ascii: "e"), b.readInteger(as: UInt8.self) == 1 else { throw Malformed() }
        let name = try channel(&b)
        let spelled = try readString(&b), event = try readString(&b)
        let bytes = try readBytes(&b), origin = try readString(&b)
        guard let skip = b.readInteger(as: UInt8.self) else { throw Malformed() }
        return .ephemeral(BrokerEphemeral(channel: name, spelledChannel: spelled, event: event, data: bytes, originNode: origin, skipOrigin: skip == 1))
    }
}
