import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOWebSocket
import RelayCore
import RelayCrypto

extension RelayService {
    /// The subprotocol relayd selects when a client offers it; the token may
    /// then travel as a second offered subprotocol `token.<JWT>` instead of in the URL.
    public static let subprotocol = "relay"

    func addWebSocketRoute(to router: Router<RelayRequestContext>) {
        router.ws("/ws", shouldUpgrade: { request, _ in
            var headers = HTTPFields()
            if Self.offeredSubprotocols(request).contains(Self.subprotocol) {
                headers[.secWebSocketProtocol] = Self.subprotocol
            }
            // Refusals (4001/4003/4029) are close codes after the upgrade, as the contract requires.
            return .upgrade(headers)
        }, onUpgrade: { inbound, outbound, context in
            await self.runWebSocket(inbound: inbound, outbound: outbound, request: context.request, ip: context.requestContext.remoteIP)
        })
    }

    static func offeredSubprotocols(_ request: Request) -> [String] {
        request.headers[values: .secWebSocketProtocol].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Token from `?token=`, or a `token.<JWT>` subprotocol.
    static func token(from request: Request) -> String? {
        if let t = request.uri.queryParameters.get("token"), !t.isEmpty { return t }
        for p in offeredSubprotocols(request) where p.hasPrefix("token.") { return String(p.dropFirst(6)) }
        if let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") { return String(auth.dropFirst(7)) }
        return nil
    }

    static func close(_ outbound: WebSocketOutboundWriter, _ code: CloseCode, _ reason: String) async {
        try? await outbound.close(WebSocketErrorCode(codeNumber: Int(code.rawValue)), reason: reason)
    }

    func runWebSocket(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, request: Request, ip: String) async {
        guard !shuttingDown.load(ordering: .relaxed) else {
            await Self.close(outbound, .shuttingDown, "server shutting down; retry_after_ms=\(Int.random(in: configuration.shutdownRetryAfterMs))")
            return
        }
        if let refusal = sessions.admit(ip: ip, maxTotal: configuration.maxConnections, maxPerIP: configuration.maxConnectionsPerIP) {
            await Self.close(outbound, RelayCloseCodes.serverFull, refusal.reason)
            return
        }
        defer { sessions.leave(ip: ip) }
        var messages = inbound.messages(maxSize: configuration.maxFrameBytes).makeAsyncIterator()

        // Token: URL, subprotocol, or an `auth` first frame within 10 s.
        var token = Self.token(from: request)
        if token == nil {
            let timer = Task {
                try await Task.sleep(for: .seconds(10))
                await Self.close(outbound, RelayCloseCodes.authTimeout, "no token: send {\"type\":\"auth\",\"token\":…} first")
            }
            defer { timer.cancel() }
            guard case .text(let text)? = try? await messages.next(),
                  case .auth(let t)? = ClientMessage.parse(Array(text.utf8)) else {
                await Self.close(outbound, .invalidToken, "no token: send {\"type\":\"auth\",\"token\":…} first")
                return
            }
            token = t
        }
        let grant: ConnectionGrant
        switch tokens.grant(for: token!, sse: false) {
        case .success(let g): grant = g
        case .failure(let refusal):
            await Self.close(outbound, refusal.code, refusal.reason)
            return
        }
        let conn: RelayConnection
        switch engine.connect(grant) {
        case .success(let c): conn = c
        case .failure(let refusal):
            await Self.close(outbound, refusal.code, refusal.reason)
            return
        }
        let entry = SessionRegistry.Entry(connection: conn, isSSE: false, nowMs: Clock.nowMs)
        sessions.add(entry)
        defer { sessions.remove(conn) }

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.writeLoop(conn, outbound) }
            do {
                while let message = try await messages.next() {
                    entry.touch(nowMs: Clock.nowMs)
                    if conn.isClosed { break }
                    switch message {
                    case .text(let text): await handleText(Array(text.utf8), conn: conn)
                    case .binary(let buffer): await handleBinary(Array(buffer.readableBytesView), conn: conn)
                    }
                }
                engine.disconnect(conn, code: .normal, reason: "client closed")
            } catch {
                let (code, reason) = Self.closeCode(for: error)
                engine.disconnect(conn, code: code, reason: reason)
            }
            await group.waitForAll()
        }
    }

    /// The close for an error the WebSocket layer raised while reading (RFC 6455 codes, no internal names).
    static func closeCode(for error: any Error) -> (CloseCode, String) {
        let text = String(describing: error)
        if text.contains("messageTooLarge") { return (.messageTooBig, "message too big") }
        if text.contains("dataInconsistentWithMessage") { return (CloseCode(1007), "invalid UTF-8") }
        if text.contains("protocolError") { return (CloseCode(1002), "protocol error") }
        return (CloseCode(1002), "protocol error")
    }

    /// The only writer of the socket: drains the engine's outbox.
    func writeLoop(_ conn: RelayConnection, _ outbound: WebSocketOutboundWriter) async {
        for await item in conn.items {
            switch item {
            case .frame(let f):
                let frame = WebSocketFrame(fin: true, opcode: f.kind == .binary ? .binary : .text, data: ByteBuffer(bytes: f.bytes))
                do { try await outbound.write(.custom(frame)) } catch {
                    engine.disconnect(conn, code: .normal, reason: "write failed")
                }
            case .close(let code, let reason):
                await Self.close(outbound, code, reason)
                return
            }
        }
    }

    func handleBinary(_ bytes: [UInt8], conn: RelayConnection) async {
        guard let (channel, payload) = Wire.parseBinaryFrame(bytes) else {
            engine.disconnect(conn, code: .policyViolation, reason: "malformed binary frame", flushPending: true)
            return
        }
        switch await engine.publishBinary(from: conn, channel: channel, payload: Array(payload)) {
        case .success: publishedMessages.wrappingAdd(1, ordering: .relaxed)
        case .failure(let e): _ = engine.send(Wire.error(code: e.code, message: "binary publish refused", channel: channel), to: conn)
        }
    }

    func handleText(_ bytes: [UInt8], conn: RelayConnection) async {
        guard let message = ClientMessage.parse(bytes) else {
            engine.disconnect(conn, code: .policyViolation, reason: "malformed frame", flushPending: true)
            return
        }
        switch message {
        case .subscribe(let channels, let positions):
            let result = await engine.subscribe(conn, channels: channels, positions: positions)
            for e in result.entries {
                switch e.outcome {
                case .forbidden:
                    _ = engine.send(Wire.error(code: "forbidden", message: "channel outside the token's prefixes", channel: e.channel), to: conn)
                case .invalidChannel:
                    _ = engine.send(Wire.error(code: "invalid_channel", message: "invalid channel name", channel: e.channel), to: conn)
                default: break
                }
            }
        case .unsubscribe(let channels):
            _ = engine.unsubscribe(conn, channels: channels)
        case .publish(let channel, let event, let data, let key):
            switch await engine.publish(from: conn, channel: channel, event: event, data: data, idempotencyKey: key) {
            case .success: publishedMessages.wrappingAdd(1, ordering: .relaxed)
            case .failure(let e): _ = engine.send(Wire.error(code: e.code, message: "publish refused", channel: channel), to: conn)
            }
        case .presence(let channel, let state):
            if case .failure(let e) = await engine.setPresence(conn, channel: channel, state: state) {
                _ = engine.send(Wire.error(code: e.code, message: "presence refused", channel: channel), to: conn)
            }
        case .auth(let token):
            guard case .success(let grant) = tokens.grant(for: token, sse: false), grant.siteID == conn.siteID,
                  case .success = engine.refreshGrant(conn, grant) else {
                // The wordsocket client treats this error as a 4001 close; close with 4001 too.
                _ = engine.send(Wire.error(code: "unauthorized", message: "token refused"), to: conn)
                engine.disconnect(conn, code: .invalidToken, reason: "token refused", flushPending: true)
                return
            }
        case .pong, .ping:
            break
        }
    }
}
