// Yjs update format v2: the encoder (v1 → v2), column for column as Yjs's UpdateEncoderV2.

extension UpdateV2 {
    /// Converts a v1 update to v2, writing what Yjs's `UpdateEncoderV2` writes for the same
    /// structs: a v1 `encodeStateAsUpdate` of a document becomes byte for byte that document's
    /// `encodeStateAsUpdateV2` (delete-set clients in descending order, as Yjs ≥ 13.5.47).
    ///
    /// As Yjs, it re-encodes values on the way: JSON content (`ContentJSON`) is re-stringified,
    /// embeds and format values become lib0 `any` (JSON.parse semantics: doubles, JavaScript key
    /// order), and `any` values are written as JavaScript would write them back. An item's
    /// parentSub flag is kept as the v1 input has it (a document's state writes it for map
    /// entries with an origin; Yjs's `convertUpdateFormatV1ToV2` drops it). Throws
    /// `YjsDecodingError` for an invalid update or JSON content that is not JSON.
    public static func fromV1(_ v1: [UInt8]) throws -> [UInt8] {
        try encodeV2(v1).bytes
    }

    /// `fromV1`, and where the delete set starts in the output (tests compare it apart, because
    /// Yjs before 13.5.47 writes its clients in insertion order).
    static func encodeV2(_ v1: [UInt8]) throws -> (bytes: [UInt8], deleteSetStart: Int) {
        var r = try StructReader(v1, filterSkips: false)
        let src = r.bytes
        var e = V2Writer()
        // blocks: runs of one client, as in the v1 input
        var blocks: [(client: UInt64, clock: UInt64, structs: [RawStruct])] = []
        while r.hasCur {
            let s = r.cur
            if let last = blocks.last, last.client == s.client, let prev = last.structs.last, prev.end == s.clock {
                blocks[blocks.count - 1].structs.append(s)
            } else {
                blocks.append((s.client, s.clock, [s]))
            }
            try r.next()
        }
        var deleteSet = try r.readDeleteSet()
        deleteSet.sortAndMerge()
        for (c, rs) in deleteSet.clients { let kept = rs.filter { $0.length > 0 }; deleteSet.clients[c] = kept.isEmpty ? nil : kept }
        e.rest.writeVarUInt(UInt64(blocks.count))
        for b in blocks {
            e.rest.writeVarUInt(UInt64(b.structs.count))
            e.clients.write(b.client)
            e.rest.writeVarUInt(b.clock)
            for s in b.structs { try e.write(s, src) }
        }
        let restDeleteSetStart = e.rest.bytes.count
        e.rest.writeVarUInt(UInt64(deleteSet.clients.count))
        for client in deleteSet.clients.keys.sorted(by: >) {
            let ranges = deleteSet.clients[client]!
            var current: UInt64 = 0
            e.rest.writeVarUInt(client)
            e.rest.writeVarUInt(UInt64(ranges.count))
            for range in ranges {
                e.rest.writeVarUInt(range.clock - current)  // sorted: never negative
                e.rest.writeVarUInt(range.length - 1)
                current = range.clock + range.length
            }
        }
        let restBytes = e.rest.bytes.count
        let out = e.finish()
        return (out, out.count - restBytes + restDeleteSetStart)
    }
}

/// lib0's `RleEncoder` over bytes: a value, then (from the second run on) the previous run's
/// count − 1; the last run's count is not written.
struct RleUInt8Encoder {
    var e = Lib0Encoder()
    private var s: UInt8? = nil
    private var count = 0
    mutating func write(_ v: UInt8) {
        if s == v { count += 1; return }
        if count > 0 { e.writeVarUInt(UInt64(count - 1)) }
        count = 1
        e.writeUInt8(v)
        s = v
    }
}

/// lib0's `UintOptRleEncoder`: a value alone as a positive varInt, a run as the negated value
/// (−0 for 0) and count − 2.
struct UintOptRleEncoder {
    private var e = Lib0Encoder()
    private var s: UInt64 = 0
    private var count = 0
    mutating func write(_ v: UInt64) {
        if s == v { count += 1; return }
        flush()
        count = 1
        s = v
    }
    private mutating func flush() {
        guard count > 0 else { return }
        e.writeVarInt(magnitude: s, negative: count > 1)
        if count > 1 { e.writeVarUInt(UInt64(count - 2)) }
    }
    mutating func finish() -> [UInt8] { flush(); count = 0; return e.bytes }
}

