import COpenSSL

/// SHA-256 over the system OpenSSL.
public enum SHA256 {
    /// Length of a digest in bytes.
    public static let byteCount = 32

    /// The SHA-256 digest of `bytes`.
    public static func hash<Bytes: ContiguousBytes>(_ bytes: Bytes) -> [UInt8] {
        oneShotDigest(bytes, count: byteCount, COpenSSL.SHA256)
    }

    /// The SHA-256 digest of the UTF-8 bytes of `string`.
    public static func hash(_ string: String) -> [UInt8] {
        hash(Array(string.utf8))
    }

    /// Lowercase hex of the SHA-256 digest of the UTF-8 bytes of `string`,
    /// as used by the wordsocket contract for `site_id` and `tenant_id`.
    public static func hexDigest(_ string: String) -> String {
        Hex.encode(hash(string))
    }
}

/// SHA-1 over the system OpenSSL. Only for protocols that fix it and need no collision
/// resistance: the WebSocket handshake's `Sec-WebSocket-Accept` (RFC 6455 §4.2.2).
public enum SHA1 {
    /// Length of a digest in bytes.
    public static let byteCount = 20

    /// The SHA-1 digest of `bytes`.
    public static func hash<Bytes: ContiguousBytes>(_ bytes: Bytes) -> [UInt8] {
        oneShotDigest(bytes, count: byteCount, COpenSSL.SHA1)
    }
}

/// OpenSSL's one-shot digest functions (`SHA256`, `SHA1`) over any contiguous bytes.
private func oneShotDigest<Bytes: ContiguousBytes>(
    _ bytes: Bytes, count: Int,
    _ digest: (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UInt8>?) -> UnsafeMutablePointer<UInt8>?
) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeBytes { input in
        out.withUnsafeMutableBufferPointer { output in
            _ = digest(input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count, output.baseAddress)
        }
    }
    return out
}
