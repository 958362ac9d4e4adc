// Yjs update format v1: IDs, state vectors, delete sets, and the lazy struct reader/writer.

/// A Yjs ID: (client, clock). Both are at most 2^53−1.
public struct YID: Hashable, Sendable, Comparable {
    public var client: UInt64
    public var clock: UInt64
    public init(client: UInt64, clock: UInt64) { self.client = client; self.clock = clock }
    public static func < (a: YID, b: YID) -> Bool { (a.client, a.clock) < (b.client, b.clock) }
}

/// A state vector: per client, the next expected clock (number of consecutive units known from 0).
public struct StateVector: Sendable, Equatable {
    public var clocks: [UInt64: UInt64]

    public init(_ clocks: [UInt64: UInt64] = [:]) { self.clocks = clocks }

    /// Decodes `vu(n) n×(vu(client) vu(clock))`. A repeated client keeps the last clock (as Yjs does).
    public init(decoding bytes: [UInt8]) throws {
        var d = Lib0Decoder(bytes)
        try self.init(from: &d)
        if !d.isAtEnd { throw YjsDecodingError.trailingBytes(offset: d.position) }
    }

    init(from d: inout Lib0Decoder) throws {
        let n = try d.readCount(minBytesPerElement: 2)
        var clocks: [UInt64: UInt64] = [:]
        clocks.reserveCapacity(n)
        for _ in 0..<n {
            let client = try d.readVarUInt()
            clocks[client] = try d.readVarUInt()
        }
        self.clocks = clocks
    }

    public subscript(client: UInt64) -> UInt64 {
        get { clocks[client] ?? 0 }
        set { clocks[client] = newValue }
    }

    /// Encodes with clients in descending order, omitting zero clocks (Yjs's canonical form).
    public func encoded() -> [UInt8] {
        var e = Lib0Encoder(capacity: 1 + clocks.count * 8)
        let entries = clocks.filter { $0.value > 0 }.sorted { $0.key > $1.key }
        e.writeVarUInt(UInt64(entries.count))
        for (c, k) in entries { e.writeVarUInt(c); e.writeVarUInt(k) }
        return e.bytes
    }
}

/// A run of deleted IDs `[clock, clock+length)` of one client.
public struct DeleteRange: Sendable, Equatable, Hashable {
    public var clock: UInt64
    public var length: UInt64
    public init(clock: UInt64, length: UInt64) { self.clock = clock; self.length = length }
    public var end: UInt64 { clock + length }
}

/// A delete set: per client, ranges of deleted IDs.
public struct DeleteSet: Sendable, Equatable {
    public var clients: [UInt64: [DeleteRange]]

    public init(_ clients: [UInt64: [DeleteRange]] = [:]) { self.clients = clients }

    public var isEmpty: Bool { clients.isEmpty }

    /// Reads a v1 delete set. Clients with zero ranges are dropped; a repeated client's ranges
    /// are appended (Yjs semantics).
    init(from d: inout Lib0Decoder) throws {
        let n = try d.readCount(minBytesPerElement: 2)
        var clients: [UInt64: [DeleteRange]] = [:]
        for _ in 0..<n {
            let client = try d.readVarUInt()
            let m = try d.readCount(minBytesPerElement: 2)
            if m == 0 { continue }
            var ranges: [DeleteRange] = []
            ranges.reserveCapacity(m)
            for _ in 0..<m {
                let clock = try d.readVarUInt()
                let p = d.position
                let len = try d.readVarUInt()
                // As for structs: a range must end at or below 2^53 − 1, or merging delete sets
                // makes ranges (and so updates) that no decoder reads back
                // (Fuzz/regressions/FuzzYjsMerge/delete-range-past-2-53).
                guard len <= lib0MaxSafeInteger - clock else { throw YjsDecodingError.integerOutOfRange(offset: p) }
                ranges.append(DeleteRange(clock: clock, length: len))
            }
            // appended in place: a client repeated many times must not copy its list each time
            clients[client, default: []].append(contentsOf: ranges)
        }
        self.clients = clients
    }

    /// Writes clients in descending order, ranges as stored (Yjs ≥ 13.5.47 order).
    func write(to e: inout Lib0Encoder) {
        e.writeVarUInt(UInt64(clients.count))
        for client in clients.keys.sorted(by: >) {
            let ranges = clients[client]!
            e.writeVarUInt(client)
            e.writeVarUInt(UInt64(ranges.count))
            for r in ranges { e.writeVarUInt(r.clock); e.writeVarUInt(r.length) }
        }
    }

