import RelayJSON
import ArgumentParser
import Foundation
import RelayCrypto

/// Credentials from flags, then environment (RELAY_*), then the profile file
/// that `relayctl site add --save-profile` writes.
struct Profile {
    var url: String?
    var siteKey: String?
    var publishSecret: String?
    var keyID: String?
    var jwtSecret: String?
    var adminKey: String?
    var payloadKey: String?

    static var defaultPath: String {
        if let p = ProcessInfo.processInfo.environment["RELAY_PROFILE"] { return p }
        return (ProcessInfo.processInfo.environment["HOME"] ?? ".") + "/.config/relay/profile.json"
    }

    static func load(_ path: String?) -> Profile {
        let p = path ?? defaultPath
        guard let data = FileManager.default.contents(atPath: p), let v = try? JSONParser.parse(Array(data)) else { return Profile() }
        return Profile(url: v["url"]?.stringValue, siteKey: v["site_key"]?.stringValue, publishSecret: v["publish_secret"]?.stringValue,
                       keyID: v["publish_key_id"]?.stringValue, jwtSecret: v["jwt_secret"]?.stringValue,
                       adminKey: v["admin_key"]?.stringValue, payloadKey: v["payload_key"]?.stringValue)
    }

    func save(_ path: String?) throws {
        let p = path ?? Profile.defaultPath
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var m: [(String, JSONValue)] = []
        for (k, v) in [("url", url), ("site_key", siteKey), ("publish_secret", publishSecret), ("publish_key_id", keyID),
                       ("jwt_secret", jwtSecret), ("admin_key", adminKey), ("payload_key", payloadKey)] {
            if let v { m.append((k, .string(v))) }
        }
        guard FileManager.default.createFile(atPath: p, contents: Data(JSONValue.object(m).serialized()), attributes: [.posixPermissions: 0o600]) else {
            throw CLIError("cannot write profile \(p)")
        }
    }
}

struct Connection: ParsableArguments {
    @Option(help: "relayd base URL. Env: RELAY_URL [default: http://127.0.0.1:8080]")
    var url: String?

    @Option(name: .customLong("site-key"), help: "Site key. Env: RELAY_SITE_KEY")
    var siteKey: String?

    @Option(help: "Publish secret. Env: RELAY_PUBLISH_SECRET")
    var secret: String?

    @Option(help: "Publish secret key id (v2). Env: RELAY_KEY_ID [default: k1]")
    var kid: String?

    @Option(name: .customLong("jwt-secret"), help: "JWT secret, to mint a connection token. Env: RELAY_JWT_SECRET")
    var jwtSecret: String?

    @Option(help: "Profile file. Env: RELAY_PROFILE [default: ~/.config/relay/profile.json]")
    var profile: String?

    var resolved: Profile {
        let env = ProcessInfo.processInfo.environment
        let file = Profile.load(profile)
        return Profile(
            url: url ?? env["RELAY_URL"] ?? file.url ?? "http://127.0.0.1:8080",
            siteKey: siteKey ?? env["RELAY_SITE_KEY"] ?? file.siteKey,
            publishSecret: secret ?? env["RELAY_PUBLISH_SECRET"] ?? file.publishSecret,
            keyID: kid ?? env["RELAY_KEY_ID"] ?? file.keyID ?? "k1",
            jwtSecret: jwtSecret ?? env["RELAY_JWT_SECRET"] ?? file.jwtSecret,
            adminKey: env["RELAY_ADMIN_KEY"] ?? file.adminKey,
            payloadKey: env["RELAY_PAYLOAD_KEY"] ?? file.payloadKey)
    }
}

extension Optional where Wrapped == String {
    func required(_ what: String) throws -> String {
        guard let self, !self.isEmpty else { throw CLIError("missing \(what)") }
        return self
    }
}
