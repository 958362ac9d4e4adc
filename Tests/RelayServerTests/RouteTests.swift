import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RelayCrypto
import RelayJSON
import RelayProtocol
@testable import RelayServer
import RelaySites
import Testing

/// The HTTP routes in process (Hummingbird's router test client, no sockets):
/// route collections, the admin-key middleware, errors as `HTTPResponseError`
/// in the protocol's `{"error","message"}` shape.
@Suite("HTTP routes in process")
struct RouteTests {
    struct Fixture {
        let relay: RelayService
        let site: SiteRecord
        let directory: URL

        init(configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-routes-\(UUID().uuidString)")
            var c = ServerConfiguration()
            c.dataDirectory = directory.path
            c.adminAPIKey = "admin-key-for-tests"
            c.yjs.persistent = false
            configure(&c)
            relay = try RelayService(configuration: c)
            site = try #require(try await relay.ensureDevSite())
        }

        var secret: String { site.publishSecrets[0].secret }

        func signed(_ body: String) -> HTTPFields {
            var h = HTTPFields()
            for (k, v) in PublishSignatureV1.headers(siteKey: site.siteKey, secret: secret, body: Array(body.utf8),
                                                     timestampMs: Int64(Date().timeIntervalSince1970 * 1000)) {
                h[HTTPField.Name(k)!] = v
            }
            h[.contentType] = "application/json"
            return h
        }

        func test(_ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void) async throws {
            defer { try? FileManager.default.removeItem(at: directory) }
            let app = Application(router: relay.makeRouter())
            try await app.test(.router, body)
        }
    }

    /// The response body as JSON (`null` when it is not JSON, which fails the expectations).
    static func json(_ response: TestResponse) -> JSONValue {
        (try? JSONParser.parse(Array(response.body.readableBytesView))) ?? .null
    }

