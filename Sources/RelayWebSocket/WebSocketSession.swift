import RelayProtocol
import Foundation
import DequeModule
import NIOCore
import NIOHTTP1
import RelayCore
import Synchronization

/// What an endpoint sees of the upgrade request.
public struct WebSocketRequest: Sendable {
    /// The path, percent-encoded as sent (`/yjs/post%3A1`).
    public let path: String
    /// Query parameters, percent-decoded.
    public let query: [String: String]
    public let headers: HTTPHeaders
    /// The client's IP address as text: the TCP peer's ("unknown" when not an
    /// IP socket), or the forwarded one when the peer is a trusted proxy.
    public let remoteIP: String

    public init(head: HTTPRequestHead, remoteAddress: SocketAddress?, trustedProxies: TrustedProxies = .none) {
        let uri = Array(head.uri.utf8)
        if let q = uri.firstIndex(of: UInt8(ascii: "?")) {
            path = String(decoding: uri[..<q], as: UTF8.self)
            var query: [String: String] = [:]
            for pair in uri[(q + 1)...].split(separator: UInt8(ascii: "&")) {
                let eq = pair.firstIndex(of: UInt8(ascii: "="))
                let key = Self.formDecode(pair[..<(eq ?? pair.endIndex)])
                if query[key] == nil { query[key] = eq.map { Self.formDecode(pair[($0 + 1)...]) } ?? "" }
            }
            self.query = query
        } else {
            path = head.uri
            query = [:]
        }
        headers = head.headers
        let peer = remoteAddress?.ipAddress ?? "unknown"
        remoteIP = trustedProxies.isEmpty ? peer
            : trustedProxies.clientAddress(peer: peer, forwarded: head.headers["Forwarded"],
                                           xForwardedFor: head.headers["X-Forwarded-For"])
    }

