import RelayJSON
import Foundation
import Histogram
import NIOCore
import NIOPosix
import RelayCrypto

/// Common settings of a load run.
public struct LoadOptions: Sendable {
    /// Event loop threads for the subscriber connections.
    public var threads: Int = 2
    /// Loopback source addresses 127.0.0.1 … 127.0.0.<sources>.
    public var sources: Int = 8
    /// New connections per second while ramping (0: as fast as `concurrency` allows).
    public var connectRate: Double = 5000
    /// Connection attempts in flight at once while ramping.
    public var concurrency: Int = 256
    /// Server processes to sample from /proc (children included).
    public var serverPids: [Int32] = []
    /// Unique id put into channel names so runs don't see each other's history.
    public var runID: String = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    /// Progress lines on stderr.
    public var verbose: Bool = false

    public init() {}
}

func progress(_ options: LoadOptions, _ s: String) {
    guard options.verbose else { return }
    FileHandle.standardError.write(Data(("[bench] " + s + "\n").utf8))
}

/// A set of subscriber connections spread over event loops.
public final class SubscriberPool: @unchecked Sendable {
    public let group: MultiThreadedEventLoopGroup
    let loops: [EventLoop]
    let stats: [LoopStats]
    var states: [[SubscriberState]]
    let connector: WebSocketConnector
    let options: LoadOptions

    public init(target: LoadTarget, options: LoadOptions) throws {
        self.options = options
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        loops = Array(group.makeIterator())
        stats = loops.map { _ in LoopStats() }
        states = loops.map { _ in [] }
        connector = try WebSocketConnector(target: target, sources: options.sources)
    }

    public struct RampResult: Sendable {
        public var attempted: Int
        public var connected: Int
        public var failed: Int
        public var seconds: Double
        public var firstError: String?
    }

    /// Opens `count` subscribers; subscriber i listens to channel `channelOf(i)`.
    public func connect(count: Int, channelNames: [String], channelOf: @escaping @Sendable (Int) -> Int) async throws -> RampResult {
        let t = loops.count
        var created: [[SubscriberState]] = loops.map { _ in [] }
        for i in 0..<count { created[i % t].append(SubscriberState(index: i, channelIndex: channelOf(i))) }
        // Hand each loop its states before any connection exists.
        for k in 0..<t {
            let list = created[k]
            try await loops[k].submit { self.states[k] += list }.get()
        }
        let ramp = Ramp(pool: self, count: count, created: created, channelNames: channelNames)
        return try await ramp.run()
    }

    final class Ramp: @unchecked Sendable {
        let pool: SubscriberPool
        let count: Int
        let created: [[SubscriberState]]
        let channelNames: [String]
        let loop: EventLoop
        var next = 0, inflight = 0, done = 0, failed = 0
        var firstError: String?
        var start: UInt64 = 0
        var promise: EventLoopPromise<RampResult>?
        var ticker: RepeatedTask?

        init(pool: SubscriberPool, count: Int, created: [[SubscriberState]], channelNames: [String]) {
            self.pool = pool
            self.count = count
            self.created = created
            self.channelNames = channelNames
            self.loop = pool.loops[0]
        }

        func run() async throws -> RampResult {
            try await loop.flatSubmit {
                let p = self.loop.makePromise(of: RampResult.self)
                self.promise = p
                self.start = MonoClock.nanos()
                if self.count == 0 { self.finish() } else {
                    self.ticker = self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(2)) { _ in self.pump() }
                }
                return p.futureResult
            }.get()
        }

        func pump() {
            let elapsed = Double(MonoClock.nanos() - start) / 1e9
            let rate = pool.options.connectRate
            let allowed = rate > 0 ? min(count, Int(elapsed * rate) + 1) : count
            while next < allowed && inflight < pool.options.concurrency {
                launch(next)
                next += 1
                inflight += 1
            }
        }

