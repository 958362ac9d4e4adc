import Foundation
import RelayCrypto
import RelayJSON
import Testing

/// `protocol/vectors/envelopes.json` (sealed by Python and PHP) opened by RelayCrypto.
@Suite("Protocol vectors: envelopes")
struct EnvelopeVectorTests {
    static func load() throws -> JSONValue {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protocol/vectors/envelopes.json")
        return try JSONParser.parse(Array(try Data(contentsOf: url)), maxDepth: 256)
    }

    @Test func derivedKeysAndEveryCase() throws {
        let v = try Self.load()
        let seed = Array(try #require(v["seed"]?.stringValue).utf8)
        let siteKey = try #require(v["site_key"]?.stringValue)
        let kid = try #require(v["keys"]?["v2"]?["kid"]?.stringValue)
        let v1 = EnvelopeV1.deriveKey(seed: seed, siteKey: siteKey)
        let v2 = EnvelopeV2.deriveKey(seed: seed, siteKey: siteKey, keyID: kid)
        #expect(Hex.encode(v1.bytes) == v["keys"]?["v1"]?["key_hex"]?.stringValue)
        #expect(Hex.encode(v2.bytes) == v["keys"]?["v2"]?["key_hex"]?.stringValue)
        let cases = try #require(v["cases"]?.arrayValue)
        #expect(cases.count >= 10)
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let envelope = try #require(c["envelope"])
            let channel = try #require(c["open"]?["channel"]?.stringValue)
            let shouldOpen = c["open"]?["expected"]?.stringValue == "ok"
            let key = c["key"]?.stringValue == "v1" ? v1 : v2
            var opened: [UInt8]?
            if envelope["v"]?.int64Value == 1 {
                opened = try? EnvelopeV1.open(envelope, key: key)
            } else {
                opened = try? EnvelopeV2.open(envelope, channel: channel, keys: { $0 == kid ? key : nil })
            }
            #expect((opened != nil) == shouldOpen, "\(name)")
            if let opened, let plaintext = c["plaintext"]?.stringValue {
                #expect(opened == Array(plaintext.utf8), "\(name): plaintext")
            }
        }
    }
}
