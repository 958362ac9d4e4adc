import NIOCore
import NIOHTTP1
import RelayWebSocket

/// The first handler of every connection (after TLS): reads until the first request head is
/// complete and decides what the connection is. A plain WebSocket handshake
/// (`WebSocketHandshake`) is answered on the spot: no HTTP/1 codec, upgrader or pipeline surgery
/// per WebSocket. Anything else installs the HTTP/1 pipeline after this handler and replays the
/// bytes into it unchanged. Afterwards the sniffer only passes bytes on.
final class HandshakeSniffer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Answers a recognized handshake; false when no route takes it (it then goes to HTTP/1).
    typealias WebSocket = (ChannelHandlerContext, HTTPRequestHead, String) -> Bool
    /// Installs the HTTP/1 pipeline after the sniffer.
    typealias HTTP = (any Channel) throws -> Void

    private var deciding = true
    /// After a refused handshake: what the client sends before the close is dropped.
    private var discarding = false
    private var buffered: ByteBuffer?
    private let maxHeadBytes: Int
    private let webSocket: WebSocket
    private let http: HTTP

    init(maxHeadBytes: Int, webSocket: @escaping WebSocket, http: @escaping HTTP) {
        self.maxHeadBytes = maxHeadBytes
        self.webSocket = webSocket
        self.http = http
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard deciding else {
            if !discarding { context.fireChannelRead(data) }
            return
        }
        var bytes = unwrapInboundIn(data)
        var scanned = 0
        if var earlier = buffered {
            scanned = earlier.readableBytes
            earlier.writeBuffer(&bytes)
            bytes = earlier
            buffered = nil
        }
        let outcome = bytes.withUnsafeReadableBytes { WebSocketHandshake.parse($0, maxHeadBytes: maxHeadBytes, scanned: scanned) }
        switch outcome {
        case .incomplete:
            buffered = bytes
        case .webSocket(let head, let key, let headLength):
            deciding = false
            guard webSocket(context, head, key) else {
                deciding = true
                toHTTP(context: context, bytes)
                return
            }
            bytes.moveReaderIndex(forwardBy: headLength)
            // Frames the client sent right behind its handshake.
            if bytes.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(bytes)) }
        case .refused(let status):
            deciding = false
            var answer = context.channel.allocator.buffer(capacity: 128)
            answer.writeString(WebSocketHandshake.refusal(status: status))
            discarding = true
            let channel = context.channel
            context.writeAndFlush(NIOAny(answer)).whenComplete { _ in channel.close(promise: nil) }
        case .other:
            toHTTP(context: context, bytes)
        }
    }

    private func toHTTP(context: ChannelHandlerContext, _ bytes: ByteBuffer) {
        deciding = false
        do {
            try http(context.channel)
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
    }

    func channelInactive(context: ChannelHandlerContext) {
        buffered = nil
        context.fireChannelInactive()
    }
}
