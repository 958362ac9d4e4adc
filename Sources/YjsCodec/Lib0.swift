// lib0 binary encoding (the codec under Yjs and y-protocols), strict and bounds-checked.

/// Errors thrown by every decoder in this module. Decoders never trap on hostile input.
public enum YjsDecodingError: Error, Equatable, Sendable {
    /// The input ended before the value at `offset` was complete.
    case unexpectedEnd(offset: Int)
    /// A varUint/varInt exceeded 2^53−1 or used more than 10 bytes.
    case integerOutOfRange(offset: Int)
    /// A length prefix announces more bytes than remain in the input.
    case lengthExceedsInput(offset: Int)
    /// A string was not valid UTF-8.
    case invalidUTF8(offset: Int)
    /// An `any` value used an unknown tag byte, or nested too deeply.
    case invalidAny(offset: Int)
    /// A structural rule of the Yjs/y-protocols format was violated.
    case malformed(String, offset: Int)
    /// Bytes remained after a complete value where none were allowed.
    case trailingBytes(offset: Int)
}

/// Largest integer lib0 (and JavaScript) can represent exactly: 2^53 − 1.
public let lib0MaxSafeInteger: UInt64 = (1 << 53) - 1

/// A cursor over lib0-encoded bytes. All reads are bounds-checked and throw `YjsDecodingError`.
public struct Lib0Decoder: Sendable {
    /// The whole input.
    public let bytes: [UInt8]
    /// Index of the next unread byte.
    public var position: Int
    /// Index one past the last readable byte (allows decoding a sub-range of `bytes`).
    public let end: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.position = 0
        self.end = bytes.count
    }

    /// Decodes only `range` of `bytes`.
    public init(_ bytes: [UInt8], range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count)
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    /// Bytes left to read.
    @inline(__always) public var remaining: Int { end - position }
    public var isAtEnd: Bool { position >= end }

    @inline(__always)
    public mutating func readUInt8() throws -> UInt8 {
        guard position < end else { throw YjsDecodingError.unexpectedEnd(offset: position) }
        let b = bytes[position]
        position += 1
        return b
    }

    /// lib0 varUint: little-endian base-128. Accepts non-minimal encodings, rejects values
    /// above 2^53−1 and encodings longer than 10 bytes.
    @inline(__always)
    public mutating func readVarUInt() throws -> UInt64 {
        guard position < end else { throw YjsDecodingError.unexpectedEnd(offset: position) }
        let first = bytes[position]
        if first < 0x80 {
            position += 1
            return UInt64(first)
        }
        // Up to 8 bytes (56 bits) cannot overflow UInt64; check the 2^53 limit once at the end.
        var value = UInt64(first & 0x7F)
        var shift: UInt64 = 7
        var p = position + 1
        while p < end && shift < 56 {
            let b = bytes[p]
            p += 1
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 {
                if value > lib0MaxSafeInteger { throw YjsDecodingError.integerOutOfRange(offset: position) }
                position = p
                return value
            }
            shift += 7
        }
        return try readVarUIntSlow()
    }

    @inline(never)
    mutating func readVarUIntSlow() throws -> UInt64 {
        let start = position
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        while true {
            guard position < end else { throw YjsDecodingError.unexpectedEnd(offset: position) }
            let b = bytes[position]
            position += 1
            count += 1
            let bits = UInt64(b & 0x7F)
            if bits != 0 {
                if shift >= 53 { throw YjsDecodingError.integerOutOfRange(offset: start) }
                value |= bits << shift
                if value > lib0MaxSafeInteger { throw YjsDecodingError.integerOutOfRange(offset: start) }
            }
            if b < 0x80 { return value }
            if count >= 10 { throw YjsDecodingError.integerOutOfRange(offset: start) }
            shift += 7
        }
    }

    /// lib0 varInt (sign-magnitude). Returns the magnitude and the sign flag separately,
    /// because lib0 distinguishes −0 (used as a run-length flag in update format v2).
    public mutating func readVarIntSignMagnitude() throws -> (magnitude: UInt64, negative: Bool) {
        let start = position
        let first = try readUInt8()
        let negative = first & 0x40 != 0
        var value = UInt64(first & 0x3F)
        if first & 0x80 == 0 { return (value, negative) }
        var shift: UInt64 = 6
        var count = 1
        while true {
            let b = try readUInt8()
            count += 1
            let bits = UInt64(b & 0x7F)
            if bits != 0 {
                if shift >= 53 { throw YjsDecodingError.integerOutOfRange(offset: start) }
                value |= bits << shift
                if value > lib0MaxSafeInteger { throw YjsDecodingError.integerOutOfRange(offset: start) }
            }
            if b < 0x80 { return (value, negative) }
            if count >= 10 { throw YjsDecodingError.integerOutOfRange(offset: start) }
            shift += 7
        }
    }

    /// lib0 varInt as a signed integer (−0 reads as 0).
    public mutating func readVarInt() throws -> Int64 {
        let (m, neg) = try readVarIntSignMagnitude()
        return neg ? -Int64(m) : Int64(m)
    }

    /// Reads a varUint length and checks that at least `length * minBytesPerElement` bytes remain.
    /// Use before allocating anything sized by a count read from the input.
    @inline(__always)
    public mutating func readCount(minBytesPerElement: Int = 1) throws -> Int {
        let start = position
        let n = try readVarUInt()
        if minBytesPerElement > 0 && n > UInt64(remaining) / UInt64(minBytesPerElement) {
            throw YjsDecodingError.lengthExceedsInput(offset: start)
        }
        return Int(n)
    }

    /// Reads `count` raw bytes, returning their range in `bytes`.
    @inline(__always)
    public mutating func readRawRange(count: Int) throws -> Range<Int> {
        guard count >= 0, count <= remaining else { throw YjsDecodingError.lengthExceedsInput(offset: position) }
        let r = position..<(position + count)
        position += count
        return r
    }

    /// varUint8Array: returns the range of the payload in `bytes`.
    public mutating func readVarBytesRange() throws -> Range<Int> {
        let n = try readCount()
        return try readRawRange(count: n)
    }

    /// varUint8Array: returns a copy of the payload.
    public mutating func readVarBytes() throws -> [UInt8] {
        let r = try readVarBytesRange()
        return Array(bytes[r])
    }

    /// varString: returns the range of the (strictly validated) UTF-8 payload in `bytes`.
    public mutating func readVarStringRange() throws -> Range<Int> {
        let r = try readVarBytesRange()
        guard UTF8Validation.isValid(bytes, r) else { throw YjsDecodingError.invalidUTF8(offset: r.lowerBound) }
        return r
    }

    /// varString whose UTF-16 length is also returned (one validation pass).
    public mutating func readVarStringRangeCountingUTF16() throws -> (Range<Int>, UInt64) {
        let r = try readVarBytesRange()
        guard let n = UTF8Validation.validatedUTF16Count(bytes, r) else { throw YjsDecodingError.invalidUTF8(offset: r.lowerBound) }
        return (r, n)
    }

    /// varString decoded as a Swift `String`.
    public mutating func readVarString() throws -> String {
        let r = try readVarStringRange()
        return String(decoding: bytes[r], as: UTF8.self)
    }

    /// Big-endian fixed-width read (float32/float64/bigint64 in `any`).
    public mutating func readBigEndian(byteCount: Int) throws -> UInt64 {
        let r = try readRawRange(count: byteCount)
        var v: UInt64 = 0
        for i in r { v = (v << 8) | UInt64(bytes[i]) }
        return v
    }

    /// Skips one lib0 `any` value (recursively), validating tags, lengths and UTF-8.
    public mutating func skipAny(depth: Int = 0) throws {
        let start = position
        if depth > lib0MaxAnyDepth { throw YjsDecodingError.invalidAny(offset: start) }
        let tag = try readUInt8()
        switch tag {
        case 127, 126, 121, 120: return
        case 125: _ = try readVarIntSignMagnitude()
        case 124: _ = try readRawRange(count: 4)
        case 123, 122: _ = try readRawRange(count: 8)
        case 119: _ = try readVarStringRange()
        case 118:
            let n = try readCount(minBytesPerElement: 2)
            for _ in 0..<n {
                _ = try readVarStringRange()
                try skipAny(depth: depth + 1)
            }
        case 117:
            let n = try readCount(minBytesPerElement: 1)
            for _ in 0..<n { try skipAny(depth: depth + 1) }
        case 116: _ = try readVarBytesRange()
        default: throw YjsDecodingError.invalidAny(offset: start)
        }
    }

    /// Decodes one lib0 `any` value.
    public mutating func readAny(depth: Int = 0) throws -> Lib0Any {
        let start = position
        if depth > lib0MaxAnyDepth { throw YjsDecodingError.invalidAny(offset: start) }
        let tag = try readUInt8()
        switch tag {
        case 127: return .undefined
        case 126: return .null
        case 125:
            let (m, neg) = try readVarIntSignMagnitude()
            return .integer(neg ? -Int64(m) : Int64(m))
        case 124: return .float32(Float(bitPattern: UInt32(try readBigEndian(byteCount: 4))))
        case 123: return .float64(Double(bitPattern: try readBigEndian(byteCount: 8)))
        case 122: return .bigint(Int64(bitPattern: try readBigEndian(byteCount: 8)))
        case 121: return .bool(false)
        case 120: return .bool(true)
        case 119: return .string(try readVarString())
        case 118:
            let n = try readCount(minBytesPerElement: 2)
            var entries: [Lib0Any.Entry] = []
            entries.reserveCapacity(n)
            for _ in 0..<n {
                let k = try readVarString()
                entries.append(Lib0Any.Entry(key: k, value: try readAny(depth: depth + 1)))
            }
            return .object(entries)
        case 117:
            let n = try readCount(minBytesPerElement: 1)
            var items: [Lib0Any] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try readAny(depth: depth + 1)) }
            return .array(items)
        case 116: return .bytes(try readVarBytes())
        default: throw YjsDecodingError.invalidAny(offset: start)
        }
    }
}

