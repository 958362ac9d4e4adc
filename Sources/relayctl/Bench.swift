import RelayJSON
import ArgumentParser
import Foundation
import RelayCrypto

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks and load generators.",
        subcommands: [CryptoBench.self, FanoutBench.self, ConnectionsBench.self, PublishBench.self, SoakBench.self])
}

/// Crypto throughput, single thread. `Benchmarks/crypto.sh` runs it beside `openssl speed`.
struct CryptoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto",
        abstract: "Seal/open throughput, token and signature verifications per second (one core).")

    @Option(help: "Seconds per measurement.")
    var seconds: Double = 1.0

    @Flag(help: "Print JSON lines.")
    var json = false

    @Option(help: "Only run measurements whose name starts with this.")
    var only: String?

    func wanted(_ name: String) -> Bool { only.map { name.hasPrefix($0) } ?? true }

    /// Runs `body` in batches until `seconds` elapse; returns operations per second.
    func measure(_ body: () throws -> Void) rethrows -> Double {

        let clock = ContinuousClock()
        for _ in 0..<100 { try body() }  // warm up
        var ops = 0
        let start = clock.now
        var elapsed: Duration = .zero
        repeat {
            for _ in 0..<256 { try body() }
            ops += 256
            elapsed = clock.now - start
        } while elapsed < .milliseconds(Int64(seconds * 1000))
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(ops) / s
    }

    func report(_ name: String, size: Int?, opsPerSecond: Double) {
        if json {
            var m: [(String, JSONValue)] = [("name", .string(name)), ("ops_per_s", .number(String(format: "%.0f", opsPerSecond)))]
            if let size {
                m.append(("bytes", .int(Int64(size))))
                m.append(("bytes_per_s", .number(String(format: "%.0f", opsPerSecond * Double(size)))))
            }
            IO.json(.object(m))
        } else {
            let label = name.padding(toLength: 32, withPad: " ", startingAt: 0)
            let sizeText = size.map { String($0).leftPadded(7) + " B" } ?? String(repeating: " ", count: 9)
            let mbs = size.map { String(format: "%10.1f MB/s", opsPerSecond * Double($0) / 1e6) } ?? ""
            IO.line(label + sizeText + String(format: "%12.0f ops/s", opsPerSecond) + mbs)
        }
    }

    /// Measures and reports one case when `--only` selects it.
    func bench(_ name: String, size: Int? = nil, _ body: () throws -> Void) rethrows {
        guard wanted(name) else { return }
        report(name, size: size, opsPerSecond: try measure(body))
    }

    func run() throws {
        let key = SecureBytes(randomCount: 32)
        for size in [256, 1024, 16384] {
            let pt = [UInt8](repeating: 0x61, count: size)
            var out = [UInt8]()
            out.reserveCapacity(size + 64)
            try bench("aes-256-gcm seal", size: size) {
                out.removeAll(keepingCapacity: true)
                try pt.withUnsafeBytes { p in try key.withUnsafeBytes { k in
                    try AES256GCM.seal(p, key: k, nonce: nil, associatedData: UnsafeRawBufferPointer(start: nil, count: 0), into: &out)
                } }
            }
            let sealed = try AES256GCM.seal(pt, key: key)
            var plain = [UInt8]()
            plain.reserveCapacity(size)
            try bench("aes-256-gcm open", size: size) {
                plain.removeAll(keepingCapacity: true)
                try sealed.withUnsafeBytes { c in try key.withUnsafeBytes { k in
                    try AES256GCM.open(c, key: k, associatedData: UnsafeRawBufferPointer(start: nil, count: 0), into: &plain)
                } }
            }
            let keyed = try AES256GCMKey(key)
            try bench("aes-256-gcm keyed seal", size: size) {
                out.removeAll(keepingCapacity: true)
                try pt.withUnsafeBytes { try keyed.seal($0, into: &out) }
            }
            try bench("aes-256-gcm keyed open", size: size) {
                plain.removeAll(keepingCapacity: true)
                try sealed.withUnsafeBytes { try keyed.open($0, into: &plain) }
            }
            try bench("xchacha20-poly1305 seal", size: size) { _ = try XChaCha20Poly1305.seal(pt, key: key) }
            try bench("envelope v1 seal+open", size: size) { _ = try EnvelopeV1.open(try EnvelopeV1.seal(pt, key: key), key: key) }
        }

        let now = Int64(Date().timeIntervalSince1970)
        let siteKey = "0123456789abcdef0123456789abcdef"
        let siteID = SHA256.hexDigest("site:" + siteKey)
        let claims = JWTClaims(tenantID: SHA256.hexDigest("tenant:" + siteKey), siteID: siteID, userID: "42",
                               allowedChannelPrefixes: ["site:\(siteID):"], allowedPublishPrefixes: ["site:\(siteID):"],
                               version: 2, issuedAt: now, expiresAt: now + 300)
        let hsToken = JWTSigner.hs256(secret: "jwt-secret").sign(claims)
        let hs = JWTVerifier.hs256(secret: "jwt-secret")
        try bench("jwt hs256 verify", size: hsToken.utf8.count) { _ = try hs.verify(hsToken, now: now) }
        try bench("jwt hs256 signature only", size: hsToken.utf8.count) { _ = try hs.verifiedPayload(hsToken) }
        let payload = try hs.verifiedPayload(hsToken)
        try bench("jwt claims parse only", size: payload.count) { _ = try JWTClaims(json: try JSONParser.parse(payload)) }
        let ed = Ed25519.PrivateKey()
        let edToken = JWTSigner(key: .ed25519(ed)).sign(claims)
        let edv = JWTVerifier(key: .ed25519(ed.publicKey))
        try bench("jwt eddsa verify", size: edToken.utf8.count) { _ = try edv.verify(edToken, now: now) }

        let secret = String(repeating: "ab", count: 32)
        let body = Array(#"{"channel":"events","event":"encrypted","data":{"v":1,"p":"\#(String(repeating: "A", count: 200))"}}"#.utf8)
        let verifier = PublishVerifier { $0 == siteKey ? [PublishSecret(keyID: "k1", secret: secret)] : nil }
        let nowMs = now * 1000
        let v1 = SignedRequest(method: "POST", path: "/publish",
                               headers: PublishSignatureV1.headers(siteKey: siteKey, secret: secret, body: body, timestampMs: nowMs), body: body)
        try bench("publish v1 verify", size: body.count) { _ = try verifier.verify(v1, nowMs: nowMs) }
        guard wanted("publish v2 verify") else { return }
        // v2 needs a fresh nonce per request (replay cache); pre-sign a pool.
        let pool = (0..<Int(seconds * 400_000) + 1000).map { i in
            SignedRequest(method: "POST", path: "/publish", headers: PublishSignatureV2.headers(
                method: "POST", path: "/publish", siteKey: siteKey, keyID: "k1", secret: secret, body: body,
                timestampMs: nowMs, nonce: "bench-nonce-\(i)-padding"), body: body)
        }
        var i = 0
        try bench("publish v2 verify", size: body.count) {
            _ = try verifier.verify(pool[i % pool.count], nowMs: nowMs)
            i += 1
            if i % pool.count == 0 { throw CLIError("v2 pool exhausted; lower --seconds") }
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
