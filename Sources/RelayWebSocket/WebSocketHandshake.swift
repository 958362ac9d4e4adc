import NIOCore
import NIOHTTP1

/// Recognizes a plain WebSocket opening handshake (RFC 6455 §4.2.1) in the first bytes of a
/// connection, so the server can answer it without building an HTTP/1 pipeline first.
///
/// Deliberately narrow: only a request in the exact shape browsers and WebSocket libraries send
/// (`GET <origin-form> HTTP/1.1`, CRLF line ends, token header names, no folded lines, no body
/// (no `Transfer-Encoding`, at most one `Content-Length: 0`), one `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, `Upgrade: websocket`,
/// `Connection: … upgrade …`) is `.webSocket`; such a request without a usable key or version
/// is `.refused`. Anything else is `.other`, and the caller hands
/// the bytes, untouched, to the full HTTP/1 parser, which answers it exactly as before (a
/// malformed request gets its 400 there). So this parser never has to decide what is an error.
public enum WebSocketHandshake {
    public enum Outcome: Equatable {
        /// No complete request head yet (and still under the limit).
        case incomplete
        /// Not a handshake this parser takes: give the bytes to the HTTP/1 parser.
        case other
        /// A WebSocket handshake: the request head, the client's key, and the length of the
        /// head in bytes (what follows it belongs to the WebSocket).
        case webSocket(head: HTTPRequestHead, key: String, headLength: Int)
        /// A WebSocket handshake that cannot succeed: no or several `Sec-WebSocket-Key`s (400),
        /// a version other than 13 (426, answered with `Sec-WebSocket-Version: 13`, RFC 6455 §4.4).
        case refused(status: Int)
    }

    /// The response to a refused handshake (the connection is closed after it).
    public static func refusal(status: Int) -> String {
        let line = status == 426 ? "426 Upgrade Required" : "400 Bad Request"
        let version = status == 426 ? "Sec-WebSocket-Version: 13\r\n" : ""
        return "HTTP/1.1 \(line)\r\n\(version)Content-Length: 0\r\nConnection: close\r\n\r\n"
    }

    /// Parses the start of a connection. `maxHeadBytes` bounds how much is buffered while
    /// waiting for the end of the head (beyond it: `.other`). `scanned`: how many of these bytes
    /// an earlier call already saw without finding the end of the head (so a head arriving a
    /// byte at a time is searched once, not once per byte).
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int, scanned: Int = 0) -> Outcome {
        let get: [UInt8] = Array("GET /".utf8)
        for i in 0..<min(bytes.count, get.count) where bytes[i] != get[i] { return .other }
        guard let end = headEnd(bytes, limit: maxHeadBytes, from: max(0, scanned - 3)) else {
            return bytes.count > maxHeadBytes ? .other : .incomplete
        }
        var p = 4  // after "GET "
        // Request target: origin-form, visible ASCII.
        let targetStart = p
        while p < end, bytes[p] != 0x20 {
            guard bytes[p] > 0x20, bytes[p] < 0x7F else { return .other }
            p += 1
        }
        let target = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[targetStart..<p]), as: UTF8.self)
        let version: [UInt8] = Array(" HTTP/1.1\r\n".utf8)
        guard end - p >= version.count else { return .other }
        for i in 0..<version.count where bytes[p + i] != version[i] { return .other }
        p += version.count

        var headers = HTTPHeaders()
        var key: String?, keys = 0, versionOK = false, versions = 0, upgrade = false, connection = false, emptyLength = false
        while p < end {
            // name ":" OWS value OWS CRLF
            let nameStart = p
            while p < end, isTokenChar(bytes[p]) { p += 1 }
            guard p > nameStart, p < end, bytes[p] == UInt8(ascii: ":") else { return .other }
            let name = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<p])
            p += 1
            while p < end, bytes[p] == 0x20 || bytes[p] == 0x09 { p += 1 }
            let valueStart = p
            while p < end, bytes[p] != 0x0D {
                let c = bytes[p]
                guard c == 0x09 || (c >= 0x20 && c != 0x7F) else { return .other }
                p += 1
            }
            guard p + 1 < bytes.count, bytes[p] == 0x0D, bytes[p + 1] == 0x0A else { return .other }
            // Kept as NIO's parser keeps it (trailing whitespace included), so a request reads the
            // same on both paths; the checks below trim.
            let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<p])
            var valueEnd = p
            while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            let trimmed = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd])
            p += 2
            // A handshake has no body; `Content-Length: 0` is what NIO's (and other) clients send.
            if equalsLowercased(name, "transfer-encoding") { return .other }
            if equalsLowercased(name, "content-length") {
                guard trimmed.count == 1, trimmed[0] == UInt8(ascii: "0"), !emptyLength else { return .other }
                emptyLength = true
            }
            let valueText = String(decoding: value, as: UTF8.self)
            if equalsLowercased(name, "sec-websocket-key") {
                keys += 1
                key = String(decoding: trimmed, as: UTF8.self)
            } else if equalsLowercased(name, "sec-websocket-version") {
                versions += 1
                versionOK = trimmed.count == 2 && trimmed[0] == UInt8(ascii: "1") && trimmed[1] == UInt8(ascii: "3")
            } else if equalsLowercased(name, "upgrade") {
                upgrade = upgrade || hasToken(trimmed, "websocket")
            } else if equalsLowercased(name, "connection") {
                connection = connection || hasToken(trimmed, "upgrade")
            }
            headers.add(name: String(decoding: name, as: UTF8.self), value: valueText)
        }
        guard upgrade, connection else { return .other }
        guard versions == 1, versionOK else { return .refused(status: 426) }
        guard keys == 1, let key, !key.isEmpty else { return .refused(status: 400) }
        return .webSocket(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers),
                          key: key, headLength: end + 2)
    }

    /// Appended to the client's key before hashing: `Sec-WebSocket-Accept` is
    /// base64(SHA-1(key + guid)) (RFC 6455 §4.2.2).
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Index of the CR of the blank line's CRLF that ends the head ("…\r\n\r\n"), the head's
    /// last header line included: the head is `bytes[0 ..< end + 2]`.
    static func headEnd(_ bytes: UnsafeRawBufferPointer, limit: Int, from start: Int = 0) -> Int? {
        let n = min(bytes.count, limit + 4)
        guard n >= 4 else { return nil }
        var i = start
        while i + 3 < n {
            if bytes[i] == 0x0D, bytes[i + 1] == 0x0A, bytes[i + 2] == 0x0D, bytes[i + 3] == 0x0A { return i + 2 }
            i += 1
        }
        return nil
    }

    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }

    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        guard bytes.count == lower.utf8CodeUnitCount else { return false }
        let l = lower.utf8Start
        for i in 0..<bytes.count {
            var c = bytes[i]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != l[i] { return false }
        }
        return true
    }

    /// Whether a comma-separated header value lists `token` (case-insensitive).
    static func hasToken(_ value: UnsafeRawBufferPointer, _ token: StaticString) -> Bool {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count, value[end] != UInt8(ascii: ",") { end += 1 }
            var a = start, b = end
            while a < b, value[a] == 0x20 || value[a] == 0x09 { a += 1 }
            while b > a, value[b - 1] == 0x20 || value[b - 1] == 0x09 { b -= 1 }
            if equalsLowercased(UnsafeRawBufferPointer(rebasing: value[a..<b]), token) { return true }
            start = end + 1
        }
        return false
    }
}
