// Garbage collection of a merged update, as a Yjs `Y.Doc` with `gc: true` leaves its state.

extension YUpdate {
    /// Returns `update` with its deleted content collected the way Yjs's `gc` does it, without
    /// building a document:
    ///
    /// - a deleted item keeps its ID, origins, parent and length but its content becomes
    ///   `ContentDeleted` (an item partly covered by the delete set is split at the boundaries;
    ///   the part after a cut takes the previous unit as origin, as Yjs's `splitItem`);
    /// - every item whose parent type is deleted, or lies under a deleted type, becomes a `GC`
    ///   struct (Yjs's `ContentType.gc`), as does an item whose origin or right origin is a GC or
    ///   whose parent is not a type (Yjs's `getMissing`);
    /// - of the entries written under one key of a map, all but the one Yjs's ordering puts last
    ///   are deleted (a concurrent overwrite deletes the loser only in the receiving document, so
    ///   no update carries that deletion);
    /// - GC ranges are added to the delete set (Yjs writes the delete set from its struct store,
    ///   where a GC counts as deleted).
    ///
    /// Structs Yjs could not integrate yet (a clock gap, a missing or circular dependency) are
    /// kept as they are, with their content. Joining the resulting runs is left to
    /// `coalesced(_:)`. `update` must be a merged update: per client, ascending non-overlapping
    /// structs (the output of `merge`); anything else is returned unchanged.
    public static func collectingGarbage(_ update: [UInt8]) throws -> [UInt8] {
        var r = try StructReader(update, filterSkips: false)
        var structs: [RawStruct] = []
        while r.hasCur {
            structs.append(r.cur)
            try r.next()
        }
        var deleteSet = try r.readDeleteSet()
        deleteSet.sortAndMerge()
        guard let gc = GarbageCollector(structs: structs, src: r.bytes, deleteSet: deleteSet) else { return update }
        gc.resolve()
        gc.addDeletedContent()
        gc.deleteMapLosers()
        return gc.encode()
    }
}

/// The parent a struct would have once integrated.
private enum ResolvedParent: Equatable {
    /// A root type (`doc.get(name)`).
    case root
    /// The type whose item is `structs[index]`.
    case type(Int)
    /// None: Yjs turns the struct into a GC.
    case none
}

/// A class, not a struct: its helpers are called per struct and must not copy its arrays.
final class GarbageCollector {
    private let structs: [RawStruct]
    private let src: [UInt8]
    private var deleteSet: DeleteSet
    /// Per client, the indices of its structs (contiguous and in clock order in a merged update).
    private let byClient: [UInt64: Range<Int>]
    /// Per struct: its first clock and its end (flat, for the lookups).
    private let starts: [UInt64]
    private let ends: [UInt64]
    /// Per struct: the structs holding its origin, right origin and parent item (-1: none on the
    /// wire, -2: not in the update), looked up once.
    private var leftOf: [Int] = []
    private var rightOf: [Int] = []
    private var parentOf: [Int] = []
    /// Per struct: the index of the preceding struct of its client (-1 for the first).
    private let previous: [Int]

    private enum Status: UInt8 { case unknown, visiting, integrated, pending }
    private var status: [Status]
    private var parent: [ResolvedParent]
    /// Whether the struct ends as a GC (already one, or collected with its parent type).
    private var collected: [Bool]
    /// Map entries: the struct whose key this entry is under (itself for an entry that carries
    /// its key; inherited along origins as Yjs's `parentSub`), or -1.
    private var keyOwner: [Int]
    /// Extra deleted units found by the map-key ordering, per client.
    private var implicitDeletes: [UInt64: [DeleteRange]] = [:]

