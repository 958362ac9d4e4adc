import RelayWebSocket
import NIOCore
import NIOHTTP1
import Testing

@Suite("Trusted proxies (--trusted-proxy): forwarded client addresses only from trusted peers")
struct TrustedProxiesTests {
    let proxies = try! TrustedProxies(parsing: "127.0.0.1, 10.0.0.0/8,::1 fd00::/8")

    @Test("Addresses and ranges, IPv4 and IPv6, IPv4-mapped IPv6 counts as IPv4")
    func membership() {
        #expect(proxies.contains("127.0.0.1"))
        #expect(!proxies.contains("127.0.0.2"))
        #expect(proxies.contains("10.255.3.4"))
        #expect(!proxies.contains("11.0.0.1"))
        #expect(proxies.contains("::1"))
        #expect(proxies.contains("fd12:3456::9"))
        #expect(!proxies.contains("fe80::1"))
        #expect(proxies.contains("::ffff:127.0.0.1"))
        #expect(proxies.contains("::ffff:10.1.2.3"))
        #expect(!proxies.contains("unknown"))
        #expect(!TrustedProxies.none.contains("127.0.0.1"))
        let odd = try! TrustedProxies(parsing: "192.168.1.128/25,0.0.0.0/0")
        #expect(odd.contains("8.8.8.8"), "/0 is everything")
        let narrow = try! TrustedProxies(parsing: "192.168.1.128/25")
        #expect(narrow.contains("192.168.1.200") && !narrow.contains("192.168.1.127"))
    }

    @Test("Bad entries are refused with the entry named")
    func parsingErrors() {
        for bad in ["localhost", "10.0.0.0/33", "::1/129", "1.2.3", "10.0.0.0/", "/8", "1.2.3.4/x"] {
            #expect(throws: TrustedProxyError.self, "\(bad)") { try TrustedProxies(parsing: bad) }
        }
        do { _ = try TrustedProxies(parsing: "127.0.0.1,nope") } catch {
            #expect(error.description.contains("\"nope\""))
        }
        #expect((try? TrustedProxies(parsing: ""))?.isEmpty == true)
    }

    @Test("An untrusted peer is the client whatever its headers say")
    func untrustedPeerIgnoresHeaders() {
        #expect(proxies.clientAddress(peer: "203.0.113.9", forwarded: ["for=198.51.100.1"], xForwardedFor: ["198.51.100.2"]) == "203.0.113.9")
        #expect(TrustedProxies.none.clientAddress(peer: "127.0.0.1", forwarded: [], xForwardedFor: ["1.2.3.4"]) == "127.0.0.1")
    }

    @Test("X-Forwarded-For: the rightmost address that is not a trusted proxy")
    func xForwardedFor() {
        // A client forging the header: the proxy appends the real address, which wins.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: [], xForwardedFor: ["6.6.6.6, 198.51.100.7"]) == "198.51.100.7")
        // Two proxies of ours in a row.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: [], xForwardedFor: ["198.51.100.7, 10.1.1.1"]) == "198.51.100.7")
        // Several header lines are one list, in order.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: [], xForwardedFor: ["198.51.100.7", "10.1.1.1"]) == "198.51.100.7")
        // Only trusted hops: the leftmost.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: [], xForwardedFor: ["10.0.0.5"]) == "10.0.0.5")
        // No header: the proxy itself.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: [], xForwardedFor: []) == "127.0.0.1")
        // Garbage ends the walk at the last trusted hop, never at the garbage.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: [], xForwardedFor: ["198.51.100.7, bogus"]) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: [], xForwardedFor: ["bogus, 10.2.2.2"]) == "10.2.2.2")
        // Ports and brackets are stripped; IPv6 is canonicalised.
        #expect(proxies.clientAddress(peer: "::1", forwarded: [], xForwardedFor: ["198.51.100.7:5123"]) == "198.51.100.7")
        #expect(proxies.clientAddress(peer: "::1", forwarded: [], xForwardedFor: ["[2001:DB8:0::1]:443"]) == "2001:db8::1")
        #expect(proxies.clientAddress(peer: "::1", forwarded: [], xForwardedFor: ["2001:db8::2"]) == "2001:db8::2")
    }

    @Test("Forwarded (RFC 7239) wins over X-Forwarded-For; quoted, bracketed and unknown hops")
    func forwarded() {
        let f = ["for=198.51.100.1;proto=https, for=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1"]
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: f, xForwardedFor: ["6.6.6.6"]) == "2001:db8:cafe::17")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: ["For=192.0.2.60;proto=http"], xForwardedFor: []) == "192.0.2.60")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: ["for=unknown"], xForwardedFor: ["1.2.3.4"]) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: ["proto=https"], xForwardedFor: []) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwarded: ["for=192.0.2.1", "for=10.9.9.9"], xForwardedFor: []) == "192.0.2.1")
    }

    @Test("The upgrade request carries the resolved address")
    func webSocketRequest() throws {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws?token=x")
        head.headers.add(name: "X-Forwarded-For", value: "6.6.6.6, 198.51.100.7")
        let peer = try SocketAddress(ipAddress: "127.0.0.1", port: 4000)
        #expect(WebSocketRequest(head: head, remoteAddress: peer, trustedProxies: proxies).remoteIP == "198.51.100.7")
        #expect(WebSocketRequest(head: head, remoteAddress: peer).remoteIP == "127.0.0.1")
        let stranger = try SocketAddress(ipAddress: "203.0.113.4", port: 4000)
        #expect(WebSocketRequest(head: head, remoteAddress: stranger, trustedProxies: proxies).remoteIP == "203.0.113.4")
    }
}
