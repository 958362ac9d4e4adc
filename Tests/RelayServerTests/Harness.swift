import RelaySites
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Integration harness: starts the built `relayd` binary as a subprocess on a
// free loopback port with a temporary data directory, reads the dev-site
// credentials it prints, and runs independent peers (Python `websockets` /
// `urllib`, Node `ws`) from Tests/peers/server against it. Peers print one
// JSON object describing what they observed; the tests assert on it.

enum Paths {
    /// The package root, from this file's location (Tests/RelayServerTests/Harness.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let peers = root.appendingPathComponent("Tests/peers/server")
    static var relayd: String {
        if let p = ProcessInfo.processInfo.environment["RELAYD_BINARY"] { return p }
        return root.appendingPathComponent(".build/debug/relayd").path
    }
    /// `RELAYCTL_BINARY` (the sanitizer builds set both), else .build/debug/relayctl.
    static var relayctl: String {
        if let p = ProcessInfo.processInfo.environment["RELAYCTL_BINARY"] { return p }
        return root.appendingPathComponent(".build/debug/relayctl").path
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The independent client implementations. `RELAY_REQUIRE_PEERS=1` turns a
/// missing peer into a failure; otherwise the tests that need it are skipped.
enum Peers {
    static let env = ProcessInfo.processInfo.environment
    static let required = env["RELAY_REQUIRE_PEERS"] == "1"
    static let nodePath = env["NODE_PATH"] ?? "/usr/share/nodejs"

    static func which(_ tool: String) -> String? {
        for d in (env["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(d)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Python with `websockets` (asyncio API): `RELAY_PYTHON`, else `python3`.
    static let python: String? = {
        guard let exe = env["RELAY_PYTHON"] ?? which("python3") else { return nil }
        return quickCheck(exe, ["-c", "import websockets.asyncio.client"]) ? exe : nil
    }()

    /// Node with the `ws` package on NODE_PATH.
    static let node: String? = {
        guard let exe = which("node") else { return nil }
        return quickCheck(exe, ["-e", "require('ws')"], env: ["NODE_PATH": nodePath]) ? exe : nil
    }()

    static var pythonEnabled: Bool { required || python != nil }
    /// php-cli with openssl and hash (the WordPress side of the contract).
    static let php: String? = {
        guard let exe = which("php") else { return nil }
        return quickCheck(exe, ["-r", "exit(function_exists('openssl_encrypt') && function_exists('hash_hkdf') ? 0 : 1);"]) ? exe : nil
    }()
    static var phpEnabled: Bool { required || php != nil }
    static var nodeEnabled: Bool { required || node != nil }

    static func quickCheck(_ exe: String, _ args: [String], env extra: [String: String] = [:]) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in extra { e[k] = v }
        p.environment = e
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}

struct ProcessOutput {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool
}

/// Runs a process to completion (or kills it after `timeout` seconds), without
/// blocking a cooperative thread. Output goes through files, so nothing can stall on a full pipe.
func runProcess(_ exe: String, _ args: [String], environment: [String: String] = [:],
                timeout: Double, currentDirectory: URL? = nil) async throws -> ProcessOutput {
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("relay-peer-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: tmp) }
    let outURL = tmp.appendingPathComponent("stdout"), errURL = tmp.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    if let currentDirectory { p.currentDirectoryURL = currentDirectory }
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = out
    p.standardError = err
    let timedOut = LockedFlag()
    await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
        p.terminationHandler = { _ in cont.resume() }
        do { try p.run() } catch {
            p.terminationHandler = nil
            cont.resume()
            return
        }
        let pid = p.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            if p.isRunning {
                timedOut.set()
                kill(pid, SIGKILL)
            }
        }
    }
    try? out.close()
    try? err.close()
    let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    return ProcessOutput(status: p.isRunning ? -1 : p.terminationStatus, stdout: stdout, stderr: stderr, timedOut: timedOut.isSet)
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Site credentials as relayd prints them (dev site) or the admin API returns them.
struct SiteCredentials: Sendable {
    var siteKey: String
    var siteID: String
    var publishSecret: String
    var jwtSecret: String

    var json: [String: Any] {
        ["site_key": siteKey, "site_id": siteID, "publish_secret": publishSecret, "jwt_secret": jwtSecret]
    }
}

/// One relayd process.
final class Relayd: @unchecked Sendable {
    let port: Int
    let dataDir: URL
    let ownsDataDir: Bool
    let process: Process
    let logURL: URL
    let stdoutURL: URL
    let args: [String]
    private(set) var site: SiteCredentials?
    private(set) var adminKey = ""

    /// Starts relayd with `--port <free> --data-dir <dir>` plus `args`, and waits for `GET /healthz`.
    static func start(_ args: [String] = [], dataDir: URL? = nil, environment: [String: String] = [:]) async throws -> Relayd {
        guard FileManager.default.isExecutableFile(atPath: Paths.relayd) else {
            throw HarnessError("relayd not built at \(Paths.relayd): run `swift build --build-tests` first")
        }
        let dir = dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("relayd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var lastError = ""
        for _ in 0..<3 {  // a free port can be taken between probe and bind: retry on another
            let r = try Relayd(port: try freePort(), dataDir: dir, ownsDataDir: dataDir == nil, args: args, environment: environment)
            if await r.waitUntilHealthy(timeout: 30) {
                try r.readCredentials()
                return r
            }
            lastError = r.log
            r.stop()
        }
        throw HarnessError("relayd did not become healthy; log:\n\(lastError.suffix(3000))")
    }

    private init(port: Int, dataDir: URL, ownsDataDir: Bool, args: [String], environment: [String: String]) throws {
        self.port = port
        self.dataDir = dataDir
        self.ownsDataDir = ownsDataDir
        self.args = args
        let tag = UUID().uuidString.prefix(8)
        logURL = dataDir.appendingPathComponent("relayd-\(tag).log")
        stdoutURL = dataDir.appendingPathComponent("relayd-\(tag).out")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.relayd)
        process.arguments = ["--port", String(port), "--data-dir", dataDir.path, "--log-level", "notice"] + args
        // RELAY_* variables of the test environment must not leak into relayd's configuration.
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("RELAY_") }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: logURL)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }

    func waitUntilHealthy(timeout: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !process.isRunning { return false }
            if args.contains("--tls-cert") {
                // HTTPS: the plain-HTTP probe cannot answer; relayd prints this line once bound.
                if stdout.contains("relayd listening on https://") { return true }
            } else if let r = httpGet(port: port, path: "/healthz"), r.status == 200 { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Parses the `site_key: …` lines relayd prints for a new dev site, and `<data-dir>/admin.key`.
    func readCredentials() throws {
        var fields: [String: String] = [:]
        for line in stdout.split(separator: "\n") {
            for name in ["site_key", "site_id", "publish_secret", "jwt_secret"] {
                if let r = line.range(of: "\(name):") {
                    fields[name] = line[r.upperBound...].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        if let k = fields["site_key"], let i = fields["site_id"], let p = fields["publish_secret"], let j = fields["jwt_secret"] {
            site = SiteCredentials(siteKey: k, siteID: i, publishSecret: p, jwtSecret: j)
        }
        let keyFile = dataDir.appendingPathComponent("admin.key")
        guard let key = try? String(contentsOf: keyFile, encoding: .utf8) else {
            throw HarnessError("no admin key at \(keyFile.path)")
        }
        adminKey = key.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func use(site: SiteCredentials) { self.site = site }

    /// SIGTERM, then SIGKILL after `grace` seconds. Synchronous so it can run in `defer`.
    /// Returns the exit status when the process exited by itself after SIGTERM.
    @discardableResult
    func stop(grace: Double = 5, removeData: Bool = true) -> Int32? {
        var status: Int32?
        if process.isRunning {
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(grace)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                kill(pid, SIGKILL)
                process.waitUntilExit()
            } else {
                process.waitUntilExit()
                status = process.terminationStatus
            }
        }
        if removeData && ownsDataDir { try? FileManager.default.removeItem(at: dataDir) }
        return status
    }

    /// Waits for the process to exit by itself; nil on timeout.
    func waitForExit(timeout: Double) async -> (status: Int32, reason: Process.TerminationReason)? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { return nil }
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason)
    }

    /// The configuration a peer reads from `RELAY_PEER_CONFIG`.
    func peerConfig(_ extra: [String: Any]) -> String {
        var cfg: [String: Any] = ["port": port, "admin_key": adminKey, "relayd_pid": Int(pid)]
        if let site { cfg["site"] = site.json }
        for (k, v) in extra { cfg[k] = v }
        let data = try! JSONSerialization.data(withJSONObject: cfg)
        return String(decoding: data, as: UTF8.self)
    }

    /// Runs `<script> <scenario>` (default scenarios.py) with the Python peer and returns its JSON result.
    func python(_ scenario: String, _ extra: [String: Any] = [:], script: String = "scenarios.py", timeout: Double = 45) async throws -> J {
        guard let python = Peers.python else {
            throw HarnessError("Python peer unavailable: set RELAY_PYTHON to a Python with `websockets` (pip install -r Tests/requirements.txt)")
        }
        return try await runPeer(python, [Paths.peers.appendingPathComponent(script).path, scenario], extra, timeout: timeout)
    }

    /// Runs a Node peer script and returns its JSON result.
    func node(_ script: String, _ extra: [String: Any] = [:], timeout: Double = 40) async throws -> J {
        guard let node = Peers.node else {
            throw HarnessError("Node peer unavailable: needs `node` and the `ws` package on NODE_PATH (/usr/share/nodejs)")
        }
        return try await runPeer(node, [Paths.peers.appendingPathComponent(script).path], extra, timeout: timeout)
    }

    private func runPeer(_ exe: String, _ args: [String], _ extra: [String: Any], timeout: Double) async throws -> J {
        var x = extra
        x["timeout"] = timeout - 2
        let out = try await runProcess(exe, args, environment: [
            "RELAY_PEER_CONFIG": peerConfig(x), "NODE_PATH": Peers.nodePath, "PYTHONDONTWRITEBYTECODE": "1",
        ], timeout: timeout, currentDirectory: Paths.peers)
        let last = out.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard out.status == 0, !out.timedOut, let data = last.data(using: .utf8),
              let obj = try? JSONSerialization.jsonObject(with: data) else {
            throw HarnessError("""
                peer \(args.joined(separator: " ")) failed (status \(out.status)\(out.timedOut ? ", timed out" : ""))
                stdout: \(out.stdout.suffix(2000))
                stderr: \(out.stderr.suffix(4000))
                relayd log: \(log.suffix(2000))
                """)
        }
        return J(obj)
    }
}

/// A free TCP port on 127.0.0.1 (bound to 0, read back, released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket() failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
        }
    }
    guard ok else { throw HarnessError("bind/getsockname failed") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Minimal blocking HTTP/1.1 GET over a POSIX socket with a 2 s timeout (readiness probe only).
func httpGet(port: Int, path: String) -> (status: Int, body: String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var tv = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
    guard send(fd, request, request.count, 0) == request.count else { return nil }
    var response: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buf, buf.count, 0)
        if n <= 0 { break }
        response += buf[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard text.hasPrefix("HTTP/1.1 "), let status = Int(text.dropFirst(9).prefix(3)) else { return nil }
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}

/// Read-only view of a peer's JSON result. Missing keys and wrong types give
/// nil, so a wrong or absent value fails the comparison it is used in.
struct J: CustomStringConvertible, @unchecked Sendable {
    let value: Any?
    init(_ value: Any?) { self.value = value is NSNull ? nil : value }

    subscript(_ key: String) -> J { J((value as? [String: Any])?[key]) }
    subscript(_ index: Int) -> J {
        guard let a = value as? [Any], index >= 0, index < a.count else { return J(nil) }
        return J(a[index])
    }
    var string: String? { value as? String }
    var int: Int? {
        if let i = value as? Int { return i }
        return (value as? NSNumber)?.intValue
    }
    var double: Double? { (value as? NSNumber)?.doubleValue }
    var bool: Bool? { value as? Bool }
    var array: [J] { (value as? [Any])?.map(J.init) ?? [] }
    var count: Int { (value as? [Any])?.count ?? (value as? [String: Any])?.count ?? 0 }
    var keys: [String] { ((value as? [String: Any]).map { Array($0.keys) } ?? []).sorted() }
    var isNil: Bool { value == nil }
    /// True only for a present, empty JSON array (a missing key is not "empty").
    var isEmptyList: Bool { (value as? [Any])?.isEmpty == true }
    /// A raw frame (string) parsed as JSON.
    var parsed: J {
        guard let s = value as? String, let d = s.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) else { return J(nil) }
        return J(o)
    }
    /// The raw text of a frame.
    var raw: String { value as? String ?? "" }
    var description: String {
        guard let value else { return "nil" }
        if JSONSerialization.isValidJSONObject(value), let d = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) {
            return String(decoding: d, as: UTF8.self)
        }
        return "\(value)"
    }
}

/// A self-signed certificate for 127.0.0.1 (IP SAN) from the openssl CLI: (cert.pem, key.pem) paths in `dir`.
func selfSignedCertificate(in dir: URL, days: Int) async throws -> (cert: String, key: String) {
    let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
    guard let openssl = Peers.which("openssl") else { throw HarnessError("needs the openssl CLI") }
    let gen = try await runProcess(openssl, [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", String(days),
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], timeout: 30)
    guard gen.status == 0 else { throw HarnessError("openssl: \(gen.stderr)") }
    return (cert, key)
}
