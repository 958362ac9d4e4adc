import Foundation
import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import RelayCrypto
import RelayJSON
import HummingbirdWSClient

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

    /// The WebSocket client always sends the URL's host as SNI, which TLS forbids for an IP
    /// address: for an IP URL it sends a placeholder name and skips only the name match (the
    /// `tls` check has verified the certificate for the address); the chain is still verified.
    var hostIsIP: Bool { host.first?.isNumber == true || host.contains(":") }
    var wsConfiguration: WebSocketClientConfiguration {
        hostIsIP && isTLS ? .init(sniHostname: "relayd.invalid") : .init()
    }
    var wsTLSConfiguration: TLSConfiguration? {
        guard var tls = tlsConfiguration else { return nil }
        if hostIsIP { tls.certificateVerification = .noHostnameVerification }
        return tls
    }

    // MARK: Checks

    func webSocketCheck(token: String?) async -> Check {
        let ws = (isTLS ? "wss" : "ws") + baseURL.drop { $0 != ":" }
        // Without a token: upgrade, send a bad auth frame, expect relayd's 4001. With one: expect `subscribed`.
        let url = ws + "/ws" + (token.map { "?token=" + $0 } ?? "")
        let frame = token == nil ? #"{"type":"auth","token":"doctor"}"# : #"{"type":"subscribe","channels":["doctor"]}"#
        let seen = SeenBox()
        do {
            let close = try await withTimeout(timeout) {
                try await WebSocketClient.connect(url: url, configuration: wsConfiguration, tlsConfiguration: wsTLSConfiguration,
                                                  logger: Logger(label: "doctor")) { inbound, outbound, _ in
                    try await outbound.write(.text(frame))
                    for try await message in inbound.messages(maxSize: 1 << 16) {
                        if case .text(let s) = message, let v = try? JSONParser.parse(s), let type = v["type"]?.stringValue {
                            seen.set(type)
                            if type == "subscribed" || type == "error" { try await outbound.close(.normalClosure, reason: nil); return }
                        }
                    }
                }
            }
            let code = close.map { WebSocketSubscriber.code($0.closeCode) }
            if token == nil {
                if code == 4001 {
                    return Check(name: "websocket", outcome: .ok, detail: "the upgrade on /ws reaches relayd (it asked for a token, as expected without --jwt-secret)")
                }
                return Check(name: "websocket", outcome: .warning, detail: "upgraded, but relayd's answer was unexpected (close \(code.map(String.init) ?? "none"))")
            }
            switch seen.value {
            case "subscribed"?:
                return Check(name: "websocket", outcome: .ok, detail: "the upgrade on /ws works and a token signed with this JWT secret is accepted")
            default:
                if code == 4001 {
                    return Check(name: "websocket", outcome: .failed, detail: "the token was refused (4001): the JWT secret is wrong or was rotated; copy the current one into WordPress")
                }
                if code == 4003 {
                    return Check(name: "websocket", outcome: .failed, detail: "relayd does not know this site (4003): register it or fix the site key")
                }
                return Check(name: "websocket", outcome: .failed, detail: "upgraded but not subscribed (close \(code.map(String.init) ?? "none"), last frame \(seen.value ?? "none"))")
            }
        } catch {
            let text = "\(error)"
            if text.contains("unexpected") || text.contains("upgrade") || text.contains("404") || text.contains("400") || text.contains("Upgrade") {
                return Check(name: "websocket", outcome: .failed, detail: "the WebSocket upgrade on /ws did not reach relayd (\(text)): the proxy must pass the Upgrade and Connection headers (see deploy/nginx/relayd.conf)")
            }
            return Check(name: "websocket", outcome: .failed, detail: "WebSocket on /ws failed: \(text)")
        }
    }

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
        let port = URL(string: baseURL)?.port ?? 443
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

private final class SeenBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: String?
    var value: String? { lock.withLock { _value } }
    func set(_ v: String) { lock.withLock { _value = v } }
}

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