    /// Sorts each client's ranges by clock and coalesces overlapping or adjacent ranges.
    public mutating func sortAndMerge() {
        for (client, var dels) in clients {
            dels.sort { $0.clock < $1.clock }
            var j = 1
            if dels.count > 1 {
                for i in 1..<dels.count {
                    let left = dels[j - 1]
                    let right = dels[i]
                    if left.clock + left.length >= right.clock {
                        dels[j - 1].length = max(left.length, right.clock + right.length - left.clock)
                    } else {
                        dels[j] = right
                        j += 1
                    }
                }
                dels.removeLast(dels.count - j)
            }
            clients[client] = dels
        }
    }

    /// Union of delete sets (sorted and coalesced).
    public static func merged(_ sets: [DeleteSet]) -> DeleteSet {
        var out = DeleteSet()
        for s in sets {
            for (c, r) in s.clients { out.clients[c, default: []].append(contentsOf: r) }
        }
        out.sortAndMerge()
        return out
    }

    /// Whether `id` lies in a range of this set.
    public func contains(_ id: YID) -> Bool {
        guard let rs = clients[id.client] else { return false }
        return rs.contains { id.clock >= $0.clock && id.clock < $0.end }
    }
}

/// One struct of an update as read from the wire, with payloads kept as byte ranges of the source.
struct RawStruct {
    enum Kind: UInt8 { case gc, skip, item }
    var kind: Kind
    var client: UInt64
    var clock: UInt64
    var length: UInt64
    /// Items only: content ref (1...9).
    var ref: UInt8 = 0
    /// Items only: the info byte as read (keeps the parentSub flag of an item with an origin,
    /// which a document's state writes and `raw` cannot keep).
    var sourceInfo: UInt8 = 0
    var hasOrigin = false
    var hasRightOrigin = false
    var origin = YID(client: 0, clock: 0)
    var rightOrigin = YID(client: 0, clock: 0)
    /// 0: not on the wire (item has an origin), 1: root key in `parentKey`, 2: parent item ID.
    var parentKind: UInt8 = 0
    var parentID = YID(client: 0, clock: 0)
    var parentKey: Range<Int> = 0..<0
    var hasParentSub = false
    var parentSub: Range<Int> = 0..<0
    /// Primary payload: string/embed/binary bytes, format key, type name, doc guid, or the
    /// concatenated element encodings of JSON/Any content.
    var a: Range<Int> = 0..<0
    /// Secondary payload: format value JSON, doc opts `any`.
    var b: Range<Int> = 0..<0
    var typeRef: UInt8 = 0
    /// The struct's own wire bytes in the source (info byte onwards) when they can be copied
    /// verbatim; empty when it must be re-encoded (synthesized, converted from v2, or an item
    /// whose parentSub flag Yjs drops on re-encoding).
    var raw: Range<Int> = 0..<0

    @inline(__always) var end: UInt64 { clock + length }

    static func skip(client: UInt64, clock: UInt64, length: UInt64) -> RawStruct {
        RawStruct(kind: .skip, client: client, clock: clock, length: length)
    }
}

/// Reads structs of a v1 update one at a time (Yjs's LazyStructReader), then its delete set.
struct StructReader {
    var d: Lib0Decoder
    private var blocksLeft: Int
    private var structsLeft = 0
    private var client: UInt64 = 0
    private var clock: UInt64 = 0
    let filterSkips: Bool
    /// The current struct (valid while `hasCur`), decoded in place to avoid copies.
    var cur = RawStruct(kind: .gc, client: 0, clock: 0, length: 0)
    var hasCur = false
    /// The current struct, or nil once all structs are read (copies; prefer `cur` in hot loops).
    var curr: RawStruct? { hasCur ? cur : nil }

    init(_ bytes: [UInt8], filterSkips: Bool) throws {
        d = Lib0Decoder(bytes)
        blocksLeft = try d.readCount(minBytesPerElement: 3)
        self.filterSkips = filterSkips
        try next()
    }

    var bytes: [UInt8] { d.bytes }

    /// Advances `curr`.
    @inline(__always)
    mutating func next() throws {
        repeat {
            hasCur = try readOne()
        } while filterSkips && hasCur && cur.kind == .skip
    }

    private mutating func readOne() throws -> Bool {
        while structsLeft == 0 {
            if blocksLeft == 0 { return false }
            blocksLeft -= 1
            structsLeft = try d.readCount(minBytesPerElement: 2)
            client = try d.readVarUInt()
            clock = try d.readVarUInt()
        }
        structsLeft -= 1
        try readStruct(client: client, clock: clock)
        clock = cur.end
        return true
    }

