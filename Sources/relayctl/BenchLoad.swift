import RelayProtocol
import ArgumentParser
import Foundation
import RelayCrypto
import RelayLoad

/// Options shared by the load generators: the target and how to reach it.
struct LoadTargetOptions: ParsableArguments {
    @Option(help: "relayd or nchan.")
    var target: String = "relayd"

    @OptionGroup var connection: Connection

    @Option(name: .customLong("nchan-url"), help: "nginx+nchan base URL (with --target nchan).")
    var nchanURL: String = "http://127.0.0.1:8090"

    @Option(name: .customLong("nchan-sub"), help: "nchan WebSocket subscriber location (channel id in ?id=).")
    var nchanSub: String = "/sub"

    @Option(name: .customLong("nchan-pub"), help: "nchan HTTP publisher location (channel id in ?id=).")
    var nchanPub: String = "/pub"

    @Option(name: .customLong("server-pid"), help: "Server pid to sample CPU and RSS from /proc (children included); repeatable.")
    var serverPid: [Int32] = []

    @Option(help: "Event loop threads for the subscriber connections.")
    var threads: Int = 2

    @Option(help: "Loopback source addresses to spread connections over (127.0.0.1 … 127.0.0.N).")
    var sources: Int = 8

    @Option(name: .customLong("connect-rate"), help: "New connections per second while ramping (0 = unlimited).")
    var connectRate: Double = 5000

    @Option(help: "Connection attempts in flight while ramping.")
    var concurrency: Int = 256

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(name: .shortAndLong, help: "Progress on stderr.")
    var verbose = false

    func makeTarget() throws -> LoadTarget {
        guard let kind = LoadTarget.Kind(rawValue: target) else { throw CLIError("--target must be relayd or nchan") }
        switch kind {
        case .relayd:
            let p = connection.resolved
            let (host, port) = try LoadTarget.hostPort(url: p.url!)
            return LoadTarget(kind: .relayd, host: host, port: port, siteKey: try p.siteKey.required("--site-key"),
                              publishSecret: try p.publishSecret.required("--secret"), jwtSecret: try p.jwtSecret.required("--jwt-secret"))
        case .nchan:
            let (host, port) = try LoadTarget.hostPort(url: nchanURL)
            return LoadTarget(kind: .nchan, host: host, port: port, subscribePath: nchanSub, publishPath: nchanPub)
        }
    }

    var options: LoadOptions {
        var o = LoadOptions()
        o.threads = threads
        o.sources = sources
        o.connectRate = connectRate
        o.concurrency = concurrency
        o.serverPids = serverPid
        o.verbose = verbose
        return o
    }
}

private func mb(_ b: Int64?) -> String { b.map { String(format: "%.1f MiB", Double($0) / 1048576) } ?? "n/a" }

struct FanoutBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout",
        abstract: "N subscribers on C channels; publishes at rate R (or a ramp of rates); latency, deliveries/s, losses, server CPU/RSS.",
        discussion: "Subscriber i listens to channel i mod C. Publishes go round-robin over the channels through the HTTP publish endpoint; the payload carries the publish instant and a per-channel sequence number, padded to --payload bytes. With several --rate values (comma-separated) each is one step; by default the run stops at the first step that is not sustained (p99 over --p99-limit, a loss, a close, a failed publish or the rate not reached).")

    @OptionGroup var load: LoadTargetOptions

    @Option(help: "Subscriber connections.")
    var subscribers: Int = 1000

    @Option(help: "Channels.")
    var channels: Int = 1

    @Option(help: "Publishes per second over all channels; comma-separated for a ramp.")
    var rate: String = "100"

    @Option(help: "Seconds per rate step.")
    var duration: Double = 10

    @Option(help: "Payload bytes (the data JSON).")
    var payload: Int = 1024

    @Option(name: .customLong("p99-limit"), help: "p99 limit in ms for a sustained step.")
    var p99Limit: Double = 50

    @Option(help: "HTTP publish connections (a channel always uses the same one).")
    var publishers: Int = 4

    @Option(help: "Requests in flight per publish connection (HTTP/1.1 pipelining; a channel's order is kept).")
    var pipeline: Int = 1

    @Option(help: "Longest wait in seconds for deliveries after a step.")
    var drain: Double = 5

    @Flag(name: .customLong("all-steps"), help: "Run every step even after one is not sustained.")
    var allSteps = false

    @Flag(name: .customLong("until-saturated"), help: "Go on past a p99 over the limit; stop at the first step with a loss, a close, a failed publish or the rate not reached.")
    var untilSaturated = false

    func run() async throws {
        let target = try load.makeTarget()
        var c = FanoutConfig()
        c.subscribers = subscribers
        c.channels = max(1, channels)
        c.payloadBytes = payload
        c.rates = try rate.split(separator: ",").map { s in
            guard let r = Double(s.trimmingCharacters(in: .whitespaces)) else { throw CLIError("--rate: \(s) is not a number") }
            return r
        }
        c.stepSeconds = duration
        c.p99LimitMs = p99Limit
        c.publishConnections = publishers
        c.drainSeconds = drain
        c.pipeline = pipeline
        c.stopAtFirstFailure = !allSteps
        c.stopAtSaturation = untilSaturated && !allSteps
        let r = try await LoadScenarios.fanout(target: target, config: c, options: load.options)
        if load.json { IO.json(r.json); return }
        IO.line("fanout \(r.target): \(r.ramp.connected)/\(subscribers) subscribers on \(c.channels) channels, \(payload) B payloads; connect \(r.connectLatency.text)")
        for s in r.steps {
            IO.line(String(format: "rate %8.0f/s  published %8.0f/s  deliveries %10.0f/s  lost %llu  dup %llu  ", s.targetRate, s.publish.achievedRate,
                           s.deliveriesPerSecond, s.lost, s.duplicates) + s.latency.text)
            if let sv = s.server { IO.line(String(format: "               server cpu %.2f s (%.2f cores)  rss %@  client cpu %.2f s", sv.cpuSeconds, sv.cpuSeconds / s.wallSeconds, mb(sv.rssBytes), s.clientCPUSeconds)) }
            if !s.sustained { IO.line("               not sustained: \(s.reason)") }
        }
        IO.line(String(format: "max sustained deliveries/s (p99 ≤ %.0f ms): %.0f; max lossless deliveries/s: %.0f; total lost %llu, duplicates %llu",
                       c.p99LimitMs, r.maxSustainedDeliveriesPerSecond, r.maxDeliveriesPerSecond, r.totalLost, r.totalDuplicates))
    }
}

