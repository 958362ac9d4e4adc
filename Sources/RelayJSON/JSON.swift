/// Validation, parsing and writing of JSON: the entry points over `JSONReader`.
public enum JSON {
    /// Deepest nesting of arrays and objects accepted anywhere.
    public static let maxDepth = 64

    /// Whether `bytes` is exactly one JSON value (surrounding whitespace allowed).
    /// The engine calls this on every published `data`: concrete, no copy.
    public static func isValid(_ bytes: [UInt8]) -> Bool {
        (try? validate(bytes)) != nil
    }

    /// Whether `bytes` is exactly one JSON value.
    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        isValid(Array(bytes))
    }

    /// Whether `text` is exactly one JSON value.
    public static func isValid(_ text: String) -> Bool { isValid(Array(text.utf8)) }

    /// Throws unless `bytes` is exactly one JSON value.
    public static func validate(_ bytes: [UInt8], maxDepth: Int = maxDepth) throws(JSONError) {
        var r = JSONReader(bytes, maxDepth: maxDepth)
        r.skipWhitespace()
        try r.skipValue()
        try r.expectEnd()
    }

    // MARK: Writer

    /// Appends `string` as a quoted JSON string: `"`, `\` and control
    /// characters escaped (`\n`, `\r`, `\t`, else `\u00XX`; also U+007F),
    /// everything else as UTF-8.
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
                let hex: StaticString = "0123456789abcdef"
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex.utf8Start[Int(b >> 4)], hex.utf8Start[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends ASCII text as is.
    @inlinable
    public static func appendASCII(_ s: StaticString, to out: inout [UInt8]) {
        s.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// Appends an integer in decimal.
    @inlinable
    public static func appendInt<I: BinaryInteger>(_ value: I, to out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }

    /// Appends `["a","b",…]`.
    public static func appendStringArray(_ items: [String], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (i, s) in items.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendString(s, to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }
}

/// Tree parsing and the structured walks the relay needs.
public enum JSONParser {
    /// Nesting limit (the project's one limit).
    public static let defaultMaxDepth = JSON.maxDepth

    /// Parses one JSON value filling the whole input (surrounding whitespace allowed).
    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONValue {
        var r = JSONReader(bytes, maxDepth: maxDepth)
        let v = try r.readValue()
        try r.expectEnd()
        return v
    }

    /// Parses any byte sequence (copied into an array first).
    public static func parse<Bytes: Sequence>(_ bytes: Bytes, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONValue
    where Bytes.Element == UInt8 {
        try parse(Array(bytes), maxDepth: maxDepth)
    }

    /// Parses a string's UTF-8 bytes.
    public static func parse(_ string: String) throws(JSONError) -> JSONValue {
        try parse(Array(string.utf8))
    }

    /// Checks that `bytes` are one valid JSON value without building it.
    public static func validate(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONError) {
        try JSON.validate(bytes, maxDepth: maxDepth)
    }

    /// Byte ranges of the elements of a top-level JSON array (the whole text
    /// validated), so callers can pass elements on without re-serializing them.
    /// When the input is an object, the array is its member `member`. Each
    /// element gets the whole depth budget, as if it were a text of its own, so
    /// a publication nests as deep inside `/publish/batch` as alone.
    public static func arrayElementRanges(_ bytes: [UInt8], member: String? = nil) throws(JSONError) -> [Range<Int>] {
        var r = JSONReader(bytes)
        r.skipWhitespace()
        var ranges: [Range<Int>]?
        func elements(_ r: inout JSONReader, depth: Int) throws(JSONError) -> [Range<Int>] {
            var out: [Range<Int>] = []
            try r.readArray(depth: depth) { (r: inout JSONReader) throws(JSONError) in
                out.append(try r.readRawValue(depth: 0))
            }
            return out
        }
        if r.peek() == UInt8(ascii: "{"), let member {
            try r.readObject { (key, r: inout JSONReader) throws(JSONError) in
                if key == member {
                    guard r.peek() == UInt8(ascii: "[") else { throw r.fail("expected an array") }
                    ranges = try elements(&r, depth: 1)
                } else {
                    try r.skipValue(depth: 1)
                }
            }
            guard ranges != nil else { throw r.fail("missing \"\(member)\"") }
        } else {
            guard r.peek() == UInt8(ascii: "[") else { throw r.fail("expected an array") }
            ranges = try elements(&r, depth: 0)
        }
        try r.expectEnd()
        return ranges!
    }

    /// Walks the members of a top-level JSON object in one pass, validating the
    /// whole text, and hands each name and parsed value to `body`.
    public static func forEachMember<E: Error>(of bytes: [UInt8], maxDepth: Int = defaultMaxDepth,
                                               _ body: (String, JSONValue) throws(E) -> Void) throws {
        var r = JSONReader(bytes, maxDepth: maxDepth)
        var members: [(String, JSONValue)] = []
        try r.readObject { (key, r: inout JSONReader) throws(JSONError) in
            members.append((key, try r.readValue(depth: 1)))
        }
        try r.expectEnd()
        for (k, v) in members { try body(k, v) }
    }
}
