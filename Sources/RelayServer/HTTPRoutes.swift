import RelayProtocol
import RelayJSON
import Foundation
import Hummingbird
import Synchronization
import NIOCore
import RelayCore
import RelayCrypto
import YjsRooms

/// JSON bodies and errors in the contract's shape: `{"error":"<code>","message":"…"}`.
enum HTTPReply {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }

    static func error(_ code: ErrorCode, _ message: String, status: HTTPResponse.Status) -> Response {
        json(.object([("error", .string(code.rawValue)), ("message", .string(message))]), status: status)
    }

    static func text(_ bytes: [UInt8], contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// A refusal in the protocol's shape, thrown by route handlers: Hummingbird
/// turns it into `{"error":<code>,"message":…}` with its status.
struct RelayHTTPError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: ErrorCode
    let message: String

    init(_ code: ErrorCode, _ message: String, status: HTTPResponse.Status) {
        self.code = code
        self.message = message
        self.status = status
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        HTTPReply.error(code, message, status: status)
    }
}

/// Answers the admin API only with the operator's Bearer key (constant-time comparison).
struct AdminAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let given = RelayService.bearer(request), ConstantTime.equals(given, key) else {
            throw RelayHTTPError(.invalidAPIKey, "missing or wrong admin API key", status: .unauthorized)
        }
        return try await next(request, context)
    }
}

extension RelayService {
    /// The router of every HTTP endpoint: CORS, then one route collection per job.
    public func makeRouter() -> Router<RelayRequestContext> {
        let router = Router(context: RelayRequestContext.self)
        router.add(middleware: ReloadableCORSMiddleware(relay: self))
        router.addRoutes(publishRoutes())
        router.addRoutes(operationsRoutes())
        router.addRoutes(sseRoutes())
        router.addRoutes(siteRoutes())
        router.addRoutes(adminRoutes(), atPath: "/api/sites")
        return router
    }

    /// WordPress's signed endpoints: `POST /publish`, `/publish/batch`, `GET /site/stats`.
    func publishRoutes() -> RouteCollection<RelayRequestContext> {
        let routes = RouteCollection(context: RelayRequestContext.self)
        routes.post("/publish") { request, _ in try await self.handlePublish(request, batch: false) }
        routes.post("/publish/batch") { request, _ in try await self.handlePublish(request, batch: true) }
        routes.get("/site/stats") { request, _ in try await self.handleStats(request) }
        return routes
    }

    /// `GET /readyz`: 200 while this node can serve (not shutting down, every broker server and
    /// the shared Yjs store reachable), else 503; the body names the broker's servers and the
    /// store, with their state.
    func readiness() async -> Response {
        let health = engine.configuration.broker.health()
        var storeReady = true
        var fields: [(String, JSONValue)] = []
        let endpoints: [JSONValue] = health.endpoints.map {
            .object([("name", .string($0.name)), ("connected", .bool($0.connected)), ("reconnects", .number(String($0.reconnects)))])
        }
        fields.append(("broker", .object([("kind", .string(health.kind)), ("ready", .bool(health.ready)), ("endpoints", .array(endpoints))])))
        if let store = configuration.sharedYjsPersistence as? any YjsPersistenceHealth {
            storeReady = await store.isReachable()
            fields.append(("store", .object([("kind", .string(store.storeKind)), ("ready", .bool(storeReady))])))
        }
        let ready = !shuttingDown.load(ordering: .relaxed) && health.ready && storeReady
        let body = JSONValue.object([("ready", .bool(ready))] + fields)
        return HTTPReply.json(body, status: ready ? .ok : .serviceUnavailable)
    }

