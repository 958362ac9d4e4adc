import RelayProtocol
import RelayJSON
import Testing
@testable import RelayCore

@Suite struct JSONTests {
    @Test(arguments: [
        "{}", "[]", "0", "-1.5e+3", "\"a\\u00e9\\n\"", "{\"v\":1,\"p\":\"AAE=\"}", " [1, {\"a\": [true, false, null]}] ",
        "\"é€😀\"",
    ])
    func acceptsValidJSON(_ s: String) {
        #expect(JSON.isValid(Array(s.utf8)))
    }

    @Test(arguments: [
        "", "{", "{\"a\"}", "[1,]", "01", "1.", "tru", "\"\u{01}\"", "{\"a\":1}x", "\"\\x\"", "[1 2]", "{'a':1}",
        "NaN", "\"\\ud83d", "{\"a\":1,}",
    ])
    func rejectsInvalidJSON(_ s: String) {
        #expect(!JSON.isValid(Array(s.utf8)))
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        #expect(!JSON.isValid([0x22, 0xC0, 0x80, 0x22]))       // overlong
        #expect(!JSON.isValid([0x22, 0xED, 0xA0, 0x80, 0x22])) // surrogate
        #expect(!JSON.isValid(Array(String(repeating: "[", count: 100).utf8) + Array(String(repeating: "]", count: 100).utf8)))
        #expect(JSON.isValid(Array(String(repeating: "[", count: 10).utf8) + Array(String(repeating: "]", count: 10).utf8)))
    }

    @Test func escapesStrings() {
        var out: [UInt8] = []
        JSON.appendString("a\"b\\c\nd\u{01}é", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "\"a\\\"b\\\\c\\nd\\u0001é\"")
    }
}

@Suite struct ClientMessageTests {
    @Test func publishKeepsDataBytesVerbatim() {
        let text = "{ \"type\" : \"message\", \"channel\":\"events\",\"data\": {\"v\":1, \"p\" : \"x\\/y\"} ,\"event\":\"post.updated\"}"
        let msg = ClientMessage.parse(Array(text.utf8))
        #expect(msg == .publish(channel: "events", event: "post.updated",
                                data: Array("{\"v\":1, \"p\" : \"x\\/y\"}".utf8), idempotencyKey: nil))
    }

    @Test func parsesEveryClientFrame() {
        #expect(ClientMessage.parse(Array("{\"type\":\"subscribe\",\"channels\":[\"a\",\"site:x:b\"]}".utf8))
                == .subscribe(channels: ["a", "site:x:b"], positions: [:]))
        #expect(ClientMessage.parse(Array("{\"type\":\"subscribe\",\"channels\":[\"a\"],\"positions\":{\"a\":{\"offset\":7,\"epoch\":\"ab\"}}}".utf8))
                == .subscribe(channels: ["a"], positions: ["a": StreamPosition(offset: 7, epoch: "ab")]))
        #expect(ClientMessage.parse(Array("{\"type\":\"unsubscribe\",\"channels\":[\"a\"]}".utf8)) == .unsubscribe(channels: ["a"]))
        #expect(ClientMessage.parse(Array("{\"type\":\"presence\",\"channel\":\"c\",\"state\":{\"x\":[1]}}".utf8))
                == .presence(channel: "c", state: Array("{\"x\":[1]}".utf8)))
        #expect(ClientMessage.parse(Array("{\"type\":\"presence\",\"channel\":\"c\",\"state\":null}".utf8)) == .presence(channel: "c", state: nil))
        #expect(ClientMessage.parse(Array("{\"type\":\"auth\",\"token\":\"t.k.n\"}".utf8)) == .auth(token: "t.k.n"))
        #expect(ClientMessage.parse(Array("{\"type\":\"pong\"}".utf8)) == .pong)
        #expect(ClientMessage.parse(Array("{\"type\":\"message\",\"channel\":\"c\",\"event\":\"e\",\"data\":1,\"idempotency_key\":\"k\"}".utf8))
                == .publish(channel: "c", event: "e", data: Array("1".utf8), idempotencyKey: "k"))
    }

    @Test func rejectsMalformedFrames() {
        for s in ["", "[]", "{\"type\":\"subscribe\"}", "{\"type\":\"nope\"}", "{\"type\":\"message\",\"channel\":\"c\",\"event\":\"e\"}",
                  "{\"type\":\"message\",\"channel\":\"c\",\"event\":\"e\",\"data\":{}} trailing", "{\"type\":\"subscribe\",\"channels\":[1]}"] {
            #expect(ClientMessage.parse(Array(s.utf8)) == nil, "\(s)")
        }
    }

    @Test func parsesPublishBody() {
        let body = PublishBody.parse(Array("{\"channel\":\"events\",\"event\":\"encrypted\",\"data\":{\"v\":1,\"p\":\"QUJD\"}}".utf8))
        #expect(body == PublishBody(channel: "events", event: "encrypted", data: Array("{\"v\":1,\"p\":\"QUJD\"}".utf8)))
        #expect(PublishBody.parse(Array("{}".utf8)) == nil)
    }
}

