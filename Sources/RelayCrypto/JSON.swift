/// A small, strict JSON (RFC 8259) value model, parser and writer used for
/// tokens, envelopes and signed bodies. Objects keep member order; numbers
/// keep their source text so integers round-trip exactly.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number, as its JSON text (already validated).
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in source order. Duplicate names are rejected by the parser.
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b || Double(a) == Double(b)
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            guard a.count == b.count else { return false }
            for (k, v) in a {
                guard let w = b.first(where: { $0.0 == k })?.1, w == v else { return false }
            }
            return true
        default: return false
        }
    }

    /// The member `name` of an object, or `nil`.
    public subscript(name: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        for (k, v) in members where k == name { return v }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: [(String, JSONValue)]? { if case .object(let o) = self { return o } else { return nil } }

    /// The value as a signed 64-bit integer when it is an integral number
    /// (`12`, `12.0`, `1.2e1`) within range.
    public var int64Value: Int64? {
        guard case .number(let text) = self else { return nil }
        if let i = Int64(text) { return i }
        guard let d = Double(text), d.rounded() == d, abs(d) < 9.2e18 else { return nil }
        return Int64(d)
    }

    public var doubleValue: Double? { if case .number(let t) = self { return Double(t) } else { return nil } }

    /// Compact serialisation (no insignificant whitespace).
    public func serialized() -> [UInt8] {
        var out = [UInt8]()
        write(into: &out)
        return out
    }

    /// Compact serialisation as a string.
    public var jsonString: String { String(decoding: serialized(), as: UTF8.self) }

    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let t): out.append(contentsOf: t.utf8)
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, v) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                v.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(k, into: &out)
                out.append(UInt8(ascii: ":"))
                v.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `s` as a JSON string literal.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case 0x0a: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0d: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Integer number value.
    public static func int(_ i: Int64) -> JSONValue { .number(String(i)) }
}

/// Why a JSON text was refused.
public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Byte offset of the problem.
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// Strict JSON parser over UTF-8 bytes, with a nesting-depth limit.
public struct JSONParser {
    /// Maximum nesting of arrays and objects.
    public static let defaultMaxDepth = 64