    /// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte), on bytes;
    /// a malformed escape is kept as is, invalid UTF-8 is repaired.
    static func formDecode(_ bytes: ArraySlice<UInt8>) -> String {
        if !bytes.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let c = bytes[i]
            if c == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if c == UInt8(ascii: "%"), i + 2 < bytes.endIndex, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 2
            } else {
                out.append(c)
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Offered subprotocols (`Sec-WebSocket-Protocol`, comma-separated, possibly repeated).
    public var offeredSubprotocols: [String] {
        headers["Sec-WebSocket-Protocol"].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

/// The application side of one WebSocket connection. The session calls these
/// one at a time, in order, from a task it starts when there is work (an idle
/// connection holds no task), so implementations may keep per-connection state
/// without locks.
public protocol WebSocketEndpoint: AnyObject, Sendable {
    /// The upgrade completed.
    func opened(_ session: WebSocketSession) async
    /// A complete message arrived.
    func received(_ message: WebSocketMessage, _ session: WebSocketSession) async
    /// The TCP connection is gone; nothing follows.
    func closed(_ session: WebSocketSession) async
    /// Called on the event loop before a message is queued: true when the message
    /// needs no further handling (a keepalive answer), so no task is started for it.
    func handledOnEventLoop(_ message: WebSocketMessage) -> Bool
    /// Called on the event loop, in place of the async call, when nothing is queued or
    /// running for this connection: true when the endpoint handled the job right there.
    func handleOnEventLoop(_ job: WebSocketSession.Job, _ session: WebSocketSession) -> Bool
}

extension WebSocketEndpoint {
    public func handledOnEventLoop(_ message: WebSocketMessage) -> Bool { false }
    public func handleOnEventLoop(_ job: WebSocketSession.Job, _ session: WebSocketSession) -> Bool { false }
}

/// The bridge between a connection's event-loop handler and its endpoint:
/// a serial inbox for the endpoint's calls, the engine's wake-up, and close.
/// Thread-safe; every NIO call hops to the channel's event loop.
public final class WebSocketSession: Sendable {
    public let request: WebSocketRequest
    public let eventLoop: any EventLoop
    let handler: NIOLoopBound<WebSocketConnectionHandler>
    let endpoint: any WebSocketEndpoint
    /// Last frame of any kind from the client (Unix ms), for idle detection.
    public let activity: ActivityStamp

    /// One call for the endpoint.
    public enum Job: Sendable {
        case opened
        case message(WebSocketMessage)
        case closed
    }

    struct Inbox {
        var jobs: Deque<Job> = []
        var bytes = 0
        var running = false
        var readPaused = false
    }
    private let inbox = Mutex(Inbox())
    /// Queued inbound bytes above which the handler stops reading from the socket.
    let maxInboxBytes: Int

    public init(request: WebSocketRequest, eventLoop: any EventLoop, handler: WebSocketConnectionHandler,
         endpoint: any WebSocketEndpoint, maxInboxBytes: Int) {
        self.request = request
        self.eventLoop = eventLoop
        self.handler = NIOLoopBound(handler, eventLoop: eventLoop)
        self.endpoint = endpoint
        self.maxInboxBytes = maxInboxBytes
        self.activity = ActivityStamp(nowMs: SystemClock.nowMs)
    }

    // MARK: Engine side (any thread)

    /// Starts writing `connection`'s outbox to the socket. The engine's wake-up
    /// (see `RelayEngine.connect(_:onWake:)`) must call `wake()`.
    public func attach(_ connection: RelayConnection) {
        let handler = self.handler
        eventLoop.execute { handler.value.attach(connection) }
    }

    /// The connection's outbox has items: drain it on the event loop.
    @inline(__always)
    public func wake() {
        let handler = self.handler
        eventLoop.execute { handler.value.drainOutbox() }
    }

    /// Sends a close frame (before any engine connection exists) and closes.
    public func close(code: CloseCode, reason: String) {
        let handler = self.handler
        eventLoop.execute { handler.value.sendClose(code: code.rawValue, reason: reason) }
    }

    /// Runs `body` on the event loop after `delay` unless the connection is gone.
    public func schedule(in delay: TimeAmount, _ body: @escaping @Sendable () -> Void) {
        eventLoop.scheduleTask(in: delay, body)
    }

    // MARK: Handler side (event loop)

    /// Queues a job; starts the runner when idle. Returns false when the inbox
    /// is over its byte budget (the handler then pauses reading).
    public func enqueue(_ job: Job) -> Bool {
        // Only the event loop enqueues, so "idle" cannot change before the endpoint runs
        // the job inline; order is kept because nothing earlier is pending.
        if inbox.withLock({ !$0.running && $0.jobs.isEmpty }) && endpoint.handleOnEventLoop(job, self) {
            return true
        }
        let size: Int
        if case .message(let m) = job { size = m.byteCount } else { size = 0 }
        let (start, overBudget): (Bool, Bool) = inbox.withLock { s in
            s.jobs.append(job)
            s.bytes += size
            let over = s.bytes > maxInboxBytes
            if over { s.readPaused = true }
            if s.running { return (false, over) }
            s.running = true
            return (true, over)
        }
        if start { Task { await self.runJobs() } }
        return !overBudget
    }

    private func runJobs() async {
        while true {
            let next: (Job, Bool)? = inbox.withLock { s in
                guard let job = s.jobs.popFirst() else {
                    s.running = false
                    return nil
                }
                if case .message(let m) = job { s.bytes -= m.byteCount }
                var resume = false
                if s.readPaused && s.bytes <= maxInboxBytes / 2 {
                    s.readPaused = false
                    resume = true
                }
                return (job, resume)
            }
            guard let (job, resume) = next else { return }
            if resume {
                let handler = self.handler
                eventLoop.execute { handler.value.resumeReading() }
            }
            switch job {
            case .opened: await endpoint.opened(self)
            case .message(let m): await endpoint.received(m, self)
            case .closed: await endpoint.closed(self)
            }
        }
    }
}

/// A last-activity time shared by a transport and the keepalive timer.
public final class ActivityStamp: Sendable {
    private let ms: Atomic<Int64>
    public init(nowMs: Int64) { ms = Atomic(nowMs) }
    public func touch(nowMs: Int64 = SystemClock.nowMs) { ms.store(nowMs, ordering: .relaxed) }
    public var lastMs: Int64 { ms.load(ordering: .relaxed) }
}
