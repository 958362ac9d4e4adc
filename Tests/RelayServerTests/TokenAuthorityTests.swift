import RelayCore
import RelayCrypto
import RelayJSON
@testable import RelayServer
import Testing

/// `TokenAuthority` keeps each site's verifiers between connections; a changed key must take
/// effect on the next connection all the same.
@Suite("Token verification: cached verifiers follow key changes")
struct TokenAuthorityTests {
    static func token(siteID: String, secret: String, now: Int64) -> String {
        JWTSigner.hs256(secret: secret).sign(JSONValue.object([
            ("site_id", .string(siteID)), ("user_id", .string("7")), ("iat", .int(now)), ("exp", .int(now + 300)),
        ]))
    }

    @Test func aRotatedSecretIsUsedAtOnce() throws {
        var site = Site(siteKey: "token-cache-site", jwtSecret: "first-secret")
        let registry = InMemorySiteRegistry([site])
        let now: Int64 = 1_800_000_000
        let authority = TokenAuthority(registry: registry, options: JWTVerificationOptions(), clock: FixedClock(seconds: Double(now)))
        let first = Self.token(siteID: site.siteID, secret: "first-secret", now: now)
        let second = Self.token(siteID: site.siteID, secret: "second-secret", now: now)

        for _ in 0..<3 { #expect((try? authority.grant(for: first, sse: false).get()) != nil, "verified, then from the cache") }
        #expect((try? authority.grant(for: second, sse: false).get()) == nil)

        site.jwtSecret = "second-secret"
        registry.upsert(site)
        #expect((try? authority.grant(for: first, sse: false).get()) == nil, "the old secret no longer verifies")
        #expect((try? authority.grant(for: second, sse: false).get()) != nil, "the new one does")

        site.jwtSecret = nil
        registry.upsert(site)
        #expect((try? authority.grant(for: second, sse: false).get()) == nil, "a removed secret verifies nothing")
    }

    @Test func theSiteIDIsReadWithOrWithoutTheFastScanner() {
        // The scanner reads ASCII claims; a \u escape or an object value sends it to the JSON parser.
        let plain = Array(#"{"site_id":"abc","v":2}"#.utf8)
        let escaped = Array(#"{"site_id":"abc","user_id":"\u00e9","extra":{"a":1}}"#.utf8)
        let noSite = Array(#"{"user_id":"1"}"#.utf8)
        func token(_ payload: [UInt8]) -> String { "e30." + Base64.encode(payload, .url) + ".sig" }
        #expect(JWTClaims.unverifiedSiteID(token(plain)) == "abc")
        #expect(JWTClaims.unverifiedSiteID(token(escaped)) == "abc")
        #expect(JWTClaims.unverifiedSiteID(token(noSite)) == nil)
        #expect(JWTClaims.unverifiedSiteID("e30.!!!.sig") == nil)
        #expect(JWTClaims.unverifiedSiteID("only.two") == nil)
    }
}
