import RelayJSON
/// Errors from sealing and opening payload envelopes.
public enum EnvelopeError: Error, Equatable, Sendable {
    /// Not an envelope of the expected shape or version.
    case malformed(String)
    /// `p` is not valid standard base64.
    case badBase64
    /// The named algorithm is not supported.
    case unsupportedAlgorithm(String)
    /// No key for the envelope's key id.
    case unknownKeyID(String)
    /// Authentication failed, or the key or associated data is wrong.
    case aead(AEADError)
}

/// Envelope v1, byte-compatible with the wordsocket plugin:
/// `{"v":1,"p":"<base64(iv12 ‖ ciphertext ‖ tag16)>"}`, AES-256-GCM, no
/// associated data, key = HKDF-SHA256(IKM = seed, salt = site key ASCII,
/// info = `wpsignal-v1`, 32 bytes).
public enum EnvelopeV1 {
    /// The HKDF info string (`WPSignal\ENCRYPTION_KEY_VERSION`).
    public static let keyInfo = "wpsignal-v1"

    /// The site's payload key, as `Config::encryption_key()` derives it.
    public static func deriveKey(seed: [UInt8], siteKey: String) -> SecureBytes {
        // 32 bytes is always within HKDF's limit.
        try! HKDF.sha256(inputKeyMaterial: seed, salt: Array(siteKey.utf8), info: Array(keyInfo.utf8), outputByteCount: 32)
    }

