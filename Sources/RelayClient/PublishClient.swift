import RelayJSON
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RelayCrypto

/// An HTTP answer.
public struct HTTPAnswer: Sendable {
    public let status: Int
    public let body: [UInt8]
    public var json: JSONValue? { try? JSONParser.parse(body) }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Errors from the clients.
public struct RelayClientError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Minimal HTTP over AsyncHTTPClient (SwiftNIO): no libcurl, the system's trust store for HTTPS.
public enum RelayHTTP {
    /// Largest answer read.
    public static let maxAnswerBytes = 64 << 20

    public static func send(method: String, url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
                            timeout: Double = 10) async throws -> HTTPAnswer {
        guard URL(string: url) != nil else { throw RelayClientError("invalid URL \(url)") }
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        let data = try await response.body.collect(upTo: maxAnswerBytes)
        return HTTPAnswer(status: Int(response.status.code), body: Array(data.readableBytesView))
    }
}

/// Publishes to relayd the way WordPress does: signed `POST /publish`.
public struct PublishClient: Sendable {
    public var baseURL: String
    public var siteKey: String
    public var secret: String
    public var keyID: String
    public var scheme: PublishSignatureScheme

    public init(baseURL: String, siteKey: String, secret: String, keyID: String = "k1", scheme: PublishSignatureScheme = .v1) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.siteKey = siteKey
        self.secret = secret
        self.keyID = keyID
        self.scheme = scheme
    }

    /// Signed headers for `body` sent to `path`.
    public func headers(method: String, path: String, body: [UInt8]) -> [(String, String)] {
        let ts = Int64(Date().timeIntervalSince1970 * 1000)
        switch scheme {
        case .v1: return PublishSignatureV1.headers(siteKey: siteKey, secret: secret, body: body, timestampMs: ts)
        case .v2: return PublishSignatureV2.headers(method: method, path: path, siteKey: siteKey, keyID: keyID, secret: secret, body: body, timestampMs: ts)
        }
    }

    /// The publish body `{"channel","event","data"[,"idempotency_key"]}` with `data` spliced verbatim.
    public static func body(channel: String, event: String, dataJSON: [UInt8], idempotencyKey: String? = nil) -> [UInt8] {
        var out = Array(#"{"channel":"#.utf8)
        JSONValue.writeString(channel, into: &out)
        out += Array(#","event":"#.utf8)
        JSONValue.writeString(event, into: &out)
        out += Array(#","data":"#.utf8)
        out += dataJSON
        if let idempotencyKey {
            out += Array(#","idempotency_key":"#.utf8)
            JSONValue.writeString(idempotencyKey, into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Publishes one event; `dataJSON` must be JSON.
    public func publish(channel: String, event: String, dataJSON: [UInt8], idempotencyKey: String? = nil) async throws -> HTTPAnswer {
        try await post(path: "/publish", body: Self.body(channel: channel, event: event, dataJSON: dataJSON, idempotencyKey: idempotencyKey))
    }

    /// Signed POST of raw bytes.
    public func post(path: String, body: [UInt8]) async throws -> HTTPAnswer {
        var h = headers(method: "POST", path: path, body: body)
        h.append(("Content-Type", "application/json"))
        return try await RelayHTTP.send(method: "POST", url: baseURL + path, headers: h, body: body)
    }

    /// `GET /site/stats`, signed over the empty body.
    public func stats() async throws -> HTTPAnswer {
        try await RelayHTTP.send(method: "GET", url: baseURL + "/site/stats", headers: headers(method: "GET", path: "/site/stats", body: []))
    }
}
