import Foundation
import GRDB
import RelayCore
import RelayCrypto

/// Where the site registry is kept: `SQLiteSiteBackend` (the data directory's `sites.sqlite`, one
/// node) or a database every node shares (`PostgresSiteBackend` in RelayPostgres, `--database`).
///
/// Every call is `async` and does its I/O off the caller's thread. Changes are read-modify-write
/// in one transaction (`update`), so two nodes changing one site at once (a rotation on one, new
/// limits on another) both take effect.
public protocol SiteBackend: Sendable {
    /// A short name for logs and `/readyz` (`sqlite`, `postgres`).
    var kind: String { get }
    /// Whether other processes (other relayd nodes) write this registry too.
    var isShared: Bool { get }
    /// Every site, oldest first.
    func loadAll() async throws -> [SiteRecord]
    /// One site, or nil.
    func load(siteKey: String) async throws -> SiteRecord?
    /// Stores a new site; `SiteStoreError.duplicateKey` if the key exists.
    func insert(_ record: SiteRecord) async throws
    /// Reads the site, applies `change` and stores the result, in one transaction.
    /// `SiteStoreError.notFound` when the site does not exist.
    func update(siteKey: String, _ change: @escaping @Sendable (inout SiteRecord) throws -> Void) async throws -> SiteRecord
    /// Deletes a site and its secrets; `SiteStoreError.notFound` when it does not exist.
    func delete(siteKey: String) async throws
    /// Adds message counts to the stored counts of `month` (`UTCMonth.index`) and returns the
    /// stored totals of those sites (every node's counts, with a shared backend).
    func addUsage(month: Int, _ counts: [String: Int]) async throws -> [String: Int]
    /// Stored message counts of `month`, by site id.
    func usage(month: Int) async throws -> [String: Int]
    /// With a shared backend: runs until cancelled, calling `changed` with a site key whenever
    /// another process changed that site, and with nil when every site must be re-read (at start
    /// and after the connection was lost, when changes may have been missed). A local backend
    /// returns at once.
    func watch(_ changed: @escaping @Sendable (String?) async -> Void) async throws
}

extension SiteBackend {
    public var isShared: Bool { false }
    public func watch(_ changed: @escaping @Sendable (String?) async -> Void) async throws {}
}

/// The site registry of one node: `sites.sqlite` in the data directory (GRDB), or memory.
public struct SQLiteSiteBackend: SiteBackend {
    let db: DatabaseQueue

    public var kind: String { "sqlite" }

