// JWT verification (HS256 with a fixed secret, and the header/claims decoders behind it):
// never traps; a token it accepts re-verifies to the same claims.
import RelayCrypto

let verifier = JWTVerifier.hs256(secret: "fuzz-secret")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: start, count: count)
    if let claims = try? verifier.verify(raw, now: 1_800_000_000) {
        precondition((try? verifier.verify(raw, now: 1_800_000_000))?.siteID == claims.siteID)
    }
    // The claims decoder alone, on arbitrary payload bytes (what a valid signature would let through).
    _ = try? JWTClaims(payload: Array(raw))
    return 0
}
