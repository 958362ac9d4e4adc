import DequeModule
import NIOConcurrencyHelpers
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// Where and how to reach one Redis server.
public struct RedisConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// ACL user (Redis 6+); nil with a password authenticates as `default`.
    public var username: String?
    /// Sent only inside `HELLO 3 AUTH …`; never logged or put into an error.
    public var password: String?
    /// `SELECT`ed after the handshake when not 0.
    public var database: Int
    /// TLS (Redis built with TLS, or a TLS proxy in front of it); nil: plain TCP.
    public var tls: TLSConfiguration?
    /// The name checked against the server's certificate (default: `host`).
    public var tlsServerName: String?
    /// Time allowed for TCP (and TLS) connect plus the handshake.
    public var connectTimeout: TimeAmount
    /// `CLIENT SETNAME` (shown by `CLIENT LIST`).
    public var clientName: String?
    public var decoderLimits: RESPDecoder.Limits

    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
                database: Int = 0, tls: TLSConfiguration? = nil, tlsServerName: String? = nil,
                connectTimeout: TimeAmount = .seconds(5), clientName: String? = "relayd",
                decoderLimits: RESPDecoder.Limits = RESPDecoder.Limits()) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.tlsServerName = tlsServerName
        self.connectTimeout = connectTimeout
        self.clientName = clientName
        self.decoderLimits = decoderLimits
    }
}

/// Why a command did not get its reply.
public enum RedisError: Error, Sendable, CustomStringConvertible {
    /// The server answered with an error reply (`query` only; `send` returns it as a value).
    case server(RedisServerError)
    /// The connection closed (or was closed) before the reply came.
    case connectionClosed(String)
    /// The server sent something that is not RESP3 within the decoder's limits; the connection is closed.
    case protocolViolation(RESPProtocolError)
    /// Connecting, `HELLO 3`, authentication or `SELECT` failed.
    case handshake(String)
    /// No reply within the client's command timeout (the connection is closed).
    case timeout(String)

    public var description: String {
        switch self {
        case .server(let e): return "redis: \(e.message)"
        case .connectionClosed(let why): return "redis connection closed: \(why)"
        case .protocolViolation(let e): return "redis: \(e)"
        case .handshake(let why): return "redis handshake failed: \(why)"
        case .timeout(let why): return "redis timeout: \(why)"
        }
    }
}

/// One connection to Redis speaking RESP3: commands are pipelined (any number in flight, replies
/// matched in order), a batch goes out in one write, and out-of-band pushes (pub/sub messages)
/// go to the `onPush` callback on the connection's event loop. Nothing here blocks an event loop.
public final class RedisConnection: Sendable {
    /// Pub/sub subscription kinds (their confirmations arrive as pushes, one per channel).
    public enum SubscriptionKind: String, Sendable {
        case subscribe = "SUBSCRIBE", psubscribe = "PSUBSCRIBE", ssubscribe = "SSUBSCRIBE"
        case unsubscribe = "UNSUBSCRIBE", punsubscribe = "PUNSUBSCRIBE", sunsubscribe = "SUNSUBSCRIBE"
    }

    public let channel: any Channel
    public var eventLoop: any EventLoop { channel.eventLoop }
    /// Closed (by either side); commands sent after this fail with `connectionClosed`.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    private init(channel: any Channel) { self.channel = channel }

    /// Connects, then `HELLO 3` (with `AUTH` and `SETNAME` as configured) and `SELECT`.
    /// - Parameter onPush: called on the connection's event loop with each push that is not the
    ///   confirmation of a `subscribe` call (messages, and unsubscribes the server decided).
    public static func connect(_ configuration: RedisConfiguration,
                               eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               logger: Logger = Logger(label: "relay.redis"),
                               onPush: (@Sendable (RESPValue) -> Void)? = nil) async throws -> RedisConnection {
        let sslContext: NIOSSLContext?
        do {
            sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            throw RedisError.handshake("TLS configuration: \(error)")
        }
        let limits = configuration.decoderLimits
        let serverName = configuration.tlsServerName ?? configuration.host
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let tls = try NIOSSLClientHandler(context: sslContext, serverHostname: serverName.isIPAddress ? nil : serverName)
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    try channel.pipeline.syncOperations.addHandler(RESPHandler(limits: limits, onPush: onPush))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw RedisError.handshake("connect to \(configuration.host):\(configuration.port): \(error)")
        }
        let connection = RedisConnection(channel: channel)
        // A peer that accepts but never answers (a hung server, or not Redis) must not hold the
        // caller: the handshake gets what is left of `connectTimeout`, then the channel closes.
        let timedOut = NIOLockedValueBox(false)
        let deadline = channel.eventLoop.scheduleTask(in: configuration.connectTimeout) {
            timedOut.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
        do {
            try await connection.handshake(configuration)
            deadline.cancel()
            // The deadline may have fired just as the handshake completed: the channel is closed.
            if timedOut.withLockedValue({ $0 }) { throw RedisError.connectionClosed("closed at the handshake deadline") }
        } catch {
            deadline.cancel()
            try? await channel.close()
            if timedOut.withLockedValue({ $0 }) {
                throw RedisError.handshake("no answer to HELLO within \(configuration.connectTimeout.nanoseconds / 1_000_000) ms")
            }
            throw error
        }
        logger.debug("connected to redis", metadata: ["redis.host": "\(configuration.host)", "redis.port": "\(configuration.port)"])
        return connection
    }

