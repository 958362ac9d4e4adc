import RelayJSON
import ArgumentParser
import Foundation
import RelayClient
import RelayCore
import RelayCrypto
import RelaySites
import RelayPostgres
import PostgresNIO
import Logging

struct SiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site",
        abstract: "Manage sites: directly in a data directory (relayd stopped) or through a running relayd's admin API.",
        subcommands: [Add.self, List.self, Limits.self, Rotate.self, Remove.self])

    struct Target: ParsableArguments {
        @Option(name: .customLong("data-dir"), help: "Edit this data directory directly (stop relayd first: it caches sites).")
        var dataDir: String?

        @Option(help: "relayd base URL for the admin API. Env: RELAY_URL")
        var url: String?

        @Option(name: .customLong("database"), help: "Edit a cluster's shared registry in this PostgreSQL database directly (postgres://user:password@host:port/database); running nodes see the change at once. Env: RELAY_DATABASE")
        var database: String?

        var databaseURL: String? { database ?? (url == nil && dataDir == nil ? ProcessInfo.processInfo.environment["RELAY_DATABASE"] : nil) }

        @Option(name: .customLong("admin-key"), help: "Admin API key. Env: RELAY_ADMIN_KEY [default: <data-dir>/admin.key when local]")
        var adminKey: String?

        var apiURL: String? { url ?? ProcessInfo.processInfo.environment["RELAY_URL"] }

        /// Through the admin API (not a data directory or a database).
        var viaAPI: Bool { apiURL != nil && dataDir == nil && databaseURL == nil }

        func key() throws -> String {
            if let adminKey { return adminKey }
            if let k = ProcessInfo.processInfo.environment["RELAY_ADMIN_KEY"] { return k }
            if let k = Profile.load(nil).adminKey { return k }
            throw CLIError("missing --admin-key")
        }

        func admin(_ path: String, _ body: JSONValue) async throws -> JSONValue {
            let a = try await RelayHTTP.send(method: path == "/api/sites" ? "GET" : "POST", url: apiURL! + path,
                                             headers: [("Authorization", "Bearer " + (try key())), ("Content-Type", "application/json")],
                                             body: path == "/api/sites" ? nil : body.serialized())
            guard (200..<300).contains(a.status), let v = a.json else { throw CLIError("admin API refused (HTTP \(a.status)): \(a.text)") }
            return v
        }

        func store() async throws -> SiteStore {
            if let databaseURL {
                do {
                    let backend = try await PostgresSiteBackend.open(try PostgresClient.Configuration.fromURL(databaseURL),
                                                                     logger: Logger(label: "relayctl.postgres"))
                    return try await SiteStore.open(backend)
                } catch { throw CLIError("--database: \(error)") }
            }
            guard let dataDir else { throw CLIError("give --data-dir, --database or --url") }
            return try SiteStore(directory: dataDir)
        }
    }

    static func credentials(_ r: SiteRecord) -> JSONValue {
        var m: [(String, JSONValue)] = [("site_key", .string(r.siteKey)), ("site_id", .string(r.siteID))]
        if let s = r.publishSecrets.last(where: { $0.validUntilMs == nil }) {
            m += [("publish_secret", .string(s.secret)), ("publish_key_id", .string(s.keyID))]
        }
        if let j = r.jwtSecret { m.append(("jwt_secret", .string(j))) }
        return .object(m)
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a site; prints its credentials (JSON).")
        @OptionGroup var target: Target
        @Option(name: .customLong("site-url")) var siteURL: String?
        @Option var name: String?
        @Option(name: .customLong("site-key"), help: "Import an existing site key (e.g. a WordPress install's).") var siteKey: String?
        @Option(name: .customLong("publish-secret")) var publishSecret: String?
        @Option(name: .customLong("jwt-secret")) var jwtSecret: String?
        @Option(name: .customLong("ed25519-public-key"), help: "Accept EdDSA tokens signed by this key (base64url).") var ed25519PublicKey: String?
        @Option(name: .customLong("max-connections")) var maxConnections: Int?
        @Option(name: .customLong("max-message-bytes")) var maxMessageBytes: Int?
        @Option(name: .customLong("monthly-quota")) var monthlyQuota: Int?
        @Flag(name: .customLong("save-profile"), help: "Write the credentials to the relayctl profile.") var saveProfile = false
        @Option(help: "Profile file to write. [default: ~/.config/relay/profile.json]") var profile: String?

        func run() async throws {
            var limits: [(String, JSONValue)] = []
            if let v = maxConnections { limits.append(("max_connections", .int(Int64(v)))) }
            if let v = maxMessageBytes { limits.append(("max_message_bytes", .int(Int64(v)))) }
            if let v = monthlyQuota { limits.append(("monthly_message_quota", .int(Int64(v)))) }
            let creds: JSONValue
            if target.viaAPI {
                var body: [(String, JSONValue)] = [("limits", .object(limits))]
                for (k, v) in [("site_url", siteURL), ("site_name", name), ("site_key", siteKey), ("publish_secret", publishSecret),
                               ("jwt_secret", jwtSecret), ("ed25519_public_key", ed25519PublicKey)] {
                    if let v { body.append((k, .string(v))) }
                }
                creds = try await target.admin("/api/sites/add", .object(body))
            } else {
                let store = try await target.store()
                var r = SiteRecord.generate(siteURL: siteURL, siteName: name)
                if let siteKey { r.siteKey = siteKey }
                if let publishSecret { r.publishSecrets = [PublishSecret(keyID: "k1", secret: publishSecret)] }
                if let jwtSecret { r.jwtSecret = jwtSecret }
                if let pk = ed25519PublicKey {
                    guard let raw = Base64.decode(pk, .url) ?? Base64.decode(pk, .standard), raw.count == 32 else { throw CLIError("--ed25519-public-key must be 32 bytes") }
                    r.ed25519PublicKey = raw
                }
                if let v = maxConnections { r.limits.maxConnections = v }
                if let v = maxMessageBytes { r.limits.maxMessageBytes = v }
                if let v = monthlyQuota { r.limits.monthlyMessageQuota = v }
                do { try await store.add(r) } catch { throw CLIError("\(error)") }
                creds = SiteCommand.credentials(r)
            }
            if saveProfile {
                var p = Profile.load(profile)
                p.url = target.apiURL ?? p.url
                p.siteKey = creds["site_key"]?.stringValue
                p.publishSecret = creds["publish_secret"]?.stringValue
                p.keyID = creds["publish_key_id"]?.stringValue
                p.jwtSecret = creds["jwt_secret"]?.stringValue
                if let k = try? target.key() { p.adminKey = k }
                try p.save(profile)
            }
            IO.json(creds)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sites (no secrets), one JSON object per line.")
        @OptionGroup var target: Target

        func run() async throws {
            if target.viaAPI {
                for s in try await target.admin("/api/sites", .null)["sites"]?.arrayValue ?? [] { IO.json(s) }
            } else {
                for r in try await target.store().list() {
                    IO.json(.object([("site_key", .string(r.siteKey)), ("site_id", .string(r.siteID)),
                                     ("site_url", r.siteURL.map(JSONValue.string) ?? .null), ("archived", .bool(r.archived)),
                                     ("publish_key_ids", .array(r.publishSecrets.map { .string($0.keyID) }))]))
                }
            }
        }
    }

    struct Limits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a site's limits; prints the site (no secrets).",
            discussion: "Only the limits given change. New connections and publishes use them at once; open connections keep their per-connection limits (channels, publish rate) until they reconnect.")
        @OptionGroup var target: Target
        @Option(name: .customLong("max-connections"), help: "Concurrent connections (4029 beyond).") var maxConnections: Int?
        @Option(name: .customLong("max-message-bytes"), help: "Largest publication payload.") var maxMessageBytes: Int?
        @Option(name: .customLong("max-channels-per-connection"), help: "Subscriptions per connection (4009 beyond).") var maxChannels: Int?
        @Option(name: .customLong("monthly-quota"), help: "Accepted publications per month; 0 for none.") var monthlyQuota: Int?
        @Option(name: .customLong("client-publish-rate"), help: "Browser publishes per second per connection.") var clientRate: Double?
        @Option(name: .customLong("client-publish-burst"), help: "Browser publish burst per connection.") var clientBurst: Double?
        @Argument var siteKey: String

        func run() async throws {
            var limits: [(String, JSONValue)] = []
            if let v = maxConnections { limits.append(("max_connections", .int(Int64(v)))) }
            if let v = maxMessageBytes { limits.append(("max_message_bytes", .int(Int64(v)))) }
            if let v = maxChannels { limits.append(("max_channels_per_connection", .int(Int64(v)))) }
            if let v = monthlyQuota { limits.append(("monthly_message_quota", v > 0 ? .int(Int64(v)) : .null)) }
            if let v = clientRate { limits.append(("client_publish_rate", .number(String(v)))) }
            if let v = clientBurst { limits.append(("client_publish_burst", .number(String(v)))) }
            guard !limits.isEmpty else { throw CLIError("give at least one limit to change (see relayctl site limits --help)") }
            if target.viaAPI {
                IO.json(try await target.admin("/api/sites/limits", .object([("site_key", .string(siteKey)), ("limits", .object(limits))])))
            } else {
                do {
                    let change = JSONValue.object(limits)
                    let r = try await target.store().setLimits(siteKey: siteKey) { $0 = LimitsCodec.apply(change, to: $0) }
                    IO.json(.object([("site_key", .string(r.siteKey)), ("site_id", .string(r.siteID)),
                                     ("limits", (try? JSONParser.parse(LimitsCodec.encode(r.limits))) ?? .null)]))
                } catch { throw CLIError("\(error)") }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "New publish secret; the old one stays valid for the grace period.")
        @OptionGroup var target: Target
        @Option(help: "Seconds the previous secret stays valid.") var grace: Int64 = 3600
        @Flag(name: .customLong("jwt"), help: "Also replace the JWT secret (existing tokens stop verifying).") var jwt = false
        @Argument var siteKey: String

        func run() async throws {
            if target.viaAPI {
                IO.json(try await target.admin("/api/sites/rotate", .object([("site_key", .string(siteKey)), ("grace_seconds", .int(grace)), ("rotate_jwt_secret", .bool(jwt))])))
            } else {
                do { IO.json(SiteCommand.credentials(try await target.store().rotate(siteKey: siteKey, graceSeconds: grace, rotateJWTSecret: jwt))) }
                catch { throw CLIError("\(error)") }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a site and its secrets.")
        @OptionGroup var target: Target
        @Argument var siteKey: String

        func run() async throws {
            if target.viaAPI {
                _ = try await target.admin("/api/sites/remove", .object([("site_key", .string(siteKey))]))
            } else {
                do { try await target.store().remove(siteKey: siteKey) } catch { throw CLIError("\(error)") }
            }
        }
    }
}
