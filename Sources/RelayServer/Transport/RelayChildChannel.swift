import RelayCrypto
import RelayWebSocket
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// How a WebSocket upgrade request is served.
struct WebSocketRoute: Sendable {
    /// Extra response headers (the selected subprotocol).
    var responseHeaders: HTTPHeaders
    /// Largest reassembled message on this route.
    var maxMessageBytes: Int
    /// The per-connection application object.
    var makeEndpoint: @Sendable () -> any WebSocketEndpoint
}

/// Limits of the HTTP/1 side of the server (from `ServerConfiguration`, which holds the defaults).
struct HTTPTransportLimits: Sendable {
    /// Time from accept until the first request head is complete (a WebSocket
    /// upgrade or a plain request); slower connections are closed.
    var handshakeTimeout: TimeAmount
    /// Idle keep-alive connections are closed after this long.
    var idleTimeout: Duration
    /// Largest WebSocket frame the decoder accepts (larger: close 1009).
    var maxFrameBytes: Int
    /// Largest request header block; larger requests get 400 and are closed.
    var maxHeaderBytes: Int
    /// Largest `POST /publish` body (413 beyond it).
    var maxPublishBodyBytes: Int
    /// Time to wait for the client's close frame after ours.
    var closeTimeout: TimeAmount
    /// Peers whose forwarding headers name the client (`--trusted-proxy`).
    var trustedProxies: TrustedProxies = .none
}

