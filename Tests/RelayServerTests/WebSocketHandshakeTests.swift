import NIOHTTP1
import RelayCrypto
@testable import RelayWebSocket
import Testing

/// The sniffer's parser on bytes: what it takes as a plain handshake, what it leaves to the HTTP/1
/// parser, and that it never claims a request it has not fully seen.
@Suite("WebSocket handshake recognition (HandshakeSniffer's parser)")
struct WebSocketHandshakeTests {
    static let plain = "GET /ws?token=abc HTTP/1.1\r\nHost: relay.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

    func parse(_ text: String, max: Int = 16_384) -> WebSocketHandshake.Outcome {
        parse(Array(text.utf8), max: max)
    }

    func parse(_ bytes: [UInt8], max: Int = 16_384) -> WebSocketHandshake.Outcome {
        bytes.withUnsafeBytes { WebSocketHandshake.parse($0, maxHeadBytes: max) }
    }

    @Test func plainHandshakeIsTakenWithItsHeadAndLength() throws {
        guard case .webSocket(let head, let key, let length) = parse(Self.plain + "\u{81}\u{80}") else {
            Issue.record("not recognized")
            return
        }
        #expect(key == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(length == Self.plain.utf8.count, "bytes behind the head are not part of it")
        #expect(head.uri == "/ws?token=abc")
        #expect(head.method == .GET && head.version == .http1_1)
        #expect(head.headers["host"] == ["relay.example"])
        #expect(head.headers.count == 5, "every header is kept, in order: \(head.headers)")
        // RFC 6455 §1.3's example: this key's accept value.
        #expect(Base64.encode(SHA1.hash(Array((key + WebSocketHandshake.guid).utf8))) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func everyPrefixIsIncompleteNeverAClaim() {
        let bytes = Array(Self.plain.utf8)
        for n in 0..<bytes.count {
            #expect(parse(Array(bytes[..<n])) == .incomplete, "prefix of \(n) bytes")
        }
    }

    @Test func resumingTheSearchGivesTheSameAnswerAtEverySplit() {
        // The sniffer passes how many bytes an earlier read held (the head was not complete in
        // them); the blank line may straddle that point.
        let bytes = Array((Self.plain + "\u{81}\u{80}").utf8)
        let whole = parse(bytes)
        for split in 0..<Self.plain.utf8.count {
            let resumed = bytes.withUnsafeBytes { WebSocketHandshake.parse($0, maxHeadBytes: 16_384, scanned: split) }
            #expect(resumed == whole, "searched \(split) bytes before")
        }
    }

    @Test func anEmptyBodyLengthIsTaken() {
        // What NIO's WebSocket client (relayctl bench's) sends.
        let text = "GET /ws?token=t HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Length: 0\r\nConnection: upgrade\r\n"
            + "Upgrade: websocket\r\nSec-WebSocket-Key: bqr0PazCu4epr93CX835XA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        guard case .webSocket(_, let key, let length) = parse(text) else {
            Issue.record("not recognized")
            return
        }
        #expect(key == "bqr0PazCu4epr93CX835XA==" && length == text.utf8.count)
    }

    @Test func tokenListsCaseAndWhitespaceAreTolerated() {
        let text = "GET /yjs/room HTTP/1.1\r\nconnection: keep-alive, Upgrade\r\nUPGRADE:\tWebSocket \r\n"
            + "sec-websocket-key:   k \r\nSec-WebSocket-Version: 13 \r\nSec-WebSocket-Protocol: relay, token.x\r\n\r\n"
        guard case .webSocket(let head, let key, _) = parse(text) else {
            Issue.record("not recognized")
            return
        }
        #expect(key == "k")
        #expect(head.headers["upgrade"] == ["WebSocket "], "values kept as NIO's parser keeps them (leading OWS dropped)")
        #expect(head.headers["sec-websocket-key"] == ["k "] && key == "k", "the accept value is computed from the trimmed key")
        #expect(head.headers["Sec-WebSocket-Protocol"] == ["relay, token.x"])
    }

    @Test func anythingUnusualGoesToTheHTTPParser() {
        let unusual: [String: String] = [
            "POST": "POST /publish HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            "lowercase method": Self.plain.replacingOccurrences(of: "GET ", with: "get "),
            "HTTP/1.0": Self.plain.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0"),
            "absolute form": Self.plain.replacingOccurrences(of: "GET /ws", with: "GET http://x/ws"),
            "folded line": Self.plain.replacingOccurrences(of: "Host: relay.example\r\n", with: "Host: relay.example\r\n  more\r\n"),
            "bare LF": Self.plain.replacingOccurrences(of: "Host: relay.example\r\n", with: "Host: relay.example\n"),
            "space before colon": Self.plain.replacingOccurrences(of: "Host:", with: "Host :"),
            "control byte in a value": Self.plain.replacingOccurrences(of: "relay.example", with: "relay\u{1}example"),
            "a body": Self.plain.replacingOccurrences(of: "Host:", with: "Content-Length: 5\r\nHost:"),
            "two lengths": Self.plain.replacingOccurrences(of: "Host:", with: "Content-Length: 0\r\nContent-Length: 0\r\nHost:"),
            "chunked": Self.plain.replacingOccurrences(of: "Host:", with: "Transfer-Encoding: chunked\r\nHost:"),
            "no Upgrade": Self.plain.replacingOccurrences(of: "Upgrade: websocket\r\n", with: ""),
            "other upgrade": Self.plain.replacingOccurrences(of: "Upgrade: websocket", with: "Upgrade: h2c"),
            "no Connection token": Self.plain.replacingOccurrences(of: "Connection: Upgrade", with: "Connection: keep-alive"),
            "space in target": Self.plain.replacingOccurrences(of: "/ws?token=abc", with: "/ws?token=a bc"),
        ]
        for (name, text) in unusual {
            #expect(parse(text) == .other, "\(name)")
        }
        #expect(parse("PUT") == .other, "decided on the first differing byte, before the head is complete")
    }

    @Test func handshakesThatCannotSucceedAreRefused() {
        let noKey = Self.plain.replacingOccurrences(of: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", with: "")
        let twoKeys = Self.plain.replacingOccurrences(of: "Host:", with: "Sec-WebSocket-Key: a\r\nHost:")
        let emptyKey = Self.plain.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "")
        let version8 = Self.plain.replacingOccurrences(of: "Version: 13", with: "Version: 8")
        let twoVersions = Self.plain.replacingOccurrences(of: "Host:", with: "Sec-WebSocket-Version: 13\r\nHost:")
        #expect(parse(noKey) == .refused(status: 400))
        #expect(parse(twoKeys) == .refused(status: 400))
        #expect(parse(emptyKey) == .refused(status: 400))
        #expect(parse(version8) == .refused(status: 426))
        #expect(parse(twoVersions) == .refused(status: 426))
        #expect(WebSocketHandshake.refusal(status: 426).contains("Sec-WebSocket-Version: 13\r\n"))
    }

    @Test func theHeadLimitBoundsBuffering() {
        let long = "GET /ws HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 2_000)
        #expect(parse(long, max: 4_096) == .incomplete)
        #expect(parse(long, max: 1_000) == .other, "past the limit the HTTP/1 parser answers (400)")
        #expect(parse(Self.plain, max: 64) == .other, "a complete head longer than the limit too")
    }
}
