import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// relayd as an operator runs it: a config file, JSON logs in a file, a trusted
/// proxy, and SIGHUP to reopen the log and reload what can change.
@Suite("Operations: refusal logs, trusted proxy, SIGHUP reload", .serialized)
struct OperationsTests {
    func writeConfig(_ url: URL, _ json: String) throws {
        try Data(json.utf8).write(to: url)
    }

    func lines(_ url: URL) -> [[String: Any]] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    @Test("Refused connections are logged (JSON) with the forwarded address and close code, never the token; SIGHUP reopens the log and reloads CORS and per-IP limits; a bad config on SIGHUP keeps the running one",
          .enabled(if: Peers.pythonEnabled, "needs a Python with websockets: set RELAY_PYTHON"), .timeLimit(.minutes(1)))
    func refusalLogsAndReload() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-ops-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("relayd.json")
        let logFile = dir.appendingPathComponent("relayd.log")
        try writeConfig(config, #"{"cors-origin": "https://a.example", "max-connections-per-ip": 1, "trusted-proxy": ["127.0.0.1"], "dev-site": true}"#)
        let relay = try await Relayd.start(["--config", config.path, "--log-format", "json", "--log-file", logFile.path],
                                           dataDir: dir.appendingPathComponent("data"))
        defer { relay.stop() }
        let site = try #require(relay.site)

        let one = try await relay.python("forwarded_clients")
        #expect(one["a1"]["open"].bool == true, "\(one["a1"])")
        #expect(one["a2"]["code"].int == 1013, "second connection forwarded for 198.51.100.1: \(one["a2"])")
        #expect(one["b1"]["open"].bool == true, "another forwarded address has its own slot: \(one["b1"])")
        #expect(one["bad"]["code"].int == 4001, "\(one["bad"])")
        #expect(one["cors"].string == "https://a.example")

        let logged = lines(logFile)
        let refused = logged.filter { $0["message"] as? String == "connection refused" }
        #expect(refused.contains { $0["ip"] as? String == "198.51.100.1" && $0["code"] as? String == "1013" && $0["endpoint"] as? String == "/ws" },
                "\(refused)")
        #expect(refused.contains { $0["ip"] as? String == "203.0.113.5" && $0["code"] as? String == "4001" && $0["name"] as? String != nil },
                "\(refused)")
        #expect(!refused.contains { $0["ip"] as? String == "6.6.6.6" }, "the address a client forged is not believed")
        let text = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        let badToken = try #require(one["bad_token"].string)
        #expect(!text.contains(badToken), "tokens are never logged")
        #expect(!text.contains(site.jwtSecret) && !text.contains(site.publishSecret), "secrets are never logged")

        // logrotate: move the file, SIGHUP; relayd writes a new one. The new config is applied.
        try writeConfig(config, #"{"cors-origin": "https://b.example", "max-connections-per-ip": 2, "trusted-proxy": ["127.0.0.1"], "dev-site": true}"#)
        let rotated = dir.appendingPathComponent("relayd.log.1")
        try FileManager.default.moveItem(at: logFile, to: rotated)
        kill(relay.pid, SIGHUP)
        var reloaded: [String: Any]?
        for _ in 0..<100 where reloaded == nil {
            try await Task.sleep(for: .milliseconds(50))
            reloaded = lines(logFile).first { $0["message"] as? String == "configuration reloaded" }
        }
        let line = try #require(reloaded, "a new log file with the reload line")
        let changed = (line["changed"] as? String) ?? ""
        #expect(changed.contains("cors-origin") && changed.contains("max-connections-per-ip"), "\(line)")
        #expect(lines(rotated).contains { $0["message"] as? String == "connection refused" }, "the old file keeps its lines")

        let two = try await relay.python("forwarded_clients")
        #expect(two["a1"]["open"].bool == true && two["a2"]["open"].bool == true, "limit 2 after reload: \(two["a2"])")
        #expect(two["b1"]["open"].bool == true)
        #expect(two["cors"].string == "https://b.example")

        // A broken config file on SIGHUP: an error line, and the running settings stay.
        try writeConfig(config, #"{"cors-origin": "https://c.example", "max-connections-per-ip": "lots"}"#)
        kill(relay.pid, SIGHUP)
        var refusedReload: [String: Any]?
        for _ in 0..<100 where refusedReload == nil {
            try await Task.sleep(for: .milliseconds(50))
            refusedReload = lines(logFile).first { ($0["message"] as? String)?.contains("configuration not reloaded") == true }
        }
        #expect(refusedReload != nil, "\(lines(logFile))")
        #expect((refusedReload?["message"] as? String)?.contains("max-connections-per-ip") == true, "the error names the setting")
        let three = try await relay.python("forwarded_clients")
        #expect(three["cors"].string == "https://b.example", "the running configuration is kept")
        #expect(relay.process.isRunning)
    }
}

