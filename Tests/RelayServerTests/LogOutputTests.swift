import Foundation
import Logging
@testable import RelayServer
import Synchronization
import Testing

@Suite("LogOutput: text and JSON lines, live level, reopen")
struct LogOutputTests {
    func temp() -> String { FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString)").path }

    @Test("Text lines: time, level, label, message, sorted key=value metadata; values with spaces are quoted")
    func text() throws {
        let path = temp()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = try LogOutput(format: .text, path: path, level: .info)
        let log = Logger(label: "relayd") { out.handler(label: $0) }
        log.notice("connection refused", metadata: ["ip": "203.0.113.5", "code": "4001", "reason": "invalid token: expired"])
        log.debug("not shown at info")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasSuffix(" notice relayd: connection refused code=4001 ip=203.0.113.5 reason=\"invalid token: expired\"\n"), "\(text)")
        #expect(text.split(separator: "\n").count == 1)
        #expect(text.first?.isNumber == true, "starts with the timestamp")
    }

    @Test("JSON lines parse, carry the metadata as members, and the level can change for every logger at once")
    func json() throws {
        let path = temp()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = try LogOutput(format: .json, path: path, level: .notice)
        let a = Logger(label: "relayd") { out.handler(label: $0) }
        let b = Logger(label: "other") { out.handler(label: $0) }
        a.info("hidden")
        out.level = .debug
        b.debug("shown \"quoted\"\nnewline", metadata: ["k": "v"])
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(o["message"] as? String == "shown \"quoted\"\nnewline")
        #expect(o["level"] as? String == "debug" && o["label"] as? String == "other" && o["k"] as? String == "v")
        #expect((o["time"] as? String)?.hasSuffix("Z") == true)
    }

    @Test("reopen() continues in a new file at the same path (logrotate), and a path that cannot be opened is a clear error")
    func reopen() throws {
        let path = temp()
        defer { try? FileManager.default.removeItem(atPath: path); try? FileManager.default.removeItem(atPath: path + ".1") }
        let out = try LogOutput(format: .text, path: path)
        let log = Logger(label: "relayd") { out.handler(label: $0) }
        log.info("one")
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        log.info("two")  // still the moved file
        try out.reopen()
        log.info("three")
        #expect(try String(contentsOfFile: path + ".1", encoding: .utf8).contains("two"))
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("three"))
        #expect(throws: LogOutputError.self) { try LogOutput(path: "/nonexistent-dir/relayd.log") }
    }

    @Test("LogLimiter: at most N lines a second of one kind, the rest counted in one line the next second")
    func limiter() throws {
        let path = temp()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = try LogOutput(format: .text, path: path, level: .info)
        let clock = Mutex<Int64>(100)
        let limiter = LogLimiter(logger: Logger(label: "relayd") { out.handler(label: $0) }, perSecond: 5,
                                 what: "Yjs storage errors", nowSeconds: { clock.withLock { $0 } })
        for i in 0..<40 { limiter.log(level: .error, "update not stored \(i)") }
        clock.withLock { $0 = 101 }
        limiter.log(level: .error, "update not stored later")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 7, "\(lines)")
        #expect(lines.prefix(5).allSatisfy { $0.contains("update not stored") })
        #expect(lines[5].hasSuffix("35 more Yjs storage errors not logged (over 5 a second)"))
        #expect(lines[6].hasSuffix("update not stored later"))
    }
}
