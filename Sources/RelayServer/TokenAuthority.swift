import RelayProtocol
import RelayJSON
import RelayCore
import RelayCrypto
import Synchronization

/// Turns a connection token into a `ConnectionGrant`.
///
/// The token names its site in the `site_id` claim; that claim is read
/// unverified only to pick the site's key, then the whole token is verified
/// with that key (HS256 secret or Ed25519 public key: the key pins the
/// algorithm). A site with both accepts either algorithm, each with its own key.
public struct TokenAuthority: Sendable {
    public let registry: any SiteRegistry
    public let options: JWTVerificationOptions
    public let clock: any RelayClock
    private let verifiers = VerifierCache()

    public init(registry: any SiteRegistry, options: JWTVerificationOptions, clock: any RelayClock = SystemClock()) {
        self.registry = registry
        self.options = options
        self.clock = clock
    }

    /// Why a token was refused, with the close code to use.
    public struct Refusal: Error, Sendable {
        public let code: CloseCode
        public let reason: String
    }

    /// Verifies `token` and maps it to a grant for `format`.
    public func grant(for token: String, sse: Bool) -> Result<ConnectionGrant, Refusal> {
        guard token.utf8.count <= options.maxTokenBytes else { return .failure(Refusal(code: .invalidToken, reason: "invalid token: too large")) }
        guard let siteID = JWTClaims.unverifiedSiteID(token) else {
            return .failure(Refusal(code: .invalidToken, reason: "invalid token: no site_id"))
        }
        guard let site = registry.site(id: siteID) else {
            return .failure(Refusal(code: .siteNotFound, reason: "site not found"))
        }
        if site.revoked { return .failure(Refusal(code: .siteNotFound, reason: "site not found")) }
        var lastError: JWTError = .badSignature
        for v in verifiers.verifiers(for: site, options: options) {
            do {
                let claims = try v.verify(token, now: clock.nowSeconds())
                guard claims.siteID == site.siteID else { return .failure(Refusal(code: .invalidToken, reason: "invalid token: site_id mismatch")) }
                return .success(Self.grant(from: claims, site: site, sse: sse))
            } catch .algorithmMismatch(let a) {
                lastError = .algorithmMismatch(a)
                continue
            } catch {
                return .failure(Self.refusal(error))
            }
        }
        return .failure(Self.refusal(lastError))
    }

    /// 4001 with a reason that starts with `token expired` or `invalid token`
    /// (Docs/protocol.md, close codes), so a client can tell expiry apart.
    static func refusal(_ error: JWTError) -> Refusal {
        if error == .expired { return Refusal(code: .invalidToken, reason: "token expired") }
        return Refusal(code: .invalidToken, reason: "invalid token: \(error)")
    }

    /// The contract's defaults: both prefix lists default to `site:{site_id}:`; `v` defaults to 1.
    static func grant(from c: JWTClaims, site: Site, sse: Bool) -> ConnectionGrant {
        let v = c.version ?? 1
        let all = ["site:\(site.siteID):"]
        var grant = ConnectionGrant(siteID: site.siteID, userID: c.userID ?? c.subject ?? "0",
                                    subscribePrefixes: c.allowedChannelPrefixes ?? all,
                                    publishPrefixes: c.allowedPublishPrefixes ?? all,
                                    expiresAt: c.expiresAt ?? Int64.max, protocolVersion: v,
                                    wireFormat: sse ? .sse(protocolVersion: v) : .webSocket)
        grant.endpoint = sse ? .sse : .ws
        return grant
    }
}

/// Each site's verifiers, built once per key (an HS256 verifier precomputes its HMAC pads and the
/// encoded headers it accepts): rebuilt when the site's secret or public key changes.
final class VerifierCache: Sendable {
    private struct Entry {
        var jwtSecret: String?
        var ed25519PublicKey: [UInt8]?
        var verifiers: [JWTVerifier]
    }
    private let entries = Mutex<[String: Entry]>([:])
    /// Sites with tokens at once are few; past this many entries the cache starts over.
    static let capacity = 4_096

    func verifiers(for site: Site, options: JWTVerificationOptions) -> [JWTVerifier] {
        if let e = entries.withLock({ $0[site.siteID] }), e.jwtSecret == site.jwtSecret, e.ed25519PublicKey == site.ed25519PublicKey {
            return e.verifiers
        }
        var verifiers: [JWTVerifier] = []
        if let secret = site.jwtSecret { verifiers.append(.hs256(secret: secret, options: options)) }
        if let pk = site.ed25519PublicKey, let key = try? Ed25519.PublicKey(pk) {
            verifiers.append(JWTVerifier(key: .ed25519(key), options: options))
        }
        let entry = Entry(jwtSecret: site.jwtSecret, ed25519PublicKey: site.ed25519PublicKey, verifiers: verifiers)
        entries.withLock { all in
            if all.count >= Self.capacity { all.removeAll(keepingCapacity: true) }
            all[site.siteID] = entry
        }
        return verifiers
    }
}
