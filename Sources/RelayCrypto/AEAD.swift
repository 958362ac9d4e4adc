import COpenSSL
import CSodium
import Synchronization

/// Errors from authenticated encryption.
public enum AEADError: Error, Equatable, Sendable {
    /// The key is not 32 bytes.
    case invalidKeySize
    /// The nonce has the wrong size for the algorithm.
    case invalidNonceSize
    /// The sealed input is shorter than nonce + tag.
    case truncated
    /// The tag does not verify: wrong key, wrong associated data, or tampering.
    case authenticationFailed
    /// The underlying library reported an error.
    case library(String)
}

/// An AEAD algorithm that seals into the "combined" layout
/// `nonce ‖ ciphertext ‖ tag` (WebCrypto and wordsocket order).
public protocol CombinedAEAD {
    static var keyByteCount: Int { get }
    static var nonceByteCount: Int { get }
    static var tagByteCount: Int { get }

    /// Seals `plaintext`, appending `nonce ‖ ciphertext ‖ tag` to `output`.
    /// A random nonce is drawn when `nonce` is nil.
    static func seal(
        _ plaintext: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer?,
        associatedData: UnsafeRawBufferPointer, into output: inout [UInt8]
    ) throws(AEADError)

    /// Opens `nonce ‖ ciphertext ‖ tag`, appending the plaintext to `output`.
    static func open(
        _ combined: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer, into output: inout [UInt8]
    ) throws(AEADError)
}

