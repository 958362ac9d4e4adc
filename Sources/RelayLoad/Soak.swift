import RelayJSON
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
#if canImport(Glibc)
import Glibc
#endif

/// Settings of `relayctl bench soak` (see `Benchmarks/soak/run.sh`).
public struct SoakConfig: Sendable {
    /// Seconds of load in the measured cycle.
    public var seconds: Double = 600
    /// Seconds of load in the warm-up cycle (same load, shorter); 0 = none (baseline = fresh relayd).
    public var warmupSeconds: Double = 60
    /// Seconds without any load after each cycle before the resources are read.
    public var settleSeconds: Double = 60
    /// `/ws` connections open at any time: held ones + the churning population + client publishers.
    public var connections = 15_000
    /// Churned connections opened (and as many closed) per second at steady state.
    public var churnRate: Double = 300
    /// Mean life of a churned connection, seconds (uniform in [0.5×, 1.5×]); the churning
    /// population is `churnRate × churnLifetime`.
    public var churnLifetime: Double = 10
    /// Data channels (subscriber i of the held ones on channel i mod this).
    public var dataChannels = 1000
    /// Of the data channels, how many are published by WebSocket clients (the rest by `POST /publish`).
    public var clientChannels = 200
    public var httpPublishRate: Double = 300
    public var clientPublishRate: Double = 100
    /// WebSocket connections making the client publishes (each ≤ 128 channels, < 50/s).
    public var clientPublishers = 4
    public var payloadBytes = 200
    public var presenceChannels = 20
    /// Held connections that also watch a presence channel, per presence channel.
    public var watchersPerPresenceChannel = 4
    /// Share of churned connections that enter presence (and watch that channel).
    public var presenceShare: Double = 0.3
    public var yjsRooms = 6
    public var yjsEditorsPerRoom = 3
    /// Updates per second per editor.
    public var yjsUpdateRate: Double = 4
    /// Short-lived y-websocket clients per second that join a room, fetch the document, leave.
    public var yjsJoinRate: Double = 1
    /// Longest wait for acknowledgements and deliveries after the load stops.
    public var drainSeconds: Double = 15
    public var csvPath: String?
    /// Testing the tester: held and churned subscribers ignore every Nth publication they receive
    /// (0: never), so a run must report losses and fail.
    public var debugDropEvery = 0
    // The resource rule (after the measured cycle and its settle, against the baseline).
    public var rssTolerancePercent: Double = 20
    public var rssToleranceMiB: Double = 32
    public var fdTolerance = 10
    public var threadTolerance = 0
    public init() {}

    /// Held `/ws` subscribers (watchers included).
    public var stableCount: Int { max(0, connections - churnPopulation - clientPublishers) }
    public var churnPopulation: Int { Int((churnRate * churnLifetime).rounded()) }
    public var httpChannels: Int { max(0, dataChannels - clientChannels) }
}

// MARK: - Per event loop state

/// Counters of one event loop; touched only on that loop.
final class SoakLoop: @unchecked Sendable {
    let loop: EventLoop
    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }
    // Per-second window.
    var latency = SoakLoop.histogram()
    var yjsLatency = SoakLoop.histogram()
    var w = SoakWindowCounts()
    // Per cycle.
    var cycleLatency = SoakLoop.histogram()
    var cycleYjsLatency = SoakLoop.histogram()
    var c = SoakCycleCounts()
    var records: [SubscriptionWindow] = []
    var presenceAcks: [(channel: Int, m: Int)] = []
    var open: [ObjectIdentifier: SoakSocket] = [:]
    var yjsOpen: [ObjectIdentifier: YjsPeer] = [:]
    var debugCount = 0

    init(loop: EventLoop) { self.loop = loop }

    func resetCycle() {
        cycleLatency.reset()
        cycleYjsLatency.reset()
        c = SoakCycleCounts()
        records = []
        presenceAcks = []
    }

    func recordLatency(_ now: UInt64, _ ts: UInt64) {
        let us = min(max(1, now > ts ? (now - ts) / 1000 : 1), 60_000_000)
        _ = latency.record(us)
        _ = cycleLatency.record(us)
    }

    func recordYjsLatency(_ now: UInt64, _ ts: UInt64) {
        let us = min(max(1, now > ts ? (now - ts) / 1000 : 1), 60_000_000)
        _ = yjsLatency.record(us)
        _ = cycleYjsLatency.record(us)
    }

    func unexpected(_ code: Int, _ what: String) {
        w.unexpectedCloses += 1
        c.unexpectedCloses[code, default: 0] += 1
        if c.firstError == nil { c.firstError = "\(what) closed by the server (\(code == -1 ? "no close frame" : String(code)))" }
    }

    func takeWindow() -> SoakWindow {
        let out = SoakWindow(latency: latency, yjsLatency: yjsLatency, counts: w,
                             openWS: open.count, openChurn: open.values.reduce(0) { $0 + ($1.role == .churn ? 1 : 0) })
        latency.reset()
        yjsLatency.reset()
        w = SoakWindowCounts()
        return out
    }
}

struct SoakWindowCounts: Sendable {
    var deliveries: UInt64 = 0
    var presenceEvents: UInt64 = 0
    var yjsUpdates: UInt64 = 0
    var connects = 0
    var closes = 0
    var connectFailures = 0
    var unexpectedCloses = 0
    var clientPublished: UInt64 = 0
    var yjsJoins = 0
}

struct SoakWindow: Sendable {
    var latency: Histogram<UInt64>
    var yjsLatency: Histogram<UInt64>
    var counts: SoakWindowCounts
    var openWS: Int
    var openChurn: Int
}

struct SoakCycleCounts: Sendable {
    var churnConnects = 0
    var churnCloses = 0
    var connectFailures = 0
    var unexpectedCloses: [Int: Int] = [:]
    var errorFrames = 0
    var misrouted: UInt64 = 0
    var firstError: String?
    var unsubscribeTimeouts = 0
    var deliveries: UInt64 = 0
    var clientEchoDuplicates: UInt64 = 0
    var yjsJoins = 0
    var yjsJoinFailures = 0
    var yjsAwarenessReceived: UInt64 = 0
}

// MARK: - /ws connections