/// lib0's `IntDiffOptRleEncoder`: runs of equal differences, as diff·2 + (run ? 1 : 0) and
/// count − 2.
struct IntDiffOptRleEncoder {
    private var e = Lib0Encoder()
    private var s: Int64 = 0
    private var count = 0
    private var diff: Int64 = 0
    mutating func write(_ v: UInt64) {
        let v = Int64(bitPattern: v)
        if diff == v &- s { s = v; count += 1; return }
        flush()
        count = 1
        diff = v &- s
        s = v
    }
    private mutating func flush() {
        guard count > 0 else { return }
        e.writeVarInt(diff &* 2 &+ (count == 1 ? 0 : 1))
        if count > 1 { e.writeVarUInt(UInt64(count - 2)) }
    }
    mutating func finish() -> [UInt8] { flush(); count = 0; return e.bytes }
}

/// lib0's `StringEncoder`: all strings concatenated (one varString), then their UTF-16 lengths.
struct V2StringEncoder {
    private var text: [UInt8] = []
    private var lengths = UintOptRleEncoder()
    mutating func write<C: Collection>(utf8 s: C) where C.Element == UInt8 {
        text.append(contentsOf: s)
        let a = Array(s)
        lengths.write(UTF8Validation.utf16Count(a, 0..<a.count))
    }
    mutating func finish() -> [UInt8] {
        var e = Lib0Encoder(capacity: text.count + 16)
        e.writeVarBytes(text)
        e.writeRaw(lengths.finish())
        return e.bytes
    }
}

/// The columns of Yjs's `UpdateEncoderV2`.
struct V2Writer {
    var keyClocks = IntDiffOptRleEncoder()
    var clients = UintOptRleEncoder()
    var leftClocks = IntDiffOptRleEncoder()
    var rightClocks = IntDiffOptRleEncoder()
    var info = RleUInt8Encoder()
    var strings = V2StringEncoder()
    var parentInfo = RleUInt8Encoder()
    var typeRefs = UintOptRleEncoder()
    var lengths = UintOptRleEncoder()
    var rest = Lib0Encoder(capacity: 256)
    /// Yjs's `writeKey` never remembers a key (its `keyMap.set` is commented out), so every key
    /// takes the next clock and is written again.
    var keyClock: UInt64 = 0

    mutating func writeKey<C: Collection>(utf8 key: C) where C.Element == UInt8 {
        keyClocks.write(keyClock)
        keyClock += 1
        strings.write(utf8: key)
    }

    mutating func write(_ s: RawStruct, _ src: [UInt8]) throws {
        switch s.kind {
        case .gc:
            info.write(0)
            lengths.write(s.length)
        case .skip:
            info.write(10)
            rest.writeVarUInt(s.length)
        case .item:
            let sourceInfo = s.raw.isEmpty ? s.sourceInfo : src[s.raw.lowerBound]
            var i = s.ref
            if s.hasOrigin { i |= 0x80 }
            if s.hasRightOrigin { i |= 0x40 }
            if s.hasParentSub || sourceInfo & 0x20 != 0 { i |= 0x20 }
            info.write(i)
            if s.hasOrigin { clients.write(s.origin.client); leftClocks.write(s.origin.clock) }
            if s.hasRightOrigin { clients.write(s.rightOrigin.client); rightClocks.write(s.rightOrigin.clock) }
            if !s.hasOrigin && !s.hasRightOrigin {
                if s.parentKind == 1 {
                    parentInfo.write(1)
                    strings.write(utf8: src[s.parentKey])
                } else {
                    parentInfo.write(0)
                    clients.write(s.parentID.client); leftClocks.write(s.parentID.clock)
                }
                if s.hasParentSub { strings.write(utf8: src[s.parentSub]) }
            }
            try writeContent(s, src)
        }
    }

