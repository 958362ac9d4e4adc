import Foundation
import Testing

/// y-websocket rooms proven with real peers: Debian's y-websocket client (node) and pycrdt (Rust yrs).
@Suite(.serialized) struct YjsRoomTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let required = ProcessInfo.processInfo.environment["RELAY_REQUIRE_PEERS"] == "1"
    static var nodeAvailable: Bool { required || FileManager.default.isExecutableFile(atPath: "/usr/bin/node") }
    static var python: String { ProcessInfo.processInfo.environment["RELAY_PYTHON"] ?? "/usr/bin/python3" }

    /// One relayd process on a free port with a temporary data directory.
    final class Relay {
        let process = Process()
        let port: Int
        let dataDir: String
        var siteID = ""
        var jwtSecret = ""
        let output = Pipe()

        init(dataDir: String? = nil, extra: [String] = []) throws {
            port = Int.random(in: 20_000...40_000)
            self.dataDir = dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("relay-yjs-\(UUID().uuidString)").path
            process.executableURL = URL(fileURLWithPath: Paths.relayd)
            process.arguments = ["--port", String(port), "--data-dir", self.dataDir, "--log-level", "warning"] + extra
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        var url: String { "http://127.0.0.1:\(port)" }

        /// Waits for the dev-site lines (first start) and the listening line.
        func waitReady(expectCredentials: Bool = true) throws {
            var text = ""
            let deadline = Date().addingTimeInterval(20)
            let handle = output.fileHandleForReading
            while Date() < deadline && !text.contains("relayd listening") {
                let chunk = handle.availableData
                if chunk.isEmpty { Thread.sleep(forTimeInterval: 0.05); continue }
                text += String(decoding: chunk, as: UTF8.self)
            }
            guard text.contains("relayd listening") else { throw Failure("relayd did not start: \(text)") }
            if expectCredentials {
                func field(_ name: String) -> String {
                    text.split(separator: "\n").first { $0.contains(name + ":") }?.split(separator: " ").last.map(String.init) ?? ""
                }
                siteID = field("site_id"); jwtSecret = field("jwt_secret")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }

        func stop() {
            if process.isRunning { process.terminate(); process.waitUntilExit() }
        }

        deinit { stop() }

        func config(room: String, _ extra: [String: String] = [:]) -> String {
            var d = ["url": url, "site_id": siteID, "jwt_secret": jwtSecret, "room": room]
            for (k, v) in extra { d[k] = v }
            let data = try! JSONSerialization.data(withJSONObject: d)
            return String(decoding: data, as: UTF8.self)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    static func run(_ exe: String, _ args: [String]) throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["NODE_PATH"] = env["NODE_PATH"] ?? "/usr/share/nodejs"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let last = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard let obj = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] else {
            throw Failure("peer printed no JSON: \(String(decoding: data, as: UTF8.self))")
        }
        return obj
    }

    static func node(_ scenario: String, _ config: String) throws -> [String: Any] {
        try run("/usr/bin/node", [root.appendingPathComponent("Tests/peers/yjs/ywebsocket-session.cjs").path, scenario, config])
    }

    @Test(.enabled(if: nodeAvailable), .timeLimit(.minutes(2)))
    func ywebsocketClientsConvergePersistAndRespectGrants() throws {
        let relay = try Relay()
        try relay.waitReady()
        let room = "postType/post:\(Int.random(in: 1...99999))"
        // Two stock y-websocket clients edit and converge; a late joiner gets the full document from the relay.
        let edit = try Self.node("edit", relay.config(room: room))
        #expect(edit["converged"] as? Bool == true, "\(edit)")
        #expect(edit["text_a"] as? String == "hello wörld 😀")
        #expect(edit["late_text"] as? String == "hello wörld 😀", "late joiner after both left: \(edit)")
        #expect(edit["late_map"] as? String == #"{"nested":[1,2,3]}"#)
        // A read-only token cannot change the document and is told so (y-protocols auth message).
        let ro = try Self.node("readonly", relay.config(room: room))
        #expect(ro["ro_initial"] as? String == "hello wörld 😀")
        #expect(ro["ro_denied_message"] as? Bool == true)
        #expect(ro["after_ro_text"] as? String == "hello wörld 😀", "read-only edit leaked: \(ro)")
        // Awareness: seen by others, removed when the socket closes, cached for late joiners.
        let aw = try Self.node("awareness", relay.config(room: room + "-aw"))
        #expect(aw["b_sees_a"] as? Bool == true)
        #expect(aw["b_sees_a_gone"] as? Bool == true, "awareness of a closed client must disappear: \(aw)")
        #expect(aw["c_sees_b"] as? Bool == true)
        // An expired token is closed with 4001 (connection-expired).
        let ex = try Self.node("expired", relay.config(room: room))
        #expect(ex["close_codes"] as? [Int] == [4001], "\(ex)")
        // A second implementation (pycrdt / yrs) reads the same room and appends.
        let py = try Self.run(Self.python, [Self.root.appendingPathComponent("Tests/peers/yjs/pycrdt_client.py").path,
                                            relay.config(room: room, ["append": " + yrs", "expect_prefix": "hello"]), "append"])
        #expect(py["text"] as? String == "hello wörld 😀 + yrs", "\(py)")
        // Restart: the document is still there.
        relay.stop()
        let again = try Relay(dataDir: relay.dataDir)
        try again.waitReady(expectCredentials: false)
        again.siteID = relay.siteID; again.jwtSecret = relay.jwtSecret
        let read = try Self.node("read", again.config(room: room))
        #expect(read["text"] as? String == "hello wörld 😀 + yrs", "after restart: \(read)")
        again.stop()
    }

    /// Three y-websocket writers firing updates as fast as their sockets take them, with SQLite and
    /// the group-commit queue's back-pressure as tight as it goes (one message in flight per
    /// connection, a 64-byte queue), and in memory: nothing lost or reordered, nobody closed, and
    /// everything on disk after a restart.
    @Test(.enabled(if: nodeAvailable), .timeLimit(.minutes(2)),
          arguments: [["--yjs-max-in-flight", "1", "--yjs-write-queue-bytes", "64"], [], ["--yjs-persistence", "memory"]])
    func burstsOfUpdatesAreStoredInOrderUnderBackPressure(_ flags: [String]) throws {
        let relay = try Relay(extra: flags)
        try relay.waitReady()
        let room = "burst-\(Int.random(in: 1...99999))"
        let r = try Self.node("burst", relay.config(room: room, ["chars": "150", "timeout_ms": "40000"]))
        #expect(r["writers_converged"] as? Bool == true, "\(flags): \(r)")
        #expect(r["late_complete"] as? Bool == true, "\(flags): \(r)")
        #expect(r["in_order"] as? Bool == true, "\(flags): \(r)")
        #expect((r["closes"] as? [Int])?.isEmpty == true, "\(flags): \(r)")
        guard !flags.contains("memory") else { return }
        // The group commit's counters: 450 updates stored in fewer transactions when they queue up.
        let metrics = try #require(httpGet(port: relay.port, path: "/metrics")).body
        func value(_ name: String) -> Double {
            metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1
        }
        #expect(value("relay_yjs_commits_total") >= 1 && value("relay_yjs_commit_writes_total") >= 450, "\(metrics.split(separator: "\n").filter { $0.contains("yjs_commit") })")
        #expect(value("relay_yjs_commit_failures_total") <= 0)
        relay.stop()
        let again = try Relay(dataDir: relay.dataDir, extra: flags)
        try again.waitReady(expectCredentials: false)
        again.siteID = relay.siteID; again.jwtSecret = relay.jwtSecret
        // The writers come back and add nothing: what they and a late joiner get is what relayd
        // reloaded from yjs.sqlite.
        let reloaded = try Self.node("burst", again.config(room: room, ["chars": "0", "expect": "150"]))
        #expect(reloaded["late_complete"] as? Bool == true && reloaded["in_order"] as? Bool == true, "after restart: \(reloaded)")
        again.stop()
    }

    @Test(.enabled(if: nodeAvailable), .timeLimit(.minutes(1)))
    func memoryOnlyModeForgetsOnRestartAndLimitsApply() throws {
        let relay = try Relay(extra: ["--yjs-persistence", "memory", "--yjs-max-connections-per-room", "2"])
        try relay.waitReady()
        let room = "postType/page:7"
        let edit = try Self.node("edit", relay.config(room: room))
        #expect(edit["converged"] as? Bool == true)
        let limited = try Self.node("roomlimit", relay.config(room: room))
        #expect(limited["third_close"] != nil)
        #expect(limited["third_close"] as? Int == 4012, "third connection over the per-room cap: \(limited)")
        // Metrics are labelled by endpoint and code: the room-full close is counted on /yjs, not /ws.
        let metrics = try #require(httpGet(port: relay.port, path: "/metrics")).body
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("relay_disconnects_total{") && $0.contains("endpoint=\"/yjs\"") && $0.contains("code=\"4012\"") }
        #expect(line?.contains("name=\"room_full\"") == true, "\(metrics.split(separator: "\n").filter { $0.contains("disconnects") })")
        #expect(line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0 >= 1)
        relay.stop()
        let again = try Relay(dataDir: relay.dataDir, extra: ["--yjs-persistence", "memory"])
        try again.waitReady(expectCredentials: false)
        again.siteID = relay.siteID; again.jwtSecret = relay.jwtSecret
        let read = try Self.node("read", again.config(room: room))
        #expect(read["text"] as? String == "", "memory-only rooms do not survive a restart: \(read)")
        again.stop()
    }

    @Test(.enabled(if: nodeAvailable), .timeLimit(.minutes(1)))
    func perAddressConnectionCap() throws {
        let relay = try Relay(extra: ["--max-connections-per-ip", "1"])
        try relay.waitReady()
        let r = try Self.node("iplimit", relay.config(room: "postType/post:1"))
        #expect(r["second_close"] as? Int == 1013, "second connection from one address over the cap: \(r)")
        #expect(r["third_opened_after_release"] as? Bool == true, "the slot is released when a connection closes: \(r)")
        relay.stop()
    }

    @Test(.enabled(if: nodeAvailable), .timeLimit(.minutes(1)))
    func collaboratorUpdateAndDocumentLimits() throws {
        let relay = try Relay(extra: ["--yjs-max-collaborators-per-room", "1", "--yjs-max-update-bytes", "2000",
                                      "--yjs-max-document-bytes", "3000"])
        try relay.waitReady()
        let r = try Self.node("sizelimits", relay.config(room: "postType/post:9"))
        #expect(r["second_user_close"] as? Int == 4014, "collaborator cap: \(r)")
        #expect(r["big_update_close"] as? Int == 4011, "update size cap: \(r)")
        #expect(r["document_close"] as? Int == 4010, "document size cap: \(r)")
        relay.stop()
    }
}
