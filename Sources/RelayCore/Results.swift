import RelayProtocol

/// Why `connect` or `refreshGrant` refused: close the transport with `code`.
public struct ConnectRefusal: Error, Sendable, Equatable {
    public var code: CloseCode
    public var reason: String
    public init(code: CloseCode, reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// Why a recovery could not be done. The client must reload state from the
/// application (never a partial gap presented as complete).
public enum RecoveryFailure: Error, Sendable, Equatable {
    /// The channel's stream changed identity (history lost, e.g. restart).
    case epochChanged
    /// The client claims an offset the stream has not reached.
    case positionAhead
    /// Publications after the client's offset are no longer in history.
    case windowPassed
    /// More than `maxRecoveredPublications` were missed.
    case tooManyMissed
}

/// Recovery outcome of a subscribe that carried a position.
public enum Recovery: Sendable, Equatable {
    /// Everything after the client's offset was replayed (possibly nothing).
    case recovered(replayed: Int)
    case failed(RecoveryFailure)

    public var succeeded: Bool { if case .recovered = self { return true } else { return false } }
}

/// Per-channel outcome of a subscribe.
public enum SubscribeOutcome: Sendable, Equatable {
    /// Subscribed; `position` is the channel's current position after any
    /// replay; `recovery` is nil when no position was given.
    case subscribed(position: StreamPosition, recovery: Recovery?)
    /// Already subscribed on this connection; nothing replayed.
    case alreadySubscribed(position: StreamPosition)
    /// Outside the token's subscribe prefixes, or another site's channel.
    case forbidden
    /// Empty, too long or with control characters.
    case invalidChannel
    /// Not processed: the connection is closed (e.g. 4009 during this call).
    case notProcessed

    public var isSubscribed: Bool {
        switch self {
        case .subscribed, .alreadySubscribed: return true
        default: return false
        }
    }
}

/// A subscribe call's outcomes, in request order.
public struct SubscribeResult: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// As the client spelled it.
        public var channel: String
        public var outcome: SubscribeOutcome
    }
    public var entries: [Entry]
    /// Set when the engine closed the connection during the call (4009).
    public var closedWith: CloseCode?

    public subscript(channel: String) -> SubscribeOutcome? {
        entries.first { $0.channel == channel }?.outcome
    }
}

/// An accepted publication.
public struct PublishReceipt: Sendable, Equatable {
    /// Full channel name.
    public var channel: String
    public var position: StreamPosition
    /// Connections the frame was enqueued to on this node (0 for a duplicate).
    public var deliveries: Int
    /// True when an earlier publish with the same idempotency key was accepted; nothing was delivered.
    public var duplicate: Bool
}

/// Why a publish was refused. `httpStatus`/`code` give the HTTP mapping.
public enum PublishError: Error, Sendable, Equatable {
    case siteNotFound
    case invalidChannel
    /// Outside the publish prefixes or another site's channel.
    case forbidden
    /// The relay-owned `wps:` namespace.
    case reservedChannel
    case invalidJSON
    case invalidEvent
    case invalidIdempotencyKey
    case messageTooLarge(limit: Int)
    /// Monthly quota exhausted: HTTP 429 `quota_exceeded`.
    case quotaExceeded(limit: Int)
    /// Client publish rate exceeded (the engine also closes with 4013).
    case rateLimited
    case connectionClosed
    /// Broker mode: the broker failed, or a synchronous publish was called
    /// (use the `async` variant).
    case brokerUnavailable

    public var httpStatus: Int {
        switch self {
        case .siteNotFound: return 404
        case .invalidChannel, .invalidJSON, .invalidEvent, .invalidIdempotencyKey: return 400
        case .forbidden, .reservedChannel: return 403
        case .messageTooLarge: return 413
        case .quotaExceeded, .rateLimited: return 429
        case .connectionClosed: return 410
        case .brokerUnavailable: return 503
        }
    }

