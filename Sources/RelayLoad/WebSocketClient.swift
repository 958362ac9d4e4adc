import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
#if canImport(Glibc)
import Glibc
#endif

/// One subscriber connection's state; owned by its event loop.
public final class SubscriberState: @unchecked Sendable {
    public let index: Int
    public let channelIndex: Int
    public var tracker = SequenceTracker()
    /// Distinct deliveries since the last step started.
    public var stepUnique: UInt64 = 0
    public var channel: Channel?
    public var open = false
    public var closedByUs = false

    init(index: Int, channelIndex: Int) {
        self.index = index
        self.channelIndex = channelIndex
    }
}

private let pingNeedle = Array(#""ping""#.utf8)
private let subscribedNeedle = Array(#""subscribed""#.utf8)
private let errorNeedle = Array(#""type":"error""#.utf8)
private let pongFrame = Array(#"{"type":"pong"}"#.utf8)

/// Reads WebSocket frames of one subscriber: records latency and sequence, answers pings.
final class SubscriberHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let state: SubscriberState
    let stats: LoopStats
    let subscribeFrame: [UInt8]?
    var ready: EventLoopPromise<Void>?
    let started: UInt64
    var gotClose = false

    init(state: SubscriberState, stats: LoopStats, subscribeFrame: [UInt8]?, ready: EventLoopPromise<Void>, started: UInt64) {
        self.state = state
        self.stats = stats
        self.subscribeFrame = subscribeFrame
        self.ready = ready
        self.started = started
    }

    func handlerAdded(context: ChannelHandlerContext) {
        state.channel = context.channel
        state.open = true
        if let frame = subscribeFrame {
            send(context: context, opcode: .text, bytes: frame)
        } else {
            markReady()
        }
    }

    func markReady() {
        guard let r = ready else { return }
        ready = nil
        stats.connected += 1
        _ = stats.connectLatency.record(max(1, (MonoClock.nanos() - started) / 1000))
        r.succeed(())
    }

    func send(context: ChannelHandlerContext, opcode: WebSocketOpcode, bytes: [UInt8]) {
        var buf = context.channel.allocator.buffer(capacity: bytes.count)
        buf.writeBytes(bytes)
        let frame = WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: buf)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            let now = MonoClock.nanos()
            var data = frame.unmaskedData
            let parsed: (ts: UInt64, seq: UInt64)? = data.withUnsafeReadableBytes { Payload.parse($0) }
            if let p = parsed {
                if state.tracker.observe(p.seq) {
                    state.stepUnique += 1
                    stats.delivered += 1
                    stats.lastDeliveryNanos = now
                    stats.record(latencyMicros: now > p.ts ? (now - p.ts) / 1000 : 0)
                } else {
                    stats.duplicates += 1
                }
                return
            }
            let (isPing, isSubscribed, isError) = data.withUnsafeReadableBytes { b in
                (b.count < 64 && Payload.contains(b, pingNeedle), Payload.contains(b, subscribedNeedle), Payload.contains(b, errorNeedle))
            }
            if isPing {
                send(context: context, opcode: .text, bytes: pongFrame)
            } else if isSubscribed {
                markReady()
            } else if isError {
                stats.errorFrames += 1
                if let r = ready {
                    ready = nil
                    r.fail(LoadError("subscribe refused: \(data.readString(length: data.readableBytes) ?? "")"))
                    context.close(promise: nil)
                }
            }
        case .ping:
            var buf = frame.unmaskedData
            let bytes = buf.readBytes(length: buf.readableBytes) ?? []
            send(context: context, opcode: .pong, bytes: bytes)
        case .connectionClose:
            var buf = frame.unmaskedData
            let code = buf.readInteger(as: UInt16.self).map(Int.init) ?? 1005
            if !state.closedByUs && !gotClose { stats.closes[code, default: 0] += 1 }
            gotClose = true
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.open = false
        if !state.closedByUs && !gotClose { stats.closes[-1, default: 0] += 1 }  // dropped without a close frame
        if let r = ready { ready = nil; r.fail(LoadError("connection closed before it was ready")) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Sends the upgrade request; sees the response only when the upgrade was refused.
final class UpgradeRequestHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let host: String
    let uri: String
    var failure: ((Error) -> Void)?

    init(host: String, uri: String, failure: @escaping (Error) -> Void) {
        self.host = host
        self.uri = uri
        self.failure = failure
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let h) = unwrapInboundIn(data) {
            failure?(LoadError("upgrade refused: HTTP \(h.status.code)"))
            failure = nil
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failure?(error)
        failure = nil
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failure?(LoadError("connection closed during the upgrade"))
        failure = nil
        context.fireChannelInactive()
    }
}

/// Opens WebSocket connections spread over loopback source addresses.
public struct WebSocketConnector: Sendable {
    public let target: LoadTarget
    public let sourceAddresses: [SocketAddress]

    /// `sources` addresses 127.0.0.1 … 127.0.0.<sources>.
    public init(target: LoadTarget, sources: Int) throws {
        self.target = target
        self.sourceAddresses = try (1...max(1, sources)).map { try SocketAddress(ipAddress: "127.0.0.\($0)", port: 0) }
    }

    static let bindAddressNoPort = ChannelOptions.Types.SocketOption(
        level: NIOBSDSocket.OptionLevel(rawValue: CInt(IPPROTO_IP)), name: NIOBSDSocket.Option(rawValue: 24))  // IP_BIND_ADDRESS_NO_PORT

    /// Connects `state` on `loop`; the future succeeds once the subscriber is ready
    /// (relayd: `subscribed` received; nchan: upgrade done).
    public func connect(state: SubscriberState, channelName: String, loop: EventLoop, stats: LoopStats) -> EventLoopFuture<Void> {
        let started = MonoClock.nanos()
        let ready = loop.makePromise(of: Void.self)
        let frame = target.subscribeFrame(channel: channelName)
        open(uri: target.webSocketURI(channel: channelName), sourceIndex: state.index, loop: loop) { _ in
            SubscriberHandler(state: state, stats: stats, subscribeFrame: frame, ready: ready, started: started)
        }.whenFailure { error in ready.fail(error) }
        ready.futureResult.whenFailure { _ in stats.connectErrors += 1 }
        return ready.futureResult
    }
}

extension WebSocketConnector {
    /// Opens a WebSocket at `uri` from source address `sourceIndex` (mod the count) on `loop`;
    /// `makeHandler` builds the frame handler once the upgrade is done (on the channel's loop).
    /// The future succeeds with the channel after the upgrade and fails when the connect or the
    /// upgrade fails.
    public func open(uri: String, sourceIndex: Int, loop: EventLoop,
                     makeHandler: @escaping @Sendable (Channel) -> ChannelHandler) -> EventLoopFuture<Channel> {
        let upgraded = loop.makePromise(of: Channel.self)
        let source = sourceAddresses[sourceIndex % sourceAddresses.count]
        let hostHeader = "\(target.host):\(target.port)"
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(Self.bindAddressNoPort, value: 1)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(15))
            .bind(to: source)
            .channelInitializer { channel in
                let requestHandler = UpgradeRequestHandler(host: hostHeader, uri: uri) { error in upgraded.fail(error) }
                let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 22, automaticErrorHandling: false) { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(makeHandler(channel))
                        upgraded.succeed(channel)
                    }
                }
                let config: NIOHTTPClientUpgradeConfiguration = (upgraders: [upgrader], completionHandler: { context in
                    context.pipeline.syncOperations.removeHandler(requestHandler, promise: nil)
                })
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(withClientUpgrade: config)
                    try channel.pipeline.syncOperations.addHandler(requestHandler)
                }
            }
        bootstrap.connect(host: target.host, port: target.port).whenFailure { error in upgraded.fail(error) }
        return upgraded.futureResult
    }
}
