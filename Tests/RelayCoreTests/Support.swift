import RelayProtocol
import Metrics
import Synchronization
@testable import RelayCore

/// Captures counters and gauges per label + dimensions.
final class TestMetrics: MetricsFactory {
    final class Handler: CounterHandler, RecorderHandler, FloatingPointCounterHandler, TimerHandler, MeterHandler {
        let value = Mutex<Int64>(0)
        func increment(by: Int64) { value.withLock { $0 += by } }
        func increment(by: Double) { value.withLock { $0 += Int64(by) } }
        func reset() { value.withLock { $0 = 0 } }
        func record(_ v: Int64) { value.withLock { $0 = v } }
        func record(_ v: Double) { value.withLock { $0 = Int64(v) } }
        func recordNanoseconds(_ v: Int64) { value.withLock { $0 = v } }
        func set(_ v: Int64) { value.withLock { $0 = v } }
        func set(_ v: Double) { value.withLock { $0 = Int64(v) } }
        func decrement(by: Double) { value.withLock { $0 -= Int64(by) } }
    }
    let handlers = Mutex<[String: Handler]>([:])

    static func key(_ label: String, _ dims: [(String, String)]) -> String {
        ([label] + dims.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }
    func handler(_ label: String, _ dims: [(String, String)]) -> Handler {
        handlers.withLock { h in
            let k = Self.key(label, dims)
            if let x = h[k] { return x }
            let x = Handler()
            h[k] = x
            return x
        }
    }
    func value(_ label: String, _ dims: [(String, String)] = []) -> Int64 {
        handlers.withLock { $0[Self.key(label, dims)]?.value.withLock { $0 } ?? 0 }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> CounterHandler { handler(label, dimensions) }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> FloatingPointCounterHandler { handler(label, dimensions) }
    func makeMeter(label: String, dimensions: [(String, String)]) -> MeterHandler { handler(label, dimensions) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> RecorderHandler { handler(label, dimensions) }
    func makeTimer(label: String, dimensions: [(String, String)]) -> TimerHandler { handler(label, dimensions) }
    func destroyCounter(_ handler: CounterHandler) {}
    func destroyMeter(_ handler: MeterHandler) {}
    func destroyFloatingPointCounter(_ handler: FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: RecorderHandler) {}
    func destroyTimer(_ handler: TimerHandler) {}
}

/// An engine with a manual clock, test metrics and two sites.
struct Fixture {
    let clock = ManualClock(1_700_000_000)
    let metrics = TestMetrics()
    let registry: InMemorySiteRegistry
    let engine: RelayEngine
    let siteA: Site
    let siteB: Site

    init(limits: SiteLimits = SiteLimits(), configure: (inout EngineConfiguration) -> Void = { _ in }) {
        siteA = Site(siteKey: "0123456789abcdef0123456789abcdef", limits: limits)
        siteB = Site(siteKey: "fedcba9876543210fedcba9876543210", limits: limits)
        registry = InMemorySiteRegistry([siteA, siteB])
        var config = EngineConfiguration()
        config.clock = clock
        config.metricsFactory = metrics
        configure(&config)
        engine = RelayEngine(registry: registry, configuration: config)
    }

    var now: Int64 { Int64(clock.now()) }

    func grant(_ site: Site? = nil, user: String = "1", subscribe: [String]? = nil, publish: [String]? = nil,
               ttl: Int64 = 300, v: Int = 2, format: WireFormat = .webSocket) -> ConnectionGrant {
        let s = site ?? siteA
        return ConnectionGrant(siteID: s.siteID, userID: user,
                               subscribePrefixes: subscribe ?? ["site:\(s.siteID):"],
                               publishPrefixes: publish ?? ["site:\(s.siteID):"],
                               expiresAt: now + ttl, protocolVersion: v, wireFormat: format)
    }

    func connect(_ site: Site? = nil, subscribe: [String]? = nil, publish: [String]? = nil,
                 format: WireFormat = .webSocket, v: Int = 2) throws -> RelayConnection {
        try engine.connect(grant(site, subscribe: subscribe, publish: publish, v: v, format: format)).get()
    }

    @discardableResult
    func publish(_ channel: String, _ data: String = "{\"n\":1}", event: String = "e", site: Site? = nil,
                 key: String? = nil) -> Result<PublishReceipt, PublishError> {
        engine.publish(siteID: (site ?? siteA).siteID, channel: channel, event: event, data: Array(data.utf8), idempotencyKey: key)
    }
}

extension RelayConnection {
    /// Drains everything and returns the frames (close items as "CLOSE <code>").
    func texts() -> [String] {
        drain().map {
            switch $0 {
            case .frame(let f): return f.text
            case .close(let code, let reason): return "CLOSE \(code.rawValue) \(reason)"
            }
        }
    }

    /// Drains and returns only `message` frames' texts.
    func messages() -> [String] {
        texts().filter { $0.hasPrefix("{\"type\":\"message\"") }
    }

    func closeItem() -> (CloseCode, String)? {
        for item in drain() { if case .close(let c, let r) = item { return (c, r) } }
        return nil
    }
}

/// The text after the first occurrence of `marker`, if any.
func after(_ marker: String, in text: String) -> Substring? {
    text.firstRange(of: marker).map { text[$0.upperBound...] }
}

func contains(_ text: String, _ marker: String) -> Bool { after(marker, in: text) != nil }

/// Extracts `"offset":N` from a frame.
func offsetOf(_ text: String) -> UInt64? {
    after("\"offset\":", in: text).flatMap { UInt64($0.prefix { $0.isNumber }) }
}

func epochOf(_ text: String) -> String? {
    after("\"epoch\":\"", in: text).map { String($0.prefix { $0 != "\"" }) }
}
