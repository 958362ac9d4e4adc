// Update-level algorithms on v1 updates, byte-compatible with Yjs's
// encodeStateVectorFromUpdate, diffUpdate and mergeUpdates (without a document model).

/// Operations on Yjs v1 updates (`[UInt8]`), matching Yjs's "alternative update API".
public enum YUpdate {
    /// The empty update `00 00`.
    public static let empty: [UInt8] = [0, 0]

    /// Fully decodes `update` and throws if it is malformed or has trailing bytes.
    public static func validate(_ update: [UInt8]) throws {
        var r = try StructReader(update, filterSkips: false)
        while r.hasCur { try r.next() }
        _ = try r.readDeleteSet()
        if !r.d.isAtEnd { throw YjsDecodingError.trailingBytes(offset: r.d.position) }
    }

    /// Equivalent of Yjs `encodeStateVectorFromUpdate`, as encoded bytes (clients in update order).
    public static func encodeStateVector(fromUpdate update: [UInt8]) throws -> [UInt8] {
        var pairs: [(UInt64, UInt64)] = []
        try stateVectorPairs(update) { pairs.append(($0, $1)) }
        var e = Lib0Encoder(capacity: 1 + pairs.count * 10)
        e.writeVarUInt(UInt64(pairs.count))
        for (c, k) in pairs { e.writeVarUInt(c); e.writeVarUInt(k) }
        return e.bytes
    }

    /// The state vector of `update` (Yjs `encodeStateVectorFromUpdate` semantics).
    public static func stateVector(of update: [UInt8]) throws -> StateVector {
        var sv = StateVector()
        try stateVectorPairs(update) { sv.clocks[$0] = $1 }
        return sv
    }

    private static func stateVectorPairs(_ update: [UInt8], _ emit: (UInt64, UInt64) -> Void) throws {
        var r = try StructReader(update, filterSkips: false)
        guard r.hasCur else {
            _ = try r.readDeleteSet()
            return
        }
        var currClient = r.cur.client
        var stopCounting = r.cur.clock != 0
        var currClock: UInt64 = stopCounting ? 0 : r.cur.end
        while r.hasCur {
            if currClient != r.cur.client {
                if currClock != 0 { emit(currClient, currClock) }
                currClient = r.cur.client
                currClock = 0
                stopCounting = r.cur.clock != 0
            }
            if r.cur.kind == .skip { stopCounting = true }
            if !stopCounting { currClock = r.cur.end }
            try r.next()
        }
        if currClock != 0 { emit(currClient, currClock) }
        _ = try r.readDeleteSet()
    }

    /// Equivalent of Yjs `diffUpdate(update, sv)`: the part of `update` not covered by `sv`,
    /// slicing a struct where the boundary falls inside it. The delete set is kept whole.
    public static func diff(_ update: [UInt8], against sv: StateVector) throws -> [UInt8] {
        var r = try StructReader(update, filterSkips: false)
        let src = r.bytes
        var w = StructWriter(capacity: update.count)
        while r.hasCur {
            let currClient = r.cur.client
            let svClock = sv.clocks[currClient] ?? 0
            if r.cur.kind == .skip {
                try r.next()
                continue
            }
            if r.cur.end > svClock {
                w.write(r.cur, src: src, offset: svClock > r.cur.clock ? svClock - r.cur.clock : 0)
                try r.next()
                while r.hasCur && r.cur.client == currClient {
                    w.write(r.cur, src: src, offset: 0)
                    try r.next()
                }
            } else {
                while r.hasCur && r.cur.client == currClient && r.cur.end <= svClock { try r.next() }
            }
        }
        let ds = try r.readDeleteSet()
        return w.finish(deleteSet: ds)
    }

    /// `diff` with an encoded state vector.
    public static func diff(_ update: [UInt8], againstEncoded sv: [UInt8]) throws -> [UInt8] {
        try diff(update, against: StateVector(decoding: sv))
    }

    /// Equivalent of Yjs `mergeUpdates`: one update containing all structs of `updates` (overlaps
    /// sliced, gaps filled with Skip structs) and the union of their delete sets.
    /// Runs as a k-way heap merge: O(total structs × log k).
    public static func merge(_ updates: [[UInt8]]) throws -> [UInt8] {
        if updates.count == 1 {
            try validate(updates[0])
            return updates[0]
        }
        var merger = try KWayMerger(updates)
        return try merger.run()
    }
}

