import Foundation
import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import RelayCrypto
import RelayJSON

/// Checks a running relayd from the operator's side, the way WordPress and
/// browsers reach it: reachable, TLS, clock, WebSocket upgrade, SSE
/// buffering, site credentials. Each check says what to fix in plain words.
public struct RelayDoctor: Sendable {
    public enum Outcome: String, Sendable { case ok, warning, failed, skipped }

    public struct Check: Sendable {
        public let name: String
        public let outcome: Outcome
        /// What was seen, and for a warning or failure what to do about it.
        public let detail: String
    }

    public var baseURL: String
    public var siteKey: String?
    public var publishSecret: String?
    public var jwtSecret: String?
    /// A PEM file of extra trusted roots (a self-signed or private CA).
    public var caFile: String?
    public var timeout: Double
    /// relayd's `--token-leeway`; a larger clock difference breaks tokens.
    public var tokenLeewaySeconds: Double = 5
    /// relayd's `--sse-heartbeat`: a buffering proxy holds the first bytes about this long or longer.
    public var sseHeartbeatSeconds: Double = 15

    public init(baseURL: String, siteKey: String? = nil, publishSecret: String? = nil, jwtSecret: String? = nil,
                caFile: String? = nil, timeout: Double = 8) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.siteKey = siteKey
        self.publishSecret = publishSecret
        self.jwtSecret = jwtSecret
        self.caFile = caFile
        self.timeout = timeout
    }

    var isTLS: Bool { baseURL.lowercased().hasPrefix("https://") }
    var host: String { URL(string: baseURL)?.host ?? baseURL }

    /// Runs every check in order; `report` is called as each one finishes.
    public func run(report: @Sendable (Check) -> Void = { _ in }) async -> [Check] {
        let http = HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: .init(tlsConfiguration: tlsConfiguration ?? .makeClientConfiguration(),
                                                   timeout: .init(connect: .milliseconds(Int64(timeout * 1000)),
                                                                  read: .milliseconds(Int64(timeout * 1000)))))
        let checks = await runChecks(http, report: report)
        try? await http.shutdown()
        return checks
    }

    func runChecks(_ http: HTTPClient, report: @Sendable (Check) -> Void) async -> [Check] {
        var checks: [Check] = []
        func add(_ c: Check) { checks.append(c); report(c) }

        // 1. Reachable, and the clock (one request).
        let t0 = Date().timeIntervalSince1970
        let health: HTTPAnswer
        do {
            health = try await get(http, "/healthz")
        } catch {
            add(Check(name: "reachable", outcome: .failed, detail: Self.explainConnect(error, url: baseURL, tls: isTLS)))
            return checks
        }
        let t1 = Date().timeIntervalSince1970
        let body = try? JSONParser.parse(health.body)
        guard health.status == 200, body?["status"]?.stringValue == "ok" else {
            let hint = health.status == 502 || health.status == 504
                ? "the proxy answers but cannot reach relayd: is relayd running, and is the proxy's upstream address its --host/--port?"
                : health.status == 404 ? "this URL is not relayd (or the proxy does not forward /healthz to it)"
                : "relayd is not healthy (shutting down?)"
            add(Check(name: "reachable", outcome: .failed, detail: "GET /healthz answered HTTP \(health.status): \(hint)"))
            return checks
        }
        let version = body?["version"]?.stringValue.map { "relayd \($0)" } ?? "relayd (version not reported)"
        add(Check(name: "reachable", outcome: .ok, detail: "\(baseURL) answers /healthz: \(version), \(Int((t1 - t0) * 1000)) ms"))

        if isTLS {
            add(await certificateCheck())
        }

        if let serverMs = body?["time_ms"]?.int64Value {
            let skew = Double(serverMs) / 1000 - (t0 + t1) / 2
            let ahead = skew < 0 ? "ahead of" : "behind"
            let text = String(format: "%.1f s", abs(skew))
            if abs(skew) > tokenLeewaySeconds {
                add(Check(name: "clock", outcome: .failed, detail: "this machine is \(text) \(ahead) relayd's clock, more than the \(Int(tokenLeewaySeconds)) s tokens allow: WordPress's tokens and signatures will be refused at random. Turn on NTP on both machines (timedatectl set-ntp true)"))
            } else if abs(skew) > 1 {
                add(Check(name: "clock", outcome: .warning, detail: "this machine is \(text) \(ahead) relayd's clock; tokens allow \(Int(tokenLeewaySeconds)) s. Turn on NTP (timedatectl set-ntp true)"))
            } else {
                add(Check(name: "clock", outcome: .ok, detail: "within \(text) of relayd's clock"))
            }
        } else {
            add(Check(name: "clock", outcome: .skipped, detail: "relayd does not report its time (older than 0.9)"))
        }

        // 3. WebSocket upgrade, with a real token when we can mint one.
        let token = mintToken()
        add(await webSocketCheck(token: token))

        // 4. SSE buffering.
        if let token {
            add(await sseCheck(http, token: token))
        } else {
            add(Check(name: "sse", outcome: .skipped, detail: "needs --site-key and --jwt-secret to open a stream"))
        }

        // 5. Site credentials (WordPress's publish secret).
        if let siteKey, let publishSecret {
            let client = PublishClient(baseURL: baseURL, siteKey: siteKey, secret: publishSecret)
            do {
                let a = try await get(http, "/site/stats", headers: client.headers(method: "GET", path: "/site/stats", body: []))
                let error = (try? JSONParser.parse(a.body))?["error"]?.stringValue
                switch (a.status, error) {
                case (200, _):
                    add(Check(name: "site", outcome: .ok, detail: "the signed GET /site/stats is accepted: site key and publish secret are right"))
                case (_, "unknown_site_key"?):
                    add(Check(name: "site", outcome: .failed, detail: "relayd does not know this site key: register the site (relayctl site add, or the plugin's Connect button) or fix the key"))
                case (_, "invalid_signature"?):
                    add(Check(name: "site", outcome: .failed, detail: "the publish secret is wrong (or was rotated): copy the current one into WordPress"))
                case (_, "timestamp_out_of_window"?):
                    add(Check(name: "site", outcome: .failed, detail: "the signature's timestamp is outside relayd's window: fix the clock (see above)"))
                default:
                    add(Check(name: "site", outcome: .failed, detail: "signed GET /site/stats answered HTTP \(a.status) \(error ?? "")"))
                }
            } catch {
                add(Check(name: "site", outcome: .failed, detail: "signed GET /site/stats failed: \(error)"))
            }
        } else {
            add(Check(name: "site", outcome: .skipped, detail: "needs --site-key and --secret (the publish secret) to check the site's credentials"))
        }
        return checks
    }

    func get(_ http: HTTPClient, _ path: String, headers: [(String, String)] = []) async throws -> HTTPAnswer {
        var request = HTTPClientRequest(url: baseURL + path)
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        let response = try await http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        let body = try await response.body.collect(upTo: 1 << 20)
        return HTTPAnswer(status: Int(response.status.code), body: Array(body.readableBytesView))
    }

    func mintToken() -> String? {
        guard let siteKey, let jwtSecret else { return nil }
        let siteID = SHA256.hexDigest("site:" + siteKey)
        let now = Int64(Date().timeIntervalSince1970)
        let claims = JWTClaims(tenantID: SHA256.hexDigest("tenant:" + siteKey), siteID: siteID, userID: "relayctl-doctor",
                               allowedChannelPrefixes: ["site:\(siteID):doctor"], allowedPublishPrefixes: [],
                               version: 2, issuedAt: now, expiresAt: now + 120)
        return JWTSigner.hs256(secret: jwtSecret).sign(claims)
    }

    var tlsConfiguration: TLSConfiguration? {
        guard isTLS else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.additionalTrustRoots = [.file(caFile)] }
        return tls
    }

    var hostIsIP: Bool { host.first?.isNumber == true || host.contains(":") }

    // MARK: Checks

    func webSocketCheck(token: String?) async -> Check {
        // Without a token: upgrade, send a bad auth frame, expect relayd's 4001. With one: expect `subscribed`.
        let frame = token == nil ? #"{"type":"auth","token":"doctor"}"# : #"{"type":"subscribe","channels":["doctor"]}"#
        let path = "/ws" + (token.map { "?token=" + $0 } ?? "")
        let result: RawWebSocketProbe.Result
        do {
            result = try await withTimeout(timeout) { [self] in
                try await RawWebSocketProbe(host: host, port: port, tls: isTLS ? tlsConfiguration : nil, sni: hostIsIP ? nil : host)
                    .run(path: path, firstFrame: frame)
            }
        } catch {
            return Check(name: "websocket", outcome: .failed, detail: "WebSocket on /ws failed: \(error)")
        }
        switch result {
        case .refused(let status):
            let why: String
            switch status {
            case 307: why = "the proxy sent the upgrade on a kept-alive connection to relayd, which upgrades only a connection's first request: give /ws and /yjs/ an upstream without keepalive (see deploy/nginx/relayd.conf, deploy/caddy/Caddyfile)"
            case 400, 404, 426: why = "the proxy does not pass the Upgrade and Connection headers (see deploy/nginx/relayd.conf)"
            case 502, 504: why = "the proxy cannot reach relayd"
            default: why = "relayd (or the proxy) refused the upgrade"
            }
            return Check(name: "websocket", outcome: .failed, detail: "the upgrade on /ws answered HTTP \(status): \(why)")
        case .frames(let types, let close):
            if token == nil {
                if close == 4001 {
                    return Check(name: "websocket", outcome: .ok, detail: "the upgrade on /ws reaches relayd (it asked for a token, as expected without --jwt-secret)")
                }
                return Check(name: "websocket", outcome: .warning, detail: "upgraded, but relayd's answer was unexpected (close \(close.map(String.init) ?? "none"))")
            }
            if types.contains("subscribed") {
                return Check(name: "websocket", outcome: .ok, detail: "the upgrade on /ws works and a token signed with this JWT secret is accepted")
            }
            switch close {
            case 4001?: return Check(name: "websocket", outcome: .failed, detail: "the token was refused (4001): the JWT secret is wrong or was rotated; copy the current one into WordPress")
            case 4003?: return Check(name: "websocket", outcome: .failed, detail: "relayd does not know this site (4003): register it or fix the site key")
            default: return Check(name: "websocket", outcome: .failed, detail: "upgraded but not subscribed (close \(close.map(String.init) ?? "none"), frames \(types))")
            }
        }
    }

    var port: Int { URL(string: baseURL)?.port ?? (isTLS ? 443 : 80) }

    func sseCheck(_ http: HTTPClient, token: String) async -> Check {
        let limit = min(5, sseHeartbeatSeconds / 2)
        let started = Date()
        var request = HTTPClientRequest(url: baseURL + "/sse?channels=doctor&token=" + token)
        request.headers.add(name: "Accept", value: "text/event-stream")
        let sseRequest = request
        do {
            let (status, first) = try await withTimeout(limit + 1) {
                let response = try await http.execute(sseRequest, timeout: .seconds(Int64(limit + 5)))
                var iterator = response.body.makeAsyncIterator()
                let chunk = try await iterator.next()
                return (Int(response.status.code), chunk.map { String(buffer: $0) } ?? "")
            }
            let ms = Int(Date().timeIntervalSince(started) * 1000)
            switch status {
            case 200:
                if Double(ms) / 1000 > limit {
                    return Check(name: "sse", outcome: .failed, detail: "the first bytes of /sse took \(ms) ms: a proxy is buffering the stream (nginx: proxy_buffering off; see deploy/nginx/relayd.conf)")
                }
                return Check(name: "sse", outcome: .ok, detail: "the first bytes of /sse arrived after \(ms) ms (not buffered)\(first.hasPrefix("retry:") ? "" : ", but they were not relayd's")")
            case 401:
                return Check(name: "sse", outcome: .failed, detail: "/sse refused the token (HTTP 401): the JWT secret is wrong or was rotated")
            case 403:
                return Check(name: "sse", outcome: .failed, detail: "/sse: relayd does not know this site (HTTP 403): register it or fix the site key")
            default:
                return Check(name: "sse", outcome: .failed, detail: "/sse answered HTTP \(status): \(first.prefix(120))")
            }
        } catch is DoctorTimeout {
            return Check(name: "sse", outcome: .failed, detail: "no bytes from /sse within \(Int(limit + 1)) s: a proxy is buffering the stream (nginx: proxy_buffering off, or X-Accel-Buffering honoured; Caddy: flush_interval -1)")
        } catch {
            return Check(name: "sse", outcome: .failed, detail: "/sse failed: \(error)")
        }
    }

    func certificateCheck() async -> Check {
        do {
            var tls = tlsConfiguration ?? TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            let context = try NIOSSLContext(configuration: tls)
            let host = self.host
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let handshake = loop.makePromise(of: Void.self)
            let channel = try await ClientBootstrap(group: loop)
                .connectTimeout(.seconds(Int64(timeout)))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = try NIOSSLClientHandler(context: context, serverHostname: host.first?.isNumber == true ? nil : host)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake))
                    }
                }
                .connect(host: host, port: port).get()
            defer { channel.close(promise: nil) }
            let result = handshake.futureResult
            try await withTimeout(timeout) { try await result.get() }
            let cert = try await channel.nioSSL_peerCertificate().get()
            guard let cert else { return Check(name: "tls", outcome: .failed, detail: "no certificate presented") }
            let days = (Double(cert.notValidAfter) - Date().timeIntervalSince1970) / 86_400
            if days < 14 {
                let n = max(0, Int(days.rounded(.down)))
                return Check(name: "tls", outcome: .warning, detail: "the certificate is valid but expires in \(n == 0 ? "less than a day" : n == 1 ? "1 day" : "\(n) days"): renew it (certbot renew)")
            }
            return Check(name: "tls", outcome: .ok, detail: String(format: "the certificate is valid for %@ (expires in %.0f days)", host, days))
        } catch {
            return Check(name: "tls", outcome: .failed, detail: "TLS to \(host):\(port) failed (\(error)): the certificate must be valid, unexpired and for this name; a self-signed one needs --ca-file")
        }
    }

    static func explainConnect(_ error: any Error, url: String, tls: Bool) -> String {
        let tlsHint = "The certificate must be valid, unexpired and for this name; a self-signed one needs --ca-file"
        let text = "\(error)"
        if error is NIOSSLError || error is BoringSSLError || text.contains("handshakeFailed") || text.contains("certificate") {
            return "cannot reach \(url): TLS failed (\(text)). \(tlsHint)"
        }
        if let e = error as? HTTPClientError, e == .connectTimeout || e == .deadlineExceeded || e == .readTimeout {
            return "cannot reach \(url): timed out. A firewall may drop the traffic, or the address is wrong"
        }
        if text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("connect(descriptor:") {
            return "cannot reach \(url): connection refused. Is relayd (or the proxy) running on this port, and is the port open in the firewall?"
        }
        if text.lowercased().contains("ssl") {
            return "cannot reach \(url): TLS failed. \(tlsHint)"
        }
        return "cannot reach \(url): \(text)"
    }
}