@Suite struct EncodingTests {
    let name = ChannelName(full: "site:abc:events", bare: "events")

    @Test func webSocketMessageFrame() {
        let pub = Publication(spelledChannel: "events", channel: name, event: "post.updated",
                              payload: .json(Array("{\"v\":1,\"p\":\"x\"}".utf8)),
                              position: StreamPosition(offset: 42, epoch: "e1"), time: 0)
        #expect(pub.webSocketFrame.kind == .text)
        #expect(pub.webSocketFrame.text ==
                "{\"type\":\"message\",\"channel\":\"events\",\"event\":\"post.updated\",\"data\":{\"v\":1,\"p\":\"x\"},\"offset\":42,\"epoch\":\"e1\"}")
    }

    @Test func sseFramings() {
        let pub = Publication(spelledChannel: "events", channel: name, event: "post.updated",
                              payload: .json(Array("{\"a\":\n1}".utf8)), position: StreamPosition(offset: 3, epoch: "ep"), time: 0)
        #expect(pub.frame(for: .sseV2)?.text ==
                "id: 3:ep:site:abc:events\ndata: {\"event\":\"post.updated\",\"channel\":\"events\",\"data\":{\"a\":\ndata: 1}}\n\n")
        #expect(pub.frame(for: .sseLegacy)?.text == "id: 3:ep:site:abc:events\nevent: post.updated\ndata: {\"a\":\ndata: 1}\n\n")
        #expect(SSEEventID.parse("3:ep:site:abc:events")! == ("site:abc:events", StreamPosition(offset: 3, epoch: "ep")))
        #expect(SSEEventID.parse("x:ep:c") == nil)
    }

    @Test func binaryFrameLayout() {
        let pub = Publication(spelledChannel: "yjs:a", channel: name, event: "", payload: .binary([1, 2, 3]),
                              position: StreamPosition(offset: 1, epoch: "e"), time: 0)
        #expect(pub.webSocketFrame.kind == .binary)
        #expect(pub.webSocketFrame.bytes == [0, 5] + Array("yjs:a".utf8) + [1, 2, 3])
        #expect(pub.frame(for: .sseV2) == nil)
        let parsed = Wire.parseBinaryFrame(pub.webSocketFrame.bytes)
        #expect(parsed?.channel == "yjs:a")
        #expect(parsed.map { Array($0.payload) } == [1, 2, 3])
        #expect(Wire.parseBinaryFrame([0, 9, 65]) == nil)
        #expect(Wire.parseBinaryFrame([0]) == nil)
    }

    @Test func controlFrames() {
        #expect(Wire.subscribed(channels: ["a"]).text == "{\"type\":\"subscribed\",\"channels\":[\"a\"]}")
        #expect(Wire.subscribed(channels: ["a"], position: StreamPosition(offset: 2, epoch: "x"), recovered: false).text ==
                "{\"type\":\"subscribed\",\"channels\":[\"a\"],\"offset\":2,\"epoch\":\"x\",\"recovered\":false}")
        #expect(Wire.unsubscribed(channels: ["a", "b"]).text == "{\"type\":\"unsubscribed\",\"channels\":[\"a\",\"b\"]}")
        #expect(Wire.authOK(expiresAt: 1_700_000_300).text == "{\"type\":\"auth_ok\",\"exp\":1700000300}")
        #expect(Wire.error(code: .forbidden, message: "no").text == "{\"type\":\"error\",\"code\":\"forbidden\",\"message\":\"no\"}")
    }
}