extension CombinedAEAD {
    /// Seals `plaintext` under `key` with an optional fixed nonce (tests only; production uses random nonces).
    public static func seal<P: ContiguousBytes, K: ContiguousBytes>(
        _ plaintext: P, key: K, nonce: [UInt8]? = nil, associatedData: [UInt8] = []
    ) throws(AEADError) -> [UInt8] {
        var out = [UInt8]()
        let r: Result<Void, AEADError> = plaintext.withUnsafeBytes { p in
            key.withUnsafeBytes { k in
                associatedData.withUnsafeBytes { a in
                    do throws(AEADError) {
                        if let nonce {
                            let inner: Result<Void, AEADError> = nonce.withUnsafeBytes { n in
                                do throws(AEADError) {
                                    try seal(p, key: k, nonce: n, associatedData: a, into: &out)
                                    return .success(())
                                } catch { return .failure(error) }
                            }
                            try inner.get()
                        } else {
                            try seal(p, key: k, nonce: nil, associatedData: a, into: &out)
                        }
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
            }
        }
        try r.get()
        return out
    }

    /// Opens `nonce ‖ ciphertext ‖ tag` under `key`.
    public static func open<C: ContiguousBytes, K: ContiguousBytes>(
        _ combined: C, key: K, associatedData: [UInt8] = []
    ) throws(AEADError) -> [UInt8] {
        var out = [UInt8]()
        let r: Result<Void, AEADError> = combined.withUnsafeBytes { c in
            key.withUnsafeBytes { k in
                associatedData.withUnsafeBytes { a in
                    do throws(AEADError) {
                        try open(c, key: k, associatedData: a, into: &out)
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
            }
        }
        try r.get()
        return out
    }
}

/// AES-256-GCM through OpenSSL EVP: 12-byte nonce, 16-byte tag.
public enum AES256GCM: CombinedAEAD {
    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    public static func seal(
        _ plaintext: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer?,
        associatedData: UnsafeRawBufferPointer, into output: inout [UInt8]
    ) throws(AEADError) {
        guard key.count == keyByteCount else { throw .invalidKeySize }
        if let nonce, nonce.count != nonceByteCount { throw .invalidNonceSize }
        guard plaintext.count <= Int(Int32.max) - 64, associatedData.count <= Int(Int32.max) else {
            throw .library("input too large")
        }
        let start = output.count
        let total = nonceByteCount + plaintext.count + tagByteCount
        output.append(contentsOf: repeatElement(0, count: total))
        let ok: Bool = output.withUnsafeMutableBytes { all in
            let out = UnsafeMutableRawBufferPointer(rebasing: all[start..<(start + total)])
            let iv = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if let nonce {
                out.baseAddress!.copyMemory(from: nonce.baseAddress!, byteCount: nonceByteCount)
            } else {
                SecureRandom.fill(UnsafeMutableRawBufferPointer(rebasing: out[0..<nonceByteCount]))
            }
            guard let ctx = EVP_CIPHER_CTX_new() else { return false }
            defer { EVP_CIPHER_CTX_free(ctx) }
            guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, key.baseAddress!.assumingMemoryBound(to: UInt8.self), iv) == 1
            else { return false }
            var len: Int32 = 0
            if associatedData.count > 0 {
                guard EVP_EncryptUpdate(ctx, nil, &len, associatedData.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(associatedData.count)) == 1
                else { return false }
            }
            let ct = iv + nonceByteCount
            if plaintext.count > 0 {
                guard EVP_EncryptUpdate(ctx, ct, &len, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(plaintext.count)) == 1
                else { return false }
            }
            guard EVP_EncryptFinal_ex(ctx, ct + plaintext.count, &len) == 1 else { return false }
            return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagByteCount), ct + plaintext.count) == 1
        }
        guard ok else {
            output.removeSubrange(start...)
            throw .library("EVP AES-256-GCM encryption failed")
        }
    }

    public static func open(
        _ combined: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer, into output: inout [UInt8]
    ) throws(AEADError) {
        guard key.count == keyByteCount else { throw .invalidKeySize }
        guard combined.count >= nonceByteCount + tagByteCount else { throw .truncated }
        guard combined.count <= Int(Int32.max), associatedData.count <= Int(Int32.max) else { throw .library("input too large") }
        let ctLength = combined.count - nonceByteCount - tagByteCount
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: ctLength))
        let base = combined.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let status: Int32 = output.withUnsafeMutableBytes { all in
            let pt = all.baseAddress!.assumingMemoryBound(to: UInt8.self) + start
            guard let ctx = EVP_CIPHER_CTX_new() else { return -1 }
            defer { EVP_CIPHER_CTX_free(ctx) }
            guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, key.baseAddress!.assumingMemoryBound(to: UInt8.self), base) == 1
            else { return -1 }
            var len: Int32 = 0
            if associatedData.count > 0 {
                guard EVP_DecryptUpdate(ctx, nil, &len, associatedData.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(associatedData.count)) == 1
                else { return -1 }
            }
            if ctLength > 0 {
                guard EVP_DecryptUpdate(ctx, pt, &len, base + nonceByteCount, Int32(ctLength)) == 1 else { return -1 }
            }
            let tag = UnsafeMutableRawPointer(mutating: base + nonceByteCount + ctLength)
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(tagByteCount), tag) == 1 else { return -1 }
            return EVP_DecryptFinal_ex(ctx, pt + ctLength, &len) == 1 ? 1 : 0
        }
        if status != 1 {
            output.withUnsafeMutableBytes { all in
                let tail = UnsafeMutableRawBufferPointer(rebasing: all[start...])
                if let b = tail.baseAddress { sodium_memzero(b, tail.count) }
            }
            output.removeSubrange(start...)
            throw status == 0 ? .authenticationFailed : .library("EVP AES-256-GCM decryption failed")
        }
    }
}

/// XChaCha20-Poly1305 (IETF) through libsodium: 24-byte nonce, 16-byte tag.
/// WordPress can produce it everywhere through sodium_compat.
public enum XChaCha20Poly1305: CombinedAEAD {
    public static let keyByteCount = 32
    public static let nonceByteCount = 24
    public static let tagByteCount = 16

