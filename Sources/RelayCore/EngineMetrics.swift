import RelayProtocol
import Metrics
import Synchronization

/// The engine's metrics, created once through the configured factory.
/// Per-delivery counts are aggregated per publication (one increment per fan-out).
final class EngineMetrics: Sendable {
    let connections: Gauge
    let subscriptions: Gauge
    let channels: Gauge
    let publicationsIn: [Counter]  // by PublishSource.rawValue
    let publicationsOut: Counter
    let bytesOut: Counter
    let outboxOverflowCloses: Counter
    let recoveryRecovered: Counter
    let recoveryFailed: Counter
    let recoveredPublications: Counter
    let quotaRejections: Counter
    let rateLimited: Counter
    /// Broker mode: publish round trips, publishes awaiting the broker, and failed calls.
    let brokerPublishLatency: Timer
    let brokerPending: Gauge
    let brokerPendingCount = Atomic<Int>(0)
    let brokerFailures: Counter
    /// By endpoint, then close code (`relay_disconnects_total{endpoint,code,name}`).
    let disconnectsByCode: [Endpoint: [UInt16: Counter]]
    let disconnectsOther: [Endpoint: Counter]

    let connectionCount = Atomic<Int>(0)
    let subscriptionCount = Atomic<Int>(0)
    let channelCount = Atomic<Int>(0)
    let publicationCount = Atomic<Int>(0)

    func publishedIn(_ source: PublishSource) {
        publicationsIn[source.rawValue].increment()
        publicationCount.add(1, ordering: .relaxed)
    }


    init(factory: any MetricsFactory) {
        connections = Gauge(label: "relay_connections", factory: factory)
        subscriptions = Gauge(label: "relay_subscriptions", factory: factory)
        channels = Gauge(label: "relay_channels", factory: factory)
        publicationsIn = PublishSource.allCases.map {
            Counter(label: "relay_publications_in_total", dimensions: [("source", $0.label)], factory: factory)
        }
        publicationsOut = Counter(label: "relay_publications_out_total", factory: factory)
        bytesOut = Counter(label: "relay_bytes_out_total", factory: factory)
        outboxOverflowCloses = Counter(label: "relay_outbox_overflow_closes_total", factory: factory)
        recoveryRecovered = Counter(label: "relay_recovery_total", dimensions: [("result", "recovered")], factory: factory)
        recoveryFailed = Counter(label: "relay_recovery_total", dimensions: [("result", "failed")], factory: factory)
        recoveredPublications = Counter(label: "relay_recovered_publications_total", factory: factory)
        quotaRejections = Counter(label: "relay_quota_rejections_total", factory: factory)
        rateLimited = Counter(label: "relay_client_rate_limited_total", factory: factory)
        brokerPublishLatency = Timer(label: "relay_broker_publish_seconds", preferredDisplayUnit: .seconds, factory: factory)
        brokerPending = Gauge(label: "relay_broker_pending_publishes", factory: factory)
        brokerFailures = Counter(label: "relay_broker_failures_total", factory: factory)
        var byCode: [Endpoint: [UInt16: Counter]] = [:]
        var other: [Endpoint: Counter] = [:]
        for endpoint in Endpoint.allCases {
            for info in CloseCode.table where info.endpoints.contains(endpoint) || endpoint == .embedded || endpoint == .sse {
                byCode[endpoint, default: [:]][info.code.rawValue] = Counter(
                    label: "relay_disconnects_total",
                    dimensions: [("endpoint", endpoint.rawValue), ("code", info.code.description), ("name", info.name)],
                    factory: factory)
            }
            other[endpoint] = Counter(label: "relay_disconnects_total",
                                      dimensions: [("endpoint", endpoint.rawValue), ("code", "other"), ("name", "other")], factory: factory)
        }
        disconnectsByCode = byCode
        disconnectsOther = other
    }

    func disconnected(_ code: CloseCode, endpoint: Endpoint) {
        (disconnectsByCode[endpoint]?[code.rawValue] ?? disconnectsOther[endpoint])?.increment()
    }

    func addConnections(_ d: Int) { connections.record(connectionCount.add(d, ordering: .relaxed).newValue) }
    func addSubscriptions(_ d: Int) { subscriptions.record(subscriptionCount.add(d, ordering: .relaxed).newValue) }
    func addBrokerPending(_ d: Int) { brokerPending.record(brokerPendingCount.add(d, ordering: .relaxed).newValue) }
    func addChannels(_ d: Int) { channels.record(channelCount.add(d, ordering: .relaxed).newValue) }
}

/// Who published.
public enum PublishSource: Int, Sendable, CaseIterable {
    /// HTTP publish from WordPress (or an embedding server).
    case server
    /// A browser connection.
    case client
    /// The relay itself (`wps:connections`).
    case system

    var label: String {
        switch self {
        case .server: return "server"
        case .client: return "client"
        case .system: return "system"
        }
    }
}
