import RelayProtocol
import Synchronization

/// Push-style transport seam for one connection, for transports that would
/// rather be handed frames than drain an outbox (e.g. a NIO channel handler
/// that schedules writes on its event loop).
///
/// The engine still owns the bounded outbox: frames are queued without
/// blocking the publisher and pushed into the sink in order, on the thread
/// that queued them. `deliver` and `close` are never called concurrently for
/// one sink, but they may be called **while engine locks are held**: they
/// must not block and must not call the engine synchronously (hop to an event
/// loop or task first, e.g. `eventLoop.execute { … }`, including for the
/// `disconnect` a close leads to).
public protocol RelayTransportSink: AnyObject, Sendable {
    /// Writes or schedules the frame.
    func deliver(_ frame: OutboundFrame)
    /// Closes the transport with this code and reason. Called once, last.
    func close(code: CloseCode, reason: String)
    /// Bytes handed to `deliver` that are not yet written to the network
    /// (read under the outbox lock: keep it cheap, e.g. an atomic). They count
    /// toward the outbox byte limit, so a transport that stops draining is
    /// closed with 4008 like any slow consumer.
    var queuedBytes: Int { get }
}

extension RelayEngine {
    /// `connect` with a push-style sink instead of an outbox drainer.
    public func connect(_ grant: ConnectionGrant, sink: any RelayTransportSink) -> Result<RelayConnection, ConnectRefusal> {
        let pump = SinkPump(sink: sink)
        let result = connect(grant, onWake: { pump.pump() })
        if case .success(let conn) = result {
            conn.setBacklog { [weak sink] in sink?.queuedBytes ?? 0 }
            pump.connection.withLock { $0.value = conn }
            pump.pump()
        }
        return result
    }
}

final class SinkPump: Sendable {
    /// Weak: the connection holds this pump (its wake closure); a strong reference back made a
    /// cycle that kept every sink-mode connection alive after it closed (found by LeakSanitizer).
    /// The engine holds the connection until it is disconnected.
    struct WeakConnection: @unchecked Sendable { weak var value: RelayConnection? }
    let sink: any RelayTransportSink
    let connection = Mutex(WeakConnection())
    let order = Mutex<Void>(())

    init(sink: any RelayTransportSink) {
        self.sink = sink
    }

    func pump() {
        guard let conn = connection.withLock({ $0.value }) else { return }
        order.withLock { _ in
            for item in conn.drain() {
                switch item {
                case .frame(let f): sink.deliver(f)
                case .close(let code, let reason): sink.close(code: code, reason: reason)
                }
            }
        }
    }
}
