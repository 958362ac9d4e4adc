import RelayJSON
import Foundation
import Histogram
import RelayCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Monotonic nanoseconds (CLOCK_MONOTONIC). Publisher and subscribers live in one
/// process, so a timestamp written into a payload can be compared on delivery.
public enum MonoClock {
    @inline(__always)
    public static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// The benchmark payload: a JSON object `{"ts":<mono ns>,"seq":<n>,"pad":"xxx…"}`
/// padded so the whole object is exactly `size` bytes (when `size` is large enough).
/// The same bytes are the relayd `data` and the nchan message body.
public enum Payload {
    static let tsKey = Array(#""ts":"#.utf8)
    static let seqKey = Array(#""seq":"#.utf8)

    /// The payload for `ts` and `seq` (and, for the soak, a `"ch"` member after them), padded
    /// to `size` bytes when the members leave room.
    public static func make(ts: UInt64, seq: UInt64, ch: Int? = nil, size: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(max(size, 64))
        out += Array(#"{"ts":"#.utf8)
        out += Array(String(ts).utf8)
        out += Array(#","seq":"#.utf8)
        out += Array(String(seq).utf8)
        if let ch {
            out += Array(#","ch":"#.utf8)
            out += Array(String(ch).utf8)
        }
        let tail = Array(#","pad":""}"#.utf8)
        let padCount = max(0, size - out.count - tail.count)
        out += Array(#","pad":""#.utf8)
        out += [UInt8](repeating: UInt8(ascii: "x"), count: padCount)
        out += Array(#""}"#.utf8)
        return out
    }

    /// Finds `"ts":N` and `"seq":N` anywhere in `bytes` (a relayd frame wraps the
    /// payload in `data`; an nchan frame is the payload itself). Nil when absent.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> (ts: UInt64, seq: UInt64)? {
        guard let t = number(after: tsKey, in: bytes, from: 0) else { return nil }
        guard let s = number(after: seqKey, in: bytes, from: t.end) else { return nil }
        return (t.value, s.value)
    }

    public static func parse(_ bytes: [UInt8]) -> (ts: UInt64, seq: UInt64)? {
        bytes.withUnsafeBytes { parse($0) }
    }

    @inline(__always)
    static func number(after key: [UInt8], in b: UnsafeRawBufferPointer, from start: Int) -> (value: UInt64, end: Int)? {
        let n = b.count, k = key.count
        guard n >= k else { return nil }
        var i = start
        let first = key[0]
        while i <= n - k {
            if b[i] == first {
                var j = 1
                while j < k && b[i + j] == key[j] { j += 1 }
                if j == k {
                    var p = i + k
                    var v: UInt64 = 0
                    var digits = 0
                    while p < n, b[p] >= 0x30, b[p] <= 0x39 {
                        v = v &* 10 &+ UInt64(b[p] - 0x30)
                        p += 1
                        digits += 1
                    }
                    return digits > 0 ? (v, p) : nil
                }
            }
            i += 1
        }
        return nil
    }

    /// Whether `needle` occurs in `b` (small needles, small frames).
    public static func contains(_ b: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
        let n = b.count, k = needle.count
        guard k > 0, n >= k else { return false }
        var i = 0
        while i <= n - k {
            if b[i] == needle[0] {
                var j = 1
                while j < k && b[i + j] == needle[j] { j += 1 }
                if j == k { return true }
            }
            i += 1
        }
        return false
    }
}

/// Per subscription (one connection, one channel): sequence numbers of one
/// channel arrive in publish order, so a jump is a gap and a repeat is a duplicate.
/// Losses are counted at the end against what the publisher had accepted,
/// so a publish the relay refused is not counted as lost.
public struct SequenceTracker: Sendable, Equatable {
    /// Highest sequence number seen (0 = none).
    public private(set) var last: UInt64 = 0
    /// Distinct in-order deliveries.
    public private(set) var unique: UInt64 = 0
    /// Deliveries at or below `last`.
    public private(set) var duplicates: UInt64 = 0
    /// Sequence numbers skipped on the way (they may have been refused publishes).
    public private(set) var skipped: UInt64 = 0

    public init() {}

    /// Returns true when `seq` is new.
    @discardableResult
    public mutating func observe(_ seq: UInt64) -> Bool {
        if seq <= last { duplicates += 1; return false }
        if seq > last + 1 { skipped += seq - last - 1 }
        last = seq
        unique += 1
        return true
    }

    /// Messages lost given that the publisher had `accepted` publishes (sequence
    /// numbers 1…`acceptedMax`, `accepted` of them answered 2xx) on this channel.
    public func lost(accepted: UInt64) -> UInt64 { accepted > unique ? accepted - unique : 0 }
}

/// Latency and counters, owned by one event loop (never shared across threads).
public final class LoopStats: @unchecked Sendable {
    public var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    public var delivered: UInt64 = 0
    public var duplicates: UInt64 = 0
    public var errorFrames: UInt64 = 0
    public var lastDeliveryNanos: UInt64 = 0
    public var closes: [Int: Int] = [:]
    public var connectErrors: Int = 0
    public var connected: Int = 0
    public var connectLatency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)

    public init() {}

    /// Records a delivery `micros` after its publish instant.
    @inline(__always)
    public func record(latencyMicros: UInt64) {
        _ = latency.record(min(latencyMicros, 120_000_000))
    }

    public func resetDeliveries() {
        latency.reset()
        delivered = 0
        duplicates = 0
        errorFrames = 0
        lastDeliveryNanos = 0
    }
}

/// Percentiles of a histogram recorded in microseconds, in milliseconds.
public struct LatencySummary: Sendable {
    public var count: UInt64
    public var p50: Double, p90: Double, p99: Double, p999: Double, max: Double, mean: Double

    public init(_ h: Histogram<UInt64>) {
        count = h.totalCount
        func ms(_ v: UInt64) -> Double { Double(v) / 1000 }
        if h.totalCount == 0 {
            p50 = 0; p90 = 0; p99 = 0; p999 = 0; max = 0; mean = 0
        } else {
            p50 = ms(h.valueAtPercentile(50)); p90 = ms(h.valueAtPercentile(90)); p99 = ms(h.valueAtPercentile(99))
            p999 = ms(h.valueAtPercentile(99.9)); max = ms(h.max); mean = h.mean / 1000
        }
    }

    public var json: JSONValue {
        .object([("count", .int(Int64(count))), ("p50_ms", num(p50)), ("p90_ms", num(p90)), ("p99_ms", num(p99)),
                 ("p999_ms", num(p999)), ("max_ms", num(max)), ("mean_ms", num(mean))])
    }

    public var text: String {
        String(format: "p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms  (n=%llu)", p50, p90, p99, p999, max, count)
    }
}

func num(_ d: Double, _ digits: Int = 3) -> JSONValue { .number(String(format: "%.\(digits)f", d)) }

/// CPU seconds and RSS of a server, read from /proc (the pids and their children).
public struct ProcSample: Sendable {
    public var cpuSeconds: Double
    public var rssBytes: Int64
    public var pids: [Int32]
}

public enum ProcSampler {
    /// Parses utime+stime (clock ticks) from the text of /proc/<pid>/stat.
    public static func cpuTicks(statLine: String) -> Int64? {
        // The command name is in parentheses and may contain spaces; fields follow the last ')'.
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let rest = statLine[statLine.index(after: close)...].split(separator: " ")
        // rest[0] = state (field 3); utime = field 14 -> rest[11], stime = field 15 -> rest[12].
        guard rest.count > 12, let u = Int64(rest[11]), let s = Int64(rest[12]) else { return nil }
        return u + s
    }

    /// VmRSS in bytes from the text of /proc/<pid>/status.
    public static func rssBytes(status: String) -> Int64? {
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int64(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// The whole file, read with open/read: /proc files report size 0, and Foundation's
    /// `contents(atPath:)` leaks a 4 KiB buffer on every such read (Swift 6.3.1; LeakSanitizer),
    /// which a sampler reading several files a second for a 10-minute soak would add up.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `pids` and, recursively, their children.
    public static func expand(_ pids: [Int32]) -> [Int32] {
        var out: [Int32] = []
        var queue = pids
        while let p = queue.first {
            queue.removeFirst()
            if out.contains(p) { continue }
            out.append(p)
            if let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/task") {
                for t in tasks {
                    if let c = read("/proc/\(p)/task/\(t)/children") {
                        queue += c.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                    }
                }
            }
        }
        return out
    }

    public static func sample(_ pids: [Int32]) -> ProcSample? {
        guard !pids.isEmpty else { return nil }
        let all = expand(pids)
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        var ticks: Int64 = 0, rss: Int64 = 0
        for p in all {
            if let s = read("/proc/\(p)/stat"), let t = cpuTicks(statLine: s) { ticks += t }
            if let s = read("/proc/\(p)/status"), let r = rssBytes(status: s) { rss += r }
        }
        return ProcSample(cpuSeconds: Double(ticks) / hz, rssBytes: rss, pids: all)
    }

    /// This process's user+system CPU seconds.
    public static func selfCPUSeconds() -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }
}

/// relayd connection tokens, minted the way WordPress does (HS256 with the site's JWT secret).
public enum RelaydToken {
    public static func siteID(siteKey: String) -> String { SHA256.hexDigest("site:" + siteKey) }

    public static func mint(siteKey: String, jwtSecret: String, lifetime: Int64 = 3600, now: Int64 = Int64(Date().timeIntervalSince1970)) -> String {
        let siteID = siteID(siteKey: siteKey)
        let claims = JWTClaims(tenantID: SHA256.hexDigest("tenant:" + siteKey), siteID: siteID, userID: "bench",
                               allowedChannelPrefixes: ["site:\(siteID):"], allowedPublishPrefixes: ["site:\(siteID):"],
                               version: 2, issuedAt: now, expiresAt: now + lifetime)
        return JWTSigner.hs256(secret: jwtSecret).sign(claims)
    }
}
