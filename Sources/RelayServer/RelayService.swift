import RelayWebSocket
import RelaySites
import RelayProtocol
import Foundation
import Hummingbird
import HummingbirdCore
import NIOSSL
import NIOPosix
import Logging
import Metrics
import NIOCore
import Prometheus
import RelayCore
import RelayCrypto
import ServiceLifecycle
import Synchronization
import YjsCodec
import YjsRooms
import YjsStore

/// The relay: engine, site store, token and signature verification, and the
/// HTTP/WebSocket/SSE application on Hummingbird 2.
public final class RelayService: Sendable {
    public let configuration: ServerConfiguration
    public let engine: RelayEngine
    public let sites: SiteStore
    public let adminKey: String
    public let metricsRegistry: PrometheusCollectorRegistry
    /// The broker's servers and reconnects, refreshed on each `/metrics` scrape.
    let brokerMetrics: BrokerMetrics
    let tokens: TokenAuthority
    let publishVerifier: PublishVerifier
    let sessions = SessionRegistry()
    let logger: Logger
    /// One line per refused connection, rate-bounded.
    let refusals: RefusalLog
    /// Yjs updates refused by storage (full or read-only disk): every editor retries, so at
    /// most 5 lines a second.
    let storageErrors: LogLimiter
    /// The settings `reload(_:)` may change while running (`SIGHUP`).
    let live: Mutex<ReloadableSettings>
    let startedAt = Date()
    let publishedMessages = Atomic<Int>(0)
    let shuttingDown = Atomic<Bool>(false)
    let metrics: ServerMetrics
    public let yjsStore: DocumentStore
    /// End-to-end encrypted rooms (sealed log and snapshot; no keys).
    let yjsE2E: EncryptedRoomStore
    /// With persistence: the thread that runs the store's calls and commits their writes in groups.
    let yjsCommit: GroupCommitQueue?
    let yjsRooms = YjsRooms()
    /// Rooms shared across nodes: a shared persistence and a multi-node broker. Their updates and
    /// awareness travel between nodes on side channels (`RelayEngine.joinSideChannel`).
    var yjsAcrossNodes: Bool { configuration.sharedYjsPersistence != nil && engine.synchronous == nil }
    /// Threads for Yjs store calls (they may block on disk).
    let yjsIO: NIOThreadPool
    private let yjsIOClosed = Atomic<Bool>(false)

    /// Opens the data directory (or memory when `dataDirectory` is empty) and builds the engine.
    public init(configuration: ServerConfiguration, logger: Logger = Logger(label: "relayd"),
                metricsRegistry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) throws {
        self.configuration = configuration
        self.logger = logger
        refusals = RefusalLog(logger: logger, nowSeconds: { Int64(Date().timeIntervalSince1970) })
        storageErrors = LogLimiter(logger: logger, perSecond: 5, what: "Yjs storage errors",
                                   nowSeconds: { Int64(Date().timeIntervalSince1970) })
        live = Mutex(ReloadableSettings(configuration))
        self.metricsRegistry = metricsRegistry
        let dir = configuration.dataDirectory.isEmpty ? nil : configuration.dataDirectory
        if let shared = configuration.sharedSites { sites = shared } else {
          do { sites = try SiteStore(directory: dir) } catch {
            throw DataFileError(file: (dir ?? ".") + "/sites.sqlite", what: "the site registry", underlying: "\(error)")
          }
        }
        adminKey = try configuration.adminAPIKey ?? Self.loadOrCreateAdminKey(directory: dir)
        var engineConfig = configuration.engine
        let factory = PrometheusMetricsFactory(registry: metricsRegistry)
        if engineConfig.metricsFactory == nil { engineConfig.metricsFactory = factory }
        engineConfig.logger = logger
        engine = RelayEngine(registry: sites, configuration: engineConfig)
        metrics = ServerMetrics(factory: engineConfig.metricsFactory ?? factory)
        brokerMetrics = BrokerMetrics(factory: engineConfig.metricsFactory ?? factory)
        do { (yjsStore, yjsE2E, yjsCommit) = try Self.makeYjsStore(configuration, metrics: engineConfig.metricsFactory ?? factory) } catch {
            throw DataFileError(file: configuration.dataDirectory + "/yjs.sqlite", what: "the Yjs document store", underlying: "\(error)")
        }
        yjsIO = NIOThreadPool(numberOfThreads: 2)
        yjsIO.start()
        tokens = TokenAuthority(
            registry: sites,
            options: JWTVerificationOptions(leewaySeconds: configuration.tokenLeeway, maxTokenBytes: configuration.maxTokenBytes),
            clock: SystemClock())
        let store = sites
        publishVerifier = PublishVerifier(
            windowMs: configuration.signatureWindow * 1000,
            replayCache: InMemoryReplayCache(capacity: configuration.replayCacheCapacity),
            lookup: { store.publishSecrets(siteKey: $0) })
    }

