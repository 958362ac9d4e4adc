/// An error code of the public protocol: the `error` member of HTTP error
/// bodies (`{"error":<code>,"message":…}`), the `code` of WebSocket error
/// frames (`{"type":"error","code":<code>,…}`) and of SSE `wps.error` events.
/// Every code relayd answers with is defined here once; `Docs/protocol.md`
/// lists them with their HTTP statuses.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    // Request shape (400).
    /// Headers unusable (signature headers missing or unparseable).
    public static let malformedRequest = ErrorCode(rawValue: "malformed_request")
    /// The body breaks the JSON rules or lacks a required member.
    public static let invalidBody = ErrorCode(rawValue: "invalid_body")
    /// Empty, too long or with control characters.
    public static let invalidChannel = ErrorCode(rawValue: "invalid_channel")
    /// A publish whose `data` is not JSON (engine API).
    public static let invalidJSON = ErrorCode(rawValue: "invalid_json")
    public static let invalidEvent = ErrorCode(rawValue: "invalid_event")
    public static let invalidIdempotencyKey = ErrorCode(rawValue: "invalid_idempotency_key")
    /// A presence state that is not JSON.
    public static let invalidState = ErrorCode(rawValue: "invalid_state")

    // Authentication (401).
    public static let unknownSiteKey = ErrorCode(rawValue: "unknown_site_key")
    public static let invalidSignature = ErrorCode(rawValue: "invalid_signature")
    public static let staleTimestamp = ErrorCode(rawValue: "stale_timestamp")
    public static let futureTimestamp = ErrorCode(rawValue: "future_timestamp")
    public static let replayedRequest = ErrorCode(rawValue: "replayed_request")
    public static let invalidAPIKey = ErrorCode(rawValue: "invalid_api_key")
    /// SSE: token missing or refused.
    public static let invalidToken = ErrorCode(rawValue: "invalid_token")
    /// WebSocket: a refused in-band `auth` (the wordsocket client treats it as a 4001 close).
    public static let unauthorized = ErrorCode(rawValue: "unauthorized")

    // Permission (403).
    /// Outside the token's prefixes, or another site's channel.
    public static let forbidden = ErrorCode(rawValue: "forbidden")
    /// The relay-owned `wps:` namespace.
    public static let reservedChannel = ErrorCode(rawValue: "reserved_channel")

    // Not found (404).
    public static let siteNotFound = ErrorCode(rawValue: "site_not_found")
    public static let notFound = ErrorCode(rawValue: "not_found")

    // Conflict (409).
    /// Admin API: a site with this key already exists.
    public static let duplicateSite = ErrorCode(rawValue: "duplicate")

    // Limits (413, 429).
    public static let payloadTooLarge = ErrorCode(rawValue: "payload_too_large")
    public static let messageTooLarge = ErrorCode(rawValue: "message_too_large")
    public static let batchTooLarge = ErrorCode(rawValue: "batch_too_large")
    public static let stateTooLarge = ErrorCode(rawValue: "state_too_large")
    public static let quotaExceeded = ErrorCode(rawValue: "quota_exceeded")
    public static let rateLimited = ErrorCode(rawValue: "rate_limited")
    /// SSE: the site's connection limit.
    public static let connectionLimit = ErrorCode(rawValue: "connection_limit")
    public static let memberLimitReached = ErrorCode(rawValue: "member_limit_reached")
    public static let tooManyChannels = ErrorCode(rawValue: "too_many_channels")
    /// SSE: relayd at `--max-connections`.
    public static let serverFull = ErrorCode(rawValue: "server_full")
    /// SSE: relayd at `--max-connections-per-ip` for this address.
    public static let tooManyConnectionsFromAddress = ErrorCode(rawValue: "too_many_connections_from_address")

    // Server state (410, 500, 503).
    public static let connectionClosed = ErrorCode(rawValue: "connection_closed")
    public static let internalError = ErrorCode(rawValue: "internal_error")
    public static let replayCacheFull = ErrorCode(rawValue: "replay_cache_full")
    public static let shuttingDown = ErrorCode(rawValue: "shutting_down")
    /// A subscribe or publish that could not be processed now; retry.
    public static let unavailable = ErrorCode(rawValue: "unavailable")

    /// Every code, for documentation checks and vectors.
    public static let all: [ErrorCode] = [
        .malformedRequest, .invalidBody, .invalidChannel, .invalidJSON, .invalidEvent, .invalidIdempotencyKey, .invalidState,
        .unknownSiteKey, .invalidSignature, .staleTimestamp, .futureTimestamp, .replayedRequest, .invalidAPIKey,
        .invalidToken, .unauthorized, .forbidden, .reservedChannel, .siteNotFound, .notFound, .duplicateSite,
        .payloadTooLarge, .messageTooLarge, .batchTooLarge, .stateTooLarge, .quotaExceeded, .rateLimited,
        .connectionLimit, .memberLimitReached, .tooManyChannels, .serverFull, .tooManyConnectionsFromAddress,
        .connectionClosed, .internalError, .replayCacheFull, .shuttingDown, .unavailable,
    ]
}
