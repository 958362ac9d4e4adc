import Foundation
import Testing

/// `relayctl` against a running relayd: the operator's commands end to end.
@Suite("relayctl against relayd", .serialized)
struct RelayctlNetworkTests {
    static var relayctl: String { Paths.relayctl }

    @Test("subscribe streams JSON lines through a pipe as they arrive; publish, health and stats answer",
          .timeLimit(.minutes(1)))
    func subscribePublishHealthStats() async throws {
        let relay = try await Relayd.start()
        defer { relay.stop() }
        let site = try #require(relay.site)
        let url = "http://127.0.0.1:\(relay.port)"
        let ctl = Self.relayctl
        // `head -n 2` only sees the lines if relayctl writes each one out when it happens:
        // `timeout` kills relayctl, so anything left in a buffer would be lost.
        let subscriber = Task {
            try await runProcess("/bin/sh", ["-c",
                "timeout 40 '\(ctl)' subscribe --url \(url) --site-key \(site.siteKey) --jwt-secret \(site.jwtSecret) events | head -n 2"],
                timeout: 60)
        }
        let common = ["--url", url, "--site-key", site.siteKey, "--secret", site.publishSecret]
        // Publish once the subscriber is connected (a loaded machine may take seconds to start it).
        for _ in 0..<40 {
            let stats = try await runProcess(ctl, ["stats"] + common, timeout: 20)
            if stats.stdout.range(of: #""active_connections"\s*:\s*[1-9]"#, options: .regularExpression) != nil { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        let pub = try await runProcess(ctl, ["publish", "--json"] + common + ["events", "order.updated", #"{"id":7,"s":"a\/b"}"#], timeout: 20)
        #expect(pub.status == 0, "\(pub.stderr)")
        #expect(pub.stdout.contains(#""ok":true"#) && pub.stdout.contains(#""offset":1"#), "\(pub.stdout)")
        // A second event: relayctl writes it after `head` has exited, gets EPIPE and stops (without
        // it, relayctl would stay until `timeout`).
        _ = try await runProcess(ctl, ["publish"] + common + ["events", "order.updated", #"{"id":8}"#], timeout: 20)

        let sub = try await subscriber.value
        let lines = sub.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 2, "subscriber printed: \(sub.stdout) / \(sub.stderr)")
        #expect(lines[0].contains(#""type":"subscribed""#), "\(lines[0])")
        #expect(lines[1].contains(#""event":"order.updated""#) && lines[1].contains(#""id":7"#), "\(lines[1])")

        let health = try await runProcess(ctl, ["health", "--url", url], timeout: 20)
        #expect(health.status == 0 && health.stdout.contains("ok"), "\(health.stdout) \(health.stderr)")
        let stats = try await runProcess(ctl, ["stats"] + common, timeout: 20)
        #expect(stats.status == 0 && stats.stdout.contains("active_connections"), "\(stats.stdout) \(stats.stderr)")
        // A wrong secret is refused with a non-zero exit and the relay's error code.
        let bad = try await runProcess(ctl, ["publish", "--url", url, "--site-key", site.siteKey, "--secret", String(repeating: "0", count: 64),
                                             "events", "x", "{}"], timeout: 20)
        #expect(bad.status != 0 && (bad.stderr + bad.stdout).contains("invalid_signature"), "\(bad.stdout) \(bad.stderr)")
    }
}
