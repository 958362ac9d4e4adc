import Foundation
import RelayTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// relayd processes on one real redis-server (`--broker`), driven by the independent
/// Python client: a publish to either node reaches subscribers on both with one position
/// sequence, and a subscriber recovers on one node what was published on the other.
@Suite(.enabled(if: RedisServerProcess.binary != nil || Peers.required, "needs redis-server (Debian package)"), .serialized)
struct MultiNodeTests {
    @Test func channelsAndRecoverySpanTwoNodes() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let url = "redis://127.0.0.1:\(redis.port)"
        // One site for both nodes: node A creates it, B starts from a copy of A's data directory.
        let dirA = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-mn-a-\(UUID().uuidString)")
        let dirB = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-mn-b-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dirA); try? FileManager.default.removeItem(at: dirB) }
        let first = try await Relayd.start(["--redis-url", url, "--node-id", "a"], dataDir: dirA)
        let site = try #require(first.site)
        first.stop(removeData: false)
        try FileManager.default.copyItem(at: dirA, to: dirB)
        let a = try await Relayd.start(["--redis-url", url, "--node-id", "a"], dataDir: dirA)
        defer { a.stop(removeData: false) }
        let b = try await Relayd.start(["--redis-url", url, "--node-id", "b"], dataDir: dirB)
        defer { b.stop(removeData: false) }
        a.use(site: site)
        #expect(a.stdout.contains("relayd node a on redis 127.0.0.1:\(redis.port)"))
        // The pub/sub connections come up in the background: wait for both to say so.
        for _ in 0..<500 where !(a.log.contains("redis pub/sub connected") && b.log.contains("redis pub/sub connected")) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(a.log.contains("redis pub/sub connected") && b.log.contains("redis pub/sub connected"), "\(a.log.suffix(1000))")

        let r = try await a.python("channels", ["port_b": b.port], script: "multinode.py")
        #expect(r["publish_b"].int == 200 && r["publish_a"].int == 200)
        let seenA = r["seen"]["a"].array, seenB = r["seen"]["b"].array
        #expect(seenA.count == 2 && seenB.count == 2)
        #expect(seenA.map { $0["offset"].int } == [1, 2], "\(r)")
        #expect(seenB.map { $0["offset"].int } == [1, 2], "\(r)")
        #expect(seenA.map { $0["node_data"]["via"].string } == ["b", "a"])
        #expect(seenA.map { $0["epoch"].string } == seenB.map { $0["epoch"].string })
        let answer = try #require(r["recovery_subscribed"].array.last)
        #expect(answer["type"].string == "subscribed" && answer["recovered"].bool == true, "\(r)")
        #expect(r["recovered"].array.map { $0["offset"].int } == [3, 4], "\(r)")
        let replays = r["v2_replay"].array.map { ($0[0].int, $0[1].string) }
        #expect(replays.map(\.0) == [200, 401, 401], "a v2 request is accepted once by the cluster: \(r["v2_replay"])")
        #expect(replays.dropFirst().allSatisfy { $0.1 == "replayed_request" }, "\(r["v2_replay"])")
    }

    /// Two Redis servers as shards (`--broker` twice on node A, `RELAY_BROKER` in the other order
    /// on node B: the same shard for every channel either way), then `/readyz` and `/metrics`
    /// follow a shard's death.
    @Test func shardsAcrossTwoRedisServersAndReadiness() async throws {
        let r1 = try await RedisServerProcess(), r2 = try await RedisServerProcess()
        defer { r1.stop(); r2.stop() }
        let u1 = "redis://127.0.0.1:\(r1.port)", u2 = "redis://127.0.0.1:\(r2.port)"
        let dirA = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-sh-a-\(UUID().uuidString)")
        let dirB = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-sh-b-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dirA); try? FileManager.default.removeItem(at: dirB) }
        let first = try await Relayd.start(["--broker", u1, "--broker", u2, "--node-id", "a"], dataDir: dirA)
        let site = try #require(first.site)
        first.stop(removeData: false)
        try FileManager.default.copyItem(at: dirA, to: dirB)
        let a = try await Relayd.start(["--broker", u1, "--broker", u2, "--node-id", "a"], dataDir: dirA)
        defer { a.stop(removeData: false) }
        let b = try await Relayd.start(["--node-id", "b"], dataDir: dirB, environment: ["RELAY_BROKER": "\(u2), \(u1)"])
        defer { b.stop(removeData: false) }
        a.use(site: site)
        #expect(a.stdout.contains("relayd node a on redis 127.0.0.1:\(r1.port)/0, 127.0.0.1:\(r2.port)/0"), "\(a.stdout)")
        func ready(_ node: Relayd) -> (Int, String) {
            let r = httpGet(port: node.port, path: "/readyz")
            return (r?.status ?? 0, r?.body ?? "")
        }
        for _ in 0..<500 where !(ready(a).0 == 200 && ready(b).0 == 200) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(ready(a).0 == 200 && ready(b).0 == 200, "\(ready(a)) \(ready(b))")
        #expect(ready(a).1.contains("\"name\":\"127.0.0.1:\(r2.port)/0\",\"connected\":true"), "\(ready(a).1)")

        let r = try await a.python("channels", ["port_b": b.port], script: "multinode.py")
        #expect(r["seen"]["a"].array.map { $0["offset"].int } == [1, 2], "\(r)")
        #expect(r["seen"]["b"].array.map { $0["offset"].int } == [1, 2], "\(r)")
        #expect(r["recovered"].array.map { $0["offset"].int } == [3, 4], "\(r)")

        // A shard dies: both nodes stop being ready and say which server; metrics agree.
        r2.stop()
        for _ in 0..<500 where !(ready(a).0 == 503 && ready(b).0 == 503) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(ready(a).0 == 503 && ready(b).0 == 503)
        #expect(ready(a).1.contains("\"name\":\"127.0.0.1:\(r2.port)/0\",\"connected\":false"), "\(ready(a).1)")
        #expect(ready(a).1.contains("\"name\":\"127.0.0.1:\(r1.port)/0\",\"connected\":true"), "\(ready(a).1)")
        let metrics = httpGet(port: a.port, path: "/metrics")?.body ?? ""
        #expect(metrics.contains("relay_broker_up{endpoint=\"127.0.0.1:\(r2.port)/0\"} 0"), "\(metrics.split(separator: "\n").filter { $0.contains("broker") })")
        #expect(metrics.contains("relay_broker_publish_seconds"))
    }

    /// Three relayd nodes on one Redis and one PostgreSQL (`--broker`, `--database`), stock
    /// y-websocket clients: editors on two nodes converge (typing concurrently), awareness
    /// crosses nodes, a late joiner on the third node gets the whole document and its edit
    /// reaches the others; after every relayd restarts, the document is still whole.
    @Test(.enabled(if: PostgresServerProcess.enabled, "needs postgresql (Debian package)"), .timeLimit(.minutes(4)))
    func yjsRoomsSpanNodesAndSurviveRestarts() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let pg = try await PostgresServerProcess()
        defer { pg.stop() }
        let args = ["--broker", "redis://127.0.0.1:\(redis.port)", "--database", pg.url]
        var dirs: [URL] = []
        for n in ["a", "b", "c"] { dirs.append(FileManager.default.temporaryDirectory.appendingPathComponent("relayd-yjs-\(n)-\(UUID().uuidString)")) }
        defer { for d in dirs { try? FileManager.default.removeItem(at: d) } }
        let first = try await Relayd.start(args + ["--node-id", "a"], dataDir: dirs[0])
        let site = try #require(first.site)
        first.stop(removeData: false)
        for d in dirs.dropFirst() { try FileManager.default.copyItem(at: dirs[0], to: d) }
        func startAll() async throws -> [Relayd] {
            var nodes: [Relayd] = []
            for (i, n) in ["a", "b", "c"].enumerated() {
                let r = try await Relayd.start(args + ["--node-id", n], dataDir: dirs[i])
                r.use(site: site)
                nodes.append(r)
            }
            for _ in 0..<500 where !nodes.allSatisfy({ httpGet(port: $0.port, path: "/readyz")?.status == 200 }) {
                try await Task.sleep(for: .milliseconds(20))
            }
            return nodes
        }
        let room = "postType/post:\(Int.random(in: 1...99999))"
        func config(_ nodes: [Relayd], phase: String) throws -> String {
            let d: [String: Any] = ["urls": nodes.map { "http://127.0.0.1:\($0.port)" }, "site_id": site.siteID, "jwt_secret": site.jwtSecret,
                                    "room": room, "phase": phase, "timeout_ms": "120000"]
            return String(decoding: try JSONSerialization.data(withJSONObject: d), as: UTF8.self)
        }
        var nodes = try await startAll()
        let ready = httpGet(port: nodes[2].port, path: "/readyz")
        #expect(ready?.status == 200 && ready?.body.contains("\"store\":{\"kind\":\"postgres\",\"ready\":true}") == true, "\(String(describing: ready))")
        let r = try YjsRoomTests.node("multinode", try config(nodes, phase: "edit"))
        #expect(r["converged"] as? Bool == true, "\(r)")
        // Both nodes' concurrent inserts interleave by Yjs's rules; every character is there.
        let text = try #require(r["text_a"] as? String)
        #expect(text.contains("hello") && text.contains(" wörld 😀") && text.filter { $0 == "a" }.count == 50 && text.filter { $0 == "b" }.count == 50, "\(text)")
        #expect(r["b_sees_a"] as? Bool == true, "awareness crossed nodes: \(r)")
        #expect(r["c_complete"] as? Bool == true, "late joiner on the third node: \(r)")
        #expect(r["a_got_c"] as? Bool == true, "\(r)")
        let final = try #require(r["final_text"] as? String)
        for n in nodes { n.stop(removeData: false) }
        nodes = try await startAll()
        defer { for n in nodes { n.stop(removeData: false) } }
        let after = try YjsRoomTests.node("multinode", try config(nodes, phase: "after_restart"))
        #expect(after["d_text"] as? String == final, "after every relayd restarted: \(after)")
        #expect(after["d_map"] as? String == "{\"nested\":[1,2,3]}", "\(after)")
    }

    /// The site registry in PostgreSQL (`--database`, issue 14 item 4): a site registered through
    /// node A's admin API publishes through node B at once, a secret rotated on A is honoured on B
    /// (the old one through its grace period), the monthly quota counts both nodes' messages, and a
    /// site removed on A has its connections on B closed with 4003.
    @Test(.enabled(if: PostgresServerProcess.enabled, "needs postgresql (Debian package)"), .timeLimit(.minutes(3)))
    func siteRegistrySharedThroughPostgres() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let pg = try await PostgresServerProcess()
        defer { pg.stop() }
        let args = ["--broker", "redis://127.0.0.1:\(redis.port)", "--database", pg.url]
        let dirA = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-reg-a-\(UUID().uuidString)")
        let dirB = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-reg-b-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dirA); try? FileManager.default.removeItem(at: dirB) }
        // The same admin key on both nodes (B starts from a copy of A's data directory).
        let first = try await Relayd.start(args + ["--node-id", "a"], dataDir: dirA)
        let site = try #require(first.site)
        first.stop(removeData: false)
        try FileManager.default.copyItem(at: dirA, to: dirB)
        let a = try await Relayd.start(args + ["--node-id", "a"], dataDir: dirA)
        defer { a.stop(removeData: false) }
        let b = try await Relayd.start(args + ["--node-id", "b"], dataDir: dirB)
        defer { b.stop(removeData: false) }
        #expect(b.site == nil, "the registry is shared: no second dev site")
        a.use(site: site)
        for _ in 0..<500 where ![a, b].allSatisfy({ httpGet(port: $0.port, path: "/readyz")?.status == 200 }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let r = try await a.python("registry", ["port_b": b.port], script: "multinode.py", timeout: 60)
        #expect(r["register"].int == 200, "\(r)")
        #expect(r["publish_b_new_site"].array.first?.int == 200, "published through B at once: \(r)")
        #expect(r["b_subscribed"].array.count == 1, "\(r)")
        #expect(r["rotate"].int == 200)
        #expect(r["publish_b_new_secret"].int == 200, "rotated secret on B at once: \(r)")
        #expect(r["publish_b_old_secret"].int == 200, "old secret in its grace period: \(r)")
        #expect(r["publish_b_wrong_secret"].int == 401, "\(r)")
        #expect(r["limits"].int == 200)
        let first8 = r["quota_first"].array.map { $0.int }
        #expect(first8.filter { $0 == 200 }.count >= 7, "3 + 7 reach the quota of 10: \(first8)")
        #expect(r["quota_after"]["a"].array.first?.int == 429, "quota counts both nodes: \(r)")
        #expect(r["quota_after"]["b"].array.first?.int == 429, "\(r)")
        #expect(r["quota_after"]["a"].array.last?["error"].string == "quota_exceeded", "\(r)")
        #expect(r["remove"].int == 200)
        #expect(r["b_closed"]["code"].int == 4003, "B closed the removed site's connections: \(r)")
        #expect(r["publish_b_removed"].int == 401, "a removed site's key is unknown on B too: \(r)")
        // relayctl edits the shared registry directly: the running nodes take the new site at once.
        let added = try await BackupTests.relayctl(["site", "add", "--database", pg.url, "--site-url", "https://cli.example"])
        #expect(added.status == 0, "\(added.output)")
        let creds = try #require(try JSONSerialization.jsonObject(with: Data(added.output.utf8)) as? [String: Any], "\(added.output)")
        let key = try #require(creds["site_key"] as? String), secret = try #require(creds["publish_secret"] as? String)
        let pub = try await runProcess(Paths.relayctl, ["publish", "--url", "http://127.0.0.1:\(b.port)", "--site-key", key, "--secret", secret,
                                                        "events", "e", "{}"], timeout: 20)
        #expect(pub.status == 0, "published through B at once: \(pub.stdout) \(pub.stderr)")
        let listed = try await BackupTests.relayctl(["site", "list", "--database", pg.url])
        #expect(listed.output.contains(key) && !listed.output.contains(secret), "\(listed.output)")
    }

    /// Two nodes started from one data directory (one site, one admin key) on `redisURL`.
    static func twoNodes(_ args: [String], tag: String) async throws -> (a: Relayd, b: Relayd, site: SiteCredentials, dirs: [URL]) {
        let dirA = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-\(tag)-a-\(UUID().uuidString)")
        let dirB = FileManager.default.temporaryDirectory.appendingPathComponent("relayd-\(tag)-b-\(UUID().uuidString)")
        let first = try await Relayd.start(args + ["--node-id", "a"], dataDir: dirA)
        let site = try #require(first.site)
        first.stop(removeData: false)
        try FileManager.default.copyItem(at: dirA, to: dirB)
        let a = try await Relayd.start(args + ["--node-id", "a"], dataDir: dirA)
        let b = try await Relayd.start(args + ["--node-id", "b"], dataDir: dirB)
        a.use(site: site)
        b.use(site: site)
        for _ in 0..<500 where ![a, b].allSatisfy({ httpGet(port: $0.port, path: "/readyz")?.status == 200 }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        return (a, b, site, [dirA, dirB])
    }

    /// `kill -9` of a node: its client sees the connection drop, reconnects to the other node and
    /// recovers, in order, what was published meanwhile.
    @Test(.timeLimit(.minutes(2)))
    func aKilledNodesClientsRecoverOnAnother() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let (a, b, _, dirs) = try await Self.twoNodes(["--broker", "redis://127.0.0.1:\(redis.port)"], tag: "kill")
        defer { a.stop(); b.stop(); for d in dirs { try? FileManager.default.removeItem(at: d) } }
        let r = try await a.python("failover", ["port_b": b.port], script: "multinode.py")
        #expect(r["seen"].array.map { $0["offset"].int } == [1, 2], "\(r)")
        #expect(r["a_dropped"]["code"].int == 1006, "the connection dropped without a close frame: \(r)")
        #expect(r["published_meanwhile"].array.map { $0.int } == [200, 200, 200])
        let answer = try #require(r["recovery"].array.last)
        #expect(answer["type"].string == "subscribed" && answer["recovered"].bool == true, "\(r)")
        #expect(r["recovered"].array.map { $0["offset"].int } == [3, 4, 5], "\(r)")
        #expect(r["recovered"].array.map { $0["node_data"]["i"].int } == [3, 4, 5], "\(r)")
        #expect(Set(r["recovered"].array.map { $0["epoch"].string }) == [r["seen"].array[0]["epoch"].string], "\(r)")
        #expect(await a.waitForExit(timeout: 1)?.reason == .uncaughtSignal)
        #expect(b.log.contains("Fatal") == false)
    }

    /// Redis stops and starts again while a subscriber stays on node A, with persistence (AOF,
    /// `appendfsync always`) and without: publishes meanwhile are refused, never acknowledged;
    /// both nodes turn unready, then ready, and resubscribe (a later publish reaches the
    /// subscriber that never reconnected); a gap is never silent: with the data kept, the epoch
    /// is the same and recovery succeeds; without it, the epoch is new and recovery says
    /// `recovered: false`.
    @Test(.timeLimit(.minutes(3)), arguments: [true, false])
    func redisRestartsWithAndWithoutPersistence(persistent: Bool) async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("redis-restart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let persistence = persistent ? ["--appendonly", "yes", "--appendfsync", "always", "--dir", dataDir.path] : []
        var redis = try await RedisServerProcess(persistence)
        let port = redis.port
        let (a, b, _, dirs) = try await Self.twoNodes(["--broker", "redis://127.0.0.1:\(port)"], tag: "rr")
        defer { a.stop(); b.stop(); for d in dirs { try? FileManager.default.removeItem(at: d) } }
        let sync = dataDir.appendingPathComponent("sync")
        try FileManager.default.createDirectory(at: sync, withIntermediateDirectories: true)
        func reached(_ step: String) async -> Bool {
            for _ in 0..<1500 {
                if FileManager.default.fileExists(atPath: sync.appendingPathComponent(step).path) { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return false
        }
        func done(_ step: String) { _ = FileManager.default.createFile(atPath: sync.appendingPathComponent(step + ".done").path, contents: nil) }
        async let result = a.python("redis_restart", ["port_b": b.port, "sync_dir": sync.path], script: "multinode.py", timeout: 120)
        #expect(await reached("stop"))
        redis.stop()  // SIGKILL: with appendfsync always, what Redis acknowledged is in the AOF
        done("stop")
        #expect(await reached("start"))
        redis = try await RedisServerProcess(persistence, port: port)
        defer { redis.stop() }
        done("start")
        let r = try await result
        #expect(r["seen"].array.map { $0["offset"].int } == [1, 2], "\(r)")
        #expect(r["publish_while_down"].array.first?.int == 503, "refused, not acknowledged: \(r)")
        #expect(r["publish_while_down"].array.last?["error"].string == "unavailable", "\(r)")
        #expect(r["ready_while_down"].array.map { $0.int } == [503, 503], "\(r)")
        #expect(r["subscribe_while_down"]["code"].int == 1013, "a subscribe that cannot reach Redis closes 1013: \(r)")
        #expect(r["ready_after"].array.map { $0.int } == [200, 200], "\(r)")
        #expect(r["publish_after"].array.first?.int == 200, "\(r)")
        let before = r["seen"].array[1]
        let live = r["live_after"]
        #expect(live["node_data"]["i"].int == 3, "node A resubscribed: \(r)")
        let answer = try #require(r["recovery"].array.last)
        #expect(answer["type"].string == "subscribed", "\(r)")
        if persistent {
            #expect(live["epoch"].string == before["epoch"].string && live["offset"].int == 3, "the stream survived: \(r)")
            #expect(answer["recovered"].bool == true, "\(r)")
            #expect(r["recovered"].array.map { $0["offset"].int } == [3], "\(r)")
        } else {
            #expect(live["epoch"].string != before["epoch"].string && live["offset"].int == 1, "a new stream, a new epoch: \(r)")
            #expect(answer["recovered"].bool == false, "the gap is reported: \(r)")
            #expect(answer["epoch"].string == live["epoch"].string, "\(r)")
        }
        for node in [a, b] { #expect(node.process.isRunning, "no crash: \(node.log.suffix(2000))") }
    }

    /// Two and three relayd processes on one Redis: every node publishes 100 messages at once to
    /// one channel with two subscribers on every node; each subscriber gets every publication
    /// exactly once, offsets 1…N in order, all subscribers in the same order, each publisher's
    /// messages in the order it sent them.
    @Test(.timeLimit(.minutes(3)), arguments: [2, 3])
    func everyPublicationExactlyOnceOnEveryNode(nodes count: Int) async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let args = ["--broker", "redis://127.0.0.1:\(redis.port)"]
        var dirs: [URL] = []
        for i in 0..<count { dirs.append(FileManager.default.temporaryDirectory.appendingPathComponent("relayd-x\(i)-\(UUID().uuidString)")) }
        defer { for d in dirs { try? FileManager.default.removeItem(at: d) } }
        let first = try await Relayd.start(args + ["--node-id", "n0"], dataDir: dirs[0])
        let site = try #require(first.site)
        first.stop(removeData: false)
        for d in dirs.dropFirst() { try FileManager.default.copyItem(at: dirs[0], to: d) }
        var nodes: [Relayd] = []
        defer { for n in nodes { n.stop(removeData: false) } }
        for i in 0..<count {
            let n = try await Relayd.start(args + ["--node-id", "n\(i)"], dataDir: dirs[i])
            n.use(site: site)
            nodes.append(n)
        }
        for _ in 0..<500 where !nodes.allSatisfy({ httpGet(port: $0.port, path: "/readyz")?.status == 200 }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let r = try await nodes[0].python("exactly_once", ["ports": nodes.map(\.port)], script: "multinode.py", timeout: 90)
        let total = 100 * count
        #expect(r["statuses_ok"].bool == true, "\(r)")
        #expect(r["counts"].array.map { $0.int } == Array(repeating: total, count: 2 * count), "\(r)")
        #expect(r["extra_after"].array.allSatisfy { $0.int == 0 }, "no duplicate afterwards: \(r)")
        #expect(r["unique"].array.map { $0.int } == Array(repeating: total, count: 2 * count), "\(r)")
        #expect(r["offsets_in_order"].array.allSatisfy { $0.bool == true }, "\(r)")
        #expect(r["same_order"].array.allSatisfy { $0.bool == true }, "\(r)")
        #expect(r["per_publisher_order"].array.allSatisfy { $0.bool == true }, "\(r)")
    }
}
