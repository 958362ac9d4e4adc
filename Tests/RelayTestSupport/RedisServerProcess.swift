import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` (Debian's) on a free loopback port, without persistence, for one test.
/// `make test` installs it and sets RELAY_REQUIRE_PEERS=1, which makes a missing binary a failure.
public final class RedisServerProcess: @unchecked Sendable {
    public static let required = ProcessInfo.processInfo.environment["RELAY_REQUIRE_PEERS"] == "1"
    public static let binary: String? = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    /// Whether tests that need Redis run (a missing server skips them unless peers are required).
    public static var enabled: Bool { required || binary != nil }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public let port: Int
    private var processBox: Process?

    /// Starts `redis-server` with `arguments` added to a no-persistence configuration, on `port`
    /// (a free one when nil).
    public init(_ arguments: [String] = [], port fixedPort: Int? = nil, tls: (cert: String, key: String)? = nil) async throws {
        guard let binary = Self.binary else { throw Failure(description: "redis-server is not installed (Debian package redis-server)") }
        var lastError = ""
        for _ in 0..<(fixedPort == nil ? 5 : 1) {
            let port = try fixedPort ?? LoopbackPorts.free()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            // With TLS the plain port is off and `port` is the TLS one (no client certificates asked).
            let listen = tls.map { ["--port", "0", "--tls-port", String(port), "--tls-cert-file", $0.cert, "--tls-key-file", $0.key,
                                    "--tls-ca-cert-file", $0.cert, "--tls-auth-clients", "no"] } ?? ["--port", String(port)]
            p.arguments = listen + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                           "--daemonize", "no", "--loglevel", "warning", "--dir", NSTemporaryDirectory()] + arguments
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            if await LoopbackPorts.waitUntilListening(port, process: p) {
                self.port = port
                self.processBox = p
                return
            }
            kill(p.processIdentifier, SIGKILL)
            lastError = "redis-server did not listen on \(port)"
        }
        throw Failure(description: lastError)
    }


    /// SIGSTOP / SIGCONT: the server keeps its sockets but answers nothing while paused.
    public func pause() { if let p = processBox { kill(p.processIdentifier, SIGSTOP) } }
    public func resume() { if let p = processBox { kill(p.processIdentifier, SIGCONT) } }

    /// Kills the server and waits (up to 5 s) until it is gone. `Process.waitUntilExit` needs a
    /// run loop, which a test's task does not have, so this polls.
    public func stop() {
        guard let p = processBox, p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        for _ in 0..<500 where p.isRunning { usleep(10_000) }
    }

    deinit { stop() }
}
