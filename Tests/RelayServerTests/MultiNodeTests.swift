import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Two relayd processes on one real redis-server (`--redis-url`), driven by the independent
/// Python client: a publish to either node reaches subscribers on both with one position
/// sequence, and a subscriber recovers on one node what was published on the other.
@Suite(.enabled(if: RedisForRelayd.binary != nil || Peers.required, "needs redis-server (Debian package)"), .serialized)
struct MultiNodeTests {
    @Test func channelsAndRecoverySpanTwoNodes() async throws {
        let redis = try await RedisForRelayd.start()
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
    }

    /// Two Redis servers as shards (`--broker` twice on node A, `RELAY_BROKER` in the other order
    /// on node B: the same shard for every channel either way), then `/readyz` and `/metrics`
    /// follow a shard's death.
    @Test func shardsAcrossTwoRedisServersAndReadiness() async throws {
        let r1 = try await RedisForRelayd.start(), r2 = try await RedisForRelayd.start()
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
}

/// A redis-server on a free port without persistence (the same recipe as RelayRedisTests).
final class RedisForRelayd: @unchecked Sendable {
    static let binary: String? = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    let port: Int
    let process: Process

    private init(port: Int, process: Process) {
        self.port = port
        self.process = process
    }

    static func start() async throws -> RedisForRelayd {
        guard let binary else { throw HarnessError("redis-server is not installed (Debian package redis-server)") }
        for _ in 0..<5 {
            let port = try freePort()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                           "--loglevel", "warning", "--dir", NSTemporaryDirectory()]
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            for _ in 0..<200 where p.isRunning {
                if let _ = try? tcpProbe(port) { return RedisForRelayd(port: port, process: p) }
                try await Task.sleep(for: .milliseconds(25))
            }
            kill(p.processIdentifier, SIGKILL)
        }
        throw HarnessError("redis-server did not start")
    }

    private static func tcpProbe(_ port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !ok { throw HarnessError("not listening") }
    }

    /// Synchronous (for `defer`); polls because `waitUntilExit` needs a run loop.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
    }
}
