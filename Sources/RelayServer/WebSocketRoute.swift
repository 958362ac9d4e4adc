import RelayWebSocket
import RelayProtocol
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import RelayCore
import RelayCrypto

extension RelayService {
    /// The subprotocol relayd selects when a client offers it; the token may
    /// then travel as a second offered subprotocol `token.<JWT>` instead of in the URL.
    public static let subprotocol = "relay"

    /// The WebSocket routes: `/ws` (wordsocket JSON and binary frames) and `/yjs/{room}` (y-websocket).
    func webSocketRoute(for request: WebSocketRequest) -> WebSocketRoute? {
        var headers = HTTPHeaders()
        if request.offeredSubprotocols.contains(Self.subprotocol) {
            headers.add(name: "Sec-WebSocket-Protocol", value: Self.subprotocol)
        }
        if request.path == "/ws" {
            // Refusals (4001/4003/4029) are close codes after the upgrade, as the contract requires.
            return WebSocketRoute(responseHeaders: headers, maxMessageBytes: configuration.maxFrameBytes,
                                  makeEndpoint: { RelaySocketEndpoint(relay: self) })
        }
        if request.path.hasPrefix("/yjs/") && request.path.count > 5 {
            let raw = String(request.path.dropFirst(5))
            let room = raw.removingPercentEncoding ?? raw
            return WebSocketRoute(responseHeaders: headers,
                                  maxMessageBytes: max(configuration.maxFrameBytes, configuration.yjs.maxUpdateBytes + 64),
                                  makeEndpoint: { YjsEndpoint(relay: self, room: room) })
        }
        return nil
    }

    /// Token of an upgrade request: `?token=`, a `token.<JWT>` subprotocol, or `Authorization: Bearer`.
    static func token(from request: WebSocketRequest) -> String? {
        token(query: request.query["token"], subprotocols: request.offeredSubprotocols,
              authorization: request.headers["Authorization"].first)
    }

    /// The one rule for where a client's token may travel, in this order of preference.
    static func token(query: String?, subprotocols: [String], authorization: String?) -> String? {
        if let t = query, !t.isEmpty { return t }
        for p in subprotocols where p.hasPrefix("token.") { return String(p.dropFirst(6)) }
        if let auth = authorization, auth.hasPrefix("Bearer ") { return String(auth.dropFirst(7)) }
        return nil
    }

    /// Admission shared by every WebSocket route: shutdown, the process cap and
    /// the per-IP cap. Returns false (after closing the session) when refused.
    func admitWebSocket(_ session: WebSocketSession) -> Bool {
        guard !shuttingDown.load(ordering: .relaxed) else {
            refuse(session, code: .shuttingDown, reason: "server shutting down; retry_after_ms=\(Int.random(in: configuration.shutdownRetryAfterMs))")
            return false
        }
        let limits = settings
        if let refusal = sessions.admit(ip: session.request.remoteIP, maxTotal: limits.maxConnections,
                                        maxPerIP: limits.maxConnectionsPerIP) {
            refuse(session, code: CloseCode.tryAgainLater, reason: refusal.reason)
            return false
        }
        return true
    }
    // A client frame's engine call comes in two flavours: `async` (any broker, from the
    // connection's inbox task) and synchronous (`engine.synchronous`, an in-process broker,
    // on the event loop). Parsing and the replies are shared.

    func handleBinary(_ bytes: [UInt8], conn: RelayConnection) async {
        guard let (channel, payload) = parseBinary(bytes, conn) else { return }
        guard await throttle(conn) else { return }
        reportBinaryPublish(await engine.publishBinary(from: conn, channel: channel, payload: payload), channel: channel, conn)
    }

    /// Waits until the site's client publish rate lets `conn` publish (false: closed with 4013).
    /// `consume`: take the token here (messages the engine does not publish itself, e.g. Yjs).
    func throttle(_ conn: RelayConnection, consume: Bool = false) async -> Bool {
        var waited = false
        while true {
            switch engine.clientPublishAdmission(conn, maxWait: configuration.clientPublishMaxWait, waited: waited, consume: consume) {
            case .now: return true
            case .refused: return false
            case .wait(let seconds):
                try? await Task.sleep(for: .milliseconds(Int64((seconds * 1000).rounded(.up)) + 1))
                waited = true
            }
        }
    }

    func handleBinaryNow(_ bytes: [UInt8], conn: RelayConnection, _ engine: SynchronousEngine) {
        guard let (channel, payload) = parseBinary(bytes, conn) else { return }
        reportBinaryPublish(engine.publishBinary(from: conn, channel: channel, payload: payload), channel: channel, conn)
    }