    private mutating func readStruct(client: UInt64, clock: UInt64) throws {
        let start = d.position
        let info = try d.readUInt8()
        if info == 10 || info == 0 {
            let len = try d.readVarUInt()
            cur = RawStruct(kind: info == 0 ? .gc : .skip, client: client, clock: clock, length: len)
        } else {
            let ref = info & 0x1F
            guard ref >= 1 && ref <= 9 else {
                throw YjsDecodingError.malformed("unknown struct info byte \(info)", offset: start)
            }
            cur = RawStruct(kind: .item, client: client, clock: clock, length: 0)
            cur.ref = ref
            cur.sourceInfo = info
            if info & 0x80 != 0 {
                cur.hasOrigin = true
                cur.origin = YID(client: try d.readVarUInt(), clock: try d.readVarUInt())
            }
            if info & 0x40 != 0 {
                cur.hasRightOrigin = true
                cur.rightOrigin = YID(client: try d.readVarUInt(), clock: try d.readVarUInt())
            }
            if info & 0xC0 == 0 {
                let p = d.position
                switch try d.readVarUInt() {
                case 1:
                    cur.parentKind = 1
                    cur.parentKey = try d.readVarStringRange()
                case 0:
                    cur.parentKind = 2
                    cur.parentID = YID(client: try d.readVarUInt(), clock: try d.readVarUInt())
                default:
                    throw YjsDecodingError.malformed("invalid parent info", offset: p)
                }
                if info & 0x20 != 0 {
                    cur.hasParentSub = true
                    cur.parentSub = try d.readVarStringRange()
                }
            }
            try readContent()
        }
        guard cur.length > 0 else { throw YjsDecodingError.malformed("zero-length struct", offset: start) }
        guard cur.length <= lib0MaxSafeInteger - clock else { throw YjsDecodingError.integerOutOfRange(offset: start) }
        if !(info & 0x20 != 0 && info & 0xC0 != 0) { cur.raw = start..<d.position }
    }

    private mutating func readContent() throws {
        switch cur.ref {
        case 1:
            cur.length = try d.readVarUInt()
        case 2:
            let n = try d.readCount(minBytesPerElement: 1)
            let p = d.position
            for _ in 0..<n { _ = try d.readVarStringRange() }
            cur.a = p..<d.position
            cur.length = UInt64(n)
        case 3:
            cur.a = try d.readVarBytesRange()
            cur.length = 1
        case 4:
            (cur.a, cur.length) = try d.readVarStringRangeCountingUTF16()
        case 5:
            cur.a = try d.readVarStringRange()
            cur.length = 1
        case 6:
            cur.a = try d.readVarStringRange()
            cur.b = try d.readVarStringRange()
            cur.length = 1
        case 7:
            let p = d.position
            let t = try d.readVarUInt()
            guard t <= 6 else { throw YjsDecodingError.malformed("unknown type ref \(t)", offset: p) }
            cur.typeRef = UInt8(t)
            if t == 3 || t == 5 { cur.a = try d.readVarStringRange() }
            cur.length = 1
        case 8:
            let n = try d.readCount(minBytesPerElement: 1)
            let p = d.position
            for _ in 0..<n { try d.skipAny() }
            cur.a = p..<d.position
            cur.length = UInt64(n)
        case 9:
            cur.a = try d.readVarStringRange()
            let p = d.position
            try d.skipAny()
            cur.b = p..<d.position
            cur.length = 1
        default:
            throw YjsDecodingError.malformed("unknown content ref", offset: d.position)
        }
    }

    /// Reads the delete set that follows the structs. Call only when `curr == nil`.
    mutating func readDeleteSet() throws -> DeleteSet {
        precondition(!hasCur)
        return try DeleteSet(from: &d)
    }
}

/// Writes structs grouped into client blocks (Yjs's LazyStructWriter), then a delete set.
struct StructWriter {
    private var body = Lib0Encoder(capacity: 256)
    private var blocks: [(written: Int, client: UInt64, clock: UInt64, range: Range<Int>)] = []
    private var written = 0
    private var currClient: UInt64 = 0
    private var startClock: UInt64 = 0
    private var blockStart = 0

    init(capacity: Int = 256) { body = Lib0Encoder(capacity: capacity) }

    private mutating func flush() {
        if written > 0 {
            blocks.append((written, currClient, startClock, blockStart..<body.bytes.count))
            written = 0
        }
    }

    /// Writes `s` (from `src`) starting `offset` units into it.
    mutating func write(_ s: RawStruct, src: [UInt8], offset: UInt64) {
        if written > 0 && currClient != s.client { flush() }
        if written == 0 {
            currClient = s.client
            startClock = s.clock + offset
            blockStart = body.bytes.count
        }
        StructWriter.encode(s, src: src, offset: offset, into: &body)
        written += 1
    }