    private func handshake(_ c: RedisConfiguration) async throws {
        var hello: [RESPArgument] = ["HELLO", "3"]
        if let password = c.password { hello += ["AUTH", .string(c.username ?? "default"), .string(password)] }
        if let name = c.clientName { hello += ["SETNAME", .string(name)] }
        var commands = [RedisCommand(arguments: hello)]
        if c.database != 0 { commands.append(RedisCommand("SELECT", .integer(Int64(c.database)))) }
        let replies: [RESPValue]
        do {
            replies = try await send(commands).get()
        } catch {
            throw RedisError.handshake("\(error)")
        }
        if case .error(let e) = replies[0] {
            // e.g. NOAUTH, WRONGPASS, or a Redis older than 6 (unknown command HELLO).
            throw RedisError.handshake(e.message)
        }
        if commands.count > 1, case .error(let e) = replies[1] { throw RedisError.handshake("SELECT \(c.database): \(e.message)") }
    }

    /// Sends `commands` in one write; the future holds one reply per command, in order (server
    /// errors as `.error` values). Safe to call from any thread.
    public func send(_ commands: [RedisCommand]) -> EventLoopFuture<[RESPValue]> {
        let promise = channel.eventLoop.makePromise(of: [RESPValue].self)
        guard !commands.isEmpty else {
            promise.succeed([])
            return promise.futureResult
        }
        submit(RESPHandler.Request(commands: commands, expect: .replies(commands.count), promise: promise))
        return promise.futureResult
    }

    /// A write that does not reach the handler (the channel already closed) fails the request too.
    private func submit(_ request: RESPHandler.Request) {
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in request.promise.fail(RedisError.connectionClosed("\(error)")) }
        channel.writeAndFlush(request, promise: written)
    }

    /// One command's reply (a server error as an `.error` value).
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        try await send([command]).get()[0]
    }

    /// Several commands in one write, their replies in order.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        try await send(commands).get()
    }

    /// One command's reply; a server error is thrown as `RedisError.server`.
    public func query(_ command: RedisCommand) async throws -> RESPValue {
        let reply = try await send(command)
        if case .error(let e) = reply { throw RedisError.server(e) }
        return reply
    }

    /// (Un)subscribes and returns the server's confirmations, one per channel, once all arrived:
    /// from then on the channels' messages reach `onPush`.
    public func subscription(_ kind: SubscriptionKind, _ channels: [String]) -> EventLoopFuture<[RESPValue]> {
        let promise = channel.eventLoop.makePromise(of: [RESPValue].self)
        guard !channels.isEmpty else {
            promise.succeed([])
            return promise.futureResult
        }
        let command = RedisCommand(arguments: [.string(kind.rawValue)] + channels.map { .string($0) })
        submit(RESPHandler.Request(commands: [command], expect: .confirmations(kind.rawValue.lowercased(), channels.count), promise: promise))
        return promise.futureResult
    }

    /// Closes the connection; commands still waiting fail with `connectionClosed`.
    public func close() async {
        try? await channel.close()
    }
}

extension String {
    fileprivate var isIPAddress: Bool {
        (try? SocketAddress(ipAddress: self, port: 0)) != nil
    }
}