    func handleText(_ bytes: [UInt8], conn: RelayConnection) async {
        guard let message = parseClientFrame(bytes, conn) else { return }
        switch message {
        case .subscribe(let channels, let positions):
            reportSubscribe(await engine.subscribe(conn, channels: channels, positions: positions), conn)
        case .publish(let channel, let event, let data, let key):
            guard await throttle(conn) else { return }
            reportPublish(await engine.publish(from: conn, channel: channel, event: event, data: data, idempotencyKey: key), channel: channel, conn)
        case .presence(let channel, let state):
            reportPresence(await engine.setPresence(conn, channel: channel, state: state), channel: channel, conn)
        default:
            handleLocalFrame(message, conn)
        }
    }

    func handleTextNow(_ bytes: [UInt8], conn: RelayConnection, _ engine: SynchronousEngine) {
        guard let message = parseClientFrame(bytes, conn) else { return }
        switch message {
        case .subscribe(let channels, let positions):
            reportSubscribe(engine.subscribe(conn, channels: channels, positions: positions), conn)
        case .publish(let channel, let event, let data, let key):
            reportPublish(engine.publish(from: conn, channel: channel, event: event, data: data, idempotencyKey: key), channel: channel, conn)
        case .presence(let channel, let state):
            reportPresence(engine.setPresence(conn, channel: channel, state: state), channel: channel, conn)
        default:
            handleLocalFrame(message, conn)
        }
    }

    private func parseBinary(_ bytes: [UInt8], _ conn: RelayConnection) -> (String, [UInt8])? {
        guard let (channel, payload) = Wire.parseBinaryFrame(bytes) else {
            engine.disconnect(conn, code: .policyViolation, reason: "malformed binary frame", flushPending: true)
            return nil
        }
        return (channel, Array(payload))
    }

    private func parseClientFrame(_ bytes: [UInt8], _ conn: RelayConnection) -> ClientMessage? {
        guard let message = ClientMessage.parse(bytes) else {
            engine.disconnect(conn, code: .policyViolation, reason: "malformed frame", flushPending: true)
            return nil
        }
        return message
    }

    private func reportBinaryPublish(_ result: Result<PublishReceipt, PublishError>, channel: String, _ conn: RelayConnection) {
        switch result {
        case .success: publishedMessages.wrappingAdd(1, ordering: .relaxed)
        case .failure(let e): _ = engine.send(Wire.error(code: e.code, message: "binary publish refused: \(e.message)", channel: channel), to: conn)
        }
    }

    private func reportSubscribe(_ result: SubscribeResult, _ conn: RelayConnection) {
        for e in result.entries {
            switch e.outcome {
            case .forbidden:
                _ = engine.send(Wire.error(code: .forbidden, message: "channel outside the token's prefixes", channel: e.channel), to: conn)
            case .invalidChannel:
                _ = engine.send(Wire.error(code: .invalidChannel, message: "invalid channel name", channel: e.channel), to: conn)
            default: break
            }
        }
    }

    private func reportPublish(_ result: Result<PublishReceipt, PublishError>, channel: String, _ conn: RelayConnection) {
        switch result {
        case .success: publishedMessages.wrappingAdd(1, ordering: .relaxed)
        case .failure(let e): _ = engine.send(Wire.error(code: e.code, message: "publish refused: \(e.message)", channel: channel), to: conn)
        }
    }

    private func reportPresence(_ result: Result<PresenceOutcome, PresenceError>, channel: String, _ conn: RelayConnection) {
        if case .failure(let e) = result {
            _ = engine.send(Wire.error(code: e.code, message: "presence refused", channel: channel), to: conn)
        }
    }

    /// Frames that need no broker: unsubscribe, in-band `auth`, keepalive.
    private func handleLocalFrame(_ message: ClientMessage, _ conn: RelayConnection) {
        switch message {
        case .unsubscribe(let channels):
            _ = engine.unsubscribe(conn, channels: channels)
        case .auth(let token):
            let checked = tokens.grant(for: token, sse: false)
            guard case .success(let grant) = checked, grant.siteID == conn.siteID,
                  case .success = engine.refreshGrant(conn, grant) else {
                // The wordsocket client treats this error as a 4001 close; close with 4001 too.
                var reason = "invalid token: refresh refused"
                if case .failure(let r) = checked { reason = r.reason }
                _ = engine.send(Wire.error(code: .unauthorized, message: "token refused"), to: conn)
                engine.disconnect(conn, code: .invalidToken, reason: reason, flushPending: true)
                return
            }
        default:
            break
        }
    }
}

