#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Time source for the engine: wall-clock seconds since the Unix epoch.
/// Inject `ManualClock` in tests; the engine never sleeps or starts timers.
public protocol RelayClock: Sendable {
    func now() -> Double
}

extension RelayClock {
    /// The time in whole Unix milliseconds.
    public func nowMs() -> Int64 { Int64(now() * 1000) }
    /// The time in whole Unix seconds.
    public func nowSeconds() -> Int64 { Int64(now()) }
}

/// The system wall clock: the one clock of relayd (inject `ManualClock` in tests).
public struct SystemClock: RelayClock {
    public init() {}
    /// Shorthand for `SystemClock().nowMs()`.
    public static var nowMs: Int64 { SystemClock().nowMs() }
    public func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1_000_000_000
    }
}

import Synchronization

/// A clock that moves only when told to. For tests and simulations.
public final class ManualClock: RelayClock {
    private let value: Mutex<Double>
    public init(_ start: Double = 1_700_000_000) { value = Mutex(start) }
    public func now() -> Double { value.withLock { $0 } }
    public func advance(by seconds: Double) { value.withLock { $0 += seconds } }
    public func set(_ seconds: Double) { value.withLock { $0 = seconds } }
}
