/// WebSocket close codes the engine uses. Application codes are in the
/// 4000–4999 range and compatible with the wordsocket client (4001, 4003 and
/// 4029 have the meanings its client expects; every other code makes it back
/// off and reconnect). See `Docs/core.md`.
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: normal closure (client or transport initiated, or unsubscribe-all).
    public static let normal = CloseCode(1000)
    /// 1008: policy violation / malformed frame.
    public static let policyViolation = CloseCode(1008)
    /// 1009: a frame or publication exceeded the site's message size limit (RFC 6455).
    public static let messageTooBig = CloseCode(1009)
    /// 1011: unexpected server condition.
    public static let internalError = CloseCode(1011)
    /// 4001: token invalid or expired (the client re-mints once).
    public static let invalidToken = CloseCode(4001)
    /// 4003: site not found or revoked (the client stops).
    public static let siteNotFound = CloseCode(4003)
    /// 4008: slow consumer: the outbox overflowed. Reconnect and recover with positions.
    public static let slowConsumer = CloseCode(4008)
    /// 4009: too many channels on this connection.
    public static let tooManyChannels = CloseCode(4009)
    /// 4013: client publish rate exceeded.
    public static let rateLimited = CloseCode(4013)
    /// 4029: the site's connection limit is reached (client retries with backoff).
    public static let connectionLimit = CloseCode(4029)
    /// 4500: server shutting down; the reason carries `retry_after_ms=<n>`.
    public static let shuttingDown = CloseCode(4500)

    /// Whether a client should reconnect after this code.
    public var clientShouldReconnect: Bool {
        switch self {
        case .invalidToken, .siteNotFound, .policyViolation, .messageTooBig: return false
        default: return true
        }
    }

    /// Stable label for metrics dimensions.
    public var description: String { String(rawValue) }
}
