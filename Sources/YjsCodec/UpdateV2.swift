// Yjs update format v2: decoding and conversion to v1 (Yjs `convertUpdateFormatV2ToV1`).

/// Update format v2 support. Gutenberg persists `_crdt_document` snapshots as v2.
public enum UpdateV2 {
    /// Converts a v2 update into the equivalent v1 update, as Yjs's `convertUpdateFormatV2ToV1`
    /// does (including its normalisation of the parentSub flag and of delete-set client order).
    public static func toV1(_ v2: [UInt8]) throws -> [UInt8] {
        var r = try V2Reader(v2)
        var w = StructWriter(capacity: v2.count * 2)
        let blocks = try r.rest.readCount(minBytesPerElement: 2)
        // v2 columns are run-length encoded, so a struct may take no input bytes at all; cap the
        // number of structs by the input size to bound work and output (≈ 64 structs per byte).
        var budget = v2.count * 64 + 4096
        for _ in 0..<blocks {
            let n = try r.rest.readCount(minBytesPerElement: 0)
            budget -= n
            if budget < 0 { throw YjsDecodingError.lengthExceedsInput(offset: r.rest.position) }
            let client = try r.client.read()
            var clock = try r.rest.readVarUInt()
            for _ in 0..<n {
                let s = try r.readStruct(client: client, clock: clock)
                w.write(s, src: r.side.bytes, offset: 0)
                clock = s.end
            }
        }
        // delete set (v2: clock and length deltas)
        var ds = DeleteSet()
        let clients = try r.rest.readCount(minBytesPerElement: 2)
        for _ in 0..<clients {
            var cur: UInt64 = 0
            let client = try r.rest.readVarUInt()
            let m = try r.rest.readCount(minBytesPerElement: 2)
            if m == 0 { continue }
            var ranges: [DeleteRange] = []
            ranges.reserveCapacity(m)
            for _ in 0..<m {
                let clock = cur + (try r.rest.readVarUInt())
                let len = (try r.rest.readVarUInt()) + 1
                guard clock <= lib0MaxSafeInteger, len <= lib0MaxSafeInteger - clock else {
                    throw YjsDecodingError.integerOutOfRange(offset: r.rest.position)
                }
                ranges.append(DeleteRange(clock: clock, length: len))
                cur = clock + len
            }
            ds.clients[client, default: []].append(contentsOf: ranges)
        }
        return w.finish(deleteSet: ds)
    }
}

/// lib0 `RleDecoder` over uint8 values; repeats the last value forever once its buffer ends.
struct RleUInt8Decoder {
    var d: Lib0Decoder
    var s: UInt8 = 0
    var count: Int64 = 0
    mutating func read() throws -> UInt8 {
        if count == 0 {
            s = try d.readUInt8()
            if !d.isAtEnd {
                let c = try d.readVarUInt()
                count = Int64(c) + 1
            } else {
                count = -1
            }
        }
        count -= 1
        return s
    }
}

/// lib0 `UintOptRleDecoder`.
struct UintOptRleDecoder {
    var d: Lib0Decoder
    var s: UInt64 = 0
    var count: UInt64 = 0
    mutating func read() throws -> UInt64 {
        if count == 0 {
            let (m, neg) = try d.readVarIntSignMagnitude()
            s = m
            count = 1
            if neg { count = try d.readVarUInt() + 2 }
        }
        count -= 1
        return s
    }
}

/// lib0 `IntDiffOptRleDecoder` (non-negative results only; negative values are malformed here).
struct IntDiffOptRleDecoder {
    var d: Lib0Decoder
    var s: Int64 = 0
    var diff: Int64 = 0
    var count: UInt64 = 0
    mutating func read() throws -> UInt64 {
        let start = d.position
        if count == 0 {
            let (m, neg) = try d.readVarIntSignMagnitude()
            let v = neg ? -Int64(m) : Int64(m)
            let hasCount = m & 1 == 1
            diff = v >= 0 ? v / 2 : -((-v + 1) / 2)  // floor(v / 2)
            count = 1
            if hasCount { count = try d.readVarUInt() + 2 }
        }
        let (next, overflow) = s.addingReportingOverflow(diff)
        guard !overflow, next >= 0, UInt64(next) <= lib0MaxSafeInteger else {
            throw YjsDecodingError.integerOutOfRange(offset: start)
        }
        s = next
        count -= 1
        return UInt64(s)
    }
}

