import CSodium

/// Ed25519 keys (RFC 8032) over libsodium.
public enum Ed25519 {
    public static let publicKeyByteCount = 32
    public static let seedByteCount = 32
    public static let signatureByteCount = 64

    public enum Error: Swift.Error, Equatable, Sendable {
        case invalidKeySize
        case signingFailed
    }

    /// A public key; verifies signatures.
    public struct PublicKey: Sendable, Equatable {
        public let bytes: [UInt8]

        public init(_ bytes: [UInt8]) throws(Error) {
            guard bytes.count == publicKeyByteCount else { throw .invalidKeySize }
            self.bytes = bytes
        }

        /// True when `signature` is a valid signature of `message`.
        public func isValidSignature(_ signature: UnsafeRawBufferPointer, for message: UnsafeRawBufferPointer) -> Bool {
            Sodium.ensure()
            guard signature.count == signatureByteCount else { return false }
            return bytes.withUnsafeBufferPointer { pk in
                crypto_sign_verify_detached(
                    signature.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? pk.baseAddress!, UInt64(message.count),
                    pk.baseAddress!) == 0
            }
        }

        public func isValidSignature<S: ContiguousBytes, M: ContiguousBytes>(_ signature: S, for message: M) -> Bool {
            signature.withUnsafeBytes { s in message.withUnsafeBytes { m in isValidSignature(s, for: m) } }
        }
    }

    /// A private key held as its 32-byte seed (zeroed on release).
    public struct PrivateKey: Sendable {
        /// libsodium's 64-byte secret key (seed ‖ public key).
        private let secret: SecureBytes
        public let publicKey: PublicKey

        /// A fresh random key.
        public init() {
            try! self.init(seed: SecureBytes(randomCount: seedByteCount))
        }

        /// The key for a 32-byte seed (the JWK `d` of RFC 8037).
        public init<Seed: ContiguousBytes>(seed: Seed) throws(Error) {
            Sodium.ensure()
            var pk = [UInt8](repeating: 0, count: publicKeyByteCount)
            var sk = [UInt8](repeating: 0, count: 64)
            let ok: Bool = seed.withUnsafeBytes { s in
                guard s.count == seedByteCount else { return false }
                return crypto_sign_seed_keypair(&pk, &sk, s.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
            }
            guard ok else { throw .invalidKeySize }
            secret = SecureBytes(copying: sk)
            secureZero(&sk)
            publicKey = try PublicKey(pk)
        }

        /// The 32-byte seed.
        public var seed: [UInt8] { Array(secret.bytes[0..<32]) }

        /// The detached signature of `message`.
        public func signature<M: ContiguousBytes>(for message: M) -> [UInt8] {
            var sig = [UInt8](repeating: 0, count: signatureByteCount)
            message.withUnsafeBytes { m in
                secret.withUnsafeBytes { sk in
                    _ = crypto_sign_detached(&sig, nil, m.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                             UInt64(m.count), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            return sig
        }
    }
}