    deinit {
        if !yjsIOClosed.exchange(true, ordering: .relaxed) {
            yjsIO.shutdownGracefully { _ in }
            if let commits = yjsCommit { Task { await commits.shutdown() } }
        }
    }

    static func loadOrCreateAdminKey(directory: String?) throws -> String {
        guard let directory else { return Hex.encode(SecureRandom.bytes(count: 32)) }
        let path = directory + "/admin.key"
        if let data = FileManager.default.contents(atPath: path),
           let key = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), key.count >= 32 {
            return key
        }
        let key = Hex.encode(SecureRandom.bytes(count: 32))
        _ = FileManager.default.createFile(atPath: path, contents: Data((key + "\n").utf8), attributes: [.posixPermissions: 0o600])
        return key
    }

    /// Creates the dev site when the registry is empty and the configuration asks for it.
    /// Returns the new site, or nil when sites already exist.
    public func ensureDevSite() async throws -> SiteRecord? {
        guard configuration.createDevSite, sites.list().isEmpty else { return nil }
        let record = SiteRecord.generate(siteURL: "http://localhost", siteName: "dev", limits: settings.defaultSiteLimits)
        try await sites.add(record)
        return record
    }

    /// The services that make up the server, in `ServiceGroup` order (graceful shutdown runs
    /// them in reverse: the drain closes WebSockets first, then the listener stops accepting and
    /// waits for HTTP/1 connections, then maintenance stops).
    public func makeServices() throws -> [any Service] {
        let httpConnections = HTTPConnections()
        return [SiteChangesService(relay: self), MaintenanceService(relay: self), httpConnections,
                try makeListener(httpConnections: httpConnections), ShutdownDrainService(relay: self)]
    }

    /// The listening socket with relayd's child channel: HTTP goes to Hummingbird's router in
    /// a task per connection, WebSocket upgrades to relayd's event-loop handler.
    func makeListener(httpConnections: HTTPConnections) throws -> RelayListener {
        let limits = HTTPTransportLimits(
            handshakeTimeout: .milliseconds(Int64(configuration.handshakeTimeout * 1000)),
            idleTimeout: .milliseconds(Int64(configuration.httpIdleTimeout * 1000)),
            maxFrameBytes: max(configuration.maxFrameBytes, configuration.yjs.maxUpdateBytes + 64),
            maxHeaderBytes: configuration.maxHeaderBytes,
            maxPublishBodyBytes: configuration.maxPublishBodyBytes,
            closeTimeout: .milliseconds(Int64(configuration.closeHandshakeTimeout * 1000)),
            trustedProxies: configuration.trustedProxies)
        // An in-process broker: /publish is answered on the event loop (another broker is awaited).
        var fastPublish: PublishFastPath.Publish?
        if let sync = engine.synchronous {
            fastPublish = { @Sendable [self] signed, batch in publishNow(signed, batch: batch, sync) }
        }
        let route: @Sendable (WebSocketRequest) -> WebSocketRoute? = { [self] request in webSocketRoute(for: request) }
        let responder = ApplicationResponder(makeRouter().buildResponder(), serverName: "relayd", logger: logger)
        let child = RelayChildChannel(responder: responder.respond, limits: limits, route: route, fastPublish: fastPublish,
                                      httpConnections: httpConnections)
        var tls: NIOSSLContext?
        switch (configuration.tlsCertificatePath, configuration.tlsKeyPath) {
        case (let cert?, let key?):
            tls = try NIOSSLContext(configuration: TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))))
        case (nil, nil): break
        default: throw RelayServerError.configuration("TLS needs both a certificate and a key")
        }
        return RelayListener(host: configuration.host, port: configuration.port, tls: tls, child: child, logger: logger)
    }
}

/// Startup errors.
public enum RelayServerError: Error, CustomStringConvertible {
    case configuration(String)
    public var description: String {
        switch self { case .configuration(let m): return m }
    }
}