/// `/ws`: one wordsocket connection. With an in-process broker every call runs on the
/// connection's event loop (`engine.synchronous`); with a broker to await they come
/// one at a time from the session's inbox task. Either way, one at a time and in order.
final class RelaySocketEndpoint: WebSocketEndpoint, @unchecked Sendable {
    let relay: RelayService
    /// An in-process broker: handle everything on the event loop, no task per message.
    private let onEventLoop: SynchronousEngine?
    // Touched only by the serialized calls.
    private var connection: RelayConnection?
    private var admitted = false
    /// True while the connection waits for an `auth` first frame (the timer and the inbox race for it).
    private let awaitingAuth = Atomic<Bool>(false)

    init(relay: RelayService) {
        self.relay = relay
        onEventLoop = relay.engine.synchronous
    }

    func handleOnEventLoop(_ job: WebSocketSession.Job, _ session: WebSocketSession) -> Bool {
        guard let sync = onEventLoop else { return false }
        // A client over its publish rate is served by the inbox task, which waits for the
        // rate (and keeps the order of everything behind it); the event loop never waits.
        if case .message = job, let conn = connection, relay.engine.clientPublishWouldWait(conn) { return false }
        switch job {
        case .opened: open(session)
        case .message(let message):
            guard let conn = accept(message, session) else { break }
            switch message {
            case .text(let bytes): relay.handleTextNow(bytes, conn: conn, sync)
            case .binary(let bytes): relay.handleBinaryNow(bytes, conn: conn, sync)
            }
        case .closed: close(session)
        }
        return true
    }

    func opened(_ session: WebSocketSession) async { open(session) }

    func received(_ message: WebSocketMessage, _ session: WebSocketSession) async {
        guard let conn = accept(message, session) else { return }
        switch message {
        case .text(let bytes): await relay.handleText(bytes, conn: conn)
        case .binary(let bytes): await relay.handleBinary(bytes, conn: conn)
        }
    }

    func closed(_ session: WebSocketSession) async { close(session) }

    private func open(_ session: WebSocketSession) {
        guard relay.admitWebSocket(session) else { return }
        admitted = true
        if let token = RelayService.token(from: session.request) {
            authenticate(token, session)
            return
        }
        // No token in the URL, subprotocol or header: an `auth` first frame within 10 s.
        awaitingAuth.store(true, ordering: .relaxed)
        session.schedule(in: .seconds(10)) { [self] in
            if awaitingAuth.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
                relay.refuse(session, code: CloseCode.invalidToken, reason: "token required: send {\"type\":\"auth\",\"token\":…} first")
            }
        }
    }

    private func authenticate(_ token: String, _ session: WebSocketSession) {
        let grant: ConnectionGrant
        switch relay.tokens.grant(for: token, sse: false) {
        case .success(let g): grant = g
        case .failure(let refusal):
            relay.refuse(session, code: refusal.code, reason: refusal.reason)
            return
        }
        switch relay.engine.connect(grant, onWake: { session.wake() }) {
        case .success(let conn):
            connection = conn
            relay.sessions.add(SessionRegistry.Entry(connection: conn, isSSE: false, activity: session.activity))
            session.attach(conn)
        case .failure(let refusal):
            relay.refuse(session, code: refusal.code, reason: refusal.reason)
        }
    }

    /// The connection a message is for, or nil when it was consumed (the `auth` first
    /// frame) or must be ignored (not connected, or closing).
    private func accept(_ message: WebSocketMessage, _ session: WebSocketSession) -> RelayConnection? {
        if awaitingAuth.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
            guard case .text(let bytes) = message, case .auth(let token)? = ClientMessage.parse(bytes) else {
                relay.refuse(session, code: .invalidToken, reason: "token required: send {\"type\":\"auth\",\"token\":…} first")
                return nil
            }
            authenticate(token, session)
            return nil
        }
        guard let conn = connection, !conn.isClosed else { return nil }
        return conn
    }

    /// `pong` (and `ping`) frames only prove liveness, which the handler has recorded.
    func handledOnEventLoop(_ message: WebSocketMessage) -> Bool {
        guard case .text(let bytes) = message, bytes.count <= 64, !awaitingAuth.load(ordering: .relaxed) else { return false }
        switch ClientMessage.parse(bytes) {
        case .pong?, .ping?: return true
        default: return false
        }
    }

    private func close(_ session: WebSocketSession) {
        awaitingAuth.store(false, ordering: .relaxed)
        if let conn = connection {
            relay.engine.disconnect(conn, code: .normal, reason: "client closed")
            relay.sessions.remove(conn)
            connection = nil
        }
        if admitted {
            relay.sessions.leave(ip: session.request.remoteIP)
            admitted = false
        }
    }
}
