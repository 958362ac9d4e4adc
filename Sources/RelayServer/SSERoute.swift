import RelayWebSocket
import RelayProtocol
import RelayJSON
import Foundation
import Hummingbird
import NIOCore
import RelayCore
import RelayCrypto

/// Last-Event-ID for a multi-channel stream: the position of every channel of
/// the stream, so a reconnect recovers all of them.
///
/// Format: `m1,<offset>:<epoch>:<channel>,…` with `%`, `,` and bytes outside
/// printable ASCII in the channel percent-encoded. A single-channel id
/// (`<offset>:<epoch>:<channel>`, RelayCore's own) is accepted too.
public enum StreamEventID {
    public static func format(_ positions: [(channel: String, position: StreamPosition)]) -> String {
        var s = "m1"
        for (channel, p) in positions {
            s += ",\(p.offset):\(p.epoch):\(escape(channel))"
        }
        return s
    }

    public static func parse(_ id: String) -> [String: StreamPosition] {
        if id.hasPrefix("m1") {
            var out: [String: StreamPosition] = [:]
            for part in id.split(separator: ",").dropFirst() {
                let f = part.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard f.count == 3, let offset = UInt64(f[0]), !f[1].isEmpty, let ch = unescape(String(f[2])), !ch.isEmpty else { continue }
                out[ch] = StreamPosition(offset: offset, epoch: String(f[1]))
            }
            return out
        }
        if let (ch, p) = SSEEventID.parse(id) { return [ch: p] }
        return [:]
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            if b > 0x20 && b < 0x7f && b != UInt8(ascii: "%") && b != UInt8(ascii: ",") { out.unicodeScalars.append(Unicode.Scalar(b)) }
            else { out += String(format: "%%%02X", b) }
        }
        return out
    }

    static func unescape(_ s: String) -> String? {
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                bytes.append(v); it = it.dropFirst(2)
            } else { bytes.append(b) }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

