import Testing
@testable import RelayCrypto

/// Bugs found by the libFuzzer targets in Fuzz/ (each input is kept in Fuzz/regressions/<target>/).
@Suite("Fuzz regressions (RelayCrypto)")
struct FuzzRegressionTests {
    /// FuzzPublishSignature/ampersand-combining-mark: the canonical query split the query by
    /// Character, and "&" followed by a combining mark (U+0301) is one Character, so it did not
    /// separate two parameters; PHP's explode (the WordPress signer) splits on the byte.
    @Test("The v2 canonical query splits on the byte '&', as PHP does")
    func canonicalQuerySplitsOnBytes() {
        #expect(PublishSignatureV2.canonicalQuery("a=1&\u{301}b=2") == "%CC%81b=2&a=1")
        #expect(PublishSignatureV2.canonicalQuery("x=\u{301}&y") == "x=%CC%81&y=")
        // A request signed over that canonical form (as the plugin computes it) verifies.
        let headers = PublishSignatureV2.headers(method: "POST", path: "/publish", query: "a=1&\u{301}b=2", siteKey: "site",
                                                 keyID: "k1", secret: "s3cret", body: [], timestampMs: 1_000, nonce: "0123456789abcdef")
        let verifier = PublishVerifier { $0 == "site" ? [PublishSecret(keyID: "k1", secret: "s3cret")] : nil }
        let request = SignedRequest(method: "POST", path: "/publish", query: "\u{301}b=2&a=1", headers: headers, body: [])
        #expect(throws: Never.self) { _ = try verifier.verify(request, nowMs: 1_000) }
    }
}
