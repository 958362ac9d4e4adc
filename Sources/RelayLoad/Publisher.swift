import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix

/// Counters of one publishing step.
public struct PublishStepResult: Sendable {
    public var targetRate: Double
    public var seconds: Double
    public var sent: UInt64 = 0
    public var accepted: UInt64 = 0
    public var failed: UInt64 = 0
    /// Scheduled but never sent (the publisher fell behind the target rate).
    public var unsent: UInt64 = 0
    public var statuses: [Int: Int] = [:]
    public var firstError: String?
    /// Accepted publishes per channel index in this step.
    public var acceptedPerChannel: [UInt64] = []
    public var latency: LatencySummary
    public var achievedRate: Double { seconds > 0 ? Double(accepted) / seconds : 0 }
}

/// One keep-alive HTTP/1.1 connection; one request in flight at a time, so the
/// publishes of a channel (always on the same connection) reach the server in order.
final class PublishConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    unowned let publisher: Publisher
    let index: Int
    var context: ChannelHandlerContext?
    var queue: [(channel: Int, seq: UInt64)] = []
    var head = 0
    /// Requests written and not yet answered, oldest first (HTTP/1.1 answers in order).
    var inFlight: [(channel: Int, seq: UInt64, sent: UInt64)] = []
    var status = 0
    var body = ByteBuffer()

    init(publisher: Publisher, index: Int) {
        self.publisher = publisher
        self.index = index
    }

    var pending: Int { queue.count - head }

    func enqueue(channel: Int, seq: UInt64) {
        queue.append((channel, seq))
        trySend()
    }

    func dropQueued() -> Int {
        let n = pending
        queue.removeAll(keepingCapacity: true)
        head = 0
        return n
    }

    func trySend() {
        guard let context else { return }
        var wrote = false
        while inFlight.count < publisher.pipelineDepth && head < queue.count {
            write(context: context)
            wrote = true
        }
        if wrote { context.flush() }
    }

    func write(context: ChannelHandlerContext) {
        let item = queue[head]
        head += 1
        if head > 4096 && head * 2 > queue.count { queue.removeFirst(head); head = 0 }
        let now = MonoClock.nanos()
        let payload = publisher.makePayload?(item.channel, item.seq, now) ?? Payload.make(ts: now, seq: item.seq, size: publisher.payloadSize)
        let req = publisher.target.publishRequest(channel: publisher.channelNames[item.channel], payload: payload)
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: publisher.hostHeader)
        for (k, v) in req.headers { headers.add(name: k, value: v) }
        headers.add(name: "Content-Length", value: String(req.body.count))
        var buf = context.channel.allocator.buffer(capacity: req.body.count)
        buf.writeBytes(req.body)
        inFlight.append((item.channel, item.seq, now))
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: req.uri, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        publisher.step.sent += 1
        publisher.onSent?(item.channel, item.seq, now)
    }

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        trySend()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.context = context }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): status = Int(h.status.code); body.clear()
        case .body(var b): if body.readableBytes < 512 { body.writeBuffer(&b) }
        case .end:
            if !inFlight.isEmpty {
                let f = inFlight.removeFirst()
                publisher.completed(channel: f.channel, seq: f.seq, sent: f.sent, status: status,
                                    body: body.readableBytes > 0 ? String(buffer: body) : "")
            }
            trySend()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        for f in inFlight {
            publisher.completed(channel: f.channel, seq: f.seq, sent: f.sent, status: 0, body: "connection closed")
        }
        inFlight = []
        publisher.reconnect(self)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Publishes at a target rate over HTTP, round-robin over channels; runs on one event loop.
public final class Publisher: @unchecked Sendable {
    public let target: LoadTarget
    public let loop: EventLoop
    public let channelNames: [String]
    public let payloadSize: Int
    /// Requests in flight per connection (HTTP/1.1 pipelining; answers and order are kept).
    public var pipelineDepth = 1
    /// Payload of (channel index, sequence number, monotonic send instant); default `Payload.make`.
    /// Set before `start`; called on the publisher's loop.
    public var makePayload: (@Sendable (Int, UInt64, UInt64) -> [UInt8])?
    /// Called on the publisher's loop when a request is written: (channel, seq, mono ns).
    public var onSent: (@Sendable (Int, UInt64, UInt64) -> Void)?
    /// Called on the publisher's loop when a request is answered 2xx: (channel, seq, mono ns).
    public var onAccepted: (@Sendable (Int, UInt64, UInt64) -> Void)?
    let hostHeader: String
    var connections: [PublishConnection] = []
    /// Next sequence number per channel minus one.
    var nextSeq: [UInt64]
    /// Accepted publishes per channel over the publisher's life.
    public private(set) var acceptedTotal: [UInt64]
    var step: PublishStepResult
    var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    var scheduledCount: UInt64 = 0
    var cursor = 0
    var windowClosed = false
    var closing = false

