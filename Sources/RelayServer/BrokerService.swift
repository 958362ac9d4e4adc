import RelayCore
import ServiceLifecycle

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
