import COpenSSL
import CSodium

/// An HMAC-SHA256 key with its inner and outer pad states precomputed
/// (RFC 2104), so each MAC costs two SHA-256 finalisations and no key setup.
/// The pad states are zeroed when the key is released.
public final class HMACSHA256Key: @unchecked Sendable {
    /// Length of an HMAC-SHA256 tag in bytes.
    public static let tagByteCount = 32

    private let states: UnsafeMutablePointer<SHA256_CTX>  // [inner, outer]

    /// Prepares `key` (any length; longer than 64 bytes is hashed first, per RFC 2104).
    public init<Key: ContiguousBytes>(_ key: Key) {
        states = .allocate(capacity: 2)
        var block = [UInt8](repeating: 0, count: 64)
        key.withUnsafeBytes { k in
            if k.count > 64 {
                let digest = SHA256.hash(k)
                block.replaceSubrange(0..<32, with: digest)
            } else if k.count > 0 {
                block.replaceSubrange(0..<k.count, with: k)
            }
        }
        var pad = [UInt8](repeating: 0, count: 64)
        for i in 0..<64 { pad[i] = block[i] ^ 0x36 }
        SHA256_Init(states)
        SHA256_Update(states, pad, 64)
        for i in 0..<64 { pad[i] = block[i] ^ 0x5c }
        SHA256_Init(states + 1)
        SHA256_Update(states + 1, pad, 64)
        secureZero(&pad)
        secureZero(&block)
    }

    /// Uses the UTF-8 bytes of `secret` as the key, as the wordsocket plugin does.
    public convenience init(utf8 secret: String) {
        var bytes = Array(secret.utf8)
        self.init(bytes)
        secureZero(&bytes)
    }

    deinit {
        sodium_memzero(states, MemoryLayout<SHA256_CTX>.stride * 2)
        states.deallocate()
    }

    /// Writes the 32-byte tag of the concatenation of `parts` into `output`.
    public func authenticate(parts: [UnsafeRawBufferPointer], into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= 32)
        var ctx = states[0]
        for part in parts where part.count > 0 {
            SHA256_Update(&ctx, part.baseAddress, part.count)
        }
        var inner = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &inner) { ih in
            SHA256_Final(ih.baseAddress!.assumingMemoryBound(to: UInt8.self), &ctx)
            ctx = states[1]
            SHA256_Update(&ctx, ih.baseAddress, 32)
        }
        SHA256_Final(output.baseAddress!.assumingMemoryBound(to: UInt8.self), &ctx)
        withUnsafeMutableBytes(of: &ctx) { sodium_memzero($0.baseAddress!, $0.count) }
    }

    /// The tag of `message`.
    public func authenticationCode<Message: ContiguousBytes>(for message: Message) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        message.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { authenticate(parts: [m], into: $0) }
        }
        return out
    }

    /// The tag of the concatenation of several byte sequences, without joining them.
    public func authenticationCode(for parts: [[UInt8]]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        func go(_ i: Int, _ acc: [UnsafeRawBufferPointer]) {
            if i == parts.count {
                out.withUnsafeMutableBytes { authenticate(parts: acc, into: $0) }
                return
            }
            parts[i].withUnsafeBytes { go(i + 1, acc + [$0]) }
        }
        go(0, [])
        return out
    }

    /// True when `tag` is the tag of `message` (constant-time).
    public func isValid<Message: ContiguousBytes, Tag: ContiguousBytes>(_ tag: Tag, for message: Message) -> Bool {
        ConstantTime.equals(authenticationCode(for: message), tag)
    }
}

/// One-shot HMAC-SHA256.
public enum HMACSHA256 {
    /// HMAC-SHA256 of `message` under `key`.
    public static func authenticationCode<Key: ContiguousBytes, Message: ContiguousBytes>(
        key: Key, message: Message
    ) -> [UInt8] {
        HMACSHA256Key(key).authenticationCode(for: message)
    }
}

/// HKDF-SHA256 (RFC 5869).
public enum HKDF {
    public enum Error: Swift.Error, Equatable {
        /// Output longer than 255 × 32 bytes.
        case outputTooLong
    }

    /// Extract-then-expand: `length` bytes of output keying material.
    public static func sha256<IKM: ContiguousBytes, Salt: ContiguousBytes, Info: ContiguousBytes>(
        inputKeyMaterial ikm: IKM, salt: Salt, info: Info, outputByteCount length: Int
    ) throws(Error) -> SecureBytes {
        guard length <= 255 * 32 else { throw .outputTooLong }
        let saltBytes = salt.withUnsafeBytes { Array($0) }
        // RFC 5869 2.2: an absent salt is HashLen zeros.
        let extractor = HMACSHA256Key(saltBytes.isEmpty ? [UInt8](repeating: 0, count: 32) : saltBytes)
        var prk = extractor.authenticationCode(for: ikm)
        defer { secureZero(&prk) }
        let expander = HMACSHA256Key(prk)
        let infoBytes = info.withUnsafeBytes { Array($0) }
        var okm = [UInt8]()
        okm.reserveCapacity(length + 32)
        var previous = [UInt8]()
        var counter: UInt8 = 1
        while okm.count < length {
            let block = expander.authenticationCode(for: [previous, infoBytes, [counter]])
            okm.append(contentsOf: block)
            previous = block
            counter &+= 1
        }
        secureZero(&previous)
        let result = SecureBytes(copying: okm[0..<length])
        secureZero(&okm)
        return result
    }
}
