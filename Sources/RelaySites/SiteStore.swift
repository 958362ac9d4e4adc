import RelayJSON
import Foundation
import GRDB
import RelayCore
import RelayCrypto
import Synchronization

/// Everything the relay keeps about one site.
public struct SiteRecord: Sendable, Equatable {
    public var siteKey: String
    public var siteURL: String?
    public var siteName: String?
    public var publishSecrets: [PublishSecret]
    public var jwtSecret: String?
    public var ed25519PublicKey: [UInt8]?
    public var limits: SiteLimits
    /// Archived sites refuse connects (4003) and publishes, and keep their key for re-registration.
    public var archived: Bool
    public var createdAtMs: Int64

    public init(siteKey: String, siteURL: String? = nil, siteName: String? = nil, publishSecrets: [PublishSecret],
                jwtSecret: String?, ed25519PublicKey: [UInt8]? = nil, limits: SiteLimits = SiteLimits(),
                archived: Bool = false, createdAtMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        self.siteKey = siteKey
        self.siteURL = siteURL
        self.siteName = siteName
        self.publishSecrets = publishSecrets
        self.jwtSecret = jwtSecret
        self.ed25519PublicKey = ed25519PublicKey
        self.limits = limits
        self.archived = archived
        self.createdAtMs = createdAtMs
    }

    public var siteID: String { Site.siteID(forKey: siteKey) }

    /// The engine's view of this site.
    public var site: Site {
        Site(siteKey: siteKey,
             publishSecrets: publishSecrets,
             jwtSecret: jwtSecret, ed25519PublicKey: ed25519PublicKey, limits: limits, revoked: archived)
    }

    /// Fresh credentials in the wordsocket formats: 32-hex site key, 64-hex secrets.
    public static func generate(siteURL: String? = nil, siteName: String? = nil, limits: SiteLimits = SiteLimits()) -> SiteRecord {
        SiteRecord(siteKey: Hex.encode(SecureRandom.bytes(count: 16)), siteURL: siteURL, siteName: siteName,
                   publishSecrets: [PublishSecret(keyID: "k1", secret: Hex.encode(SecureRandom.bytes(count: 32)))],
                   jwtSecret: Hex.encode(SecureRandom.bytes(count: 32)), limits: limits)
    }
}

/// Errors from site administration.
public enum SiteStoreError: Error, Equatable, CustomStringConvertible {
    case notFound
    case duplicateKey
    case invalid(String)

    public var description: String {
        switch self {
        case .notFound: return "site not found"
        case .duplicateKey: return "a site with this key exists"
        case .invalid(let m): return m
        }
    }
}

/// The site registry persisted in SQLite (GRDB) in the data directory, with
/// every site cached in memory so the publish and connect paths never touch
/// the database. Monthly message counts live in memory and are written back
/// by `flushUsage()` (called periodically and at shutdown).
public final class SiteStore: SiteRegistry, Sendable {
    private let db: DatabaseQueue
    private let cache: InMemorySiteRegistry
    private let records: Mutex<[String: SiteRecord]>  // by site key