/// The server's child channel: HTTP/1.1 for Hummingbird's router, and
/// WebSocket upgrades served by `WebSocketConnectionHandler` on the event
/// loop (no task per connection, one flush per batch of frames). A plain
/// handshake is recognized by `HandshakeSniffer` and answered without an
/// HTTP/1 pipeline; the rest (HTTP requests, unusual handshakes) get NIO's
/// HTTP/1 codec and upgrader.
struct RelayChildChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case webSocket
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case failedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let limits: HTTPTransportLimits
    /// Where connections that stay HTTP/1 are served (a WebSocket never enters Swift concurrency).
    let httpConnections: HTTPConnections
    let route: @Sendable (WebSocketRequest) -> WebSocketRoute?
    /// `POST /publish[/batch]` on the event loop; nil sends them through the router.
    let fastPublish: PublishFastPath.Publish?
    /// Shared by every connection: one encoding per frame per event loop.
    let frameEncoder = ServerFrameEncoder()

    init(responder: @escaping HTTPChannelHandler.Responder, limits: HTTPTransportLimits,
         route: @escaping @Sendable (WebSocketRequest) -> WebSocketRoute?,
         fastPublish: PublishFastPath.Publish? = nil, httpConnections: HTTPConnections) {
        self.responder = Self.redirectingLateUpgrades(responder)
        self.limits = limits
        self.httpConnections = httpConnections
        self.route = route
        self.fastPublish = fastPublish
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // Handshake timer: the first request head must arrive in time.
            let timer = channel.eventLoop.scheduleTask(in: limits.handshakeTimeout) {
                channel.close(promise: nil)
            }
            // A plain WebSocket handshake is answered right here; anything else gets the HTTP/1
            // pipeline (with NIO's upgrader for the handshakes the sniffer leaves to it).
            let sniffer = HandshakeSniffer(
                maxHeadBytes: limits.maxHeaderBytes,
                webSocket: { context, head, key in
                    guard self.upgradeNow(context: context, head: head, key: key) else { return false }
                    timer.cancel()
                    return true
                },
                http: { channel in try self.installHTTP(channel: channel, timer: timer, logger: logger) })
            try channel.pipeline.syncOperations.addHandler(sniffer)
            return Value(channel: channel)
        }
    }

    /// Answers a WebSocket handshake the sniffer recognized: 101, then the WebSocket handlers
    /// after the sniffer, and the session. False (nothing written) when no route takes it.
    private func upgradeNow(context: ChannelHandlerContext, head: HTTPRequestHead, key: String) -> Bool {
        let channel = context.channel
        let request = WebSocketRequest(head: head, remoteAddress: channel.remoteAddress, trustedProxies: limits.trustedProxies)
        guard let r = route(request) else { return false }
        var response = channel.allocator.buffer(capacity: 256)
        response.writeStaticString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: ")
        response.writeString(Base64.encode(SHA1.hash(Array((key + WebSocketHandshake.guid).utf8))))
        response.writeStaticString("\r\n")
        for (name, value) in r.responseHeaders {
            response.writeString(name)
            response.writeStaticString(": ")
            response.writeString(value)
            response.writeStaticString("\r\n")
        }
        response.writeStaticString("\r\n")
        // Not flushed: the session's first frame (the welcome) usually leaves in the same write.
        context.write(NIOAny(response), promise: nil)
        do {
            let raw = RawFrameWriter()
            try channel.pipeline.syncOperations.addHandlers(
                [raw, WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: limits.maxFrameBytes)),
                 WebSocketProtocolErrorHandler()])
            try attachSession(channel: channel, raw: raw, request: request, route: r)
        } catch {
            channel.close(promise: nil)
        }
        context.flush()
        return true
    }

    /// The connection's handler and session, after the frame codec (and `raw` nearer the socket
    /// than NIO's frame encoder: encoded frames skip the encoder but still pass TLS).
    private func attachSession(channel: any Channel, raw: RawFrameWriter, request: WebSocketRequest, route r: WebSocketRoute) throws {
        let handler = WebSocketConnectionHandler(maxMessageBytes: r.maxMessageBytes, closeTimeout: limits.closeTimeout,
                                                 raw: raw, encoder: frameEncoder)
        try channel.pipeline.syncOperations.addHandler(handler)
        let session = WebSocketSession(request: request, eventLoop: channel.eventLoop, handler: handler,
                                       endpoint: r.makeEndpoint(),
                                       maxInboxBytes: max(4 * r.maxMessageBytes, 1 << 20))
        handler.bind(session)
    }

    /// The HTTP/1 pipeline: Hummingbird's router in a task of `httpConnections`, `POST /publish`
    /// on the event loop, and NIO's WebSocket upgrader for the handshakes the sniffer did not take.
    private func installHTTP(channel: any Channel, timer: Scheduled<Void>, logger: Logger) throws {
        let upgradeAttempted = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
        // The request as parsed by shouldUpgrade, reused by the pipeline handler.
        let accepted = NIOLoopBoundBox<(WebSocketRequest, WebSocketRoute)?>(nil, eventLoop: channel.eventLoop)
        let limits = self.limits, route = self.route, fastPublish = self.fastPublish
        let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
            maxFrameSize: limits.maxFrameBytes,
            enableAutomaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                upgradeAttempted.value = true
                let request = WebSocketRequest(head: head, remoteAddress: channel.remoteAddress, trustedProxies: limits.trustedProxies)
                let r = route(request)
                accepted.value = r.map { (request, $0) }
                return channel.eventLoop.makeSucceededFuture(r?.responseHeaders)
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    guard let (request, r) = accepted.value else { throw ChannelError.inappropriateOperationForState }
                    accepted.value = nil
                    let raw = RawFrameWriter()
                    let encoder = try channel.pipeline.syncOperations.handler(type: WebSocketFrameEncoder.self)
                    try channel.pipeline.syncOperations.addHandler(raw, position: .before(encoder))
                    try self.attachSession(channel: channel, raw: raw, request: request, route: r)
                    return UpgradeResult.webSocket
                }
            })

        let serverUpgrade = NIOTypedHTTPServerUpgradeConfiguration(
            upgraders: [upgrader],
            notUpgradingCompletionHandler: { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                    try channel.pipeline.syncOperations.addHandler(
                        HTTPConnectionStateHandler(idleTimeout: limits.idleTimeout, logger: logger))
                    if let fastPublish {
                        try channel.pipeline.syncOperations.addHandler(
                            PublishFastPath(maxBodyBytes: limits.maxPublishBodyBytes, publish: fastPublish))
                    }
                    let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                    return upgradeAttempted.value ? UpgradeResult.failedUpgrade(asyncChannel) : .notUpgraded(asyncChannel)
                }
            })
        var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: serverUpgrade)
        configuration.enablePipelining = false  // NIOAsyncChannel serializes requests
        // NIO's protocol error handler answers malformed requests and oversized headers with 400 and closes.
        configuration.enableErrorHandling = true
        configuration.enableResponseHeaderValidation = false  // HTTPTypes validates
        configuration.decoderConfiguration.maxHeaderListSize = limits.maxHeaderBytes
        configuration.decoderConfiguration.maxHeaderFieldSize = limits.maxHeaderBytes
        let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
        let errorHandler = try channel.pipeline.syncOperations.handler(type: HTTPServerProtocolErrorHandler.self)
        try channel.pipeline.syncOperations.addHandler(CloseOnParseError(), position: .after(errorHandler))

        // Decided on the event loop: a WebSocket stays there (its handler and session own the
        // connection); an HTTP/1 connection goes to a task of `httpConnections`.
        let connections = self.httpConnections
        negotiated.whenComplete { [self] result in
            timer.cancel()
            switch result {
            case .success(.webSocket):
                return
            case .success(.notUpgraded(let http1)):
                connections.serve(channel) { await self.handleHTTP(asyncChannel: http1, logger: logger) }
            case .success(.failedUpgrade(let http1)):
                connections.serve(channel) { await Self.refuseUpgrade(http1, channel: channel, logger: logger) }
            case .failure(let error):
                // A malformed or oversized request head (already answered with 400 by NIO's
                // protocol error handler), or a connection that ended first: close it.
                logger.trace("connection ended before a request: \(error)")
                channel.close(promise: nil)
            }
        }
    }

    /// Not used: `RelayListener` calls `setup`, which routes each connection once its first
    /// request is known (the conformance gives `handleHTTP`).
    func handle(value: Value, logger: Logger) async {}

    /// A WebSocket upgrade the route refused: 400 and close.
    static func refuseUpgrade(_ http1: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, channel: any Channel, logger: Logger) async {
        do {
            try await http1.executeThenClose { _, outbound in
                try await outbound.write(contentsOf: [
                    .head(HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])),
                    .end(nil),
                ])
            }
        } catch {
            logger.trace("connection ended before its refusal: \(error)")
            channel.close(promise: nil)
        }
    }

    /// NIO upgrades only on a connection's first request; a later upgrade
    /// request on a keep-alive connection is sent to a new connection (307 + close).
    static func redirectingLateUpgrades(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        struct RedirectedUpgrade: Error {}
        return { request, writer, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                try await responder(request, writer, channel)
                return
            }
            var location = request.uri.path
            if let q = request.uri.query { location += "?" + q }
            try await writer.writeResponse(HTTPResponse(status: .temporaryRedirect,
                                                        headerFields: [.connection: "close", .location: location]))
            throw RedirectedUpgrade()
        }
    }
}

/// Closes the connection after NIO's protocol error handler has answered a
/// malformed or oversized request head with 400 (nothing else would close it
/// while the upgrade handler holds the first request).
final class CloseOnParseError: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}