extension RelayService {
    /// `GET /sse?token=<JWT>&channels=a,b,c`: receive-only stream, framing chosen by the token's `v`.
    func handleSSE(_ request: Request, ip: String) throws -> Response {
        guard !shuttingDown.load(ordering: .relaxed) else {
            throw RelayHTTPError(.shuttingDown, "server shutting down", status: .serviceUnavailable)
        }
        guard let token = Self.token(from: request) else {
            throw RelayHTTPError(.invalidToken, "token required", status: .unauthorized)
        }
        let grant: ConnectionGrant
        switch tokens.grant(for: token, sse: true) {
        case .success(let g): grant = g
        case .failure(let r):
            throw r.code == .siteNotFound
                ? RelayHTTPError(.siteNotFound, r.reason, status: .forbidden)
                : RelayHTTPError(.invalidToken, r.reason, status: .unauthorized)
        }
        if let stats = engine.stats(siteID: grant.siteID), stats.activeConnections >= stats.maxConnections {
            throw RelayHTTPError(.connectionLimit, "site connection limit reached", status: .tooManyRequests)
        }
        let channels = (request.uri.queryParameters.get("channels") ?? "")
            .split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let lastEventID = request.headers[.init("Last-Event-ID")!] ?? request.uri.queryParameters.get("lastEventId")
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        headers[.init("X-Accel-Buffering")!] = "no"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await self.streamSSE(writer: &writer, grant: grant, channels: channels, lastEventID: lastEventID, ip: ip)
        })
    }

    func streamSSE(writer: inout any ResponseBodyWriter, grant: ConnectionGrant, channels: [String], lastEventID: String?, ip: String) async throws {
        let limits = settings
        if let refusal = sessions.admit(ip: ip, maxTotal: limits.maxConnections, maxPerIP: limits.maxConnectionsPerIP) {
            let code = (refusal == .serverFull ? ErrorCode.serverFull : .tooManyConnectionsFromAddress).rawValue
            refusals.refused(endpoint: "/sse", ip: ip, code: 200, name: code, reason: refusal.reason)
            try await writer.write(ByteBuffer(string: "event: wps.error\ndata: {\"code\":\"\(code)\"}\n\n"))
            try await writer.finish(nil)
            return
        }
        defer { sessions.leave(ip: ip) }
        let conn: RelayConnection
        switch engine.connect(grant) {
        case .success(let c): conn = c
        case .failure(let r):
            try await writer.write(ByteBuffer(string: "event: wps.error\ndata: {\"code\":\(r.code.rawValue)}\n\n"))
            try await writer.finish(nil)
            return
        }
        let entry = SessionRegistry.Entry(connection: conn, isSSE: true, activity: ActivityStamp(nowMs: SystemClock.nowMs))
        sessions.add(entry)
        defer {
            sessions.remove(conn)
            engine.disconnect(conn, code: .normal, reason: "stream ended")
        }
        let siteID = grant.siteID
        func full(_ name: String) -> String { name.hasPrefix("site:") ? name : "site:\(siteID):\(name)" }
        let wanted = lastEventID.map(StreamEventID.parse) ?? [:]
        var positions: [String: StreamPosition] = [:]
        for ch in channels { if let p = wanted[full(ch)] { positions[ch] = p } }

        // Subscribe before the stream opens: a client that publishes as soon as it
        // sees the first bytes must not race the subscription (frames queue meanwhile).
        let result = await engine.subscribe(conn, channels: channels, positions: positions)
        // Tell EventSource how long to wait before reconnecting, and open the stream through proxies.
        try await writer.write(ByteBuffer(string: "retry: 3000\n: relay stream\n\n"))
        var current: [(channel: String, position: StreamPosition)] = []
        var notices: [UInt8] = []
        let legacy = grant.wireFormat == .sseLegacy
        for e in result.entries {
            switch e.outcome {
            case .subscribed(let p, let recovery):
                current.append((full(e.channel), p))
                if let recovery, positions[e.channel] != nil {
                    var data: [(String, JSONValue)] = [("recovered", .bool(recovery.succeeded))]
                    switch recovery {
                    case .recovered(let n): data.append(("replayed", .int(Int64(n))))
                    case .failed(let f): data.append(("reason", .string("\(f)")))
                    }
                    notices += Self.sseNotice(event: "wps.recovery", channel: e.channel, data: .object(data), legacy: legacy)
                }
            case .alreadySubscribed(let p): current.append((full(e.channel), p))
            case .forbidden:
                notices += Self.sseNotice(event: "wps.error", channel: e.channel, data: .object([("code", .string(ErrorCode.forbidden.rawValue))]), legacy: legacy)
            case .invalidChannel:
                notices += Self.sseNotice(event: "wps.error", channel: e.channel, data: .object([("code", .string(ErrorCode.invalidChannel.rawValue))]), legacy: legacy)
            case .notProcessed: break
            }
        }
        if !notices.isEmpty { try await writer.write(ByteBuffer(bytes: notices)) }

        for await item in conn.items {
            guard case .frame(let f) = item else { break }  // .close: end the stream
            do {
                try await writer.write(ByteBuffer(bytes: rewriteID(f.bytes, positions: &current)))
            } catch {
                break
            }
        }
        try? await writer.finish(nil)
    }

    static func sseNotice(event: String, channel: String, data: JSONValue, legacy: Bool) -> [UInt8] {
        if legacy { return Array("event: \(event)\ndata: \(data.jsonString)\n\n".utf8) }
        let body: JSONValue = .object([("event", .string(event)), ("channel", .string(channel)), ("data", data)])
        return Array("data: \(body.jsonString)\n\n".utf8)
    }

    /// Replaces the engine's single-channel `id:` line with the stream's
    /// positions of all channels, updated with this event's.
    func rewriteID(_ bytes: [UInt8], positions: inout [(channel: String, position: StreamPosition)]) -> [UInt8] {
        guard bytes.starts(with: Array("id: ".utf8)), let nl = bytes.firstIndex(of: 0x0A) else { return bytes }
        let id = String(decoding: bytes[4..<nl], as: UTF8.self)
        guard let (channel, p) = SSEEventID.parse(id) else { return bytes }
        if let i = positions.firstIndex(where: { $0.channel == channel }) { positions[i].position = p } else { positions.append((channel, p)) }
        var out = Array("id: \(StreamEventID.format(positions))\n".utf8)
        out.append(contentsOf: bytes[(nl + 1)...])
        return out
    }
}

extension RelayService {
    /// Token of an SSE request: `?token=`, or `Authorization: Bearer`.
    static func token(from request: Request) -> String? {
        token(query: request.uri.queryParameters.get("token").map { String($0) }, subprotocols: [],
              authorization: request.headers[.authorization])
    }
}
