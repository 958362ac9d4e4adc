import Foundation
import Logging
import NIOCore
import PostgresNIO
import RelayCore
import RelayCrypto
import RelayJSON
import RelaySites

/// The site registry in PostgreSQL, shared by every relayd node of a cluster (issue 14, item 4):
/// a site registered, rotated, limited or removed through any node's admin API (or
/// `relayctl site --database`) is stored once and every node's cache follows.
///
/// Tables (created if missing):
///
/// | table | columns | holds |
/// |---|---|---|
/// | `relay_sites` | `site_key` text key, `site_url`, `site_name`, `jwt_secret`, `ed25519_public_key` bytea, `limits` (JSON), `archived`, `created_at_ms`, `publish_secrets` (JSON `[{"kid","secret","valid_until_ms"}]`) | one row per site |
/// | `relay_site_usage` | `site_id`, `month` (`year*12 + month-1`), `count` | messages charged per site and UTC month, every node's |
///
/// Every change is one transaction that reads the row `FOR UPDATE`, writes it and sends
/// `NOTIFY relay_sites, '<site key>'`; PostgreSQL delivers the notification at commit, and only
/// then. Each node listens on `relay_sites` (`watch`) and re-reads the site it names; when it
/// (re)starts listening it re-reads every site, since changes may have been missed meanwhile.
/// Usage is added (`count = count + n`), never overwritten, so nodes' counts sum.
public final class PostgresSiteBackend: SiteBackend, @unchecked Sendable {
    public let client: PostgresClient
    private let logger: Logger
    private let timeout: Duration
    /// The pool's task when this backend opened its own pool (`relayctl`), else nil.
    private let runner: Task<Void, Never>?

    /// The notification channel.
    public static let channel = "relay_sites"

    public var kind: String { "postgres" }
    public var isShared: Bool { true }

    /// Uses a pool that is already running (relayd shares the Yjs store's), creating the tables if missing.
    public static func open(client: PostgresClient, logger: Logger = Logger(label: "relay.sites.postgres"),
                            timeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(15)) async throws -> PostgresSiteBackend {
        let b = PostgresSiteBackend(client: client, logger: logger, timeout: timeout, runner: nil)
        try await b.prepare(deadline: connectTimeout)
        return b
    }

    /// Opens a pool of its own (closed by `close()`).
    public static func open(_ configuration: PostgresClient.Configuration, logger: Logger = Logger(label: "relay.sites.postgres"),
                            timeout: Duration = .seconds(30)) async throws -> PostgresSiteBackend {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let runner = Task.detached { await client.run() }
        let b = PostgresSiteBackend(client: client, logger: logger, timeout: timeout, runner: runner)
        do { try await b.prepare(deadline: configuration.options.connectTimeout + .seconds(5)) } catch {
            b.close()
            throw error
        }
        return b
    }

    private init(client: PostgresClient, logger: Logger, timeout: Duration, runner: Task<Void, Never>?) {
        self.client = client
        self.logger = logger
        self.timeout = timeout
        self.runner = runner
    }

    /// Stops the pool if this backend opened it.
    public func close() { runner?.cancel() }

    deinit { runner?.cancel() }

    private func prepare(deadline: Duration) async throws {
        let client = self.client, logger = self.logger
        do {
            try await PostgresPersistence.within(deadline, "no connection to the database") {
                try await client.withTransaction(logger: logger) { conn in
                    // Nodes starting together would race on CREATE TABLE IF NOT EXISTS (it is not atomic in PostgreSQL).
                    try await conn.query("SELECT pg_advisory_xact_lock(\(Self.schemaLock))", logger: logger)
                    try await conn.query("""
                        CREATE TABLE IF NOT EXISTS relay_sites (
                            site_key TEXT PRIMARY KEY, site_url TEXT, site_name TEXT, jwt_secret TEXT, ed25519_public_key BYTEA,
                            limits TEXT NOT NULL, archived BOOLEAN NOT NULL DEFAULT FALSE, created_at_ms BIGINT NOT NULL,
                            publish_secrets TEXT NOT NULL)
                        """, logger: logger)
                    try await conn.query("""
                        CREATE TABLE IF NOT EXISTS relay_site_usage (
                            site_id TEXT NOT NULL, month INTEGER NOT NULL, count BIGINT NOT NULL, PRIMARY KEY (site_id, month))
                        """, logger: logger)
                }
            }
        } catch {
            throw PostgresStoreError("cannot prepare the site tables: \(error)")
        }
    }