    private mutating func writeContent(_ s: RawStruct, _ src: [UInt8]) throws {
        switch s.ref {
        case 1:
            lengths.write(s.length)
        case 2:
            lengths.write(s.length)
            var d = Lib0Decoder(src, range: s.a)
            for _ in 0..<s.length {
                let r = try d.readVarStringRange()
                let text = src[r]
                if text.elementsEqual("undefined".utf8) {
                    strings.write(utf8: text)
                } else {
                    guard let v = JSJSON.parse(text), let json = v.lib0Value.jsonText() else {
                        throw YjsDecodingError.malformed("JSON content is not JSON", offset: r.lowerBound)
                    }
                    strings.write(utf8: json.utf8)
                }
            }
        case 3:
            rest.writeVarBytes(src[s.a])
        case 4:
            strings.write(utf8: src[s.a])
        case 5:
            guard let v = JSJSON.parse(src[s.a]) else { throw YjsDecodingError.malformed("embed is not JSON", offset: s.a.lowerBound) }
            v.write(to: &rest)
        case 6:
            writeKey(utf8: src[s.a])
            guard let v = JSJSON.parse(src[s.b]) else { throw YjsDecodingError.malformed("format value is not JSON", offset: s.b.lowerBound) }
            v.write(to: &rest)
        case 7:
            typeRefs.write(UInt64(s.typeRef))
            if s.typeRef == 3 || s.typeRef == 5 { writeKey(utf8: src[s.a]) }
        case 8:
            lengths.write(s.length)
            var d = Lib0Decoder(src, range: s.a)
            for _ in 0..<s.length { rest.writeAny(try d.readAny().asJavaScriptWritesIt) }
        case 9:
            strings.write(utf8: src[s.a])
            var d = Lib0Decoder(src, range: s.b)
            rest.writeAny(try d.readAny().asJavaScriptWritesIt)
        default:
            throw YjsDecodingError.malformed("unknown content ref", offset: 0)
        }
    }

    mutating func finish() -> [UInt8] {
        var out = Lib0Encoder(capacity: rest.bytes.count + 256)
        out.writeVarUInt(0)  // feature flag
        out.writeVarBytes(keyClocks.finish())
        out.writeVarBytes(clients.finish())
        out.writeVarBytes(leftClocks.finish())
        out.writeVarBytes(rightClocks.finish())
        out.writeVarBytes(info.e.bytes)
        out.writeVarBytes(strings.finish())
        out.writeVarBytes(parentInfo.e.bytes)
        out.writeVarBytes(typeRefs.finish())
        out.writeVarBytes(lengths.finish())
        out.writeRaw(rest.bytes)
        return out.bytes
    }
}

extension Lib0Any {
    /// The value after a JavaScript round trip (`readAny` then `writeAny`): numbers take lib0's
    /// tag for their value, object keys JavaScript's order (integer-like keys first, ascending;
    /// a repeated key keeps its first place and its last value).
    var asJavaScriptWritesIt: Lib0Any {
        switch self {
        case .integer(let i): return Lib0Any.jsNumber(Double(i))
        case .float32(let f): return Lib0Any.jsNumber(Double(f))
        case .float64(let d): return Lib0Any.jsNumber(d)
        case .array(let items): return .array(items.map(\.asJavaScriptWritesIt))
        case .object(let entries): return .object(Lib0Any.jsOrdered(entries.map { ($0.key, $0.value.asJavaScriptWritesIt) }))
        default: return self
        }
    }

    static func jsOrdered(_ entries: [(String, Lib0Any)]) -> [Entry] {
        var order: [String] = []
        var values: [String: Lib0Any] = [:]
        for (k, v) in entries {
            if values[k] == nil { order.append(k) }
            values[k] = v
        }
        let ints = order.filter(isArrayIndex).sorted { UInt64($0)! < UInt64($1)! }
        return (ints + order.filter { !isArrayIndex($0) }).map { Entry(key: $0, value: values[$0]!) }
    }
}

/// `JSON.parse` as JavaScript does it, for the JSON texts v1 stores (embeds, format values, JSON
/// content): numbers are doubles, objects take JavaScript's key order, a lone surrogate from a
/// `\u` escape becomes U+FFFD (as when JavaScript encodes it to UTF-8).
enum JSJSON {
    indirect enum Value {
        case null, bool(Bool), number(Double), string(String), array([Value]), object([(String, Value)])

        /// As lib0's `writeAny` writes it (−0 keeps its sign, like JavaScript's integer path).
        func write(to e: inout Lib0Encoder) {
            switch self {
            case .number(let d) where d == 0 && d.sign == .minus:
                e.writeUInt8(125); e.writeVarInt(magnitude: 0, negative: true)
            case .array(let items):
                e.writeUInt8(117); e.writeVarUInt(UInt64(items.count))
                for i in items { i.write(to: &e) }
            case .object(let entries):
                var last: [String: Value] = [:]
                for (k, v) in entries { last[k] = v }
                let keys = Lib0Any.jsOrdered(entries.map { ($0.0, Lib0Any.null) }).map(\.key)
                e.writeUInt8(118); e.writeVarUInt(UInt64(keys.count))
                for k in keys { e.writeVarString(k); last[k]!.write(to: &e) }
            default:
                e.writeAny(lib0Value)
            }
        }

        var lib0Value: Lib0Any {
            switch self {
            case .null: return .null
            case .bool(let b): return .bool(b)
            case .number(let d): return Lib0Any.jsNumber(d)
            case .string(let s): return .string(s)
            case .array(let items): return .array(items.map(\.lib0Value))
            case .object(let entries): return .object(Lib0Any.jsOrdered(entries.map { ($0.0, $0.1.lib0Value) }))
            }
        }
    }