/// Maximum nesting accepted for `any` values (arrays/objects); deeper input is rejected.
public let lib0MaxAnyDepth = 128

/// A decoded lib0 `any` value (the JSON-like values Yjs stores in maps and arrays).
public indirect enum Lib0Any: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: Lib0Any
        public init(key: String, value: Lib0Any) { self.key = key; self.value = value }
    }
    case undefined
    case null
    case integer(Int64)
    case float32(Float)
    case float64(Double)
    case bigint(Int64)
    case bool(Bool)
    case string(String)
    case object([Entry])
    case array([Lib0Any])
    case bytes([UInt8])
}

/// Appends lib0-encoded values to a growable byte buffer.
public struct Lib0Encoder: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) public mutating func writeUInt8(_ v: UInt8) { bytes.append(v) }

    @inline(__always)
    public mutating func writeVarUInt(_ value: UInt64) {
        var v = value
        while v > 0x7F {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Writes a sign-magnitude varInt; `negative` with magnitude 0 writes lib0's −0.
    public mutating func writeVarInt(magnitude: UInt64, negative: Bool) {
        var v = magnitude
        var first = UInt8(v & 0x3F) | (negative ? 0x40 : 0)
        v >>= 6
        if v > 0 { first |= 0x80 }
        bytes.append(first)
        while v > 0 {
            var b = UInt8(v & 0x7F)
            v >>= 7
            if v > 0 { b |= 0x80 }
            bytes.append(b)
        }
    }

    public mutating func writeVarInt(_ value: Int64) {
        writeVarInt(magnitude: value.magnitude, negative: value < 0)
    }

    @inline(__always)
    public mutating func writeRaw<C: Collection>(_ raw: C) where C.Element == UInt8 {
        bytes.append(contentsOf: raw)
    }

    public mutating func writeVarBytes<C: Collection>(_ raw: C) where C.Element == UInt8 {
        writeVarUInt(UInt64(raw.count))
        bytes.append(contentsOf: raw)
    }

    public mutating func writeVarString(_ s: String) {
        var s = s
        s.withUTF8 { writeVarBytes($0) }
    }

    public mutating func writeBigEndian(_ v: UInt64, byteCount: Int) {
        for i in stride(from: byteCount - 1, through: 0, by: -1) {
            bytes.append(UInt8(truncatingIfNeeded: v >> (UInt64(i) * 8)))
        }
    }

    /// Writes an `any` value with the tag implied by its case.
    public mutating func writeAny(_ value: Lib0Any) {
        switch value {
        case .undefined: writeUInt8(127)
        case .null: writeUInt8(126)
        case .integer(let i): writeUInt8(125); writeVarInt(i)
        case .float32(let f): writeUInt8(124); writeBigEndian(UInt64(f.bitPattern), byteCount: 4)
        case .float64(let d): writeUInt8(123); writeBigEndian(d.bitPattern, byteCount: 8)
        case .bigint(let i): writeUInt8(122); writeBigEndian(UInt64(bitPattern: i), byteCount: 8)
        case .bool(let b): writeUInt8(b ? 120 : 121)
        case .string(let s): writeUInt8(119); writeVarString(s)
        case .object(let entries):
            writeUInt8(118)
            writeVarUInt(UInt64(entries.count))
            for e in entries { writeVarString(e.key); writeAny(e.value) }
        case .array(let items):
            writeUInt8(117)
            writeVarUInt(UInt64(items.count))
            for i in items { writeAny(i) }
        case .bytes(let b): writeUInt8(116); writeVarBytes(b)
        }
    }
}

extension Lib0Any {
    /// The value lib0 (JavaScript) would write for the number `d`: integer tag when integral and
    /// |d| ≤ 2^31−1, else float32 when exact, else float64.
    public static func jsNumber(_ d: Double) -> Lib0Any {
        if d.rounded(.towardZero) == d, abs(d) <= 2147483647 {
            return .integer(Int64(d))
        }
        if d.isNaN { return .float64(d) }
        let f = Float(d)
        if Double(f) == d { return .float32(f) }
        return .float64(d)
    }
}

/// Strict UTF-8 validation (no overlongs, no surrogates, ≤ U+10FFFF) and UTF-16 unit counting.
enum UTF8Validation {
    static func isValid(_ b: [UInt8], _ r: Range<Int>) -> Bool {
        var i = r.lowerBound
        let end = r.upperBound
        while i < end {
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            if c < 0xC2 { return false }
            if c < 0xE0 {
                guard i + 1 < end, b[i + 1] & 0xC0 == 0x80 else { return false }
                i += 2
            } else if c < 0xF0 {
                guard i + 2 < end else { return false }
                let c1 = b[i + 1]
                guard c1 & 0xC0 == 0x80, b[i + 2] & 0xC0 == 0x80 else { return false }
                if c == 0xE0 && c1 < 0xA0 { return false }  // overlong
                if c == 0xED && c1 >= 0xA0 { return false }  // surrogate
                i += 3
            } else if c < 0xF5 {
                guard i + 3 < end else { return false }
                let c1 = b[i + 1]
                guard c1 & 0xC0 == 0x80, b[i + 2] & 0xC0 == 0x80, b[i + 3] & 0xC0 == 0x80 else { return false }
                if c == 0xF0 && c1 < 0x90 { return false }  // overlong
                if c == 0xF4 && c1 >= 0x90 { return false }  // > U+10FFFF
                i += 4
            } else {
                return false
            }
        }
        return true
    }

    /// Validates `b[r]` and counts its UTF-16 code units in one pass; nil when invalid.
    static func validatedUTF16Count(_ b: [UInt8], _ r: Range<Int>) -> UInt64? {
        var n: UInt64 = 0
        var i = r.lowerBound
        let end = r.upperBound
        while i < end {
            let c = b[i]
            if c < 0x80 {
                i += 1; n += 1
                // ASCII run fast path
                while i < end && b[i] < 0x80 { i += 1; n += 1 }
                continue
            }
            let start = i
            if c < 0xE0 { i += 2; n += 1 } else if c < 0xF0 { i += 3; n += 1 } else { i += 4; n += 2 }
            if i > end || !isValid(b, start..<i) { return nil }
        }
        return n
    }

    /// Number of UTF-16 code units of valid UTF-8 bytes `b[r]`.
    @inline(__always)
    static func utf16Count(_ b: [UInt8], _ r: Range<Int>) -> UInt64 {
        var n: UInt64 = 0
        for i in r {
            let c = b[i]
            if c & 0xC0 != 0x80 { n += 1 }
            if c >= 0xF0 { n += 1 }
        }
        return n
    }
}
