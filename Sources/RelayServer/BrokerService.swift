import Metrics
import RelayCore
import ServiceLifecycle
import Synchronization

/// Runs an engine's broker (its connections and resubscriptions) as a service: put it
/// before the listeners in a `ServiceGroup`, so it starts first and stops last. A broker
/// with nothing to run (`LocalBroker`) holds the slot until graceful shutdown.
public struct BrokerService: Service {
    public let broker: any RelayBroker
    public init(broker: any RelayBroker) { self.broker = broker }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await broker.run() }
        try? await gracefulShutdown()
    }
}

/// `relay_broker_up{endpoint}` (1 or 0) and `relay_broker_reconnects_total{endpoint}` from the
/// broker's health, brought up to date when `/metrics` is scraped. (Publish latency, pending
/// publishes and failed calls are the engine's: `relay_broker_publish_seconds`,
/// `relay_broker_pending_publishes`, `relay_broker_failures_total`.)
final class BrokerMetrics: Sendable {
    let factory: any MetricsFactory
    private let reported = Mutex<[String: Int]>([:])

    init(factory: any MetricsFactory) { self.factory = factory }

    func update(_ health: BrokerHealth) {
        for e in health.endpoints {
            Gauge(label: "relay_broker_up", dimensions: [("endpoint", e.name)], factory: factory).record(e.connected ? 1 : 0)
            let delta = reported.withLock { r -> Int in
                defer { r[e.name] = e.reconnects }
                return e.reconnects - (r[e.name] ?? 0)
            }
            let counter = Counter(label: "relay_broker_reconnects_total", dimensions: [("endpoint", e.name)], factory: factory)
            if delta > 0 { counter.increment(by: Int64(delta)) }
        }
    }
}
