import RelayJSON
import Testing
@testable import RelayCrypto

@Suite struct JWTTests {
    let secret = "0123456789abcdef0123456789abcdef"
    let now: Int64 = 1_700_000_100

    func wordsocketClaims(iat: Int64 = 1_700_000_000, exp: Int64 = 1_700_000_300) -> JWTClaims {
        let siteID = SHA256.hexDigest("site:abc")
        return JWTClaims(tenantID: SHA256.hexDigest("tenant:abc"), siteID: siteID, userID: "42",
                         allowedChannelPrefixes: ["site:\(siteID):"], allowedPublishPrefixes: ["site:\(siteID):"],
                         version: 2, issuedAt: iat, expiresAt: exp)
    }

    @Test func roundTripHS256() throws {
        let token = JWTSigner.hs256(secret: secret).sign(wordsocketClaims())
        let claims = try JWTVerifier.hs256(secret: secret).verify(token, now: now)
        #expect(claims == wordsocketClaims())
        #expect(claims.userID == "42" && claims.version == 2)
    }

    @Test func wrongSecretAndTamperedPayload() throws {
        let token = JWTSigner.hs256(secret: secret).sign(wordsocketClaims())
        #expect(throws: JWTError.badSignature) { try JWTVerifier.hs256(secret: "other").verify(token, now: now) }
        let parts = token.split(separator: ".").map(String.init)
        var payload = Base64.decode(parts[1], .url)!
        payload[payload.count - 2] ^= 1
        let forged = parts[0] + "." + Base64.encode(payload, .url) + "." + parts[2]
        #expect(throws: JWTError.badSignature) { try JWTVerifier.hs256(secret: secret).verify(forged, now: now) }
    }