        func launch(_ i: Int) {
            let t = pool.loops.count
            let k = i % t
            let state = created[k][i / t]
            let f = pool.connector.connect(state: state, channelName: channelNames[state.channelIndex], loop: pool.loops[k], stats: pool.stats[k])
            f.hop(to: loop).whenComplete { r in
                self.inflight -= 1
                self.done += 1
                if case .failure(let e) = r {
                    self.failed += 1
                    if self.firstError == nil { self.firstError = "\(e)" }
                }
                if self.done % 2000 == 0 { progress(self.pool.options, "connected \(self.done - self.failed)/\(self.count)") }
                if self.done == self.count { self.finish() } else { self.pump() }
            }
        }

        func finish() {
            ticker?.cancel()
            let r = RampResult(attempted: count, connected: done - failed, failed: failed,
                               seconds: Double(MonoClock.nanos() - start) / 1e9, firstError: firstError)
            promise?.succeed(r)
            promise = nil
        }
    }

    /// Runs `body` on every loop with its stats and states; returns the results in loop order.
    func onLoops<T: Sendable>(_ body: @escaping @Sendable (LoopStats, [SubscriberState]) -> T) async throws -> [T] {
        var out: [T] = []
        for k in loops.indices {
            let s = stats[k]
            out.append(try await loops[k].submit { body(s, self.states[k]) }.get())
        }
        return out
    }

    public func resetStep() async throws {
        _ = try await onLoops { s, states in
            s.resetDeliveries()
            for st in states { st.stepUnique = 0 }
        }
    }

    public func stepDelivered() async throws -> UInt64 {
        try await onLoops { _, states in states.reduce(0) { $0 + $1.stepUnique } }.reduce(0, +)
    }

    struct Snapshot: Sendable {
        var latency: Histogram<UInt64>
        var connectLatency: Histogram<UInt64>
        var delivered: UInt64 = 0, duplicates: UInt64 = 0, errorFrames: UInt64 = 0, lastDelivery: UInt64 = 0
        var closes: [Int: Int] = [:]
        var open = 0
        var connected = 0
        var connectErrors = 0
    }

    func snapshot() async throws -> Snapshot {
        let parts = try await onLoops { s, states in
            Snapshot(latency: s.latency, connectLatency: s.connectLatency, delivered: s.delivered, duplicates: s.duplicates,
                     errorFrames: s.errorFrames, lastDelivery: s.lastDeliveryNanos, closes: s.closes,
                     open: states.reduce(0) { $0 + ($1.open ? 1 : 0) }, connected: s.connected, connectErrors: s.connectErrors)
        }
        var total = parts[0]
        for p in parts.dropFirst() {
            total.latency.add(p.latency)
            total.connectLatency.add(p.connectLatency)
            total.delivered += p.delivered
            total.duplicates += p.duplicates
            total.errorFrames += p.errorFrames
            total.lastDelivery = max(total.lastDelivery, p.lastDelivery)
            for (k, v) in p.closes { total.closes[k, default: 0] += v }
            total.open += p.open
            total.connected += p.connected
            total.connectErrors += p.connectErrors
        }
        return total
    }

    /// Expected and lost deliveries given the publisher's accepted counts per channel.
    func losses(acceptedPerChannel: [UInt64]) async throws -> (expected: UInt64, unique: UInt64, lost: UInt64, skipped: UInt64) {
        let parts = try await onLoops { _, states -> [UInt64] in
            var e: UInt64 = 0, u: UInt64 = 0, l: UInt64 = 0, sk: UInt64 = 0
            for st in states {
                let a = acceptedPerChannel[st.channelIndex]
                e += a
                u += st.tracker.unique
                l += st.tracker.lost(accepted: a)
                sk += st.tracker.skipped
            }
            return [e, u, l, sk]
        }
        var t: [UInt64] = [0, 0, 0, 0]
        for p in parts { for i in 0..<4 { t[i] += p[i] } }
        return (t[0], t[1], t[2], t[3])
    }

    public func closeAll() async throws {
        let futures = try await onLoops { _, states -> [EventLoopFuture<Void>] in
            states.compactMap { st in
                st.closedByUs = true
                return st.channel?.close()
            }
        }.flatMap { $0 }
        for f in futures { _ = try? await f.get() }
    }

    public func shutdown() async {
        try? await group.shutdownGracefully()
    }
}

// MARK: - Results