/// Backup and restore of the data directory while relayd runs.
@Suite("Operations: online backup and restore", .serialized)
struct BackupTests {
    static let root = Paths.root

    /// A y-websocket node scenario (Tests/peers/yjs/ywebsocket-session.cjs); its last output line is JSON.
    static func node(_ scenario: String, _ config: [String: String]) async throws -> [String: Any] {
        let r = try await runProcess("/usr/bin/node", [root.appendingPathComponent("Tests/peers/yjs/ywebsocket-session.cjs").path, scenario,
                                                       String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)],
                                     environment: ["NODE_PATH": ProcessInfo.processInfo.environment["NODE_PATH"] ?? "/usr/share/nodejs"],
                                     timeout: 60)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard let obj = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] else {
            throw HarnessError("node \(scenario) printed no JSON: \(r.stdout) \(r.stderr)")
        }
        return obj
    }

    /// relayctl (`Paths.relayctl`); stdout and stderr together.
    static func relayctl(_ args: [String]) async throws -> (status: Int32, output: String) {
        let r = try await runProcess(Paths.relayctl, args, timeout: 60)
        return (r.status, r.stdout + r.stderr)
    }

    @Test("relayctl backup copies a running relayd's data directory mid-typing; relayd started on the copy has the sites, the documents and a consistent prefix of the typing; a backup never overwrites",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/node") || ProcessInfo.processInfo.environment["RELAY_REQUIRE_PEERS"] == "1"),
          .timeLimit(.minutes(2)))
    func onlineBackupAndRestore() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-backup-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        let data = base.appendingPathComponent("data"), copy = base.appendingPathComponent("copy")
        let relay = try await Relayd.start(dataDir: data)
        defer { relay.stop(removeData: false) }
        let site = try #require(relay.site)
        func config(_ r: Relayd, _ room: String, _ extra: [String: String] = [:]) -> [String: String] {
            ["url": "http://127.0.0.1:\(r.port)", "site_id": site.siteID, "jwt_secret": site.jwtSecret, "room": room].merging(extra) { $1 }
        }
        let edit = try await Self.node("edit", config(relay, "postType/post:1"))
        #expect(edit["converged"] as? Bool == true, "\(edit)")

        // Typing in another room while the backup runs.
        // The typist goes on until the backup is done (a stop file), so the backup lands mid-typing
        // however long it takes on a loaded machine; 50 keystrokes a second, the site's default
        // client publish rate.
        let stop = base.appendingPathComponent("stop-typing")
        async let typing = Self.node("typing", config(relay, "postType/post:2", [
            "chars": "2000", "interval_ms": "20", "stop_file": stop.path, "timeout_ms": "55000"]))
        try await Task.sleep(for: .milliseconds(1200))
        let backup = try await Self.relayctl(["backup", "--data-dir", data.path, "--to", copy.path])
        try await Task.sleep(for: .milliseconds(300))
        try #require(FileManager.default.createFile(atPath: stop.path, contents: Data()), "stop file")
        let typed = try await typing
        #expect(backup.status == 0, "\(backup.output)")
        #expect(backup.output.contains("sites.sqlite") && backup.output.contains("yjs.sqlite") && backup.output.contains("integrity ok"), "\(backup.output)")
        #expect(typed["all_seen"] as? Bool == true, "\(typed)")
        let full = try #require(typed["text"] as? String)
        let keyMode = try FileManager.default.attributesOfItem(atPath: copy.appendingPathComponent("admin.key").path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        let dbMode = try FileManager.default.attributesOfItem(atPath: copy.appendingPathComponent("sites.sqlite").path)[.posixPermissions] as? Int
        #expect(dbMode == 0o600, "the copy holds the sites' secrets")

        // Never over an existing backup.
        let again = try await Self.relayctl(["backup", "--data-dir", data.path, "--to", copy.path])
        #expect(again.status != 0 && again.output.contains("never overwrites"), "\(again.output)")
        let notData = try await Self.relayctl(["backup", "--data-dir", base.appendingPathComponent("nothing").path, "--to", base.appendingPathComponent("x").path])
        #expect(notData.status != 0 && notData.output.contains("no data directory"), "\(notData.output)")

        // Restore: a relayd on the copy (the original keeps running on its own port).
        let restored = try await Relayd.start(dataDir: copy)
        defer { restored.stop(removeData: false) }
        let one = try await Self.node("read", config(restored, "postType/post:1"))
        #expect(one["text"] as? String == "hello wörld 😀", "the site's token is accepted and the document is there: \(one)")
        let two = try await Self.node("read", config(restored, "postType/post:2"))
        let snapshot = (two["text"] as? String) ?? ""
        #expect(!snapshot.isEmpty && full.hasPrefix(snapshot), "a consistent prefix of what was typed: \(snapshot.count) of \(full.count)")
        #expect(snapshot.count < full.count, "the backup was taken mid-typing (\(snapshot.count) of \(full.count))")
    }
}