    /// A sentence for the `message` of an error body or frame.
    public var message: String {
        switch self {
        case .siteNotFound: return "unknown or revoked site"
        case .invalidChannel: return "invalid channel name"
        case .forbidden: return "channel outside the token's publish prefixes"
        case .reservedChannel: return "the wps: namespace is reserved for the relay"
        case .invalidJSON: return "data is not valid JSON"
        case .invalidEvent: return "invalid event name"
        case .invalidIdempotencyKey: return "invalid idempotency key"
        case .messageTooLarge(let limit): return "payload over the site's max_message_bytes (\(limit) bytes)"
        case .quotaExceeded(let limit): return "monthly message quota (\(limit)) exhausted"
        case .rateLimited: return "client publish rate exceeded"
        case .connectionClosed: return "connection closed"
        case .brokerUnavailable: return "broker unavailable"
        }
    }

    /// Error code for `{"error":…}` bodies and WebSocket error frames.
    public var code: ErrorCode {
        switch self {
        case .siteNotFound: return .siteNotFound
        case .invalidChannel: return .invalidChannel
        case .forbidden: return .forbidden
        case .reservedChannel: return .reservedChannel
        case .invalidJSON: return .invalidJSON
        case .invalidEvent: return .invalidEvent
        case .invalidIdempotencyKey: return .invalidIdempotencyKey
        case .messageTooLarge: return .messageTooLarge
        case .quotaExceeded: return .quotaExceeded
        case .rateLimited: return .rateLimited
        case .connectionClosed: return .connectionClosed
        case .brokerUnavailable: return .unavailable
        }
    }
}

/// Presence change outcome.
public enum PresenceOutcome: Sendable, Equatable {
    case joined
    case updated
    case left
    /// `state: null` for a channel where the connection was not a member.
    case notMember
}

public enum PresenceError: Error, Sendable, Equatable {
    case invalidChannel
    /// Outside the publish prefixes, another site's channel, or `wps:`.
    case forbidden
    case invalidState
    case stateTooLarge(limit: Int)
    case memberLimitReached(limit: Int)
    /// Presence on more channels than `maxChannelsPerConnection`.
    case tooManyChannels
    case connectionClosed
    /// Broker mode: the broker failed, or the synchronous variant was called.
    case unavailable

    public var code: ErrorCode {
        switch self {
        case .invalidChannel: return .invalidChannel
        case .forbidden: return .forbidden
        case .invalidState: return .invalidState
        case .stateTooLarge: return .stateTooLarge
        case .memberLimitReached: return .memberLimitReached
        case .tooManyChannels: return .tooManyChannels
        case .connectionClosed: return .connectionClosed
        case .unavailable: return .unavailable
        }
    }
}

/// A presence member as returned by queries.
public struct PresenceMember: Sendable, Equatable {
    /// Connection-scoped id (`RelayConnection.presenceID`).
    public var id: String
    /// Raw JSON state.
    public var state: [UInt8]

    public init(id: String, state: [UInt8]) {
        self.id = id
        self.state = state
    }
}

/// Result of an in-band token refresh.
public struct GrantRefresh: Sendable, Equatable {
    public var expiresAt: Int64
    /// Full names of channels dropped because the new grant no longer reaches them.
    public var revokedChannels: [String]
}

/// Result of a history query.
public enum HistoryResult: Sendable, Equatable {
    /// Publications after `since` (or all retained), oldest first, and the current position.
    case publications([PublicationSummary], position: StreamPosition)
    case failed(RecoveryFailure, position: StreamPosition)
}

/// A history entry without its encodings.
public struct PublicationSummary: Sendable, Equatable {
    public var channel: String
    public var event: String
    public var payload: Payload
    public var position: StreamPosition
}

/// A site's connection counters (for `/site/stats`).
public struct SiteStats: Sendable, Equatable {
    public var activeConnections: Int
    public var maxConnections: Int
}

/// `RelayEngine.clientPublishAdmission(_:maxWait:)`: go, wait, or closed (4013).
public enum ClientPublishAdmission: Sendable, Equatable {
    case now
    case wait(seconds: Double)
    case refused
}
