#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import RelayJSON
import Synchronization

/// Where relayd's log lines go: standard error or a file (reopened on
/// `SIGHUP`, for logrotate), as text or as one JSON object per line, with a
/// log level that can change while running. One instance backs every
/// `Logger` through `RelayLogHandler`.
public final class LogOutput: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        /// `2026-12-04T03:01:02.345Z notice relayd: connection refused code=1013 ip=203.0.113.9`
        case text
        /// `{"time":"…","level":"notice","label":"relayd","message":"connection refused","code":"1013",…}`
        case json
    }

    private struct Sink { var fd: Int32; var ownsFD: Bool }
    private let sink: Mutex<Sink>
    private let levelRaw: Atomic<Int>
    public let format: Format
    /// The log file, or nil for standard error.
    public let path: String?

    /// Opens `path` for appending (created with mode 0640), or uses standard error.
    public init(format: Format = .text, path: String? = nil, level: Logger.Level = .info) throws {
        self.format = format
        self.path = path
        levelRaw = Atomic(Self.index(level))
        if let path {
            sink = Mutex(Sink(fd: try Self.openFile(path), ownsFD: true))
        } else {
            sink = Mutex(Sink(fd: STDERR_FILENO, ownsFD: false))
        }
    }

    deinit {
        sink.withLock { if $0.ownsFD { _ = close($0.fd) } }
    }

    public var level: Logger.Level {
        get { Logger.Level.allCases[levelRaw.load(ordering: .relaxed)] }
        set { levelRaw.store(Self.index(newValue), ordering: .relaxed) }
    }

    /// Reopens the log file (after logrotate moved it). Standard error: nothing to do.
    public func reopen() throws {
        guard let path else { return }
        let fd = try Self.openFile(path)
        sink.withLock { s in
            let old = s.fd
            s.fd = fd
            if s.ownsFD { _ = close(old) }
            s.ownsFD = true
        }
    }

    /// A handler for `LoggingSystem.bootstrap`.
    public func handler(label: String) -> RelayLogHandler { RelayLogHandler(label: label, output: self) }

    func emit(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, source: String) {
        let time = Self.timestamp()
        var line: [UInt8] = []
        line.reserveCapacity(128 + message.utf8.count)
        switch format {
        case .text:
            line.append(contentsOf: "\(time) \(level) \(label): \(message)".utf8)
            for (k, v) in metadata.sorted(by: { $0.key < $1.key }) {
                line.append(contentsOf: " \(k)=".utf8)
                let text = "\(v)"
                if text.isEmpty || text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) {
                    JSON.appendString(text, to: &line)
                } else {
                    line.append(contentsOf: text.utf8)
                }
            }
        case .json:
            line.append(contentsOf: "{\"time\":".utf8)
            JSON.appendString(time, to: &line)
            line.append(contentsOf: ",\"level\":".utf8)
            JSON.appendString(level.rawValue, to: &line)
            line.append(contentsOf: ",\"label\":".utf8)
            JSON.appendString(label, to: &line)
            line.append(contentsOf: ",\"message\":".utf8)
            JSON.appendString(message, to: &line)
            for (k, v) in metadata.sorted(by: { $0.key < $1.key }) where !["time", "level", "label", "message"].contains(k) {
                line.append(UInt8(ascii: ","))
                JSON.appendString(k, to: &line)
                line.append(UInt8(ascii: ":"))
                JSON.appendString("\(v)", to: &line)
            }
            line.append(UInt8(ascii: "}"))
        }
        line.append(UInt8(ascii: "\n"))
        sink.withLock { s in
            line.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = write(s.fd, raw.baseAddress! + offset, raw.count - offset)
                    if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
                }
            }
        }
    }

    private static func openFile(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw LogOutputError(message: "cannot open log file \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    private static func index(_ level: Logger.Level) -> Int { Logger.Level.allCases.firstIndex(of: level) ?? 2 }

    private static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
                      Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), Int(ts.tv_nsec / 1_000_000))
    }
}

public struct LogOutputError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// swift-log handler writing through a shared `LogOutput`; its level is the
/// output's, so `SIGHUP` can change it for every logger at once.
public struct RelayLogHandler: LogHandler {
    public let label: String
    let output: LogOutput
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public var logLevel: Logger.Level {
        get { output.level }
        set { output.level = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let m = event.metadata { all.merge(m) { $1 } }
        output.emit(level: event.level, label: label, message: "\(event.message)", metadata: all, source: event.source)
    }
}
