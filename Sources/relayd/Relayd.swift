import RelaySites
import ArgumentParser
import Foundation
import Logging
import RelayCore
import RelayProtocol
import RelayJSON
import UnixSignals
import RelayServer
import RelayRedis
import RelayPostgres
import PostgresNIO
import RelayWebSocket
import ServiceLifecycle

/// relayd: parses configuration (flags > environment > config file > defaults) and runs the relay.
@main
struct Relayd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relayd",
        abstract: "Self-hostable realtime relay for WordPress (wordsocket-compatible).",
        discussion: """
            With no configuration at all: listens on 127.0.0.1:8080, keeps data in ./relay-data, and creates a \
            dev site on first start, printing its credentials. Every option can also be set by the environment \
            variable shown (RELAY_…) or in a JSON config file (--config, keys as the long option names). \
            Precedence: flag, then environment, then file, then default. See Docs/self-hosting.md.
            """,
        version: RelayVersion.description)

    @Option(help: "JSON config file (keys are the long option names, e.g. {\"port\":8080}). Env: RELAY_CONFIG")
    var config: String?

    @Option(help: "Listen address. Env: RELAY_HOST [default: 127.0.0.1]") var host: String?
    @Option(help: "Listen port. Env: RELAY_PORT [default: 8080]") var port: Int?
    @Option(name: .customLong("data-dir"), help: "Data directory (site registry, admin key). Env: RELAY_DATA_DIR [default: ./relay-data]") var dataDir: String?
    @Option(name: .customLong("admin-key"), help: "Admin API key for /api/sites/*. Env: RELAY_ADMIN_KEY [default: generated into <data-dir>/admin.key]") var adminKey: String?
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain; with --tls-key serves HTTPS/WSS. Env: RELAY_TLS_CERT") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key. Env: RELAY_TLS_KEY") var tlsKey: String?
    @Option(name: .customLong("dev-site"), help: "Create a dev site when there is none (true/false). Env: RELAY_DEV_SITE [default: true]") var devSite: Bool?
    @Option(name: .customLong("max-frame-bytes"), help: "Largest WebSocket frame/message. Env: RELAY_MAX_FRAME_BYTES [default: 2097152]") var maxFrameBytes: Int?
    @Option(name: .customLong("max-header-bytes"), help: "Largest HTTP request header block; larger gets 400 and a close. Env: RELAY_MAX_HEADER_BYTES [default: 32768]") var maxHeaderBytes: Int?
    @Option(name: .customLong("handshake-timeout"), help: "Seconds from accept to a complete request head or WebSocket upgrade. Env: RELAY_HANDSHAKE_TIMEOUT [default: 10]") var handshakeTimeout: Double?
    @Option(name: .customLong("http-idle-timeout"), help: "Close idle keep-alive HTTP connections after this many seconds. Env: RELAY_HTTP_IDLE_TIMEOUT [default: 60]") var httpIdleTimeout: Double?
    @Option(name: .customLong("close-timeout"), help: "Seconds to wait for the client's close frame after relayd's. Env: RELAY_CLOSE_TIMEOUT [default: 5]") var closeTimeout: Double?
    @Option(name: .customLong("max-publish-body-bytes"), help: "Largest POST /publish body. Env: RELAY_MAX_PUBLISH_BODY_BYTES [default: 4194304]") var maxPublishBodyBytes: Int?
    @Option(name: .customLong("max-batch"), help: "Most publications per /publish/batch. Env: RELAY_MAX_BATCH [default: 100]") var maxBatch: Int?
    @Option(name: .customLong("max-connections"), help: "Process-wide connection cap (WebSocket + SSE). Env: RELAY_MAX_CONNECTIONS [default: 18000]") var maxConnections: Int?
    @Option(name: .customLong("max-connections-per-ip"), help: "WebSocket + SSE connections from one address (close 1013). Env: RELAY_MAX_CONNECTIONS_PER_IP [default: 2000]") var maxConnectionsPerIP: Int?
    @Option(name: .customLong("outbox-bytes"), help: "Per-connection outbound queue, bytes; overflow closes with 4008. Env: RELAY_OUTBOX_BYTES [default: 4194304]") var outboxBytes: Int?
    @Option(name: .customLong("outbox-frames"), help: "Per-connection outbound queue, frames. Env: RELAY_OUTBOX_FRAMES [default: 16384]") var outboxFrames: Int?
    @Option(name: .customLong("ping-interval"), help: "Seconds between {\"type\":\"ping\"} frames. Env: RELAY_PING_INTERVAL [default: 20]") var pingInterval: Double?
    @Option(name: .customLong("idle-timeout"), help: "Close a silent WebSocket after this many seconds (4002). Env: RELAY_IDLE_TIMEOUT [default: 65]") var idleTimeout: Double?
    @Option(name: .customLong("sse-heartbeat"), help: "Seconds between SSE comment heartbeats. Env: RELAY_SSE_HEARTBEAT [default: 15]") var sseHeartbeat: Double?
    @Option(name: .customLong("token-leeway"), help: "Accepted JWT clock skew, seconds. Env: RELAY_TOKEN_LEEWAY [default: 5]") var tokenLeeway: Int64?
    @Option(name: .customLong("signature-window"), help: "Publish signature timestamp window, seconds. Env: RELAY_SIGNATURE_WINDOW [default: 60]") var signatureWindow: Int64?
    @Option(name: .customLong("rotation-grace"), help: "Seconds the previous publish secret stays valid after rotation. Env: RELAY_ROTATION_GRACE [default: 3600]") var rotationGrace: Int64?
    @Option(name: .customLong("cors-origin"), help: "Access-Control-Allow-Origin. Env: RELAY_CORS_ORIGIN [default: *]") var corsOrigin: String?
    @Option(name: .customLong("history-size"), help: "Publications kept per channel for recovery. Env: RELAY_HISTORY_SIZE [default: 200]") var historySize: Int?
    @Option(name: .customLong("history-ttl"), help: "Seconds publications are kept for recovery. Env: RELAY_HISTORY_TTL [default: 300]") var historyTTL: Double?
    @Option(name: .customLong("site-max-connections"), help: "Default per-site connection limit (4029). Env: RELAY_SITE_MAX_CONNECTIONS [default: 500]") var siteMaxConnections: Int?
    @Option(name: .customLong("site-max-message-bytes"), help: "Default per-site limit on a publication's payload (JSON data or binary payload); over it a WebSocket publish gets a message_too_large error frame, HTTP 413. Env: RELAY_SITE_MAX_MESSAGE_BYTES [default: 2097152]") var siteMaxMessageBytes: Int?
    @Option(name: .customLong("site-client-publish-rate"), help: "Default per-site publishes per second a browser connection may make (token bucket); faster ones wait. Env: RELAY_SITE_CLIENT_PUBLISH_RATE [default: 50]") var siteClientPublishRate: Double?
    @Option(name: .customLong("site-client-publish-burst"), help: "Default per-site burst of browser publishes before the rate applies. Env: RELAY_SITE_CLIENT_PUBLISH_BURST [default: 200]") var siteClientPublishBurst: Double?
    @Option(name: .customLong("client-publish-max-wait"), help: "Seconds a browser connection's publishes may be held back by the rate, continuously, before close 4013. Env: RELAY_CLIENT_PUBLISH_MAX_WAIT [default: 10]") var clientPublishMaxWait: Double?
    @Option(name: .customLong("site-monthly-quota"), help: "Default monthly message quota (0 = none). Env: RELAY_SITE_MONTHLY_QUOTA [default: 0]") var siteMonthlyQuota: Int?
    @Option(name: .customLong("yjs-persistence"), help: "Yjs documents: sqlite (in the data dir) or memory. Env: RELAY_YJS_PERSISTENCE [default: sqlite]") var yjsPersistence: String?
    @Option(name: .customLong("yjs-max-update-bytes"), help: "Largest Yjs update (close 4011). Env: RELAY_YJS_MAX_UPDATE_BYTES [default: 1048576]") var yjsMaxUpdateBytes: Int?
    @Option(name: .customLong("yjs-max-document-bytes"), help: "Largest Yjs document (close 4010). Env: RELAY_YJS_MAX_DOCUMENT_BYTES [default: 67108864]") var yjsMaxDocumentBytes: Int?
    @Option(name: .customLong("yjs-max-connections-per-room"), help: "Connections per Yjs room (close 4012). Env: RELAY_YJS_MAX_CONNECTIONS_PER_ROOM [default: 100]") var yjsMaxConnectionsPerRoom: Int?
    @Option(name: .customLong("yjs-max-collaborators-per-room"), help: "Distinct users per Yjs room (close 4014). Env: RELAY_YJS_MAX_COLLABORATORS_PER_ROOM [default: 50]") var yjsMaxCollaboratorsPerRoom: Int?
    @Option(name: .customLong("yjs-max-awareness-bytes"), help: "Largest awareness state of one Yjs client, JSON bytes (close 1008). Env: RELAY_YJS_MAX_AWARENESS_BYTES [default: 65536]") var yjsMaxAwarenessBytes: Int?
    @Option(name: .customLong("yjs-max-awareness-clients"), help: "Awareness client ids one Yjs connection may speak for (close 1008). Env: RELAY_YJS_MAX_AWARENESS_CLIENTS [default: 8]") var yjsMaxAwarenessClients: Int?
    @Option(name: .customLong("yjs-write-queue-bytes"), help: "With sqlite: bytes of Yjs messages waiting to be stored above which each connection waits for its own (back-pressure). Env: RELAY_YJS_WRITE_QUEUE_BYTES [default: 16777216]") var yjsWriteQueueBytes: Int?
    @Option(name: .customLong("yjs-max-in-flight"), help: "With sqlite: Yjs messages of one connection waiting to be stored before its next waits (back-pressure). Env: RELAY_YJS_MAX_IN_FLIGHT [default: 16]") var yjsMaxInFlight: Int?
    @Option(name: .customLong("yjs-e2e-compact-entries"), help: "Encrypted Yjs rooms: ask a writer for a new sealed snapshot after this many log entries since the last one. Env: RELAY_YJS_E2E_COMPACT_ENTRIES [default: 500]") var yjsE2ECompactEntries: Int?
    @Option(name: .customLong("yjs-e2e-compact-bytes"), help: "Encrypted Yjs rooms: ...or after this many log bytes. Env: RELAY_YJS_E2E_COMPACT_BYTES [default: 1048576]") var yjsE2ECompactBytes: Int?
    @Option(name: .customLong("yjs-keep-history"), help: "Yjs rooms that keep deleted content (no garbage collection): comma-separated room-name prefixes, * for all. Env: RELAY_YJS_KEEP_HISTORY [default: none]") var yjsKeepHistory: String?
    @Option(name: .customLong("trusted-proxy"), help: "Reverse proxies (IPs or CIDR ranges, comma-separated) whose Forwarded / X-Forwarded-For headers give the client address for per-IP limits and logs; headers from other peers are ignored. Env: RELAY_TRUSTED_PROXY [default: none]") var trustedProxy: String?
    @Option(name: .customLong("broker"), help: "Run as one node of several on this Redis (redis://[[user]:password@]host[:port][/db], rediss:// for TLS): channels, history, recovery, presence and connection counts are shared (preview; see Docs/self-hosting.md). Repeat for shards: each channel lives on one server, chosen by consistent hashing (every node must list the same servers). Prefer the env or config file: a password on the command line shows in ps. Env: RELAY_BROKER (several separated by spaces or commas) [default: single node]") var brokers: [String] = []
    @Option(name: .customLong("database"), help: "Keep the site registry (sites, secrets, limits, monthly counts) and the Yjs rooms in this PostgreSQL database (postgres://user:password@host:port/database[?sslmode=disable|prefer|require]) instead of sites.sqlite and yjs.sqlite, shared by every node: with --broker, a site registered or rotated on one node works on all, quotas count every node, and co-editors of one post may use different nodes. Prefer the env or config file for the password. Env: RELAY_DATABASE [default: the data directory's SQLite files]") var database: String?
    @Option(name: .customLong("redis-url"), help: "The same as one --broker (its earlier name). Env: RELAY_REDIS_URL") var redisURL: String?
    @Option(name: .customLong("redis-prefix"), help: "Prefix of relayd's Redis keys and channels (several clusters on one Redis). Env: RELAY_REDIS_PREFIX [default: relay]") var redisPrefix: String?
    @Option(name: .customLong("node-id"), help: "This node's name in the cluster (presence ids, connection counts); unique per node. Env: RELAY_NODE_ID [default: host name and a random suffix]") var nodeID: String?
    @Option(name: .customLong("log-level"), help: "trace|debug|info|notice|warning|error|critical; reloaded on SIGHUP. Env: RELAY_LOG_LEVEL [default: info]") var logLevel: String?
    @Option(name: .customLong("log-format"), help: "text, or json (one object per line). Env: RELAY_LOG_FORMAT [default: text]") var logFormat: String?
    @Option(name: .customLong("log-file"), help: "Append logs to this file (reopened on SIGHUP, for logrotate) instead of standard error. Env: RELAY_LOG_FILE") var logFile: String?

    /// Logging options, read like every other option.
    struct LogOptions {
        var level: Logger.Level = .info
        var format: LogOutput.Format = .text
        var file: String?
    }

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let configPath = config ?? env["RELAY_CONFIG"]
        var (c, log, database) = try makeConfiguration(file: try loadConfigFile(configPath), env: env)
        if let pg = database {
            // A database that cannot be reached stops relayd with its error.
            let yjs = c.yjs
            do {
                let store = try await PostgresPersistence.open(pg, logger: Logger(label: "relayd.postgres"),
                                                               collectGarbage: { !yjs.keepsHistory(storeKey: $0) })
                c.sharedYjsPersistence = store
                // The site registry on the same pool: every node sees a site registered, rotated or removed on any.
                c.sharedSites = try await SiteStore.open(PostgresSiteBackend.open(client: store.client, logger: Logger(label: "relayd.postgres")))
            } catch { throw ValidationError("--database: \(error)") }
        }
        let output: LogOutput
        do { output = try LogOutput(format: log.format, path: log.file, level: log.level) } catch {
            throw ValidationError("\(error)")
        }
        LoggingSystem.bootstrap { output.handler(label: $0) }
        let logger = Logger(label: "relayd")
        let relay = try RelayService(configuration: c, logger: logger)
        if let dev = try await relay.ensureDevSite() {
            printDevSite(dev, configuration: c)
        }
        say("relayd \(RelayVersion.description)")
        say("relayd listening on \(c.tlsCertificatePath == nil ? "http" : "https")://\(c.host):\(c.port) (data: \(c.dataDirectory), sites: \(relay.sites.list().count))")
        say("admin API key: \(c.adminAPIKey == nil ? "in \(c.dataDirectory)/admin.key" : "from configuration")")
        // SIGHUP: reopen the log file, re-read the config file, apply what can change while running.
        let reload = SignalReloadService(logger: logger) {
            do { try output.reopen() } catch { logger.error("SIGHUP: \(error)") }
            do {
                let (new, newLog, _) = try makeConfiguration(file: try loadConfigFile(configPath), env: env)
                output.level = newLog.level
                relay.reload(new)
            } catch {
                logger.error("SIGHUP: configuration not reloaded, the running one is kept: \(error)")
            }
        }
        // The broker's pub/sub connection runs first and stops last (graceful shutdown goes backwards).
        let brokerHealth = c.engine.broker.health()
        if brokerHealth.kind == "redis" {
            say("relayd node \(c.engine.nodeID) on redis \(brokerHealth.endpoints.map(\.name).joined(separator: ", "))")
        }
        let services: [any Service] = [BrokerService(broker: c.engine.broker)]
        let group = ServiceGroup(configuration: .init(services: services + (try relay.makeServices()) + [reload],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do { try await group.run() } catch {
            await relay.close()
            throw error
        }
        await relay.close()
    }

    /// The configuration from flags, then environment, then config file, then defaults.
    /// A value that does not parse is an error naming where it came from. `--database` is
    /// parsed here and connected by `run`, once (a SIGHUP re-read leaves the database as it is).
    func makeConfiguration(file: [String: String], env: [String: String]) throws -> (ServerConfiguration, LogOptions, PostgresClient.Configuration?) {
        var known: Set<String> = ["config"]
        func pick<T>(_ flag: T?, _ name: String, _ parse: (String) -> T?) throws -> T? {
            known.insert(name)
            if let flag { return flag }
            let envName = "RELAY_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
            if let v = env[envName] {
                guard let parsed = parse(v) else { throw ValidationError("\(envName)=\(v) is not a valid value for --\(name)") }
                return parsed
            }
            if let v = file[name] {
                guard let parsed = parse(v) else { throw ValidationError("config file: \"\(name)\": \(v) is not a valid value") }
                return parsed
            }
            return nil
        }
        var c = ServerConfiguration()
        c.host = try pick(host, "host", { $0 }) ?? c.host
        c.port = try pick(port, "port", { Int($0) }) ?? c.port
        c.dataDirectory = try pick(dataDir, "data-dir", { $0 }) ?? c.dataDirectory
        c.adminAPIKey = try pick(adminKey, "admin-key", { $0 })
        c.tlsCertificatePath = try pick(tlsCert, "tls-cert", { $0 })
        c.tlsKeyPath = try pick(tlsKey, "tls-key", { $0 })
        c.createDevSite = try pick(devSite, "dev-site", { Bool($0) }) ?? c.createDevSite
        c.maxFrameBytes = try pick(maxFrameBytes, "max-frame-bytes", { Int($0) }) ?? c.maxFrameBytes
        c.maxHeaderBytes = try pick(maxHeaderBytes, "max-header-bytes", { Int($0) }) ?? c.maxHeaderBytes
        c.handshakeTimeout = try pick(handshakeTimeout, "handshake-timeout", { Double($0) }) ?? c.handshakeTimeout
        c.httpIdleTimeout = try pick(httpIdleTimeout, "http-idle-timeout", { Double($0) }) ?? c.httpIdleTimeout
        c.closeHandshakeTimeout = try pick(closeTimeout, "close-timeout", { Double($0) }) ?? c.closeHandshakeTimeout
        c.maxPublishBodyBytes = try pick(maxPublishBodyBytes, "max-publish-body-bytes", { Int($0) }) ?? c.maxPublishBodyBytes
        c.maxBatchSize = try pick(maxBatch, "max-batch", { Int($0) }) ?? c.maxBatchSize
        c.maxConnections = try pick(maxConnections, "max-connections", { Int($0) }) ?? c.maxConnections
        c.maxConnectionsPerIP = try pick(maxConnectionsPerIP, "max-connections-per-ip", { Int($0) }) ?? c.maxConnectionsPerIP
        c.engine.outbox.maxBytes = try pick(outboxBytes, "outbox-bytes", { Int($0) }) ?? c.engine.outbox.maxBytes
        c.engine.outbox.maxFrames = try pick(outboxFrames, "outbox-frames", { Int($0) }) ?? c.engine.outbox.maxFrames
        c.pingInterval = try pick(pingInterval, "ping-interval", { Double($0) }) ?? c.pingInterval
        c.idleTimeout = try pick(idleTimeout, "idle-timeout", { Double($0) }) ?? c.idleTimeout
        c.sseHeartbeatInterval = try pick(sseHeartbeat, "sse-heartbeat", { Double($0) }) ?? c.sseHeartbeatInterval
        c.tokenLeeway = try pick(tokenLeeway, "token-leeway", { Int64($0) }) ?? c.tokenLeeway
        c.signatureWindow = try pick(signatureWindow, "signature-window", { Int64($0) }) ?? c.signatureWindow
        c.rotationGraceSeconds = try pick(rotationGrace, "rotation-grace", { Int64($0) }) ?? c.rotationGraceSeconds
        c.corsAllowOrigin = try pick(corsOrigin, "cors-origin", { $0 }) ?? c.corsAllowOrigin
        if let list = try pick(trustedProxy, "trusted-proxy", { $0 }) {
            do { c.trustedProxies = try TrustedProxies(parsing: list) } catch {
                throw ValidationError("--trusted-proxy: \(error)")
            }
        }
        // --broker (repeatable), else RELAY_BROKER / config "broker" (a list), else --redis-url (its earlier name).
        var brokerURLs = brokers
        if brokerURLs.isEmpty, let list = try pick(nil as String?, "broker", { $0 }) {
            brokerURLs = list.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        } else {
            known.insert("broker")
        }
        if let url = try pick(redisURL, "redis-url", { $0 }) {
            guard brokerURLs.isEmpty else { throw ValidationError("--redis-url is the earlier name of --broker: give one or the other") }
            brokerURLs = [url]
        }
        if !brokerURLs.isEmpty {
            var options = RedisBroker.Options()
            options.prefix = try pick(redisPrefix, "redis-prefix", { $0.isEmpty ? nil : $0 }) ?? options.prefix
            var shards: [RedisBroker] = []
            for url in brokerURLs {
                let redis: RedisConfiguration
                do { redis = try RedisConfiguration(url: url) } catch {
                    throw ValidationError("--broker: \(error)")
                }
                shards.append(RedisBroker(redis, options: options, logger: Logger(label: "relayd.redis")))
            }
            if shards.count == 1 {
                c.engine.broker = shards[0]
            } else {
                do { c.engine.broker = try ShardedRedisBroker(shards) } catch { throw ValidationError("--broker: \(error)") }
            }
            c.engine.nodeID = try pick(nodeID, "node-id", { $0.isEmpty ? nil : $0 })
                ?? "\(ProcessInfo.processInfo.hostName)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        } else {
            _ = try pick(redisPrefix, "redis-prefix", { $0 })
            if let id = try pick(nodeID, "node-id", { $0 }) { c.engine.nodeID = id }
        }
        if let n = try pick(historySize, "history-size", { Int($0) }) { c.engine.history.defaultPolicy.maxPublications = n }
        if let t = try pick(historyTTL, "history-ttl", { Double($0) }) { c.engine.history.defaultPolicy.maxAge = t }
        c.defaultSiteLimits.maxConnections = try pick(siteMaxConnections, "site-max-connections", { Int($0) }) ?? c.defaultSiteLimits.maxConnections
        c.defaultSiteLimits.maxMessageBytes = try pick(siteMaxMessageBytes, "site-max-message-bytes", { Int($0) }) ?? c.defaultSiteLimits.maxMessageBytes
        c.defaultSiteLimits.clientPublishRate.perSecond = try pick(siteClientPublishRate, "site-client-publish-rate", { Double($0) }) ?? c.defaultSiteLimits.clientPublishRate.perSecond
        c.defaultSiteLimits.clientPublishRate.burst = try pick(siteClientPublishBurst, "site-client-publish-burst", { Double($0) }) ?? c.defaultSiteLimits.clientPublishRate.burst
        c.clientPublishMaxWait = try pick(clientPublishMaxWait, "client-publish-max-wait", { Double($0) }) ?? c.clientPublishMaxWait
        if let q = try pick(siteMonthlyQuota, "site-monthly-quota", { Int($0) }) { c.defaultSiteLimits.monthlyMessageQuota = q > 0 ? q : nil }

        if let p = try pick(yjsPersistence, "yjs-persistence", { $0 }) {
            guard p == "sqlite" || p == "memory" else { throw ValidationError("--yjs-persistence must be sqlite or memory") }
            c.yjs.persistent = p == "sqlite"
        }
        c.yjs.maxUpdateBytes = try pick(yjsMaxUpdateBytes, "yjs-max-update-bytes", { Int($0) }) ?? c.yjs.maxUpdateBytes
        c.yjs.maxDocumentBytes = try pick(yjsMaxDocumentBytes, "yjs-max-document-bytes", { Int($0) }) ?? c.yjs.maxDocumentBytes
        c.yjs.maxConnectionsPerRoom = try pick(yjsMaxConnectionsPerRoom, "yjs-max-connections-per-room", { Int($0) }) ?? c.yjs.maxConnectionsPerRoom
        c.yjs.maxCollaboratorsPerRoom = try pick(yjsMaxCollaboratorsPerRoom, "yjs-max-collaborators-per-room", { Int($0) }) ?? c.yjs.maxCollaboratorsPerRoom
        c.yjs.maxAwarenessStateBytes = try pick(yjsMaxAwarenessBytes, "yjs-max-awareness-bytes", { Int($0) }) ?? c.yjs.maxAwarenessStateBytes
        c.yjs.maxAwarenessClientsPerConnection = try pick(yjsMaxAwarenessClients, "yjs-max-awareness-clients", { Int($0) }) ?? c.yjs.maxAwarenessClientsPerConnection
        c.yjs.maxWriteQueueBytes = try pick(yjsWriteQueueBytes, "yjs-write-queue-bytes", { Int($0) }) ?? c.yjs.maxWriteQueueBytes
        c.yjs.maxInFlightPerConnection = try pick(yjsMaxInFlight, "yjs-max-in-flight", { Int($0) }) ?? c.yjs.maxInFlightPerConnection
        c.yjs.e2eCompactAfterEntries = try pick(yjsE2ECompactEntries, "yjs-e2e-compact-entries", { Int($0) }) ?? c.yjs.e2eCompactAfterEntries
        c.yjs.e2eCompactAfterBytes = try pick(yjsE2ECompactBytes, "yjs-e2e-compact-bytes", { Int($0) }) ?? c.yjs.e2eCompactAfterBytes
        guard c.yjs.e2eCompactAfterEntries > 0, c.yjs.e2eCompactAfterBytes > 0 else {
            throw ValidationError("--yjs-e2e-compact-entries and --yjs-e2e-compact-bytes must be positive")
        }
        guard c.yjs.maxWriteQueueBytes > 0, c.yjs.maxInFlightPerConnection > 0 else {
            throw ValidationError("--yjs-write-queue-bytes and --yjs-max-in-flight must be positive")
        }
        if let k = try pick(yjsKeepHistory, "yjs-keep-history", { $0 }) {
            c.yjs.keepHistoryRooms = k.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        guard c.yjs.maxAwarenessStateBytes > 0, c.yjs.maxAwarenessClientsPerConnection > 0 else {
            throw ValidationError("--yjs-max-awareness-bytes and --yjs-max-awareness-clients must be positive")
        }
        var log = LogOptions()
        log.level = try pick(logLevel.flatMap { Logger.Level(rawValue: $0) }, "log-level", { Logger.Level(rawValue: $0) }) ?? .info
        if let l = logLevel, Logger.Level(rawValue: l) == nil { throw ValidationError("--log-level \(l): expected trace, debug, info, notice, warning, error or critical") }
        log.format = try pick(logFormat.flatMap { LogOutput.Format(rawValue: $0) }, "log-format", { LogOutput.Format(rawValue: $0) }) ?? .text
        if let f = logFormat, LogOutput.Format(rawValue: f) == nil { throw ValidationError("--log-format \(f): expected text or json") }
        log.file = try pick(logFile, "log-file", { $0 })
        var pg: PostgresClient.Configuration?
        if let url = try pick(database, "database", { $0 }) {
            do { pg = try PostgresClient.Configuration.fromURL(url) } catch { throw ValidationError("--database: \(error)") }
        }
        // A misspelt key would otherwise be ignored without a word ("//" keys are comments).
        if let unknown = file.keys.sorted().first(where: { !known.contains($0) && !$0.hasPrefix("//") }) {
            throw ValidationError("config file: unknown option \"\(unknown)\" (keys are relayd's long option names, see relayd --help)")
        }
        return (c, log, pg)
    }

    func loadConfigFile(_ path: String?) throws -> [String: String] {
        guard let path else { return [:] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read config file \(path)")
        }
        guard let members = (try? JSONParser.parse(Array(data)))?.objectValue else {
            throw ValidationError("config file \(path) is not a JSON object (keys are the long option names, e.g. {\"port\": 8080})")
        }
        var out: [String: String] = [:]
        for (key, value) in members {
            switch value {
            case .string(let s): out[key] = s
            case .number(let n): out[key] = n
            case .bool(let b): out[key] = b ? "true" : "false"
            case .array(let items) where items.allSatisfy({ $0.stringValue != nil }):
                out[key] = items.compactMap(\.stringValue).joined(separator: ",")  // e.g. "trusted-proxy": ["127.0.0.1", "::1"]
            default: throw ValidationError("config file \(path): \"\(key)\" must be a string, number or boolean")
            }
        }
        return out
    }

    func printDevSite(_ site: SiteRecord, configuration c: ServerConfiguration) {
        let secret = site.publishSecrets.first?.secret ?? ""
        let base = "http://\(c.host):\(c.port)"
        say("""
            ┌ dev site created (first start) ─────────────────────────────
            │ site_key:       \(site.siteKey)
            │ site_id:        \(site.siteID)
            │ publish_secret: \(secret)
            │ jwt_secret:     \(site.jwtSecret ?? "")
            │ WordPress:      define('WPSignal\\BASE_URL', '\(base)');  (plus WPSIGNAL_SITE_KEY / _SITE_SECRET / _JWT_SECRET)
            │ Try it:
            │   relayctl subscribe --url \(base) --site-key \(site.siteKey) --jwt-secret \(site.jwtSecret ?? "") events &
            │   relayctl publish --url \(base) --site-key \(site.siteKey) --secret \(secret) events hello '{"n":1}'
            └──────────────────────────────────────────────────────────────
            """)
    }
}

/// Unbuffered stdout, so credentials and status lines appear at once even when piped.
func say(_ s: String) {
    FileHandle.standardOutput.write(Data((s + "\n").utf8))
}

/// Runs `onReload` for every SIGHUP until shutdown.
struct SignalReloadService: Service {
    let logger: Logger
    let onReload: @Sendable () -> Void

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                logger.notice("SIGHUP: reopening logs and reloading the configuration")
                onReload()
            }
        }
    }
}

