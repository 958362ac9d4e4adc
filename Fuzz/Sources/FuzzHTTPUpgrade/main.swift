// The WebSocket upgrade request as relayd reads it: the input is an HTTP/1.1 request head, parsed
// twice, by NIO's HTTPRequestDecoder (in an EmbeddedChannel, as relayd's pipeline does) and, to
// reach bytes NIO would refuse, directly (request line and `Name: value` lines); each head becomes
// a `WebSocketRequest` (path, percent-decoded query, subprotocols, the client address behind
// trusted proxies). Oracles:
// - the path and every query parameter (first value wins) equal an independent byte-level
//   `application/x-www-form-urlencoded` parser written here; `token` is taken from a parameter
//   whose name is exactly those bytes;
// - the client address is the peer when the peer is not a trusted proxy or no forwarding header is
//   present, and is always an IP address in canonical form;
// - the `--trusted-proxy` parser accepts the list written from any address it parsed;
// - `WebSocketHandshake.parse` (relayd's handshake sniffer) takes a head only if NIO's parser reads
//   the same request from the same bytes (method, target, version, every header in order, the
//   one key), its head length ends at the blank line, and "incomplete" means no blank line yet.
import NIOCore
import NIOEmbedded
import NIOHTTP1
import RelayWebSocket

/// `precondition` that keeps its message in release builds (libFuzzer prints it with the crash).
@inline(__always) func ensure(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}

let proxies = try! TrustedProxies(parsing: "127.0.0.1, 10.0.0.0/8, ::1, fd00::/8")
// Peers: a trusted proxy, a client, the IPv6 loopback (a trusted proxy). Made per input: a global
// SocketAddress keeps its storage behind enum spare bits, which LeakSanitizer reports as leaked.
let peerIPs = ["10.1.2.3", "192.0.2.7", "::1"]

func formDecode(_ s: ArraySlice<UInt8>) -> String {
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    var out: [UInt8] = [], i = s.startIndex
    while i < s.endIndex {
        if s[i] == 0x2B { out.append(0x20); i += 1 }
        else if s[i] == 0x25, i + 2 < s.endIndex, let h = hex(s[i + 1]), let l = hex(s[i + 2]) { out.append(h << 4 | l); i += 3 }
        else { out.append(s[i]); i += 1 }
    }
    return String(decoding: out, as: UTF8.self)
}

/// The query as ordered (name bytes, name, value) pairs.
func referenceQuery(_ uri: [UInt8]) -> [([UInt8], String, String)] {
    guard let q = uri.firstIndex(of: 0x3F) else { return [] }
    return uri[(q + 1)...].split(separator: 0x26).map { pair in
        let eq = pair.firstIndex(of: 0x3D) ?? pair.endIndex
        let rawName = pair[..<eq]
        let value = eq < pair.endIndex ? formDecode(pair[(eq + 1)...]) : ""
        return (formDecodeBytes(rawName), formDecode(rawName), value)
    }
}

func formDecodeBytes(_ s: ArraySlice<UInt8>) -> [UInt8] {
    // The name's decoded bytes (before any UTF-8 repair).
    var out: [UInt8] = [], i = s.startIndex
    let h = { (c: UInt8) -> UInt8? in
        switch c { case 0x30...0x39: c - 0x30; case 0x41...0x46: c - 0x41 + 10; case 0x61...0x66: c - 0x61 + 10; default: nil }
    }
    while i < s.endIndex {
        if s[i] == 0x2B { out.append(0x20); i += 1 }
        else if s[i] == 0x25, i + 2 < s.endIndex, let a = h(s[i + 1]), let b = h(s[i + 2]) { out.append(a << 4 | b); i += 3 }
        else { out.append(s[i]); i += 1 }
    }
    return out
}

/// An IP address in canonical text form: forwarded by a trusted proxy, it reads back unchanged
/// (`clientAddress` returns the canonical form of a hop, or the peer for a hop that is no address).
func isCanonicalIP(_ s: String) -> Bool {
    proxies.clientAddress(peer: "10.1.2.3", forwarded: [], xForwardedFor: [s]) == s
}