    /// `GET /healthz`, `/readyz`, `/metrics`.
    func operationsRoutes() -> RouteCollection<RelayRequestContext> {
        let routes = RouteCollection(context: RelayRequestContext.self)
        routes.get("/healthz") { _, _ in self.health() }
        routes.get("/readyz") { _, _ in await self.readiness() }
        routes.get("/metrics") { _, _ in
            self.brokerMetrics.update(self.engine.configuration.broker.health())
            return HTTPReply.text(self.metricsRegistry.emitToBuffer(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        return routes
    }

    /// `GET /sse`: the receive-only stream.
    func sseRoutes() -> RouteCollection<RelayRequestContext> {
        let routes = RouteCollection(context: RelayRequestContext.self)
        routes.get("/sse") { request, context in
            let ip = self.clientIP(request, context)
            do { return try self.handleSSE(request, ip: ip) } catch let e as RelayHTTPError {
                self.refusals.refused(endpoint: "/sse", ip: ip, code: Int(e.status.code), name: e.code.rawValue, reason: e.message)
                throw e
            }
        }
        return routes
    }

    static func signedRequest(_ request: Request, body: [UInt8]) -> SignedRequest {
        var headers: [(String, String)] = []
        for field in request.headers { headers.append((field.name.canonicalName, field.value)) }
        let path = request.uri.path
        let query = request.uri.query ?? ""
        return SignedRequest(method: request.method.rawValue, path: path, query: query, headers: headers, body: body)
    }

    static func status(for error: PublishSignatureError) -> HTTPResponse.Status {
        switch error {
        case .malformed: return .badRequest
        case .replayCacheFull: return .serviceUnavailable
        default: return .unauthorized
        }
    }

    func readBody(_ request: Request, limit: Int) async -> [UInt8]? {
        guard let buffer = try? await request.body.collect(upTo: limit) else { return nil }
        return Array(buffer.readableBytesView)
    }

    enum Verification {
        case accepted(VerifiedPublisher)
        case refused(Response)
    }

    func verify(_ request: Request, body: [UInt8]) -> Verification {
        do throws(PublishSignatureError) {
            return .accepted(try publishVerifier.verify(Self.signedRequest(request, body: body), nowMs: SystemClock.nowMs))
        } catch {
            metrics.httpPublishRejections.increment(code: Self.code(for: error))
            return .refused(HTTPReply.error(Self.code(for: error), Self.message(for: error), status: Self.status(for: error)))
        }
    }

    /// The protocol's error code for a refused signature.
    static func code(for error: PublishSignatureError) -> ErrorCode {
        switch error {
        case .malformed: return .malformedRequest
        case .unknownKey: return .unknownSiteKey
        case .stale: return .staleTimestamp
        case .fromTheFuture: return .futureTimestamp
        case .badSignature: return .invalidSignature
        case .replayed: return .replayedRequest
        case .replayCacheFull: return .replayCacheFull
        }
    }

    static func message(for error: PublishSignatureError) -> String {
        switch error {
        case .malformed(let m): return m
        case .unknownKey: return "unknown site key or key id"
        case .stale: return "timestamp older than the signature window"
        case .fromTheFuture: return "timestamp too far in the future"
        case .badSignature: return "signature does not match"
        case .replayed: return "nonce already used"
        case .replayCacheFull: return "replay cache full; retry shortly"
        }
    }

    /// What a verified `POST /publish[/batch]` asks for, or the reply that ends it.
    enum PublishPlan {
        case reply(HTTPResponse.Status, JSONValue)
        case single(siteID: String, PublishBody, VerifiedPublisher)
        /// Items in order; nil for an item that is not a publication.
        case batch(siteID: String, [PublishBody?], VerifiedPublisher)
    }

    static func errorJSON(_ code: ErrorCode, _ message: String) -> JSONValue {
        .object([("error", .string(code.rawValue)), ("message", .string(message))])
    }

    /// Verifies the signature, finds the site and parses the body (no engine call yet).
    func planPublish(_ signed: SignedRequest, batch: Bool) -> PublishPlan {
        let publisher: VerifiedPublisher
        do throws(PublishSignatureError) {
            publisher = try publishVerifier.verify(signed, nowMs: SystemClock.nowMs)
        } catch {
            metrics.httpPublishRejections.increment(code: Self.code(for: error))
            return .reply(Self.status(for: error), Self.errorJSON(Self.code(for: error), Self.message(for: error)))
        }
        guard let site = sites.site(key: publisher.siteKey) else {
            return .reply(.notFound, Self.errorJSON(.siteNotFound, "site not found"))
        }
        let body = signed.body
        guard batch else {
            guard let p = PublishBody.parse(body) else {
                return .reply(.badRequest, Self.errorJSON(.invalidBody, "expected {\"channel\",\"event\",\"data\"}"))
            }
            return .single(siteID: site.siteID, p, publisher)
        }
        // `{"publications":[…]}` or a bare array, signed as one body; each item's `data` passes byte for byte.
        let ranges: [Range<Int>]
        do { ranges = try JSONParser.arrayElementRanges(body, member: "publications") } catch {
            return .reply(.badRequest, Self.errorJSON(.invalidBody, "expected an array of publications: \(error)"))
        }
        guard ranges.count <= configuration.maxBatchSize else {
            return .reply(.contentTooLarge, Self.errorJSON(.batchTooLarge, "at most \(configuration.maxBatchSize) publications per batch"))
        }
        return .batch(siteID: site.siteID, ranges.map { PublishBody.parse(Array(body[$0])) }, publisher)
    }

    /// The reply to one publish (or one batch item: `status` is then unused).
    func publishOutcome(_ result: Result<PublishReceipt, PublishError>) -> (status: HTTPResponse.Status, json: JSONValue) {
        switch result {
        case .success(let receipt):
            if !receipt.duplicate { publishedMessages.wrappingAdd(1, ordering: .relaxed) }
            metrics.httpPublishes.increment()
            return (.ok, Self.receiptJSON(receipt))
        case .failure(let e):
            metrics.httpPublishRejections.increment(code: e.code)
            // A site's own publish has no token: its only forbidden channels are another site's.
            let why = e == .forbidden ? "the channel belongs to another site (a full name must be site:{this site's id}:…)" : e.message
            return (HTTPResponse.Status(code: e.httpStatus), Self.errorJSON(e.code, "publish refused: \(why)"))
        }
    }

    static let invalidBatchItem = errorJSON(.invalidBody, "expected channel, event and data")

    /// `POST /publish` and `/publish/batch` through Hummingbird (the engine's `async` calls, any broker).
    func handlePublish(_ request: Request, batch: Bool) async throws -> Response {
        guard let body = await readBody(request, limit: configuration.maxPublishBodyBytes) else {
            throw RelayHTTPError(.payloadTooLarge, "body larger than \(configuration.maxPublishBodyBytes) bytes", status: .contentTooLarge)
        }
        let signed = Self.signedRequest(request, body: body)
        var plan = planPublish(signed, batch: batch)
        if case .reply(_, let json) = plan, await refreshedSite(for: signed, refused: json) {
            plan = planPublish(signed, batch: batch)
        }
        if let refusal = await claimNonceAcrossNodes(plan) { return refusal }
        switch plan {
        case .reply(let status, let json):
            return HTTPReply.json(json, status: status)
        case .single(let siteID, let p, _):
            let r = publishOutcome(await engine.publish(siteID: siteID, channel: p.channel, event: p.event, data: p.data,
                                                        idempotencyKey: p.idempotencyKey))
            return HTTPReply.json(r.json, status: r.status)
        case .batch(let siteID, let items, _):
            var results: [JSONValue] = []
            for item in items {
                guard let item else { results.append(Self.invalidBatchItem); continue }
                results.append(publishOutcome(await engine.publish(siteID: siteID, channel: item.channel, event: item.event,
                                                                   data: item.data, idempotencyKey: item.idempotencyKey)).json)
            }
            return HTTPReply.json(.object([("results", .array(results))]))
        }
    }

    /// With several nodes, a v2 request's nonce must be fresh in the whole cluster, not only in
    /// this node's replay cache (else a captured request could be replayed once per node within
    /// the signature window): claimed through the broker. Returns the refusal, or nil to go on.
    func claimNonceAcrossNodes(_ plan: PublishPlan) async -> Response? {
        guard engine.synchronous == nil else { return nil }
        let publisher: VerifiedPublisher
        switch plan {
        case .reply: return nil
        case .single(_, _, let p), .batch(_, _, let p): publisher = p
        }
        guard let nonce = publisher.nonce else { return nil }
        let ttl = max(1, publisher.nonceExpiresAtMs - SystemClock.nowMs)
        do {
            if try await engine.configuration.broker.claimOnce(key: "n." + publisher.siteKey + "." + nonce, ttlMs: ttl) { return nil }
            metrics.httpPublishRejections.increment(code: Self.code(for: .replayed))
            return HTTPReply.json(Self.errorJSON(Self.code(for: .replayed), Self.message(for: .replayed)),
                                  status: Self.status(for: .replayed))
        } catch {
            metrics.httpPublishRejections.increment(code: .unavailable)
            return HTTPReply.json(Self.errorJSON(.unavailable, "publish refused: broker unavailable"), status: .serviceUnavailable)
        }
    }

    /// With a shared site registry, a publish refused for an unknown site key or secret may be
    /// for a site registered or rotated on another node a moment ago (before its notification
    /// arrived): re-reads that site (at most once a second per key) and says whether the request
    /// should be verified again: the site changed, or is known now (the change feed may have
    /// stored it while this request was being refused).
    func refreshedSite(for signed: SignedRequest, refused json: JSONValue) async -> Bool {
        guard sites.backend.isShared, let code = json["error"]?.stringValue,
              [ErrorCode.unknownSiteKey, .invalidSignature, .siteNotFound].contains(where: { $0.rawValue == code }),
              let key = signed.header(PublishSignatureV1.keyHeader) ?? signed.header(PublishSignatureV2.keyHeader) else { return false }
        let changed = await sites.refresh(siteKey: key)
        return changed || sites.record(key: key) != nil
    }

    /// The same, synchronously, for the event-loop fast path (an in-process broker: nothing to wait for).
    func publishNow(_ signed: SignedRequest, batch: Bool, _ engine: SynchronousEngine) -> (status: HTTPResponse.Status, json: JSONValue) {
        switch planPublish(signed, batch: batch) {
        case .reply(let status, let json):
            return (status, json)
        case .single(let siteID, let p, _):
            return publishOutcome(engine.publish(siteID: siteID, channel: p.channel, event: p.event, data: p.data,
                                                 idempotencyKey: p.idempotencyKey))
        case .batch(let siteID, let items, _):
            var results: [JSONValue] = []
            for item in items {
                guard let item else { results.append(Self.invalidBatchItem); continue }
                results.append(publishOutcome(engine.publish(siteID: siteID, channel: item.channel, event: item.event,
                                                             data: item.data, idempotencyKey: item.idempotencyKey)).json)
            }
            return (.ok, .object([("results", .array(results))]))
        }
    }

    static func receiptJSON(_ r: PublishReceipt) -> JSONValue {
        .object([("ok", .bool(true)), ("channel", .string(r.channel)), ("offset", .number(String(r.position.offset))),
                 ("epoch", .string(r.position.epoch)), ("deliveries", .int(Int64(r.deliveries))), ("duplicate", .bool(r.duplicate))])
    }

    func handleStats(_ request: Request) async throws -> Response {
        let publisher: VerifiedPublisher
        switch verify(request, body: []) {
        case .accepted(let p): publisher = p
        case .refused(let r): return r
        }
        guard let site = sites.site(key: publisher.siteKey), let stats = engine.stats(siteID: site.siteID) else {
            throw RelayHTTPError(.siteNotFound, "site not found", status: .notFound)
        }
        return HTTPReply.json(.object([("active_connections", .int(Int64(stats.activeConnections))),
                                       ("max_connections", .int(Int64(stats.maxConnections)))]))
    }

    func health() -> Response {
        HTTPReply.json(.object([
            ("status", .string(shuttingDown.load(ordering: .relaxed) ? "shutting_down" : "ok")),
            ("active_connections", .int(Int64(engine.connectionCount))),
            ("published_messages", .int(Int64(publishedMessages.load(ordering: .relaxed)))),
            ("channels", .int(Int64(engine.channelCount))),
            ("sites", .int(Int64(sites.list().count))),
            ("uptime_s", .int(Int64(Date().timeIntervalSince(startedAt)))),
            ("version", .string(RelayVersion.description)),
            // The relay's clock, for `relayctl doctor`'s skew check (tokens and signatures depend on it).
            ("time_ms", .int(SystemClock.nowMs)),
        ]))
    }
}

/// Hummingbird's CORS middleware for the origin now configured (`--cors-origin`,
/// reloadable with `SIGHUP`).
/// The middleware is built once per origin, not per request.
final class ReloadableCORSMiddleware: RouterMiddleware, Sendable {
    typealias Context = RelayRequestContext
    let relay: RelayService
    private let current: Mutex<(origin: String, cors: CORSMiddleware<RelayRequestContext>)>

    init(relay: RelayService) {
        self.relay = relay
        let origin = relay.settings.corsAllowOrigin
        current = Mutex((origin, Self.cors(origin)))
    }

    static func cors(_ origin: String) -> CORSMiddleware<RelayRequestContext> {
        CORSMiddleware(allowOrigin: origin == "*" ? .all : .custom(origin),
                       allowHeaders: [.contentType, .authorization, .init("Last-Event-ID")!],
                       allowMethods: [.get, .post, .options])
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let origin = relay.settings.corsAllowOrigin
        let cors = current.withLock { c in
            if c.origin != origin { c = (origin, Self.cors(origin)) }
            return c.cors
        }
        return try await cors.handle(request, context: context, next: next)
    }
}