    @Test func operationsRoutes() async throws {
        let fx = try await Fixture()
        try await fx.test { client in
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .ok)
                #expect(Self.json(r)["status"]?.stringValue == "ok")
                #expect(Self.json(r)["sites"]?.int64Value == 1)
            }
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(Self.json(r)["ready"]?.boolValue == true)
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                #expect(String(buffer: r.body).contains("relay_connections"))
            }
        }
    }

    @Test func adminRoutesNeedTheKey() async throws {
        let fx = try await Fixture()
        try await fx.test { client in
            for (uri, method) in [("/api/sites", HTTPRequest.Method.get), ("/api/sites/add", .post), ("/api/sites/rotate", .post),
                                  ("/api/sites/remove", .post), ("/api/sites/register", .post)] {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(string: "{}")) { r in
                    #expect(r.status == .unauthorized, "\(uri)")
                    #expect(Self.json(r)["error"]?.stringValue == ErrorCode.invalidAPIKey.rawValue, "\(uri)")
                }
                var wrong = HTTPFields()
                wrong[.authorization] = "Bearer admin-key-for-test"
                try await client.execute(uri: uri, method: method, headers: wrong) { r in
                    #expect(r.status == .unauthorized, "\(uri): a near-miss key")
                }
            }
            var auth = HTTPFields()
            auth[.authorization] = "Bearer admin-key-for-tests"
            try await client.execute(uri: "/api/sites", method: .get, headers: auth) { r in
                #expect(r.status == .ok)
                let sites = Self.json(r)["sites"]?.arrayValue ?? []
                #expect(sites.count == 1)
                #expect(!String(buffer: r.body).contains(fx.secret), "the list never shows secrets")
            }
            try await client.execute(uri: "/api/sites/register", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"site_url":"https://example.com","site_name":"Ex"}"#)) { r in
                #expect(r.status == .ok)
                let j = Self.json(r)
                #expect(j["site_key"]?.stringValue?.count == 32)
                #expect(j["publish_secret"]?.stringValue != nil && j["jwt_secret"]?.stringValue != nil)
            }
            try await client.execute(uri: "/api/sites/add", method: .post, headers: auth, body: ByteBuffer(string: "{not json")) { r in
                #expect(r.status == .badRequest)
                #expect(Self.json(r)["error"]?.stringValue == "invalid_body")
            }
            try await client.execute(uri: "/api/sites/rotate", method: .post, headers: auth,
                                     body: ByteBuffer(string: #"{"site_key":"00000000000000000000000000000000"}"#)) { r in
                #expect(r.status == .notFound)
                #expect(Self.json(r)["error"]?.stringValue == "not_found")
            }
        }
    }

    @Test func publishRoutes() async throws {
        let fx = try await Fixture { $0.maxPublishBodyBytes = 4096 }
        try await fx.test { client in
            let body = #"{"channel":"events","event":"e","data":{"n":1}}"#
            try await client.execute(uri: "/publish", method: .post, headers: fx.signed(body), body: ByteBuffer(string: body)) { r in
                #expect(r.status == .ok)
                #expect(Self.json(r)["offset"]?.int64Value == 1)
            }
            try await client.execute(uri: "/publish", method: .post, body: ByteBuffer(string: body)) { r in
                #expect(r.status == .badRequest, "unsigned")
                #expect(Self.json(r)["error"]?.stringValue == "malformed_request")
            }
            let dup = #"{"channel":"events","event":"e","data":{"a":1,"a":2}}"#
            try await client.execute(uri: "/publish", method: .post, headers: fx.signed(dup), body: ByteBuffer(string: dup)) { r in
                #expect(r.status == .badRequest)
                #expect(Self.json(r)["error"]?.stringValue == "invalid_body")
            }
            let batch = #"{"publications":[{"channel":"events","event":"e","data":1},{"channel":"events"}]}"#
            try await client.execute(uri: "/publish/batch", method: .post, headers: fx.signed(batch), body: ByteBuffer(string: batch)) { r in
                #expect(r.status == .ok)
                let results = Self.json(r)["results"]?.arrayValue ?? []
                #expect(results.count == 2)
                #expect(results.first?["ok"]?.boolValue == true)
                #expect(results.last?["error"]?.stringValue == "invalid_body")
            }
            let big = #"{"channel":"events","event":"e","data":""# + String(repeating: "x", count: 5000) + #""}"#
            try await client.execute(uri: "/publish", method: .post, headers: fx.signed(big), body: ByteBuffer(string: big)) { r in
                #expect(r.status == .contentTooLarge)
                #expect(Self.json(r)["error"]?.stringValue == "payload_too_large")
            }
            try await client.execute(uri: "/site/stats", method: .get, headers: fx.signed("")) { r in
                #expect(r.status == .ok)
                #expect(Self.json(r)["active_connections"]?.int64Value == 0)
            }
        }
    }

    @Test func sseAndUnregisterRefusals() async throws {
        let fx = try await Fixture()
        try await fx.test { client in
            try await client.execute(uri: "/sse?channels=events", method: .get) { r in
                #expect(r.status == .unauthorized)
                #expect(Self.json(r)["error"]?.stringValue == "invalid_token")
            }
            try await client.execute(uri: "/sse?token=a.b.c", method: .get) { r in
                #expect(r.status == .unauthorized)
            }
            try await client.execute(uri: "/api/sites/unregister", method: .post,
                                     body: ByteBuffer(string: #"{"site_key":"\#(fx.site.siteKey)","publish_secret":"nope"}"#)) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(uri: "/api/sites/unregister", method: .post,
                                     body: ByteBuffer(string: #"{"site_key":"\#(fx.site.siteKey)","publish_secret":"\#(fx.secret)"}"#)) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(Self.json(r)["status"]?.stringValue == "ok")
            }
        }
    }
}

@Suite struct YjsKeepHistoryTests {
    /// `--yjs-keep-history` prefixes match the room part of the store key (`site:{id}:yjs:{room}`),
    /// byte for byte; `*` matches every room; no prefixes keep nothing.
    @Test func roomPrefixes() {
        var c = YjsConfiguration()
        #expect(!c.keepsHistory(storeKey: "site:abc:yjs:postType/post:1"))
        c.keepHistoryRooms = ["postType/wp_block:", "drafts/"]
        #expect(c.keepsHistory(storeKey: "site:abc:yjs:postType/wp_block:7"))
        #expect(c.keepsHistory(storeKey: "site:abc:yjs:drafts/x"))
        #expect(!c.keepsHistory(storeKey: "site:abc:yjs:postType/post:1"))
        #expect(!c.keepsHistory(storeKey: "site:abc:yjs:Drafts/x"))
        c.keepHistoryRooms = ["*"]
        #expect(c.keepsHistory(storeKey: "site:abc:yjs:anything"))
    }
}
