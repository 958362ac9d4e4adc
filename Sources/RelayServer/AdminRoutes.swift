import RelaySites
import RelayJSON
import Foundation
import Hummingbird
import RelayCore
import RelayCrypto

extension RelayService {
    /// `/api/sites/*`: the contract's register/unregister plus operator endpoints, behind the admin key.
    /// `POST /api/sites/unregister`: WordPress disconnecting itself (its own publish secret; the admin key is optional).
    func siteRoutes() -> RouteCollection<RelayRequestContext> {
        let routes = RouteCollection(context: RelayRequestContext.self)
        routes.post("/api/sites/unregister") { request, _ in try await self.unregister(request) }
        return routes
    }

    /// The operator's API under `/api/sites` (register, list, add, rotate, remove), behind the admin key.
    func adminRoutes() -> RouteCollection<RelayRequestContext> {
        let routes = RouteCollection(context: RelayRequestContext.self)
            .add(middleware: AdminAuthMiddleware(key: adminKey))
        routes.post("/register") { request, _ in try await self.register(try await self.adminBody(request)) }
        routes.get("/") { _, _ in
            HTTPReply.json(.object([("sites", .array(self.sites.list().map { Self.publicJSON($0) }))]))
        }
        routes.post("/add") { request, _ in try await self.addSite(try await self.adminBody(request)) }
        routes.post("/rotate") { request, _ in
            let body = try await self.adminBody(request)
            guard let key = body["site_key"]?.stringValue else { throw RelayHTTPError(.invalidBody, "site_key required", status: .badRequest) }
            do {
                let r = try await self.sites.rotate(siteKey: key, graceSeconds: body["grace_seconds"]?.int64Value ?? self.configuration.rotationGraceSeconds,
                                              rotateJWTSecret: body["rotate_jwt_secret"]?.boolValue ?? false)
                return HTTPReply.json(Self.credentialsJSON(r))
            } catch { throw self.storeFailure(error) }
        }
        routes.post("/limits") { request, _ in
            let body = try await self.adminBody(request)
            guard let key = body["site_key"]?.stringValue else { throw RelayHTTPError(.invalidBody, "site_key required", status: .badRequest) }
            guard let limits = body["limits"], limits.objectValue != nil else {
                throw RelayHTTPError(.invalidBody, "limits (an object) required", status: .badRequest)
            }
            do {
                let r = try await self.sites.setLimits(siteKey: key) { $0 = LimitsCodec.apply(limits, to: $0) }
                self.logger.notice("site limits changed", metadata: ["site_id": "\(r.siteID)", "limits": "\(LimitsCodec.encode(r.limits))"])
                return HTTPReply.json(Self.publicJSON(r))
            } catch { throw self.storeFailure(error) }
        }
        routes.post("/remove") { request, _ in
            let body = try await self.adminBody(request)
            guard let key = body["site_key"]?.stringValue else { throw RelayHTTPError(.invalidBody, "site_key required", status: .badRequest) }
            let siteID = self.sites.record(key: key)?.siteID
            do { try await self.sites.remove(siteKey: key) } catch { throw self.storeFailure(error) }
            if let siteID { self.closeConnections(siteID: siteID, reason: "site removed") }
            return HTTPReply.json(.object([("ok", .bool(true))]))
        }
        return routes
    }

    static func bearer(_ request: Request) -> String? {
        guard let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") else { return nil }
        return String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    /// An admin request's body: a JSON object, or empty.
    func adminBody(_ request: Request) async throws -> JSONValue {
        guard let bytes = await readBody(request, limit: 64 * 1024) else {
            throw RelayHTTPError(.payloadTooLarge, "body too large", status: .contentTooLarge)
        }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) { return .object([]) }
        do { return try JSONParser.parse(bytes) } catch {
            throw RelayHTTPError(.invalidBody, "body is not JSON: \(error)", status: .badRequest)
        }
    }

    static func credentialsJSON(_ r: SiteRecord) -> JSONValue {
        var m: [(String, JSONValue)] = [("site_key", .string(r.siteKey)), ("site_id", .string(r.siteID))]
        if let current = r.publishSecrets.last(where: { $0.validUntilMs == nil }) ?? r.publishSecrets.last {
            m.append(("publish_secret", .string(current.secret)))
            m.append(("publish_key_id", .string(current.keyID)))
        }
        if let j = r.jwtSecret { m.append(("jwt_secret", .string(j))) }
        return .object(m)
    }

    static func publicJSON(_ r: SiteRecord) -> JSONValue {
        .object([("site_key", .string(r.siteKey)), ("site_id", .string(r.siteID)), ("site_url", r.siteURL.map(JSONValue.string) ?? .null),
                 ("site_name", r.siteName.map(JSONValue.string) ?? .null), ("archived", .bool(r.archived)),
                 ("publish_key_ids", .array(r.publishSecrets.map { .string($0.keyID) })),
                 ("eddsa", .bool(r.ed25519PublicKey != nil)),
                 ("limits", (try? JSONParser.parse(LimitsCodec.encode(r.limits))) ?? .null)])
    }

