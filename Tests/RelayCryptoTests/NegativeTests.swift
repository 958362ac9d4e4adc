import RelayJSON
import Testing
@testable import RelayCrypto

@Suite struct AEADNegativeTests {
    let key = [UInt8](repeating: 7, count: 32)

    @Test func tamperedTagCiphertextAndNonceFail() throws {
        let sealed = try AES256GCM.seal(bytes("hello world"), key: key)
        for i in [0, 12, sealed.count - 1] {
            var bad = sealed
            bad[i] ^= 0x01
            #expect(throws: AEADError.authenticationFailed) { try AES256GCM.open(bad, key: key) }
        }
        let x = try XChaCha20Poly1305.seal(bytes("hello world"), key: key)
        var bad = x
        bad[bad.count - 1] ^= 0x80
        #expect(throws: AEADError.authenticationFailed) { try XChaCha20Poly1305.open(bad, key: key) }
    }

    @Test func wrongAssociatedDataAndKeyFail() throws {
        let sealed = try AES256GCM.seal(bytes("x"), key: key, associatedData: bytes("channel-a"))
        #expect(throws: AEADError.authenticationFailed) { try AES256GCM.open(sealed, key: key, associatedData: bytes("channel-b")) }
        #expect(throws: AEADError.authenticationFailed) { try AES256GCM.open(sealed, key: [UInt8](repeating: 8, count: 32), associatedData: bytes("channel-a")) }
        let x = try XChaCha20Poly1305.seal(bytes("x"), key: key, associatedData: bytes("a"))
        #expect(throws: AEADError.authenticationFailed) { try XChaCha20Poly1305.open(x, key: key, associatedData: bytes("b")) }
    }

    @Test func truncatedAndBadSizes() throws {
        #expect(throws: AEADError.truncated) { try AES256GCM.open([UInt8](repeating: 0, count: 27), key: key) }
        #expect(throws: AEADError.truncated) { try XChaCha20Poly1305.open([UInt8](repeating: 0, count: 39), key: key) }
        #expect(throws: AEADError.invalidKeySize) { try AES256GCM.seal(bytes("x"), key: [UInt8](repeating: 0, count: 16)) }
        #expect(throws: AEADError.invalidNonceSize) { try AES256GCM.seal(bytes("x"), key: key, nonce: [1, 2, 3]) }
    }

    @Test func randomNoncesDiffer() throws {
        let a = try AES256GCM.seal(bytes("same"), key: key), b = try AES256GCM.seal(bytes("same"), key: key)
        #expect(a != b)
        #expect(try AES256GCM.open(a, key: key) == bytes("same"))
    }
}

@Suite struct Base64AndJSONTests {
    @Test func base64StrictDecoding() {
        #expect(Base64.decode("aGVsbG8=", .standard) == bytes("hello"))
        #expect(Base64.decode("aGVsbG8", .standard) == nil)       // missing padding
        #expect(Base64.decode("aGVsbG8", .url) == bytes("hello"))
        #expect(Base64.decode("aGVsbG8=", .url) == nil)            // padding forbidden in url
        #expect(Base64.decode("aGVs bG8=", .standard) == nil)      // whitespace
        #expect(Base64.decode("aGVsbG9=", .standard) == nil)       // non-zero trailing bits
        #expect(Base64.decode("a-_b", .standard) == nil)
        #expect(Base64.decode("", .standard) == [])
        for n in 0..<40 {
            let b = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64.decode(Base64.encode(b, .standard), .standard) == b)
            #expect(Base64.decode(Base64.encode(b, .url), .url) == b)
        }
    }

    @Test func jsonParsesAndRejects() throws {
        let v = try JSONParser.parse(#" {"a":[1,-2.5e3,true,null],"b":"\u00e9\ud83d\ude00\n"} "#)
        #expect(v["a"]?.arrayValue?.count == 4)
        #expect(v["b"]?.stringValue == "é😀\n")
        for bad in [#"{"a":1,}"#, #"[1 2]"#, #"{"a":1,"a":2}"#, "01", #""\ud800""#, "{", "nul", #""a\x""#, "1 2",
                    String(repeating: "[", count: 100) + String(repeating: "]", count: 100)] {
            #expect(throws: JSONError.self) { try JSONParser.parse(bad) }
        }
        let round = try JSONParser.parse(v.serialized())
        #expect(round == v)
    }
}

@Suite struct KeyedAESTests {
    @Test func keyedMatchesOneShotAndNoncesAreUnique() throws {
        let raw = SecureBytes(randomCount: 32)
        let key = try AES256GCMKey(raw)
        let nonce = [UInt8](repeating: 9, count: 12)
        var keyed = [UInt8]()
        try bytes("payload").withUnsafeBytes { p in try nonce.withUnsafeBytes { n in try key.seal(p, nonce: n, into: &keyed) } }
        #expect(keyed == (try AES256GCM.seal(bytes("payload"), key: raw, nonce: nonce)))
        var seen = Set<[UInt8]>()
        for _ in 0..<1000 {
            let s = try key.seal(bytes("x"), associatedData: bytes("ad"))
            seen.insert(Array(s[0..<12]))
            #expect(try AES256GCM.open(s, key: raw, associatedData: bytes("ad")) == bytes("x"))
        }
        #expect(seen.count == 1000)
        var tampered = try key.seal(bytes("x"))
        tampered[13] ^= 1
        #expect(throws: AEADError.authenticationFailed) { try key.open(tampered) }
        #expect(throws: AEADError.invalidKeySize) { try AES256GCMKey(SecureBytes(randomCount: 16)) }
        // After a failure the pooled context still works.
        #expect(try key.open(key.seal(bytes("again"))) == bytes("again"))
    }
}

@Suite struct JSONRangeTests {
    @Test func arrayElementRangesKeepBytes() throws {
        let body = bytes(#" [ {"a":"x\/y"} , 1e3,"s" ] "#)
        let r = try JSONParser.arrayElementRanges(body)
        #expect(r.map { text(Array(body[$0])) } == [#"{"a":"x\/y"}"#, "1e3", #""s""#])
        let wrapped = bytes(#"{"other":[9],"publications":[{"data":{"p":"a\/b"}}]}"#)
        let w = try JSONParser.arrayElementRanges(wrapped, member: "publications")
        #expect(w.map { text(Array(wrapped[$0])) } == [#"{"data":{"p":"a\/b"}}"#])
        #expect(try JSONParser.arrayElementRanges(bytes("[]")).isEmpty)
        for bad in ["[1,]", "{\"x\":[1]}", "[1] 2", "{\"publications\":[1,2}"] {
            #expect(throws: JSONError.self) { try JSONParser.arrayElementRanges(bytes(bad), member: "publications") }
        }
    }
}
