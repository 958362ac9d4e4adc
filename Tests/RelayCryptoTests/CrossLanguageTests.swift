import RelayJSON
import Foundation
import Testing
@testable import RelayCrypto

/// PHP (openssl, hash, sodium — what WordPress runs) and Node WebCrypto (what
/// browsers run) against RelayCrypto, in both directions.
@Suite struct CrossLanguageTests {
    let seed = "put your unique phrase here" + "another unique phrase"
    let siteKey = "0123456789abcdef0123456789abcdef"
    let secret = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"
    let jwtSecret = "jwt-secret-9c6e1f7a4b2d8e3f5a1c7b9d2e4f6a8c"
    let channel = "site:\(SHA256.hexDigest("site:0123456789abcdef0123456789abcdef")):orders"
    let body = #"{"channel":"events","event":"encrypted","data":{"v":1,"p":"x"}}"#
    let query = "b=2&a=%41&c=x+y"
    let v2Key = SecureBytes(copying: (0..<32).map { UInt8($0 * 7 & 0xff) })
    let edSeed = (0..<32).map { UInt8(255 - $0) }

    var claims: JSONValue {
        let siteID = SHA256.hexDigest("site:" + siteKey)
        return .object([
            ("tenant_id", .string(SHA256.hexDigest("tenant:" + siteKey))), ("site_id", .string(siteID)),
            ("user_id", .string("42")), ("allowed_channel_prefixes", .array([.string("site:\(siteID):")])),
            ("allowed_publish_prefixes", .array([.string("site:\(siteID):")])), ("v", .int(2)),
            ("iat", .int(Int64(Date().timeIntervalSince1970))), ("exp", .int(Int64(Date().timeIntervalSince1970) + 300)),
        ])
    }

    func php(_ input: JSONValue) throws -> JSONValue {
        try JSONParser.parse(Peer.run("php", [Peer.script("crypto/wordsocket.php")], input: input.serialized()))
    }

    @Test(.enabled(if: Peer.enabled("php")))
    func phpProducesSwiftConsumes() throws {
        let out = try php(.object([
            ("mode", .string("produce")), ("seed", .string(seed)), ("site_key", .string(siteKey)),
            ("event", .string("post.updated")), ("data", .object([("post_id", .int(7)), ("title", .string("Ünïcode ✓ /path"))])),
            ("v2_key_b64", .string(Base64.encode(v2Key))), ("kid", .string("2026-11")), ("channel", .string(channel)),
            ("body", .string(body)), ("query", .string(query)), ("secret", .string(secret)),
            ("jwt_secret", .string(jwtSecret)), ("claims", claims), ("ed25519_seed_b64", .string(Base64.encode(edSeed))),
        ]))
        // HKDF key derivation agrees with hash_hkdf.
        let key = EnvelopeV1.deriveKey(seed: bytes(seed), siteKey: siteKey)
        #expect(out["key_b64"]?.stringValue == Base64.encode(key))
        // Envelope v1 sealed by openssl_encrypt opens in Swift.
        let plaintext = try #require(out["plaintext"]?.stringValue)
        #expect(try EnvelopeV1.open(out["envelope_v1"]!.serialized(), key: key) == bytes(plaintext))
        // Envelope v2, both algorithms; and the channel binding holds.
        for name in ["envelope_v2_gcm", "envelope_v2_xc20p"] {
            let env = try #require(out[name]).serialized()
            #expect(try EnvelopeV2.open(env, channel: channel, keys: { $0 == "2026-11" ? v2Key : nil }) == bytes(plaintext))
            #expect(throws: EnvelopeError.self) { try EnvelopeV2.open(env, channel: channel + "x", keys: { _ in v2Key }) }
        }
        // Signatures.
        let ts = try #require(Int64(out["ts"]!.stringValue!))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let verifier = PublishVerifier { $0 == siteKey ? [PublishSecret(keyID: "2026-11", secret: secret)] : nil }
        let v1 = SignedRequest(method: "POST", path: "/publish", headers: [
            ("x-wp-signal-key", siteKey), ("x-wp-signal-ts", String(ts)), ("x-wp-signal-sign", out["sign_v1"]!.stringValue!)], body: bytes(body))
        #expect(try verifier.verify(v1, nowMs: now).scheme == .v1)
        let v2 = SignedRequest(method: "POST", path: "/publish", query: query, headers: [
            (PublishSignatureV2.keyHeader, siteKey), (PublishSignatureV2.keyIDHeader, "2026-11"),
            (PublishSignatureV2.timestampHeader, String(ts)), (PublishSignatureV2.nonceHeader, out["nonce"]!.stringValue!),
            (PublishSignatureV2.signatureHeader, out["sign_v2"]!.stringValue!)], body: bytes(body))
        #expect(try verifier.verify(v2, nowMs: now).scheme == .v2)
        #expect(throws: PublishSignatureError.replayed) { try verifier.verify(v2, nowMs: now) }
        // Tokens.
        let nowS = now / 1000
        let hs = try JWTVerifier.hs256(secret: jwtSecret).verify(out["jwt_hs256"]!.stringValue!, now: nowS)
        #expect(hs.userID == "42" && hs.version == 2 && hs.siteID == SHA256.hexDigest("site:" + siteKey))
        let pub = try Ed25519.PrivateKey(seed: edSeed).publicKey
        let ed = try JWTVerifier(key: .ed25519(pub)).verify(out["jwt_eddsa"]!.stringValue!, now: nowS)
        #expect(ed == hs)
    }

