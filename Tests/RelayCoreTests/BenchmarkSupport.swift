@testable import RelayCore
import RelayProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// In-process benchmarks of the engine (no sockets). Called by a test that is
/// disabled unless `RELAY_BENCH=1`, and meant for a `bench-core` command.
/// Run in release mode; numbers are printed, never asserted.
enum RelayBenchmark {
    public struct FanOutResult: Sendable, CustomStringConvertible {
        public var subscribers: Int
        public var publications: Int
        public var payloadBytes: Int
        public var deliveries: Int
        /// Seconds spent inside `publish` (encode once, offset, history, enqueue to every outbox).
        public var publishSeconds: Double
        /// Seconds spent draining outboxes (what transports' writers do, minus the socket write).
        public var drainSeconds: Double
        /// CPU seconds of the publishing thread inside `publish` (robust to
        /// other processes competing for the cores).
        public var publishCPUSeconds: Double
        /// Resident-memory growth per queued delivery while frames sat in outboxes (bytes).
        public var rssBytesPerQueuedDelivery: Double
        /// Heap allocations and bytes allocated per delivery during `publish`,
        /// when the allocation-counting shim is preloaded (see Docs/core.md); else nil.
        public var allocationsPerDelivery: Double?
        public var allocatedBytesPerDelivery: Double?

        public var deliveriesPerSecond: Double { Double(deliveries) / publishSeconds }
        public var deliveriesPerCPUSecond: Double { Double(deliveries) / publishCPUSeconds }
        public var deliveriesPerSecondWithDrain: Double { Double(deliveries) / (publishSeconds + drainSeconds) }

        public var description: String {
            func f(_ x: Double) -> String { String(Int(x.rounded())) }
            return "fan-out subscribers=\(subscribers) publications=\(publications) payload=\(payloadBytes)B: "
                + "\(f(deliveriesPerSecond)) deliveries/s enqueue (\(f(deliveriesPerCPUSecond)) per CPU-second), "
                + "\(f(deliveriesPerSecondWithDrain)) deliveries/s enqueue+drain, "
                + "\(f(rssBytesPerQueuedDelivery)) B RSS per queued delivery"
                + (allocationsPerDelivery.map { a in
                    ", \(String(format3(a))) allocations and \(String(format3(allocatedBytesPerDelivery ?? 0))) B allocated per delivery"
                } ?? ", allocations not measured (no shim)")
        }
    }

    public struct IdleResult: Sendable, CustomStringConvertible {
        public var connections: Int
        public var sharedChannel: Bool
        public var rssBytesPerConnection: Double
        public var description: String {
            "idle connections=\(connections) one subscription each (\(sharedChannel ? "same channel" : "own channel")): "
                + "\(Int(rssBytesPerConnection.rounded())) B RSS per connection"
        }
    }

    static func site() -> (InMemorySiteRegistry, Site) {
        let site = Site(siteKey: "bench0000000000000000000000000000",
                        limits: SiteLimits(maxConnections: .max, maxMessageBytes: 1 << 20, maxChannelsPerConnection: 16))
        return (InMemorySiteRegistry([site]), site)
    }

    static func engine(_ registry: InMemorySiteRegistry) -> RelayEngine {
        var config = EngineConfiguration()
        config.history = HistoryConfiguration(defaultPolicy: HistoryPolicy(maxPublications: 100, maxBytes: 1 << 20, maxAge: 300))
        config.connectionsEventInterval = .infinity
        return RelayEngine(registry: registry, configuration: config)
    }