private let pingNeedle = Array(#""ping""#.utf8)
private let subscribedNeedle = Array(#""subscribed""#.utf8)
private let unsubscribedNeedle = Array(#""unsubscribed""#.utf8)
private let errorNeedle = Array(#""type":"error""#.utf8)
private let presenceNeedle = Array(#""wps.presence""#.utf8)
private let joinNeedle = Array(#""action":"join""#.utf8)
private let pongFrame = Array(#"{"type":"pong"}"#.utf8)

final class SoakSocket: @unchecked Sendable {
    enum Role { case stable, churn, publisher }
    enum Leave { case unsubscribe, closeFrame, drop }

    let id: Int
    let role: Role
    let home: SoakLoop
    unowned let run: SoakCycle
    /// The data channel it subscribes to (-1: none, a publisher).
    let dataChannel: Int
    /// Presence channel index it watches (stable) or enters (churn); -1 none.
    let presenceChannel: Int
    /// Churner number carried in its presence state.
    let m: Int
    let leave: Leave
    let explicitPresenceLeave: Bool
    let updatePresence: Bool
    let lifetime: Double
    /// Channels a publisher owns.
    var owned: [Int] = []

    var channel: Channel?
    var ready: EventLoopPromise<Void>
    var startedAt: UInt64 = 0
    var readyAt: UInt64 = 0
    var pendingSubscribed = 0
    var unsubSentAt: UInt64 = 0
    var leaving = false
    var finished = false
    var recorded = false
    var presenceAcked = false
    var receipts = ReceiptLog()
    var watch: PresenceWatch?
    // Publisher.
    var publishing = false
    var publishedCount = 0
    var cursor = 0
    var nextSeq: [Int: UInt64] = [:]
    var echoes: [Int: ReceiptLog] = [:]

    init(id: Int, role: Role, home: SoakLoop, run: SoakCycle, dataChannel: Int, presenceChannel: Int, m: Int,
         leave: Leave, explicitPresenceLeave: Bool, updatePresence: Bool, lifetime: Double) {
        self.id = id
        self.role = role
        self.home = home
        self.run = run
        self.dataChannel = dataChannel
        self.presenceChannel = presenceChannel
        self.m = m
        self.leave = leave
        self.explicitPresenceLeave = explicitPresenceLeave
        self.updatePresence = updatePresence
        self.lifetime = lifetime
        self.ready = home.loop.makePromise(of: Void.self)
        if role == .stable && presenceChannel >= 0 { watch = PresenceWatch() }
    }

    /// Starts the connection (on any thread); `ready` completes at the last `subscribed`.
    func connect() {
        let uri = run.wsURI
        home.loop.execute {
            self.startedAt = MonoClock.nanos()
            self.home.open[ObjectIdentifier(self)] = self
            let f = self.run.connector.open(uri: uri, sourceIndex: self.id, loop: self.home.loop) { _ in
                SoakWSHandler(socket: self)
            }
            f.whenFailure { error in
                self.home.open.removeValue(forKey: ObjectIdentifier(self))
                self.home.w.connectFailures += 1
                self.home.c.connectFailures += 1
                if self.home.c.firstError == nil { self.home.c.firstError = "connect: \(error)" }
                self.ready.fail(error)
                if !self.finished {
                    self.finished = true
                    if self.role == .churn { self.run.churnEnded(failed: true) }
                }
            }
        }
    }

    func send(_ bytes: [UInt8], flush: Bool = true) {
        guard let ch = channel else { return }
        var buf = ch.allocator.buffer(capacity: bytes.count)
        buf.writeBytes(bytes)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buf)
        if flush { ch.writeAndFlush(frame, promise: nil) } else { ch.write(frame, promise: nil) }
    }

    func subscribeFrame() -> [UInt8] {
        var names: [String] = []
        if dataChannel >= 0 { names.append(run.names[dataChannel]) }
        if presenceChannel >= 0 { names.append(run.presenceNames[presenceChannel]) }
        for c in owned { names.append(run.names[c]) }
        pendingSubscribed = names.count
        var out = Array(#"{"type":"subscribe","channels":"#.utf8)
        out += JSONValue.array(names.map { .string($0) }).serialized()
        out.append(UInt8(ascii: "}"))
        return out
    }

    func presenceFrame(state: String?) -> [UInt8] {
        var out = Array(#"{"type":"presence","channel":"#.utf8)
        JSONValue.writeString(run.presenceNames[presenceChannel], into: &out)
        out += Array(#","state":"#.utf8)
        out += Array((state ?? "null").utf8)
        out.append(UInt8(ascii: "}"))
        return out
    }

    func opened(_ ch: Channel) {
        channel = ch
        home.w.connects += 1
        if role == .churn { home.c.churnConnects += 1 }
        send(subscribeFrame(), flush: role != .churn || presenceChannel < 0)
        if role == .churn && presenceChannel >= 0 {
            send(presenceFrame(state: #"{"m":\#(m)}"#))
        }
    }

    func becameReady() {
        readyAt = MonoClock.nanos()
        ready.succeed(())
        guard role == .churn else { return }
        let elapsed = Double(readyAt - startedAt) / 1e9
        let remaining = max(0.05, lifetime - elapsed)
        if updatePresence && presenceChannel >= 0 {
            home.loop.scheduleTask(in: .nanoseconds(Int64(remaining / 2 * 1e9))) {
                if !self.leaving && !self.finished { self.send(self.presenceFrame(state: #"{"m":\#(self.m),"u":1}"#)) }
            }
        }
        home.loop.scheduleTask(in: .nanoseconds(Int64(remaining * 1e9))) { self.startLeaving() }
    }

    /// A churner's end of life (also called for every churner still open when a cycle ends).
    func startLeaving() {
        guard !leaving, !finished, let ch = channel else { return }
        leaving = true
        if presenceChannel >= 0 && explicitPresenceLeave && leave != .drop { send(presenceFrame(state: nil), flush: false) }
        switch leave {
        case .unsubscribe where readyAt != 0:
            var out = Array(#"{"type":"unsubscribe","channels":["#.utf8)
            JSONValue.writeString(run.names[dataChannel], into: &out)
            out += Array("]}".utf8)
            unsubSentAt = MonoClock.nanos()
            send(out)
            ch.eventLoop.scheduleTask(in: .seconds(10)) {
                if !self.finished && self.unsubSentAt != 0 {
                    self.home.c.unsubscribeTimeouts += 1
                    if self.home.c.firstError == nil { self.home.c.firstError = "no unsubscribed within 10 s" }
                    self.unsubSentAt = 0
                    self.closeHandshake()
                }
            }
        case .drop:
            ch.close(promise: nil)
        default:
            closeHandshake()
        }
    }

    func unsubscribed() {
        guard leaving, unsubSentAt != 0 else { return }
        record(endAt: unsubSentAt)
        unsubSentAt = 0
        closeHandshake()
    }

    /// Sends close 1000; the server echoes it and closes TCP. Forced after 5 s.
    func closeHandshake() {
        guard let ch = channel else { return }
        leaving = true
        var buf = ch.allocator.buffer(capacity: 2)
        buf.writeInteger(UInt16(1000))
        ch.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: buf), promise: nil)
        ch.eventLoop.scheduleTask(in: .seconds(5)) { if !self.finished { ch.close(promise: nil) } }
    }

    /// The subscription window of the data channel, once.
    func record(endAt: UInt64) {
        guard !recorded, dataChannel >= 0, readyAt != 0 else { return }
        recorded = true
        home.records.append(SubscriptionWindow(channel: dataChannel, readyAt: readyAt, endAt: endAt, receipts: receipts))
    }

    func finish(serverCode: Int?) {
        guard !finished else { return }
        finished = true
        home.open.removeValue(forKey: ObjectIdentifier(self))
        home.w.closes += 1
        if !leaving && !run.closing {
            home.unexpected(serverCode ?? -1, role == .churn ? "a churned connection" : (role == .stable ? "a held subscriber" : "a client publisher"))
        }
        // Left without waiting for `unsubscribed`: only the gap rule.
        record(endAt: 0)
        if readyAt == 0 { ready.fail(LoadError("closed before it was ready")) }
        if role == .churn {
            home.c.churnCloses += 1
            run.churnEnded(failed: false)
        }
    }

    // Publisher.
    func publish(count: Int, payloadBytes: Int) {
        guard !owned.isEmpty else { return }
        for _ in 0..<count {
            let ch = owned[cursor % owned.count]
            cursor += 1
            let seq = (nextSeq[ch] ?? 0) + 1
            nextSeq[ch] = seq
            let now = MonoClock.nanos()
            var out = Array(#"{"type":"message","channel":"#.utf8)
            JSONValue.writeString(run.names[ch], into: &out)
            out += Array(#","event":"soak","data":"#.utf8)
            out += SoakPayload.make(ts: now, seq: seq, ch: ch, size: payloadBytes)
            out.append(UInt8(ascii: "}"))
            run.logs.sent(channel: ch, seq: seq, at: now)
            send(out, flush: false)
            home.w.clientPublished += 1
        }
        channel?.flush()
    }
}

final class SoakWSHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    let s: SoakSocket
    var serverCode: Int?

    init(socket: SoakSocket) { s = socket }

    func handlerAdded(context: ChannelHandlerContext) { s.opened(context.channel) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            let now = MonoClock.nanos()
            let buf = frame.unmaskedData
            buf.withUnsafeReadableBytes { b in handle(b, now: now) }
        case .ping, .connectionClose:
            if let code = answerControl(frame, context: context, leaving: s.leaving), serverCode == nil { serverCode = code }
        default:
            break
        }
    }

    func handle(_ b: UnsafeRawBufferPointer, now: UInt64) {
        let home = s.home
        if let p = SoakPayload.parse(b) {
            home.recordLatency(now, p.ts)
            home.w.deliveries += 1
            home.c.deliveries += 1
            if s.role == .publisher {
                s.run.logs.acked(channel: p.ch, seq: p.seq, at: now)
                if s.echoes[p.ch, default: ReceiptLog()].observe(p.seq) != .new { home.c.clientEchoDuplicates += 1 }
                return
            }
            if p.ch != s.dataChannel { home.c.misrouted += 1; return }
            if s.run.config.debugDropEvery > 0 {
                home.debugCount += 1
                if home.debugCount % s.run.config.debugDropEvery == 0 { return }
            }
            s.receipts.observe(p.seq)
            return
        }
        if Payload.contains(b, presenceNeedle) {
            home.w.presenceEvents += 1
            if s.watch != nil { watchPresence(b) }
            else if s.role == .churn && !s.presenceAcked && Payload.contains(b, joinNeedle)
                        && Payload.contains(b, Array(#"{"m":\#(s.m)"#.utf8)) {
                s.presenceAcked = true
                home.presenceAcks.append((s.presenceChannel, s.m))
            }
            return
        }
        if b.count < 64 && Payload.contains(b, pingNeedle) {
            s.send(pongFrame)
        } else if Payload.contains(b, subscribedNeedle) {
            s.pendingSubscribed -= 1
            if s.pendingSubscribed == 0 { s.becameReady() }
        } else if Payload.contains(b, unsubscribedNeedle) {
            s.unsubscribed()
        } else if Payload.contains(b, errorNeedle) {
            home.c.errorFrames += 1
            if home.c.firstError == nil { home.c.firstError = "error frame: " + String(decoding: b.prefix(300), as: UTF8.self) }
        }
    }

    func watchPresence(_ b: UnsafeRawBufferPointer) {
        guard let v = try? JSONParser.parse(Array(b)), let d = v["data"] else { return }
        func mOf(_ state: JSONValue?) -> Int? { state?["m"]?.int64Value.map(Int.init) }
        switch d["action"]?.stringValue {
        case "join": if let id = d["id"]?.stringValue { s.watch!.join(id: id, m: mOf(d["state"])) }
        case "leave": if let id = d["id"]?.stringValue { s.watch!.leave(id: id) }
        case "sync":
            let list = (d["members"]?.arrayValue ?? []).compactMap { e -> (id: String, m: Int?)? in
                guard let id = e["id"]?.stringValue else { return nil }
                return (id, mOf(e["state"]))
            }
            s.watch!.sync(list)
        default: break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        s.finish(serverCode: serverCode)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

// MARK: - /yjs peers

final class YjsPeer: @unchecked Sendable {
    enum Role { case editor, joiner }
    let role: Role
    let room: Int
    let index: Int
    let home: SoakLoop
    unowned let run: SoakCycle
    let client: UInt64
    var channel: Channel?
    var ready: EventLoopPromise<Void>
    var startedAt: UInt64 = 0
    var isReady = false
    var leaving = false
    var finished = false
    var clock: UInt64 = 0
    var seq: UInt64 = 0
    var awarenessClock: UInt64 = 0
    var typing = false
    var receipts: [UInt64: ReceiptLog] = [:]

    init(role: Role, room: Int, index: Int, home: SoakLoop, run: SoakCycle) {
        self.role = role
        self.room = room
        self.index = index
        self.home = home
        self.run = run
        self.client = UInt64.random(in: 1...UInt64(UInt32.max))
        self.ready = home.loop.makePromise(of: Void.self)
    }

    func connect() {
        home.loop.execute {
            self.startedAt = MonoClock.nanos()
            self.home.yjsOpen[ObjectIdentifier(self)] = self
            let f = self.run.connector.open(uri: self.run.yjsURI(room: self.room), sourceIndex: self.index, loop: self.home.loop) { _ in
                YjsHandler(peer: self)
            }
            f.whenFailure { error in
                self.home.yjsOpen.removeValue(forKey: ObjectIdentifier(self))
                self.finished = true
                if self.role == .joiner { self.home.c.yjsJoinFailures += 1 } else { self.home.c.connectFailures += 1 }
                self.home.w.connectFailures += 1
                if self.home.c.firstError == nil { self.home.c.firstError = "yjs connect: \(error)" }
                self.ready.fail(error)
            }
            if self.role == .joiner {
                self.home.loop.scheduleTask(in: .seconds(10)) {
                    if !self.isReady && !self.finished {
                        self.home.c.yjsJoinFailures += 1
                        if self.home.c.firstError == nil { self.home.c.firstError = "yjs join: no sync step 2 within 10 s" }
                        self.leaving = true
                        self.channel?.close(promise: nil)
                    }
                }
            }
        }
    }

    func send(_ bytes: [UInt8], flush: Bool = true) {
        guard let ch = channel else { return }
        var buf = ch.allocator.buffer(capacity: bytes.count)
        buf.writeBytes(bytes)
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: buf)
        if flush { ch.writeAndFlush(frame, promise: nil) } else { ch.write(frame, promise: nil) }
    }

    func type() {
        guard typing else { return }
        seq += 1
        let text = YjsWire.text(seq: seq, ts: MonoClock.nanos())
        send(YjsWire.syncUpdate(YjsWire.update(client: client, clock: clock, text: text)))
        clock += UInt64(text.utf8.count)
    }

    func announce() {
        guard typing else { return }
        awarenessClock += 1
        send(YjsWire.awareness(client: client, clock: awarenessClock,
                               stateJSON: #"{"user":{"name":"soak-\#(index)"},"cursor":\#(clock)}"#))
    }

    func closeHandshake() {
        guard let ch = channel else { return }
        leaving = true
        var buf = ch.allocator.buffer(capacity: 2)
        buf.writeInteger(UInt16(1000))
        ch.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: buf), promise: nil)
        ch.eventLoop.scheduleTask(in: .seconds(5)) { if !self.finished { ch.close(promise: nil) } }
    }
}

final class YjsHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    let p: YjsPeer
    var serverCode: Int?

    init(peer: YjsPeer) { p = peer }

    func handlerAdded(context: ChannelHandlerContext) {
        p.channel = context.channel
        p.home.w.connects += 1
        p.send(YjsWire.syncStep1Empty)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            let now = MonoClock.nanos()
            let msg = frame.unmaskedData.withUnsafeReadableBytes { YjsWire.parse($0) }
            switch msg {
            case .step1:
                if p.role == .editor { p.send(YjsWire.syncStep2Empty) }
            case .step2(let n):
                guard !p.isReady else { break }
                p.isReady = true
                p.ready.succeed(())
                if p.role == .joiner {
                    p.home.w.yjsJoins += 1
                    p.home.c.yjsJoins += 1
                    if n <= 2 {
                        p.home.c.yjsJoinFailures += 1
                        if p.home.c.firstError == nil { p.home.c.firstError = "yjs join: empty document" }
                    }
                    p.closeHandshake()
                }
            case .update(let client, _, let text):
                guard p.role == .editor, let text, let t = YjsWire.parseText(text) else { break }
                p.home.w.yjsUpdates += 1
                p.home.recordYjsLatency(now, t.ts)
                p.receipts[client, default: ReceiptLog()].observe(t.seq)
            case .awareness:
                p.home.c.yjsAwarenessReceived += 1
            case .other:
                break
            }
        case .ping, .connectionClose:
            if let code = answerControl(frame, context: context, leaving: p.leaving), serverCode == nil { serverCode = code }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !p.finished {
            p.finished = true
            p.typing = false
            p.home.yjsOpen.removeValue(forKey: ObjectIdentifier(p))
            p.home.w.closes += 1
            if !p.leaving && !p.run.closing { p.home.unexpected(serverCode ?? -1, p.role == .editor ? "a Yjs editor" : "a Yjs joiner") }
            if !p.isReady { p.ready.fail(LoadError("yjs connection closed before sync step 2")) }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

// MARK: - relayd's /healthz, polled on one keep-alive connection

final class HealthProbe: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let loop: EventLoop
    let host: String
    let port: Int
    var context: ChannelHandlerContext?
    var connecting = false
    var inFlight = false
    var body = ByteBuffer()
    private let lock = NSLock()
    private var _last: (connections: Int, channels: Int)?
    private var _answers = 0
    /// Answers received so far (to wait for the one just asked for).
    var answers: Int { lock.withLock { _answers } }

    init(loop: EventLoop, host: String, port: Int) {
        self.loop = loop
        self.host = host
        self.port = port
    }

    var last: (connections: Int, channels: Int)? { lock.withLock { _last } }

    func poll() {
        loop.execute {
            guard let ctx = self.context else {
                if !self.connecting { self.connect() }
                return
            }
            guard !self.inFlight else { return }
            self.inFlight = true
            var h = HTTPHeaders()
            h.add(name: "Host", value: "\(self.host):\(self.port)")
            ctx.write(self.wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/healthz", headers: h))), promise: nil)
            ctx.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func connect() {
        connecting = true
        ClientBootstrap(group: loop)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHTTPClientHandlers()
                    try ch.pipeline.syncOperations.addHandler(self)
                }
            }
            .connect(host: host, port: port)
            .whenComplete { _ in self.connecting = false }
    }

    func channelActive(context: ChannelHandlerContext) { self.context = context; inFlight = false }
    func handlerAdded(context: ChannelHandlerContext) { if context.channel.isActive { self.context = context } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: body.clear()
        case .body(var b): body.writeBuffer(&b)
        case .end:
            inFlight = false
            if let v = try? JSONParser.parse(Array(body.readableBytesView)),
               let c = v["active_connections"]?.int64Value, let ch = v["channels"]?.int64Value {
                lock.withLock { _last = (Int(c), Int(ch)); _answers += 1 }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        inFlight = false
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    func close() { loop.execute { self.context?.close(promise: nil) } }
}

// MARK: - One cycle of load

/// One cycle: ramp, load for `seconds`, drain, close everything, account.
final class SoakCycle: @unchecked Sendable {
    let label: String
    let config: SoakConfig
    let options: LoadOptions
    let target: LoadTarget
    let connector: WebSocketConnector
    let loops: [SoakLoop]
    let control: EventLoop
    let names: [String]
    let presenceNames: [String]
    let logs: PublicationLogs
    let wsURI: String
    let token: String
    var closing = false
    // Churn (on `control`).
    var churning = false
    var nextChurner = 0
    var joiners = 0
    var stables: [SoakSocket] = []
    var publishers: [SoakSocket] = []
    var editors: [YjsPeer] = []

    init(label: String, config: SoakConfig, options: LoadOptions, target: LoadTarget, connector: WebSocketConnector,
         loops: [SoakLoop], control: EventLoop, token: String) {
        self.label = label
        self.config = config
        self.options = options
        self.target = target
        self.connector = connector
        self.loops = loops
        self.control = control
        self.token = token
        let run = "soak\(label)\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        names = (0..<config.dataChannels).map { target.channelName(run: run, index: $0) }
        presenceNames = (0..<config.presenceChannels).map { target.channelName(run: run + "p", index: $0) }
        logs = PublicationLogs(channels: config.dataChannels)
        wsURI = "/ws?token=\(token)"
    }

    func yjsURI(room: Int) -> String { "/yjs/soak-room-\(room)?auth=\(token)" }

    func loop(for i: Int) -> SoakLoop { loops[i % loops.count] }

    /// A new churned connection. `initial`: one of the population opened at the start, whose
    /// lives are spread over (0, 1.5×] the mean so that their closes are spread too.
    func makeChurner(initial: Bool = false) -> SoakSocket {
        let m = nextChurner
        nextChurner += 1
        let withPresence = config.presenceChannels > 0 && Double.random(in: 0..<1) < config.presenceShare
        let r = Double.random(in: 0..<1)
        let leave: SoakSocket.Leave = r < 0.5 ? .unsubscribe : (r < 0.85 ? .closeFrame : .drop)
        let life = config.churnLifetime * (initial ? Double.random(in: 0.02...1.5) : Double.random(in: 0.5...1.5))
        let id = 1_000_000 + m
        return SoakSocket(id: id, role: .churn, home: loop(for: id), run: self, dataChannel: Int.random(in: 0..<max(1, config.dataChannels)),
                          presenceChannel: withPresence ? Int.random(in: 0..<config.presenceChannels) : -1, m: m, leave: leave,
                          explicitPresenceLeave: Bool.random(), updatePresence: Double.random(in: 0..<1) < 0.3, lifetime: life)
    }

    /// Called on a socket's loop when a churner is gone; a replacement keeps the population.
    func churnEnded(failed: Bool) {
        control.execute {
            guard self.churning else { return }
            if failed {
                self.control.scheduleTask(in: .milliseconds(200)) { self.launchChurner() }
            } else {
                self.launchChurner()
            }
        }
    }

    func launchChurner() {
        guard churning else { return }
        makeChurner().connect()
    }

    /// Opens `sockets` at `rate` per second; returns when every one is ready or failed.
    func launch(_ count: Int, rate: Double, make: @escaping @Sendable (Int) -> () -> EventLoopFuture<Void>) async {
        let start = MonoClock.nanos()
        var futures: [EventLoopFuture<Void>] = []
        var i = 0
        while i < count {
            let elapsed = Double(MonoClock.nanos() - start) / 1e9
            let allowed = rate > 0 ? min(count, Int(elapsed * rate) + 1) : count
            while i < allowed {
                futures.append(make(i)())
                i += 1
            }
            if i < count { try? await Task.sleep(for: .milliseconds(5)) }
        }
        for f in futures { _ = try? await f.get() }
    }

    func onLoops<T: Sendable>(_ body: @escaping @Sendable (SoakLoop) -> T) async -> [T] {
        var out: [T] = []
        for l in loops { if let v = try? await l.loop.submit({ body(l) }).get() { out.append(v) } }
        return out
    }

    func setPhase(_ p: String, _ sampler: SoakSampler) {
        sampler.phase = p
        progress(options, "phase \(p)")
    }

    func run(seconds: Double, sampler: SoakSampler, publisherLoop: EventLoop) async throws -> SoakCycleResult {
        let c = config
        _ = await onLoops { $0.resetCycle() }
        setPhase("ramp-\(label)", sampler)
        // Held subscribers: watchers first, then the rest; publishers.
        let watchers = c.presenceChannels * c.watchersPerPresenceChannel
        let stableCount = c.stableCount
        var list: [SoakSocket] = []
        for i in 0..<stableCount {
            let pres = i < watchers ? i % max(1, c.presenceChannels) : -1
            list.append(SoakSocket(id: i, role: .stable, home: loop(for: i), run: self, dataChannel: i % max(1, c.dataChannels),
                                   presenceChannel: pres, m: -1, leave: .closeFrame, explicitPresenceLeave: false, updatePresence: false, lifetime: 0))
        }
        for p in 0..<c.clientPublishers {
            let id = 900_000 + p
            let s = SoakSocket(id: id, role: .publisher, home: loop(for: id), run: self, dataChannel: -1, presenceChannel: -1, m: -1,
                               leave: .closeFrame, explicitPresenceLeave: false, updatePresence: false, lifetime: 0)
            s.owned = (0..<c.clientChannels).filter { $0 % c.clientPublishers == p }.map { c.httpChannels + $0 }
            list.append(s)
        }
        stables = list.filter { $0.role == .stable }
        publishers = list.filter { $0.role == .publisher }
        let rampStart = MonoClock.nanos()
        let all = list
        await launch(all.count, rate: options.connectRate) { i in { all[i].connect(); return all[i].ready.futureResult } }
        let readyHeld = await onLoops { l in l.open.values.reduce(0) { $0 + ($1.readyAt != 0 ? 1 : 0) } }.reduce(0, +)
        progress(options, "\(readyHeld)/\(all.count) held connections ready in \(String(format: "%.1f", Double(MonoClock.nanos() - rampStart) / 1e9)) s")
        // Yjs editors.
        var eds: [YjsPeer] = []
        for r in 0..<c.yjsRooms { for e in 0..<c.yjsEditorsPerRoom { let i = r * c.yjsEditorsPerRoom + e; eds.append(YjsPeer(role: .editor, room: r, index: i, home: loop(for: i), run: self)) } }
        editors = eds
        for e in eds { e.connect() }
        for e in eds { _ = try? await e.ready.futureResult.get() }
        // The churning population.
        let population = c.churnPopulation
        try await control.submit { self.churning = true }.get()
        await launch(population, rate: options.connectRate) { _ in
            {
                let s = self.control.submit { self.makeChurner(initial: true) }
                return s.flatMap { ch -> EventLoopFuture<Void> in
                    ch.connect()
                    return ch.ready.futureResult
                }
            }
        }
        progress(options, "churn population \(population) open")

        // Load.
        setPhase(label, sampler)
        let loadStart = MonoClock.nanos()
        let http = Publisher(target: target, loop: publisherLoop, channelNames: Array(names[0..<c.httpChannels]), payloadSize: c.payloadBytes)
        http.pipelineDepth = 4
        let logs = self.logs, payloadBytes = c.payloadBytes
        http.makePayload = { ch, seq, ts in SoakPayload.make(ts: ts, seq: seq, ch: ch, size: payloadBytes) }
        http.onSent = { ch, seq, t in logs.sent(channel: ch, seq: seq, at: t) }
        http.onAccepted = { ch, seq, t in logs.acked(channel: ch, seq: seq, at: t) }
        var httpStep: EventLoopFuture<PublishStepResult>?
        if c.httpChannels > 0 && c.httpPublishRate > 0 {
            try await http.start(connections: 4).get()
            httpStep = http.runStep(rate: c.httpPublishRate, seconds: seconds, drain: c.drainSeconds)
        }
        // Client publishers, editors, joiners: repeated tasks on their loops.
        var tasks: [RepeatedTask] = []
        let perPublisher = c.clientPublishers > 0 ? c.clientPublishRate / Double(c.clientPublishers) : 0
        for p in publishers where perPublisher > 0 {
            let t = try await p.home.loop.submit { () -> RepeatedTask in
                p.publishing = true
                p.publishedCount = 0
                let start = MonoClock.nanos()
                return p.home.loop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64.random(in: 0..<20)), delay: .milliseconds(20)) { _ in
                    guard p.publishing, !p.finished else { return }
                    let due = Int(Double(MonoClock.nanos() - start) / 1e9 * perPublisher)
                    if due > p.publishedCount { p.publish(count: due - p.publishedCount, payloadBytes: payloadBytes); p.publishedCount = due }
                }
            }.get()
            tasks.append(t)
        }
        if c.yjsUpdateRate > 0 {
            for e in editors where e.isReady {
                let t = try await e.home.loop.submit { () -> RepeatedTask in
                    e.typing = true
                    let period = Int64(1e9 / c.yjsUpdateRate)
                    return e.home.loop.scheduleRepeatedTask(initialDelay: .nanoseconds(Int64.random(in: 0..<period)), delay: .nanoseconds(period)) { _ in e.type() }
                }.get()
                tasks.append(t)
                let a = try await e.home.loop.submit { () -> RepeatedTask in
                    e.home.loop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64.random(in: 0..<2000)), delay: .seconds(2)) { _ in e.announce() }
                }.get()
                tasks.append(a)
            }
        }
        let joinTask: RepeatedTask? = c.yjsJoinRate > 0 && c.yjsRooms > 0 ? control.scheduleRepeatedTask(
            initialDelay: .seconds(1), delay: .nanoseconds(Int64(1e9 / c.yjsJoinRate))) { _ in
                self.joiners += 1
                let i = 500_000 + self.joiners
                YjsPeer(role: .joiner, room: self.joiners % c.yjsRooms, index: i, home: self.loop(for: i), run: self).connect()
            } : nil

        try await Task.sleep(for: .seconds(seconds))

        // Stop, drain.
        setPhase("drain-\(label)", sampler)
        let loadSeconds = Double(MonoClock.nanos() - loadStart) / 1e9
        try await control.submit { self.churning = false }.get()
        joinTask?.cancel()
        for t in tasks { t.cancel() }
        for p in publishers { try? await p.home.loop.submit { p.publishing = false }.get() }
        for e in editors { try? await e.home.loop.submit { e.typing = false }.get() }
        let httpResult = try await httpStep?.get()
        let drainUntil = MonoClock.nanos() + UInt64(c.drainSeconds * 1e9)
        // Client publishes: wait for their echoes.
        let clientChannels = Array(c.httpChannels..<c.dataChannels)
        while MonoClock.nanos() < drainUntil {
            let snap = logs.snapshot()
            if clientChannels.allSatisfy({ snap[$0].unacknowledged == 0 }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Held subscribers: wait until each has the last acknowledged publication of its channel.
        let lastAcked = (0..<c.dataChannels).map { logs.lastAckedSeq(channel: $0) }
        while MonoClock.nanos() < drainUntil {
            let behind = await onLoops { l in
                l.open.values.reduce(0) { $0 + ($1.role == .stable && $1.readyAt != 0 && $1.receipts.maxSeen < lastAcked[$1.dataChannel] ? 1 : 0) }
            }.reduce(0, +)
            if behind == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Editors: wait until each has every update of its room.
        while MonoClock.nanos() < drainUntil {
            if try await editorsSnapshot().lost == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Held windows end here: everything acknowledged was required.
        _ = await onLoops { l in for s in l.open.values where s.role == .stable { s.record(endAt: .max) } }
        // Churners still open leave the way they would have.
        _ = await onLoops { l in for s in l.open.values where s.role == .churn { s.startLeaving() } }
        let churnUntil = MonoClock.nanos() + 20_000_000_000
        while MonoClock.nanos() < churnUntil {
            let open = await onLoops { l in l.open.values.reduce(0) { $0 + ($1.role == .churn ? 1 : 0) } }.reduce(0, +)
            if open == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Presence: every watcher should see the last leaves.
        let presenceUntil = MonoClock.nanos() + UInt64(c.drainSeconds * 1e9)
        while MonoClock.nanos() < presenceUntil {
            let members = await onLoops { l in l.open.values.reduce(0) { $0 + ($1.watch?.members.count ?? 0) } }.reduce(0, +)
            if members == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let yjs = try await editorsSnapshot()
        let watches = await onLoops { l in l.open.values.compactMap { s in s.watch.map { (s.presenceChannel, $0) } } }.flatMap { $0 }
        let stableOpenAtEnd = await onLoops { l in l.open.values.reduce(0) { $0 + ($1.role == .stable ? 1 : 0) } }.reduce(0, +)

        // Close everything.
        setPhase("close-\(label)", sampler)
        closing = true
        _ = await onLoops { l in
            for s in l.open.values { s.leaving = true; s.closeHandshake() }
            for p in l.yjsOpen.values { p.closeHandshake() }
        }
        _ = try? await http.close().get()
        let closeUntil = MonoClock.nanos() + 20_000_000_000
        while MonoClock.nanos() < closeUntil {
            let open = await onLoops { l in l.open.count + l.yjsOpen.count }.reduce(0, +)
            if open == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let leftOpen = await onLoops { l in l.open.count + l.yjsOpen.count }.reduce(0, +)

        // Account.
        let finalLogs = logs.snapshot()
        let parts = await onLoops { l in (l.records, l.presenceAcks, l.c, l.cycleLatency, l.cycleYjsLatency) }
        var tally = DeliveryTally()
        var counts = SoakCycleCounts()
        var acks: [Int: [Int]] = [:]
        var lat = SoakLoop.histogram(), ylat = SoakLoop.histogram()
        for (records, packs, cc, l1, l2) in parts {
            for r in records { tally = tally + DeliveryTally.evaluate(r, log: finalLogs[r.channel]) }
            for a in packs { acks[a.channel, default: []].append(a.m) }
            counts.merge(cc)
            lat.add(l1)
            ylat.add(l2)
        }
        var presence = SoakPresenceResult()
        presence.acknowledgedJoins = acks.values.reduce(0) { $0 + $1.count }
        presence.watchers = watches.count
        for (ch, w) in watches {
            let miss = w.missing(acknowledged: acks[ch] ?? [])
            presence.missingJoins += miss.joins
            presence.missingLeaves += miss.leaves
            presence.leakedMembers += w.members.count
            presence.orderErrors += w.orderErrors
            presence.events += w.events
        }
        var pubs = SoakPublishResult()
        if let h = httpResult {
            pubs.httpSent = h.sent; pubs.httpAccepted = h.accepted; pubs.httpFailed = h.failed; pubs.httpUnsent = h.unsent
            pubs.httpFirstError = h.firstError
        }
        for ch in clientChannels {
            pubs.clientSent += UInt64(finalLogs[ch].count)
            pubs.clientUnacknowledged += UInt64(finalLogs[ch].unacknowledged)
        }
        pubs.clientEchoDuplicates = counts.clientEchoDuplicates
        return SoakCycleResult(label: label, loadSeconds: loadSeconds, stable: stables.count, stableOpenAtEnd: stableOpenAtEnd,
                               publishers: publishers.count, churnPopulation: population, counts: counts, tally: tally,
                               presence: presence, publishes: pubs, yjs: yjs, latency: LatencySummary(lat),
                               yjsLatency: LatencySummary(ylat), leftOpen: leftOpen)
    }

    func editorsSnapshot() async throws -> SoakYjsResult {
        var per: [(room: Int, client: UInt64, sent: UInt64, receipts: [UInt64: ReceiptLog], open: Bool)] = []
        for e in editors {
            per.append(try await e.home.loop.submit { (e.room, e.client, e.seq, e.receipts, !e.finished) }.get())
        }
        var r = SoakYjsResult()
        r.editors = per.count
        for rx in per {
            for tx in per where tx.room == rx.room {
                let log = rx.receipts[tx.client] ?? ReceiptLog()
                var got: UInt64 = 0
                for run in log.runs where run.lowerBound <= tx.sent {
                    got += min(run.upperBound, tx.sent) - run.lowerBound + 1
                }
                r.expected += tx.sent
                r.delivered += got
                r.lost += tx.sent - got
                r.duplicates += log.duplicates
                r.outOfOrder += log.outOfOrder
            }
            r.sent += rx.sent
        }
        let c = await onLoops { $0.c }
        r.joins = c.reduce(0) { $0 + $1.yjsJoins }
        r.joinFailures = c.reduce(0) { $0 + $1.yjsJoinFailures }
        r.awarenessReceived = c.reduce(0) { $0 + $1.yjsAwarenessReceived }
        return r
    }
}

extension SoakCycleCounts {
    mutating func merge(_ o: SoakCycleCounts) {
        churnConnects += o.churnConnects; churnCloses += o.churnCloses; connectFailures += o.connectFailures
        for (k, v) in o.unexpectedCloses { unexpectedCloses[k, default: 0] += v }
        errorFrames += o.errorFrames; misrouted += o.misrouted; if firstError == nil { firstError = o.firstError }
        unsubscribeTimeouts += o.unsubscribeTimeouts; deliveries += o.deliveries; clientEchoDuplicates += o.clientEchoDuplicates
        yjsJoins += o.yjsJoins; yjsJoinFailures += o.yjsJoinFailures; yjsAwarenessReceived += o.yjsAwarenessReceived
    }
}

// MARK: - Results

public struct SoakPresenceResult: Sendable {
    public var watchers = 0
    public var acknowledgedJoins = 0
    public var missingJoins: UInt64 = 0
    public var missingLeaves: UInt64 = 0
    public var leakedMembers = 0
    public var orderErrors: UInt64 = 0
    public var events: UInt64 = 0
    var json: JSONValue {
        .object([("watchers", .int(Int64(watchers))), ("acknowledged_joins", .int(Int64(acknowledgedJoins))),
                 ("missing_joins", .int(Int64(missingJoins))), ("missing_leaves", .int(Int64(missingLeaves))),
                 ("leaked_members", .int(Int64(leakedMembers))), ("order_errors", .int(Int64(orderErrors))),
                 ("watcher_events", .int(Int64(events)))])
    }
}

public struct SoakPublishResult: Sendable {
    public var httpSent: UInt64 = 0, httpAccepted: UInt64 = 0, httpFailed: UInt64 = 0, httpUnsent: UInt64 = 0
    public var httpFirstError: String?
    public var clientSent: UInt64 = 0, clientUnacknowledged: UInt64 = 0, clientEchoDuplicates: UInt64 = 0
    var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("http_sent", .int(Int64(httpSent))), ("http_accepted", .int(Int64(httpAccepted))), ("http_failed", .int(Int64(httpFailed))),
            ("http_unsent", .int(Int64(httpUnsent))), ("client_sent", .int(Int64(clientSent))),
            ("client_unacknowledged", .int(Int64(clientUnacknowledged))), ("client_echo_duplicates", .int(Int64(clientEchoDuplicates))),
        ]
        if let e = httpFirstError { m.append(("http_first_error", .string(e))) }
        return .object(m)
    }
}

public struct SoakYjsResult: Sendable {
    public var editors = 0
    public var sent: UInt64 = 0, expected: UInt64 = 0, delivered: UInt64 = 0, lost: UInt64 = 0
    public var duplicates: UInt64 = 0, outOfOrder: UInt64 = 0
    public var joins = 0, joinFailures = 0
    public var awarenessReceived: UInt64 = 0
    var json: JSONValue {
        .object([("editors", .int(Int64(editors))), ("updates_sent", .int(Int64(sent))), ("expected", .int(Int64(expected))),
                 ("delivered", .int(Int64(delivered))), ("lost", .int(Int64(lost))), ("duplicates", .int(Int64(duplicates))),
                 ("out_of_order", .int(Int64(outOfOrder))), ("joins", .int(Int64(joins))), ("join_failures", .int(Int64(joinFailures))),
                 ("awareness_received", .int(Int64(awarenessReceived)))])
    }
}

public struct SoakCycleResult: Sendable {
    public var label: String
    public var loadSeconds: Double
    public var stable: Int
    public var stableOpenAtEnd: Int
    public var publishers: Int
    public var churnPopulation: Int
    var counts: SoakCycleCounts
    public var churnConnects: Int { counts.churnConnects }
    public var churnCloses: Int { counts.churnCloses }
    public var tally: DeliveryTally
    public var presence: SoakPresenceResult
    public var publishes: SoakPublishResult
    public var yjs: SoakYjsResult
    public var latency: LatencySummary
    public var yjsLatency: LatencySummary
    public var leftOpen: Int

    /// Everything that makes the run fail, as text (empty: clean).
    public var problems: [String] {
        var p: [String] = []
        let t = tally
        if t.lost > 0 { p.append("\(t.lost) publications lost (in \(t.windowsWithLoss) subscription windows)") }
        if t.duplicates > 0 { p.append("\(t.duplicates) duplicate deliveries") }
        if t.outOfOrder > 0 { p.append("\(t.outOfOrder) deliveries out of order") }
        if t.phantom > 0 { p.append("\(t.phantom) deliveries of never-sent sequence numbers") }
        if counts.misrouted > 0 { p.append("\(counts.misrouted) deliveries on the wrong channel") }
        if publishes.httpFailed > 0 { p.append("\(publishes.httpFailed) HTTP publishes failed (\(publishes.httpFirstError ?? ""))") }
        if publishes.clientUnacknowledged > 0 { p.append("\(publishes.clientUnacknowledged) client publishes never delivered to their publisher") }
        if publishes.clientEchoDuplicates > 0 { p.append("\(publishes.clientEchoDuplicates) client publishes delivered twice to their publisher") }
        let pr = presence
        if pr.missingJoins > 0 || pr.missingLeaves > 0 { p.append("presence: \(pr.missingJoins) joins and \(pr.missingLeaves) leaves not seen by watchers") }
        if pr.leakedMembers > 0 { p.append("presence: \(pr.leakedMembers) members still listed after every churner left") }
        if pr.orderErrors > 0 { p.append("presence: \(pr.orderErrors) leave/join order errors") }
        if yjs.lost > 0 || yjs.duplicates > 0 || yjs.outOfOrder > 0 { p.append("yjs: \(yjs.lost) updates lost, \(yjs.duplicates) duplicated, \(yjs.outOfOrder) out of order") }
        if yjs.joinFailures > 0 { p.append("yjs: \(yjs.joinFailures) joins failed") }
        if counts.connectFailures > 0 { p.append("\(counts.connectFailures) connections failed to open") }
        if !counts.unexpectedCloses.isEmpty { p.append("connections closed by relayd: \(counts.unexpectedCloses.sorted { $0.key < $1.key }.map { "\($0.key == -1 ? "no close frame" : String($0.key)): \($0.value)" }.joined(separator: ", "))") }
        if counts.errorFrames > 0 { p.append("\(counts.errorFrames) error frames") }
        if counts.unsubscribeTimeouts > 0 { p.append("\(counts.unsubscribeTimeouts) unsubscribes unanswered") }
        if stableOpenAtEnd < stable { p.append("\(stable - stableOpenAtEnd) of \(stable) held connections not open at the end") }
        if leftOpen > 0 { p.append("\(leftOpen) connections did not close within 20 s") }
        if let e = counts.firstError, !p.isEmpty { p.append("first error: \(e)") }
        return p
    }

    var json: JSONValue {
        let t = tally
        return .object([
            ("label", .string(label)), ("load_s", num(loadSeconds, 1)), ("held", .int(Int64(stable))),
            ("held_open_at_end", .int(Int64(stableOpenAtEnd))), ("client_publishers", .int(Int64(publishers))),
            ("churn_population", .int(Int64(churnPopulation))), ("churn_connects", .int(Int64(counts.churnConnects))),
            ("churn_closes", .int(Int64(counts.churnCloses))), ("connect_failures", .int(Int64(counts.connectFailures))),
            ("unexpected_closes", closesJSON(counts.unexpectedCloses)), ("error_frames", .int(Int64(counts.errorFrames))),
            ("misrouted", .int(Int64(counts.misrouted))), ("unsubscribe_timeouts", .int(Int64(counts.unsubscribeTimeouts))),
            ("deliveries", .int(Int64(counts.deliveries))),
            ("accounting", .object([
                ("subscription_windows", .int(Int64(t.windows))), ("expected", .int(Int64(t.expected))),
                ("delivered_expected", .int(Int64(t.deliveredExpected))), ("delivered", .int(Int64(t.delivered))),
                ("lost", .int(Int64(t.lost))), ("duplicates", .int(Int64(t.duplicates))), ("out_of_order", .int(Int64(t.outOfOrder))),
                ("boundary", .int(Int64(t.boundary))), ("phantom", .int(Int64(t.phantom))), ("windows_with_loss", .int(Int64(t.windowsWithLoss))),
            ])),
            ("publishes", publishes.json), ("presence", presence.json), ("yjs", yjs.json),
            ("latency", latency.json), ("yjs_latency", yjsLatency.json), ("left_open", .int(Int64(leftOpen))),
            ("first_error", counts.firstError.map { .string($0) } ?? .null),
            ("problems", .array(problems.map { .string($0) })),
        ])
    }
}

// MARK: - Sampling

public struct SoakSample: Sendable {
    public var t: Double
    public var phase: String
    public var rssMiB: Double?, fds: Int?, threads: Int?, cpuPercent: Double?
    public var genCPUPercent: Double, genRSSMiB: Double, load1: Double
    public var relaydConnections: Int?, relaydChannels: Int?
    public var openWS: Int, openChurn: Int, connects: Int, closes: Int, connectFailures: Int, unexpectedCloses: Int
    public var httpPublished: UInt64, clientPublished: UInt64, deliveries: UInt64
    public var p50: Double, p99: Double, max: Double
    public var presenceEvents: UInt64, yjsUpdates: UInt64, yjsP99: Double, yjsJoins: Int

    static let header = "t_s,phase,relayd_rss_mib,relayd_fds,relayd_threads,relayd_cpu_pct,gen_cpu_pct,gen_rss_mib,load1,relayd_connections,relayd_channels,open_ws,open_churn,connects,closes,connect_failures,unexpected_closes,http_published,client_published,deliveries,p50_ms,p99_ms,max_ms,presence_events,yjs_updates,yjs_p99_ms,yjs_joins"

    var csv: String {
        func o<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "" }
        func f(_ v: Double?, _ d: Int = 2) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "" }
        return [f(t, 1), phase, f(rssMiB), o(fds), o(threads), f(cpuPercent, 1), f(genCPUPercent, 1), f(genRSSMiB, 1), f(load1),
                o(relaydConnections), o(relaydChannels), "\(openWS)", "\(openChurn)", "\(connects)", "\(closes)", "\(connectFailures)",
                "\(unexpectedCloses)", "\(httpPublished)", "\(clientPublished)", "\(deliveries)", f(p50, 3), f(p99, 3), f(max, 3),
                "\(presenceEvents)", "\(yjsUpdates)", f(yjsP99, 3), "\(yjsJoins)"].joined(separator: ",")
    }
}

/// /proc readings of relayd.
public enum ProcStatus {
    /// Entries of /proc/<pid>/fd.
    public static func openFiles(pid: Int32) -> Int? {
        guard let d = opendir("/proc/\(pid)/fd") else { return nil }
        defer { closedir(d) }
        var n = 0
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix(2)) }
            if name[0] == UInt8(ascii: ".") && (name[1] == 0 || name[1] == UInt8(ascii: ".")) { continue }
            n += 1
        }
        return n
    }

    /// `Threads:` and `VmRSS:` (bytes) of /proc/<pid>/status text.
    public static func threadsAndRSS(status: String) -> (threads: Int?, rss: Int64?) {
        var threads: Int?
        for line in status.split(separator: "\n") where line.hasPrefix("Threads:") {
            threads = Int(line.dropFirst(8).trimmingCharacters(in: .whitespaces))
        }
        return (threads, ProcSampler.rssBytes(status: status))
    }
}

final class SoakSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var _phase = "idle"
    var phase: String { get { lock.withLock { _phase } } set { lock.withLock { _phase = newValue } } }
    private var _samples: [SoakSample] = []
    var samples: [SoakSample] { lock.withLock { _samples } }
    private var _cycle: SoakCycle?
    var cycle: SoakCycle? { get { lock.withLock { _cycle } } set { lock.withLock { _cycle = newValue } } }
    let loops: [SoakLoop]
    let pid: Int32?
    let probe: HealthProbe
    let csv: FileHandle?
    let start = MonoClock.nanos()

    init(loops: [SoakLoop], pid: Int32?, probe: HealthProbe, csvPath: String?) throws {
        self.loops = loops
        self.pid = pid
        self.probe = probe
        if let p = csvPath {
            _ = FileManager.default.createFile(atPath: p, contents: Data((SoakSample.header + "\n").utf8))
            guard let h = FileHandle(forWritingAtPath: p) else { throw LoadError("cannot write \(p)") }
            h.seekToEndOfFile()
            csv = h
        } else {
            csv = nil
        }
    }

    func run(until stop: @escaping @Sendable () -> Bool) async {
        var lastTicks: Double? = nil, lastSelf = ProcSampler.selfCPUSeconds(), lastT = MonoClock.nanos()
        if let pid { lastTicks = ProcSampler.sample([pid])?.cpuSeconds }
        var next = MonoClock.nanos() + 1_000_000_000
        while !stop() {
            let now = MonoClock.nanos()
            if next > now { try? await Task.sleep(for: .nanoseconds(Int64(next - now))) }
            next += 1_000_000_000
            let asked = probe.answers
            probe.poll()
            let t = MonoClock.nanos()
            let dt = Double(t - lastT) / 1e9
            lastT = t
            var s = SoakSample(t: Double(t - start) / 1e9, phase: phase, genCPUPercent: 0, genRSSMiB: 0, load1: 0, openWS: 0, openChurn: 0,
                               connects: 0, closes: 0, connectFailures: 0, unexpectedCloses: 0, httpPublished: 0, clientPublished: 0,
                               deliveries: 0, p50: 0, p99: 0, max: 0, presenceEvents: 0, yjsUpdates: 0, yjsP99: 0, yjsJoins: 0)
            if let pid {
                if let st = ProcSampler.read("/proc/\(pid)/status") {
                    let (th, rss) = ProcStatus.threadsAndRSS(status: st)
                    s.threads = th
                    s.rssMiB = rss.map { Double($0) / 1048576 }
                }
                s.fds = ProcStatus.openFiles(pid: pid)
                if let cpu = ProcSampler.sample([pid])?.cpuSeconds {
                    if let l = lastTicks { s.cpuPercent = (cpu - l) / dt * 100 }
                    lastTicks = cpu
                }
            }
            let selfCPU = ProcSampler.selfCPUSeconds()
            s.genCPUPercent = (selfCPU - lastSelf) / dt * 100
            lastSelf = selfCPU
            if let st = ProcSampler.read("/proc/self/status"), let r = ProcSampler.rssBytes(status: st) {
                s.genRSSMiB = Double(r) / 1048576
            }
            if let la = ProcSampler.read("/proc/loadavg"), let v = Double(la.split(separator: " ").first ?? "") { s.load1 = v }
            var lat = SoakLoop.histogram(), ylat = SoakLoop.histogram()
            for l in loops {
                guard let w = try? await l.loop.submit({ l.takeWindow() }).get() else { continue }
                lat.add(w.latency)
                ylat.add(w.yjsLatency)
                s.openWS += w.openWS; s.openChurn += w.openChurn
                s.connects += w.counts.connects; s.closes += w.counts.closes; s.connectFailures += w.counts.connectFailures
                s.unexpectedCloses += w.counts.unexpectedCloses; s.clientPublished += w.counts.clientPublished
                s.deliveries += w.counts.deliveries; s.presenceEvents += w.counts.presenceEvents; s.yjsUpdates += w.counts.yjsUpdates
                s.yjsJoins += w.counts.yjsJoins
            }
            s.httpPublished = cycle?.logs.takeAckedWindow() ?? 0
            let ls = LatencySummary(lat)
            s.p50 = ls.p50; s.p99 = ls.p99; s.max = ls.max
            s.yjsP99 = LatencySummary(ylat).p99
            // relayd's own counts, from the /healthz asked for at this tick (up to 200 ms).
            let waitUntil = t + 200_000_000
            while probe.answers == asked && MonoClock.nanos() < waitUntil { try? await Task.sleep(for: .milliseconds(5)) }
            if probe.answers > asked, let h = probe.last { s.relaydConnections = h.connections; s.relaydChannels = h.channels }
            lock.withLock { _samples.append(s) }
            csv?.write(Data((s.csv + "\n").utf8))
        }
        try? csv?.close()
    }
}

// MARK: - The scenario

public struct SoakResources: Sendable {
    public var rssMiB: Double?, fds: Int?, threads: Int?, connections: Int?, channels: Int?
    public var json: JSONValue {
        .object([("rss_mib", rssMiB.map { num($0, 1) } ?? .null), ("fds", fds.map { .int(Int64($0)) } ?? .null),
                 ("threads", threads.map { .int(Int64($0)) } ?? .null), ("relayd_connections", connections.map { .int(Int64($0)) } ?? .null),
                 ("relayd_channels", channels.map { .int(Int64($0)) } ?? .null)])
    }

    /// Medians of the last `n` samples of `phase`.
    static func settled(_ samples: [SoakSample], phase: String, n: Int = 5) -> SoakResources {
        let s = Array(samples.filter { $0.phase == phase }.suffix(n))
        func median<T: Comparable>(_ v: [T]) -> T? { v.isEmpty ? nil : v.sorted()[v.count / 2] }
        return SoakResources(rssMiB: median(s.compactMap(\.rssMiB)), fds: median(s.compactMap(\.fds)), threads: median(s.compactMap(\.threads)),
                             connections: median(s.compactMap(\.relaydConnections)), channels: median(s.compactMap(\.relaydChannels)))
    }

    static func peak(_ samples: [SoakSample]) -> SoakResources {
        SoakResources(rssMiB: samples.compactMap(\.rssMiB).max(), fds: samples.compactMap(\.fds).max(), threads: samples.compactMap(\.threads).max(),
                      connections: samples.compactMap(\.relaydConnections).max(), channels: samples.compactMap(\.relaydChannels).max())
    }
}

/// The pass/fail rule on relayd's resources after the load, against the baseline.
public struct SoakResourceRule: Sendable {
    public var rssTolerancePercent: Double
    public var rssToleranceMiB: Double
    public var fdTolerance: Int
    public var threadTolerance: Int

    public init(rssTolerancePercent: Double, rssToleranceMiB: Double, fdTolerance: Int, threadTolerance: Int) {
        self.rssTolerancePercent = rssTolerancePercent
        self.rssToleranceMiB = rssToleranceMiB
        self.fdTolerance = fdTolerance
        self.threadTolerance = threadTolerance
    }

    public var text: String {
        String(format: "after ≤ baseline + max(%.0f%% of baseline, %.0f MiB) for RSS; |after − baseline| ≤ %d for open fds; after ≤ baseline + %d for threads; relayd's active connections 0; its channel count ≤ baseline's",
               rssTolerancePercent, rssToleranceMiB, fdTolerance, threadTolerance)
    }

    public func rssAllowance(baselineMiB: Double) -> Double { max(baselineMiB * rssTolerancePercent / 100, rssToleranceMiB) }

    /// Failures (empty: within the rule). A missing reading is a failure.
    public func check(baseline b: SoakResources, after a: SoakResources) -> [String] {
        var out: [String] = []
        if let br = b.rssMiB, let ar = a.rssMiB {
            let allowed = rssAllowance(baselineMiB: br)
            if ar > br + allowed { out.append(String(format: "RSS %.1f MiB after vs %.1f MiB baseline: over the allowed +%.1f MiB", ar, br, allowed)) }
        } else { out.append("RSS not read") }
        if let bf = b.fds, let af = a.fds {
            if abs(af - bf) > fdTolerance { out.append("open fds \(af) after vs \(bf) baseline: outside ±\(fdTolerance)") }
        } else { out.append("fds not read") }
        if let bt = b.threads, let at = a.threads {
            if at > bt + threadTolerance { out.append("threads \(at) after vs \(bt) baseline: over +\(threadTolerance)") }
        } else { out.append("threads not read") }
        if let c = a.connections {
            if c != 0 { out.append("relayd reports \(c) active connections after the load") }
        } else { out.append("relayd /healthz not read") }
        if let bc = b.channels, let ac = a.channels, ac > bc { out.append("relayd holds \(ac) channels after vs \(bc) baseline") }
        return out
    }
}

public struct SoakResult: Sendable {
    public var config: SoakConfig
    public var cycles: [SoakCycleResult]
    public var samples: [SoakSample]
    public var fresh: SoakResources
    public var baseline: SoakResources
    public var peak: SoakResources
    public var after: SoakResources
    public var rule: SoakResourceRule
    public var resourceProblems: [String]
    public var problems: [String] { cycles.flatMap { c in c.problems.map { "\(c.label): \($0)" } } + resourceProblems }
    public var passed: Bool { problems.isEmpty }

    public var json: JSONValue {
        let c = config
        let loadSamples = samples.filter { $0.phase == "soak" }
        let p99s = loadSamples.filter { $0.deliveries > 0 }.map(\.p99).sorted()
        let churn = loadSamples.map(\.connects)
        let closes = loadSamples.map(\.closes)
        var m: [(String, JSONValue)] = [
            ("scenario", .string("soak")), ("passed", .bool(passed)),
            ("config", .object([
                ("seconds", num(c.seconds, 0)), ("warmup_s", num(c.warmupSeconds, 0)), ("settle_s", num(c.settleSeconds, 0)),
                ("connections", .int(Int64(c.connections))), ("held", .int(Int64(c.stableCount))), ("churn_population", .int(Int64(c.churnPopulation))),
                ("churn_rate", num(c.churnRate, 0)), ("churn_lifetime_s", num(c.churnLifetime, 1)), ("data_channels", .int(Int64(c.dataChannels))),
                ("client_channels", .int(Int64(c.clientChannels))), ("http_publish_rate", num(c.httpPublishRate, 0)),
                ("client_publish_rate", num(c.clientPublishRate, 0)), ("client_publishers", .int(Int64(c.clientPublishers))),
                ("payload_bytes", .int(Int64(c.payloadBytes))), ("presence_channels", .int(Int64(c.presenceChannels))),
                ("watchers_per_presence_channel", .int(Int64(c.watchersPerPresenceChannel))), ("presence_share", num(c.presenceShare, 2)),
                ("yjs_rooms", .int(Int64(c.yjsRooms))), ("yjs_editors_per_room", .int(Int64(c.yjsEditorsPerRoom))),
                ("yjs_update_rate", num(c.yjsUpdateRate, 1)), ("yjs_join_rate", num(c.yjsJoinRate, 1)),
            ])),
            ("cycles", .array(cycles.map(\.json))),
            ("resources", .object([("fresh", fresh.json), ("baseline", baseline.json), ("peak", peak.json), ("after", after.json)])),
            ("rule", .string(rule.text)),
            ("rss_allowance_mib", baseline.rssMiB.map { num(rule.rssAllowance(baselineMiB: $0), 1) } ?? .null),
            ("resource_problems", .array(resourceProblems.map { .string($0) })),
            ("problems", .array(problems.map { .string($0) })),
            ("per_second_p99_ms", .object([
                ("median", p99s.isEmpty ? .null : num(p99s[p99s.count / 2])), ("max", p99s.last.map { num($0) } ?? .null),
                ("p95_of_seconds", p99s.isEmpty ? .null : num(p99s[min(p99s.count - 1, Int(Double(p99s.count) * 0.95))])),
            ])),
            ("connects_per_s_during_load", .object([
                ("mean", churn.isEmpty ? .null : num(Double(churn.reduce(0, +)) / Double(churn.count), 1)),
                ("min", churn.min().map { .int(Int64($0)) } ?? .null), ("max", churn.max().map { .int(Int64($0)) } ?? .null),
            ])),
            ("closes_per_s_during_load", .object([
                ("mean", closes.isEmpty ? .null : num(Double(closes.reduce(0, +)) / Double(closes.count), 1)),
                ("min", closes.min().map { .int(Int64($0)) } ?? .null), ("max", closes.max().map { .int(Int64($0)) } ?? .null),
            ])),
        ]
        if c.debugDropEvery > 0 { m.append(("debug_drop_every", .int(Int64(c.debugDropEvery)))) }
        let cpu = loadSamples.compactMap(\.cpuPercent)
        if !cpu.isEmpty { m.append(("relayd_cpu_pct_mean_during_load", num(cpu.reduce(0, +) / Double(cpu.count), 1))) }
        let g = loadSamples.map(\.genCPUPercent)
        if !g.isEmpty { m.append(("generator_cpu_pct_mean_during_load", num(g.reduce(0, +) / Double(g.count), 1))) }
        let la = loadSamples.map(\.load1)
        if !la.isEmpty { m.append(("load1_mean_during_load", num(la.reduce(0, +) / Double(la.count), 2))) }
        return .object(m)
    }
}


extension LoadScenarios {
    /// The soak: a warm-up cycle, settle (baseline), the measured cycle, settle (after); see `SoakConfig`.
    public static func soak(target: LoadTarget, config: SoakConfig, options: LoadOptions) async throws -> SoakResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        let pubGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loops = group.makeIterator().map { SoakLoop(loop: $0) }
        let control = pubGroup.next()
        let connector = try WebSocketConnector(target: target, sources: options.sources)
        let lifetime = Int64(config.warmupSeconds + config.seconds + 2 * config.settleSeconds + 1800)
        let token = RelaydToken.mint(siteKey: target.siteKey, jwtSecret: target.jwtSecret, lifetime: lifetime)
        let probe = HealthProbe(loop: control, host: target.host, port: target.port)
        let sampler = try SoakSampler(loops: loops, pid: options.serverPids.first, probe: probe, csvPath: config.csvPath)
        let stopBox = StopFlag()
        let samplerTask = Task { await sampler.run(until: { stopBox.value }) }
        defer { stopBox.value = true }

        sampler.phase = "idle"
        try await Task.sleep(for: .seconds(6))
        var cycles: [SoakCycleResult] = []
        if config.warmupSeconds > 0 {
            let warm = SoakCycle(label: "warmup", config: config, options: options, target: target, connector: connector, loops: loops, control: control, token: token)
            sampler.cycle = warm
            cycles.append(try await warm.run(seconds: config.warmupSeconds, sampler: sampler, publisherLoop: control))
            sampler.phase = "settle-warmup"
            progress(options, "phase settle-warmup (\(Int(config.settleSeconds)) s)")
            try await Task.sleep(for: .seconds(config.settleSeconds))
        }
        let soak = SoakCycle(label: "soak", config: config, options: options, target: target, connector: connector, loops: loops, control: control, token: token)
        sampler.cycle = soak
        cycles.append(try await soak.run(seconds: config.seconds, sampler: sampler, publisherLoop: control))
        sampler.phase = "settle"
        progress(options, "phase settle (\(Int(config.settleSeconds)) s)")
        try await Task.sleep(for: .seconds(config.settleSeconds))
        stopBox.value = true
        await samplerTask.value
        probe.close()

        let samples = sampler.samples
        let fresh = SoakResources.settled(samples, phase: "idle")
        let baseline = config.warmupSeconds > 0 ? SoakResources.settled(samples, phase: "settle-warmup") : fresh
        let peak = SoakResources.peak(samples.filter { $0.phase.hasSuffix("soak") })
        let after = SoakResources.settled(samples, phase: "settle")
        let rule = SoakResourceRule(rssTolerancePercent: config.rssTolerancePercent, rssToleranceMiB: config.rssToleranceMiB,
                                    fdTolerance: config.fdTolerance, threadTolerance: config.threadTolerance)
        let resourceProblems = options.serverPids.isEmpty ? ["no --server-pid: relayd's resources not read"] : rule.check(baseline: baseline, after: after)
        try? await group.shutdownGracefully()
        try? await pubGroup.shutdownGracefully()
        return SoakResult(config: config, cycles: cycles, samples: samples, fresh: fresh, baseline: baseline, peak: peak, after: after,
                          rule: rule, resourceProblems: resourceProblems)
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var _v = false
    var value: Bool { get { lock.withLock { _v } } set { lock.withLock { _v = newValue } } }
}

/// The soak clients' answer to a control frame: a ping gets its pong; a close is echoed with the
/// server's code (unless the client is leaving and sent its own close) and the channel closed.
/// Returns the server's close code for a close frame (1005 when it had none), nil for a ping.
func answerControl(_ frame: WebSocketFrame, context: ChannelHandlerContext, leaving: Bool) -> Int? {
    var buf = frame.unmaskedData
    if frame.opcode == .ping {
        context.writeAndFlush(NIOAny(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: buf)), promise: nil)
        return nil
    }
    let code = buf.readInteger(as: UInt16.self).map(Int.init) ?? 1005
    if !leaving {
        var out = context.channel.allocator.buffer(capacity: 2)
        out.writeInteger(UInt16(code == 1005 ? 1000 : code))
        context.writeAndFlush(NIOAny(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: out)), promise: nil)
    }
    context.close(promise: nil)
    return code
}
