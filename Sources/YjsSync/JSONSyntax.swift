// Strict JSON syntax check (RFC 8259), for awareness states that peers will JSON.parse.

enum JSONSyntax {
    /// Whether `text` is one valid JSON value (surrounding whitespace allowed), nesting ≤ `maxDepth`.
    static func isValid(_ text: String, maxDepth: Int = 128) -> Bool {
        var p = Parser(bytes: Array(text.utf8), maxDepth: maxDepth)
        p.ws()
        guard p.value(depth: 0) else { return false }
        p.ws()
        return p.i == p.bytes.count
    }

    struct Parser {
        let bytes: [UInt8]
        let maxDepth: Int
        var i = 0
        init(bytes: [UInt8], maxDepth: Int) { self.bytes = bytes; self.maxDepth = maxDepth }

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func ws() {
            while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
        }

        mutating func literal(_ s: String) -> Bool {
            for b in s.utf8 {
                guard peek == b else { return false }
                i += 1
            }
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard depth <= maxDepth, let c = peek else { return false }
            switch c {
            case UInt8(ascii: "{"):
                i += 1; ws()
                if peek == UInt8(ascii: "}") { i += 1; return true }
                while true {
                    ws()
                    guard string() else { return false }
                    ws()
                    guard peek == UInt8(ascii: ":") else { return false }
                    i += 1; ws()
                    guard value(depth: depth + 1) else { return false }
                    ws()
                    if peek == UInt8(ascii: ",") { i += 1; continue }
                    guard peek == UInt8(ascii: "}") else { return false }
                    i += 1
                    return true
                }
            case UInt8(ascii: "["):
                i += 1; ws()
                if peek == UInt8(ascii: "]") { i += 1; return true }
                while true {
                    ws()
                    guard value(depth: depth + 1) else { return false }
                    ws()
                    if peek == UInt8(ascii: ",") { i += 1; continue }
                    guard peek == UInt8(ascii: "]") else { return false }
                    i += 1
                    return true
                }
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default: return number()
            }
        }

        mutating func string() -> Bool {
            guard peek == UInt8(ascii: "\"") else { return false }
            i += 1
            while let c = peek {
                i += 1
                if c == UInt8(ascii: "\"") { return true }
                if c < 0x20 { return false }
                if c == UInt8(ascii: "\\") {
                    guard let e = peek else { return false }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                         UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        for _ in 0..<4 {
                            guard let h = peek, (h >= 0x30 && h <= 0x39) || (h | 0x20 >= 0x61 && h | 0x20 <= 0x66) else { return false }
                            i += 1
                        }
                    default: return false
                    }
                }
            }
            return false
        }

        mutating func digits() -> Bool {
            var any = false
            while let c = peek, c >= 0x30 && c <= 0x39 { i += 1; any = true }
            return any
        }

        mutating func number() -> Bool {
            if peek == UInt8(ascii: "-") { i += 1 }
            if peek == UInt8(ascii: "0") { i += 1 } else if !digits() { return false }
            if peek == UInt8(ascii: ".") { i += 1; guard digits() else { return false } }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                i += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
                guard digits() else { return false }
            }
            return true
        }
    }
}