    init?(structs: [RawStruct], src: [UInt8], deleteSet: DeleteSet) {
        self.structs = structs
        self.src = src
        self.deleteSet = deleteSet
        var byClient: [UInt64: Range<Int>] = [:]
        var previous = [Int](repeating: -1, count: structs.count)
        for (i, s) in structs.enumerated() {
            if i > 0 && structs[i - 1].client == s.client {
                guard structs[i - 1].end <= s.clock else { return nil }  // not a merged update
                previous[i] = i - 1
                byClient[s.client] = byClient[s.client]!.lowerBound..<(i + 1)
            } else {
                guard byClient[s.client] == nil else { return nil }  // a client in two blocks
                byClient[s.client] = i..<(i + 1)
            }
        }
        self.byClient = byClient
        self.previous = previous
        starts = structs.map(\.clock)
        ends = structs.map(\.end)
        status = Array(repeating: .unknown, count: structs.count)
        parent = Array(repeating: .none, count: structs.count)
        collected = Array(repeating: false, count: structs.count)
        keyOwner = Array(repeating: -1, count: structs.count)
        leftOf = Array(repeating: -1, count: structs.count)
        rightOf = leftOf
        parentOf = leftOf
        for (i, s) in structs.enumerated() where s.kind == .item {
            if s.hasOrigin { leftOf[i] = find(s.origin, near: i) ?? -2 }
            if s.hasRightOrigin { rightOf[i] = find(s.rightOrigin) ?? -2 }
            if !s.hasOrigin && !s.hasRightOrigin && s.parentKind == 2 { parentOf[i] = find(s.parentID) ?? -2 }
        }
    }

    /// The index of the struct containing `id`, if any. `near` (a struct of the same client, e.g.
    /// the one whose origin this is) is tried first: most origins are the previous struct.
    private func find(_ id: YID, near: Int = -1) -> Int? {
        if near >= 0, near < starts.count, structs[near].client == id.client {
            if starts[near] <= id.clock && id.clock < ends[near] { return near }
            if near > 0, structs[near - 1].client == id.client, starts[near - 1] <= id.clock && id.clock < ends[near - 1] { return near - 1 }
        }
        guard let list = byClient[id.client] else { return nil }
        return ends.withUnsafeBufferPointer { e -> Int? in
            var lo = list.lowerBound, hi = list.upperBound
            while lo < hi {
                let mid = (lo + hi) / 2
                if e[mid] <= id.clock { lo = mid + 1 } else { hi = mid }
            }
            guard lo < list.upperBound, starts[lo] <= id.clock else { return nil }
            return lo
        }
    }