struct ConnectionsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections",
        abstract: "Ramps to N idle subscribers at a given rate; connect latency and the server's RSS per connection.",
        discussion: "Each connection subscribes to one of --channels channels (nchan needs a channel per WebSocket). RSS per connection = (server RSS after holding − RSS before the ramp) / open connections; pass --server-pid.")

    @OptionGroup var load: LoadTargetOptions

    @Option(help: "Connections to open.")
    var connections: Int = 1000

    @Option(help: "Channels the connections subscribe to (connection i on channel i mod C).")
    var channels: Int = 1000

    @Option(help: "Seconds to hold the connections before sampling.")
    var hold: Double = 5

    func run() async throws {
        let target = try load.makeTarget()
        var c = LoadScenarios.ConnectionsConfig()
        c.connections = connections
        c.channels = channels
        c.holdSeconds = hold
        let r = try await LoadScenarios.connections(target: target, config: c, options: load.options)
        if load.json { IO.json(r.json); return }
        IO.line(String(format: "connections %@: %d/%d open in %.1f s (%d failed)", r.target, r.ramp.connected, connections, r.ramp.seconds, r.ramp.failed))
        IO.line("connect latency: " + r.connectLatency.text)
        IO.line("server rss before \(mb(r.rssBefore)), after \(mb(r.rssAfter)); per connection " + (r.rssPerConnection.map { String(format: "%.0f B (%.2f KiB)", $0, $0 / 1024) } ?? "n/a (pass --server-pid)"))
        if let e = r.ramp.firstError { IO.line("first connect error: \(e)") }
    }
}

struct PublishBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Signed publishes per second (relayd) or nchan publishes, and their latency, without subscribers.")

    @OptionGroup var load: LoadTargetOptions

    @Option(help: "Publishes per second (0 = as fast as the connections answer).")
    var rate: Double = 0

    @Option(help: "Seconds.")
    var duration: Double = 10

    @Option(help: "HTTP connections.")
    var publishers: Int = 4

    @Option(help: "Channels (round-robin).")
    var channels: Int = 100

    @Option(help: "Payload bytes.")
    var payload: Int = 256

    func run() async throws {
        let target = try load.makeTarget()
        var c = LoadScenarios.PublishConfig()
        c.rate = rate
        c.seconds = duration
        c.connections = publishers
        c.channels = channels
        c.payloadBytes = payload
        let r = try await LoadScenarios.publish(target: target, config: c, options: load.options)
        if load.json { IO.json(r.json); return }
        IO.line(String(format: "publish %@: %.0f accepted/s (%llu ok, %llu failed)  ", r.target, r.step.achievedRate, r.step.accepted, r.step.failed) + r.step.latency.text)
        if let e = r.step.firstError { IO.line("first error: \(e)") }
        if let s = r.server { IO.line(String(format: "server cpu %.2f s, rss %@", s.cpuSeconds, mb(s.rssBytes))) }
    }
}

