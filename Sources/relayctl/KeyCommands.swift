import ArgumentParser
import RelayCrypto

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate new site credentials: site key, publish secret, JWT secret, Ed25519 key pair.")

    @Flag(help: "Print JSON instead of KEY=value lines.")
    var json = false

    func run() throws {
        let siteKey = Hex.encode(SecureRandom.bytes(count: 16))
        let publishSecret = Hex.encode(SecureRandom.bytes(count: 32))
        let jwtSecret = Hex.encode(SecureRandom.bytes(count: 32))
        let ed = Ed25519.PrivateKey()
        let fields: [(String, String)] = [
            ("site_key", siteKey), ("site_id", SHA256.hexDigest("site:" + siteKey)),
            ("publish_secret", publishSecret), ("publish_key_id", "k1"), ("jwt_secret", jwtSecret),
            ("ed25519_private_key", Base64.encode(ed.seed, .url)),
            ("ed25519_public_key", Base64.encode(ed.publicKey.bytes, .url)),
        ]
        if json {
            IO.json(.object(fields.map { ($0.0, .string($0.1)) }))
        } else {
            for (k, v) in fields { IO.line("\(k.uppercased())=\(v)") }
        }
    }
}

struct DeriveKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "derive-key",
        abstract: "Derive the payload key WordPress uses (HKDF-SHA256), base64.",
        discussion: "Without --kid: the envelope v1 key, info \"wpsignal-v1\" (the seed is AUTH_KEY . SECURE_AUTH_KEY unless the wpsignal_encryption_seed filter changes it). With --kid: the recommended envelope v2 key for that key id.")

    @Option(help: "Input keying material (the WordPress salts).")
    var seed: String

    @Option(name: .customLong("site-key"), help: "The site key (HKDF salt).")
    var siteKey: String

    @Option(help: "Derive the envelope v2 key for this key id instead.")
    var kid: String?

    func run() throws {
        let key = kid.map { EnvelopeV2.deriveKey(seed: Array(seed.utf8), siteKey: siteKey, keyID: $0) }
            ?? EnvelopeV1.deriveKey(seed: Array(seed.utf8), siteKey: siteKey)
        IO.line(Base64.encode(key))
    }
}
