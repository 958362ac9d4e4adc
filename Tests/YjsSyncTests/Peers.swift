import Foundation

/// Locates and runs the cross-implementation peers (node + Debian Yjs, Python + pycrdt).
/// When a peer is missing, tests skip unless RELAY_REQUIRE_PEERS=1, in which case they fail.
enum Peers {
    static var required: Bool { ProcessInfo.processInfo.environment["RELAY_REQUIRE_PEERS"] == "1" }

    /// Tests/oracles/yjs, located from this file's path.
    static let oracleDir: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("oracles").appendingPathComponent("yjs")

    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        if env["NODE_PATH"] == nil { env["NODE_PATH"] = "/usr/share/nodejs" }
        return env
    }

    static var python: String {
        if let p = ProcessInfo.processInfo.environment["RELAY_PYTHON"], FileManager.default.isExecutableFile(atPath: p) { return p }
        return "python3"
    }

    struct Result { var status: Int32; var stdout: Data; var stderr: String }

    /// Runs `args` via /usr/bin/env, with stdout/stderr captured through temporary files.
    static func run(_ args: [String], stdin: Data? = nil) throws -> Result {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("relay-peer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let out = tmp.appendingPathComponent("out"), err = tmp.appendingPathComponent("err"), inp = tmp.appendingPathComponent("in")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        _ = FileManager.default.createFile(atPath: inp.path, contents: stdin ?? Data())
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        p.environment = environment
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        p.standardInput = try FileHandle(forReadingFrom: inp)
        try p.run()
        p.waitUntilExit()
        return Result(status: p.terminationStatus,
                      stdout: (try? Data(contentsOf: out)) ?? Data(),
                      stderr: String(decoding: (try? Data(contentsOf: err)) ?? Data(), as: UTF8.self))
    }

    static let nodeYjsAvailable: Bool = {
        (try? run(["node", "-e", "require('yjs'); require('lib0/dist/encoding.cjs')"]))?.status == 0
    }()

    static let pycrdtAvailable: Bool = {
        (try? run([python, "-c", "import pycrdt"]))?.status == 0
    }()

    /// Whether a test that needs node+yjs should run (it fails later if required but missing).
    static var runNodeTests: Bool { nodeYjsAvailable || required }
    static var runPycrdtTests: Bool { pycrdtAvailable || required }
}

extension Array where Element == UInt8 {
    init(hexString s: String) {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count / 2)
        var hi: UInt8 = 0
        var odd = false
        for c in s.utf8 {
            let v: UInt8
            switch c {
            case 0x30...0x39: v = c - 0x30
            case 0x61...0x66: v = c - 0x61 + 10
            case 0x41...0x46: v = c - 0x41 + 10
            default: continue
            }
            if odd { out.append(hi << 4 | v) } else { hi = v }
            odd.toggle()
        }
        self = out
    }
}