public struct ServerUsage: Sendable {
    public var cpuSeconds: Double
    public var rssBytes: Int64
    public var json: JSONValue {
        .object([("cpu_s", num(cpuSeconds)), ("rss_bytes", .int(rssBytes))])
    }
}

func usage(from a: ProcSample?, to b: ProcSample?) -> ServerUsage? {
    guard let a, let b else { return nil }
    return ServerUsage(cpuSeconds: b.cpuSeconds - a.cpuSeconds, rssBytes: b.rssBytes)
}

func closesJSON(_ c: [Int: Int]) -> JSONValue {
    .object(c.sorted { $0.key < $1.key }.map { (String($0.key), .int(Int64($0.value))) })
}

public struct FanoutConfig: Sendable {
    public var subscribers = 1000
    public var channels = 1
    public var payloadBytes = 1024
    /// Publish rates (publishes per second, all channels together) tried in order; one step each.
    public var rates: [Double] = [100]
    public var stepSeconds: Double = 10
    /// A step is sustained when p99 ≤ this, nothing is lost, nothing closes and the rate is met.
    public var p99LimitMs: Double = 50
    public var publishConnections = 4
    /// Requests in flight per publish connection (HTTP/1.1 pipelining, order kept).
    public var pipeline = 1
    /// Longest wait for deliveries after a step's last publish.
    public var drainSeconds: Double = 5
    /// Stop at the first step that is not sustained.
    public var stopAtFirstFailure = true
    /// Stop at the first saturated step (a loss, a close, a failed publish or the rate not
    /// reached) but go on past a p99 over the limit, to find the throughput ceiling.
    public var stopAtSaturation = false
    public init() {}
}

public struct FanoutStep: Sendable {
    public var targetRate: Double
    public var publish: PublishStepResult
    public var expected: UInt64
    public var delivered: UInt64
    public var lost: UInt64
    public var duplicates: UInt64
    public var deliveriesPerSecond: Double
    public var latency: LatencySummary
    public var closes: [Int: Int]
    public var errorFrames: UInt64
    public var server: ServerUsage?
    public var clientCPUSeconds: Double
    public var wallSeconds: Double
    public var sustained: Bool
    /// Lost, closed, failed publishes or the publish rate not reached.
    public var saturated: Bool
    public var reason: String

    public var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("target_publish_rate", num(targetRate, 1)), ("publishes_accepted", .int(Int64(publish.accepted))),
            ("publishes_failed", .int(Int64(publish.failed))), ("publishes_unsent", .int(Int64(publish.unsent))),
            ("publish_rate", num(publish.achievedRate, 1)), ("publish_latency", publish.latency.json),
            ("expected_deliveries", .int(Int64(expected))), ("deliveries", .int(Int64(delivered))),
            ("lost", .int(Int64(lost))), ("duplicates", .int(Int64(duplicates))),
            ("deliveries_per_s", num(deliveriesPerSecond, 1)), ("latency", latency.json),
            ("closes", closesJSON(closes)), ("error_frames", .int(Int64(errorFrames))),
            ("client_cpu_s", num(clientCPUSeconds)), ("wall_s", num(wallSeconds)),
            ("sustained", .bool(sustained)), ("saturated", .bool(saturated)), ("reason", .string(reason)),
        ]
        if let e = publish.firstError { m.append(("first_publish_error", .string(e))) }
        if let server { m.append(("server", server.json)); m.append(("server_cpu_per_s", num(server.cpuSeconds / max(wallSeconds, 0.001)))) }
        return .object(m)
    }
}

public struct FanoutResult: Sendable {
    public var target: String
    public var config: FanoutConfig
    public var ramp: SubscriberPool.RampResult
    public var connectLatency: LatencySummary
    public var steps: [FanoutStep]
    public var totalLost: UInt64
    public var totalDuplicates: UInt64
    public var serverRSSBytes: Int64?

    public var maxSustainedDeliveriesPerSecond: Double {
        steps.filter(\.sustained).map(\.deliveriesPerSecond).max() ?? 0
    }

