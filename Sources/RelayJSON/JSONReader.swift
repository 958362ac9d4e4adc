// The one JSON scanner of the project (RFC 8259, strict). Every module reads
// JSON through it, as byte ranges (published `data` is passed on byte for
// byte, never re-serialized) or as a `JSONValue` tree.
//
// Rules, the same for every endpoint and frame (Docs/protocol.md, "JSON"):
// - exactly the RFC 8259 grammar: no comments, no trailing commas, no leading
//   zeros, no BOM, whitespace only of the four JSON kinds;
// - strings are valid UTF-8 (RFC 3629: no overlongs, no encoded surrogates)
//   with no raw control characters;
// - a `\u` escape of a surrogate must be a high surrogate followed by a low
//   one (`"\uD83D\uDE00"`); a lone surrogate is refused;
// - member names are unique within an object (after unescaping);
// - arrays and objects nest at most `JSON.maxDepth` (64) deep.

/// Why a JSON text was refused.
public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Byte offset of the problem.
    public let offset: Int
    public let reason: String
    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// A forward-only reader over JSON bytes: validates as it goes and hands out
/// strings, numbers, raw value ranges or trees.
public struct JSONReader {
    public let bytes: [UInt8]
    /// The next byte to read.
    public var pos: Int = 0
    public let maxDepth: Int
    /// Member names of the objects being read, innermost last: one buffer per
    /// reader for the uniqueness rule (no allocation per object).
    private var names: [(range: Range<Int>, escaped: Bool)] = []

    public init(_ bytes: [UInt8], maxDepth: Int = JSON.maxDepth) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    public var atEnd: Bool { pos >= bytes.count }

    @inline(__always) func fail(_ reason: String) -> JSONError { JSONError(offset: pos, reason: reason) }

