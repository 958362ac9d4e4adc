import Foundation
import NIOCore
import NIOHTTP1
@testable import RelayServer
@testable import RelayWebSocket
import Testing

@Suite("Upgrade request parsing (query decoding on bytes)")
struct WebSocketRequestTests {
    func request(_ uri: String) -> WebSocketRequest {
        WebSocketRequest(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: uri), remoteAddress: nil)
    }

    @Test("Path, query parameters, plus and percent escapes, first value wins, malformed escapes kept")
    func parsing() {
        let r = request("/yjs/post%3A1?token=a.b-c_d&auth=x%2By+z&token=second&empty=&flag&bad=%zz%4&utf=caf%C3%A9")
        #expect(r.path == "/yjs/post%3A1")
        #expect(r.query["token"] == "a.b-c_d")
        #expect(r.query["auth"] == "x+y z")
        #expect(r.query["empty"] == "" && r.query["flag"] == "")
        #expect(r.query["bad"] == "%zz%4")
        #expect(r.query["utf"] == "café")
        #expect(request("/ws").query.isEmpty && request("/ws").path == "/ws")
    }

    @Test("Agrees with Foundation's percent decoding on random valid escapes")
    func agreesWithFoundation() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("abcXYZ019-._~!$'()*,;:@/ é😀".unicodeScalars)
        for _ in 0..<300 {
            let raw = String(String.UnicodeScalarView((0..<Int.random(in: 0...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
            let encoded = raw.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            #expect(request("/ws?v=" + encoded).query["v"] == encoded.removingPercentEncoding, "\(encoded)")
            #expect(encoded.removingPercentEncoding == raw)
        }
    }
}