    /// Most deliveries per second of a step without loss, close or failed publish (any latency).
    public var maxDeliveriesPerSecond: Double {
        steps.filter { $0.lost == 0 && $0.closes.isEmpty && $0.publish.failed == 0 }.map(\.deliveriesPerSecond).max() ?? 0
    }

    public var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("scenario", .string("fanout")), ("target", .string(target)),
            ("subscribers", .int(Int64(config.subscribers))), ("channels", .int(Int64(config.channels))),
            ("payload_bytes", .int(Int64(config.payloadBytes))), ("step_seconds", num(config.stepSeconds)),
            ("p99_limit_ms", num(config.p99LimitMs)), ("pipeline", .int(Int64(config.pipeline))),
            ("connected", .int(Int64(ramp.connected))), ("connect_failed", .int(Int64(ramp.failed))),
            ("connect_latency", connectLatency.json),
            ("steps", .array(steps.map(\.json))),
            ("max_sustained_deliveries_per_s", num(maxSustainedDeliveriesPerSecond, 1)),
            ("max_lossless_deliveries_per_s", num(maxDeliveriesPerSecond, 1)),
            ("total_lost", .int(Int64(totalLost))), ("total_duplicates", .int(Int64(totalDuplicates))),
        ]
        if let e = ramp.firstError { m.append(("first_connect_error", .string(e))) }
        if let r = serverRSSBytes { m.append(("server_rss_bytes", .int(r))) }
        return .object(m)
    }
}

public enum LoadScenarios {
    /// N subscribers on C channels (subscriber i on channel i mod C), publishes at each rate in turn.
    public static func fanout(target: LoadTarget, config: FanoutConfig, options: LoadOptions) async throws -> FanoutResult {
        let names = (0..<config.channels).map { target.channelName(run: options.runID, index: $0) }
        let pool = try SubscriberPool(target: target, options: options)
        let pubGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let publisher = Publisher(target: target, loop: pubGroup.next(), channelNames: names, payloadSize: config.payloadBytes)
        publisher.pipelineDepth = max(1, config.pipeline)

        progress(options, "\(target.kind.rawValue): connecting \(config.subscribers) subscribers on \(config.channels) channels")
        let channels = config.channels
        let ramp = try await pool.connect(count: config.subscribers, channelNames: names) { $0 % channels }
        progress(options, "connected \(ramp.connected), failed \(ramp.failed) in \(String(format: "%.1f", ramp.seconds)) s")
        try await publisher.start(connections: config.publishConnections).get()
        try await Task.sleep(for: .seconds(1))  // let subscriptions settle
        let connectLatency = LatencySummary(try await pool.snapshot().connectLatency)

        var steps: [FanoutStep] = []
        var closesBefore = try await pool.snapshot().closes
        for rate in config.rates {
            try await pool.resetStep()
            let before = ProcSampler.sample(options.serverPids)
            let cpuBefore = ProcSampler.selfCPUSeconds()
            let stepStart = MonoClock.nanos()
            progress(options, "step: \(rate) publishes/s for \(config.stepSeconds) s")
            let pub = try await publisher.runStep(rate: rate, seconds: config.stepSeconds, drain: config.drainSeconds).get()
            // Expected deliveries of this step: each subscriber of a channel gets what was accepted on it.
            var expected: UInt64 = 0
            for st in 0..<config.subscribers { expected += pub.acceptedPerChannel[st % channels] }
            let drainUntil = MonoClock.nanos() + UInt64(config.drainSeconds * 1e9)
            var got = try await pool.stepDelivered()
            var lastProgress = MonoClock.nanos(), lastGot = got
            while got < expected && MonoClock.nanos() < drainUntil {
                try await Task.sleep(for: .milliseconds(20))
                got = try await pool.stepDelivered()
                if got != lastGot { lastGot = got; lastProgress = MonoClock.nanos() }
                if MonoClock.nanos() - lastProgress > 2_000_000_000 { break }  // nothing for 2 s
            }
            let after = ProcSampler.sample(options.serverPids)
            let wall = Double(MonoClock.nanos() - stepStart) / 1e9
            let snap = try await pool.snapshot()
            var newCloses: [Int: Int] = [:]
            for (k, v) in snap.closes where v - (closesBefore[k] ?? 0) > 0 { newCloses[k] = v - (closesBefore[k] ?? 0) }
            closesBefore = snap.closes
            let window = snap.lastDelivery > stepStart ? Double(snap.lastDelivery - stepStart) / 1e9 : wall
            let lat = LatencySummary(snap.latency)
            let lost = expected > snap.delivered ? expected - snap.delivered : 0
            var reasons: [String] = []
            let slow = lat.p99 > config.p99LimitMs
            if slow { reasons.append(String(format: "p99 %.1f ms > %.0f ms", lat.p99, config.p99LimitMs)) }
            if lost > 0 { reasons.append("\(lost) lost") }
            if !newCloses.isEmpty { reasons.append("connections closed \(newCloses)") }
            if pub.failed > 0 { reasons.append("\(pub.failed) publishes failed") }
            if rate > 0 && Double(pub.accepted) < 0.95 * rate * config.stepSeconds {
                reasons.append(String(format: "publisher reached %.0f/s of %.0f/s", pub.achievedRate, rate))
            }
            let step = FanoutStep(
                targetRate: rate, publish: pub, expected: expected, delivered: snap.delivered, lost: lost,
                duplicates: snap.duplicates, deliveriesPerSecond: Double(snap.delivered) / max(window, 0.001), latency: lat,
                closes: newCloses, errorFrames: snap.errorFrames, server: usage(from: before, to: after),
                clientCPUSeconds: ProcSampler.selfCPUSeconds() - cpuBefore, wallSeconds: wall,
                sustained: reasons.isEmpty, saturated: reasons.count > (slow ? 1 : 0), reason: reasons.joined(separator: "; "))
            progress(options, String(format: "  %.0f deliveries/s, ", step.deliveriesPerSecond) + lat.text + (reasons.isEmpty ? "" : "  [" + step.reason + "]"))
            steps.append(step)
            if config.stopAtSaturation ? step.saturated : (!step.sustained && config.stopAtFirstFailure) { break }
        }
        let accepted = try await publisher.acceptedSnapshot().get()
        let totals = try await pool.losses(acceptedPerChannel: accepted)
        let dups = try await pool.snapshot().duplicates
        let rss = ProcSampler.sample(options.serverPids)?.rssBytes
        _ = try? await publisher.close().get()
        try await pool.closeAll()
        await pool.shutdown()
        try? await pubGroup.shutdownGracefully()
        return FanoutResult(target: target.kind.rawValue, config: config, ramp: ramp, connectLatency: connectLatency, steps: steps,
                            totalLost: totals.lost, totalDuplicates: dups, serverRSSBytes: rss)
    }

