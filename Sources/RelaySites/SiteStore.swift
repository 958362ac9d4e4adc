import RelayJSON
import Foundation
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

/// The site registry: every site cached in memory so the publish and connect paths never touch
/// the database, kept in a `SiteBackend` (the data directory's SQLite file, or PostgreSQL shared
/// by every node). Changes go to the backend first (in one transaction) and then to the cache.
///
/// Monthly message counts are charged in memory and written back by `flushUsage()` (relayd calls
/// it every 30 s, every 5 s with a shared backend, and at shutdown): it adds this node's counts
/// since the last flush to the stored ones and learns the total, so with a shared backend a quota
/// counts every node's messages, as of the last flush.
public final class SiteStore: SiteRegistry, Sendable {
    public let backend: any SiteBackend
    private let cache: InMemorySiteRegistry
    private let records: Mutex<[String: SiteRecord]>  // by site key
    /// Per site id: the month and the count the backend held at the last flush (this node's
    /// counts since then are the cache's count minus it).
    private let synced: Mutex<[String: (month: Int, count: Int)]>
    /// Last on-demand refresh per site key (`refresh(siteKey:)`), in ms.
    private let refreshedAt = Mutex<[String: Int64]>([:])
    private let changeHandler = Mutex<(@Sendable (_ old: SiteRecord?, _ new: SiteRecord?) -> Void)?>(nil)
    /// One `flushUsage` at a time (two at once would add the same counts twice).
    private let flushing = KeyedAsyncLock()

    /// Opens (creating if needed) `sites.sqlite` in `directory`, or an in-memory database when nil.
    public convenience init(directory: String?) throws {
        let backend = try SQLiteSiteBackend(directory: directory)
        let month = UTCMonth.index(unixSeconds: Date().timeIntervalSince1970)
        self.init(backend: backend, records: try backend.loadAllNow(), usage: try backend.usageNow(month: month), month: month)
    }

    /// A store over any backend, loaded from it.
    public static func open(_ backend: any SiteBackend) async throws -> SiteStore {
        let month = UTCMonth.index(unixSeconds: Date().timeIntervalSince1970)
        return SiteStore(backend: backend, records: try await backend.loadAll(), usage: try await backend.usage(month: month), month: month)
    }

    private init(backend: any SiteBackend, records loaded: [SiteRecord], usage: [String: Int], month: Int) {
        self.backend = backend
        cache = InMemorySiteRegistry(loaded.map(\.site))
        records = Mutex(Dictionary(uniqueKeysWithValues: loaded.map { ($0.siteKey, $0) }))
        // This month's stored usage, so quotas survive restarts.
        for (siteID, count) in usage { cache.absorbUsage(siteID: siteID, count: count, month: month) }
        synced = Mutex(usage.mapValues { (month, $0) })
    }

    /// Called when another node (or `relayctl site --database`) changed a site: `new` nil when it
    /// was removed. relayd closes the site's connections when it is archived or removed.
    public func onRemoteChange(_ handler: @escaping @Sendable (_ old: SiteRecord?, _ new: SiteRecord?) -> Void) {
        changeHandler.withLock { $0 = handler }
    }

    private func cacheStore(_ record: SiteRecord) {
        records.withLock { $0[record.siteKey] = record }
        cache.upsert(record.site)
    }

    /// Replaces a site's limits (new connections and publishes use them at once;
    /// open connections keep the per-connection limits they started with).
    @discardableResult
    public func setLimits(siteKey: String, _ change: @escaping @Sendable (inout SiteLimits) -> Void) async throws -> SiteRecord {
        try await update(siteKey: siteKey) { change(&$0.limits) }
    }

    /// Reads the stored site, changes it and stores it in one transaction, then caches it.
    @discardableResult
    public func update(siteKey: String, _ change: @escaping @Sendable (inout SiteRecord) throws -> Void) async throws -> SiteRecord {
        let r = try await backend.update(siteKey: siteKey, change)
        cacheStore(r)
        return r
    }

