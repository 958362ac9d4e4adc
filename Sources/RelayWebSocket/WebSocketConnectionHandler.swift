import NIOCore
import NIOWebSocket
import RelayCore

/// One server-side WebSocket connection, entirely on its channel's event loop.
///
/// Inbound: validates every frame (RFC 6455: masking, reserved bits and
/// opcodes, control frames, fragmentation, UTF-8, close codes), answers pings,
/// runs the close handshake and hands complete messages to the session's
/// serial inbox (pausing reads while the inbox is over budget).
///
/// Outbound: when the engine wakes it, takes everything queued in the
/// connection's outbox and writes it with **one flush per batch**, only while
/// the channel is writable. A client that stops reading leaves frames in the
/// outbox, which the engine bounds (slow-consumer close, 4008).
public final class WebSocketConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = WebSocketFrame
    public typealias OutboundIn = WebSocketFrame
    public typealias OutboundOut = WebSocketFrame

    /// Items taken from the outbox per `drain` call.
    static let drainBatch = 64

    private var session: WebSocketSession?
    private var context: ChannelHandlerContext?
    private var assembler: WebSocketMessageAssembler
    private var connection: RelayConnection?
    private var closeSent = false
    private var closeTimeout: TimeAmount
    private var readPaused = false
    private var readPending = false
    private var closed = false

    private let raw: RawFrameWriter
    private let encoder: ServerFrameEncoder

    public init(maxMessageBytes: Int, closeTimeout: TimeAmount, raw: RawFrameWriter, encoder: ServerFrameEncoder) {
        assembler = WebSocketMessageAssembler(maxMessageBytes: maxMessageBytes)
        self.closeTimeout = closeTimeout
        self.raw = raw
        self.encoder = encoder
    }

    /// Set once, right after the handler is added and before any read.
    public func bind(_ session: WebSocketSession) {
        self.session = session
        _ = session.enqueue(.opened)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !closed {
            closed = true
            _ = session?.enqueue(.closed)
        }
        // Break the cycles handler → session → handler and handler → connection → wake-up → session;
        // the session lives on until its last job has run.
        session = nil
        connection = nil
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server allows half-closure; for a WebSocket, the client's FIN ends the connection.
        if let e = event as? ChannelEvent, e == .inputClosed {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Decoder errors were answered (1002/1009) by NIO's protocol error
        // handler; anything else (reset, TLS) ends the connection.
        context.close(promise: nil)
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        session?.activity.touch()
        if closeSent {
            // Waiting for the client's close; everything else is discarded.
            if frame.opcode == .connectionClose { context.close(promise: nil) }
            return
        }
        do {
            try WebSocketMessageAssembler.validate(frame)
            var payload = frame.data
            if let key = frame.maskKey { payload.webSocketUnmask(key) }
            switch frame.opcode {
            case .ping:
                writeControl(.pong, payload, context: context)
                context.flush()
            case .pong:
                break
            case .connectionClose:
                let (code, _) = try WebSocketMessageAssembler.parseClose(payload)
                // Echo the client's code (RFC 6455 §5.5.1), then close the TCP connection.
                var body = context.channel.allocator.buffer(capacity: 2)
                if let code { body.writeInteger(code) }
                closeSent = true
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: body)))
                    .whenComplete { _ in context.close(promise: nil) }
            default:
                if let message = try assembler.append(opcode: frame.opcode, fin: frame.fin, payload: payload), let session,
                   !session.endpoint.handledOnEventLoop(message), !session.enqueue(.message(message)) {
                    readPaused = true
                }
            }
        } catch {
            fail(error, context: context)
        }
    }

    /// Fails the connection: close frame with the violation's code, then TCP close.
    private func fail(_ violation: WebSocketViolation, context: ChannelHandlerContext) {
        guard !closeSent else { return }
        closeSent = true
        let frame = closeFrame(code: violation.code, reason: violation.reason, allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in context.close(promise: nil) }
    }

    public func read(context: ChannelHandlerContext) {
        if readPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    /// The inbox fell below half its budget.
    func resumeReading() {
        guard readPaused, let context else { return }
        readPaused = false
        if readPending {
            readPending = false
            context.read()
        }
    }

    // MARK: Outbound

    func attach(_ connection: RelayConnection) {
        guard !closed else { return }
        self.connection = connection
        drainOutbox()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { drainOutbox() }
        context.fireChannelWritabilityChanged()
    }

    /// Writes what the outbox holds while the channel is writable, then flushes once.
    func drainOutbox() {
        guard let context, let connection, !closeSent else { return }
        var wrote = false
        drain: while context.channel.isWritable || connection.isClosed {
            let items = connection.drain(maxItems: Self.drainBatch)
            if items.isEmpty { break }
            for item in items {
                switch item {
                case .frame(let f):
                    raw.write(encoder.encode(f, allocator: context.channel.allocator))
                    wrote = true
                case .close(let code, let reason):
                    if wrote { context.flush() }
                    sendClose(code: code.rawValue, reason: reason)
                    return
                }
            }
        }
        if wrote { context.flush() }
    }

    /// Starts the close handshake; the TCP connection closes when the client
    /// answers or after `closeTimeout`.
    func sendClose(code: UInt16, reason: String) {
        guard let context, !closeSent else { return }
        closeSent = true
        let frame = closeFrame(code: code, reason: reason, allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: closeTimeout) { channel.close(promise: nil) }
    }

    private func closeFrame(code: UInt16, reason: String, allocator: ByteBufferAllocator) -> WebSocketFrame {
        let reasonBytes = WebSocketMessageAssembler.truncatedReason(reason)
        var body = allocator.buffer(capacity: 2 + reasonBytes.count)
        body.writeInteger(code)
        body.writeBytes(reasonBytes)
        return WebSocketFrame(fin: true, opcode: .connectionClose, data: body)
    }

    private func writeControl(_ opcode: WebSocketOpcode, _ payload: ByteBuffer, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: opcode, data: payload)), promise: nil)
    }
}