/// Server-level counters (the engine counts its own).
struct ServerMetrics: Sendable {
    let httpPublishes: Metrics.Counter
    let httpPublishRejections: CounterFactory
    let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
        httpPublishes = Metrics.Counter(label: "relay_http_publish_total", dimensions: [], factory: factory)
        httpPublishRejections = CounterFactory(factory: factory)
    }

    struct CounterFactory: Sendable {
        let factory: any MetricsFactory
        func increment(code: ErrorCode) {
            Metrics.Counter(label: "relay_http_publish_rejected_total", dimensions: [("error", code.rawValue)], factory: factory).increment()
        }
    }
}

/// Engine maintenance and keepalive on one shared timer; on graceful
/// shutdown, closes every connection with 4500 and a jittered retry hint.
struct MaintenanceService: Service {
    let relay: RelayService
    /// With a broker: how often `brokerMaintenance()` runs (well inside `brokerPresenceTTL`, 60 s).
    static let brokerMaintenanceIntervalMs: Int64 = 5_000

    func run() async throws {
        let cfg = relay.configuration
        var lastSSEBeat = SystemClock.nowMs, lastUsageFlush = SystemClock.nowMs, lastBrokerPass: Int64 = 0
        // Keepalive is spread over the ping interval: each tick pings one slice of the
        // connections (by id), so every connection is pinged once per interval without a
        // burst of 10,000 pings (and pongs) at once.
        let slices = max(1, Int((cfg.pingInterval / cfg.maintenanceInterval).rounded()))
        var tick = 0
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(cfg.maintenanceInterval * 1000)))
                relay.engine.tick()
                _ = relay.engine.closeExpired()
                relay.yjsMaintenance()
                let now = SystemClock.nowMs
                relay.pingAndReapIdle(nowMs: now, slice: tick % slices, of: slices)
                tick &+= 1
                if Double(now - lastSSEBeat) >= cfg.sseHeartbeatInterval * 1000 {
                    lastSSEBeat = now
                    for e in relay.sessions.all() where e.isSSE { _ = relay.engine.send(Wire.sseKeepalive, to: e.connection) }
                }
                if relay.engine.synchronous == nil, now - lastBrokerPass >= Self.brokerMaintenanceIntervalMs {
                    // Presence refresh, queued leaves, this node's connection count, idle interest.
                    lastBrokerPass = now
                    await relay.engine.brokerMaintenance()
                }
                // With a shared registry, often: the quota is every node's count as of the last flush.
                if now - lastUsageFlush >= (relay.sites.backend.isShared ? 5_000 : 30_000) {
                    lastUsageFlush = now
                    do { try await relay.sites.flushUsage() } catch {
                        relay.logger.warning("message counts not stored (kept, retried at the next flush): \(error)")
                    }
                }
            }
        } onGracefulShutdown: {
            relay.beginShutdown()
        }
        try? await relay.sites.flushUsage()
    }
}

/// With a shared site registry: follows other nodes' changes (new sites, rotated secrets, new
/// limits, removals) until shutdown, and closes the connections of a site another node archived
/// or removed. Idle with a local registry.
struct SiteChangesService: Service {
    let relay: RelayService

    func run() async throws {
        // A service of a ServiceGroup must not return before shutdown (that stops the group).
        guard relay.sites.backend.isShared else {
            try? await gracefulShutdown()
            return
        }
        let relay = self.relay
        relay.sites.onRemoteChange { old, new in
            guard let old, !old.archived, new == nil || new?.archived == true else { return }
            relay.logger.notice("site \(new == nil ? "removed" : "archived") on another node: closing its connections",
                                metadata: ["site_id": "\(old.siteID)"])
            relay.closeConnections(siteID: old.siteID, reason: new == nil ? "site removed" : "site unregistered")
        }
        // Not awaited after cancellation: PostgresNIO may hold a task waiting for a connection.
        let follower = Task { try await relay.sites.followChanges() }
        try? await gracefulShutdown()
        follower.cancel()
    }
}

/// Runs beside the application in a `ServiceGroup`, listed after it: graceful
/// shutdown reaches services in reverse order, so this drain runs first. It
/// closes every connection with 4500 (after its queued frames) and waits, up
/// to `shutdownFlushTimeout`, for them to go before the HTTP server stops.
public struct ShutdownDrainService: Service {
    let relay: RelayService

    public init(relay: RelayService) { self.relay = relay }