    @Test func algorithmConfusionIsRejected() throws {
        let claims = wordsocketClaims().all.serialized()
        // alg:none with an empty signature.
        let none = Base64.encode(bytes(#"{"alg":"none","typ":"JWT"}"#), .url) + "." + Base64.encode(claims, .url) + "."
        #expect(throws: JWTError.algorithmMismatch("none")) { try JWTVerifier.hs256(secret: secret).verify(none, now: now) }
        // An EdDSA-keyed verifier refuses an HS256 token signed with the public key bytes as secret.
        let priv = Ed25519.PrivateKey()
        let confused = JWTSigner(key: .hs256(HMACSHA256Key(priv.publicKey.bytes))).sign(payload: claims)
        #expect(throws: JWTError.algorithmMismatch("HS256")) {
            try JWTVerifier(key: .ed25519(priv.publicKey)).verify(confused, now: now)
        }
        // And an HS256 verifier refuses an EdDSA token.
        let ed = JWTSigner(key: .ed25519(priv)).sign(payload: claims)
        #expect(throws: JWTError.algorithmMismatch("EdDSA")) { try JWTVerifier.hs256(secret: secret).verify(ed, now: now) }
        #expect(try JWTVerifier(key: .ed25519(priv.publicKey)).verify(ed, now: now).userID == "42")
        // Header with the right alg but lowercase variant is still a mismatch.
        let lower = JWTSigner.hs256(secret: secret).sign(payload: claims, header: bytes(#"{"alg":"hs256"}"#))
        #expect(throws: JWTError.algorithmMismatch("hs256")) { try JWTVerifier.hs256(secret: secret).verify(lower, now: now) }
    }

    @Test func timeRules() throws {
        let signer = JWTSigner.hs256(secret: secret)
        let v = JWTVerifier.hs256(secret: secret, options: .init(leewaySeconds: 5))
        let token = signer.sign(wordsocketClaims())
        #expect(throws: JWTError.expired) { try v.verify(token, now: 1_700_000_305) }
        #expect(try v.verify(token, now: 1_700_000_304).userID == "42")   // inside leeway
        var future = wordsocketClaims(iat: 1_700_000_000, exp: 1_700_000_300)
        future.notBefore = 1_700_000_200
        let nbfToken = signer.sign(JWTClaims(siteID: future.siteID, userID: "1", issuedAt: future.issuedAt, expiresAt: future.expiresAt, notBefore: 1_700_000_200))
        #expect(throws: JWTError.notYetValid) { try v.verify(nbfToken, now: now) }
        let iatFuture = signer.sign(wordsocketClaims(iat: now + 60, exp: now + 360))
        #expect(throws: JWTError.issuedInTheFuture) { try v.verify(iatFuture, now: now) }
        let noExp = signer.sign(JWTClaims(userID: "1"))
        #expect(throws: JWTError.missingClaim("exp")) { try v.verify(noExp, now: now) }
    }

    @Test func audienceIssuerAndSize() throws {
        let signer = JWTSigner.hs256(secret: secret)
        let token = signer.sign(JWTClaims(userID: "1", expiresAt: now + 60, audience: ["relay"], issuer: "https://wp.example"))
        #expect(try JWTVerifier.hs256(secret: secret, options: .init(audience: "relay", issuer: "https://wp.example")).verify(token, now: now).issuer == "https://wp.example")
        #expect(throws: JWTError.audienceMismatch) { try JWTVerifier.hs256(secret: secret, options: .init(audience: "other")).verify(token, now: now) }
        #expect(throws: JWTError.issuerMismatch) { try JWTVerifier.hs256(secret: secret, options: .init(issuer: "x")).verify(token, now: now) }
        let big = signer.sign(JWTClaims(userID: String(repeating: "x", count: 9000), expiresAt: now + 60))
        #expect(throws: JWTError.tooLarge) { try JWTVerifier.hs256(secret: secret).verify(big, now: now) }
    }

    @Test func malformedTokens() {
        let v = JWTVerifier.hs256(secret: secret)
        for bad in ["", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9.%%%.AAAA"] {
            #expect(throws: JWTError.self) { try v.verify(bad, now: now) }
        }
        // Wrong claim type.
        let token = JWTSigner.hs256(secret: secret).sign(payload: bytes(#"{"exp":"soon"}"#))
        #expect(throws: JWTError.malformed("claim exp must be an integer")) { try v.verify(token, now: now) }
    }
}

@Suite struct PublishSignatureTests {
    let siteKey = "0123456789abcdef0123456789abcdef"
    let secret = String(repeating: "ab", count: 32)
    let now: Int64 = 1_700_000_000_000

    func verifier(cache: InMemoryReplayCache = InMemoryReplayCache(), secrets: [PublishSecret]? = nil) -> PublishVerifier {
        let s = secrets ?? [PublishSecret(keyID: "k1", secret: secret)]
        let site = siteKey
        return PublishVerifier(replayCache: cache) { $0 == site ? s : nil }
    }

    func v1Request(body: String, ts: Int64, sign: String? = nil, key: String? = nil) -> SignedRequest {
        var h = PublishSignatureV1.headers(siteKey: key ?? siteKey, secret: secret, body: bytes(body), timestampMs: ts)
        if let sign { h[2].1 = sign }
        return SignedRequest(method: "POST", path: "/publish", headers: h, body: bytes(body))
    }

    @Test func v1MatchesWordsocketDefinition() throws {
        // body + "." + ts, key = the secret string's bytes, lowercase hex.
        let body = #"{"channel":"events","event":"x","data":{}}"#
        let expected = Hex.encode(HMACSHA256.authenticationCode(key: bytes(secret), message: bytes(body + ".1700000000000")))
        #expect(PublishSignatureV1.signature(body: bytes(body), timestampMs: now, key: HMACSHA256Key(utf8: secret)) == expected)
        #expect(try verifier().verify(v1Request(body: body, ts: now), nowMs: now) == VerifiedPublisher(siteKey: siteKey, keyID: "k1", scheme: .v1))
    }

    @Test func v1Errors() throws {
        let v = verifier()
        #expect(throws: PublishSignatureError.stale) { try v.verify(v1Request(body: "{}", ts: now - 60_001), nowMs: now) }
        #expect(throws: PublishSignatureError.fromTheFuture) { try v.verify(v1Request(body: "{}", ts: now + 60_001), nowMs: now) }
        #expect(try v.verify(v1Request(body: "{}", ts: now - 60_000), nowMs: now).scheme == .v1)
        // The plugin's existence probe: a known site with sign "dummy" reads invalid_signature.
        #expect(throws: PublishSignatureError.badSignature) { try v.verify(v1Request(body: "{}", ts: now, sign: "dummy"), nowMs: now) }
        // …even with a stale timestamp: only the site key's existence matters to the probe.
        #expect(throws: PublishSignatureError.badSignature) { try v.verify(v1Request(body: "{}", ts: now - 3_600_000, sign: "dummy"), nowMs: now) }
        // Unknown site is reported before anything else about the signature.
        #expect(throws: PublishSignatureError.unknownKey) { try v.verify(v1Request(body: "{}", ts: 5, sign: "dummy", key: "nope"), nowMs: now) }
        var tampered = v1Request(body: "{}", ts: now)
        tampered.body = bytes("{ }")
        #expect(throws: PublishSignatureError.badSignature) { try v.verify(tampered, nowMs: now) }
        let noTs = SignedRequest(method: "POST", path: "/publish", headers: [(PublishSignatureV1.keyHeader, siteKey), (PublishSignatureV1.signatureHeader, String(repeating: "0", count: 64))], body: [])
        #expect(throws: PublishSignatureError.malformed("timestamp must be Unix milliseconds")) { try v.verify(noTs, nowMs: now) }
    }

    @Test func v1RotationGrace() throws {
        let old = PublishSecret(keyID: "old", secret: secret, validUntilMs: now + 1000)
        let new = PublishSecret(keyID: "new", secret: "fresh-secret")
        let v = verifier(secrets: [new, old])
        #expect(try v.verify(v1Request(body: "{}", ts: now), nowMs: now).keyID == "old")
        #expect(throws: PublishSignatureError.badSignature) { try v.verify(v1Request(body: "{}", ts: now + 2000), nowMs: now + 2000) }
    }

    func v2Request(method: String = "POST", path: String = "/publish", query: String = "", body: String, ts: Int64, nonce: String? = nil, kid: String = "k1") -> SignedRequest {
        let h = PublishSignatureV2.headers(method: method, path: path, query: query, siteKey: siteKey, keyID: kid, secret: secret, body: bytes(body), timestampMs: ts, nonce: nonce)
        return SignedRequest(method: method, path: path, query: query, headers: h, body: bytes(body))
    }

    @Test func v2CanonicalQuery() {
        #expect(PublishSignatureV2.canonicalQuery("b=2&a=3&a=1&c") == "a=1&a=3&b=2&c=")
        #expect(PublishSignatureV2.canonicalQuery("x=%41%2f+y") == "x=A%2F%2By")
        #expect(PublishSignatureV2.canonicalQuery("") == "")
        #expect(PublishSignatureV2.stringToSign(method: "post", path: "/publish", query: "", siteKey: "s", keyID: "k", timestampMs: 1, nonce: "n", body: [])
            == "RELAY-HMAC-SHA256-V2\nPOST\n/publish\n\ns\nk\n1\nn\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func v2AcceptsOnceAndBindsEverything() throws {
        let cache = InMemoryReplayCache()
        let v = verifier(cache: cache)
        let req = v2Request(query: "b=1&a=2", body: "{}", ts: now)
        #expect(try v.verify(req, nowMs: now).scheme == .v2)
        #expect(throws: PublishSignatureError.replayed) { try v.verify(req, nowMs: now + 10) }
        // Same nonce after the window: stale, still refused.
        #expect(throws: PublishSignatureError.stale) { try v.verify(req, nowMs: now + 60_001) }
        // Each covered part changes the signature.
        var other = v2Request(body: "{}", ts: now, nonce: "nonce-nonce-nonce-1")
        other.method = "PUT"
        #expect(throws: PublishSignatureError.badSignature) { try v.verify(other, nowMs: now) }
        other = v2Request(body: "{}", ts: now, nonce: "nonce-nonce-nonce-2"); other.path = "/publish/batch"
        #expect(throws: PublishSignatureError.badSignature) { try v.verify(other, nowMs: now) }
        other = v2Request(body: "{}", ts: now, nonce: "nonce-nonce-nonce-3"); other.query = "a=1"
        #expect(throws: PublishSignatureError.badSignature) { try v.verify(other, nowMs: now) }
        other = v2Request(body: "{}", ts: now, nonce: "nonce-nonce-nonce-4"); other.body = bytes("[]")
        #expect(throws: PublishSignatureError.badSignature) { try v.verify(other, nowMs: now) }
        // Query order does not matter.
        other = v2Request(query: "a=2&b=1", body: "{}", ts: now, nonce: "nonce-nonce-nonce-5"); other.query = "b=1&a=2"
        #expect(try v.verify(other, nowMs: now).scheme == .v2)
        #expect(throws: PublishSignatureError.unknownKey) { try v.verify(v2Request(body: "{}", ts: now, kid: "k9"), nowMs: now) }
        #expect(throws: PublishSignatureError.malformed("X-Relay-Nonce must be 16-128 printable ASCII characters")) {
            try v.verify(v2Request(body: "{}", ts: now, nonce: "short"), nowMs: now)
        }
    }

    @Test func replayCacheExpiresAndBounds() {
        let cache = InMemoryReplayCache(capacity: 2)
        #expect(cache.claim(nonce: "a", scope: "s", expiresAtMs: 100, nowMs: 0) == .accepted)
        #expect(cache.claim(nonce: "a", scope: "t", expiresAtMs: 100, nowMs: 0) == .accepted)
        #expect(cache.claim(nonce: "b", scope: "s", expiresAtMs: 100, nowMs: 0) == .full)
        #expect(cache.claim(nonce: "a", scope: "s", expiresAtMs: 200, nowMs: 50) == .replayed)
        #expect(cache.claim(nonce: "a", scope: "s", expiresAtMs: 300, nowMs: 101) == .accepted)
        #expect(cache.count == 1)
    }
}

@Suite struct EnvelopeTests {
    @Test func v1RoundTripAndShape() throws {
        let key = EnvelopeV1.deriveKey(seed: bytes("auth-key-secure-auth-key"), siteKey: "0123456789abcdef0123456789abcdef")
        let pt = EnvelopeV1.eventPlaintext(event: "post.updated", dataJSON: bytes(#"{"post_id":7}"#))
        #expect(text(pt) == #"{"event":"post.updated","data":{"post_id":7}}"#)
        let env = try EnvelopeV1.seal(pt, key: key)
        let parsed = try JSONParser.parse(env)
        #expect(parsed["v"] == .number("1"))
        #expect(Base64.decode(parsed["p"]!.stringValue!, .standard)!.count == 12 + pt.count + 16)
        #expect(try EnvelopeV1.open(env, key: key) == pt)
        let wrong = EnvelopeV1.deriveKey(seed: bytes("other"), siteKey: "0123456789abcdef0123456789abcdef")
        #expect(throws: EnvelopeError.aead(.authenticationFailed)) { try EnvelopeV1.open(env, key: wrong) }
        #expect(throws: EnvelopeError.badBase64) { try EnvelopeV1.open(bytes(#"{"v":1,"p":"@@@="}"#), key: key) }
        #expect(throws: EnvelopeError.malformed("expected \"v\":1")) { try EnvelopeV1.open(bytes(#"{"v":2,"p":""}"#), key: key) }
        #expect(throws: EnvelopeError.aead(.truncated)) { try EnvelopeV1.open(bytes(#"{"v":1,"p":"AAAA"}"#), key: key) }
    }

    @Test(arguments: EnvelopeAlgorithm.allCases)
    func v2BindsChannelAndKeyID(alg: EnvelopeAlgorithm) throws {
        let k1 = SecureBytes(randomCount: 32), k2 = SecureBytes(randomCount: 32)
        let keys: (String) -> SecureBytes? = { ["k1": k1, "k2": k2][$0] }
        let env = try EnvelopeV2.seal(bytes("secret"), key: k1, keyID: "k1", channel: "site:abc:orders", algorithm: alg)
        #expect(try EnvelopeV2.open(env, channel: "site:abc:orders", keys: keys) == bytes("secret"))
        #expect(try EnvelopeV2.keyID(of: env) == "k1")
        // Moved to another channel.
        #expect(throws: EnvelopeError.aead(.authenticationFailed)) { try EnvelopeV2.open(env, channel: "site:abc:events", keys: keys) }
        // Relabelled with another key id whose key is the same bytes: still fails (kid is in the AAD).
        let relabelled = text(env).replacingOccurrences(of: #""kid":"k1""#, with: #""kid":"k3""#)
        #expect(throws: EnvelopeError.aead(.authenticationFailed)) {
            try EnvelopeV2.open(bytes(relabelled), channel: "site:abc:orders", keys: { $0 == "k3" ? k1 : nil })
        }
        #expect(throws: EnvelopeError.unknownKeyID("k9")) {
            try EnvelopeV2.open(bytes(relabelled.replacingOccurrences(of: "k3", with: "k9")), channel: "site:abc:orders", keys: keys)
        }
        #expect(throws: EnvelopeError.unsupportedAlgorithm("A128GCM")) {
            try EnvelopeV2.open(bytes(#"{"v":2,"alg":"A128GCM","kid":"k1","p":""}"#), channel: "c", keys: keys)
        }
    }

    @Test func v2AssociatedDataLayout() throws {
        let aad = try EnvelopeV2.associatedData(algorithm: .aes256gcm, keyID: "k1", channel: "ch")
        #expect(aad == bytes("relay-envelope-v2") + [7] + bytes("A256GCM") + [2] + bytes("k1") + [0, 2] + bytes("ch"))
    }
}

@Suite struct ClaimsDecodingTests {
    @Test func onePassDecoderAgreesWithTreeDecoder() throws {
        let payloads = [
            #"{"site_id":"s","user_id":42,"v":2,"iat":1,"exp":2.0e0,"aud":"relay","allowed_channel_prefixes":["a","b"],"x":{"deep":[1,{"y":null}]}}"#,
            #"{"sub":"u","aud":["a","b"],"nbf":5,"jti":"id","iss":"https://wp","allowed_publish_prefixes":[]}"#,
            #"{}"#,
        ]
        for p in payloads {
            let fast = try JWTClaims(payload: bytes(p))
            let tree = try JWTClaims(json: JSONParser.parse(p))
            #expect(fast == tree, "\(p)")
            #expect(fast.all == (try JSONParser.parse(p)))
        }
        #expect(throws: JWTError.self) { try JWTClaims(payload: bytes(#"{"exp":1,"exp":2}"#)) }
        #expect(throws: JWTError.malformed("claim exp must be an integer")) { try JWTClaims(payload: bytes(#"{"exp":"x"}"#)) }
        #expect(throws: JWTError.self) { try JWTClaims(payload: bytes(#"[1]"#)) }
        #expect(throws: JWTError.self) { try JWTClaims(payload: bytes(#"{"a":1} x"#)) }
    }

    /// The fast claims scanner either gives exactly the general parser's claims or gives up (and
    /// the general parser decides): seeded random payloads around what issuers write — names
    /// known and unknown, repeated; strings with escapes, `\u`, non-ASCII; integers, fractions,
    /// exponents, leading zeros, 19 digits; arrays, objects, literals; odd whitespace; truncation.
    @Test func fastPathAgreesWithGeneralPathOnRandomPayloads() throws {
        var rng = SplitMix(seed: 0x5EED)
        let names = ["tenant_id", "site_id", "user_id", "sub", "iss", "jti", "aud", "v", "iat", "exp", "nbf",
                     "allowed_channel_prefixes", "allowed_publish_prefixes", "x", "rooms", "site_i", "exp2", "s\\u0069te_id"]
        let strings = [#""a""#, #""site:abc:""#, #""with \/ slash""#, #""q\"uote""#, #""tab\t""#, #""\u00e9""#, "\"é\"",
                       #""""#, #""\x""#, "\"ctl\u{01}\"", #""7f\u007f""#]
        let numbers = ["0", "-0", "42", "-7", "1700000000", "123456789012345678", "1234567890123456789", "01", "1.0", "2.0e0", "1e3", "-", "1."]
        func value(_ depth: Int) -> String {
            switch rng.next() % 9 {
            case 0, 1: return strings[Int(rng.next() % UInt64(strings.count))]
            case 2, 3: return numbers[Int(rng.next() % UInt64(numbers.count))]
            case 4: return ["true", "false", "null", "nul", "tru"][Int(rng.next() % 5)]
            case 5, 6:
                let n = Int(rng.next() % 4)
                return "[" + (0..<n).map { _ in depth < 3 ? value(depth + 1) : "1" }.joined(separator: ",") + "]"
            case 7: return depth < 3 ? "{\"k\":\(value(depth + 1))}" : "{}"
            default: return "[" + strings[Int(rng.next() % 3)] + "]"
            }
        }
        func ws() -> String { ["", "", " ", "\n\t", "\r "][Int(rng.next() % 5)] }
        var fast = 0, general = 0
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 7)
            var text = ws() + "{" + (0..<n).map { _ in
                ws() + "\"" + names[Int(rng.next() % UInt64(names.count))] + "\"" + ws() + ":" + ws() + value(0) + ws()
            }.joined(separator: ",") + "}" + ws()
            if rng.next() % 10 == 0 { text = String(text.prefix(Int(rng.next() % UInt64(text.count + 1)))) }
            let payload = Array(text.utf8)
            let generalResult = Result { () throws(JWTError) in try JWTClaims.generalFields(payload) }
            if let f = ClaimsScanner.scan(payload) {
                fast += 1
                #expect(generalResult == .success(f), "fast path disagrees on \(text)")
            } else {
                general += 1
            }
            let claims = Result { () throws(JWTError) in try JWTClaims(payload: payload) }
            #expect(claims.map { _ in 0 } == generalResult.map { _ in 0 }, "\(text)")
        }
        #expect(fast > 2_000 && general > 2_000, "fast \(fast), general \(general)")
    }
}

/// SplitMix64, for seeded test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