/// lib0 `StringDecoder`: one concatenated string sliced by UTF-16 lengths.
struct V2StringDecoder {
    var lengths: UintOptRleDecoder
    var units: [UInt16]
    var pos = 0
    init(_ bytes: [UInt8], range: Range<Int>) throws {
        var d = Lib0Decoder(bytes, range: range)
        let sr = try d.readVarStringRange()
        units = Array(String(decoding: bytes[sr], as: UTF8.self).utf16)
        lengths = UintOptRleDecoder(d: d)
    }

    /// Appends the next string as a varString (UTF-8; a lone surrogate half becomes U+FFFD, as
    /// TextEncoder does) and returns the range of its UTF-8 bytes in `out`.
    mutating func read(into out: inout Lib0Encoder) throws -> Range<Int> {
        let p = lengths.d.position
        let n = try lengths.read()
        guard n <= UInt64(units.count - pos) else { throw YjsDecodingError.lengthExceedsInput(offset: p) }
        let slice = units[pos..<(pos + Int(n))]
        pos += Int(n)
        var utf8: [UInt8] = []
        utf8.reserveCapacity(slice.count * 3)
        for scalar in Unicode.UTF16.decode(slice) { utf8.append(contentsOf: scalar.utf8) }
        out.writeVarUInt(UInt64(utf8.count))
        let start = out.bytes.count
        out.writeRaw(utf8)
        return start..<out.bytes.count
    }
}

extension Unicode.UTF16 {
    /// Decodes UTF-16 units, replacing unpaired surrogates with U+FFFD.
    static func decode<C: Collection>(_ units: C) -> [Unicode.Scalar] where C.Element == UInt16 {
        var out: [Unicode.Scalar] = []
        var it = units.makeIterator()
        var parser = Unicode.UTF16.ForwardParser()
        while true {
            switch parser.parseScalar(from: &it) {
            case .valid(let enc): out.append(Unicode.UTF16.decode(enc))
            case .error: out.append("\u{FFFD}")
            case .emptyInput: return out
            }
        }
    }
}

/// Reads the column streams of a v2 update; materialises each struct's payload as v1 bytes in
/// `side` so `StructWriter` can emit it.
struct V2Reader {
    var rest: Lib0Decoder
    var keyClock: IntDiffOptRleDecoder
    var client: UintOptRleDecoder
    var leftClock: IntDiffOptRleDecoder
    var rightClock: IntDiffOptRleDecoder
    var info: RleUInt8Decoder
    var strings: V2StringDecoder
    var parentInfo: RleUInt8Decoder
    var typeRef: UintOptRleDecoder
    var len: UintOptRleDecoder
    var keys: [Range<Int>] = []
    var side = Lib0Encoder(capacity: 1024)

    init(_ bytes: [UInt8]) throws {
        var d = Lib0Decoder(bytes)
        _ = try d.readVarUInt()  // feature flag
        func sub() throws -> Lib0Decoder { Lib0Decoder(bytes, range: try d.readVarBytesRange()) }
        keyClock = IntDiffOptRleDecoder(d: try sub())
        client = UintOptRleDecoder(d: try sub())
        leftClock = IntDiffOptRleDecoder(d: try sub())
        rightClock = IntDiffOptRleDecoder(d: try sub())
        info = RleUInt8Decoder(d: try sub())
        strings = try V2StringDecoder(bytes, range: try d.readVarBytesRange())
        parentInfo = RleUInt8Decoder(d: try sub())
        typeRef = UintOptRleDecoder(d: try sub())
        len = UintOptRleDecoder(d: try sub())
        rest = d
    }

    mutating func readString() throws -> Range<Int> { try strings.read(into: &side) }