/// The k-way merge behind `YUpdate.merge`. Follows Yjs's mergeUpdatesV2 step by step.
///
/// Yjs re-sorts all inputs every step with V8's `Array.prototype.sort`, and its comparator is
/// inconsistent when a GC and an Item start at the same ID (both compare as "less"). For fewer
/// than 64 inputs V8 sorts with a single binary-insertion run, which this type replays exactly
/// (`exactOrder`), so the output is byte-identical to Yjs. For 64 or more inputs it uses a heap
/// keyed (client desc, clock asc, last-used desc, input asc), which picks the same input as the
/// stable sort whenever the comparator is consistent: O(total structs × log k). When a GC and an
/// Item tie, the heap may keep the other (equally valid) representation of that deleted range.
struct KWayMerger {
    var readers: [StructReader]
    var srcs: [[UInt8]]
    var stamps: [UInt64]
    var heap: [Int] = []
    var stampCounter: UInt64 = 0
    /// Replay V8's sort (exact Yjs output) instead of the heap.
    let exactOrder: Bool
    var order: [Int] = []

    init(_ updates: [[UInt8]], forceHeap: Bool = false) throws {
        readers = []
        readers.reserveCapacity(updates.count)
        srcs = updates
        for u in updates { readers.append(try StructReader(u, filterSkips: true)) }
        stamps = [UInt64](repeating: 0, count: updates.count)
        exactOrder = updates.count < 64 && !forceHeap
        if exactOrder {
            order = Array(readers.indices)
            return
        }
        heap.reserveCapacity(updates.count)
        for i in readers.indices where readers[i].hasCur { heap.append(i) }
        if heap.count > 1 {
            for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }
    }

    /// True when input `a` must be taken before input `b`.
    @inline(__always)
    func less(_ a: Int, _ b: Int) -> Bool {
        let xc = readers[a].cur.client, yc = readers[b].cur.client
        if xc != yc { return xc > yc }
        let xk = readers[a].cur.clock, yk = readers[b].cur.clock
        if xk != yk { return xk < yk }
        if stamps[a] != stamps[b] { return stamps[a] > stamps[b] }
        return a < b
    }

    /// Yjs's comparator (including its GC/Item inconsistency): negative when `i` sorts first.
    @inline(__always)
    func yjsCompare(_ i: Int, _ j: Int) -> Int {
        let xc = readers[i].cur.client, yc = readers[j].cur.client
        if xc == yc {
            let xk = readers[i].cur.clock, yk = readers[j].cur.clock
            if xk == yk {
                let a = readers[i].cur.kind, b = readers[j].cur.kind
                return a == b ? 0 : (a == .skip ? 1 : -1)
            }
            return xk < yk ? -1 : 1
        }
        return yc < xc ? -1 : 1
    }

    /// V8's TimSort for arrays shorter than 64 elements: one run (CountAndMakeRun) extended by
    /// binary insertion sort.
    mutating func v8Sort() {
        order.removeAll { !readers[$0].hasCur }
        let n = order.count
        if n < 2 { return }
        var runLength = 2
        if n > 1 {
            let descending = yjsCompare(order[1], order[0]) < 0
            var previous = order[1]
            var idx = 2
            while idx < n {
                let c = yjsCompare(order[idx], previous)
                if descending ? c >= 0 : c < 0 { break }
                previous = order[idx]
                runLength += 1
                idx += 1
            }
            if descending { order[0..<runLength].reverse() }
        }
        var start = runLength
        while start < n {
            var left = 0, right = start
            let pivot = order[start]
            while left < right {
                let mid = left + ((right - left) >> 1)
                if yjsCompare(pivot, order[mid]) < 0 { right = mid } else { left = mid + 1 }
            }
            var p = start
            while p > left { order[p] = order[p - 1]; p -= 1 }
            order[left] = pivot
            start += 1
        }
    }

    /// The input to take next, or nil when all are exhausted.
    mutating func selectTop() -> Int? {
        if exactOrder {
            v8Sort()
            return order.first
        }
        return heap.first
    }

    /// Called after the selected input was used.
    mutating func stepDone() {
        if !exactOrder { refreshTop() }
    }

    mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            var m = l
            let r = l + 1
            if r < n && less(heap[r], heap[l]) { m = r }
            if less(heap[m], heap[i]) {
                heap.swapAt(m, i)
                i = m
            } else {
                return
            }
        }
    }

    /// Re-positions the top input after it was used (its struct may have changed or ended).
    mutating func refreshTop() {
        let top = heap[0]
        if !readers[top].hasCur {
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                siftDown(0)
            }
        } else {
            stampCounter += 1
            stamps[top] = stampCounter
            siftDown(0)
        }
    }

    /// The struct being written: `s` from input `src` (−1 for a synthesized Skip) from unit `off`.
    struct Pending {
        var s: RawStruct
        var src: Int
        var off: UInt64
        @inline(__always) var start: UInt64 { s.clock + off }
        @inline(__always) var end: UInt64 { s.end }
    }

    mutating func emit(_ p: Pending, _ w: inout StructWriter) {
        w.write(p.s, src: p.src >= 0 ? srcs[p.src] : [], offset: p.off)
    }

    mutating func run() throws -> [UInt8] {
        var total = 0
        for s in srcs { total += s.count }
        var w = StructWriter(capacity: total)
        var cw: Pending? = nil
        while let di = selectTop() {
            let firstClient = readers[di].cur.client
            if var currWrite = cw {
                var iterated = false
                while readers[di].hasCur && readers[di].cur.end <= currWrite.end && readers[di].cur.client >= currWrite.s.client {
                    try readers[di].next()
                    iterated = true
                }
                guard let curr = readers[di].curr, curr.client == firstClient,
                      !(iterated && curr.clock > currWrite.end) else {
                    stepDone()
                    continue
                }
                if firstClient != currWrite.s.client {
                    emit(currWrite, &w)
                    currWrite = Pending(s: curr, src: di, off: 0)
                    try readers[di].next()
                } else if currWrite.end < curr.clock {
                    if currWrite.s.kind == .skip {
                        currWrite.s.length = curr.end - currWrite.s.clock
                        currWrite.s.raw = 0..<0
                    } else {
                        emit(currWrite, &w)
                        let gapStart = currWrite.end
                        currWrite = Pending(s: .skip(client: firstClient, clock: gapStart, length: curr.clock - gapStart), src: -1, off: 0)
                    }
                } else {
                    let diff = currWrite.end - curr.clock
                    var c = Pending(s: curr, src: di, off: 0)
                    if diff > 0 {
                        if currWrite.s.kind == .skip {
                            currWrite.s.length = currWrite.s.length > diff ? currWrite.s.length - diff : 0
                            currWrite.s.raw = 0..<0
                        } else {
                            c.off = diff
                        }
                    }
                    // mergeWith: only GC+GC and Skip+Skip coalesce for lazily read structs.
                    if currWrite.s.kind != .item && currWrite.s.kind == c.s.kind {
                        currWrite.s.length += c.s.length - c.off
                        currWrite.s.raw = 0..<0
                    } else {
                        emit(currWrite, &w)
                        currWrite = c
                        try readers[di].next()
                    }
                }
                cw = currWrite
            } else {
                cw = Pending(s: readers[di].cur, src: di, off: 0)
                try readers[di].next()
            }
            var currWrite = cw!
            while readers[di].hasCur && readers[di].cur.client == firstClient && readers[di].cur.clock == currWrite.end
                    && readers[di].cur.kind != .skip {
                emit(currWrite, &w)
                currWrite = Pending(s: readers[di].cur, src: di, off: 0)
                try readers[di].next()
            }
            cw = currWrite
            stepDone()
        }
        if let c = cw { emit(c, &w) }
        var dss: [DeleteSet] = []
        dss.reserveCapacity(readers.count)
        for i in readers.indices {
            dss.append(try readers[i].readDeleteSet())
            if !readers[i].d.isAtEnd { throw YjsDecodingError.trailingBytes(offset: readers[i].d.position) }
        }
        return w.finish(deleteSet: DeleteSet.merged(dss))
    }
}

extension YUpdate {
    /// The delete set of a v1 update (ranges per client as written; clients with no ranges dropped).
    public static func deleteSet(of update: [UInt8]) throws -> DeleteSet {
        try structSectionAndDeleteSet(update).deleteSet
    }

    /// Splits a v1 update into the byte length of its struct section and its decoded delete set.
    static func structSectionAndDeleteSet(_ update: [UInt8]) throws -> (structBytes: ArraySlice<UInt8>, deleteSet: DeleteSet) {
        var r = try StructReader(update, filterSkips: false)
        while r.hasCur { try r.next() }
        let end = r.d.position
        return (update[0..<end], try r.readDeleteSet())
    }
}

extension YUpdate {
    /// Whether the client blocks of `update` are in strictly descending client order, as every
    /// Yjs and yrs writer produces them. Yjs's merge algorithm (and so `merge`) assumes this
    /// order; on other input it can drop structs, exactly as Yjs does.
    public static func hasCanonicalBlockOrder(_ update: [UInt8]) throws -> Bool {
        var r = try StructReader(update, filterSkips: false)
        var last: (client: UInt64, end: UInt64)? = nil
        var canonical = true
        while let s = r.curr {
            if let l = last {
                if s.client == l.client ? s.clock != l.end : s.client > l.client { canonical = false }
            }
            last = (s.client, s.end)
            try r.next()
        }
        _ = try r.readDeleteSet()
        return canonical
    }

