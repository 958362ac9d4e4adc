import RelayJSON
import ArgumentParser
import Foundation
import RelayCrypto

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint and verify connection tokens (HS256 or EdDSA).",
        subcommands: [Mint.self, Verify.self])

    struct Mint: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mint a token; prints it on stdout.")

        @Option(help: "HS256 secret (the site's JWT secret string).")
        var secret: String?

        @Option(name: .customLong("ed25519-key"), help: "EdDSA private key: 32-byte seed, base64url (from keygen).")
        var ed25519Key: String?

        @Option(help: "Claims as a JSON object; iat and exp are set from --ttl unless present.")
        var claims: String = "{}"

        @Option(help: "Lifetime in seconds (wordsocket tokens live 300 s).")
        var ttl: Int64 = 300

        func run() throws {
            let signer: JWTSigner
            switch (secret, ed25519Key) {
            case (let s?, nil): signer = .hs256(secret: s)
            case (nil, let k?):
                guard let seed = Base64.decode(k, .url) ?? Base64.decode(k, .standard) else { throw CLIError("--ed25519-key is not base64") }
                signer = JWTSigner(key: .ed25519(try Ed25519.PrivateKey(seed: seed)))
            default: throw CLIError("give exactly one of --secret and --ed25519-key")
            }
            let parsed: JSONValue
            do { parsed = try JSONParser.parse(claims) } catch { throw CLIError("--claims: \(error)") }
            guard case .object(var members) = parsed else { throw CLIError("--claims must be a JSON object") }
            let now = IO.nowMs / 1000
            if !members.contains(where: { $0.0 == "iat" }) { members.append(("iat", .int(now))) }
            if !members.contains(where: { $0.0 == "exp" }) { members.append(("exp", .int(now + ttl))) }
            IO.line(signer.sign(.object(members)))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Verify a token; prints its claims as JSON.")

        @Option(help: "HS256 secret.")
        var secret: String?

        @Option(name: .customLong("ed25519-public-key"), help: "EdDSA public key, base64url.")
        var ed25519PublicKey: String?

        @Option(help: "Clock skew tolerated, seconds.")
        var leeway: Int64 = 5

        @Option(help: "Required audience.")
        var audience: String?

        @Option(help: "Required issuer.")
        var issuer: String?

        @Argument(help: "The token (\"-\" reads stdin).")
        var token: String

        func run() throws {
            let options = JWTVerificationOptions(leewaySeconds: leeway, audience: audience, issuer: issuer)
            let verifier: JWTVerifier
            switch (secret, ed25519PublicKey) {
            case (let s?, nil): verifier = .hs256(secret: s, options: options)
            case (nil, let k?):
                guard let raw = Base64.decode(k, .url) ?? Base64.decode(k, .standard) else { throw CLIError("--ed25519-public-key is not base64") }
                verifier = JWTVerifier(key: .ed25519(try Ed25519.PublicKey(raw)), options: options)
            default: throw CLIError("give exactly one of --secret and --ed25519-public-key")
            }
            let t = token == "-" ? String(decoding: IO.readStdin(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : token
            do {
                IO.json(try verifier.verify(t, now: IO.nowMs / 1000).all)
            } catch {
                throw CLIError("token refused: \(error)")
            }
        }
    }
}
