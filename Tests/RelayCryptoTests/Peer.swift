import Foundation
import Testing

/// Runs real, independent implementations (php-cli, node) as test peers.
/// `make test` installs them and sets RELAY_REQUIRE_PEERS=1, which turns a
/// missing peer into a failure instead of a skipped test.
enum Peer {
    static let required = ProcessInfo.processInfo.environment["RELAY_REQUIRE_PEERS"] == "1"

    static func path(of tool: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for d in dirs {
            let p = "\(d)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Whether a test that needs `tool` should run.
    static func enabled(_ tool: String) -> Bool { required || path(of: tool) != nil }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("peers")

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `tool args…` with `input` on stdin and returns stdout.
    static func run(_ tool: String, _ args: [String], input: [UInt8], environment: [String: String] = [:]) throws -> [UInt8] {
        guard let exe = path(of: tool) else { throw Failure(description: "\(tool) not found on PATH (run `make test` to install test peers)") }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("relay-peer-\(UUID().uuidString)")
        try Data(input).write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["NODE_PATH"] = env["NODE_PATH"] ?? "/usr/share/nodejs"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        p.standardInput = try FileHandle(forReadingFrom: tmp)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw Failure(description: "\(tool) \(args.joined(separator: " ")) exited \(p.terminationStatus): \(String(decoding: errData, as: UTF8.self))")
        }
        return Array(data)
    }

    static func script(_ relative: String) -> String { directory.appendingPathComponent(relative).path }
}