    private func isDeleted(_ id: YID) -> Bool {
        guard let ranges = deleteSet.clients[id.client] else { return false }
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].end <= id.clock { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].clock <= id.clock
    }

    /// Struct `i`'s first dependency (its client's previous struct, its origin, right origin,
    /// parent item) that is not integrated yet: `.missing` when Yjs could not integrate it
    /// (absent, pending, or a cycle), `.visit(d)` when it is still to be decided.
    private enum Blocker { case none, missing, visit(Int) }

    private func blocker(_ i: Int) -> Blocker {
        let s = structs[i]
        func check(_ d: Int) -> Blocker? {
            guard d >= 0 else { return .missing }
            switch status[d] {
            case .integrated: return nil
            case .unknown: return .visit(d)
            case .visiting, .pending: return .missing
            }
        }
        if previous[i] >= 0 {
            if let b = check(ends[previous[i]] == s.clock ? previous[i] : -2) { return b }
        } else if s.clock != 0 {
            return .missing
        }
        guard s.kind == .item else { return .none }
        if s.hasOrigin, let b = check(leftOf[i]) { return b }
        if s.hasRightOrigin, let b = check(rightOf[i]) { return b }
        if parentOf[i] != -1, let b = check(parentOf[i]) { return b }
        return .none
    }

    /// Decides, for every struct, whether Yjs would integrate it and under which parent
    /// (iteratively: origin chains are as long as the document).
    func resolve() {
        var stack: [Int] = []
        for root in structs.indices where status[root] == .unknown {
            stack.append(root)
            while let i = stack.last {
                if status[i] == .integrated || status[i] == .pending { stack.removeLast(); continue }
                status[i] = .visiting
                if structs[i].kind == .skip {
                    status[i] = .pending
                    continue
                }
                switch blocker(i) {
                case .missing: status[i] = .pending
                case .visit(let d): stack.append(d)
                case .none:
                    integrate(i)
                    status[i] = .integrated
                }
            }
        }
    }

    private func endsAsGC(_ i: Int) -> Bool { structs[i].kind == .gc || collected[i] }

    /// An item whose content is `ContentDeleted` is deleted whatever the delete set says: Yjs adds
    /// it to the delete set when it integrates it. Makes the delete set say so (a merged update
    /// may lack those ranges); without this, a map entry cut at its key's last unit kept a
    /// deleted unit outside the delete set, and collecting again changed the update.
    func addDeletedContent() {
        var added = false
        for i in structs.indices where status[i] == .integrated && structs[i].kind == .item && structs[i].ref == 1 {
            let s = structs[i]
            if !isCovered(client: s.client, from: s.clock, to: s.end) {
                deleteSet.clients[s.client, default: []].append(DeleteRange(clock: s.clock, length: s.length))
                added = true
            }
        }
        if added { deleteSet.sortAndMerge() }
    }

    /// Whether one range of the (merged) delete set covers `from..<to` of `client`.
    private func isCovered(client: UInt64, from: UInt64, to: UInt64) -> Bool {
        guard let ranges = deleteSet.clients[client] else { return false }
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].end <= from { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].clock <= from && ranges[lo].end >= to
    }

    private func integrate(_ i: Int) {
        let s = structs[i]
        guard s.kind == .item else {
            collected[i] = true  // a GC
            return
        }
        let left = leftOf[i] >= 0 ? leftOf[i] : nil
        let right = rightOf[i] >= 0 ? rightOf[i] : nil
        var p: ResolvedParent
        if (left.map(endsAsGC) ?? false) || (right.map(endsAsGC) ?? false) {
            p = .none
        } else if let from = right ?? left {
            p = parent[from]
            keyOwner[i] = keyOwner[from]
        } else if s.parentKind == 2 {
            let owner = parentOf[i]
            p = structs[owner].kind == .item && structs[owner].ref == 7 && !collected[owner] ? .type(owner) : .none
            if s.hasParentSub { keyOwner[i] = i }
        } else {
            p = .root
            if s.hasParentSub { keyOwner[i] = i }
        }
        parent[i] = p
        switch p {
        case .none: collected[i] = true
        case .root: break
        case .type(let t): collected[i] = collected[t] || isDeleted(YID(client: structs[t].client, clock: structs[t].clock))
        }
    }

    /// Yjs keeps the entry its ordering puts last under each key of a map and deletes the rest.
    /// Entries of one key all have a null right origin, so that order is the origin tree walked
    /// depth first with siblings in ascending client order: the last entry is found by
    /// descending to the highest-client child until a leaf. Units of one struct form a chain.
    func deleteMapLosers() {
        // group integrated, not collected map entries by (parent, key)
        var groups: [[UInt8]: [Int]] = [:]
        for i in structs.indices where status[i] == .integrated && !collected[i] && keyOwner[i] >= 0 {
            let owner = structs[keyOwner[i]]
            var key: [UInt8]
            switch parent[i] {
            case .root: key = [1] + src[owner.parentKey] + [0xFF]
            case .type(let t): key = [2] + withUnsafeBytes(of: t) { Array($0) }
            case .none: continue
            }
            key += src[owner.parentSub]
            groups[key, default: []].append(i)
        }
        for members in groups.values where members.count > 1 || structs[members[0]].length > 1 {
            // children of a unit: entries whose origin is that unit
            var children: [YID: [Int]] = [:]
            var roots: [Int] = []
            let memberSet = Set(members)
            for m in members {
                let s = structs[m]
                if leftOf[m] >= 0, memberSet.contains(leftOf[m]) {
                    children[s.origin, default: []].append(m)
                } else {
                    roots.append(m)
                }
            }
            func best(_ list: [Int]) -> Int? {
                list.max { (structs[$0].client, structs[$0].clock) < (structs[$1].client, structs[$1].clock) }
            }
            guard var cur = best(roots) else { continue }
            var unit = structs[cur].clock
            var steps = 0
            while steps <= structs.count {
                steps += 1
                let s = structs[cur]
                let id = YID(client: s.client, clock: unit)
                var candidates = children[id] ?? []
                // the next unit of the same struct is a child too
                if unit + 1 < s.end { candidates.append(-1) }
                guard !candidates.isEmpty else { break }
                let pick = candidates.max { a, b in
                    let ka = a < 0 ? (s.client, unit + 1) : (structs[a].client, structs[a].clock)
                    let kb = b < 0 ? (s.client, unit + 1) : (structs[b].client, structs[b].clock)
                    return ka < kb
                }!
                if pick < 0 { unit += 1 } else { cur = pick; unit = structs[pick].clock }
            }
            let winner = YID(client: structs[cur].client, clock: unit)
            for m in members {
                let s = structs[m]
                if s.client == winner.client && s.clock <= winner.clock && winner.clock < s.end {
                    if winner.clock > s.clock { implicitDeletes[s.client, default: []].append(DeleteRange(clock: s.clock, length: winner.clock - s.clock)) }
                    if winner.clock + 1 < s.end { implicitDeletes[s.client, default: []].append(DeleteRange(clock: winner.clock + 1, length: s.end - winner.clock - 1)) }
                } else {
                    implicitDeletes[s.client, default: []].append(DeleteRange(clock: s.clock, length: s.length))
                }
            }
        }
        guard !implicitDeletes.isEmpty else { return }
        for (c, rs) in implicitDeletes { deleteSet.clients[c, default: []].append(contentsOf: rs) }
        deleteSet.sortAndMerge()
        // a type deleted this way takes its content with it (to a fixed point: a parent can come
        // after its children in struct order)
        var changed = true
        while changed {
            changed = false
            for i in structs.indices where status[i] == .integrated && !collected[i] && structs[i].kind == .item {
                let left = leftOf[i] >= 0 ? leftOf[i] : nil
                let right = rightOf[i] >= 0 ? rightOf[i] : nil
                var gc = (left.map(endsAsGC) ?? false) || (right.map(endsAsGC) ?? false)
                if !gc, case .type(let t) = parent[i] {
                    gc = collected[t] || isDeleted(YID(client: structs[t].client, clock: structs[t].clock))
                }
                if gc { collected[i] = true; changed = true }
            }
        }
    }

    /// The collected update (structs, then the delete set with GC ranges added).
    func encode() -> [UInt8] {
        var w = StructWriter(capacity: src.count)
        var ds = deleteSet
        for (i, s) in structs.enumerated() {
            if s.kind == .gc || (s.kind == .item && collected[i] && status[i] == .integrated) {
                ds.clients[s.client, default: []].append(DeleteRange(clock: s.clock, length: s.length))
                if s.kind == .gc {
                    w.write(s, src: src, offset: 0)
                } else {
                    w.write(RawStruct(kind: .gc, client: s.client, clock: s.clock, length: s.length), src: src, offset: 0)
                }
                continue
            }
            guard s.kind == .item, status[i] == .integrated else {
                w.write(s, src: src, offset: 0)
                continue
            }
            writeItem(s, &w)
        }
        ds.sortAndMerge()
        return w.finish(deleteSet: ds)
    }

    /// Writes an integrated item split at the delete set's boundaries, deleted parts as
    /// `ContentDeleted`.
    private func writeItem(_ s: RawStruct, _ w: inout StructWriter) {
        // deleted sub-ranges, relative to the item
        var cuts: [(from: UInt64, to: UInt64, deleted: Bool)] = []
        var at: UInt64 = 0
        if let ranges = deleteSet.clients[s.client] {
            var lo = 0, hi = ranges.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if ranges[mid].end <= s.clock { lo = mid + 1 } else { hi = mid }
            }
            var k = lo
            while k < ranges.count && ranges[k].clock < s.end {
                let a = max(ranges[k].clock, s.clock) - s.clock
                let b = min(ranges[k].end, s.end) - s.clock
                k += 1
                guard b > a else { continue }  // an empty range (a delete set may hold them)
                if a > at { cuts.append((at, a, false)) }
                cuts.append((a, b, true))
                at = b
            }
        }
        if cuts.isEmpty {
            w.write(s, src: src, offset: 0)
            return
        }
        if at < s.length { cuts.append((at, s.length, false)) }
        if cuts.count == 1 && cuts[0].deleted && s.ref == 1 {
            w.write(s, src: src, offset: 0)
            return
        }
        for cut in cuts {
            var t = s
            t.raw = 0..<0
            t.clock = s.clock + cut.from
            t.length = cut.to - cut.from
            if cut.from > 0 {
                t.hasOrigin = true
                t.origin = YID(client: s.client, clock: s.clock + cut.from - 1)
                // With an origin the parent is inherited and no reader keeps the parentSub flag;
                // not writing it keeps collection byte-stable (collecting again changes nothing).
                t.hasParentSub = false
            }
            if cut.deleted {
                t.ref = 1
                w.write(t, src: src, offset: 0)
                continue
            }
            // a kept part of a partly deleted String, JSON or Any item: copy its content
            var side = Lib0Encoder(capacity: 64)
            func copy(_ r: Range<Int>) -> Range<Int> {
                let start = side.bytes.count
                side.writeRaw(src[r])
                return start..<side.bytes.count
            }
            if t.parentKind == 1 { t.parentKey = copy(s.parentKey) }
            if t.hasParentSub { t.parentSub = copy(s.parentSub) }
            let start = side.bytes.count
            switch s.ref {
            case 4:
                Self.writeUTF16Slice(src, s.a, cut.from..<cut.to, into: &side)
            case 2, 8:
                var d = Lib0Decoder(src, range: s.a)
                for _ in 0..<cut.from { if s.ref == 2 { _ = try! d.readVarBytesRange() } else { try! d.skipAny() } }
                let from = d.position
                for _ in cut.from..<cut.to { if s.ref == 2 { _ = try! d.readVarBytesRange() } else { try! d.skipAny() } }
                side.writeRaw(src[from..<d.position])
            default:
                // other contents have length 1 and cannot be cut
                side.writeRaw(src[s.a])
            }
            t.a = start..<side.bytes.count
            w.write(t, src: side.bytes, offset: 0)
        }
    }

    /// Writes the UTF-16 units `units` of the UTF-8 string `src[r]` (raw, no length prefix).
    /// A surrogate pair cut by either end becomes U+FFFD for the unit kept (Yjs's
    /// `ContentString.splice`).
    static func writeUTF16Slice(_ src: [UInt8], _ r: Range<Int>, _ units: Range<UInt64>, into e: inout Lib0Encoder) {
        var i = r.lowerBound
        var u: UInt64 = 0
        while i < r.upperBound && u < units.upperBound {
            let c = src[i]
            let width = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4
            let n: UInt64 = width == 4 ? 2 : 1
            if u >= units.lowerBound && u + n <= units.upperBound {
                e.writeRaw(src[i..<(i + width)])
            } else if u + n > units.lowerBound {
                // a pair with one unit inside the slice
                e.writeRaw([0xEF, 0xBF, 0xBD] as [UInt8])
            }
            i += width
            u += n
        }
    }
}