    public mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    @inline(__always) func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }

    /// Skips whitespace, then consumes `byte` if it is next.
    public mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == byte { pos += 1; return true }
        return false
    }

    /// Requires that only whitespace is left.
    public mutating func expectEnd() throws(JSONError) {
        skipWhitespace()
        guard atEnd else { throw fail("trailing characters") }
    }

    // MARK: Validation without building anything

    /// Skips (and validates) one value at `pos`; `depth` is the number of
    /// containers already open around it.
    public mutating func skipValue(depth: Int = 0) throws(JSONError) {
        guard let c = peek() else { throw fail("unexpected end") }
        switch c {
        case UInt8(ascii: "{"):
            try walkMembers(depth: depth) { (_, _, r: inout JSONReader) throws(JSONError) in try r.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
            pos += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") { pos += 1; return }
            while true {
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard let n = peek() else { throw fail("unexpected end in array") }
                pos += 1
                if n == UInt8(ascii: "]") { return }
                if n != UInt8(ascii: ",") { pos -= 1; throw fail("expected ',' or ']'") }
            }
        case UInt8(ascii: "\""):
            _ = try skipString()
        case UInt8(ascii: "t"): try skipLiteral("true")
        case UInt8(ascii: "f"): try skipLiteral("false")
        case UInt8(ascii: "n"): try skipLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
        default:
            throw fail("unexpected character")
        }
    }

    mutating func skipLiteral(_ lit: StaticString) throws(JSONError) {
        let n = lit.utf8CodeUnitCount
        guard pos + n <= bytes.count else { throw fail("truncated literal") }
        let p = lit.utf8Start
        for i in 0..<n where bytes[pos + i] != p[i] { throw fail("invalid literal") }
        pos += n
    }

    mutating func skipNumber() throws(JSONError) {
        if peek() == UInt8(ascii: "-") { pos += 1 }
        guard let first = peek(), isDigit(first) else { throw fail("invalid number") }
        if first == UInt8(ascii: "0") {
            pos += 1
        } else {
            while let d = peek(), isDigit(d) { pos += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            pos += 1
            guard let d = peek(), isDigit(d) else { throw fail("invalid fraction") }
            while let d = peek(), isDigit(d) { pos += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            pos += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { pos += 1 }
            guard let d = peek(), isDigit(d) else { throw fail("invalid exponent") }
            while let d = peek(), isDigit(d) { pos += 1 }
        }
    }

    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// Skips a string starting at its opening quote, validating escapes,
    /// control characters, surrogate pairs and UTF-8. Returns whether it held
    /// an escape.
    @discardableResult
    public mutating func skipString() throws(JSONError) -> Bool {
        guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string") }
        pos += 1
        var escaped = false
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { pos += 1; return escaped }
            if c < 0x20 { throw fail("control character in string") }
            if c == UInt8(ascii: "\\") {
                escaped = true
                pos += 1
                guard let e = peek() else { break }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    pos += 1
                case UInt8(ascii: "u"):
                    pos += 1
                    let unit = try hex4()
                    if unit >= 0xD800 && unit < 0xDC00 {
                        guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        pos += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("unpaired surrogate") }
                    } else if unit >= 0xDC00 && unit < 0xE000 {
                        throw fail("unpaired surrogate")
                    }
                default:
                    throw fail("invalid escape")
                }
                continue
            }
            if c < 0x80 { pos += 1; continue }
            try skipUTF8Scalar()
        }
        throw fail("unterminated string")
    }

    /// Reads four hex digits at `pos`.
    mutating func hex4() throws(JSONError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let d = hexValue(bytes[pos]) else { throw fail("invalid \\u escape") }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    /// Validates one multi-byte UTF-8 scalar at `pos` (RFC 3629: no overlongs, no surrogates).
    mutating func skipUTF8Scalar() throws(JSONError) {
        let b0 = bytes[pos]
        @inline(__always) func cont(_ i: Int) -> UInt8? {
            guard pos + i < bytes.count else { return nil }
            let b = bytes[pos + i]
            return b & 0xC0 == 0x80 ? b : nil
        }
        switch b0 {
        case 0xC2...0xDF:
            guard cont(1) != nil else { throw fail("invalid UTF-8") }
            pos += 2
        case 0xE0...0xEF:
            guard let b1 = cont(1), cont(2) != nil,
                  !(b0 == 0xE0 && b1 < 0xA0), !(b0 == 0xED && b1 > 0x9F) else { throw fail("invalid UTF-8") }
            pos += 3
        case 0xF0...0xF4:
            guard let b1 = cont(1), cont(2) != nil, cont(3) != nil,
                  !(b0 == 0xF0 && b1 < 0x90), !(b0 == 0xF4 && b1 > 0x8F) else { throw fail("invalid UTF-8") }
            pos += 4
        default:
            throw fail("invalid UTF-8")
        }
    }

    func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: return UInt32(c - 0x30)
        case 0x61...0x66: return UInt32(c - 0x61 + 10)
        case 0x41...0x46: return UInt32(c - 0x41 + 10)
        default: return nil
        }
    }

    // MARK: Typed reads

    /// Reads a string value (after optional whitespace).
    public mutating func readString() throws(JSONError) -> String {
        skipWhitespace()
        let start = pos
        let escaped = try skipString()
        return decodeString(start..<pos, escaped: escaped)
    }

    /// The text of the validated string literal at `range` (quotes included).
    func decodeString(_ range: Range<Int>, escaped: Bool) -> String {
        let inner = bytes[(range.lowerBound + 1)..<(range.upperBound - 1)]
        if !escaped { return String(decoding: inner, as: UTF8.self) }
        return String(decoding: unescape(inner), as: UTF8.self)
    }

    /// Unescapes the inside of a validated string literal.
    func unescape(_ inner: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(inner.count)
        var i = inner.startIndex
        func hex(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for k in 0..<4 { v = v << 4 | (hexValue(inner[at + k]) ?? 0) }
            return v
        }
        while i < inner.endIndex {
            let c = inner[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            let e = inner[i + 1]
            switch e {
            case UInt8(ascii: "b"): out.append(0x08); i += 2
            case UInt8(ascii: "f"): out.append(0x0C); i += 2
            case UInt8(ascii: "n"): out.append(0x0A); i += 2
            case UInt8(ascii: "r"): out.append(0x0D); i += 2
            case UInt8(ascii: "t"): out.append(0x09); i += 2
            case UInt8(ascii: "u"):
                var scalar = hex(i + 2)
                i += 6
                if scalar >= 0xD800 && scalar < 0xDC00 {  // validated: a low surrogate follows
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (hex(i + 2) - 0xDC00)
                    i += 6
                }
                appendUTF8(scalar, to: &out)
            default: out.append(e); i += 2
            }
        }
        return out
    }

    func appendUTF8(_ s: UInt32, to out: inout [UInt8]) {
        switch s {
        case 0..<0x80: out.append(UInt8(s))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (s >> 6))); out.append(UInt8(0x80 | (s & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (s >> 12))); out.append(UInt8(0x80 | ((s >> 6) & 0x3F))); out.append(UInt8(0x80 | (s & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (s >> 18))); out.append(UInt8(0x80 | ((s >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((s >> 6) & 0x3F))); out.append(UInt8(0x80 | (s & 0x3F)))
        }
    }

    /// Reads one value (after optional whitespace) and returns its byte range.
    public mutating func readRawValue(depth: Int = 0) throws(JSONError) -> Range<Int> {
        skipWhitespace()
        let start = pos
        try skipValue(depth: depth)
        return start..<pos
    }

    /// Reads a non-negative integer written without fraction or exponent.
    public mutating func readUInt64() throws(JSONError) -> UInt64 {
        let range = try readRawValue()
        var v: UInt64 = 0
        for c in bytes[range] {
            guard isDigit(c) else { throw JSONError(offset: range.lowerBound, reason: "expected an unsigned integer") }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
            if o1 || o2 { throw JSONError(offset: range.lowerBound, reason: "integer out of range") }
            v = a
        }
        return v
    }

    /// Whether the next value is the literal `null` (consumed if so).
    public mutating func readNull() -> Bool {
        skipWhitespace()
        guard pos + 4 <= bytes.count, bytes[pos] == UInt8(ascii: "n"), bytes[pos + 1] == UInt8(ascii: "u"),
              bytes[pos + 2] == UInt8(ascii: "l"), bytes[pos + 3] == UInt8(ascii: "l") else { return false }
        pos += 4
        return true
    }

    /// Walks an object's members, calling `body(name, &reader)`, which must
    /// consume exactly the member's value. Names must be unique.
    public mutating func readObject(depth: Int = 0, _ body: (String, inout JSONReader) throws(JSONError) -> Void) throws(JSONError) {
        skipWhitespace()
        try walkMembers(depth: depth) { (range, escaped, r: inout JSONReader) throws(JSONError) in
            try body(r.decodeString(range, escaped: escaped), &r)
        }
    }

    /// The one object loop: checks depth and name uniqueness, hands each
    /// name's literal range (and whether it holds an escape) to `body`, which
    /// consumes the value. Starts at the `{`.
    mutating func walkMembers(depth: Int, _ body: (Range<Int>, Bool, inout JSONReader) throws(JSONError) -> Void) throws(JSONError) {
        guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        guard peek() == UInt8(ascii: "{") else { throw fail("expected an object") }
        pos += 1
        let base = names.count
        defer { names.removeSubrange(base...) }
        var many: Set<[UInt8]>?  // past 16 names, a set instead of the linear scan
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { pos += 1; return }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected member name") }
            let start = pos
            let escaped = try skipString()
            let name = start..<pos
            try noteName(name, escaped: escaped, base: base, many: &many)
            guard consume(UInt8(ascii: ":")) else { throw fail("expected ':'") }
            skipWhitespace()
            try body(name, escaped, &self)
            skipWhitespace()
            guard let n = peek() else { throw fail("unexpected end in object") }
            pos += 1
            if n == UInt8(ascii: "}") { return }
            if n != UInt8(ascii: ",") { pos -= 1; throw fail("expected ',' or '}'") }
        }
    }

    /// The uniqueness rule: names compare as raw bytes when neither holds an
    /// escape, else unescaped.
    private mutating func noteName(_ range: Range<Int>, escaped: Bool, base: Int, many: inout Set<[UInt8]>?) throws(JSONError) {
        func key(_ r: Range<Int>, _ e: Bool) -> [UInt8] {
            let inner = bytes[(r.lowerBound + 1)..<(r.upperBound - 1)]
            return e ? unescape(inner) : Array(inner)
        }
        let duplicate = JSONError(offset: range.lowerBound, reason: "duplicate member name")
        if many != nil {
            guard many!.insert(key(range, escaped)).inserted else { throw duplicate }
            return
        }
        for i in base..<names.count {
            let (r, e) = names[i]
            if !escaped && !e {
                if r.count == range.count && bytes[r] == bytes[range] { throw duplicate }
            } else if key(r, e) == key(range, escaped) {
                throw duplicate
            }
        }
        names.append((range, escaped))
        if names.count - base > 16 {
            many = Set(names[base...].map { key($0.range, $0.escaped) })
        }
    }

    /// Walks an array's elements, calling `body(&reader)`, which must consume
    /// exactly one element.
    public mutating func readArray(depth: Int = 0, _ body: (inout JSONReader) throws(JSONError) -> Void) throws(JSONError) {
        guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        guard consume(UInt8(ascii: "[")) else { throw fail("expected an array") }
        skipWhitespace()
        if peek() == UInt8(ascii: "]") { pos += 1; return }
        while true {
            skipWhitespace()
            try body(&self)
            skipWhitespace()
            guard let n = peek() else { throw fail("unexpected end in array") }
            pos += 1
            if n == UInt8(ascii: "]") { return }
            if n != UInt8(ascii: ",") { pos -= 1; throw fail("expected ',' or ']'") }
        }
    }

    /// Reads an array of strings.
    public mutating func readStringArray() throws(JSONError) -> [String] {
        var out: [String] = []
        try readArray { (r: inout JSONReader) throws(JSONError) in out.append(try r.readString()) }
        return out
    }

    // MARK: Trees

    /// Reads one value (after optional whitespace) as a tree.
    public mutating func readValue(depth: Int = 0) throws(JSONError) -> JSONValue {
        skipWhitespace()
        guard let c = peek() else { throw fail("unexpected end") }
        switch c {
        case UInt8(ascii: "{"):
            var members: [(String, JSONValue)] = []
            try readObject(depth: depth) { (key, r: inout JSONReader) throws(JSONError) in
                members.append((key, try r.readValue(depth: depth + 1)))
            }
            return .object(members)
        case UInt8(ascii: "["):
            var items: [JSONValue] = []
            try readArray(depth: depth) { (r: inout JSONReader) throws(JSONError) in
                items.append(try r.readValue(depth: depth + 1))
            }
            return .array(items)
        case UInt8(ascii: "\""):
            return .string(try readString())
        case UInt8(ascii: "t"): try skipLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try skipLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try skipLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = pos
            try skipNumber()
            return .number(String(decoding: bytes[start..<pos], as: UTF8.self))
        default:
            throw fail("unexpected character")
        }
    }
}
