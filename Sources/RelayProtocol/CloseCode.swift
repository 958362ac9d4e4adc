/// A WebSocket close code of relayd. One table for every endpoint: a code
/// means one thing wherever it is sent (`protocol/vectors/close-codes.json`,
/// `Docs/protocol.md`). Application codes are in 4000–4999; 4001, 4003 and
/// 4029 keep the meanings the wordsocket client expects on `/ws`.
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: normal closure.
    public static let normal = CloseCode(1000)
    /// 1002: RFC 6455 protocol error.
    public static let protocolError = CloseCode(1002)
    /// 1007: a text message or close reason that is not UTF-8.
    public static let invalidUTF8 = CloseCode(1007)
    /// 1008: malformed frame (not JSON, unknown type, bad binary layout, bad y-protocols message),
    /// or an awareness update over the room's awareness limits.
    public static let policyViolation = CloseCode(1008)
    /// 1009: a frame or message over the size limit.
    public static let messageTooBig = CloseCode(1009)
    /// 1011: unexpected server condition.
    public static let internalError = CloseCode(1011)
    /// 1013: relayd at its process-wide or per-address connection cap, or (several nodes) a
    /// subscribe it could not make because the broker is unreachable.
    public static let tryAgainLater = CloseCode(1013)
    /// 4001: token missing, invalid or expired; the reason starts with
    /// `token required`, `token expired` or `invalid token`.
    public static let invalidToken = CloseCode(4001)
    /// 4002: nothing received for the idle timeout (`/ws`; `/yjs` after twice the timeout).
    public static let idle = CloseCode(4002)
    /// 4003: site unknown, archived or removed (the client stops).
    public static let siteNotFound = CloseCode(4003)
    /// 4004: invalid room name, or the token does not grant the room (`/yjs`).
    public static let roomForbidden = CloseCode(4004)
    /// 4008: slow consumer: the outbox overflowed. Reconnect and recover with positions.
    public static let slowConsumer = CloseCode(4008)
    /// 4009: too many channels on this connection (`/ws`).
    public static let tooManyChannels = CloseCode(4009)
    /// 4010: the Yjs document would exceed its size cap.
    public static let documentTooLarge = CloseCode(4010)
    /// 4011: one Yjs update over the update size cap.
    public static let updateTooLarge = CloseCode(4011)
    /// 4012: the Yjs room's connection cap.
    public static let roomFull = CloseCode(4012)
    /// 4013: client publish rate exceeded for longer than the wait allowed (`/ws`, and `/yjs` messages).
    public static let rateLimited = CloseCode(4013)
    /// 4014: the Yjs room's distinct-user cap.
    public static let tooManyCollaborators = CloseCode(4014)
    /// 4029: the site's connection limit (the client retries with backoff).
    public static let connectionLimit = CloseCode(4029)
    /// 4500: server shutting down; the reason carries `retry_after_ms=<n>`.
    public static let shuttingDown = CloseCode(4500)

    /// What a client should do after a close.
    public enum ClientAction: String, Sendable {
        case reconnectBackoff = "reconnect_backoff"
        case reconnectRecover = "reconnect_recover"
        case reconnectAfterRetryAfter = "reconnect_after_retry_after_ms"
        case remintOnceThenStop = "remint_once_then_stop"
        case stop
    }

    /// One row of the table.
    public struct Info: Sendable {
        public let code: CloseCode
        /// Stable name (metrics label, vectors).
        public let name: String
        public let endpoints: Set<Endpoint>
        public let client: ClientAction
        /// The Gutenberg sync `ConnectionErrorCode` a `/yjs` provider reports; nil: plain retry.
        public let providerError: String?
    }

    /// Every code relayd sends.
    public static let table: [Info] = {
        let both: Set<Endpoint> = [.ws, .yjs]
        return [
            Info(code: .normal, name: "normal", endpoints: both, client: .reconnectBackoff, providerError: nil),
            Info(code: .protocolError, name: "protocol_error", endpoints: both, client: .reconnectBackoff, providerError: "unknown-error"),
            Info(code: .invalidUTF8, name: "invalid_utf8", endpoints: both, client: .reconnectBackoff, providerError: "unknown-error"),
            Info(code: .policyViolation, name: "malformed_message", endpoints: both, client: .reconnectBackoff, providerError: "unknown-error"),
            Info(code: .messageTooBig, name: "message_too_big", endpoints: both, client: .reconnectBackoff, providerError: "document-size-limit-exceeded"),
            Info(code: .internalError, name: "internal_error", endpoints: both, client: .reconnectBackoff, providerError: nil),
            Info(code: .tryAgainLater, name: "try_again_later", endpoints: both, client: .reconnectBackoff, providerError: nil),
            Info(code: .invalidToken, name: "token_invalid", endpoints: both, client: .remintOnceThenStop, providerError: "authentication-failed"),
            Info(code: .idle, name: "idle", endpoints: both, client: .reconnectBackoff, providerError: nil),
            Info(code: .siteNotFound, name: "site_not_found", endpoints: both, client: .stop, providerError: "authentication-failed"),
            Info(code: .roomForbidden, name: "room_forbidden", endpoints: [.yjs], client: .stop, providerError: "authentication-failed"),
            Info(code: .slowConsumer, name: "slow_consumer", endpoints: both, client: .reconnectRecover, providerError: nil),
            Info(code: .tooManyChannels, name: "too_many_channels", endpoints: [.ws], client: .reconnectBackoff, providerError: nil),
            Info(code: .documentTooLarge, name: "document_too_large", endpoints: [.yjs], client: .stop, providerError: "document-size-limit-exceeded"),
            Info(code: .updateTooLarge, name: "update_too_large", endpoints: [.yjs], client: .stop, providerError: "document-size-limit-exceeded"),
            Info(code: .roomFull, name: "room_full", endpoints: [.yjs], client: .reconnectBackoff, providerError: "connection-limit-exceeded"),
            Info(code: .rateLimited, name: "rate_limited", endpoints: both, client: .reconnectBackoff, providerError: nil),
            Info(code: .tooManyCollaborators, name: "too_many_collaborators", endpoints: [.yjs], client: .reconnectBackoff, providerError: "connection-limit-exceeded"),
            Info(code: .connectionLimit, name: "site_connection_limit", endpoints: both, client: .reconnectBackoff, providerError: nil),
            Info(code: .shuttingDown, name: "shutting_down", endpoints: both, client: .reconnectAfterRetryAfter, providerError: nil),
        ]
    }()

    /// This code's row, if relayd sends it.
    public var info: Info? { Self.table.first { $0.code == self } }

    /// Stable name for metrics and logs (`"other"` for a code relayd never sends).
    public var name: String { info?.name ?? "other" }

    /// Whether a client should reconnect after this code.
    public var clientShouldReconnect: Bool {
        switch info?.client {
        case .stop?, .remintOnceThenStop?: return false
        case nil: return true
        default: return self != .policyViolation && self != .messageTooBig
        }
    }

    public var description: String { String(rawValue) }
}

/// The endpoints of the public protocol (metrics dimension, close-code table).
public enum Endpoint: String, Sendable, Hashable, CaseIterable {
    case ws = "/ws"
    case sse = "/sse"
    case yjs = "/yjs"
    /// A connection made by an embedding server through the engine API.
    case embedded
}