    public static func seal(
        _ plaintext: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer?,
        associatedData: UnsafeRawBufferPointer, into output: inout [UInt8]
    ) throws(AEADError) {
        Sodium.ensure()
        guard key.count == keyByteCount else { throw .invalidKeySize }
        if let nonce, nonce.count != nonceByteCount { throw .invalidNonceSize }
        let start = output.count
        let total = nonceByteCount + plaintext.count + tagByteCount
        output.append(contentsOf: repeatElement(0, count: total))
        let rc: Int32 = output.withUnsafeMutableBytes { all in
            let out = all.baseAddress!.assumingMemoryBound(to: UInt8.self) + start
            if let nonce {
                UnsafeMutableRawPointer(out).copyMemory(from: nonce.baseAddress!, byteCount: nonceByteCount)
            } else {
                SecureRandom.fill(UnsafeMutableRawBufferPointer(start: out, count: nonceByteCount))
            }
            var clen: UInt64 = 0
            return crypto_aead_xchacha20poly1305_ietf_encrypt(
                out + nonceByteCount, &clen,
                plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                nil, out, key.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else {
            output.removeSubrange(start...)
            throw .library("crypto_aead_xchacha20poly1305_ietf_encrypt failed")
        }
    }

    public static func open(
        _ combined: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer, into output: inout [UInt8]
    ) throws(AEADError) {
        Sodium.ensure()
        guard key.count == keyByteCount else { throw .invalidKeySize }
        guard combined.count >= nonceByteCount + tagByteCount else { throw .truncated }
        let ptLength = combined.count - nonceByteCount - tagByteCount
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: ptLength))
        let base = combined.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let rc: Int32 = output.withUnsafeMutableBytes { all in
            var mlen: UInt64 = 0
            return crypto_aead_xchacha20poly1305_ietf_decrypt(
                all.baseAddress!.assumingMemoryBound(to: UInt8.self) + start, &mlen, nil,
                base + nonceByteCount, UInt64(combined.count - nonceByteCount),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                base, key.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else {
            output.removeSubrange(start...)
            throw .authenticationFailed
        }
    }
}

/// An AES-256-GCM key with its key schedule done once: a small pool of
/// OpenSSL contexts initialised with the key is reused, so each operation
/// only sets the nonce. Use it where one key seals or opens many messages.
public final class AES256GCMKey: @unchecked Sendable {
    private struct Context: @unchecked Sendable { let pointer: OpaquePointer }
    private let key: SecureBytes
    private struct Pools { var encrypt: [Context] = []; var decrypt: [Context] = [] }
    private let pools = Mutex(Pools())
    private static let poolLimit = 16
    /// Nonces are a 96-bit counter that starts at a random value drawn when
    /// the key object is created (NIST SP 800-38D 8.2.1 style): unique within
    /// this object, and two objects with the same key overlap only if their
    /// random 96-bit starting points land within 2^64 of each other.
    private let noncePrefix: UInt32
    private let nonceCounter: Atomic<UInt64>

    public init(_ key: SecureBytes) throws(AEADError) {
        guard key.count == AES256GCM.keyByteCount else { throw .invalidKeySize }
        self.key = key
        let r = SecureRandom.bytes(count: 12)
        noncePrefix = r[0..<4].reduce(0) { $0 << 8 | UInt32($1) }
        nonceCounter = Atomic(r[4..<12].reduce(0) { $0 << 8 | UInt64($1) })
    }

    private func nextNonce(into p: UnsafeMutablePointer<UInt8>) {
        let c = nonceCounter.wrappingAdd(1, ordering: .relaxed).oldValue
        withUnsafeBytes(of: noncePrefix.bigEndian) { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: 4) }
        withUnsafeBytes(of: c.bigEndian) { UnsafeMutableRawPointer(p + 4).copyMemory(from: $0.baseAddress!, byteCount: 8) }
    }

    deinit {
        let all = pools.withLock { $0.encrypt + $0.decrypt }
        for c in all { EVP_CIPHER_CTX_free(c.pointer) }
    }

    private func take(encrypt: Bool) -> OpaquePointer? {
        if let c = pools.withLock({ encrypt ? $0.encrypt.popLast() : $0.decrypt.popLast() }) { return c.pointer }
        guard let ctx = EVP_CIPHER_CTX_new() else { return nil }
        let ok = key.withUnsafeBytes { k in
            encrypt
                ? EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), nil)
                : EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), nil)
        }
        guard ok == 1 else { EVP_CIPHER_CTX_free(ctx); return nil }
        return ctx
    }

    private func give(_ ctx: OpaquePointer, encrypt: Bool) {
        let kept = pools.withLock { p -> Bool in
            if encrypt {
                guard p.encrypt.count < Self.poolLimit else { return false }
                p.encrypt.append(Context(pointer: ctx))
            } else {
                guard p.decrypt.count < Self.poolLimit else { return false }
                p.decrypt.append(Context(pointer: ctx))
            }
            return true
        }
        if !kept { EVP_CIPHER_CTX_free(ctx) }
    }

    /// Seals into `nonce ‖ ciphertext ‖ tag`, appended to `output`; a fresh unique nonce when nil.
    public func seal(
        _ plaintext: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer? = nil,
        associatedData: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0), into output: inout [UInt8]
    ) throws(AEADError) {
        let n = AES256GCM.nonceByteCount, t = AES256GCM.tagByteCount
        if let nonce, nonce.count != n { throw .invalidNonceSize }
        guard plaintext.count <= Int(Int32.max) - 64, associatedData.count <= Int(Int32.max) else { throw .library("input too large") }
        guard let ctx = take(encrypt: true) else { throw .library("EVP context setup failed") }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: n + plaintext.count + t))
        let ok: Bool = output.withUnsafeMutableBytes { all in
            let iv = all.baseAddress!.assumingMemoryBound(to: UInt8.self) + start
            if let nonce { UnsafeMutableRawPointer(iv).copyMemory(from: nonce.baseAddress!, byteCount: n) }
            else { nextNonce(into: iv) }
            guard EVP_EncryptInit_ex(ctx, nil, nil, nil, iv) == 1 else { return false }
            var len: Int32 = 0
            if associatedData.count > 0,
               EVP_EncryptUpdate(ctx, nil, &len, associatedData.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(associatedData.count)) != 1 { return false }
            let ct = iv + n
            if plaintext.count > 0,
               EVP_EncryptUpdate(ctx, ct, &len, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(plaintext.count)) != 1 { return false }
            guard EVP_EncryptFinal_ex(ctx, ct + plaintext.count, &len) == 1 else { return false }
            return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(t), ct + plaintext.count) == 1
        }
        guard ok else {
            EVP_CIPHER_CTX_free(ctx)
            output.removeSubrange(start...)
            throw .library("EVP AES-256-GCM encryption failed")
        }
        give(ctx, encrypt: true)
    }

    /// Opens `nonce ‖ ciphertext ‖ tag`, appending the plaintext to `output`.
    public func open(
        _ combined: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0), into output: inout [UInt8]
    ) throws(AEADError) {
        let n = AES256GCM.nonceByteCount, t = AES256GCM.tagByteCount
        guard combined.count >= n + t else { throw .truncated }
        guard combined.count <= Int(Int32.max), associatedData.count <= Int(Int32.max) else { throw .library("input too large") }
        guard let ctx = take(encrypt: false) else { throw .library("EVP context setup failed") }
        let ctLength = combined.count - n - t
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: ctLength))
        let base = combined.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let status: Int32 = output.withUnsafeMutableBytes { all in
            let pt = all.baseAddress!.assumingMemoryBound(to: UInt8.self) + start
            guard EVP_DecryptInit_ex(ctx, nil, nil, nil, base) == 1 else { return -1 }
            var len: Int32 = 0
            if associatedData.count > 0,
               EVP_DecryptUpdate(ctx, nil, &len, associatedData.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(associatedData.count)) != 1 { return -1 }
            if ctLength > 0, EVP_DecryptUpdate(ctx, pt, &len, base + n, Int32(ctLength)) != 1 { return -1 }
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(t), UnsafeMutableRawPointer(mutating: base + n + ctLength)) == 1 else { return -1 }
            return EVP_DecryptFinal_ex(ctx, pt + ctLength, &len) == 1 ? 1 : 0
        }
        if status == -1 { EVP_CIPHER_CTX_free(ctx) } else { give(ctx, encrypt: false) }
        if status != 1 {
            output.withUnsafeMutableBytes { all in
                let tail = UnsafeMutableRawBufferPointer(rebasing: all[start...])
                if let b = tail.baseAddress { sodium_memzero(b, tail.count) }
            }
            output.removeSubrange(start...)
            throw status == 0 ? .authenticationFailed : .library("EVP AES-256-GCM decryption failed")
        }
    }

    /// Convenience: seal bytes, random nonce.
    public func seal<P: ContiguousBytes>(_ plaintext: P, associatedData: [UInt8] = []) throws(AEADError) -> [UInt8] {
        var out = [UInt8]()
        let r: Result<Void, AEADError> = plaintext.withUnsafeBytes { p in
            associatedData.withUnsafeBytes { a in Result { () throws(AEADError) in try seal(p, associatedData: a, into: &out) } }
        }
        try r.get()
        return out
    }

    /// Convenience: open bytes.
    public func open<C: ContiguousBytes>(_ combined: C, associatedData: [UInt8] = []) throws(AEADError) -> [UInt8] {
        var out = [UInt8]()
        let r: Result<Void, AEADError> = combined.withUnsafeBytes { c in
            associatedData.withUnsafeBytes { a in Result { () throws(AEADError) in try open(c, associatedData: a, into: &out) } }
        }
        try r.get()
        return out
    }
}