@Suite("relayctl doctor against a real relayd", .serialized)
struct DoctorTests {
    @Test("All checks pass with the site's credentials; wrong secrets and an unreachable relay fail with what to fix and exit 1",
          .timeLimit(.minutes(1)))
    func plainHTTP() async throws {
        let relay = try await Relayd.start()
        defer { relay.stop() }
        let site = try #require(relay.site)
        let url = "http://127.0.0.1:\(relay.port)"
        let good = try await BackupTests.relayctl(["doctor", "--url", url, "--site-key", site.siteKey,
                                                   "--secret", site.publishSecret, "--jwt-secret", site.jwtSecret])
        #expect(good.status == 0, "\(good.output)")
        for check in ["reachable", "clock", "websocket", "sse", "site"] {
            #expect(good.output.contains("ok   \(check):"), "\(check): \(good.output)")
        }
        #expect(good.output.contains("no problems found"))

        let bad = try await BackupTests.relayctl(["doctor", "--url", url, "--site-key", site.siteKey,
                                                  "--secret", (site.publishSecret.first == "0" ? "1" : "0") + site.publishSecret.dropFirst(), "--jwt-secret", "wrong"])
        #expect(bad.status == 1, "\(bad.output)")
        #expect(bad.output.contains("FAIL websocket") && bad.output.contains("JWT secret is wrong"), "\(bad.output)")
        #expect(bad.output.contains("FAIL site") && bad.output.contains("publish secret is wrong"), "\(bad.output)")
        #expect(bad.output.contains("FAIL sse"), "\(bad.output)")

        let anonymous = try await BackupTests.relayctl(["doctor", "--url", url, "--json"])
        #expect(anonymous.status == 0, "skipped checks do not fail: \(anonymous.output)")
        let lines = anonymous.output.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.contains { $0["check"] as? String == "websocket" && $0["outcome"] as? String == "ok" }, "\(lines)")
        #expect(lines.contains { $0["check"] as? String == "site" && $0["outcome"] as? String == "skipped" }, "\(lines)")

