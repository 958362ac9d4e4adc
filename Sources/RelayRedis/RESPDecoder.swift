import NIOCore

/// A reply that breaks RESP3 or a decoder limit. The connection that read it cannot continue
/// (its position in the stream is lost) and is closed.
public struct RESPProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "RESP protocol error: \(reason)" }
}

/// Decodes RESP3 replies from the front of a buffer, one complete value at a time.
///
/// A value is parsed only once all of its bytes are there; until then `decode` returns nil and
/// consumes nothing (the caller appends what arrives next and asks again). Re-parsing a partly
/// received value costs its received prefix each time, which is small for Redis's replies; the
/// limits bound it. Attributes (`|`) are read and dropped. Streamed strings and aggregates
/// (`$?`, `*?`), which Redis never sends, are refused.
public struct RESPDecoder: Sendable {
    /// Bounds on what one reply may hold.
    public struct Limits: Sendable, Hashable {
        /// Largest bulk string, bulk error or verbatim string (Redis's own `proto-max-bulk-len` default is 512 MiB).
        public var maxBulkBytes: Int = 512 << 20
        /// Most elements in one array, set, push or map (pairs count twice).
        public var maxAggregateCount: Int = 1 << 24
        /// Deepest nesting of aggregates.
        public var maxDepth: Int = 64
        /// Longest simple string, error line or number.
        public var maxLineBytes: Int = 64 << 10
        public init() {}
    }

    public var limits: Limits
    public init(limits: Limits = Limits()) { self.limits = limits }

    /// The next complete value at the front of `buffer`, consumed; nil when more bytes are needed.
    public func decode(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        var cursor = buffer
        guard let value = try parse(&cursor, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: cursor.readerIndex)
        return value
    }

    private static let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")

    /// The bytes up to the next CRLF, consumed with it; nil if the CRLF has not arrived.
    private func line(_ b: inout ByteBuffer) throws(RESPProtocolError) -> ByteBuffer? {
        let view = b.readableBytesView
        let end = min(view.endIndex, view.startIndex + limits.maxLineBytes + 1)
        guard let cr = view[view.startIndex..<end].firstIndex(of: Self.cr) else {
            if view.count > limits.maxLineBytes { throw RESPProtocolError("line longer than \(limits.maxLineBytes) bytes") }
            return nil
        }
        guard cr + 1 < view.endIndex else { return nil }
        guard view[cr + 1] == Self.lf else { throw RESPProtocolError("CR not followed by LF") }
        let length = cr - view.startIndex
        let text = b.readSlice(length: length)!
        b.moveReaderIndex(forwardBy: 2)
        return text
    }