    /// The advisory lock key relayd's schema changes take (any fixed number; "rely" in ASCII).
    static let schemaLock: Int64 = 0x72656c79

    private func run<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresClient, Logger) async throws -> T) async throws -> T {
        let client = self.client, logger = self.logger
        return try await PostgresPersistence.within(timeout, "PostgreSQL did not answer within \(timeout) (\(what))") {
            do { return try await body(client, logger) } catch let e as PostgresTransactionError {
                // A registry answer (not found, duplicate key) from inside a transaction, as itself.
                if let answer = e.closureError as? SiteStoreError { throw answer }
                throw e
            }
        }
    }

    private static let columns = "site_key, site_url, site_name, jwt_secret, ed25519_public_key, limits, archived, created_at_ms, publish_secrets"

    private static func records(_ rows: PostgresRowSequence) async throws -> [SiteRecord] {
        var out: [SiteRecord] = []
        for try await (key, url, name, jwt, pk, limits, archived, created, secrets) in rows.decode(
            (String, String?, String?, String?, ByteBuffer?, String, Bool, Int64, String).self) {
            out.append(SiteRecord(siteKey: key, siteURL: url, siteName: name, publishSecrets: decodeSecrets(secrets), jwtSecret: jwt,
                                  ed25519PublicKey: pk.map { Array($0.readableBytesView) }, limits: LimitsCodec.decode(limits),
                                  archived: archived, createdAtMs: created))
        }
        return out
    }

    static func encodeSecrets(_ secrets: [PublishSecret]) -> String {
        String(decoding: JSONValue.array(secrets.map { s in
            var m: [(String, JSONValue)] = [("kid", .string(s.keyID)), ("secret", .string(s.secret))]
            if let until = s.validUntilMs { m.append(("valid_until_ms", .int(until))) }
            return .object(m)
        }).serialized(), as: UTF8.self)
    }

    static func decodeSecrets(_ text: String) -> [PublishSecret] {
        guard let items = (try? JSONParser.parse(text))?.arrayValue else { return [] }
        return items.compactMap { v in
            guard let kid = v["kid"]?.stringValue, let secret = v["secret"]?.stringValue else { return nil }
            return PublishSecret(keyID: kid, secret: secret, validUntilMs: v["valid_until_ms"]?.int64Value)
        }
    }

    public func loadAll() async throws -> [SiteRecord] {
        try await run("load the sites") { client, logger in
            try await Self.records(client.query("SELECT \(unescaped: Self.columns) FROM relay_sites ORDER BY created_at_ms, site_key", logger: logger))
        }
    }

    public func load(siteKey: String) async throws -> SiteRecord? {
        try await run("load a site") { client, logger in
            try await Self.records(client.query("SELECT \(unescaped: Self.columns) FROM relay_sites WHERE site_key = \(siteKey)", logger: logger)).first
        }
    }

    /// Replaces the stored fields of an existing site (its row is locked by the caller's transaction).
    private static func write(_ r: SiteRecord, on conn: PostgresConnection, logger: Logger) async throws {
        let pk = r.ed25519PublicKey.map { ByteBuffer(bytes: $0) }
        try await conn.query("""
            UPDATE relay_sites SET site_url = \(r.siteURL), site_name = \(r.siteName), jwt_secret = \(r.jwtSecret),
                ed25519_public_key = \(pk), limits = \(LimitsCodec.encode(r.limits)), archived = \(r.archived),
                publish_secrets = \(encodeSecrets(r.publishSecrets))
            WHERE site_key = \(r.siteKey)
            """, logger: logger)
        try await notify(r.siteKey, on: conn, logger: logger)
    }

    private static func notify(_ siteKey: String, on conn: PostgresConnection, logger: Logger) async throws {
        try await conn.query("SELECT pg_notify(\(channel), \(siteKey))", logger: logger)
    }

    public func insert(_ record: SiteRecord) async throws {
        try await run("add a site") { client, logger in
            try await client.withTransaction(logger: logger) { conn in
                // ON CONFLICT DO NOTHING: of two nodes adding one key at once, exactly one inserts.
                let r = record, pk = r.ed25519PublicKey.map { ByteBuffer(bytes: $0) }
                var inserted = false
                for try await _ in try await conn.query("""
                    INSERT INTO relay_sites (\(unescaped: Self.columns))
                    VALUES (\(r.siteKey), \(r.siteURL), \(r.siteName), \(r.jwtSecret), \(pk), \(LimitsCodec.encode(r.limits)), \(r.archived),
                            \(r.createdAtMs), \(Self.encodeSecrets(r.publishSecrets)))
                    ON CONFLICT (site_key) DO NOTHING RETURNING 1
                    """, logger: logger).decode(Int32.self) { inserted = true }
                guard inserted else { throw SiteStoreError.duplicateKey }
                try await Self.notify(r.siteKey, on: conn, logger: logger)
            }
        }
    }

    public func update(siteKey: String, _ change: @escaping @Sendable (inout SiteRecord) throws -> Void) async throws -> SiteRecord {
        try await run("change a site") { client, logger in
            try await client.withTransaction(logger: logger) { conn in
                guard var r = try await Self.records(conn.query(
                    "SELECT \(unescaped: Self.columns) FROM relay_sites WHERE site_key = \(siteKey) FOR UPDATE", logger: logger)).first
                else { throw SiteStoreError.notFound }
                try change(&r)
                try await Self.write(r, on: conn, logger: logger)
                return r
            }
        }
    }

    public func delete(siteKey: String) async throws {
        try await run("remove a site") { client, logger in
            try await client.withTransaction(logger: logger) { conn in
                var deleted = false
                for try await _ in try await conn.query("DELETE FROM relay_sites WHERE site_key = \(siteKey) RETURNING 1",
                                                        logger: logger).decode(Int32.self) { deleted = true }
                guard deleted else { throw SiteStoreError.notFound }
                try await Self.notify(siteKey, on: conn, logger: logger)
            }
        }
    }

    public func addUsage(month: Int, _ counts: [String: Int]) async throws -> [String: Int] {
        guard !counts.isEmpty else { return [:] }
        let ids = Array(counts.keys), adds = ids.map { Int64(counts[$0]!) }, m = Int32(month)
        return try await run("store usage") { client, logger in
            var totals: [String: Int] = [:]
            // One statement for every site: the added counts, and the totals every node made.
            for try await (id, count) in try await client.query("""
                INSERT INTO relay_site_usage (site_id, month, count)
                SELECT id, \(m), n FROM unnest(\(ids)::text[], \(adds)::bigint[]) AS t(id, n)
                ON CONFLICT (site_id, month) DO UPDATE SET count = relay_site_usage.count + EXCLUDED.count
                RETURNING site_id, count
                """, logger: logger).decode((String, Int64).self) {
                totals[id] = Int(count)
            }
            return totals
        }
    }

    public func usage(month: Int) async throws -> [String: Int] {
        let m = Int32(month)
        return try await run("load usage") { client, logger in
            var out: [String: Int] = [:]
            for try await (id, count) in try await client.query(
                "SELECT site_id, count FROM relay_site_usage WHERE month = \(m)", logger: logger).decode((String, Int64).self) {
                out[id] = Int(count)
            }
            return out
        }
    }

    /// Listens on `relay_sites` until cancelled; on every (re)start, first asks for a full re-read.
    /// A lost connection is retried after 1 s, then up to every 10 s.
    public func watch(_ changed: @escaping @Sendable (String?) async -> Void) async throws {
        var backoff: Duration = .seconds(1)
        while !Task.isCancelled {
            do {
                try await client.withConnection { conn in
                    try await conn.listen(on: Self.channel) { notifications in
                        backoff = .seconds(1)
                        await changed(nil)
                        for try await n in notifications { await changed(n.payload) }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("site registry: lost the PostgreSQL change feed, retrying in \(backoff): \(error)")
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(10))
        }
    }
}