    public struct ConnectionsConfig: Sendable {
        public var connections = 1000
        public var channels = 1000
        /// Seconds to hold the connections open before sampling RSS.
        public var holdSeconds: Double = 5
        public init() {}
    }

    public struct ConnectionsResult: Sendable {
        public var target: String
        public var config: ConnectionsConfig
        public var ramp: SubscriberPool.RampResult
        public var connectLatency: LatencySummary
        public var openAfterHold: Int
        public var closes: [Int: Int]
        public var rssBefore: Int64?
        public var rssAfter: Int64?
        public var serverCPUSeconds: Double?
        public var rssPerConnection: Double? {
            guard let a = rssBefore, let b = rssAfter, openAfterHold > 0 else { return nil }
            return Double(b - a) / Double(openAfterHold)
        }

        public var json: JSONValue {
            var m: [(String, JSONValue)] = [
                ("scenario", .string("connections")), ("target", .string(target)),
                ("requested", .int(Int64(config.connections))), ("channels", .int(Int64(config.channels))),
                ("connected", .int(Int64(ramp.connected))), ("connect_failed", .int(Int64(ramp.failed))),
                ("ramp_s", num(ramp.seconds)), ("connects_per_s", num(Double(ramp.connected) / max(ramp.seconds, 0.001), 1)),
                ("connect_latency", connectLatency.json), ("open_after_hold", .int(Int64(openAfterHold))),
                ("closes", closesJSON(closes)),
            ]
            if let e = ramp.firstError { m.append(("first_connect_error", .string(e))) }
            if let rssBefore { m.append(("server_rss_before_bytes", .int(rssBefore))) }
            if let rssAfter { m.append(("server_rss_after_bytes", .int(rssAfter))) }
            if let r = rssPerConnection { m.append(("server_rss_per_connection_bytes", num(r, 0))) }
            if let c = serverCPUSeconds { m.append(("server_cpu_s", num(c))) }
            return .object(m)
        }
    }