    /// Publishes `publications` JSON publications of about `payloadBytes` to
    /// one channel with `subscribers` WebSocket subscribers, draining every
    /// outbox every `drainEvery` publications.
    public static func fanOut(subscribers: Int, publications: Int, payloadBytes: Int = 1024, drainEvery: Int = 50) -> FanOutResult {
        let (registry, site) = site()
        let engine = engine(registry)
        let grant = ConnectionGrant.siteWide(siteID: site.siteID, userID: "1", expiresAt: Int64.max / 2)
        var conns: [RelayConnection] = []
        conns.reserveCapacity(subscribers)
        for _ in 0..<subscribers {
            guard case .success(let c) = engine.connect(grant) else { fatalError("connect") }
            _ = engine.subscribe(c, channels: ["events"])
            _ = c.discardQueued()
            conns.append(c)
        }
        let data = Array(("{\"v\":1,\"p\":\"" + String(repeating: "A", count: max(0, payloadBytes - 16)) + "\"}").utf8)
        let clock = ContinuousClock()
        var publish = Duration.zero
        var drain = Duration.zero
        var deliveries = 0
        var rssPerQueued = 0.0
        var allocCalls: UInt = 0, allocBytes: UInt = 0
        var cpu = 0.0
        var i = 0
        while i < publications {
            let batch = min(drainEvery, publications - i)
            let rss0 = residentBytes()
            let a0 = allocationCounts()
            let c0 = threadCPUSeconds()
            let t0 = clock.now
            for _ in 0..<batch {
                guard case .success(let r) = engine.publish(siteID: site.siteID, channel: "events", event: "encrypted", data: data) else {
                    fatalError("publish")
                }
                deliveries += r.deliveries
            }
            let t1 = clock.now
            cpu += threadCPUSeconds() - c0
            if let a0, let a1 = allocationCounts() {
                allocCalls += a1.calls - a0.calls
                allocBytes += a1.bytes - a0.bytes
            }
            if i == 0 { rssPerQueued = Double(residentBytes() - rss0) / Double(batch * subscribers) }
            for c in conns { _ = c.discardQueued() }
            drain += clock.now - t1
            publish += t1 - t0
            i += batch
        }
        let measured = allocationCounts() != nil
        return FanOutResult(subscribers: subscribers, publications: publications, payloadBytes: data.count,
                            deliveries: deliveries, publishSeconds: seconds(publish), drainSeconds: seconds(drain),
                            publishCPUSeconds: cpu,
                            rssBytesPerQueuedDelivery: rssPerQueued,
                            allocationsPerDelivery: measured ? Double(allocCalls) / Double(deliveries) : nil,
                            allocatedBytesPerDelivery: measured ? Double(allocBytes) / Double(deliveries) : nil)
    }

    /// Resident memory per idle connection with one subscription.
    public static func idleMemory(connections: Int, sharedChannel: Bool = true) -> IdleResult {
        let (registry, site) = site()
        let engine = engine(registry)
        let grant = ConnectionGrant.siteWide(siteID: site.siteID, userID: "1", expiresAt: Int64.max / 2)
        var conns: [RelayConnection] = []
        conns.reserveCapacity(connections)
        let names = (0..<connections).map { sharedChannel ? "events" : "c\($0)" }
        let before = residentBytes()
        for k in 0..<connections {
            guard case .success(let c) = engine.connect(grant) else { fatalError("connect") }
            _ = engine.subscribe(c, channels: [names[k]])
            _ = c.discardQueued()
            conns.append(c)
        }
        let after = residentBytes()
        let result = IdleResult(connections: connections, sharedChannel: sharedChannel,
                                rssBytesPerConnection: Double(after - before) / Double(connections))
        withExtendedLifetime(conns) {}
        return result
    }

    static func format3(_ x: Double) -> String {
        let scaled = Int((x * 1000).rounded())
        let frac = String(scaled % 1000)
        return "\(scaled / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)"
    }

    typealias CountsFunction = @convention(c) (UnsafeMutablePointer<UInt>, UnsafeMutablePointer<UInt>) -> Void

    /// Process-wide heap allocation counters from a preloaded shim exporting
    /// `relay_alloc_counts` (see Docs/core.md), or nil.
    public static func allocationCounts() -> (calls: UInt, bytes: UInt)? {
        #if canImport(Glibc)
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "relay_alloc_counts") else { return nil }
        let fn = unsafeBitCast(sym, to: CountsFunction.self)
        var calls: UInt = 0, bytes: UInt = 0
        fn(&calls, &bytes)
        return (calls, bytes)
        #else
        return nil
        #endif
    }

    /// CPU time of the calling thread.
    public static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Resident set size from `/proc/self/statm` (0 where unavailable).
    public static func residentBytes() -> Int {
        #if os(Linux)
        guard let f = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(f) }
        var size = 0, resident = 0
        var buf = [CChar](repeating: 0, count: 128)
        guard fgets(&buf, 128, f) != nil else { return 0 }
        let fields = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
        guard fields.count >= 2 else { return 0 }
        size = Int(fields[0]) ?? 0
        resident = Int(fields[1]) ?? 0
        _ = size
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return 0
        #endif
    }
}