    /// Contract: `{"site_url","site_name"}` → `{"site_key","publish_secret","jwt_secret"}`. Re-registering an
    /// archived (or existing) URL returns the same site key with fresh secrets.
    func register(_ body: JSONValue) async throws -> Response {
        guard let url = body["site_url"]?.stringValue, !url.isEmpty else {
            throw RelayHTTPError(.invalidBody, "site_url required", status: .badRequest)
        }
        let name = body["site_name"]?.stringValue
        do {
            if let existing = sites.record(siteURL: url) {
                let revived = try await sites.update(siteKey: existing.siteKey) { r in
                    let fresh = SiteRecord.generate(siteURL: url, siteName: name, limits: r.limits)
                    r.publishSecrets = fresh.publishSecrets
                    r.jwtSecret = fresh.jwtSecret
                    r.siteName = name ?? r.siteName
                    r.archived = false
                }
                return HTTPReply.json(Self.credentialsJSON(revived))
            }
            let record = SiteRecord.generate(siteURL: url, siteName: name, limits: settings.defaultSiteLimits)
            try await sites.add(record)
            return HTTPReply.json(Self.credentialsJSON(record))
        } catch {
            throw storeFailure(error)
        }
    }

    /// The answer to a registry error: 404 only for a site that does not exist; anything else (a full
    /// or read-only disk, a damaged file) is logged with its cause and answered 500 saying the
    /// registry could not be written (it used to say "site not found", or nothing in the log).
    func storeFailure(_ error: any Error) -> RelayHTTPError {
        if let e = error as? SiteStoreError, e == .notFound {
            return RelayHTTPError(.notFound, "site not found", status: .notFound)
        }
        if let e = error as? RelayHTTPError { return e }
        logger.error("site registry not written: \(error)")
        return RelayHTTPError(.internalError, "could not store the site: the site registry could not be written (see relayd's log)",
                              status: .internalServerError)
    }

    /// Operator import: create a site with given credentials (e.g. ones a WordPress install already has).
    func addSite(_ body: JSONValue) async throws -> Response {
        var record = SiteRecord.generate(siteURL: body["site_url"]?.stringValue, siteName: body["site_name"]?.stringValue,
                                         limits: settings.defaultSiteLimits)
        if let k = body["site_key"]?.stringValue { record.siteKey = k }
        if let s = body["publish_secret"]?.stringValue { record.publishSecrets = [PublishSecret(keyID: body["publish_key_id"]?.stringValue ?? "k1", secret: s)] }
        if let j = body["jwt_secret"] { record.jwtSecret = j.stringValue }
        if let pk = body["ed25519_public_key"]?.stringValue {
            guard let raw = Base64.decode(pk, .url) ?? Base64.decode(pk, .standard), raw.count == 32 else {
                throw RelayHTTPError(.invalidBody, "ed25519_public_key must be 32 bytes base64", status: .badRequest)
            }
            record.ed25519PublicKey = raw
        }
        if let l = body["limits"] { record.limits = LimitsCodec.apply(l, to: record.limits) }
        do {
            try await sites.add(record)
            return HTTPReply.json(Self.credentialsJSON(record))
        } catch SiteStoreError.duplicateKey {
            throw RelayHTTPError(.duplicateSite, "a site with this key exists", status: .conflict)
        } catch {
            throw storeFailure(error)
        }
    }

    /// Contract: optional bearer key plus `{"site_key","publish_secret"}` in the body; archives the site.
    func unregister(_ request: Request) async throws -> Response {
        if let key = Self.bearer(request), !ConstantTime.equals(key, adminKey) {
            throw RelayHTTPError(.invalidAPIKey, "wrong admin API key", status: .unauthorized)
        }
        guard let bytes = await readBody(request, limit: 64 * 1024), let body = try? JSONParser.parse(bytes),
              let siteKey = body["site_key"]?.stringValue, let secret = body["publish_secret"]?.stringValue else {
            throw RelayHTTPError(.invalidBody, "site_key and publish_secret required", status: .badRequest)
        }
        if !(sites.record(key: siteKey)?.publishSecrets.contains(where: { ConstantTime.equals($0.secret, secret) }) ?? false) {
            await sites.refresh(siteKey: siteKey)  // registered or rotated on another node a moment ago
        }
        guard let record = sites.record(key: siteKey) else {
            throw RelayHTTPError(.notFound, "site not found", status: .notFound)
        }
        guard record.publishSecrets.contains(where: { ConstantTime.equals($0.secret, secret) }) else {
            throw RelayHTTPError(.unauthorized, "publish_secret does not match", status: .forbidden)
        }
        do { try await sites.archive(siteKey: siteKey) } catch {
            throw RelayHTTPError(.internalError, "could not archive the site", status: .internalServerError)
        }
        closeConnections(siteID: record.siteID, reason: "site unregistered")
        return HTTPReply.json(.object([("ok", .bool(true))]))
    }

    /// Closes every connection of a site that is gone (archived or removed) with 4003.
    func closeConnections(siteID: String, reason: String) {
        for e in sessions.all() where e.connection.siteID == siteID {
            engine.disconnect(e.connection, code: .siteNotFound, reason: reason, flushPending: true)
        }
    }
}