struct SoakBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Soak relayd: held connections with churn, publishes (HTTP and client), presence, Yjs rooms; exactly-once accounting; relayd's RSS/fds/threads must come back to the baseline.",
        discussion: "A warm-up cycle (same load, --warmup seconds), --settle seconds idle (the baseline), the measured cycle (--duration seconds), --settle seconds idle (after). Samples once a second (--csv). Exits 1 when anything was lost, duplicated or out of order, a connection failed or was closed by relayd, or relayd's resources did not come back (the rule is printed). Benchmarks/soak/run.sh starts relayd and draws the chart.")

    @OptionGroup var load: LoadTargetOptions

    @Option(help: "Seconds of load in the measured cycle.") var duration: Double = 600
    @Option(help: "Seconds of load in the warm-up cycle (0: none).") var warmup: Double = 60
    @Option(help: "Idle seconds after each cycle before reading relayd's resources.") var settle: Double = 60
    @Option(help: "/ws connections open at any time (held + churning + client publishers).") var connections: Int = 15_000
    @Option(name: .customLong("churn-rate"), help: "Churned connections opened and closed per second.") var churnRate: Double = 300
    @Option(name: .customLong("churn-lifetime"), help: "Mean life of a churned connection, seconds.") var churnLifetime: Double = 10
    @Option(help: "Data channels.") var channels: Int = 1000
    @Option(name: .customLong("client-channels"), help: "Of those, channels published by WebSocket clients.") var clientChannels: Int = 200
    @Option(name: .customLong("publish-rate"), help: "Signed POST /publish per second.") var publishRate: Double = 300
    @Option(name: .customLong("client-publish-rate"), help: "Client publishes per second (all publishers).") var clientPublishRate: Double = 100
    @Option(name: .customLong("client-publishers"), help: "WebSocket connections making the client publishes.") var clientPublishers: Int = 4
    @Option(help: "Payload bytes.") var payload: Int = 200
    @Option(name: .customLong("presence-channels"), help: "Presence channels.") var presenceChannels: Int = 20
    @Option(name: .customLong("presence-share"), help: "Share of churned connections entering presence.") var presenceShare: Double = 0.3
    @Option(name: .customLong("yjs-rooms"), help: "Yjs rooms.") var yjsRooms: Int = 6
    @Option(name: .customLong("yjs-editors"), help: "Editors per Yjs room.") var yjsEditors: Int = 3
    @Option(name: .customLong("yjs-rate"), help: "Updates per second per editor.") var yjsRate: Double = 4
    @Option(name: .customLong("yjs-join-rate"), help: "Short-lived Yjs joins per second.") var yjsJoinRate: Double = 1
    @Option(help: "CSV of the per-second samples.") var csv: String?
    @Option(name: .customLong("rss-tolerance-percent")) var rssTolerancePercent: Double = 20
    @Option(name: .customLong("rss-tolerance-mib")) var rssToleranceMiB: Double = 32
    @Option(name: .customLong("fd-tolerance")) var fdTolerance: Int = 10
    @Option(name: .customLong("thread-tolerance")) var threadTolerance: Int = 0
    @Option(name: .customLong("debug-drop-every"), help: ArgumentHelp("Testing the tester: subscribers ignore every Nth publication (the run must fail).", visibility: .hidden))
    var debugDropEvery: Int = 0

    func run() async throws {
        let target = try load.makeTarget()
        guard target.kind == .relayd else { throw CLIError("soak needs --target relayd") }
        var c = SoakConfig()
        c.seconds = duration; c.warmupSeconds = warmup; c.settleSeconds = settle
        c.connections = connections; c.churnRate = churnRate; c.churnLifetime = churnLifetime
        c.dataChannels = max(1, channels); c.clientChannels = min(clientChannels, channels)
        c.httpPublishRate = publishRate; c.clientPublishRate = clientPublishRate; c.clientPublishers = clientPublishers
        c.payloadBytes = payload; c.presenceChannels = presenceChannels; c.presenceShare = presenceShare
        c.yjsRooms = yjsRooms; c.yjsEditorsPerRoom = yjsEditors; c.yjsUpdateRate = yjsRate; c.yjsJoinRate = yjsJoinRate
        c.csvPath = csv
        c.rssTolerancePercent = rssTolerancePercent; c.rssToleranceMiB = rssToleranceMiB
        c.fdTolerance = fdTolerance; c.threadTolerance = threadTolerance
        c.debugDropEvery = max(0, debugDropEvery)
        if c.clientPublishers > 0 && (c.clientChannels + c.clientPublishers - 1) / c.clientPublishers > 127 {
            throw CLIError("--client-channels / --client-publishers must be ≤ 127 (a connection's channel limit is 128)")
        }
        let r = try await LoadScenarios.soak(target: target, config: c, options: load.options)
        if load.json {
            IO.json(r.json)
        } else {
            for cy in r.cycles {
                let t = cy.tally
                IO.line("\(cy.label): \(cy.stable) held + \(cy.churnPopulation) churning + \(cy.publishers) publishers; churn \(cy.churnConnects) connects / \(cy.churnCloses) closes; expected \(t.expected), delivered \(t.deliveredExpected), lost \(t.lost), dup \(t.duplicates), out of order \(t.outOfOrder); " + cy.latency.text)
            }
            IO.line("rule: \(r.rule.text)")
            IO.line("baseline \(r.baseline.json.jsonString)  peak \(r.peak.json.jsonString)  after \(r.after.json.jsonString)")
            for p in r.problems { IO.line("FAIL: \(p)") }
            IO.line(r.passed ? "PASS" : "FAIL")
        }
        if !r.passed { throw ExitCode(1) }
    }
}