        let port = try freePort()
        let down = try await BackupTests.relayctl(["doctor", "--url", "http://127.0.0.1:\(port)"])
        #expect(down.status == 1 && down.output.contains("connection refused"), "\(down.output)")
    }

    @Test("HTTPS: a self-signed certificate is trusted with --ca-file (and its near expiry is a warning), refused without it",
          .enabled(if: Peers.which("openssl") != nil || Peers.required, "needs the openssl CLI"), .timeLimit(.minutes(1)))
    func tls() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-doctor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try await selfSignedCertificate(in: dir, days: 3)
        let relay = try await Relayd.start(["--tls-cert", cert, "--tls-key", key], dataDir: dir.appendingPathComponent("data"))
        defer { relay.stop() }
        let site = try #require(relay.site)
        let url = "https://127.0.0.1:\(relay.port)"
        let trusted = try await BackupTests.relayctl(["doctor", "--url", url, "--ca-file", cert, "--site-key", site.siteKey,
                                                      "--secret", site.publishSecret, "--jwt-secret", site.jwtSecret])
        #expect(trusted.status == 0, "\(trusted.output)")
        #expect(trusted.output.contains("WARN tls") && trusted.output.contains("expires in 2 days"), "\(trusted.output)")
        #expect(trusted.output.contains("ok   websocket") && trusted.output.contains("ok   sse") && trusted.output.contains("ok   site"), "\(trusted.output)")
        let untrusted = try await BackupTests.relayctl(["doctor", "--url", url])
        #expect(untrusted.status == 1 && untrusted.output.contains("FAIL reachable") && untrusted.output.contains("--ca-file"), "\(untrusted.output)")
    }
}

@Suite("Site limits: changed while running; old defaults migrated", .serialized)
struct SiteLimitsTests {
    @Test("relayctl site limits changes a running site's limits at once (admin API), and only the ones given",
          .timeLimit(.minutes(1)))
    func changeLimits() async throws {
        let relay = try await Relayd.start()
        defer { relay.stop() }
        let site = try #require(relay.site)
        let url = "http://127.0.0.1:\(relay.port)"
        let set = try await BackupTests.relayctl(["site", "limits", site.siteKey, "--url", url, "--admin-key", relay.adminKey,
                                                  "--max-connections", "7", "--client-publish-rate", "80"])
        #expect(set.status == 0, "\(set.output)")
        let limits = try #require(try JSONSerialization.jsonObject(with: Data(set.output.utf8)) as? [String: Any])["limits"] as? [String: Any]
        #expect(limits?["max_connections"] as? Int == 7)
        #expect(limits?["client_publish_rate"] as? Double == 80)
        #expect(limits?["max_message_bytes"] as? Int == 2 << 20, "untouched")
        let stats = try await BackupTests.relayctl(["stats", "--url", url, "--site-key", site.siteKey, "--secret", site.publishSecret])
        #expect(stats.status == 0 && stats.output.contains("\"max_connections\":7"), "the running relay uses it: \(stats.output)")
        let none = try await BackupTests.relayctl(["site", "limits", site.siteKey, "--url", url, "--admin-key", relay.adminKey])
        #expect(none.status != 0 && none.output.contains("at least one limit"), "\(none.output)")
        let unknown = try await BackupTests.relayctl(["site", "limits", String(repeating: "0", count: 32), "--url", url,
                                                      "--admin-key", relay.adminKey, "--max-connections", "3"])
        #expect(unknown.status != 0, "\(unknown.output)")
    }

