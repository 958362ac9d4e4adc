import Logging
import RelayProtocol
import RelayWebSocket
import Synchronization

/// At most `perSecond` lines a second of one kind, so a flood (bad clients, a full disk with
/// editors retrying) cannot flood the log: the rest are counted and reported in one line when
/// the next second begins.
final class LogLimiter: Sendable {
    private struct Window { var second: Int64 = 0; var lines = 0; var suppressed = 0 }
    private let window = Mutex(Window())
    let logger: Logger
    let perSecond: Int
    /// What the summary line calls the suppressed lines ("refused connections").
    private let what: String
    private let nowSeconds: @Sendable () -> Int64

    init(logger: Logger, perSecond: Int, what: String, nowSeconds: @escaping @Sendable () -> Int64) {
        self.logger = logger
        self.perSecond = perSecond
        self.what = what
        self.nowSeconds = nowSeconds
    }

    /// Logs `message` unless this second's budget is spent.
    func log(level: Logger.Level, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata? = nil) {
        let now = nowSeconds()
        let (log, suppressedBefore) = window.withLock { w -> (Bool, Int) in
            var reported = 0
            if w.second != now {
                reported = w.suppressed
                w = Window(second: now)
            }
            guard w.lines < perSecond else { w.suppressed += 1; return (false, reported) }
            w.lines += 1
            return (true, reported)
        }
        if suppressedBefore > 0 {
            logger.log(level: level, "\(suppressedBefore) more \(what) not logged (over \(perSecond) a second)")
        }
        guard log else { return }
        logger.log(level: level, message(), metadata: metadata)
    }
}

/// One log line per refused connection (endpoint, client address, close code,
/// its name and the reason), at most `perSecond` lines a second (`LogLimiter`).
/// Tokens, signatures and secrets are never part of a reason.
final class RefusalLog: Sendable {
    private let limiter: LogLimiter

    init(logger: Logger, perSecond: Int = 50, nowSeconds: @escaping @Sendable () -> Int64) {
        limiter = LogLimiter(logger: logger, perSecond: perSecond, what: "refused connections", nowSeconds: nowSeconds)
    }

    /// Logs a refusal. `code` is a WebSocket close code, or an HTTP status for `/sse`.
    func refused(endpoint: String, ip: String, code: Int, name: String, reason: String) {
        limiter.log(level: .notice, "connection refused", metadata: [
            "endpoint": "\(endpoint)", "ip": "\(ip)", "code": "\(code)", "name": "\(name)", "reason": "\(reason)",
        ])
    }
}

extension RelayService {
    /// Closes a WebSocket that is not admitted, with one log line.
    func refuse(_ session: WebSocketSession, code: CloseCode, reason: String) {
        refusals.refused(endpoint: Self.endpointName(session.request.path), ip: session.request.remoteIP,
                         code: Int(code.rawValue), name: code.info?.name ?? "\(code.rawValue)", reason: reason)
        session.close(code: code, reason: reason)
    }

    static func endpointName(_ path: String) -> String {
        path.hasPrefix("/yjs/") ? "/yjs" : path
    }
}
