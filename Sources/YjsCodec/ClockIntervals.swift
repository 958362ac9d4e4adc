// Per-client sets of clock ranges, used to maintain a room's state vector and delete set
// incrementally (never re-deriving them from the merged update).

/// Disjoint, coalesced clock ranges of one client, sorted ascending.
struct IntervalSet: Sendable, Equatable {
    private(set) var ranges: [Range<UInt64>] = []

    /// Index of the first range whose upper bound is ≥ `x`.
    private func firstEndingAtOrAfter(_ x: UInt64) -> Int {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if ranges[mid].upperBound < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Whether `r` is entirely covered.
    func contains(_ r: Range<UInt64>) -> Bool {
        if r.isEmpty { return true }
        let i = firstEndingAtOrAfter(r.upperBound)
        return i < ranges.count && ranges[i].lowerBound <= r.lowerBound
    }

    /// Adds `r`, merging with overlapping or adjacent ranges.
    mutating func insert(_ r: Range<UInt64>) {
        if r.isEmpty { return }
        if let last = ranges.last, last.upperBound <= r.lowerBound {  // fast path: append
            if last.upperBound == r.lowerBound {
                ranges[ranges.count - 1] = last.lowerBound..<r.upperBound
            } else {
                ranges.append(r)
            }
            return
        }
        var i = firstEndingAtOrAfter(r.lowerBound)
        var lo = r.lowerBound, hi = r.upperBound
        let start = i
        while i < ranges.count && ranges[i].lowerBound <= hi {
            lo = min(lo, ranges[i].lowerBound)
            hi = max(hi, ranges[i].upperBound)
            i += 1
        }
        ranges.replaceSubrange(start..<i, with: [lo..<hi])
    }

    /// Adds many ranges in O((n + m) log m): sorts them, then merges with the existing ranges in one
    /// linear pass (so a delete set with a million unsorted ranges cannot cause quadratic work).
    mutating func insert(contentsOf new: [Range<UInt64>]) {
        if new.count < 8 {
            for r in new { insert(r) }
            return
        }
        let sorted = new.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        var out: [Range<UInt64>] = []
        out.reserveCapacity(ranges.count + sorted.count)
        var i = 0, j = 0
        while i < ranges.count || j < sorted.count {
            let next: Range<UInt64>
            if j >= sorted.count || (i < ranges.count && ranges[i].lowerBound <= sorted[j].lowerBound) {
                next = ranges[i]; i += 1
            } else {
                next = sorted[j]; j += 1
            }
            if let last = out.last, next.lowerBound <= last.upperBound {
                if next.upperBound > last.upperBound { out[out.count - 1] = last.lowerBound..<next.upperBound }
            } else {
                out.append(next)
            }
        }
        ranges = out
    }

    /// Length of the run starting at clock 0 (the state-vector clock).
    var contiguousFromZero: UInt64 {
        guard let f = ranges.first, f.lowerBound == 0 else { return 0 }
        return f.upperBound
    }
}

/// What a document holds: the struct ranges (for the state vector) and the deleted ranges per client.
public struct KnownState: Sendable {
    var structs: [UInt64: IntervalSet] = [:]
    var deletes: [UInt64: IntervalSet] = [:]

    public init() {}

    public var stateVector: StateVector {
        var sv = StateVector()
        for (c, s) in structs {
            let k = s.contiguousFromZero
            if k > 0 { sv.clocks[c] = k }
        }
        return sv
    }

    /// Ranges of a decoded update: structs (Skips excluded) and delete set.
    public struct Ranges: Sendable {
        var structs: [(UInt64, Range<UInt64>)] = []
        var deletes: [(UInt64, Range<UInt64>)] = []
        /// Client blocks in strictly descending client order (see `YUpdate.hasCanonicalBlockOrder`).
        public internal(set) var canonicalOrder = true
        /// Whether the update deletes anything.
        public var hasDeletions: Bool { !deletes.isEmpty }
    }

    /// Decodes and validates `update`, returning its ranges (consecutive structs coalesced).
    public static func ranges(of update: [UInt8]) throws -> Ranges {
        var out = Ranges()
        var r = try StructReader(update, filterSkips: false)
        var last: (client: UInt64, end: UInt64)? = nil
        while r.hasCur {
            let client = r.cur.client, clock = r.cur.clock, end = r.cur.end
            if let l = last, client == l.client ? clock != l.end : client > l.client { out.canonicalOrder = false }
            last = (client, end)
            if r.cur.kind != .skip {
                if let prev = out.structs.last, prev.0 == client, prev.1.upperBound == clock {
                    out.structs[out.structs.count - 1].1 = prev.1.lowerBound..<end
                } else {
                    out.structs.append((client, clock..<end))
                }
            }
            try r.next()
        }
        let ds = try r.readDeleteSet()
        if !r.d.isAtEnd { throw YjsDecodingError.trailingBytes(offset: r.d.position) }
        for (c, rs) in ds.clients {
            for x in rs where x.length > 0 { out.deletes.append((c, x.clock..<x.end)) }
        }
        return out
    }

    /// Whether `ranges` adds any struct or deletion not already known.
    public func isNew(_ ranges: Ranges) -> Bool {
        for (c, r) in ranges.structs where !(structs[c]?.contains(r) ?? false) { return true }
        for (c, r) in ranges.deletes where !(deletes[c]?.contains(r) ?? false) { return true }
        return false
    }

    public mutating func insert(_ ranges: Ranges) {
        var s: [UInt64: [Range<UInt64>]] = [:], d: [UInt64: [Range<UInt64>]] = [:]
        for (c, r) in ranges.structs { s[c, default: []].append(r) }
        for (c, r) in ranges.deletes { d[c, default: []].append(r) }
        for (c, rs) in s { structs[c, default: IntervalSet()].insert(contentsOf: rs) }
        for (c, rs) in d { deletes[c, default: IntervalSet()].insert(contentsOf: rs) }
    }
}