    public func run() async throws {
        try? await gracefulShutdown()
        relay.beginShutdown()
        let deadline = ContinuousClock.now + .milliseconds(Int64(relay.configuration.shutdownFlushTimeout * 1000))
        while relay.sessions.count.load(ordering: .relaxed) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        try? await relay.sites.flushUsage()
    }
}

extension RelayService {
    /// Sends `{"type":"ping"}` to the WebSockets of one slice (connection id mod `slices`)
    /// and closes the ones silent for longer than `idleTimeout`.
    func pingAndReapIdle(nowMs: Int64, slice: Int = 0, of slices: Int = 1) {
        let idleMs = Int64(configuration.idleTimeout * 1000)
        for e in sessions.webSockets(slice: slice, of: slices) {
            if e.yjsRoom != nil {
                // y-websocket clients answer WebSocket pings (protocol level), not JSON ones.
                if nowMs - e.activity.lastMs > idleMs * 2 {
                    engine.disconnect(e.connection, code: CloseCode.idle, reason: "idle", flushPending: true)
                }
                continue
            }
            if nowMs - e.activity.lastMs > idleMs {
                engine.disconnect(e.connection, code: CloseCode.idle, reason: "no frames for \(Int(configuration.idleTimeout)) s", flushPending: true)
            } else {
                _ = engine.send(Wire.ping, to: e.connection)
            }
        }
    }

    /// Stops the Yjs store's I/O threads. Call after the service group has returned (nothing
    /// uses the store then); LeakSanitizer found the pool left running at exit. A service that
    /// is dropped without `close()` (an embedder's, a test's) stops them in `deinit`.
    public func close() async {
        guard !yjsIOClosed.exchange(true, ordering: .relaxed) else { return }
        try? await yjsIO.shutdownGracefully()
        await yjsCommit?.shutdown()
    }

    /// Stops readiness, then closes every connection with 4500 after its queued frames.
    public func beginShutdown() {
        guard !shuttingDown.exchange(true, ordering: .relaxed) else { return }
        logger.info("shutting down: closing \(engine.connectionCount) connections with 4500")
        engine.shutdown(retryAfterMs: configuration.shutdownRetryAfterMs)
    }
}


/// What relayd can change without a restart (`SIGHUP` re-reads the config file).
/// Everything else (addresses, TLS, data directory, frame and Yjs limits,
/// trusted proxies) needs a restart.
public struct ReloadableSettings: Sendable, Equatable {
    public var corsAllowOrigin: String
    public var maxConnections: Int
    public var maxConnectionsPerIP: Int
    /// Given to sites registered from now on; existing sites keep their own limits.
    public var defaultSiteLimits: SiteLimits

    public init(_ c: ServerConfiguration) {
        corsAllowOrigin = c.corsAllowOrigin
        maxConnections = c.maxConnections
        maxConnectionsPerIP = c.maxConnectionsPerIP
        defaultSiteLimits = c.defaultSiteLimits
    }
}

extension RelayService {
    /// The reloadable settings now in force.
    public var settings: ReloadableSettings { live.withLock { $0 } }

    /// Applies the reloadable part of `configuration` and logs what changed.
    /// Returns the names of the settings that changed.
    @discardableResult
    public func reload(_ configuration: ServerConfiguration) -> [String] {
        let new = ReloadableSettings(configuration)
        let old = live.withLock { s in defer { s = new }; return s }
        var changed: [String] = []
        if old.corsAllowOrigin != new.corsAllowOrigin { changed.append("cors-origin") }
        if old.maxConnections != new.maxConnections { changed.append("max-connections") }
        if old.maxConnectionsPerIP != new.maxConnectionsPerIP { changed.append("max-connections-per-ip") }
        if old.defaultSiteLimits != new.defaultSiteLimits { changed.append("site defaults") }
        logger.notice("configuration reloaded", metadata: ["changed": "\(changed.isEmpty ? "nothing" : changed.joined(separator: ","))"])
        return changed
    }
}

/// A data file relayd cannot open at start (damaged, not a database, not
/// readable). relayd stops without touching the file.
public struct DataFileError: Error, CustomStringConvertible {
    public let file: String
    public let what: String
    public let underlying: String
    public var description: String {
        "cannot open \(what) \(file): \(underlying). The file was left as it is. Restore it from a backup "
            + "(relayctl backup, see Docs/self-hosting.md), or move it aside to start without it."
    }
}