    /// Opens (creating if needed) `sites.sqlite` in `directory`, or an in-memory database when nil.
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
        try migrator.migrate(db)
        let loaded = try db.read { db in try Self.loadAll(db) }
        cache = InMemorySiteRegistry(loaded.map(\.site))
        records = Mutex(Dictionary(uniqueKeysWithValues: loaded.map { ($0.siteKey, $0) }))
        // Restore this month's usage so quotas survive restarts.
        let month = UTCMonth.index(unixSeconds: Date().timeIntervalSince1970)
        let usage = try db.read { db in
            try Row.fetchAll(db, sql: "SELECT site_id, count FROM usage WHERE month = ?", arguments: [month])
        }
        for row in usage {
            let siteID: String = row["site_id"], count: Int = row["count"]
            _ = cache.chargeMessages(siteID: siteID, count: count, now: Date().timeIntervalSince1970)
        }
    }

    private static func loadAll(_ db: Database) throws -> [SiteRecord] {
        let secretRows = try Row.fetchAll(db, sql: "SELECT site_key, key_id, secret, valid_until_ms FROM publish_secret ORDER BY rowid")
        var secrets: [String: [PublishSecret]] = [:]
        for r in secretRows {
            secrets[r["site_key"], default: []].append(PublishSecret(keyID: r["key_id"], secret: r["secret"], validUntilMs: r["valid_until_ms"]))
        }
        return try Row.fetchAll(db, sql: "SELECT * FROM site ORDER BY created_at_ms").map { r in
            let key: String = r["site_key"]
            let blob: Data? = r["ed25519_public_key"]
            return SiteRecord(siteKey: key, siteURL: r["site_url"], siteName: r["site_name"], publishSecrets: secrets[key] ?? [],
                              jwtSecret: r["jwt_secret"], ed25519PublicKey: blob.map { Array($0) },
                              limits: LimitsCodec.decode(r["limits"]), archived: r["archived"], createdAtMs: r["created_at_ms"])
        }
    }

    private func write(_ record: SiteRecord, in db: Database) throws {
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

    /// Stores a site durably, then makes it visible to the engine.
    public func save(_ record: SiteRecord) throws {
        try db.write { db in try write(record, in: db) }
        records.withLock { $0[record.siteKey] = record }
        cache.upsert(record.site)
    }

    /// Replaces a site's limits (new connections and publishes use them at once;
    /// open connections keep the per-connection limits they started with).
    @discardableResult
    public func setLimits(siteKey: String, _ change: (inout SiteLimits) -> Void) throws -> SiteRecord {
        guard var r = record(key: siteKey) else { throw SiteStoreError.notFound }
        change(&r.limits)
        try save(r)
        return r
    }

    /// Adds a new site; fails if the key exists.
    public func add(_ record: SiteRecord) throws {
        if self.record(key: record.siteKey) != nil { throw SiteStoreError.duplicateKey }
        try save(record)
    }

    /// All sites, oldest first.
    public func list() -> [SiteRecord] {
        records.withLock { Array($0.values) }.sorted { $0.createdAtMs < $1.createdAtMs }
    }

    public func record(key: String) -> SiteRecord? { records.withLock { $0[key] } }

    public func record(siteURL: String) -> SiteRecord? {
        records.withLock { $0.values.first { $0.siteURL == siteURL } }
    }

    /// New publish secret (and JWT secret unless `keepJWTSecret`); the previous
    /// publish secrets stay valid for `graceSeconds`.
    @discardableResult
    public func rotate(siteKey: String, graceSeconds: Int64 = 3600, rotateJWTSecret: Bool = false, nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) throws -> SiteRecord {
        guard var r = record(key: siteKey) else { throw SiteStoreError.notFound }
        let deadline = nowMs + graceSeconds * 1000
        r.publishSecrets = r.publishSecrets
            .filter { ($0.validUntilMs ?? .max) > nowMs }
            .map { PublishSecret(keyID: $0.keyID, secret: $0.secret, validUntilMs: min($0.validUntilMs ?? deadline, deadline)) }
        var n = r.publishSecrets.count + 1
        var kid = "k\(n)"
        while r.publishSecrets.contains(where: { $0.keyID == kid }) { n += 1; kid = "k\(n)" }
        r.publishSecrets.append(PublishSecret(keyID: kid, secret: Hex.encode(SecureRandom.bytes(count: 32))))
        if rotateJWTSecret { r.jwtSecret = Hex.encode(SecureRandom.bytes(count: 32)) }
        try save(r)
        return r
    }

    /// Archives a site (contract: unregister archives; re-registering the same URL revives the key with fresh secrets).
    public func archive(siteKey: String) throws {
        guard var r = record(key: siteKey) else { throw SiteStoreError.notFound }
        r.archived = true
        try save(r)
    }

    /// Deletes a site and its secrets.
    public func remove(siteKey: String) throws {
        guard let r = record(key: siteKey) else { throw SiteStoreError.notFound }
        try db.write { db in
            try db.execute(sql: "DELETE FROM publish_secret WHERE site_key = ?", arguments: [siteKey])
            try db.execute(sql: "DELETE FROM site WHERE site_key = ?", arguments: [siteKey])
        }
        records.withLock { $0[siteKey] = nil }
        cache.remove(siteID: r.siteID)
    }

    /// Secrets that currently verify publish signatures, for `PublishVerifier`.
    public func publishSecrets(siteKey: String) -> [RelayCrypto.PublishSecret]? {
        guard let r = record(key: siteKey), !r.archived else { return nil }
        return r.publishSecrets
    }

    /// Writes this month's in-memory message counts to the database.
    public func flushUsage(now: Double = Date().timeIntervalSince1970) throws {
        let month = UTCMonth.index(unixSeconds: now)
        let counts = list().map { ($0.siteID, cache.messagesThisMonth(siteID: $0.siteID, now: now)) }
        try db.write { db in
            for (siteID, count) in counts where count > 0 {
                try db.execute(sql: "INSERT INTO usage (site_id, month, count) VALUES (?, ?, ?) ON CONFLICT(site_id, month) DO UPDATE SET count = excluded.count",
                               arguments: [siteID, month, count])
            }
        }
    }

    // MARK: SiteRegistry

    public func site(id siteID: String) -> Site? { cache.site(id: siteID) }
    public func site(key siteKey: String) -> Site? { cache.site(key: siteKey) }
    public func chargeMessages(siteID: String, count: Int, now: Double) -> QuotaDecision {
        cache.chargeMessages(siteID: siteID, count: count, now: now)
    }
    public func messagesThisMonth(siteID: String, now: Double) -> Int { cache.messagesThisMonth(siteID: siteID, now: now) }
}

/// Site limits as a JSON object in the database and the admin API.
/// The JSON form of a site's limits (stored with the site, and in the admin API).
public enum LimitsCodec {
    public static func encode(_ l: SiteLimits) -> String {
        var m: [(String, JSONValue)] = [
            ("max_connections", .int(Int64(l.maxConnections))), ("max_message_bytes", .int(Int64(l.maxMessageBytes))),
            ("max_channels_per_connection", .int(Int64(l.maxChannelsPerConnection))),
            ("client_publish_rate", .number(String(l.clientPublishRate.perSecond))),
            ("client_publish_burst", .number(String(l.clientPublishRate.burst))),
        ]
        if let q = l.monthlyMessageQuota { m.append(("monthly_message_quota", .int(Int64(q)))) }
        return JSONValue.object(m).jsonString
    }

    public static func decode(_ text: String) -> SiteLimits {
        guard let v = try? JSONParser.parse(text) else { return SiteLimits() }
        return apply(v, to: SiteLimits())
    }

    /// Overrides the fields present in `v`.
    public static func apply(_ v: JSONValue, to base: SiteLimits) -> SiteLimits {
        var l = base
        if let x = v["max_connections"]?.int64Value { l.maxConnections = Int(x) }
        if let x = v["max_message_bytes"]?.int64Value { l.maxMessageBytes = Int(x) }
        if let x = v["max_channels_per_connection"]?.int64Value { l.maxChannelsPerConnection = Int(x) }
        if let x = v["monthly_message_quota"] { l.monthlyMessageQuota = x.int64Value.map { Int($0) } }
        if let x = v["client_publish_rate"]?.doubleValue { l.clientPublishRate.perSecond = x }
        if let x = v["client_publish_burst"]?.doubleValue { l.clientPublishRate.burst = x }
        return l
    }
}