    mutating func readKey() throws -> Range<Int> {
        // as Yjs: an index below the table size reuses a key, anything else reads a new one
        let k = try keyClock.read()
        if k < UInt64(keys.count) { return keys[Int(k)] }
        let r = try readString()
        keys.append(r)
        return r
    }

    /// Copies one `any` from `rest` into `side`, returning its range there.
    mutating func copyAny() throws -> Range<Int> {
        let p = rest.position
        try rest.skipAny()
        let start = side.bytes.count
        side.writeRaw(rest.bytes[p..<rest.position])
        return start..<side.bytes.count
    }

    /// Reads one `any` from `rest` and writes its JSON text (JSON.stringify) into `side` as a
    /// varString; returns the range of the text.
    mutating func anyAsJSON() throws -> Range<Int> {
        let p = rest.position
        let v = try rest.readAny()
        guard let text = v.jsonText() else { throw YjsDecodingError.malformed("value has no JSON form", offset: p) }
        side.writeVarString(text)
        let n = text.utf8.count
        return (side.bytes.count - n)..<side.bytes.count
    }

    mutating func readStruct(client c: UInt64, clock: UInt64) throws -> RawStruct {
        let start = rest.position
        let infoByte = try info.read()
        var s: RawStruct
        if infoByte == 10 {
            s = .skip(client: c, clock: clock, length: try rest.readVarUInt())
        } else if infoByte == 0 {
            s = RawStruct(kind: .gc, client: c, clock: clock, length: try len.read())
        } else {
            let ref = infoByte & 0x1F
            guard ref >= 1 && ref <= 9 else { throw YjsDecodingError.malformed("unknown struct info byte \(infoByte)", offset: start) }
            s = RawStruct(kind: .item, client: c, clock: clock, length: 0)
            s.ref = ref
            if infoByte & 0x80 != 0 {
                s.hasOrigin = true
                s.origin = YID(client: try client.read(), clock: try leftClock.read())
            }
            if infoByte & 0x40 != 0 {
                s.hasRightOrigin = true
                s.rightOrigin = YID(client: try client.read(), clock: try rightClock.read())
            }
            if infoByte & 0xC0 == 0 {
                if try parentInfo.read() == 1 {
                    s.parentKind = 1
                    s.parentKey = try readString()
                } else {
                    s.parentKind = 2
                    s.parentID = YID(client: try client.read(), clock: try leftClock.read())
                }
                if infoByte & 0x20 != 0 {
                    s.hasParentSub = true
                    s.parentSub = try readString()
                }
            }
            switch ref {
            case 1:
                s.length = try len.read()
            case 2:
                let n = try len.read()
                guard n <= UInt64(strings.units.count - strings.pos) else { throw YjsDecodingError.lengthExceedsInput(offset: start) }
                let a = side.bytes.count
                for _ in 0..<n {
                    // each element is JSON text, never empty (also bounds the loop by the input)
                    guard !(try readString()).isEmpty else { throw YjsDecodingError.malformed("empty JSON element", offset: start) }
                }
                s.a = a..<side.bytes.count
                s.length = n
            case 3:
                let r = try rest.readVarBytesRange()
                let a = side.bytes.count
                side.writeRaw(rest.bytes[r])
                s.a = a..<side.bytes.count
                s.length = 1
            case 4:
                s.a = try readString()
                s.length = UTF8Validation.utf16Count(side.bytes, s.a)
            case 5:
                s.a = try anyAsJSON()
                s.length = 1
            case 6:
                s.a = try readKey()
                s.b = try anyAsJSON()
                s.length = 1
            case 7:
                let t = try typeRef.read()
                guard t <= 6 else { throw YjsDecodingError.malformed("unknown type ref \(t)", offset: start) }
                s.typeRef = UInt8(t)
                if t == 3 || t == 5 { s.a = try readKey() }
                s.length = 1
            case 8:
                let n = try len.read()
                guard n <= UInt64(rest.remaining) else { throw YjsDecodingError.lengthExceedsInput(offset: start) }
                let a = side.bytes.count
                for _ in 0..<n { _ = try copyAny() }
                s.a = a..<side.bytes.count
                s.length = n
            default:  // 9
                s.a = try readString()
                s.b = try copyAny()
                s.length = 1
            }
        }
        guard s.length > 0 else { throw YjsDecodingError.malformed("zero-length struct", offset: start) }
        guard s.length <= lib0MaxSafeInteger - clock else { throw YjsDecodingError.integerOutOfRange(offset: start) }
        return s
    }
}