    /// Parses one JSON value filling the whole input (surrounding whitespace allowed).
    public static func parse<Bytes: ContiguousBytes>(_ bytes: Bytes, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONValue {
        let result: Result<JSONValue, JSONError> = bytes.withUnsafeBytes { raw in
            var p = Cursor(bytes: raw, maxDepth: maxDepth)
            do throws(JSONError) {
                p.skipWhitespace()
                let v = try p.value(depth: 0)
                p.skipWhitespace()
                if p.i != raw.count { throw p.fail("trailing characters") }
                return .success(v)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Parses a string's UTF-8 bytes.
    public static func parse(_ string: String) throws(JSONError) -> JSONValue {
        try parse(Array(string.utf8))
    }

    /// Checks that `bytes` are one valid JSON value without building it.
    public static func validate<Bytes: ContiguousBytes>(_ bytes: Bytes, maxDepth: Int = defaultMaxDepth) throws(JSONError) {
        _ = try parse(bytes, maxDepth: maxDepth)
    }

    /// Byte ranges of the elements of a top-level JSON array (each element
    /// validated), so callers can pass elements on without re-serializing them.
    /// When the input is an object, the array is taken from its member `member`.
    public static func arrayElementRanges<Bytes: ContiguousBytes>(_ bytes: Bytes, member: String? = nil) throws(JSONError) -> [Range<Int>] {
        let result: Result<[Range<Int>], JSONError> = bytes.withUnsafeBytes { raw in
            var p = Cursor(bytes: raw, maxDepth: defaultMaxDepth)
            do throws(JSONError) {
                p.skipWhitespace()
                guard p.i < raw.count else { throw p.fail("unexpected end") }
                var arrayStart = p.i
                var insideObject = false
                if raw[p.i] == UInt8(ascii: "{"), let member {
                    insideObject = true
                    // Find the member, validating the whole object.
                    p.i += 1
                    var found: Int?
                    p.skipWhitespace()
                    if p.i < raw.count && raw[p.i] == UInt8(ascii: "}") { throw p.fail("missing \"\(member)\"") }
                    while true {
                        p.skipWhitespace()
                        guard p.i < raw.count, raw[p.i] == UInt8(ascii: "\"") else { throw p.fail("expected member name") }
                        let key = try p.string()
                        p.skipWhitespace()
                        guard p.i < raw.count, raw[p.i] == UInt8(ascii: ":") else { throw p.fail("expected ':'") }
                        p.i += 1
                        p.skipWhitespace()
                        if key == member { found = p.i }
                        _ = try p.value(depth: 1)
                        p.skipWhitespace()
                        guard p.i < raw.count else { throw p.fail("unexpected end in object") }
                        if raw[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
                        if raw[p.i] == UInt8(ascii: "}") { p.i += 1; break }
                        throw p.fail("expected ',' or '}'")
                    }
                    p.skipWhitespace()
                    guard p.i == raw.count else { throw p.fail("trailing characters") }
                    guard let found else { throw p.fail("missing \"\(member)\"") }
                    arrayStart = found
                    p.i = found
                }
                guard raw[p.i] == UInt8(ascii: "[") else { throw JSONError(offset: arrayStart, reason: "expected an array") }
                p.i += 1
                var ranges: [Range<Int>] = []
                p.skipWhitespace()
                if p.i < raw.count && raw[p.i] == UInt8(ascii: "]") { p.i += 1 } else {
                    while true {
                        p.skipWhitespace()
                        let start = p.i
                        _ = try p.value(depth: 1)
                        ranges.append(start..<p.i)
                        p.skipWhitespace()
                        guard p.i < raw.count else { throw p.fail("unexpected end in array") }
                        if raw[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
                        if raw[p.i] == UInt8(ascii: "]") { p.i += 1; break }
                        throw p.fail("expected ',' or ']'")
                    }
                }
                if !insideObject {
                    p.skipWhitespace()
                    guard p.i == raw.count else { throw p.fail("trailing characters") }
                }
                return .success(ranges)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Walks the members of a top-level JSON object in one pass, validating the
    /// whole text (duplicate names are refused), and hands each name and parsed
    /// value to `body`.
    public static func forEachMember<E: Error>(of bytes: [UInt8], maxDepth: Int = defaultMaxDepth,
                                               _ body: (String, JSONValue) throws(E) -> Void) throws {
        try bytes.withUnsafeBytes { raw in
            var p = Cursor(bytes: raw, maxDepth: maxDepth)
            p.skipWhitespace()
            guard p.i < raw.count, raw[p.i] == UInt8(ascii: "{") else { throw p.fail("expected an object") }
            p.i += 1
            var seen: [String] = []
            p.skipWhitespace()
            if p.i < raw.count && raw[p.i] == UInt8(ascii: "}") {
                p.i += 1
            } else {
                while true {
                    p.skipWhitespace()
                    guard p.i < raw.count, raw[p.i] == UInt8(ascii: "\"") else { throw p.fail("expected member name") }
                    let key = try p.string()
                    if seen.contains(key) { throw p.fail("duplicate member \"\(key)\"") }
                    seen.append(key)
                    p.skipWhitespace()
                    guard p.i < raw.count, raw[p.i] == UInt8(ascii: ":") else { throw p.fail("expected ':'") }
                    p.i += 1
                    p.skipWhitespace()
                    let value = try p.value(depth: 1)
                    try body(key, value)
                    p.skipWhitespace()
                    guard p.i < raw.count else { throw p.fail("unexpected end in object") }
                    if raw[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
                    if raw[p.i] == UInt8(ascii: "}") { p.i += 1; break }
                    throw p.fail("expected ',' or '}'")
                }
            }
            p.skipWhitespace()
            if p.i != raw.count { throw p.fail("trailing characters") }
        }
    }

    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        let maxDepth: Int
        var i = 0

        init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        func fail(_ reason: String) -> JSONError { JSONError(offset: i, reason: reason) }

        mutating func skipWhitespace() {
            while i < bytes.count {
                switch bytes[i] {
                case 0x20, 0x09, 0x0a, 0x0d: i += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: StaticString) throws(JSONError) {
            let n = literal.utf8CodeUnitCount
            guard i + n <= bytes.count else { throw fail("truncated literal") }
            let lp = literal.utf8Start
            for k in 0..<n where bytes[i + k] != lp[k] { throw fail("invalid literal") }
            i += n
        }

        mutating func value(depth: Int) throws(JSONError) -> JSONValue {
            guard i < bytes.count else { throw fail("unexpected end") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                guard depth < maxDepth else { throw fail("nesting too deep") }
                i += 1
                var members: [(String, JSONValue)] = []
                skipWhitespace()
                if i < bytes.count && bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipWhitespace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected member name") }
                    let key = try string()
                    for (k, _) in members where k == key { throw fail("duplicate member \"\(key)\"") }
                    skipWhitespace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    skipWhitespace()
                    members.append((key, try value(depth: depth + 1)))
                    skipWhitespace()
                    guard i < bytes.count else { throw fail("unexpected end in object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                guard depth < maxDepth else { throw fail("nesting too deep") }
                i += 1
                var items: [JSONValue] = []
                skipWhitespace()
                if i < bytes.count && bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipWhitespace()
                    items.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard i < bytes.count else { throw fail("unexpected end in array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return .number(try number())
            default:
                throw fail("unexpected character")
            }
        }

        mutating func number() throws(JSONError) -> String {
            let start = i
            func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid number") }
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid fraction") }
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
                i += 1
                if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
                guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid exponent") }
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }

        mutating func hex4() throws(JSONError) -> UInt32 {
            guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        /// A validated string from UTF-8 bytes; ASCII takes a fast, non-generic path.
        static func makeString(_ slice: UnsafeRawBufferPointer) -> String? {
            var ascii: UInt8 = 0
            for b in slice { ascii |= b }
            if ascii < 0x80 { return String(decoding: slice.bindMemory(to: UInt8.self), as: UTF8.self) }
            return String(validating: slice.bindMemory(to: UInt8.self), as: UTF8.self)
        }

        mutating func string() throws(JSONError) -> String {
            i += 1  // opening quote
            let start = i
            // Fast path: no escapes.
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
                    i += 1
                    guard let s = Cursor.makeString(slice) else { throw fail("invalid UTF-8 in string") }
                    return s
                }
                if c == UInt8(ascii: "\\") { break }
                if c < 0x20 { throw fail("control character in string") }
                i += 1
            }
            var out = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<min(i, bytes.count)]))
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
                    return s
                }
                if c < 0x20 { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < bytes.count else { break }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5c)
                case UInt8(ascii: "/"): out.append(0x2f)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard i + 2 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("unpaired surrogate")
                    }
                    out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                default:
                    throw fail("invalid escape")
                }
            }
            throw fail("unterminated string")
        }
    }
}