    /// Seals `plaintext` (normally the JSON `{"event":…,"data":…}`) into envelope JSON bytes.
    public static func seal<P: ContiguousBytes>(_ plaintext: P, key: SecureBytes, nonce: [UInt8]? = nil) throws(EnvelopeError) -> [UInt8] {
        let combined: [UInt8]
        do { combined = try AES256GCM.seal(plaintext, key: key, nonce: nonce) } catch { throw .aead(error) }
        var out = [UInt8]()
        out.reserveCapacity(Base64.encodedCount(combined.count, .standard) + 16)
        out.append(contentsOf: #"{"v":1,"p":""#.utf8)
        combined.withUnsafeBytes { Base64.encode($0, .standard, into: &out) }
        out.append(contentsOf: #""}"#.utf8)
        return out
    }

    /// Opens envelope JSON bytes, returning the plaintext.
    public static func open<E: ContiguousBytes>(_ envelope: E, key: SecureBytes) throws(EnvelopeError) -> [UInt8] {
        let value: JSONValue
        do throws(JSONError) { value = try JSONParser.parse(envelope.byteArray) } catch { throw .malformed(error.description) }
        return try open(value, key: key)
    }

    /// Opens a parsed envelope value.
    public static func open(_ value: JSONValue, key: SecureBytes) throws(EnvelopeError) -> [UInt8] {
        guard value["v"]?.int64Value == 1 else { throw .malformed("expected \"v\":1") }
        guard let p = value["p"]?.stringValue else { throw .malformed("missing string \"p\"") }
        guard let combined = Base64.decode(p, .standard) else { throw .badBase64 }
        do { return try AES256GCM.open(combined, key: key) } catch { throw .aead(error) }
    }

    /// The plaintext the plugin encrypts: `{"event":<event>,"data":<data>}`,
    /// with `data` given as JSON bytes and copied verbatim.
    public static func eventPlaintext(event: String, dataJSON: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.append(contentsOf: #"{"event":"#.utf8)
        JSONValue.writeString(event, into: &out)
        out.append(contentsOf: #","data":"#.utf8)
        out.append(contentsOf: dataJSON)
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// The AEAD algorithms envelope v2 names in its `alg` field.
public enum EnvelopeAlgorithm: String, Sendable, CaseIterable {
    /// AES-256-GCM, 12-byte nonce (OpenSSL; WebCrypto in browsers).
    case aes256gcm = "A256GCM"
    /// XChaCha20-Poly1305, 24-byte nonce (libsodium; sodium_compat in PHP).
    case xchacha20poly1305 = "XC20P"
}

/// Envelope v2 (ours): `{"v":2,"alg":"A256GCM"|"XC20P","kid":"<id>","p":"<base64(nonce ‖ ct ‖ tag)>"}`.
///
/// The associated data binds the ciphertext to its algorithm, key id and
/// channel, so an envelope moved to another channel or relabelled with another
/// key id fails to open:
///
///     AAD = "relay-envelope-v2" ‖ u8(len alg) ‖ alg ‖ u8(len kid) ‖ kid ‖ u16be(len channel) ‖ channel
///
/// `channel` is the full site-scoped name (`site:{site_id}:{name}`), so bare
/// and full spellings of one channel bind identically.
public enum EnvelopeV2 {
    /// The AAD domain-separation label.
    public static let label = "relay-envelope-v2"

    /// The recommended per-key-id derivation from the same seed as v1:
    /// HKDF-SHA256(IKM = seed, salt = site key, info = `relay-envelope-v2:` + kid).
    public static func deriveKey(seed: [UInt8], siteKey: String, keyID: String) -> SecureBytes {
        try! HKDF.sha256(inputKeyMaterial: seed, salt: Array(siteKey.utf8), info: Array((label + ":" + keyID).utf8), outputByteCount: 32)
    }

    /// The associated data for one envelope.
    public static func associatedData(algorithm: EnvelopeAlgorithm, keyID: String, channel: String) throws(EnvelopeError) -> [UInt8] {
        let alg = Array(algorithm.rawValue.utf8), kid = Array(keyID.utf8), ch = Array(channel.utf8)
        guard kid.count <= 255, !kid.isEmpty else { throw .malformed("key id must be 1-255 bytes") }
        guard ch.count <= 65535, !ch.isEmpty else { throw .malformed("channel must be 1-65535 bytes") }
        var aad = Array(label.utf8)
        aad.append(UInt8(alg.count)); aad += alg
        aad.append(UInt8(kid.count)); aad += kid
        aad.append(UInt8(ch.count >> 8)); aad.append(UInt8(ch.count & 0xff)); aad += ch
        return aad
    }

    /// Seals `plaintext` for `channel` under the key named `keyID`.
    public static func seal<P: ContiguousBytes>(
        _ plaintext: P, key: SecureBytes, keyID: String, channel: String,
        algorithm: EnvelopeAlgorithm = .aes256gcm, nonce: [UInt8]? = nil
    ) throws(EnvelopeError) -> [UInt8] {
        let aad = try associatedData(algorithm: algorithm, keyID: keyID, channel: channel)
        let combined: [UInt8]
        do {
            switch algorithm {
            case .aes256gcm: combined = try AES256GCM.seal(plaintext, key: key, nonce: nonce, associatedData: aad)
            case .xchacha20poly1305: combined = try XChaCha20Poly1305.seal(plaintext, key: key, nonce: nonce, associatedData: aad)
            }
        } catch { throw .aead(error) }
        var out = [UInt8]()
        out.append(contentsOf: #"{"v":2,"alg":"#.utf8)
        JSONValue.writeString(algorithm.rawValue, into: &out)
        out.append(contentsOf: #","kid":"#.utf8)
        JSONValue.writeString(keyID, into: &out)
        out.append(contentsOf: #","p":""#.utf8)
        combined.withUnsafeBytes { Base64.encode($0, .standard, into: &out) }
        out.append(contentsOf: #""}"#.utf8)
        return out
    }

    /// The key id an envelope names, to pick a key before opening.
    public static func keyID<E: ContiguousBytes>(of envelope: E) throws(EnvelopeError) -> String {
        let value: JSONValue
        do throws(JSONError) { value = try JSONParser.parse(envelope.byteArray) } catch { throw .malformed(error.description) }
        guard let kid = value["kid"]?.stringValue else { throw .malformed("missing string \"kid\"") }
        return kid
    }

    /// Opens an envelope delivered on `channel`, looking its key up by key id.
    public static func open<E: ContiguousBytes>(
        _ envelope: E, channel: String, keys: (String) -> SecureBytes?
    ) throws(EnvelopeError) -> [UInt8] {
        let value: JSONValue
        do throws(JSONError) { value = try JSONParser.parse(envelope.byteArray) } catch { throw .malformed(error.description) }
        return try open(value, channel: channel, keys: keys)
    }

    /// Opens a parsed envelope delivered on `channel`.
    public static func open(_ value: JSONValue, channel: String, keys: (String) -> SecureBytes?) throws(EnvelopeError) -> [UInt8] {
        guard value["v"]?.int64Value == 2 else { throw .malformed("expected \"v\":2") }
        guard let algName = value["alg"]?.stringValue else { throw .malformed("missing string \"alg\"") }
        guard let alg = EnvelopeAlgorithm(rawValue: algName) else { throw .unsupportedAlgorithm(algName) }
        guard let kid = value["kid"]?.stringValue else { throw .malformed("missing string \"kid\"") }
        guard let p = value["p"]?.stringValue else { throw .malformed("missing string \"p\"") }
        guard let key = keys(kid) else { throw .unknownKeyID(kid) }
        guard let combined = Base64.decode(p, .standard) else { throw .badBase64 }
        let aad = try associatedData(algorithm: alg, keyID: kid, channel: channel)
        do {
            switch alg {
            case .aes256gcm: return try AES256GCM.open(combined, key: key, associatedData: aad)
            case .xchacha20poly1305: return try XChaCha20Poly1305.open(combined, key: key, associatedData: aad)
            }
        } catch { throw .aead(error) }
    }
}