    @Test("A registry from before 0.9 with the old defaults (1 MiB payloads, 10/s publishes) gets the new ones; chosen limits stay",
          .enabled(if: Peers.which("python3") != nil || Peers.required), .timeLimit(.minutes(1)))
    func migrateOldDefaults() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-migrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The 0.8 schema, its GRDB migration record, and two sites: old defaults, and chosen limits.
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.executescript('''
            CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
            INSERT INTO grdb_migrations VALUES ('v1');
            CREATE TABLE site (site_key TEXT PRIMARY KEY NOT NULL, site_url TEXT, site_name TEXT, jwt_secret TEXT,
              ed25519_public_key BLOB, limits TEXT NOT NULL, archived INTEGER NOT NULL DEFAULT 0, created_at_ms INTEGER NOT NULL);
            CREATE TABLE publish_secret (site_key TEXT NOT NULL REFERENCES site(site_key) ON DELETE CASCADE,
              key_id TEXT NOT NULL, secret TEXT NOT NULL, valid_until_ms INTEGER, PRIMARY KEY (site_key, key_id));
            CREATE TABLE usage (site_id TEXT NOT NULL, month INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (site_id, month));
            ''')
            old = '{"max_connections":500,"max_message_bytes":1048576,"max_channels_per_connection":128,"client_publish_rate":10.0,"client_publish_burst":20.0}'
            chosen = '{"max_connections":9,"max_message_bytes":65536,"max_channels_per_connection":4,"client_publish_rate":3.0,"client_publish_burst":5.0}'
            for key, limits in (("a" * 32, old), ("b" * 32, chosen)):
                db.execute("INSERT INTO site VALUES (?, NULL, NULL, 'j', NULL, ?, 0, 1)", (key, limits))
                db.execute("INSERT INTO publish_secret VALUES (?, 'k1', 's', NULL)", (key,))
            db.commit()
            """
        let made = try await runProcess(try #require(Peers.which("python3")), ["-c", script, dir.appendingPathComponent("sites.sqlite").path], timeout: 30)
        try #require(made.status == 0, "\(made.stderr)")
        let list = try await BackupTests.relayctl(["site", "list", "--data-dir", dir.path])
        try #require(list.status == 0, "\(list.output)")
        let shown = try await BackupTests.relayctl(["site", "limits", "a" + String(repeating: "a", count: 31), "--data-dir", dir.path, "--max-connections", "500"])
        let a = try #require(try JSONSerialization.jsonObject(with: Data(shown.output.utf8)) as? [String: Any])["limits"] as? [String: Any]
        #expect(a?["max_message_bytes"] as? Int == 2 << 20, "\(shown.output)")
        #expect(a?["client_publish_rate"] as? Double == 50 && a?["client_publish_burst"] as? Double == 200, "\(shown.output)")
        let kept = try await BackupTests.relayctl(["site", "limits", String(repeating: "b", count: 32), "--data-dir", dir.path, "--max-connections", "9"])
        let b = try #require(try JSONSerialization.jsonObject(with: Data(kept.output.utf8)) as? [String: Any])["limits"] as? [String: Any]
        #expect(b?["max_message_bytes"] as? Int == 65536 && b?["client_publish_rate"] as? Double == 3, "\(kept.output)")
    }
}

@Suite("Damaged data files at start")
struct DamagedDataTests {
    func startFails(_ dir: URL) async throws -> ProcessOutput {
        try await runProcess(Paths.relayd, ["--data-dir", dir.path, "--port", String(try freePort())], timeout: 20)
    }

    @Test("A corrupt sites.sqlite or yjs.sqlite stops relayd with a message naming the file, and the file is not changed",
          .timeLimit(.minutes(1)))
    func corruptFiles() async throws {
        for name in ["sites.sqlite", "yjs.sqlite"] {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-corrupt-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let junk = Data((0..<8192).map { _ in UInt8.random(in: 0...255) })
            let file = dir.appendingPathComponent(name)
            try junk.write(to: file)
            let r = try await startFails(dir)
            #expect(r.status != 0, "\(name): relayd must not start: \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("cannot open") && r.stderr.contains(name) && r.stderr.contains("left as it is"), "\(name): \(r.stderr)")
            #expect(!r.stderr.contains("Fatal error") && r.status != 134 && r.status != 139, "no crash: \(r.status)")
            #expect(try Data(contentsOf: file) == junk, "\(name) was not overwritten")
        }
    }
}
