import Foundation
import Hummingbird
import NIOCore
import RelayCore
import RelayCrypto

/// JSON bodies and errors in the contract's shape: `{"error":"<code>","message":"…"}`.
enum HTTPReply {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }

    static func error(_ code: String, _ message: String, status: HTTPResponse.Status) -> Response {
        json(.object([("error", .string(code)), ("message", .string(message))]), status: status)
    }

    static func text(_ bytes: [UInt8], contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

extension RelayService {
    func addHTTPRoutes(to router: Router<RelayRequestContext>) {
        router.post("/publish") { request, _ in await self.handlePublish(request, batch: false) }
        router.post("/publish/batch") { request, _ in await self.handlePublish(request, batch: true) }
        router.get("/site/stats") { request, _ in await self.handleStats(request) }
        router.get("/healthz") { _, _ in self.health() }
        router.get("/readyz") { _, _ in
            self.shuttingDown.load(ordering: .relaxed)
                ? HTTPReply.json(.object([("ready", .bool(false))]), status: .serviceUnavailable)
                : HTTPReply.json(.object([("ready", .bool(true))]))
        }
        router.get("/metrics") { _, _ in
            HTTPReply.text(self.metricsRegistry.emitToBuffer(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/sse") { request, context in self.handleSSE(request, ip: context.remoteIP) }
        addAdminRoutes(to: router)
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
            return .accepted(try publishVerifier.verify(Self.signedRequest(request, body: body), nowMs: Clock.nowMs))
        } catch {
            metrics.httpPublishRejections.increment(code: error.code)
            return .refused(HTTPReply.error(error.code, Self.message(for: error), status: Self.status(for: error)))
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

    func handlePublish(_ request: Request, batch: Bool) async -> Response {
        guard let body = await readBody(request, limit: configuration.maxPublishBodyBytes) else {
            return HTTPReply.error("payload_too_large", "body larger than \(configuration.maxPublishBodyBytes) bytes", status: .contentTooLarge)
        }
        let publisher: VerifiedPublisher
        switch verify(request, body: body) {
        case .accepted(let p): publisher = p
        case .refused(let response): return response
        }
        guard let site = sites.site(key: publisher.siteKey) else {
            return HTTPReply.error("site_not_found", "site not found", status: .notFound)
        }
        if batch { return await publishBatch(body, siteID: site.siteID) }
        guard let p = PublishBody.parse(body) else {
            return HTTPReply.error("invalid_body", "expected {\"channel\",\"event\",\"data\"}", status: .badRequest)
        }
        switch await engine.publish(siteID: site.siteID, channel: p.channel, event: p.event, data: p.data, idempotencyKey: p.idempotencyKey) {
        case .success(let receipt):
            if !receipt.duplicate { publishedMessages.wrappingAdd(1, ordering: .relaxed) }
            metrics.httpPublishes.increment()
            return HTTPReply.json(Self.receiptJSON(receipt))
        case .failure(let e):
            metrics.httpPublishRejections.increment(code: e.code)
            return HTTPReply.error(e.code, "publish refused", status: HTTPResponse.Status(code: e.httpStatus))
        }
    }

    static func receiptJSON(_ r: PublishReceipt) -> JSONValue {
        .object([("ok", .bool(true)), ("channel", .string(r.channel)), ("offset", .number(String(r.position.offset))),
                 ("epoch", .string(r.position.epoch)), ("deliveries", .int(Int64(r.deliveries))), ("duplicate", .bool(r.duplicate))])
    }

    /// `POST /publish/batch`: `{"publications":[{channel,event,data[,idempotency_key]},…]}` or a bare array,
    /// signed as one body. Each item's `data` is passed on byte for byte, and each item is answered in
    /// order; one failure does not stop the others.
    func publishBatch(_ body: [UInt8], siteID: String) async -> Response {
        let ranges: [Range<Int>]
        do { ranges = try JSONParser.arrayElementRanges(body, member: "publications") } catch {
            return HTTPReply.error("invalid_body", "expected an array of publications: \(error)", status: .badRequest)
        }
        guard ranges.count <= configuration.maxBatchSize else {
            return HTTPReply.error("batch_too_large", "at most \(configuration.maxBatchSize) publications per batch", status: .contentTooLarge)
        }
        var results: [JSONValue] = []
        for range in ranges {
            guard let item = PublishBody.parse(Array(body[range])) else {
                results.append(.object([("error", .string("invalid_body")), ("message", .string("expected channel, event and data"))]))
                continue
            }
            switch await engine.publish(siteID: siteID, channel: item.channel, event: item.event, data: item.data,
                                        idempotencyKey: item.idempotencyKey) {
            case .success(let r):
                if !r.duplicate { publishedMessages.wrappingAdd(1, ordering: .relaxed) }
                metrics.httpPublishes.increment()
                results.append(Self.receiptJSON(r))
            case .failure(let e):
                metrics.httpPublishRejections.increment(code: e.code)
                results.append(.object([("error", .string(e.code)), ("message", .string("publish refused"))]))
            }
        }
        return HTTPReply.json(.object([("results", .array(results))]))
    }

    func handleStats(_ request: Request) async -> Response {
        let publisher: VerifiedPublisher
        switch verify(request, body: []) {
        case .accepted(let p): publisher = p
        case .refused(let r): return r
        }
        guard let site = sites.site(key: publisher.siteKey), let stats = engine.stats(siteID: site.siteID) else {
            return HTTPReply.error("site_not_found", "site not found", status: .notFound)
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
        ]))
    }
}
