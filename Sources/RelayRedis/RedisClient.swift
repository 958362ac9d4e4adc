import Logging
import NIOCore
import NIOPosix
#if !RELAY_TSAN
import Synchronization
#endif

/// Commands to one Redis server over a few pipelined connections, (re)connected on demand with
/// exponential backoff. Safe from any thread; nothing here blocks an event loop.
///
/// While every connection is down and backing off, commands fail at once with
/// `RedisError.connectionClosed` naming the last error (callers decide whether to retry); the
/// first command after the backoff reconnects.
public final class RedisClient: Sendable {
    public struct Options: Sendable {
        /// Connections in the pool (commands go to them in turn).
        public var connections: Int = 2
        /// First delay after a failed connect; doubled per failure up to `reconnectMaxDelay`.
        public var reconnectBaseDelay: TimeAmount = .milliseconds(50)
        public var reconnectMaxDelay: TimeAmount = .seconds(5)
        /// A command without its reply after this long fails with `RedisError.timeout`, and its
        /// connection is closed (later replies on it could no longer be matched); nil: no limit.
        public var commandTimeout: TimeAmount? = .seconds(10)
        public init() {}
    }

    private enum Slot {
        case idle
        case connecting(EventLoopFuture<RedisConnection>)
        case connected(RedisConnection)
        /// A connect failed: none before `until`.
        case backingOff(until: NIODeadline, error: String)
    }

    private struct State {
        var slots: [Slot]
        var failures: [Int]
        var next = 0
        var closed = false
        /// Script source → SHA1 as `SCRIPT LOAD` returned it.
        var scripts: [String: String] = [:]
    }

    public let configuration: RedisConfiguration
    public let options: Options
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state: Mutex<State>

    public init(_ configuration: RedisConfiguration, options: Options = Options(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "relay.redis")) {
        precondition(options.connections > 0, "a pool has at least one connection")
        self.configuration = configuration
        self.options = options
        self.group = eventLoopGroup
        self.logger = logger
        self.state = Mutex(State(slots: Array(repeating: .idle, count: options.connections),
                                 failures: Array(repeating: 0, count: options.connections)))
    }

    /// Sends `commands` in one write on one connection; one reply per command, in order.
    public func send(_ commands: [RedisCommand]) -> EventLoopFuture<[RESPValue]> {
        let timeout = options.commandTimeout
        return connection().flatMap { connection in
            let replies = connection.send(commands)
            guard let timeout else { return replies }
            let promise = connection.eventLoop.makePromise(of: [RESPValue].self)
            let timer = connection.eventLoop.scheduleTask(in: timeout) {
                promise.fail(RedisError.timeout("no reply within \(timeout.nanoseconds / 1_000_000) ms"))
                connection.channel.close(promise: nil)
            }
            replies.whenComplete { result in
                timer.cancel()
                promise.completeWith(result)
            }
            return promise.futureResult
        }
    }

    /// One command's reply; a server error is thrown as `RedisError.server`.
    public func query(_ command: RedisCommand) async throws -> RESPValue {
        let reply = try await send([command]).get()[0]
        if case .error(let e) = reply { throw RedisError.server(e) }
        return reply
    }

    /// Runs a Lua script by `EVALSHA`, loading it (`SCRIPT LOAD`) the first time and again when the
    /// server answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`). Server errors are values.
    public func evaluate(_ source: String, keys: [RESPArgument], arguments: [RESPArgument]) -> EventLoopFuture<RESPValue> {
        let known = state.withLock { $0.scripts[source] }
        let run: @Sendable (String) -> EventLoopFuture<RESPValue> = { sha in
            self.send([RedisCommand(arguments: ["EVALSHA", .string(sha), .integer(Int64(keys.count))] + keys + arguments)]).map { $0[0] }
        }
        let load: @Sendable () -> EventLoopFuture<String> = {
            self.send([RedisCommand("SCRIPT", "LOAD", .string(source))]).flatMapThrowing { replies in
                if case .error(let e) = replies[0] { throw RedisError.server(e) }
                guard let sha = replies[0].string else { throw RedisError.server(RedisServerError("ERR SCRIPT LOAD: no SHA1")) }
                self.state.withLock { $0.scripts[source] = sha }
                return sha
            }
        }
        guard let known else { return load().flatMap(run) }
        return run(known).flatMap { reply in
            if case .error(let e) = reply, e.code == "NOSCRIPT" { return load().flatMap(run) }
            return self.group.any().makeSucceededFuture(reply)
        }
    }