    /// Returns `update` unchanged when its block order is canonical; otherwise an equivalent
    /// update with one block per client in descending order (each block is merged as a separate
    /// input, which Yjs's merge handles correctly).
    public static func canonicalized(_ update: [UInt8]) throws -> [UInt8] {
        if try hasCanonicalBlockOrder(update) { return update }
        var parts: [[UInt8]] = []
        var r = try StructReader(update, filterSkips: false)
        let src = r.bytes
        var w = StructWriter()
        var wrote = false
        var last: (client: UInt64, end: UInt64)? = nil
        while let s = r.curr {
            if let l = last, s.client != l.client || s.clock != l.end, wrote {
                parts.append(w.finish(deleteSet: DeleteSet()))
                w = StructWriter()
                wrote = false
            }
            last = (s.client, s.end)
            if s.kind != .skip {
                w.write(s, src: src, offset: 0)
                wrote = true
            } else if wrote {
                parts.append(w.finish(deleteSet: DeleteSet()))
                w = StructWriter()
                wrote = false
            }
            try r.next()
        }
        if wrote { parts.append(w.finish(deleteSet: DeleteSet())) }
        var dsOnly = StructWriter()
        parts.append(dsOnly.finish(deleteSet: try r.readDeleteSet()))
        return try merge(parts)
    }
}

extension YUpdate {
    /// Struct coalescing (reference §4.4, not done by Yjs or yrs): joins consecutive structs A, B
    /// of one client when B starts where A ends, B's origin is A's last ID, B's right origin equals
    /// A's, and both have the same content kind among String, Deleted, Any and JSON (GC+GC too).
    /// A multi-unit struct means exactly "each unit's origin is the previous unit, same right
    /// origin", so the joined struct describes the same items. Typing-heavy documents shrink about
    /// 8×. The tests check against Yjs that documents built from coalesced updates are identical.
    public static func coalesced(_ update: [UInt8]) throws -> [UInt8] {
        var r = try StructReader(update, filterSkips: false)
        let src = r.bytes
        var w = StructWriter(capacity: update.count)
        var run: RawStruct? = nil
        var parts: [Range<Int>] = []
        var runEnd: UInt64 = 0

        func flush(_ run: RawStruct, _ parts: [Range<Int>], _ end: UInt64, _ w: inout StructWriter) {
            if parts.count <= 1 {
                w.write(run, src: src, offset: 0)
                return
            }
            var t = run
            t.raw = 0..<0
            t.length = end - run.clock
            var side = Lib0Encoder(capacity: 64)
            func copy(_ r: Range<Int>) -> Range<Int> {
                let start = side.bytes.count
                side.writeRaw(src[r])
                return start..<side.bytes.count
            }
            if t.kind == .item {
                if t.parentKind == 1 { t.parentKey = copy(t.parentKey) }
                if t.hasParentSub { t.parentSub = copy(t.parentSub) }
                let start = side.bytes.count
                for p in parts { side.writeRaw(src[p]) }
                t.a = start..<side.bytes.count
            }
            w.write(t, src: side.bytes, offset: 0)
        }

        while let s = r.curr {
            if var cur = run {
                let joinable: Bool
                if s.client != cur.client || s.clock != runEnd || s.kind != cur.kind || s.kind == .skip {
                    joinable = false
                } else if s.kind == .gc {
                    joinable = true
                } else {
                    joinable = s.ref == cur.ref && (s.ref == 1 || s.ref == 2 || s.ref == 4 || s.ref == 8)
                        && s.hasOrigin && s.origin == YID(client: cur.client, clock: runEnd - 1)
                        && s.hasRightOrigin == cur.hasRightOrigin
                        && (!s.hasRightOrigin || s.rightOrigin == cur.rightOrigin)
                }
                if joinable {
                    parts.append(s.a)
                    runEnd = s.end
                    cur.raw = 0..<0
                    run = cur
                } else {
                    flush(cur, parts, runEnd, &w)
                    run = s
                    parts = [s.a]
                    runEnd = s.end
                }
            } else {
                run = s
                parts = [s.a]
                runEnd = s.end
            }
            try r.next()
        }
        if let cur = run { flush(cur, parts, runEnd, &w) }
        return w.finish(deleteSet: try r.readDeleteSet())
    }
}