    /// A signed decimal in Int64: an optional `-`, then digits, nothing else.
    private func integer(_ text: ByteBuffer, _ what: String) throws(RESPProtocolError) -> Int64 {
        let v = text.readableBytesView
        var i = v.startIndex
        var negative = false
        if i < v.endIndex, v[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < v.endIndex else { throw RESPProtocolError("\(what): empty number") }
        var value: Int64 = 0
        while i < v.endIndex {
            let d = v[i] &- UInt8(ascii: "0")
            guard d < 10 else { throw RESPProtocolError("\(what): not a number") }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(Int64(d)) : m.addingReportingOverflow(Int64(d))
            guard !o1, !o2 else { throw RESPProtocolError("\(what): out of range") }
            value = s
            i += 1
        }
        return value
    }

    /// A length or count: -1 (null, RESP2) or 0…`max`.
    private func length(_ text: ByteBuffer, max: Int, _ what: String) throws(RESPProtocolError) -> Int? {
        if text.readableBytes == 1, text.readableBytesView.first == UInt8(ascii: "?") {
            throw RESPProtocolError("streamed \(what) are not supported")
        }
        let n = try integer(text, what)
        if n == -1 { return nil }
        guard n >= 0 else { throw RESPProtocolError("\(what): negative length \(n)") }
        guard n <= Int64(max) else { throw RESPProtocolError("\(what): \(n) over the limit of \(max)") }
        return Int(n)
    }

    /// `length` bytes and the CRLF after them; nil if not all there.
    private func blob(_ b: inout ByteBuffer, length: Int) throws(RESPProtocolError) -> ByteBuffer? {
        guard b.readableBytes >= length + 2 else { return nil }
        let data = b.readSlice(length: length)!
        guard b.readInteger(as: UInt16.self) == 0x0D0A else { throw RESPProtocolError("bulk data not followed by CRLF") }
        return data
    }

    private func parse(_ b: inout ByteBuffer, depth: Int) throws(RESPProtocolError) -> RESPValue? {
        guard let type = b.readInteger(as: UInt8.self) else { return nil }
        guard let text = try line(&b) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return .simpleString(String(buffer: text))
        case UInt8(ascii: "-"):
            return .error(RedisServerError(String(buffer: text)))
        case UInt8(ascii: ":"):
            return .integer(try integer(text, "integer"))
        case UInt8(ascii: "_"):
            guard text.readableBytes == 0 else { throw RESPProtocolError("null with content") }
            return .null
        case UInt8(ascii: "#"):
            switch String(buffer: text) {
            case "t": return .boolean(true)
            case "f": return .boolean(false)
            default: throw RESPProtocolError("boolean is neither t nor f")
            }
        case UInt8(ascii: ","):
            return .double(try double(text))
        case UInt8(ascii: "("):
            let s = String(buffer: text)
            let digits = s.hasPrefix("-") || s.hasPrefix("+") ? s.dropFirst() : Substring(s)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else {
                throw RESPProtocolError("big number: not a number")
            }
            return .bigNumber(s)
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            let what = type == UInt8(ascii: "$") ? "bulk string" : type == UInt8(ascii: "!") ? "bulk error" : "verbatim string"
            guard let n = try length(text, max: limits.maxBulkBytes, what) else {
                guard type == UInt8(ascii: "$") else { throw RESPProtocolError("\(what): length -1") }
                return .null
            }
            guard let data = try blob(&b, length: n) else { return nil }
            if type == UInt8(ascii: "$") { return .bulkString(data) }
            if type == UInt8(ascii: "!") { return .error(RedisServerError(String(buffer: data))) }
            guard n >= 4, data.getInteger(at: data.readerIndex + 3, as: UInt8.self) == UInt8(ascii: ":") else {
                throw RESPProtocolError("verbatim string without its format")
            }
            var d = data
            let format = d.readString(length: 3)!
            d.moveReaderIndex(forwardBy: 1)
            return .verbatim(format: format, text: d)
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            let pairs = type == UInt8(ascii: "%") || type == UInt8(ascii: "|")
            let what = pairs ? "maps" : "aggregates"
            guard let n = try length(text, max: pairs ? limits.maxAggregateCount / 2 : limits.maxAggregateCount, what) else {
                guard type == UInt8(ascii: "*") else { throw RESPProtocolError("\(what): length -1") }
                return .null
            }
            guard depth < limits.maxDepth else { throw RESPProtocolError("nested deeper than \(limits.maxDepth)") }
            // Never reserve more than the bytes present could hold (3 bytes per element at least).
            var items: [RESPValue] = []
            items.reserveCapacity(min(pairs ? 2 * n : n, b.readableBytes / 3))
            for _ in 0..<(pairs ? 2 * n : n) {
                guard let item = try parse(&b, depth: depth + 1) else { return nil }
                items.append(item)
            }
            switch type {
            case UInt8(ascii: "*"): return .array(items)
            case UInt8(ascii: "~"): return .set(items)
            case UInt8(ascii: ">"): return .push(items)
            case UInt8(ascii: "%"):
                return .map(stride(from: 0, to: items.count, by: 2).map { RESPPair(items[$0], items[$0 + 1]) })
            default:
                // An attribute describes the value after it, which is the reply (a level deeper,
                // so a run of attributes is bounded like nesting).
                return try parse(&b, depth: depth + 1)
            }
        default:
            throw RESPProtocolError("unknown type byte 0x\(String(type, radix: 16))")
        }
    }

    /// `inf`, `-inf`, `nan`, or a decimal with optional fraction and exponent (no hex, no spaces).
    private func double(_ text: ByteBuffer) throws(RESPProtocolError) -> Double {
        let s = String(buffer: text)
        switch s {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        default: break
        }
        let allowed = s.utf8.allSatisfy { ($0 &- UInt8(ascii: "0") < 10) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+")
            || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        guard allowed, let d = Double(s) else { throw RESPProtocolError("double: not a number") }
        return d
    }
}