@Suite struct ChannelNameTests {
    let siteID = Site.siteID(forKey: "0123456789abcdef0123456789abcdef")

    @Test func siteIDMatchesContract() {
        #expect(siteID == "85efa1fa3f9a64ba0ef5a644315bff74c044d324925e31e8c080c3e72284b56e")
    }

    @Test func bareAndFullFormsAreTheSameChannel() throws {
        let a = try ChannelName.resolve("events", siteID: siteID).get()
        let b = try ChannelName.resolve("site:\(siteID):events", siteID: siteID).get()
        #expect(a == b)
        #expect(a.full == "site:\(siteID):events")
        #expect(try ChannelName.resolve("woo:orders:1", siteID: siteID).get().namespace == "woo")
    }

    @Test func refusesForeignAndInvalidNames() {
        #expect(ChannelName.resolve("site:\(String(repeating: "0", count: 64)):events", siteID: siteID) == .failure(.foreignSite))
        #expect(ChannelName.resolve("site:\(siteID):", siteID: siteID) == .failure(.foreignSite))
        #expect(ChannelName.resolve("site:", siteID: siteID) == .failure(.foreignSite))
        #expect(ChannelName.resolve("", siteID: siteID) == .failure(.invalid))
        #expect(ChannelName.resolve("a\nb", siteID: siteID) == .failure(.invalid))
        #expect(ChannelName.resolve(String(repeating: "x", count: 256), siteID: siteID) == .failure(.invalid))
    }

    @Test func prefixExpansion() throws {
        let prefixes = ["events", "yjs:", "site:\(siteID):woo:orders"].map { ChannelName.expandPrefix($0, siteID: siteID) }
        #expect(try ChannelName.resolve("events", siteID: siteID).get().isAllowed(by: prefixes))
        #expect(try ChannelName.resolve("yjs:postType/post:1", siteID: siteID).get().isAllowed(by: prefixes))
        #expect(try ChannelName.resolve("woo:orders", siteID: siteID).get().isAllowed(by: prefixes))
        #expect(try !ChannelName.resolve("shop", siteID: siteID).get().isAllowed(by: prefixes))
    }

    @Test func utcMonths() {
        #expect(UTCMonth.index(unixSeconds: 1_700_000_000) == 2023 * 12 + 10) // 2023-11-14
        #expect(UTCMonth.index(unixSeconds: 951_868_800) == 2000 * 12 + 2)     // 2000-03-01 00:00
        #expect(UTCMonth.index(unixSeconds: 951_868_799) == 2000 * 12 + 1)     // 2000-02-29 23:59:59
    }

    /// One publication, one verdict: a body alone (`POST /publish`) and the same
    /// body inside `/publish/batch` obey the same JSON rules.
    @Test func singleAndBatchAgree() throws {
        let cases: [(String, Bool)] = [
            (#"{"channel":"c","event":"e","data":{"a":"\uD83D\uDE00"}}"#, true),
            (#"{"channel":"c","event":"e","data":{"a":"\uD800"}}"#, false),
            (#"{"channel":"c","event":"e","data":{"a":1,"a":2}}"#, false),
            (#"{"channel":"c","event":"e","event":"f","data":1}"#, false),
            (#"{"channel":"c","event":"e","data":\#(String(repeating: "[", count: 64))\#(String(repeating: "]", count: 64))}"#, false),
            (#"{"channel":"c","event":"e","data":\#(String(repeating: "[", count: 63))\#(String(repeating: "]", count: 63))}"#, true),
            (#"{"channel":"c","event":"e"}"#, false),
        ]
        for (body, valid) in cases {
            let single = PublishBody.parse(Array(body.utf8)) != nil
            let batchBody = Array(#"{"publications":["#.utf8) + Array(body.utf8) + Array("]}".utf8)
            var batch = false
            if let ranges = try? JSONParser.arrayElementRanges(batchBody, member: "publications") {
                batch = ranges.allSatisfy { PublishBody.parse(Array(batchBody[$0])) != nil }
            }
            #expect(single == valid, "single: \(body)")
            #expect(batch == valid, "batch: \(body)")
        }
    }
}