    /// Encodes one struct body (info byte onwards) exactly as Yjs's `write(encoder, offset)`.
    static func encode(_ s: RawStruct, src: [UInt8], offset o: UInt64, into e: inout Lib0Encoder) {
        if o == 0 && !s.raw.isEmpty {
            e.writeRaw(src[s.raw])
            return
        }
        switch s.kind {
        case .gc:
            e.writeUInt8(0); e.writeVarUInt(s.length - o)
        case .skip:
            e.writeUInt8(10); e.writeVarUInt(s.length - o)
        case .item:
            let hasOrigin = o > 0 || s.hasOrigin
            let origin = o > 0 ? YID(client: s.client, clock: s.clock + o - 1) : s.origin
            var info = s.ref
            if hasOrigin { info |= 0x80 }
            if s.hasRightOrigin { info |= 0x40 }
            if s.hasParentSub { info |= 0x20 }
            e.writeUInt8(info)
            if hasOrigin { e.writeVarUInt(origin.client); e.writeVarUInt(origin.clock) }
            if s.hasRightOrigin { e.writeVarUInt(s.rightOrigin.client); e.writeVarUInt(s.rightOrigin.clock) }
            if !hasOrigin && !s.hasRightOrigin {
                if s.parentKind == 1 {
                    e.writeVarUInt(1); e.writeVarBytes(src[s.parentKey])
                } else {
                    e.writeVarUInt(0); e.writeVarUInt(s.parentID.client); e.writeVarUInt(s.parentID.clock)
                }
                if s.hasParentSub { e.writeVarBytes(src[s.parentSub]) }
            }
            encodeContent(s, src: src, offset: o, into: &e)
        }
    }

    static func encodeContent(_ s: RawStruct, src: [UInt8], offset o: UInt64, into e: inout Lib0Encoder) {
        switch s.ref {
        case 1:
            e.writeVarUInt(s.length - o)
        case 2:
            e.writeVarUInt(s.length - o)
            var d = Lib0Decoder(src, range: s.a)
            for _ in 0..<o { _ = try! d.readVarBytesRange() }  // validated when read
            e.writeRaw(src[d.position..<s.a.upperBound])
        case 3, 5:
            e.writeVarBytes(src[s.a])
        case 4:
            if o == 0 {
                e.writeVarBytes(src[s.a])
            } else {
                writeStringSlice(src, s.a, from: o, into: &e)
            }
        case 6:
            e.writeVarBytes(src[s.a]); e.writeVarBytes(src[s.b])
        case 7:
            e.writeVarUInt(UInt64(s.typeRef))
            if s.typeRef == 3 || s.typeRef == 5 { e.writeVarBytes(src[s.a]) }
        case 8:
            e.writeVarUInt(s.length - o)
            var d = Lib0Decoder(src, range: s.a)
            for _ in 0..<o { try! d.skipAny() }  // validated when read
            e.writeRaw(src[d.position..<s.a.upperBound])
        case 9:
            e.writeVarBytes(src[s.a]); e.writeRaw(src[s.b])
        default:
            preconditionFailure("unreachable content ref")
        }
    }

    /// Writes the UTF-8 string `src[r]` from UTF-16 unit `from` on, as a varString. When the cut
    /// falls inside a surrogate pair the remaining low half becomes U+FFFD (Yjs behaviour).
    static func writeStringSlice(_ src: [UInt8], _ r: Range<Int>, from units: UInt64, into e: inout Lib0Encoder) {
        var i = r.lowerBound
        var u: UInt64 = 0
        var splitPair = false
        while i < r.upperBound && u < units {
            let c = src[i]
            if c < 0x80 { i += 1; u += 1 }
            else if c < 0xE0 { i += 2; u += 1 }
            else if c < 0xF0 { i += 3; u += 1 }
            else {
                i += 4; u += 2
                if u > units { splitPair = true }
            }
        }
        if splitPair {
            e.writeVarUInt(UInt64(r.upperBound - i + 3))
            e.writeRaw([0xEF, 0xBF, 0xBD] as [UInt8])
        } else {
            e.writeVarUInt(UInt64(r.upperBound - i))
        }
        e.writeRaw(src[i..<r.upperBound])
    }

    /// Returns the struct section (block count, blocks) followed by `deleteSet`.
    mutating func finish(deleteSet: DeleteSet) -> [UInt8] {
        flush()
        var out = Lib0Encoder(capacity: body.bytes.count + blocks.count * 12 + 16)
        out.writeVarUInt(UInt64(blocks.count))
        for b in blocks {
            out.writeVarUInt(UInt64(b.written))
            out.writeVarUInt(b.client)
            out.writeVarUInt(b.clock)
            out.writeRaw(body.bytes[b.range])
        }
        deleteSet.write(to: &out)
        return out.bytes
    }
}