// MARK: Helpers

private final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = Any
    let promise: EventLoopPromise<Void>
    init(promise: EventLoopPromise<Void>) { self.promise = promise }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? TLSUserEvent, case .handshakeCompleted = e { promise.succeed(()) }
        context.fireUserInboundEventTriggered(event)
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }
    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}

struct DoctorTimeout: Error, CustomStringConvertible {
    var description: String { "timed out" }
}

func withTimeout<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            throw DoctorTimeout()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A WebSocket handshake and a few frames written by hand on a NIO channel, so the
/// doctor sees the HTTP status of a refused upgrade (a 307 from a proxy reusing a
/// connection, a 404 from a proxy that drops the Upgrade header) and can send no
/// SNI for an IP address.
struct RawWebSocketProbe {
    enum Result { case refused(status: Int), frames(types: [String], close: Int?) }
    let host: String, port: Int, tls: TLSConfiguration?, sni: String?

    func run(path: String, firstFrame: String) async throws -> Result {
        let tlsContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let sni = self.sni
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tlsContext, serverHostname: sni))
                    }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            let hostHeader = port == 443 || port == 80 ? host : "\(host):\(port)"
            let request = "GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nUser-Agent: relayctl-doctor\r\n\r\n"
            try await outbound.write(ByteBuffer(string: request))
            var buffer: [UInt8] = []
            var iterator = inbound.makeAsyncIterator()
            // The response head.
            var headEnd: Int?
            while headEnd == nil {
                guard let chunk = try await iterator.next() else { return .refused(status: 0) }
                buffer += chunk.readableBytesView
                headEnd = Self.find([13, 10, 13, 10], in: buffer).map { $0 + 4 }
            }
            let head = String(decoding: buffer[..<headEnd!], as: UTF8.self)
            let status = head.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
            guard status == 101 else { return .refused(status: status) }
            buffer.removeFirst(headEnd!)
            try await outbound.write(ByteBuffer(bytes: Self.maskedTextFrame(firstFrame)))
            var types: [String] = []
            while true {
                while let (opcode, payload, used) = Self.frame(in: buffer) {
                    buffer.removeFirst(used)
                    switch opcode {
                    case 0x1:
                        if let type = (try? JSONParser.parse(payload))?["type"]?.stringValue {
                            if type == "ping" { try await outbound.write(ByteBuffer(bytes: Self.maskedTextFrame(#"{"type":"pong"}"#))); continue }
                            types.append(type)
                            if type == "subscribed" { return .frames(types: types, close: nil) }
                        }
                    case 0x8:
                        let code = payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : nil
                        return .frames(types: types, close: code)
                    default: break
                    }
                }
                guard let chunk = try await iterator.next() else { return .frames(types: types, close: nil) }
                buffer += chunk.readableBytesView
            }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }

    static func maskedTextFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        var out: [UInt8] = [0x81]
        if payload.count < 126 {
            out.append(0x80 | UInt8(payload.count))
        } else {
            out.append(0x80 | 126)
            out += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        out += mask
        for (i, b) in payload.enumerated() { out.append(b ^ mask[i % 4]) }
        return out
    }

    /// One unmasked server frame at the start of `bytes`: opcode, payload, bytes used.
    static func frame(in bytes: [UInt8]) -> (UInt8, [UInt8], Int)? {
        guard bytes.count >= 2 else { return nil }
        let opcode = bytes[0] & 0x0F
        var length = Int(bytes[1] & 0x7F), offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3]); offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }; offset = 10
        }
        guard bytes.count >= offset + length else { return nil }
        return (opcode, Array(bytes[offset..<(offset + length)]), offset + length)
    }
}
