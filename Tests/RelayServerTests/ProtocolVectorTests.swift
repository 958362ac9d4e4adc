import Foundation
import RelayCore
import RelayCrypto
import RelayJSON
import RelayProtocol
@testable import RelayServer
import Testing

/// `protocol/vectors/*.json`, made by independent implementations (Python,
/// PHP, real Yjs), replayed against relayd's own code paths.
enum Vectors {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("protocol/vectors")
    static func load(_ name: String) throws -> JSONValue {
        try JSONParser.parse(Array(try Data(contentsOf: directory.appendingPathComponent(name))), maxDepth: 256)
    }
}

struct FixedClock: RelayClock {
    let seconds: Double
    func now() -> Double { seconds }
}

@Suite("Protocol vectors: tokens and signatures")
struct TokenAndSignatureVectorTests {
    @Test func tokens() throws {
        let v = try Vectors.load("tokens.json")
        let site = try #require(v["site"])
        let leeway = try #require(v["leeway_seconds"]?.int64Value)
        let maxBytes = try #require(v["max_token_bytes"]?.int64Value)
        let cases = try #require(v["cases"]?.arrayValue)
        #expect(cases.count >= 20)
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let keys = Set((c["site_keys"]?.arrayValue ?? []).compactMap(\.stringValue))
            let pk = Hex.decode(site["ed25519_public_key_hex"]?.stringValue ?? "")
            let record = Site(siteKey: try #require(site["site_key"]?.stringValue),
                              jwtSecret: keys.contains("HS256") ? site["jwt_secret"]?.stringValue : nil,
                              ed25519PublicKey: keys.contains("EdDSA") ? pk : nil)
            let authority = TokenAuthority(
                registry: InMemorySiteRegistry([record]),
                options: JWTVerificationOptions(leewaySeconds: leeway, maxTokenBytes: Int(maxBytes)),
                clock: FixedClock(seconds: Double(try #require(c["now"]?.int64Value))))
            let expected = try #require(c["expected"])
            let token = try #require(c["token"]?.stringValue)
            switch (authority.grant(for: token, sse: false), expected["valid"]?.boolValue) {
            case (.success(let g), true?):
                let eg = try #require(expected["grant"])
                #expect(g.siteID == eg["site_id"]?.stringValue, "\(name)")
                #expect(g.userID == eg["user_id"]?.stringValue, "\(name)")
                #expect(g.expiresAt == eg["expires_at"]?.int64Value, "\(name)")
                for check in eg["checks"]?.arrayValue ?? [] {
                    let ch = try #require(check["channel"]?.stringValue)
                    guard case .success(let resolved) = ChannelName.resolve(ch, siteID: g.siteID) else {
                        #expect(check["subscribe"]?.boolValue == false && check["publish"]?.boolValue == false, "\(name): \(ch)")
                        continue
                    }
                    let sub = resolved.isAllowed(by: g.subscribePrefixes.map { ChannelName.expandPrefix($0, siteID: g.siteID) })
                    let pub = resolved.isAllowed(by: g.publishPrefixes.map { ChannelName.expandPrefix($0, siteID: g.siteID) }) && !resolved.isReserved
                    #expect(sub == check["subscribe"]?.boolValue, "\(name): subscribe \(ch)")
                    #expect(pub == check["publish"]?.boolValue, "\(name): publish \(ch)")
                }
            case (.failure(let r), false?):
                #expect(Int64(r.code.rawValue) == expected["close_code"]?.int64Value, "\(name): \(r)")
                if let reason = expected["close_reason"]?.stringValue {
                    #expect(r.reason.hasPrefix(reason), "\(name): reason \(r.reason) should begin with \(reason)")
                }
            case (let got, _):
                Issue.record("\(name): expected \(expected.jsonString), got \(got)")
            }
        }
    }

    /// Evaluated in order against one verifier (v2 nonces are remembered).
    @Test func signatures() throws {
        let v = try Vectors.load("signatures.json")
        let site = try #require(v["site"])
        let key = try #require(site["site_key"]?.stringValue)
        let secret = PublishSecret(keyID: try #require(site["publish_key_id"]?.stringValue),
                                   secret: try #require(site["publish_secret"]?.stringValue))
        let verifier = PublishVerifier(windowMs: try #require(v["window_ms"]?.int64Value),
                                       lookup: { $0 == key ? [secret] : nil })
        let now = try #require(v["now_ms"]?.int64Value)
        let cases = try #require(v["cases"]?.arrayValue)
        #expect(cases.count >= 20)
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let req = try #require(c["request"])
            let headers = (req["headers"]?.objectValue ?? []).map { ($0.0, $0.1.stringValue ?? "") }
            let signed = SignedRequest(method: req["method"]?.stringValue ?? "", path: req["path"]?.stringValue ?? "",
                                       query: req["query"]?.stringValue ?? "", headers: headers,
                                       body: Array((req["body"]?.stringValue ?? "").utf8))
            let expected = try #require(c["expected"])
            do {
                _ = try verifier.verify(signed, nowMs: now)
                #expect(expected["valid"]?.boolValue == true, "\(name): accepted, expected \(expected.jsonString)")
            } catch {
                #expect(expected["valid"]?.boolValue == false, "\(name): refused with \(error)")
                let e = error  // typed throws: a PublishSignatureError
                #expect(RelayService.code(for: e).rawValue == expected["error"]?.stringValue, "\(name): \(error)")
                #expect(Int64(RelayService.status(for: e).code) == expected["status"]?.int64Value, "\(name)")
            }
        }
    }
}