    /// Opens (creating and migrating if needed) `sites.sqlite` in `directory`, or an in-memory database when nil.
    public init(directory: String?) throws {
        if let directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var config = Configuration()
            config.busyMode = .timeout(10)  // relayctl may write the registry while relayd reads it
            // synchronous = FULL: a registered site or a rotated secret the admin API acknowledged is
            // on disk (in WAL mode NORMAL does not sync at commit; said explicitly, not left to the
            // build's default, as GRDB's DatabasePool silently lowered it for yjs.sqlite).
            config.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            db = try DatabaseQueue(path: directory + "/sites.sqlite", configuration: config)
        } else {
            db = try DatabaseQueue()
        }
        try Self.migrator.migrate(db)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE site (
                    site_key TEXT PRIMARY KEY NOT NULL,
                    site_url TEXT, site_name TEXT,
                    jwt_secret TEXT, ed25519_public_key BLOB,
                    limits TEXT NOT NULL,
                    archived INTEGER NOT NULL DEFAULT 0,
                    created_at_ms INTEGER NOT NULL
                );
                CREATE TABLE publish_secret (
                    site_key TEXT NOT NULL REFERENCES site(site_key) ON DELETE CASCADE,
                    key_id TEXT NOT NULL, secret TEXT NOT NULL, valid_until_ms INTEGER,
                    PRIMARY KEY (site_key, key_id)
                );
                CREATE TABLE usage (
                    site_id TEXT NOT NULL, month INTEGER NOT NULL, count INTEGER NOT NULL,
                    PRIMARY KEY (site_id, month)
                );
                """)
        }
        // 0.9 raised two defaults (issue 20): payloads to 2 MiB, so the wordsocket provider's
        // largest publish (a 1-byte tag + 1 MiB) fits, and the client publish rate to 50/s,
        // burst 200 (co-editing sends two frames per keystroke). Sites that still have the
        // old defaults get the new ones; limits an operator chose are kept.
        migrator.registerMigration("v2-defaults-0.9") { db in
            for row in try Row.fetchAll(db, sql: "SELECT site_key, limits FROM site") {
                let key: String = row["site_key"], text: String = row["limits"]
                var l = LimitsCodec.decode(text)
                var changed = false
                if l.maxMessageBytes == 1 << 20 { l.maxMessageBytes = SiteLimits().maxMessageBytes; changed = true }
                if l.clientPublishRate == RateLimit(perSecond: 10, burst: 20) { l.clientPublishRate = SiteLimits().clientPublishRate; changed = true }
                if changed {
                    try db.execute(sql: "UPDATE site SET limits = ? WHERE site_key = ?", arguments: [LimitsCodec.encode(l), key])
                }
            }
        }
        return migrator
    }

    /// Every site, synchronously (opening a store at start).
    public func loadAllNow() throws -> [SiteRecord] { try db.read { try Self.records($0, key: nil) } }

    /// Stored usage of `month`, synchronously.
    public func usageNow(month: Int) throws -> [String: Int] { try db.read { try Self.usage($0, month: month) } }

    public func loadAll() async throws -> [SiteRecord] { try await db.read { try Self.records($0, key: nil) } }

    public func load(siteKey: String) async throws -> SiteRecord? {
        try await db.read { try Self.records($0, key: siteKey).first }
    }

    public func insert(_ record: SiteRecord) async throws {
        try await db.write { db in
            if try Self.records(db, key: record.siteKey).first != nil { throw SiteStoreError.duplicateKey }
            try Self.write(record, in: db)
        }
    }

    public func update(siteKey: String, _ change: @escaping @Sendable (inout SiteRecord) throws -> Void) async throws -> SiteRecord {
        try await db.write { db in
            guard var r = try Self.records(db, key: siteKey).first else { throw SiteStoreError.notFound }
            try change(&r)
            try Self.write(r, in: db)
            return r
        }
    }

    public func delete(siteKey: String) async throws {
        try await db.write { db in
            try db.execute(sql: "DELETE FROM publish_secret WHERE site_key = ?", arguments: [siteKey])
            try db.execute(sql: "DELETE FROM site WHERE site_key = ?", arguments: [siteKey])
            if db.changesCount == 0 { throw SiteStoreError.notFound }
        }
    }

    public func addUsage(month: Int, _ counts: [String: Int]) async throws -> [String: Int] {
        try await db.write { db in
            var totals: [String: Int] = [:]
            for (siteID, count) in counts {
                try db.execute(sql: """
                    INSERT INTO usage (site_id, month, count) VALUES (?, ?, ?)
                    ON CONFLICT(site_id, month) DO UPDATE SET count = count + excluded.count
                    """, arguments: [siteID, month, count])
                totals[siteID] = try Int.fetchOne(db, sql: "SELECT count FROM usage WHERE site_id = ? AND month = ?",
                                                  arguments: [siteID, month]) ?? count
            }
            return totals
        }
    }

    public func usage(month: Int) async throws -> [String: Int] { try await db.read { try Self.usage($0, month: month) } }

    static func usage(_ db: Database, month: Int) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT site_id, count FROM usage WHERE month = ?", arguments: [month]) {
            out[row["site_id"]] = row["count"]
        }
        return out
    }

    static func records(_ db: Database, key: String?) throws -> [SiteRecord] {
        let secretRows = key == nil
            ? try Row.fetchAll(db, sql: "SELECT site_key, key_id, secret, valid_until_ms FROM publish_secret ORDER BY rowid")
            : try Row.fetchAll(db, sql: "SELECT site_key, key_id, secret, valid_until_ms FROM publish_secret WHERE site_key = ? ORDER BY rowid",
                               arguments: [key])
        var secrets: [String: [PublishSecret]] = [:]
        for r in secretRows {
            secrets[r["site_key"], default: []].append(PublishSecret(keyID: r["key_id"], secret: r["secret"], validUntilMs: r["valid_until_ms"]))
        }
        let rows = key == nil
            ? try Row.fetchAll(db, sql: "SELECT * FROM site ORDER BY created_at_ms")
            : try Row.fetchAll(db, sql: "SELECT * FROM site WHERE site_key = ?", arguments: [key])
        return rows.map { r in
            let key: String = r["site_key"]
            let blob: Data? = r["ed25519_public_key"]
            return SiteRecord(siteKey: key, siteURL: r["site_url"], siteName: r["site_name"], publishSecrets: secrets[key] ?? [],
                              jwtSecret: r["jwt_secret"], ed25519PublicKey: blob.map { Array($0) },
                              limits: LimitsCodec.decode(r["limits"]), archived: r["archived"], createdAtMs: r["created_at_ms"])
        }
    }

    static func write(_ record: SiteRecord, in db: Database) throws {
        try db.execute(sql: """
            INSERT INTO site (site_key, site_url, site_name, jwt_secret, ed25519_public_key, limits, archived, created_at_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(site_key) DO UPDATE SET site_url = excluded.site_url, site_name = excluded.site_name,
                jwt_secret = excluded.jwt_secret, ed25519_public_key = excluded.ed25519_public_key,
                limits = excluded.limits, archived = excluded.archived
            """, arguments: [record.siteKey, record.siteURL, record.siteName, record.jwtSecret,
                             record.ed25519PublicKey.map { Data($0) }, LimitsCodec.encode(record.limits),
                             record.archived, record.createdAtMs])
        try db.execute(sql: "DELETE FROM publish_secret WHERE site_key = ?", arguments: [record.siteKey])
        for s in record.publishSecrets {
            try db.execute(sql: "INSERT INTO publish_secret (site_key, key_id, secret, valid_until_ms) VALUES (?, ?, ?, ?)",
                           arguments: [record.siteKey, s.keyID, s.secret, s.validUntilMs])
        }
    }
}
