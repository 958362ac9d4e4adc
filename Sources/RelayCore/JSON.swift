// Minimal, allocation-light JSON support for the wire formats.
//
// RelayCore never re-serializes published `data`: it validates the raw bytes
// once (RFC 8259, strict) and splices them into the outgoing frames. The
// reader below parses the few client frames and publish bodies the contract
// defines while keeping every `data`/`state` value as its raw byte range.

/// Strict JSON validation and string escaping.
public enum JSON {
    /// Maximum nesting depth accepted by the validator.
    public static let maxDepth = 64

    /// Whether `bytes` is exactly one JSON value (surrounding whitespace allowed).
    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        let array = Array(bytes)
        var reader = JSONReader(array)
        reader.skipWhitespace()
        guard reader.skipValue(depth: 0) else { return false }
        reader.skipWhitespace()
        return reader.atEnd
    }

    /// Appends `string` as a quoted JSON string.
    @inlinable
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in string.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0x00..<0x20, 0x7F:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    @inlinable
    static func appendASCII(_ s: StaticString, to out: inout [UInt8]) {
        s.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    @inlinable
    static func appendInt<I: BinaryInteger>(_ value: I, to out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }
}

/// A forward-only reader over JSON bytes. Internal: the public surface is the
/// typed parsers in `Wire.swift`.
struct JSONReader {
    let bytes: [UInt8]
    var pos: Int = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { pos >= bytes.count }

    mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == byte { pos += 1; return true }
        return false
    }

    func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }

    /// Skips (and validates) one value starting at `pos` (no leading whitespace skipping).
    mutating func skipValue(depth: Int) -> Bool {
        guard depth < JSON.maxDepth, let c = peek() else { return false }
        switch c {
        case UInt8(ascii: "{"):
            pos += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { pos += 1; return true }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\""), skipString() else { return false }
                guard consume(UInt8(ascii: ":")) else { return false }
                skipWhitespace()
                guard skipValue(depth: depth + 1) else { return false }
                skipWhitespace()
                guard let n = peek() else { return false }
                pos += 1
                if n == UInt8(ascii: "}") { return true }
                if n != UInt8(ascii: ",") { return false }
            }
        case UInt8(ascii: "["):
            pos += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") { pos += 1; return true }
            while true {
                skipWhitespace()
                guard skipValue(depth: depth + 1) else { return false }
                skipWhitespace()
                guard let n = peek() else { return false }
                pos += 1
                if n == UInt8(ascii: "]") { return true }
                if n != UInt8(ascii: ",") { return false }
            }
        case UInt8(ascii: "\""):
            return skipString()
        case UInt8(ascii: "t"): return skipLiteral("true")
        case UInt8(ascii: "f"): return skipLiteral("false")
        case UInt8(ascii: "n"): return skipLiteral("null")
        default:
            return skipNumber()
        }
    }

    mutating func skipLiteral(_ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard pos + n <= bytes.count else { return false }
        var ok = true
        lit.withUTF8Buffer { buf in
            for i in 0..<n where bytes[pos + i] != buf[i] { ok = false }
        }
        if ok { pos += n }
        return ok
    }

    mutating func skipNumber() -> Bool {
        let start = pos
        if peek() == UInt8(ascii: "-") { pos += 1 }
        guard let first = peek(), isDigit(first) else { return false }
        if first == UInt8(ascii: "0") {
            pos += 1
        } else {
            while let d = peek(), isDigit(d) { pos += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            pos += 1
            guard let d = peek(), isDigit(d) else { return false }
            while let d = peek(), isDigit(d) { pos += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            pos += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { pos += 1 }
            guard let d = peek(), isDigit(d) else { return false }
            while let d = peek(), isDigit(d) { pos += 1 }
        }
        return pos > start
    }

    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// Skips a string starting at the opening quote, validating escapes,
    /// control characters and UTF-8.
    mutating func skipString() -> Bool {
        guard peek() == UInt8(ascii: "\"") else { return false }
        pos += 1
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { pos += 1; return true }
            if c < 0x20 { return false }
            if c == UInt8(ascii: "\\") {
                pos += 1
                guard let e = peek() else { return false }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    pos += 1
                case UInt8(ascii: "u"):
                    guard pos + 4 < bytes.count else { return false }
                    for i in 1...4 where hexValue(bytes[pos + i]) == nil { return false }
                    pos += 5
                default: return false
                }
                continue
            }
            if c < 0x80 { pos += 1; continue }
            guard skipUTF8Scalar() else { return false }
        }
        return false
    }

    /// Validates one multi-byte UTF-8 scalar at `pos` (RFC 3629: no overlongs, no surrogates).
    mutating func skipUTF8Scalar() -> Bool {
        let b0 = bytes[pos]
        func cont(_ i: Int) -> UInt8? {
            guard pos + i < bytes.count else { return nil }
            let b = bytes[pos + i]
            return b & 0xC0 == 0x80 ? b : nil
        }
        switch b0 {
        case 0xC2...0xDF:
            guard cont(1) != nil else { return false }
            pos += 2
        case 0xE0...0xEF:
            guard let b1 = cont(1), cont(2) != nil else { return false }
            if b0 == 0xE0 && b1 < 0xA0 { return false }
            if b0 == 0xED && b1 > 0x9F { return false }
            pos += 3
        case 0xF0...0xF4:
            guard let b1 = cont(1), cont(2) != nil, cont(3) != nil else { return false }
            if b0 == 0xF0 && b1 < 0x90 { return false }
            if b0 == 0xF4 && b1 > 0x8F { return false }
            pos += 4
        default:
            return false
        }
        return true
    }

    func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: return UInt32(c - 0x30)
        case 0x61...0x66: return UInt32(c - 0x61 + 10)
        case 0x41...0x46: return UInt32(c - 0x41 + 10)
        default: return nil
        }
    }

    /// Parses a string value (after optional whitespace) into a Swift `String`.
    mutating func readString() -> String? {
        skipWhitespace()
        guard peek() == UInt8(ascii: "\"") else { return nil }
        let start = pos
        guard skipString() else { return nil }
        // Fast path: no escapes.
        let inner = bytes[(start + 1)..<(pos - 1)]
        if !inner.contains(UInt8(ascii: "\\")) {
            return String(decoding: inner, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(inner.count)
        var i = inner.startIndex
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
                var scalar = hex4(inner, i + 2)
                i += 6
                if (0xD800...0xDBFF).contains(scalar), i + 6 <= inner.endIndex,
                   inner[i] == UInt8(ascii: "\\"), inner[i + 1] == UInt8(ascii: "u") {
                    let low = hex4(inner, i + 2)
                    if (0xDC00...0xDFFF).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                }
                // Lone surrogates become U+FFFD.
                let s = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: String(Character(s)).utf8)
            default: out.append(e); i += 2
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func hex4(_ s: ArraySlice<UInt8>, _ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | (hexValue(s[at + k]) ?? 0) }
        return v
    }

    /// Reads one raw value (after optional whitespace) and returns its byte range.
    mutating func readRawValue() -> Range<Int>? {
        skipWhitespace()
        let start = pos
        guard skipValue(depth: 0) else { return nil }
        return start..<pos
    }

    /// Reads an unsigned integer value.
    mutating func readUInt64() -> UInt64? {
        skipWhitespace()
        guard let range = readRawValue() else { return nil }
        var v: UInt64 = 0
        for c in bytes[range] {
            guard isDigit(c) else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }

    /// Iterates the members of an object, calling `body(key, &reader)`; the
    /// body must consume exactly the member's value. Returns false on malformed input.
    mutating func readObject(_ body: (String, inout JSONReader) -> Bool) -> Bool {
        guard consume(UInt8(ascii: "{")) else { return false }
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { pos += 1; return true }
        while true {
            guard let key = readString() else { return false }
            guard consume(UInt8(ascii: ":")) else { return false }
            skipWhitespace()
            guard body(key, &self) else { return false }
            skipWhitespace()
            guard let n = peek() else { return false }
            pos += 1
            if n == UInt8(ascii: "}") { return true }
            if n != UInt8(ascii: ",") { return false }
        }
    }

    /// Reads an array of strings.
    mutating func readStringArray() -> [String]? {
        guard consume(UInt8(ascii: "[")) else { return nil }
        var out: [String] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") { pos += 1; return out }
        while true {
            guard let s = readString() else { return nil }
            out.append(s)
            skipWhitespace()
            guard let n = peek() else { return nil }
            pos += 1
            if n == UInt8(ascii: "]") { return out }
            if n != UInt8(ascii: ",") { return nil }
        }
    }

    /// Whether the next value is the literal `null` (consumes it if so).
    mutating func readNull() -> Bool {
        skipWhitespace()
        return skipLiteral("null")
    }
}