    /// Closes every connection; later commands fail with `connectionClosed`.
    public func close() async {
        let open: [RedisConnection] = state.withLock { s in
            s.closed = true
            defer { s.slots = s.slots.map { _ in .idle } }
            return s.slots.compactMap { if case .connected(let c) = $0 { return c } else { return nil } }
        }
        for c in open { await c.close() }
    }

    /// A live connection (next in turn), one being made, or a new connect.
    private func connection() -> EventLoopFuture<RedisConnection> {
        enum Choice { case ready(RedisConnection), pending(EventLoopFuture<RedisConnection>), connect(Int), fail(String) }
        let now = NIODeadline.now()
        let choice: Choice = state.withLock { s in
            if s.closed { return .fail("the client is closed") }
            let n = s.slots.count
            let start = s.next
            s.next = (s.next + 1) % n
            // This command's turn is slot `start`: use it, or start its connect. Only if it is
            // backing off, any other slot will do (a live one first).
            var lastError = "not connected"
            var pending: EventLoopFuture<RedisConnection>?
            var reconnect: Int?
            for k in 0..<n {
                let i = (start + k) % n
                switch s.slots[i] {
                case .connected(let c):
                    if c.channel.isActive { return .ready(c) }
                    s.slots[i] = .idle
                    if k == 0 { return .connect(i) }
                    if reconnect == nil { reconnect = i }
                case .connecting(let f):
                    if k == 0 { return .pending(f) }
                    if pending == nil { pending = f }
                case .idle:
                    if k == 0 { return .connect(i) }
                    if reconnect == nil { reconnect = i }
                case .backingOff(let until, let error):
                    lastError = error
                    if until <= now {
                        if k == 0 { return .connect(i) }
                        if reconnect == nil { reconnect = i }
                    }
                }
            }
            if let pending { return .pending(pending) }
            if let i = reconnect { return .connect(i) }
            return .fail("reconnecting after: \(lastError)")
        }
        switch choice {
        case .ready(let c): return c.eventLoop.makeSucceededFuture(c)
        case .pending(let f): return f
        case .fail(let why): return group.any().makeFailedFuture(RedisError.connectionClosed(why))
        case .connect(let i): return connect(slot: i)
        }
    }

    private func connect(slot i: Int) -> EventLoopFuture<RedisConnection> {
        let loop = group.any()
        let promise = loop.makePromise(of: RedisConnection.self)
        let proceed: Bool = state.withLock { s in
            if case .connecting = s.slots[i] { return false }
            s.slots[i] = .connecting(promise.futureResult)
            return true
        }
        guard proceed else {
            // Another caller started this slot's connect first: use whatever is free now.
            promise.completeWith(connection())
            return promise.futureResult
        }
        let configuration = self.configuration, group = self.group, logger = self.logger
        promise.completeWithTask {
            try await RedisConnection.connect(configuration, eventLoopGroup: group, logger: logger)
        }
        promise.futureResult.whenComplete { result in
            let stale: RedisConnection? = self.state.withLock { s in
                switch result {
                case .success(let c):
                    if s.closed { return c }
                    s.slots[i] = .connected(c)
                    s.failures[i] = 0
                    return nil
                case .failure(let error):
                    let delay = self.backoff(failures: s.failures[i])
                    s.failures[i] += 1
                    s.slots[i] = .backingOff(until: .now() + delay, error: "\(error)")
                    return nil
                }
            }
            if let stale { stale.channel.close(promise: nil) }
            if case .failure(let error) = result {
                logger.warning("redis connect failed", metadata: ["redis.host": "\(configuration.host)", "redis.port": "\(configuration.port)",
                                                                  "error": "\(error)"])
            }
        }
        return promise.futureResult
    }

    private func backoff(failures: Int) -> TimeAmount {
        let base = options.reconnectBaseDelay.nanoseconds, cap = options.reconnectMaxDelay.nanoseconds
        let exp = base << Int64(min(failures, 30))
        let capped = min(cap, exp > 0 ? exp : cap)
        // Full jitter between half and all of it, so a fleet does not reconnect in step.
        return .nanoseconds(capped / 2 + Int64.random(in: 0...(capped / 2)))
    }
}
