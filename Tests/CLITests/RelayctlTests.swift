import RelayJSON
import Foundation
import Testing
import RelayCrypto

/// Runs the built `relayctl` binary the way scripts do: exit codes, stdout, one-line stderr.
struct CLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: String {
        if let p = ProcessInfo.processInfo.environment["RELAYCTL_BINARY"] { return p }
        let candidates = [".build/debug/relayctl", ".build/release/relayctl"].map { root.appendingPathComponent($0).path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func run(_ args: [String], stdin: String = "", tool: String? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool ?? binary)
        p.arguments = args
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("relayctl-in-\(UUID().uuidString)")
        try Data(stdin.utf8).write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        p.standardInput = try FileHandle(forReadingFrom: tmp)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    static var phpAvailable: Bool {
        ProcessInfo.processInfo.environment["RELAY_REQUIRE_PEERS"] == "1" || FileManager.default.isExecutableFile(atPath: "/usr/bin/php")
    }
}

@Suite struct RelayctlTests {
    @Test func keygenTokenRoundTrip() throws {
        let keys = try CLI.run(["keygen", "--json"])
        #expect(keys.status == 0)
        let k = try JSONParser.parse(keys.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let siteKey = try #require(k["site_key"]?.stringValue)
        #expect(siteKey.count == 32 && Hex.decode(siteKey) != nil)
        #expect(k["site_id"]?.stringValue == SHA256.hexDigest("site:" + siteKey))
        let jwt = try #require(k["jwt_secret"]?.stringValue)
        let minted = try CLI.run(["token", "mint", "--secret", jwt, "--claims", #"{"user_id":"7","v":2}"#, "--ttl", "60"])
        #expect(minted.status == 0)
        let verified = try CLI.run(["token", "verify", "--secret", jwt, minted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(verified.status == 0)
        let claims = try JSONParser.parse(verified.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(claims["user_id"]?.stringValue == "7")
        #expect(claims["exp"]!.int64Value! - claims["iat"]!.int64Value! == 60)
        // EdDSA with the generated pair.
        // `--option=value`: a base64url key may start with "-", which a separate argument would not survive.
        let ed = try CLI.run(["token", "mint", "--ed25519-key=" + k["ed25519_private_key"]!.stringValue!, "--claims", #"{"sub":"x"}"#])
        let edv = try CLI.run(["token", "verify", "--ed25519-public-key=" + k["ed25519_public_key"]!.stringValue!, ed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(edv.status == 0)
        // Wrong key: non-zero exit, one line on stderr, nothing on stdout.
        let bad = try CLI.run(["token", "verify", "--secret", "wrong", minted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(bad.status != 0)
        #expect(bad.stdout.isEmpty)
        #expect(bad.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
        #expect(bad.stderr.contains("badSignature"))
        // Expired.
        let old = try CLI.run(["token", "mint", "--secret", jwt, "--claims", #"{"iat":1000,"exp":1300}"#])
        let expired = try CLI.run(["token", "verify", "--secret", jwt, old.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(expired.status != 0 && expired.stderr.contains("expired"))
    }

    /// `yjs convert` both ways on base64 text: "hello" typed into root text "t" by client 1
    /// (v2 bytes as Yjs's convertUpdateFormatV1ToV2 writes them), and a clear error for --to v3.
    @Test func yjsConvert() throws {
        let v1 = "AQEBAAQBAXQFaGVsbG8A"
        let v2 = "AAABAQAAAQQJBnRoZWxsbwEFAQEAAAEBAAA="
        let to2 = try CLI.run(["yjs", "convert", "--to", "v2", "--base64", "-"], stdin: v1)
        #expect(to2.status == 0 && to2.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == v2, "\(to2.stderr)")
        let to1 = try CLI.run(["yjs", "convert", "--to", "v1", "--base64", "-"], stdin: v2)
        #expect(to1.status == 0 && to1.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == v1, "\(to1.stderr)")
        let bad = try CLI.run(["yjs", "convert", "--to", "v3", "--base64", "-"], stdin: v1)
        #expect(bad.status != 0 && bad.stderr.contains("--to must be v1 or v2"))
    }

    @Test func sealOpenV1AndV2() throws {
        let key = Base64.encode(SecureRandom.bytes(count: 32))
        let sealed = try CLI.run(["seal", "--key-base64", key, "--event", "post.updated"], stdin: #"{"post_id":5}"#)
        #expect(sealed.status == 0)
        let opened = try CLI.run(["open", "--key-base64", key], stdin: sealed.stdout)
        #expect(opened.stdout == #"{"event":"post.updated","data":{"post_id":5}}"#)
        let v2 = try CLI.run(["seal", "--key-base64", key, "--channel", "site:abc:orders", "--kid", "k2", "--alg", "XC20P"], stdin: "hello")
        #expect(try JSONParser.parse(v2.stdout.trimmingCharacters(in: .whitespacesAndNewlines))["alg"]?.stringValue == "XC20P")
        #expect(try CLI.run(["open", "--key-base64", key, "--channel", "site:abc:orders"], stdin: v2.stdout).stdout == "hello")
        let moved = try CLI.run(["open", "--key-base64", key, "--channel", "site:abc:events"], stdin: v2.stdout)
        #expect(moved.status != 0 && moved.stdout.isEmpty)
        let wrongKid = try CLI.run(["open", "--key-base64", key, "--channel", "site:abc:orders", "--kid", "k1"], stdin: v2.stdout)
        #expect(wrongKid.status != 0 && wrongKid.stderr.contains("unknownKeyID"))
        let badKey = try CLI.run(["seal", "--key-base64", "not-base64!"], stdin: "x")
        #expect(badKey.status != 0 && badKey.stderr.contains("base64"))
    }

    @Test(.enabled(if: CLI.phpAvailable))
    func signAndDeriveMatchPHP() throws {
        let body = #"{"channel":"events","event":"x","data":{"a":1}}"#
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("body-\(UUID().uuidString)")
        try Data(body.utf8).write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let signed = try CLI.run(["sign", "--key", "sk", "--secret", "s3cret", "--body-file", tmp.path, "--timestamp", "1700000000000", "--json"])
        #expect(signed.status == 0)
        let h = try JSONParser.parse(signed.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let php = try CLI.run(["-r", "echo hash_hmac('sha256', file_get_contents('\(tmp.path)') . '.1700000000000', 's3cret');"], tool: "/usr/bin/php")
        #expect(h["X-WP-Signal-Sign"]?.stringValue == php.stdout)
        #expect(h["X-WP-Signal-Ts"]?.stringValue == "1700000000000")
        let derived = try CLI.run(["derive-key", "--seed", "salts", "--site-key", "0123456789abcdef0123456789abcdef"])
        let phpKey = try CLI.run(["-r", "echo base64_encode(hash_hkdf('sha256', 'salts', 32, 'wpsignal-v1', '0123456789abcdef0123456789abcdef'));"], tool: "/usr/bin/php")
        #expect(derived.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == phpKey.stdout)
        let v2 = try CLI.run(["sign", "--key", "sk", "--secret", "s3cret", "--body-file", tmp.path, "--scheme", "v2", "--json"])
        let v2h = try JSONParser.parse(v2.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(v2h["X-Relay-Signature"]?.stringValue?.hasPrefix("v2=") == true)
        #expect(try CLI.run(["sign", "--key", "k", "--secret", "s", "--body-file", "/nonexistent"]).status != 0)
    }
}
