// JWT verification, both algorithms (HS256 and EdDSA, keys of protocol/vectors/tokens.json), and
// the header/claims decoders behind it. Oracles: an accepted token re-verifies to the same claims
// and is refused by the verifier of the other algorithm (the key pins the algorithm); any bytes
// that decode as a claims payload, signed with either key, verify exactly when the claims pass the
// time rules, to the same claims, and stop verifying when the signature is altered.
import RelayCrypto

/// `precondition` that keeps its message in release builds (libFuzzer prints it with the crash).
@inline(__always) func ensure(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}

let now: Int64 = 1_767_225_600  // tokens.json "now"
let hsSecret = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
let edSeed: [UInt8] = Array(0..<32)
let edKey = try! Ed25519.PrivateKey(seed: edSeed)
let hs = JWTVerifier.hs256(secret: hsSecret)
let ed = JWTVerifier(key: .ed25519(edKey.publicKey))
let hsSigner = JWTSigner.hs256(secret: hsSecret)
let edSigner = JWTSigner(key: .ed25519(edKey))

func verify(_ v: JWTVerifier, _ token: String) -> Result<JWTClaims, JWTError> {
    Result { () throws(JWTError) in try v.verify(token, now: now) }
}

/// Sign `payload` with `signer`, verify with `v` (and refuse with `other`).
func signAndVerify(_ payload: [UInt8], claims: JWTClaims, _ signer: JWTSigner, _ v: JWTVerifier, _ other: JWTVerifier) {
    let token = signer.sign(payload: payload)
    let expected = Result { () throws(JWTError) in try v.check(claims, now: now) }
    switch (verify(v, token), expected) {
    case (.success(let got), .success):
        ensure(got == claims, "\(signer.algorithm): signed claims verified to other claims")
    case (.failure(let e), .failure(let f)):
        ensure(e == f || e == .tooLarge, "\(signer.algorithm): signed token refused with \(e), the claims alone with \(f)")
    case (.failure(let e), .success):
        // Only the size cap may refuse a token whose claims are fine.
        ensure(e == .tooLarge, "\(signer.algorithm): a freshly signed token was refused: \(e)")
    case (.success, .failure(let f)):
        fatalError("\(signer.algorithm): a signed token verified although its claims fail \(f)")
    }
    if case .success = verify(other, token) { fatalError("a \(signer.algorithm) token verified with the other algorithm's key") }
    // Alter the signature: the last character, then the first.
    var bytes = Array(token.utf8)
    let dot = bytes.lastIndex(of: UInt8(ascii: "."))!
    for i in [bytes.count - 1, dot + 1] where i > dot {
        var t = bytes
        t[i] = t[i] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        if case .success = verify(v, String(decoding: t, as: UTF8.self)) {
            fatalError("\(signer.algorithm): a token with an altered signature verified")
        }
    }
    bytes.removeAll()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: start, count: count)
    let a = try? hs.verify(raw, now: now)
    let b = try? ed.verify(raw, now: now)
    ensure(a == nil || b == nil, "one token verified under both algorithms")
    for (v, claims) in [(hs, a), (ed, b)] {
        guard let claims else { continue }
        ensure((try? v.verify(raw, now: now)) == claims, "verification is not repeatable")
        let payload = try? v.verifiedPayload(raw)
        ensure(payload.flatMap { try? JWTClaims(payload: $0) } == claims, "verifiedPayload and verify disagree")
    }
    // The claims decoder alone, on arbitrary payload bytes (what a valid signature would let through);
    // the tree decoder must agree with the one-pass decoder.
    let bytes = Array(raw)
    if let claims = try? JWTClaims(payload: bytes) {
        let tree = try? JWTClaims(json: claims.all)
        ensure(tree == claims, "JWTClaims(payload:) and JWTClaims(json:) disagree")
        signAndVerify(bytes, claims: claims, hsSigner, hs, ed)
        // Ed25519 signing and four verifications cost ~100x an HMAC: on every fourth payload.
        if bytes.count % 4 == 0 { signAndVerify(bytes, claims: claims, edSigner, ed, hs) }
    }
    return 0
}
