import ArgumentParser
import Foundation
import RelayClient

/// `relayctl doctor`: what an operator runs when "it does not work".
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a running relayd as WordPress and browsers reach it, and say what to fix.",
        discussion: """
            Checks, in order: reachable (GET /healthz), TLS certificate (https URLs: valid, for this name, \
            days to expiry), clock difference with relayd (tokens and signatures depend on it), the WebSocket \
            upgrade on /ws (through any proxy), that /sse is not buffered (first bytes well before the \
            heartbeat), and the site's credentials (a signed GET /site/stats; a token from the JWT secret). \
            Without --site-key/--jwt-secret/--secret the checks that need them are skipped. Exit status: 0 when \
            nothing failed, 1 otherwise (warnings do not fail).
            """)

    @OptionGroup var connection: Connection

    @Option(name: .customLong("ca-file"), help: "PEM file of extra trusted certificates (a self-signed or private CA).")
    var caFile: String?

    @Option(help: "Seconds per check.")
    var timeout: Double = 8

    @Option(name: .customLong("token-leeway"), help: "relayd's --token-leeway, seconds: a larger clock difference fails.")
    var tokenLeeway: Double = 5

    @Flag(help: "One JSON object per check instead of text.")
    var json = false

    func run() async throws {
        let p = connection.resolved
        if let caFile {
            guard FileManager.default.isReadableFile(atPath: caFile) else { throw CLIError("cannot read --ca-file \(caFile)") }
        }
        var doctor = RelayDoctor(baseURL: p.url!, siteKey: p.siteKey, publishSecret: p.publishSecret, jwtSecret: p.jwtSecret,
                                 caFile: caFile, timeout: timeout)
        doctor.tokenLeewaySeconds = tokenLeeway
        let asJSON = json
        let checks = await doctor.run { check in
            if asJSON {
                IO.json(.object([("check", .string(check.name)), ("outcome", .string(check.outcome.rawValue)), ("detail", .string(check.detail))]))
            } else {
                let mark: String
                switch check.outcome {
                case .ok: mark = "ok  "
                case .warning: mark = "WARN"
                case .failed: mark = "FAIL"
                case .skipped: mark = "skip"
                }
                IO.line("\(mark) \(check.name): \(check.detail)")
            }
        }
        let failed = checks.filter { $0.outcome == .failed }.count
        let warned = checks.filter { $0.outcome == .warning }.count
        if !asJSON {
            IO.line(failed == 0 ? "no problems found\(warned > 0 ? " (\(warned) warning\(warned == 1 ? "" : "s"))" : "")"
                                : "\(failed) problem\(failed == 1 ? "" : "s") found")
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