func check(_ head: HTTPRequestHead, peer: SocketAddress) {
    let request = WebSocketRequest(head: head, remoteAddress: peer, trustedProxies: proxies)
    let uri = Array(head.uri.utf8)
    let path = uri.firstIndex(of: 0x3F).map { Array(uri[..<$0]) } ?? uri
    ensure(Array(request.path.utf8) == path, "path differs from the bytes before '?'")
    let pairs = referenceQuery(uri)
    var seen: Set<String> = []
    for (_, name, value) in pairs where !seen.contains(name) {
        seen.insert(name)
        ensure(request.query[name] == value, "query parameter \(name): \(request.query[name] ?? "nil"), expected \(value)")
    }
    ensure(request.query.count == seen.count, "query has parameters the reference does not")
    let token = pairs.first { $0.0 == Array("token".utf8) }?.2
    ensure(request.query["token"] == token, "token taken from another parameter than `token`")
    _ = request.offeredSubprotocols

    let peerIP = peer.ipAddress!
    let forwarded = head.headers["Forwarded"], xff = head.headers["X-Forwarded-For"]
    if !proxies.contains(peerIP) || (forwarded.isEmpty && xff.isEmpty) {
        ensure(request.remoteIP == peerIP, "client address taken from headers of an untrusted peer")
    }
    ensure(isCanonicalIP(request.remoteIP), "client address \(request.remoteIP) is not a canonical IP address")
}

/// Request line and header lines, split on LF (CR trimmed), without HTTP's syntax rules.
func directHead(_ bytes: [UInt8]) -> HTTPRequestHead {
    var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { $0.last == 0x0D ? $0.dropLast() : $0 }
    let first = lines.isEmpty ? [] : lines.removeFirst()
    let parts = first.split(separator: 0x20, maxSplits: 2, omittingEmptySubsequences: false)
    var headers = HTTPHeaders()
    for line in lines {
        if line.isEmpty { break }
        let colon = line.firstIndex(of: 0x3A) ?? line.endIndex
        var value = colon < line.endIndex ? line[(colon + 1)...] : []
        while value.first == 0x20 { value = value.dropFirst() }
        guard line[..<colon].allSatisfy({ $0 < 0x80 }) else { continue }  // HTTPHeaders requires ASCII names
        headers.add(name: String(decoding: line[..<colon], as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }
    return HTTPRequestHead(version: .http1_1, method: .GET,
                           uri: parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : "", headers: headers)
}

/// The first request head NIO's HTTPRequestDecoder reads from `bytes`, if any.
func nioHead(_ bytes: ArraySlice<UInt8>) -> HTTPRequestHead? {
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
    defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
    _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
        if case .head(let head) = part { return head }
    }
    return nil
}

func checkHandshake(_ bytes: [UInt8]) {
    let limit = 1_024
    switch bytes.withUnsafeBytes({ WebSocketHandshake.parse($0, maxHeadBytes: limit) }) {
    case .webSocket(let head, let key, let length):
        ensure(length >= 4 && length <= bytes.count && Array(bytes[(length - 4)..<length]) == [13, 10, 13, 10],
               "head length \(length) does not end at a blank line")
        guard let nio = nioHead(bytes[..<length]) else { fatalError("taken as a handshake, but NIO's parser reads no head") }
        ensure(nio.method == .GET && head.method == .GET, "method")
        ensure(nio.uri == head.uri, "target \(head.uri) vs NIO's \(nio.uri)")
        ensure(nio.version == head.version, "version")
        let mine = head.headers.map { "\($0.name): \($0.value)" }, theirs = nio.headers.map { "\($0.name): \($0.value)" }
        ensure(mine == theirs, "headers \(mine) vs NIO's \(theirs)")
        let nioKey = nio.headers["Sec-WebSocket-Key"].map { String($0.reversed().drop { $0 == " " || $0 == "\t" }.reversed()) }
        ensure(nioKey == [key], "key \(key) vs NIO's \(nioKey)")
    case .incomplete:
        let n = min(bytes.count, limit + 4)
        ensure(bytes.count <= limit && !(0..<max(0, n - 3)).contains { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 },
               "incomplete with a blank line, or past the limit")
    case .refused, .other:
        break
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    checkHandshake(bytes)
    let peer = try! SocketAddress(ipAddress: peerIPs[bytes.count % peerIPs.count], port: 1234)
    check(directHead(bytes), peer: peer)

    // NIO's parser (an EmbeddedChannel per input, the costly part) on every third input.
    guard bytes.count % 3 == 0 else { return trustedProxyList(bytes) }
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
    _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
        if case .head(let head) = part { check(head, peer: peer) }
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    return trustedProxyList(bytes)
}

/// The --trusted-proxy parser on the first line of the input.
func trustedProxyList(_ bytes: [UInt8]) -> CInt {
    let line = String(decoding: bytes.prefix { $0 != 0x0A }, as: UTF8.self)
    if let list = try? TrustedProxies(parsing: line) {
        for entry in line.split(whereSeparator: { $0 == "," || $0 == " " }) {
            let address = String(entry.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)[0])
            ensure(list.contains(address), "\(line) does not contain its own entry \(address)")
        }
    }
    return 0
}
