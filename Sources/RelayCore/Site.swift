import RelayCrypto
import Synchronization

/// Per-site limits. `nil` / `0` means unlimited where documented.
public struct SiteLimits: Sendable, Equatable {
    /// Concurrent connections across transports; exceeding it refuses with 4029.
    public var maxConnections: Int
    /// Largest published payload (`data` JSON or binary payload) in bytes.
    /// Default 2 MiB, the WebSocket frame cap: the wordsocket Yjs provider
    /// sends updates up to 1 MiB plus a 1-byte type tag, and the relay counts
    /// the payload it forwards, not what the payload means.
    public var maxMessageBytes: Int
    /// Subscriptions per connection; exceeding it closes with 4009.
    public var maxChannelsPerConnection: Int
    /// Accepted publications per calendar month (UTC); `nil` = unlimited.
    public var monthlyMessageQuota: Int?
    /// Client (browser) publish rate per connection, token bucket. Default 50/s,
    /// burst 200: a co-editor sends an update and an awareness frame per
    /// keystroke over `/ws` (the wordsocket provider), and a provider coming
    /// back online flushes its queue at once. Beyond it publishes wait (see
    /// `RelayEngine.clientPublishAdmission`).
    public var clientPublishRate: RateLimit

    public init(maxConnections: Int = 500, maxMessageBytes: Int = 2 << 20,
                maxChannelsPerConnection: Int = 128, monthlyMessageQuota: Int? = nil,
                clientPublishRate: RateLimit = RateLimit(perSecond: 50, burst: 200)) {
        self.maxConnections = maxConnections
        self.maxMessageBytes = maxMessageBytes
        self.maxChannelsPerConnection = maxChannelsPerConnection
        self.monthlyMessageQuota = monthlyMessageQuota
        self.clientPublishRate = clientPublishRate
    }
}

/// Token-bucket rate: `perSecond` sustained, `burst` tokens at most.
public struct RateLimit: Sendable, Equatable {
    public var perSecond: Double
    public var burst: Double
    public init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }
}

/// A tenant: one WordPress site.
public struct Site: Sendable, Equatable {
    /// Relay-issued public key (32 hex in the contract).
    public var siteKey: String
    /// `sha256_hex("site:" + siteKey)`.
    public let siteID: String
    /// `sha256_hex("tenant:" + siteKey)`.
    public let tenantID: String
    public var publishSecrets: [PublishSecret]
    /// HS256 secret, if the site signs tokens symmetrically.
    public var jwtSecret: String?
    /// Raw 32-byte Ed25519 public key, if the site signs tokens with EdDSA.
    public var ed25519PublicKey: [UInt8]?
    public var limits: SiteLimits
    /// A revoked site refuses connects (4003) and publishes.
    public var revoked: Bool

    public init(siteKey: String, publishSecrets: [PublishSecret] = [], jwtSecret: String? = nil,
                ed25519PublicKey: [UInt8]? = nil, limits: SiteLimits = SiteLimits(), revoked: Bool = false) {
        self.siteKey = siteKey
        self.siteID = Site.siteID(forKey: siteKey)
        self.tenantID = SHA256.hexDigest("tenant:" + siteKey)
        self.publishSecrets = publishSecrets
        self.jwtSecret = jwtSecret
        self.ed25519PublicKey = ed25519PublicKey
        self.limits = limits
        self.revoked = revoked
    }

    /// The publish secret with this key id.
    public func publishSecret(keyID: String) -> PublishSecret? {
        publishSecrets.first { $0.keyID == keyID }
    }

    /// `sha256_hex("site:" + siteKey)` as in the wordsocket contract §7.1.
    public static func siteID(forKey siteKey: String) -> String {
        SHA256.hexDigest("site:" + siteKey)
    }
}

/// Outcome of charging publications against a site's monthly quota.
public enum QuotaDecision: Sendable, Equatable {
    case allowed
    /// The quota is exhausted until the start of the next UTC month.
    case exceeded(limit: Int)
}

/// Where the engine finds sites and charges quotas. Calls are synchronous and
/// on the publish path: implementations should answer from memory (a
/// persistent implementation keeps a cache and writes behind).
public protocol SiteRegistry: Sendable {
    func site(id siteID: String) -> Site?
    func site(key siteKey: String) -> Site?
    /// Charges `count` accepted publications at time `now` (Unix seconds).
    func chargeMessages(siteID: String, count: Int, now: Double) -> QuotaDecision
    /// Messages charged in the UTC month containing `now`.
    func messagesThisMonth(siteID: String, now: Double) -> Int
}

/// The default registry: everything in memory.
public final class InMemorySiteRegistry: SiteRegistry {
    private struct State {
        var byID: [String: Site] = [:]
        var idByKey: [String: String] = [:]
        var usage: [String: (month: Int, count: Int)] = [:]
    }
    private let state = Mutex(State())

    public init(_ sites: [Site] = []) {
        for site in sites { upsert(site) }
    }

    /// Adds or replaces a site.
    public func upsert(_ site: Site) {
        state.withLock {
            $0.byID[site.siteID] = site
            $0.idByKey[site.siteKey] = site.siteID
        }
    }

    /// Removes a site entirely.
    public func remove(siteID: String) {
        state.withLock {
            if let site = $0.byID.removeValue(forKey: siteID) { $0.idByKey[site.siteKey] = nil }
            $0.usage[siteID] = nil
        }
    }

    public func site(id siteID: String) -> Site? { state.withLock { $0.byID[siteID] } }

    public func site(key siteKey: String) -> Site? {
        state.withLock { s in s.idByKey[siteKey].flatMap { s.byID[$0] } }
    }

    public func chargeMessages(siteID: String, count: Int, now: Double) -> QuotaDecision {
        let month = UTCMonth.index(unixSeconds: now)
        return state.withLock { s in
            guard let site = s.byID[siteID] else { return .allowed }
            var entry = s.usage[siteID] ?? (month, 0)
            if entry.month != month { entry = (month, 0) }
            if let quota = site.limits.monthlyMessageQuota, entry.count + count > quota {
                s.usage[siteID] = entry
                return .exceeded(limit: quota)
            }
            entry.count += count
            s.usage[siteID] = entry
            return .allowed
        }
    }

    /// Adds messages counted elsewhere (stored usage at start, other nodes' since the last flush)
    /// to `month`'s count without a quota decision. A count of an earlier month than the one
    /// held is ignored; a later month replaces it.
    public func absorbUsage(siteID: String, count: Int, month: Int) {
        state.withLock { s in
            var entry = s.usage[siteID] ?? (month, 0)
            if entry.month > month { return }
            if entry.month < month { entry = (month, 0) }
            entry.count = max(0, entry.count + count)
            s.usage[siteID] = entry
        }
    }

    public func messagesThisMonth(siteID: String, now: Double) -> Int {
        let month = UTCMonth.index(unixSeconds: now)
        return state.withLock { s in
            guard let e = s.usage[siteID], e.month == month else { return 0 }
            return e.count
        }
    }
}

/// Calendar months in UTC without Foundation.
public enum UTCMonth {
    /// `year * 12 + (month - 1)` for the UTC month containing `unixSeconds`.
    public static func index(unixSeconds: Double) -> Int {
        let (y, m, _) = civil(days: Int((unixSeconds / 86_400).rounded(.down)))
        return y * 12 + (m - 1)
    }

    /// Howard Hinnant's civil-from-days.
    static func civil(days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
