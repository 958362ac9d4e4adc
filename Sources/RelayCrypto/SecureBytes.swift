import CSodium
import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libsodium must be initialised once before use; `sodium_init` is idempotent
/// and thread-safe, and a `static let` runs it exactly once.
enum Sodium {
    static let ready: Bool = sodium_init() >= 0

    @inline(__always)
    static func ensure() {
        precondition(ready, "libsodium failed to initialise")
    }
}

/// Key material in memory that is zeroed when the last reference goes away.
///
/// Immutable after initialisation, so it is safe to share across tasks.
public final class SecureBytes: @unchecked Sendable, ContiguousBytes {
    private let storage: UnsafeMutableRawBufferPointer

    /// Copies `bytes` into zeroing storage.
    public init<Bytes: ContiguousBytes>(copying bytes: Bytes) {
        storage = bytes.withUnsafeBytes { source in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 16)
            if let base = source.baseAddress, source.count > 0 {
                buffer.baseAddress!.copyMemory(from: base, byteCount: source.count)
            }
            return UnsafeMutableRawBufferPointer(start: buffer.baseAddress, count: source.count)
        }
    }

    /// Copies the UTF-8 bytes of `string` (publish and JWT secrets are used as
    /// their string bytes by the wordsocket contract).
    public convenience init(utf8 string: String) {
        self.init(copying: Array(string.utf8))
    }

    /// `count` fresh random bytes from the system CSPRNG.
    public init(randomCount count: Int) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        SecureRandom.fill(UnsafeMutableRawBufferPointer(start: buffer.baseAddress, count: count))
        storage = UnsafeMutableRawBufferPointer(start: buffer.baseAddress, count: count)
    }

    deinit {
        if let base = storage.baseAddress {
            sodium_memzero(base, storage.count)
            storage.deallocate()
        }
    }

    /// Number of bytes.
    public var count: Int { storage.count }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(storage))
    }

    /// A copy of the bytes. Use sparingly: the copy is not zeroed on release.
    public var bytes: [UInt8] { Array(UnsafeRawBufferPointer(storage)) }
}

/// Cryptographically secure random bytes.
public enum SecureRandom {
    /// `count` random bytes from OpenSSL's CSPRNG (a per-thread DRBG seeded
    /// from the kernel; no system call per request).
    public static func bytes(count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    /// Fills `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        guard RAND_bytes(base.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1 else {
            // RAND_bytes only fails when the DRBG cannot be seeded; fall back to the kernel through libsodium.
            Sodium.ensure()
            randombytes_buf(base, buffer.count)
            return
        }
    }
}

/// Comparisons whose running time does not depend on where inputs differ.
public enum ConstantTime {
    /// True when both inputs have the same length and bytes. The length check
    /// is not constant-time (lengths are public); the byte comparison is.
    public static func equals<A: ContiguousBytes, B: ContiguousBytes>(_ a: A, _ b: B) -> Bool {
        a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in
                guard x.count == y.count else { return false }
                if x.count == 0 { return true }
                return CRYPTO_memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0
            }
        }
    }

    /// Plain (not constant-time) equality, for public data on hot paths.
    @inline(__always)
    static func bytesEqual(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && a.withUnsafeBytes { memcmp($0.baseAddress!, b.baseAddress!, a.count) == 0 }
    }

    /// Constant-time equality of the UTF-8 bytes of two strings.
    public static func equals(_ a: String, _ b: String) -> Bool {
        equals(Array(a.utf8), Array(b.utf8))
    }
}

/// Overwrites memory with zeros in a way the optimiser cannot remove.
public func secureZero(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { if let b = $0.baseAddress { sodium_memzero(b, $0.count) } }
}