/// Encodes requests, decodes replies and matches them to requests in order.
final class RESPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Request
    typealias OutboundOut = ByteBuffer

    /// What completes a request.
    enum Expectation: Sendable {
        /// One reply per command.
        case replies(Int)
        /// Pushes whose first element is this kind (`subscribe`, …), one per channel.
        case confirmations(String, Int)
    }

    struct Request: Sendable {
        var commands: [RedisCommand]
        var expect: Expectation
        var promise: EventLoopPromise<[RESPValue]>
    }

    private struct Pending {
        var expect: Expectation
        var results: [RESPValue]
        var promise: EventLoopPromise<[RESPValue]>
        var remaining: Int {
            switch expect {
            case .replies(let n), .confirmations(_, let n): return n - results.count
            }
        }
    }

    private let decoder: RESPDecoder
    private let onPush: (@Sendable (RESPValue) -> Void)?
    private var pending = Deque<Pending>()
    private var received: ByteBuffer?
    /// Set once the connection cannot be used any more.
    private var closed: RedisError?

    init(limits: RESPDecoder.Limits, onPush: (@Sendable (RESPValue) -> Void)?) {
        self.decoder = RESPDecoder(limits: limits)
        self.onPush = onPush
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let closed {
            request.promise.fail(closed)
            promise?.fail(closed)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 64 * request.commands.count)
        for command in request.commands { command.write(into: &buffer) }
        pending.append(Pending(expect: request.expect, results: [], promise: request.promise))
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if received == nil || received!.readableBytes == 0 {
            received = bytes
        } else {
            received!.writeImmutableBuffer(bytes)
        }
        do {
            while received!.readableBytes > 0, let value = try decoder.decode(&received!) {
                try deliver(value)
            }
            if received!.readableBytes == 0 {
                received = nil
            } else if received!.readerIndex > 64 << 10 {
                received!.discardReadBytes()
            }
        } catch {
            fail(context: context, .protocolViolation(error))
            context.close(promise: nil)
        }
    }

    private func deliver(_ value: RESPValue) throws(RESPProtocolError) {
        let head = pending.first?.expect
        if case .push(let items) = value {
            if case .confirmations(let kind, _)? = head, items.first?.string?.lowercased() == kind {
                complete(value)
            } else {
                onPush?(value)
            }
            return
        }
        switch head {
        case .replies?:
            complete(value)
        case .confirmations?:
            // A (un)subscribe refused with an error reply instead of confirmations.
            guard case .error = value else { throw RESPProtocolError("a reply where subscription confirmations were due") }
            let done = pending.removeFirst()
            done.promise.succeed([value])
        case nil:
            throw RESPProtocolError("a reply to no command")
        }
    }

    private func complete(_ value: RESPValue) {
        pending[pending.startIndex].results.append(value)
        if pending[pending.startIndex].remaining == 0 {
            let done = pending.removeFirst()
            done.promise.succeed(done.results)
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: RedisError) {
        if closed == nil { closed = error }
        while let p = pending.popFirst() { p.promise.fail(closed!) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context: context, .connectionClosed("the connection ended"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, .connectionClosed("\(error)"))
        context.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(context: context, .connectionClosed("the connection was closed"))
    }
}

extension RedisConfiguration {
    /// A configuration from `redis://[[user]:password@]host[:port][/database]` (`rediss://` for
    /// TLS with the system's trust store). User and password are percent-decoded.
    public init(url: String) throws {
        struct Invalid: Error, CustomStringConvertible { let description: String }
        let tls: Bool
        var rest: Substring
        if url.hasPrefix("redis://") { tls = false; rest = url.dropFirst(8) }
        else if url.hasPrefix("rediss://") { tls = true; rest = url.dropFirst(9) }
        else { throw Invalid(description: "a Redis URL starts with redis:// or rediss://") }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let n = Int(db), n >= 0 else { throw Invalid(description: "the database after / must be a number") }
                database = n
            }
            rest = rest[..<slash]
        }
        var username: String?, password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = String(credentials[..<colon]).removingPercentEncodingASCII()
                username = user.isEmpty ? nil : user
                password = String(credentials[credentials.index(after: colon)...]).removingPercentEncodingASCII()
            } else {
                password = String(credentials).removingPercentEncodingASCII()
            }
        }
        var host = String(rest), port = 6379
        if host.hasPrefix("[") {  // [::1]:6379
            guard let close = host.firstIndex(of: "]") else { throw Invalid(description: "unclosed [ in the host") }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw Invalid(description: "bad port") }
                port = p
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else { throw Invalid(description: "bad port") }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { throw Invalid(description: "no host") }
        self.init(host: host, port: port, username: username, password: password, database: database,
                  tls: tls ? TLSConfiguration.makeClientConfiguration() : nil)
    }
}

extension String {
    /// `%XX` decoded (UTF-8); a malformed escape is kept as written.
    fileprivate func removingPercentEncodingASCII() -> String {
        var out: [UInt8] = []
        var bytes = Array(utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%"), bytes.count >= 2,
               let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
