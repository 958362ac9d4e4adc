import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Loopback ports for the servers tests start.
public enum LoopbackPorts {
    /// Runs `call` (`bind` or `connect`) on a new TCP socket with 127.0.0.1:`port`; true on success.
    static func succeeds(_ port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A free port below Linux's ephemeral range (32768–60999), so that after a server stops, no
    /// outgoing connection of another test takes its port before it restarts there.
    public static func free() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20_000..<32_000)
            if succeeds(port, { bind($0, $1, $2) }) { return port }
        }
        throw NSError(domain: "LoopbackPorts", code: 1, userInfo: [NSLocalizedDescriptionKey: "no free port in 20000-32000"])
    }

    /// Waits until something accepts on `port` (false once `process` exited or `attempts` × 25 ms passed).
    public static func waitUntilListening(_ port: Int, process: Process, attempts: Int = 200) async -> Bool {
        for _ in 0..<attempts {
            if !process.isRunning { return false }
            if succeeds(port, { connect($0, $1, $2) }) { return true }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return false
    }
}