    public init(target: LoadTarget, loop: EventLoop, channelNames: [String], payloadSize: Int) {
        self.target = target
        self.loop = loop
        self.channelNames = channelNames
        self.payloadSize = payloadSize
        self.hostHeader = "\(target.host):\(target.port)"
        self.nextSeq = Array(repeating: 0, count: channelNames.count)
        self.acceptedTotal = Array(repeating: 0, count: channelNames.count)
        self.step = PublishStepResult(targetRate: 0, seconds: 0, latency: LatencySummary(Histogram<UInt64>(highestTrackableValue: 10)))
    }

    /// Opens `count` connections.
    public func start(connections count: Int) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.connections = (0..<max(1, count)).map { PublishConnection(publisher: self, index: $0) }
            let futures = self.connections.map { self.open($0) }
            return EventLoopFuture.andAllSucceed(futures, on: self.loop)
        }
    }

    func open(_ c: PublishConnection) -> EventLoopFuture<Void> {
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHTTPClientHandlers()
                    try ch.pipeline.syncOperations.addHandler(c)
                }
            }
            .connect(host: target.host, port: target.port)
            .map { _ in }
    }

    func reconnect(_ c: PublishConnection) {
        guard !closing else { return }
        let fresh = PublishConnection(publisher: self, index: c.index)
        fresh.queue = Array(c.queue[c.head...])
        connections[c.index] = fresh
        loop.scheduleTask(in: .milliseconds(10)) { _ = self.open(fresh) }
    }

    func completed(channel: Int, seq: UInt64, sent: UInt64, status: Int, body: String) {
        let micros = (MonoClock.nanos() - sent) / 1000
        _ = latency.record(min(max(1, micros), 120_000_000))
        step.statuses[status, default: 0] += 1
        if (200..<300).contains(status) {
            step.accepted += 1
            step.acceptedPerChannel[channel] += 1
            acceptedTotal[channel] += 1
            onAccepted?(channel, seq, MonoClock.nanos())
        } else {
            step.failed += 1
            if step.firstError == nil { step.firstError = "HTTP \(status): \(body.prefix(200))" }
        }
    }

    var inFlightOrQueued: Int { connections.reduce(0) { $0 + $1.pending + $1.inFlight.count } }

    /// Publishes `rate` messages per second (0: as fast as the connections go, closed loop)
    /// for `seconds`, then waits up to `drain` seconds for answers.
    public func runStep(rate: Double, seconds: Double, drain: Double = 5) -> EventLoopFuture<PublishStepResult> {
        loop.flatSubmit {
            self.step = PublishStepResult(targetRate: rate, seconds: seconds, latency: LatencySummary(Histogram<UInt64>(highestTrackableValue: 10)))
            self.step.acceptedPerChannel = Array(repeating: 0, count: self.channelNames.count)
            self.latency.reset()
            let promise = self.loop.makePromise(of: PublishStepResult.self)
            let start = MonoClock.nanos()
            self.scheduledCount = 0
            self.windowClosed = false
            let tick: TimeAmount = .milliseconds(1)
            let task = self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: tick) { task in
                let elapsed = Double(MonoClock.nanos() - start) / 1e9
                if elapsed >= seconds {
                    task.cancel()
                    self.finishStep(start: start, drainUntil: MonoClock.nanos() + UInt64((drain + 30) * 1e9), promise: promise)
                    return
                }
                let due: UInt64
                if rate > 0 {
                    due = UInt64(elapsed * rate)
                } else {
                    // Closed loop: keep two requests queued per connection.
                    due = self.scheduledCount + UInt64(max(0, self.connections.count * (self.pipelineDepth + 1) - self.inFlightOrQueued))
                }
                while self.scheduledCount < due {
                    self.schedule()
                    self.scheduledCount += 1
                }
            }
            _ = task
            return promise.futureResult
        }
    }

    func schedule() {
        let ch = cursor % channelNames.count
        cursor += 1
        nextSeq[ch] += 1
        let conn = connections[ch % connections.count]
        conn.enqueue(channel: ch, seq: nextSeq[ch])
    }

    /// At the end of the window: publishes still queued are dropped (the publisher fell
    /// behind; counted as unsent), requests in flight are waited for so that every
    /// publication the server saw is counted as accepted or failed.
    func finishStep(start: UInt64, drainUntil: UInt64, promise: EventLoopPromise<PublishStepResult>) {
        if !windowClosed {
            windowClosed = true
            var unsent = 0
            for c in connections { unsent += c.dropQueued() }
            step.unsent = UInt64(unsent)
            step.seconds = Double(MonoClock.nanos() - start) / 1e9
        }
        if connections.contains(where: { !$0.inFlight.isEmpty }) && MonoClock.nanos() < drainUntil {
            loop.scheduleTask(in: .milliseconds(2)) { self.finishStep(start: start, drainUntil: drainUntil, promise: promise) }
            return
        }
        step.latency = LatencySummary(latency)
        promise.succeed(step)
    }

    public func close() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.closing = true
            let fs = self.connections.compactMap { $0.context?.channel.close() }
            return EventLoopFuture.whenAllComplete(fs, on: self.loop).map { _ in }
        }
    }

    public func acceptedSnapshot() -> EventLoopFuture<[UInt64]> {
        loop.submit { self.acceptedTotal }
    }
}