    @Test(.enabled(if: Peer.enabled("php")))
    func swiftProducesPHPConsumes() throws {
        let key = EnvelopeV1.deriveKey(seed: bytes(seed), siteKey: siteKey)
        let plaintext = EnvelopeV1.eventPlaintext(event: "comment.created", dataJSON: bytes(#"{"id":99,"text":"😀 \"quoted\""}"#))
        let v1 = try JSONParser.parse(EnvelopeV1.seal(plaintext, key: key))
        let gcm = try JSONParser.parse(EnvelopeV2.seal(plaintext, key: v2Key, keyID: "k-7", channel: channel, algorithm: .aes256gcm))
        let xc = try JSONParser.parse(EnvelopeV2.seal(plaintext, key: v2Key, keyID: "k-7", channel: channel, algorithm: .xchacha20poly1305))
        let ts = Int64(Date().timeIntervalSince1970 * 1000)
        let sign1 = PublishSignatureV1.signature(body: bytes(body), timestampMs: ts, key: HMACSHA256Key(utf8: secret))
        let h2 = PublishSignatureV2.headers(method: "post", path: "/publish", query: query, siteKey: siteKey, keyID: "k-7",
                                            secret: secret, body: bytes(body), timestampMs: ts)
        let priv = try Ed25519.PrivateKey(seed: edSeed)
        let out = try php(.object([
            ("mode", .string("consume")), ("seed", .string(seed)), ("site_key", .string(siteKey)),
            ("envelope_v1", v1), ("envelope_v2_gcm", gcm), ("envelope_v2_xc20p", xc),
            ("v2_key_b64", .string(Base64.encode(v2Key))), ("channel", .string(channel)), ("kid", .string("k-7")),
            ("body", .string(body)), ("query", .string(query)), ("secret", .string(secret)), ("ts", .string(String(ts))),
            ("sign_v1", .string(sign1)), ("nonce", .string(h2[3].1)), ("sign_v2", .string(h2[4].1)),
            ("jwt_secret", .string(jwtSecret)), ("jwt_hs256", .string(JWTSigner.hs256(secret: jwtSecret).sign(claims))),
            ("jwt_eddsa", .string(JWTSigner(key: .ed25519(priv)).sign(claims))),
            ("ed25519_public_b64", .string(Base64.encode(priv.publicKey.bytes))),
        ]))
        #expect(out["key_b64"]?.stringValue == Base64.encode(key))
        #expect(out["open_v1"]?.stringValue == text(plaintext))
        #expect(out["open_v2_gcm"]?.stringValue == text(plaintext))
        #expect(out["open_v2_xc20p"]?.stringValue == text(plaintext))
        #expect(out["open_v2_wrong_channel"] == .bool(false))
        #expect(out["sign_v1_ok"] == .bool(true))
        #expect(out["sign_v2_ok"] == .bool(true))
        #expect(out["jwt_hs256_claims"]?["user_id"]?.stringValue == "42")
        #expect(out["jwt_eddsa_claims"]?["site_id"]?.stringValue == SHA256.hexDigest("site:" + siteKey))
    }

    @Test(.enabled(if: Peer.enabled("node")))
    func nodeWebCryptoOpensSwiftEnvelopes() throws {
        let key = SecureBytes(randomCount: 32)
        let plaintext = EnvelopeV1.eventPlaintext(event: "post.updated", dataJSON: bytes(#"{"post_title":"Hello, wörld"}"#))
        let v1 = try JSONParser.parse(EnvelopeV1.seal(plaintext, key: key))
        let v2 = try JSONParser.parse(EnvelopeV2.seal(plaintext, key: key, keyID: "main", channel: channel))
        let out = try JSONParser.parse(Peer.run("node", [Peer.script("crypto/webcrypto-open.mjs")], input: JSONValue.object([
            ("key_b64", .string(Base64.encode(key))), ("channel", .string(channel)), ("v1", v1), ("v2", v2),
        ]).serialized()))
        #expect(out["v1"]?.stringValue == text(plaintext))
        #expect(out["v2"]?.stringValue == text(plaintext))
        #expect(out["v2_wrong_channel"] == .null)
    }
}