extension Lib0Any {
    /// `JSON.stringify` of this value as JavaScript would produce it after lib0's `readAny`,
    /// or nil where JavaScript yields no JSON (top-level undefined, bigint).
    public func jsonText() -> String? {
        var out = ""
        return appendJSON(&out, topLevel: true) ? out : nil
    }

    private func appendJSON(_ out: inout String, topLevel: Bool = false) -> Bool {
        switch self {
        case .undefined: if topLevel { return false }; out += "null"
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .integer(let i): out += String(i == 0 ? 0 : i)
        case .float32(let f): out += Lib0Any.jsNumberText(Double(f))
        case .float64(let d): out += Lib0Any.jsNumberText(d)
        case .bigint: return false
        case .string(let s): Lib0Any.appendJSONString(s, &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                if case .undefined = v { out += "null" } else if !v.appendJSON(&out) { return false }
            }
            out += "]"
        case .object(let entries):
            // JS objects list integer-like keys first (ascending), then others in insertion order;
            // a repeated key keeps its first position and its last value.
            var order: [String] = []
            var values: [String: Lib0Any] = [:]
            for e in entries {
                if values[e.key] == nil { order.append(e.key) }
                values[e.key] = e.value
            }
            let ints = order.filter(Lib0Any.isArrayIndex).sorted { UInt64($0)! < UInt64($1)! }
            let others = order.filter { !Lib0Any.isArrayIndex($0) }
            out += "{"
            var first = true
            for k in ints + others {
                let v = values[k]!
                if case .undefined = v { continue }
                if !first { out += "," }
                first = false
                Lib0Any.appendJSONString(k, &out)
                out += ":"
                if !v.appendJSON(&out) { return false }
            }
            out += "}"
        case .bytes(let b):
            out += "{"
            for (i, x) in b.enumerated() { out += (i > 0 ? "," : "") + "\"\(i)\":\(x)" }
            out += "}"
        }
        return true
    }

    static func isArrayIndex(_ k: String) -> Bool {
        guard let v = UInt64(k), v < 4294967295 else { return false }
        return String(v) == k
    }

    static func appendJSONString(_ s: String, _ out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// ECMAScript Number::toString for finite values; NaN and ±Infinity give "null" (JSON).
    static func jsNumberText(_ d: Double) -> String {
        if !d.isFinite { return "null" }
        if d == 0 { return "0" }
        var text = "\(abs(d))"
        var exp = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exp = Int(text[text.index(after: e)...])!
            text = String(text[..<e])
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let intPart = String(parts[0]), frac = parts.count > 1 ? String(parts[1]) : ""
        var digits = Array(intPart + frac)
        var point = intPart.count + exp
        while digits.first == "0" { digits.removeFirst(); point -= 1 }
        while digits.last == "0" { digits.removeLast() }
        let k = digits.count, n = point
        let ds = String(digits)
        var r: String
        if k <= n && n <= 21 {
            r = ds + String(repeating: "0", count: n - k)
        } else if 0 < n && n <= 21 {
            r = String(digits[0..<n]) + "." + String(digits[n...])
        } else if -6 < n && n <= 0 {
            r = "0." + String(repeating: "0", count: -n) + ds
        } else {
            let e = n - 1
            let es = (e >= 0 ? "+" : "-") + String(abs(e))
            r = k == 1 ? ds + "e" + es : String(digits[0]) + "." + String(digits[1...]) + "e" + es
        }
        return (d < 0 ? "-" : "") + r
    }
}
