import RelayProtocol
import DequeModule
import Synchronization

/// One item a transport takes from a connection's outbox.
public enum OutboxItem: Sendable {
    /// Write this frame as is (`kind` says text, binary or SSE bytes).
    case frame(OutboundFrame)
    /// Close the transport with this code and reason; nothing follows.
    case close(CloseCode, reason: String)
}

/// Result of putting a frame into an outbox.
enum EnqueueResult {
    case queued
    /// The outbox was already closed; the frame was discarded with the connection.
    case closed
    /// The outbox overflowed and is now closed with 4008; the engine must clean up.
    case overflow
}

/// One client connection as the engine sees it: its grant, subscriptions and
/// bounded outbox. Created by `RelayEngine.connect`; the transport drains it
/// with `next()` (one writer task) or `drain(maxItems:)` (event-loop style,
/// after the wake handler fires).
public final class RelayConnection: Sendable, Hashable, CustomStringConvertible {
    /// Engine-unique id.
    public let id: UInt64
    /// Frames this connection receives.
    public let format: WireFormat
    /// The endpoint it came through (metrics label).
    public let endpoint: Endpoint
    /// The site this connection belongs to.
    public let siteID: String
    let nodeID: String

    struct OutboxState {
        var queue: Deque<OutboundFrame> = []
        var bytes = 0
        let maxBytes: Int
        let maxFrames: Int
        var closing: (code: CloseCode, reason: String)?
        var closeDelivered = false
        var waiter: CheckedContinuation<OutboxItem?, Never>?
        var wakePending = false
        var wake: (@Sendable () -> Void)?
        /// Bytes a push-style transport holds beyond the outbox (sink mode).
        var backlog: (@Sendable () -> Int)?
    }

    struct State {
        var grant: ConnectionGrant
        var limits: SiteLimits
        var channels: [Channel] = []
        var presence: [Channel] = []
        var closed = false
        var tokens: Double
        var tokensAt: Double
        /// Since when every client publish has had to wait for the rate (nil: not throttled).
        var throttledSince: Double?

        /// Refills the client publish token bucket up to `now`.
        mutating func refillTokens(now: Double) {
            let rate = limits.clientPublishRate
            tokens = min(rate.burst, tokens + (now - tokensAt) * rate.perSecond)
            tokensAt = now
        }
    }

    let outbox: Mutex<OutboxState>
    let state: Mutex<State>

    init(id: UInt64, nodeID: String, grant: ConnectionGrant, limits: SiteLimits, outboxLimits: OutboxLimits,
         now: Double, wake: (@Sendable () -> Void)?) {
        self.id = id
        self.nodeID = nodeID
        self.format = grant.wireFormat
        self.endpoint = grant.endpoint
        self.siteID = grant.siteID
        outbox = Mutex(OutboxState(maxBytes: outboxLimits.maxBytes, maxFrames: outboxLimits.maxFrames, wake: wake))
        state = Mutex(State(grant: grant, limits: limits, tokens: limits.clientPublishRate.burst, tokensAt: now))
    }

    func setBacklog(_ backlog: @escaping @Sendable () -> Int) {
        outbox.withLock { $0.backlog = backlog }
    }

    /// The id used in presence frames: `"<nodeID>-<id>"`.
    public var presenceID: String { "\(nodeID)-\(id)" }

    /// The current grant (prefixes expanded to `site:{id}:` form).
    public var grant: ConnectionGrant { state.withLock { $0.grant } }

    /// Full names of the subscribed channels.
    public var subscribedChannels: [String] { state.withLock { $0.channels.map(\.name.full) } }

    /// Whether the engine has closed (or the transport has disconnected) this connection.
    public var isClosed: Bool { outbox.withLock { $0.closing != nil } }

    /// Bytes waiting in the outbox.
    public var queuedBytes: Int { outbox.withLock { $0.bytes } }

    /// Frames waiting in the outbox.
    public var queuedFrames: Int { outbox.withLock { $0.queue.count } }

    public var description: String { "conn(\(presenceID), \(format))" }