    /// Ramps to N idle subscribers (each on one of C channels), holds them, samples the server's RSS.
    public static func connections(target: LoadTarget, config: ConnectionsConfig, options: LoadOptions) async throws -> ConnectionsResult {
        let names = (0..<max(1, config.channels)).map { target.channelName(run: options.runID, index: $0) }
        let pool = try SubscriberPool(target: target, options: options)
        let before = ProcSampler.sample(options.serverPids)
        let channels = names.count
        progress(options, "\(target.kind.rawValue): ramping to \(config.connections) connections")
        let ramp = try await pool.connect(count: config.connections, channelNames: names) { $0 % channels }
        progress(options, "connected \(ramp.connected), failed \(ramp.failed) in \(String(format: "%.1f", ramp.seconds)) s; holding \(config.holdSeconds) s")
        try await Task.sleep(for: .seconds(config.holdSeconds))
        let after = ProcSampler.sample(options.serverPids)
        let snap = try await pool.snapshot()
        try await pool.closeAll()
        await pool.shutdown()
        return ConnectionsResult(target: target.kind.rawValue, config: config, ramp: ramp, connectLatency: LatencySummary(snap.connectLatency),
                                 openAfterHold: snap.open, closes: snap.closes, rssBefore: before?.rssBytes, rssAfter: after?.rssBytes,
                                 serverCPUSeconds: usage(from: before, to: after)?.cpuSeconds)
    }

    public struct PublishConfig: Sendable {
        /// Publishes per second; 0 = closed loop (as fast as the connections answer).
        public var rate: Double = 0
        public var seconds: Double = 10
        public var connections = 4
        public var channels = 100
        public var payloadBytes = 256
        public init() {}
    }

    public struct PublishResult: Sendable {
        public var target: String
        public var config: PublishConfig
        public var step: PublishStepResult
        public var server: ServerUsage?
        public var json: JSONValue {
            var m: [(String, JSONValue)] = [
                ("scenario", .string("publish")), ("target", .string(target)), ("target_rate", num(config.rate, 1)),
                ("connections", .int(Int64(config.connections))), ("channels", .int(Int64(config.channels))),
                ("payload_bytes", .int(Int64(config.payloadBytes))), ("seconds", num(step.seconds)),
                ("accepted", .int(Int64(step.accepted))), ("failed", .int(Int64(step.failed))),
                ("publishes_per_s", num(step.achievedRate, 1)), ("latency", step.latency.json),
                ("statuses", .object(step.statuses.sorted { $0.key < $1.key }.map { (String($0.key), .int(Int64($0.value))) })),
            ]
            if let e = step.firstError { m.append(("first_error", .string(e))) }
            if let server { m.append(("server", server.json)) }
            return .object(m)
        }
    }

    /// Publishes without subscribers: publishes per second and their latency.
    public static func publish(target: LoadTarget, config: PublishConfig, options: LoadOptions) async throws -> PublishResult {
        let names = (0..<max(1, config.channels)).map { target.channelName(run: options.runID, index: $0) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let publisher = Publisher(target: target, loop: group.next(), channelNames: names, payloadSize: config.payloadBytes)
        try await publisher.start(connections: config.connections).get()
        let before = ProcSampler.sample(options.serverPids)
        let step = try await publisher.runStep(rate: config.rate, seconds: config.seconds).get()
        let after = ProcSampler.sample(options.serverPids)
        _ = try? await publisher.close().get()
        try? await group.shutdownGracefully()
        return PublishResult(target: target.kind.rawValue, config: config, step: step, server: usage(from: before, to: after))
    }
}
