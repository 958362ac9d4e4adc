import Logging
import Metrics

/// Outbox bounds per connection. Exceeding either closes with 4008.
public struct OutboxLimits: Sendable, Equatable {
    /// Default 4 MiB: room for two of the largest default payloads (2 MiB), so a
    /// subscriber still writing a large Yjs update is not closed by the next one.
    /// Memory is only used by a connection that has fallen behind.
    public var maxBytes: Int
    public var maxFrames: Int
    public init(maxBytes: Int = 4 << 20, maxFrames: Int = 16_384) {
        self.maxBytes = maxBytes
        self.maxFrames = maxFrames
    }
}

/// History retention for a channel namespace.
public struct HistoryPolicy: Sendable, Equatable {
    /// Publications kept (0 disables history: recovery only succeeds with nothing missed).
    public var maxPublications: Int
    /// Retained bytes (payload plus encoded frame).
    public var maxBytes: Int
    /// Maximum age in seconds.
    public var maxAge: Double
    public init(maxPublications: Int = 200, maxBytes: Int = 1 << 20, maxAge: Double = 300) {
        self.maxPublications = maxPublications
        self.maxBytes = maxBytes
        self.maxAge = maxAge
    }
    public static let disabled = HistoryPolicy(maxPublications: 0, maxBytes: 0, maxAge: 0)
}

/// History policies: one default plus overrides by namespace (the bare
/// channel name up to its first `:`, e.g. `yjs`, `woo`, `events`).
public struct HistoryConfiguration: Sendable, Equatable {
    public var defaultPolicy: HistoryPolicy
    public var namespaces: [String: HistoryPolicy]
    public init(defaultPolicy: HistoryPolicy = HistoryPolicy(), namespaces: [String: HistoryPolicy] = [
        "wps": HistoryPolicy(maxPublications: 1, maxBytes: 4096, maxAge: 300),
    ]) {
        self.defaultPolicy = defaultPolicy
        self.namespaces = namespaces
    }
    public func policy(for channel: ChannelName) -> HistoryPolicy {
        namespaces[String(channel.namespace)] ?? defaultPolicy
    }
}

/// Presence bounds.
public struct PresenceLimits: Sendable, Equatable {
    /// Largest accepted state JSON in bytes.
    public var maxStateBytes: Int
    /// Members per channel.
    public var maxMembersPerChannel: Int
    public init(maxStateBytes: Int = 2048, maxMembersPerChannel: Int = 1000) {
        self.maxStateBytes = maxStateBytes
        self.maxMembersPerChannel = maxMembersPerChannel
    }
}

/// Engine configuration. Every field has a production default.
public struct EngineConfiguration: Sendable {
    public var outbox = OutboxLimits()
    public var history = HistoryConfiguration()
    public var presence = PresenceLimits()
    /// A recovery that would replay more than this fails (`recovered: false`).
    public var maxRecoveredPublications = 1000
    /// Idempotency keys are remembered per channel for this long (seconds).
    public var idempotencyWindow: Double = 300
    public var maxIdempotencyKeyLength = 128
    /// Longest accepted event name in UTF-8 bytes.
    public var maxEventNameLength = 255
    /// Minimum seconds between two `wps.connections` events of one site; changes in between are coalesced
    /// and flushed by `tick()`.
    public var connectionsEventInterval: Double = 1
    /// Seconds past `exp` before `closeExpired()` closes a connection with 4001.
    public var tokenExpiryGrace: Double = 0
    /// Broker mode: how long a presence member outlives its node without a
    /// refresh (`brokerMaintenance()` refreshes; call it well within this).
    public var brokerPresenceTTL: Double = 60
    /// Prefix of presence member ids (`"<nodeID>-<n>"`); must be unique per node in a cluster.
    public var nodeID = "n1"
    /// Channel-map shards (power of two recommended).
    public var channelShards = 64
    public var clock: any RelayClock = SystemClock()
    /// Where channel streams live. `LocalBroker` (default, `.inProcess`): this
    /// engine's own channel state, single node, with the synchronous fast path
    /// (`RelayEngine.synchronous`). Any other broker (Redis) shares streams
    /// between nodes.
    public var broker: any RelayBroker = LocalBroker()
    /// Presence members and connection counts across nodes, for a broker that
    /// is not `.inProcess`; `nil` (default): the broker itself when it is a
    /// `PresenceManager` (Redis, InMemory); with neither, presence calls answer `.unavailable`.
    public var presenceManager: (any PresenceManager)? = nil

    /// The presence manager in use: `presenceManager`, else the broker's own.
    public var effectivePresenceManager: (any PresenceManager)? {
        presenceManager ?? (broker as? any PresenceManager)
    }
    /// `nil`: the global `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)? = nil
    public var logger = Logger(label: "relay.core")

    public init() {}
}
