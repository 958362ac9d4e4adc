/// Base64 (RFC 4648) encoding and strict decoding, standard and URL alphabets.
public enum Base64 {
    /// Which alphabet and padding rule to use.
    public enum Variant: Sendable {
        /// `+` and `/`, padded with `=` (PHP `base64_encode`, `btoa`).
        case standard
        /// `-` and `_`, no padding (JWT, RFC 7515).
        case url
    }

    private static let standardAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static let standardTable: [UInt8] = makeTable(standardAlphabet)
    private static let urlTable: [UInt8] = makeTable(urlAlphabet)

    private static func makeTable(_ alphabet: [UInt8]) -> [UInt8] {
        var t = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }

    /// Encoded length of `count` bytes.
    public static func encodedCount(_ count: Int, _ variant: Variant) -> Int {
        switch variant {
        case .standard: return (count + 2) / 3 * 4
        case .url: return (count * 4 + 2) / 3
        }
    }

    /// Appends the encoding of `bytes` to `output` as UTF-8 bytes.
    public static func encode(_ bytes: UnsafeRawBufferPointer, _ variant: Variant, into output: inout [UInt8]) {
        let alphabet = variant == .standard ? standardAlphabet : urlAlphabet
        let n = encodedCount(bytes.count, variant)
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: n))
        output.withUnsafeMutableBufferPointer { outAll in
            alphabet.withUnsafeBufferPointer { a in
                var o = start
                var i = 0
                let count = bytes.count
                while i + 3 <= count {
                    let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                    outAll[o] = a[Int(v >> 18)]
                    outAll[o + 1] = a[Int(v >> 12 & 63)]
                    outAll[o + 2] = a[Int(v >> 6 & 63)]
                    outAll[o + 3] = a[Int(v & 63)]
                    o += 4; i += 3
                }
                let rest = count - i
                if rest == 1 {
                    let v = UInt32(bytes[i]) << 16
                    outAll[o] = a[Int(v >> 18)]; outAll[o + 1] = a[Int(v >> 12 & 63)]
                    if variant == .standard { outAll[o + 2] = UInt8(ascii: "="); outAll[o + 3] = UInt8(ascii: "=") }
                } else if rest == 2 {
                    let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
                    outAll[o] = a[Int(v >> 18)]; outAll[o + 1] = a[Int(v >> 12 & 63)]; outAll[o + 2] = a[Int(v >> 6 & 63)]
                    if variant == .standard { outAll[o + 3] = UInt8(ascii: "=") }
                }
            }
        }
    }

    /// The encoding of `bytes` as a string.
    public static func encode<Bytes: ContiguousBytes>(_ bytes: Bytes, _ variant: Variant = .standard) -> String {
        var out = [UInt8]()
        bytes.withUnsafeBytes { encode($0, variant, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strictly decodes `input`: rejects characters outside the alphabet,
    /// whitespace, wrong padding (required for `.standard`, forbidden for
    /// `.url`), and non-zero trailing bits. Returns `nil` when invalid.
    public static func decode(_ input: UnsafeRawBufferPointer, _ variant: Variant) -> [UInt8]? {
        var count = input.count
        if variant == .standard {
            guard count % 4 == 0 else { return nil }
            if count >= 1 && input[count - 1] == UInt8(ascii: "=") { count -= 1 }
            if count >= 1 && input[count - 1] == UInt8(ascii: "=") { count -= 1 }
        } else if count % 4 == 1 {
            return nil
        }
        let table = variant == .standard ? standardTable : urlTable
        var out = [UInt8](repeating: 0, count: count * 3 / 4)
        let ok: Bool = out.withUnsafeMutableBufferPointer { o in
            table.withUnsafeBufferPointer { t in
                var i = 0, j = 0
                while i + 4 <= count {
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])], c = t[Int(input[i + 2])], d = t[Int(input[i + 3])]
                    if (a | b | c | d) & 0xC0 != 0 { return false }
                    let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    o[j] = UInt8(v >> 16); o[j + 1] = UInt8(v >> 8 & 0xff); o[j + 2] = UInt8(v & 0xff)
                    i += 4; j += 3
                }
                switch count - i {
                case 0: return true
                case 2:
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])]
                    if (a | b) & 0xC0 != 0 || b & 0x0f != 0 { return false }
                    o[j] = a << 2 | b >> 4
                    return true
                case 3:
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])], c = t[Int(input[i + 2])]
                    if (a | b | c) & 0xC0 != 0 || c & 0x03 != 0 { return false }
                    o[j] = a << 2 | b >> 4; o[j + 1] = (b & 0x0f) << 4 | c >> 2
                    return true
                default: return false
                }
            }
        }
        return ok ? out : nil
    }

    /// Strictly decodes a string; `nil` when invalid.
    public static func decode(_ string: String, _ variant: Variant = .standard) -> [UInt8]? {
        var s = string
        return s.withUTF8 { decode(UnsafeRawBufferPointer($0), variant) }
    }

    /// Strictly decodes bytes; `nil` when invalid.
    public static func decode<Bytes: ContiguousBytes>(bytes: Bytes, _ variant: Variant) -> [UInt8]? {
        bytes.withUnsafeBytes { decode($0, variant) }
    }
}