    static func parse<C: Collection>(_ text: C) -> Value? where C.Element == UInt8 {
        var p = Parser(bytes: Array(text))
        guard let v = p.value(depth: 0) else { return nil }
        p.whitespace()
        return p.i == p.bytes.count ? v : nil
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func whitespace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func literal(_ s: String) -> Bool {
            let u = Array(s.utf8)
            guard bytes.count - i >= u.count, Array(bytes[i..<(i + u.count)]) == u else { return false }
            i += u.count
            return true
        }

        mutating func value(depth: Int) -> Value? {
            guard depth <= lib0MaxAnyDepth else { return nil }
            whitespace()
            guard i < bytes.count else { return nil }
            switch bytes[i] {
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "["):
                i += 1
                var items: [Value] = []
                whitespace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    guard let v = value(depth: depth + 1) else { return nil }
                    items.append(v)
                    whitespace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "]") else { return nil }
                    i += 1
                    return .array(items)
                }
            case UInt8(ascii: "{"):
                i += 1
                var entries: [(String, Value)] = []
                whitespace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(entries) }
                while true {
                    whitespace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let k = string() else { return nil }
                    whitespace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
                    i += 1
                    guard let v = value(depth: depth + 1) else { return nil }
                    entries.append((k, v))
                    whitespace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "}") else { return nil }
                    i += 1
                    return .object(entries)
                }
            default:
                return number()
            }
        }

        mutating func number() -> Value? {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            func digits() -> Int {
                let s = i
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
                return i - s
            }
            let intStart = i
            let n = digits()
            guard n > 0, n == 1 || bytes[intStart] != 0x30 else { return nil }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { return nil }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { return nil }
            }
            guard let d = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else { return nil }
            return .number(d)
        }

        /// A string (at `"`), with escapes; invalid UTF-8 or control characters fail.
        mutating func string() -> String? {
            i += 1
            var units: [UInt16] = []
            var plain = i
            func flushPlain(_ end: Int) -> Bool {
                guard plain < end else { return true }
                guard UTF8Validation.isValid(bytes, plain..<end) else { return false }
                units.append(contentsOf: String(decoding: bytes[plain..<end], as: UTF8.self).utf16)
                return true
            }
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    guard flushPlain(i) else { return nil }
                    i += 1
                    return String(decoding: units, as: UTF16.self)  // lone surrogates → U+FFFD
                }
                guard c >= 0x20 else { return nil }
                if c != UInt8(ascii: "\\") { i += 1; continue }
                guard flushPlain(i), i + 1 < bytes.count else { return nil }
                let esc = bytes[i + 1]
                i += 2
                switch esc {
                case UInt8(ascii: "\""): units.append(0x22)
                case UInt8(ascii: "\\"): units.append(0x5C)
                case UInt8(ascii: "/"): units.append(0x2F)
                case UInt8(ascii: "b"): units.append(0x08)
                case UInt8(ascii: "f"): units.append(0x0C)
                case UInt8(ascii: "n"): units.append(0x0A)
                case UInt8(ascii: "r"): units.append(0x0D)
                case UInt8(ascii: "t"): units.append(0x09)
                case UInt8(ascii: "u"):
                    guard i + 4 <= bytes.count else { return nil }
                    var u: UInt16 = 0
                    for h in bytes[i..<(i + 4)] {
                        switch h {
                        case 0x30...0x39: u = u << 4 | UInt16(h - 0x30)
                        case 0x41...0x46: u = u << 4 | UInt16(h - 0x41 + 10)
                        case 0x61...0x66: u = u << 4 | UInt16(h - 0x61 + 10)
                        default: return nil
                        }
                    }
                    units.append(u)
                    i += 4
                default: return nil
                }
                plain = i
            }
            return nil
        }
    }
}
