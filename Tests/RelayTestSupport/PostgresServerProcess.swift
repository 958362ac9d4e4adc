import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL server (Debian's `postgresql`) in a fresh data directory on a free loopback
/// port, with `trust` authentication for the `postgres` user, for one test; removed afterwards.
/// As root it runs as the `postgres` user (initdb refuses root). `make test` installs the
/// package and sets RELAY_REQUIRE_PEERS=1, which makes a missing server a failure.
public final class PostgresServerProcess: @unchecked Sendable {
    public static let required = ProcessInfo.processInfo.environment["RELAY_REQUIRE_PEERS"] == "1"
    /// The newest installed server's bin directory (`/usr/lib/postgresql/N/bin`).
    public static let binDirectory: String? = {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.reversed().map { "\(root)/\($0)/bin" }.first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }()
    public static var enabled: Bool { required || binDirectory != nil }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public let port: Int
    public let directory: String
    private let process: Process

    public init() async throws {
        guard let bin = Self.binDirectory else { throw Failure(description: "PostgreSQL is not installed (Debian package postgresql)") }
        let dir = NSTemporaryDirectory() + "relay-pg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let asRoot = getuid() == 0
        if asRoot { _ = try Self.run("/bin/chown", ["postgres:postgres", dir]) }
        let initdb = try Self.run(bin + "/initdb", ["-D", dir + "/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"], asPostgres: asRoot)
        guard initdb.status == 0 else { throw Failure(description: "initdb failed: \(initdb.output)") }
        var lastError = ""
        for _ in 0..<5 {
            let port = try LoopbackPorts.free()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: asRoot ? "/usr/sbin/runuser" : bin + "/postgres")
            let args = ["-D", dir + "/data", "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "logging_collector=off"]
            p.arguments = asRoot ? ["-u", "postgres", "--", bin + "/postgres"] + args : args
            p.standardInput = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            if await LoopbackPorts.waitUntilListening(port, process: p, attempts: 400) {
                try? await Task.sleep(for: .milliseconds(200))  // it accepts before it finished starting up
                self.port = port
                self.directory = dir
                self.process = p
                return
            }
            kill(p.processIdentifier, SIGKILL)
            lastError = "postgres did not listen on \(port)"
        }
        try? FileManager.default.removeItem(atPath: dir)
        throw Failure(description: lastError)
    }

    /// The URL relayd and the store take (no TLS on loopback).
    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable" }

    /// Fast shutdown of the postmaster (its pid from `postmaster.pid`: as root, `runuser` is our
    /// child, not the server), then the directory is removed.
    public func stop() {
        let pidFile = (try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8)) ?? ""
        if let pid = pidFile.split(separator: "\n").first.flatMap({ Int32($0.trimmingCharacters(in: .whitespaces)) }), pid > 0 {
            kill(pid, SIGINT)
            for _ in 0..<1000 where kill(pid, 0) == 0 { usleep(10_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    static func run(_ path: String, _ args: [String], asPostgres: Bool = false) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: asPostgres ? "/usr/sbin/runuser" : path)
        p.arguments = asPostgres ? ["-u", "postgres", "--", path] + args : args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        while p.isRunning { usleep(10_000) }
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