    /// Adds a new site; fails if the key exists.
    public func add(_ record: SiteRecord) async throws {
        if self.record(key: record.siteKey) != nil { throw SiteStoreError.duplicateKey }
        try await backend.insert(record)
        cacheStore(record)
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
    public func rotate(siteKey: String, graceSeconds: Int64 = 3600, rotateJWTSecret: Bool = false,
                       nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) async throws -> SiteRecord {
        try await update(siteKey: siteKey) { r in Self.rotate(&r, graceSeconds: graceSeconds, rotateJWTSecret: rotateJWTSecret, nowMs: nowMs) }
    }

    static func rotate(_ r: inout SiteRecord, graceSeconds: Int64, rotateJWTSecret: Bool, nowMs: Int64) {
        let deadline = nowMs + graceSeconds * 1000
        r.publishSecrets = r.publishSecrets
            .filter { ($0.validUntilMs ?? .max) > nowMs }
            .map { PublishSecret(keyID: $0.keyID, secret: $0.secret, validUntilMs: min($0.validUntilMs ?? deadline, deadline)) }
        var n = r.publishSecrets.count + 1
        var kid = "k\(n)"
        while r.publishSecrets.contains(where: { $0.keyID == kid }) { n += 1; kid = "k\(n)" }
        r.publishSecrets.append(PublishSecret(keyID: kid, secret: Hex.encode(SecureRandom.bytes(count: 32))))
        if rotateJWTSecret { r.jwtSecret = Hex.encode(SecureRandom.bytes(count: 32)) }
    }

    /// Archives a site (contract: unregister archives; re-registering the same URL revives the key with fresh secrets).
    public func archive(siteKey: String) async throws {
        try await update(siteKey: siteKey) { $0.archived = true }
    }

    /// Deletes a site and its secrets.
    public func remove(siteKey: String) async throws {
        try await backend.delete(siteKey: siteKey)
        forget(siteKey: siteKey)
    }

    private func forget(siteKey: String) {
        guard let r = records.withLock({ $0.removeValue(forKey: siteKey) }) else { return }
        cache.remove(siteID: r.siteID)
    }

    /// Secrets that currently verify publish signatures, for `PublishVerifier`.
    public func publishSecrets(siteKey: String) -> [RelayCrypto.PublishSecret]? {
        guard let r = record(key: siteKey), !r.archived else { return nil }
        return r.publishSecrets
    }

    // MARK: Other nodes' changes

    /// Re-reads one site from a shared backend, at most once a second per key (an unknown key in
    /// a request is how a node hears of a site registered elsewhere a moment ago; this bounds what
    /// requests with made-up keys cost). Returns whether the cached site changed.
    @discardableResult
    public func refresh(siteKey: String, nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) async -> Bool {
        guard backend.isShared, siteKey.utf8.count <= 256 else { return false }
        let due: Bool = refreshedAt.withLock { seen in
            if let last = seen[siteKey], nowMs - last < 1_000 { return false }
            if seen.count >= 10_000 { seen = seen.filter { nowMs - $0.value < 1_000 } }
            seen[siteKey] = nowMs
            return true
        }
        guard due, let stored = try? await backend.load(siteKey: siteKey) else { return false }
        return apply(stored: stored, siteKey: siteKey)
    }

    /// Re-reads every site (after a lost connection to a shared backend, when changes may have been missed).
    public func reloadAll() async throws {
        let stored = try await backend.loadAll()
        let keys = Set(stored.map(\.siteKey))
        for r in stored { apply(stored: r, siteKey: r.siteKey) }
        for key in records.withLock({ Array($0.keys) }) where !keys.contains(key) { apply(stored: nil, siteKey: key) }
    }

    /// Follows a shared backend's change notifications until cancelled (relayd runs it as a service).
    public func followChanges() async throws {
        try await backend.watch { [weak self] key in
            guard let self else { return }
            if let key {
                // nil: removed. A failed read changes nothing (the feed's reconnect re-reads everything).
                let stored: SiteRecord?
                do { stored = try await self.backend.load(siteKey: key) } catch { return }
                self.apply(stored: stored, siteKey: key)
            } else {
                try? await self.reloadAll()
            }
        }
    }

    @discardableResult
    private func apply(stored: SiteRecord?, siteKey: String) -> Bool {
        let old = record(key: siteKey)
        guard old != stored else { return false }
        if let stored { cacheStore(stored) } else { forget(siteKey: siteKey) }
        changeHandler.withLock { $0 }?(old, stored)
        return true
    }

    // MARK: Usage

    /// Adds this node's message counts since the last flush to the backend's and takes in the
    /// stored totals (every node's, with a shared backend).
    public func flushUsage(now: Double = Date().timeIntervalSince1970) async throws {
        await flushing.lock("usage")
        defer { flushing.unlock("usage") }
        let month = UTCMonth.index(unixSeconds: now)
        var taken: [String: Int] = [:]   // site id → the cache's count at this moment
        var deltas: [String: Int] = [:]
        let before = synced.withLock { $0 }
        for r in list() {
            let count = cache.messagesThisMonth(siteID: r.siteID, now: now)
            let base = before[r.siteID].flatMap { $0.month == month ? $0.count : nil } ?? 0
            taken[r.siteID] = count
            // With a shared backend, a site with a quota also learns the others' counts when this node sent none.
            if count > base || (backend.isShared && r.limits.monthlyMessageQuota != nil) { deltas[r.siteID] = max(0, count - base) }
        }
        guard !deltas.isEmpty else { return }
        let totals = try await backend.addUsage(month: month, deltas)
        synced.withLock { s in
            for (siteID, total) in totals {
                // Others' messages since the last flush: the stored total beyond what this node counted.
                let others = total - (taken[siteID] ?? 0)
                if others != 0 { cache.absorbUsage(siteID: siteID, count: others, month: month) }
                s[siteID] = (month, total)
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
