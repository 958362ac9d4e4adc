import Testing
@testable import RelayCrypto

/// Vectors from the standards (also checked against Python `cryptography`
/// and PHP sodium/hash when they were written down).
@Suite struct KnownAnswerTests {
    // RFC 4231 HMAC-SHA256 test cases 1, 2, 3, 4, 6, 7.
    @Test(arguments: [
        ("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        ("4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (String(repeating: "aa", count: 20), String(repeating: "dd", count: 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        ("0102030405060708090a0b0c0d0e0f10111213141516171819", String(repeating: "cd", count: 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        (String(repeating: "aa", count: 131),
         "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        (String(repeating: "aa", count: 131),
         "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e",
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ])
    func hmacRFC4231(key: String, data: String, expected: String) {
        #expect(Hex.encode(HMACSHA256.authenticationCode(key: hex(key), message: hex(data))) == expected)
        // The precomputed-pad key gives the same answer when reused.
        let k = HMACSHA256Key(hex(key))
        #expect(Hex.encode(k.authenticationCode(for: hex(data))) == expected)
        #expect(Hex.encode(k.authenticationCode(for: hex(data))) == expected)
    }

    // RFC 5869 test cases 1, 2 and 3.
    @Test func hkdfRFC5869() throws {
        let okm1 = try HKDF.sha256(inputKeyMaterial: hex(String(repeating: "0b", count: 22)), salt: hex("000102030405060708090a0b0c"),
                                   info: hex("f0f1f2f3f4f5f6f7f8f9"), outputByteCount: 42)
        #expect(Hex.encode(okm1) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let ikm2 = (0x00...0x4f).map { UInt8($0) }, salt2 = (0x60...0xaf).map { UInt8($0) }, info2 = (0xb0...0xff).map { UInt8($0) }
        let okm2 = try HKDF.sha256(inputKeyMaterial: ikm2, salt: salt2, info: info2, outputByteCount: 82)
        #expect(Hex.encode(okm2) == "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87")
        let okm3 = try HKDF.sha256(inputKeyMaterial: hex(String(repeating: "0b", count: 22)), salt: [UInt8](), info: [UInt8](), outputByteCount: 42)
        #expect(Hex.encode(okm3) == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
        #expect(throws: HKDF.Error.outputTooLong) {
            try HKDF.sha256(inputKeyMaterial: [UInt8](), salt: [UInt8](), info: [UInt8](), outputByteCount: 255 * 32 + 1)
        }
    }

    // NIST / McGrew-Viega GCM test cases 13, 14 and 16 (AES-256).
    @Test func aesGCMNIST() throws {
        let tc13 = try AES256GCM.seal([UInt8](), key: [UInt8](repeating: 0, count: 32), nonce: [UInt8](repeating: 0, count: 12))
        #expect(Hex.encode(tc13) == "000000000000000000000000" + "530f8afbc74536b9a963b4f1c4cb738b")
        let tc14 = try AES256GCM.seal([UInt8](repeating: 0, count: 16), key: [UInt8](repeating: 0, count: 32), nonce: [UInt8](repeating: 0, count: 12))
        #expect(Hex.encode(tc14) == "000000000000000000000000" + "cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919")
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
        let iv = hex("cafebabefacedbaddecaf888")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let pt = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let sealed = try AES256GCM.seal(pt, key: key, nonce: iv, associatedData: aad)
        #expect(Hex.encode(sealed) == "cafebabefacedbaddecaf888"
            + "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            + "76fc6ece0f4e1768cddf8853bb2d551b")
        #expect(try AES256GCM.open(sealed, key: key, associatedData: aad) == pt)
    }

    // draft-irtf-cfrg-xchacha-03, appendix A.3.1.
    @Test func xchachaDraftVector() throws {
        let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        let nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657")
        let aad = hex("50515253c0c1c2c3c4c5c6c7")
        let pt = bytes("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
        let sealed = try XChaCha20Poly1305.seal(pt, key: key, nonce: nonce, associatedData: aad)
        #expect(Hex.encode(sealed) == Hex.encode(nonce)
            + "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
            + "c0875924c1c7987947deafd8780acf49")
        #expect(try XChaCha20Poly1305.open(sealed, key: key, associatedData: aad) == pt)
    }

    // RFC 7515 appendix A.1 (HS256).
    @Test func jwsRFC7515HS256() throws {
        let key = Base64.decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow", .url)!
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        let verifier = JWTVerifier(key: .hs256(HMACSHA256Key(key)), options: .init(leewaySeconds: 0))
        let claims = try verifier.verify(token, now: 1_300_819_370)
        #expect(claims.issuer == "joe")
        #expect(claims.expiresAt == 1_300_819_380)
        #expect(claims.all["http://example.com/is_root"] == .bool(true))
        #expect(throws: JWTError.expired) { try verifier.verify(token, now: 1_300_819_380) }
    }

    // RFC 8037 appendix A.4 (Ed25519 JWS; the payload is not a claims set).
    @Test func jwsRFC8037EdDSA() throws {
        let seed = Base64.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", .url)!
        let priv = try Ed25519.PrivateKey(seed: seed)
        #expect(Base64.encode(priv.publicKey.bytes, .url) == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        let signer = JWTSigner(key: .ed25519(priv))
        let token = signer.sign(payload: bytes("Example of Ed25519 signing"), header: bytes(#"{"alg":"EdDSA"}"#))
        #expect(token == "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
        let verifier = JWTVerifier(key: .ed25519(priv.publicKey))
        #expect(try verifier.verifiedPayload(token) == bytes("Example of Ed25519 signing"))
    }
}
