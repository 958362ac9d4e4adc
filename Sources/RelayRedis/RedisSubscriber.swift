import Logging
import NIOCore
import NIOPosix
#if !RELAY_TSAN
import Synchronization
#endif

/// One dedicated pub/sub connection that keeps its subscriptions across reconnects.
///
/// `run()` holds the connection: it connects, subscribes to every channel asked for so far, and
/// after a drop reconnects with jittered exponential backoff and subscribes again. Messages
/// published while it was away are lost to it (Redis pub/sub keeps nothing): the `resubscribed`
/// event says so, and a broker must then treat its channels' streams as having a gap.
public final class RedisSubscriber: Sendable {
    public enum Event: Sendable, Equatable {
        /// A message on a channel (`sharded`: by `SPUBLISH`, to an `SSUBSCRIBE`d channel).
        case message(channel: String, payload: ByteBuffer, sharded: Bool)
        /// Subscribed again after a reconnect: messages in between were not received.
        case resubscribed
        /// The connection dropped; reconnecting.
        case disconnected(String)
    }

    private struct State {
        var channels: Set<String> = []
        var shardChannels: Set<String> = []
        var connection: RedisConnection?
        var stopped = false
    }

    public let configuration: RedisConfiguration
    public let options: RedisClient.Options
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onEvent: @Sendable (Event) -> Void
    private let state = Mutex(State())

    public init(_ configuration: RedisConfiguration, options: RedisClient.Options = .init(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "relay.redis.pubsub"),
                onEvent: @escaping @Sendable (Event) -> Void) {
        self.configuration = configuration
        self.options = options
        self.group = eventLoopGroup
        self.logger = logger
        self.onEvent = onEvent
    }

    /// Whether the connection is up and subscribed.
    public var isConnected: Bool { state.withLock { $0.connection != nil } }

    /// Adds `channels`; the future completes once Redis confirmed them. While disconnected it fails
    /// with `connectionClosed`, and the channels are subscribed on reconnect (`resubscribed`).
    public func subscribe(_ channels: [String], sharded: Bool = false) -> EventLoopFuture<Void> {
        let connection: RedisConnection? = state.withLock { s in
            if sharded { s.shardChannels.formUnion(channels) } else { s.channels.formUnion(channels) }
            return s.connection
        }
        guard let connection else { return group.any().makeFailedFuture(RedisError.connectionClosed("not connected; subscribed on reconnect")) }
        return Self.confirm(connection.subscription(sharded ? .ssubscribe : .subscribe, channels))
    }

    /// Removes `channels`; completes once Redis confirmed (at once while disconnected).
    public func unsubscribe(_ channels: [String], sharded: Bool = false) -> EventLoopFuture<Void> {
        let connection: RedisConnection? = state.withLock { s in
            if sharded { s.shardChannels.subtract(channels) } else { s.channels.subtract(channels) }
            return s.connection
        }
        guard let connection else { return group.any().makeSucceededVoidFuture() }
        return Self.confirm(connection.subscription(sharded ? .sunsubscribe : .unsubscribe, channels))
    }

    /// Holds the connection until the task is cancelled.
    public func run() async {
        var failures = 0
        var connectedBefore = false
        var up = false  // `disconnected` is sent once per outage
        while !Task.isCancelled {
            do {
                let connection = try await RedisConnection.connect(configuration, eventLoopGroup: group, logger: logger,
                                                                   onPush: { [onEvent] push in Self.route(push, onEvent) })
                let (channels, shards): ([String], [String]) = state.withLock { s in
                    s.connection = connection
                    return (Array(s.channels), Array(s.shardChannels))
                }
                try await Self.confirm(connection.subscription(.subscribe, channels)).get()
                // Sharded channels may live on different cluster nodes; on one server, one call each.
                for channel in shards { try await Self.confirm(connection.subscription(.ssubscribe, [channel])).get() }
                failures = 0
                logger.notice("redis pub/sub connected", metadata: ["redis.host": "\(configuration.host)", "redis.port": "\(configuration.port)",
                                                                   "channels": "\(channels.count + shards.count)"])
                if connectedBefore { onEvent(.resubscribed) }
                connectedBefore = true
                up = true
                await withTaskCancellationHandler {
                    try? await connection.closeFuture.get()
                } onCancel: {
                    connection.channel.close(promise: nil)
                }
                state.withLock { $0.connection = nil }
                if Task.isCancelled { break }
                up = false
                onEvent(.disconnected("the connection ended"))
            } catch {
                state.withLock { $0.connection = nil }
                if Task.isCancelled { break }
                logger.warning("redis pub/sub connection failed", metadata: ["error": "\(error)"])
                if up || failures == 0 && !connectedBefore { onEvent(.disconnected("\(error)")) }
                up = false
            }
            let base = options.reconnectBaseDelay.nanoseconds, cap = options.reconnectMaxDelay.nanoseconds
            let delay = min(cap, base << Int64(min(failures, 30)))
            failures += 1
            try? await Task.sleep(nanoseconds: UInt64(delay / 2 + Int64.random(in: 0...(delay / 2))))
        }
        let last = state.withLock { s in
            s.stopped = true
            defer { s.connection = nil }
            return s.connection
        }
        if let last { await last.close() }
    }

    private static func confirm(_ f: EventLoopFuture<[RESPValue]>) -> EventLoopFuture<Void> {
        f.flatMapThrowing { replies in
            for case .error(let e) in replies { throw RedisError.server(e) }
        }
    }

    private static func route(_ push: RESPValue, _ onEvent: @Sendable (Event) -> Void) {
        guard case .push(let items) = push, items.count == 3, let kind = items[0].string?.lowercased(),
              kind == "message" || kind == "smessage", let channel = items[1].string else { return }
        let payload: ByteBuffer
        switch items[2] {
        case .bulkString(let b), .verbatim(_, let b): payload = b
        case .simpleString(let s): payload = ByteBuffer(string: s)
        default: return
        }
        onEvent(.message(channel: channel, payload: payload, sharded: kind == "smessage"))
    }
}