    public static func == (a: RelayConnection, b: RelayConnection) -> Bool { a === b }
    public func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }

    // MARK: Producer side (engine)

    /// Appends `frame`; never blocks. Overflow closes the outbox with 4008.
    @inline(__always)
    func enqueue(_ frame: OutboundFrame) -> EnqueueResult {
        var resume: CheckedContinuation<OutboxItem?, Never>?
        var wake: (@Sendable () -> Void)?
        let result: EnqueueResult = outbox.withLock { s in
            if s.closing != nil { return .closed }
            if let w = s.waiter {
                s.waiter = nil
                resume = w
                return .queued
            }
            let size = frame.bytes.count
            let held = s.backlog?() ?? 0
            // A connection with nothing pending always takes one frame, even
            // one larger than the limit (a 1 MiB Yjs update to a caught-up client).
            if (s.bytes + held > 0 && s.bytes + held + size > s.maxBytes) || s.queue.count >= s.maxFrames {
                s.queue.removeAll()
                s.bytes = 0
                s.closing = (.slowConsumer, "slow consumer: outbox overflow, reconnect and recover")
                if !s.wakePending { s.wakePending = true; wake = s.wake }
                return .overflow
            }
            s.queue.append(frame)
            s.bytes += size
            if !s.wakePending { s.wakePending = true; wake = s.wake }
            return .queued
        }
        if let resume {
            resume.resume(returning: .frame(frame))
        } else {
            wake?()
        }
        return result
    }

    /// Closes the outbox. `discardPending` drops queued frames (the usual
    /// case); `false` lets the transport flush them before the close item.
    /// Returns false if it was already closed.
    @discardableResult
    func closeOutbox(_ code: CloseCode, reason: String, discardPending: Bool) -> Bool {
        var resume: CheckedContinuation<OutboxItem?, Never>?
        var wake: (@Sendable () -> Void)?
        let closedNow: Bool = outbox.withLock { s in
            guard s.closing == nil else { return false }
            s.closing = (code, reason)
            if discardPending { s.queue.removeAll(); s.bytes = 0 }
            if let w = s.waiter {
                s.waiter = nil
                s.closeDelivered = true
                resume = w
            } else if !s.wakePending {
                s.wakePending = true
                wake = s.wake
            }
            return true
        }
        resume?.resume(returning: .close(code, reason: reason))
        wake?()
        return closedNow
    }

    // MARK: Consumer side (transport)

    /// The next item, suspending while the outbox is empty. Returns `nil`
    /// after the close item was delivered, or if the calling task is
    /// cancelled. Call from one task at a time.
    public func next() async -> OutboxItem? {
        if let item = takeImmediate() { return item.value }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<OutboxItem?, Never>) in
                let immediate: Immediate? = outbox.withLock { s in
                    if let item = Self.pop(&s) { return item }
                    if Task.isCancelled { return Immediate(value: nil) }
                    s.waiter = cont
                    return nil
                }
                if let immediate { cont.resume(returning: immediate.value) }
            }
        } onCancel: {
            let w: CheckedContinuation<OutboxItem?, Never>? = outbox.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
            w?.resume(returning: nil)
        }
    }

    /// Takes up to `maxItems` available items without waiting (the close item
    /// comes last). Event-loop transports call this after the wake handler.
    public func drain(maxItems: Int = .max) -> [OutboxItem] {
        outbox.withLock { s in
            var out: [OutboxItem] = []
            while out.count < maxItems, let item = Self.pop(&s), let v = item.value {
                out.append(v)
            }
            if s.queue.isEmpty { s.wakePending = false }
            return out
        }
    }

    /// Drains and discards everything queued; returns (frames, bytes). For
    /// benchmarks and tests that only count deliveries.
    public func discardQueued() -> (frames: Int, bytes: Int) {
        outbox.withLock { s in
            let r = (s.queue.count, s.bytes)
            s.queue.removeAll(keepingCapacity: true)
            s.bytes = 0
            s.wakePending = false
            return r
        }
    }

    /// An `AsyncSequence` over `next()`.
    public var items: Items { Items(connection: self) }

    public struct Items: AsyncSequence, Sendable {
        let connection: RelayConnection
        public func makeAsyncIterator() -> Iterator { Iterator(connection: connection) }
        public struct Iterator: AsyncIteratorProtocol {
            let connection: RelayConnection
            public mutating func next() async -> OutboxItem? { await connection.next() }
        }
    }

    struct Immediate { let value: OutboxItem? }

    private func takeImmediate() -> Immediate? {
        outbox.withLock { Self.pop(&$0) }
    }

    /// Pops one item: a frame, else the close item once, else `nil` value
    /// after close; `nil` (no Immediate) when the caller must wait.
    private static func pop(_ s: inout OutboxState) -> Immediate? {
        if let f = s.queue.popFirst() {
            s.bytes -= f.bytes.count
            return Immediate(value: .frame(f))
        }
        s.wakePending = false
        if let c = s.closing {
            if s.closeDelivered { return Immediate(value: nil) }
            s.closeDelivered = true
            return Immediate(value: .close(c.code, reason: c.reason))
        }
        return nil
    }
}
