import RelayJSON
import ArgumentParser
import Foundation
import RelayClient
import RelayCore
import RelayCrypto

struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish an event through POST /publish (signed v1 or v2, optionally sealed).",
        discussion: "DATA is JSON ('-' reads stdin). With --batch, stdin holds JSON lines {\"channel\",\"event\",\"data\"} sent through /publish/batch.")

    @OptionGroup var connection: Connection

    @Option(help: "v1 (wordsocket) or v2.")
    var scheme: String = "v1"

    @Flag(help: "Seal the event into an envelope (key from --payload-key or RELAY_PAYLOAD_KEY); published as event \"encrypted\".")
    var seal = false

    @Option(name: .customLong("payload-key"), help: "32-byte payload key, base64 (relayctl derive-key).")
    var payloadKey: String?

    @Option(name: .customLong("envelope"), help: "Envelope version for --seal: v1 or v2 (v2 binds the full channel name).")
    var envelope: String = "v1"

    @Option(name: .customLong("idempotency-key"), help: "Deliver at most once per key within 5 minutes.")
    var idempotencyKey: String?

    @Flag(help: "Read JSON lines from stdin and publish them as one batch.")
    var batch = false

    @Flag(help: "Print the relay's JSON answer.")
    var json = false

    @Argument(help: "Channel (bare or site:{site_id}:name).") var channel: String?
    @Argument(help: "Event name.") var event: String?
    @Argument(help: "Data JSON, or - for stdin.") var data: String?

    func run() async throws {
        let p = connection.resolved
        guard let sch = PublishSignatureScheme(rawValue: scheme) else { throw CLIError("--scheme must be v1 or v2") }
        let client = PublishClient(baseURL: p.url!, siteKey: try p.siteKey.required("--site-key"),
                                   secret: try p.publishSecret.required("--secret"), keyID: p.keyID ?? "k1", scheme: sch)
        let answer: HTTPAnswer
        if batch {
            var items: [JSONValue] = []
            for line in String(decoding: IO.readStdin(), as: UTF8.self).split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                do { items.append(try JSONParser.parse(String(line))) } catch { throw CLIError("stdin line is not JSON: \(error)") }
            }
            if seal { items = try items.map { try sealItem($0, siteKey: client.siteKey) } }
            answer = try await client.post(path: "/publish/batch", body: JSONValue.object([("publications", .array(items))]).serialized())
        } else {
            let ch = try channel.required("CHANNEL"), ev = try event.required("EVENT")
            var bytes = data == "-" ? IO.readStdin() : Array((data ?? "null").utf8)
            while let l = bytes.last, l == 0x0a || l == 0x0d || l == 0x20 { bytes.removeLast() }
            let value: JSONValue
            do { value = try JSONParser.parse(bytes) } catch { throw CLIError("DATA is not JSON: \(error)") }
            if seal {
                let item = try sealItem(.object([("channel", .string(ch)), ("event", .string(ev)), ("data", value)]), siteKey: client.siteKey)
                answer = try await client.publish(channel: ch, event: "encrypted", dataJSON: item["data"]!.serialized(), idempotencyKey: idempotencyKey)
            } else {
                answer = try await client.publish(channel: ch, event: ev, dataJSON: bytes, idempotencyKey: idempotencyKey)
            }
        }
        guard (200..<300).contains(answer.status) else {
            throw CLIError("publish refused (HTTP \(answer.status)): \(answer.text)")
        }
        if json { IO.line(answer.text) }
    }

    func sealItem(_ item: JSONValue, siteKey: String) throws -> JSONValue {
        let keyText = try (payloadKey ?? connection.resolved.payloadKey).required("--payload-key")
        let key = try IO.decodeKey(base64: keyText)
        guard let ch = item["channel"]?.stringValue, let ev = item["event"]?.stringValue, let data = item["data"] else {
            throw CLIError("each item needs channel, event and data")
        }
        let plain = EnvelopeV1.eventPlaintext(event: ev, dataJSON: data.serialized())
        let env: [UInt8]
        if envelope == "v2" {
            let siteID = SHA256.hexDigest("site:" + siteKey)
            let full = ch.hasPrefix("site:") ? ch : "site:\(siteID):\(ch)"
            env = try EnvelopeV2.seal(plain, key: key, keyID: connection.resolved.keyID ?? "k1", channel: full)
        } else {
            env = try EnvelopeV1.seal(plain, key: key)
        }
        return .object([("channel", .string(ch)), ("event", .string("encrypted")), ("data", try JSONParser.parse(env))])
    }
}

struct Subscribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Subscribe over WebSocket and print every event as a JSON line.",
        discussion: "Mints its own token with --jwt-secret (or takes --token). Reconnects after drops and recovers missed events from the relay's history using the last offset/epoch seen; prints {\"recovered\":false,…} when it cannot.",
        aliases: ["tail"])

    @OptionGroup var connection: Connection

    @Option(help: "Connection token (otherwise minted from --jwt-secret).")
    var token: String?

    @Option(name: .customLong("payload-key"), help: "Open sealed events with this key (base64).")
    var payloadKey: String?

    @Option(help: "Enter presence on every channel with this state JSON, and show presence events.")
    var presence: String?

    @Option(help: "Exit after this many messages.")
    var count: Int?

    @Option(help: "Exit after this many seconds.")
    var timeout: Double?

    @Flag(name: .customLong("no-reconnect"), help: "Exit when the connection closes.")
    var noReconnect = false

    @Argument(help: "Channels.") var channels: [String]

    func mintToken(_ p: Profile) throws -> String {
        if let token { return token }
        let siteKey = try p.siteKey.required("--site-key (to mint a token)")
        let secret = try p.jwtSecret.required("--jwt-secret or --token")
        let siteID = SHA256.hexDigest("site:" + siteKey)
        let now = Int64(Date().timeIntervalSince1970)
        let claims = JWTClaims(tenantID: SHA256.hexDigest("tenant:" + siteKey), siteID: siteID, userID: "relayctl",
                               allowedChannelPrefixes: ["site:\(siteID):"], allowedPublishPrefixes: ["site:\(siteID):"],
                               version: 2, issuedAt: now, expiresAt: now + 300)
        return JWTSigner.hs256(secret: secret).sign(claims)
    }

    func run() async throws {
        guard !channels.isEmpty else { throw CLIError("give at least one channel") }
        let p = connection.resolved
        let key = try (payloadKey ?? p.payloadKey).map { try IO.decodeKey(base64: $0) }
        let presenceState = try presence.map { s -> JSONValue in
            do { return try JSONParser.parse(s) } catch { throw CLIError("--presence is not JSON") }
        }
        let state = SubscribeState()
        let siteID = p.siteKey.map { SHA256.hexDigest("site:" + $0) }
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        let limit = count
        let work = Task { () async throws -> Void in
            var backoff = 0.5
            while !Task.isCancelled {
                let positions = await state.positions
                let sub = WebSocketSubscriber(baseURL: p.url!, token: try mintToken(p), channels: channels, positions: positions,
                                              presence: presenceState.map { st in Dictionary(uniqueKeysWithValues: channels.map { ($0, st) }) } ?? [:])
                let code = try? await sub.run { event in
                    let line = await state.handle(event, key: key, siteID: siteID)
                    if let line { IO.line(line) }
                    if let limit, await state.messages >= limit { Foundation.exit(0) }
                }
                if noReconnect || code == 4001 || code == 4003 || code == 1008 {
                    throw CLIError("connection closed with \(code.map(String.init) ?? "no code")")
                }
                try await Task.sleep(for: .milliseconds(Int64(backoff * 1000)))
                backoff = min(backoff * 2, 30)
            }
        }
        if let deadline {
            let sleeper = Task { try await Task.sleep(for: .seconds(max(0, deadline.timeIntervalSinceNow))); work.cancel() }
            _ = sleeper
        }
        do { try await work.value } catch is CancellationError { return }
    }
}

/// What the subscriber has seen, for positions and counting.
actor SubscribeState {
    var positions: [String: (offset: UInt64, epoch: String)] = [:]
    var messages = 0

    func handle(_ event: SubscriberEvent, key: SecureBytes?, siteID: String?) -> String? {
        switch event {
        case .text(let v):
            if v["type"]?.stringValue == "message" {
                messages += 1
                if let ch = v["channel"]?.stringValue, let off = v["offset"]?.int64Value, let ep = v["epoch"]?.stringValue {
                    positions[ch] = (UInt64(off), ep)
                }
                if let key, v["event"]?.stringValue == "encrypted", let data = v["data"] {
                    let channel = v["channel"]?.stringValue ?? ""
                    let full = channel.hasPrefix("site:") || siteID == nil ? channel : "site:\(siteID!):\(channel)"
                    let plain = data["v"]?.int64Value == 2
                        ? try? EnvelopeV2.open(data, channel: full, keys: { _ in key })
                        : try? EnvelopeV1.open(data, key: key)
                    if let plain, let inner = try? JSONParser.parse(plain) {
                        var m: [(String, JSONValue)] = [("type", .string("message")), ("channel", .string(channel)),
                                                        ("event", inner["event"] ?? .null), ("data", inner["data"] ?? .null), ("sealed", .bool(true))]
                        if let o = v["offset"] { m.append(("offset", o)) }
                        return JSONValue.object(m).jsonString
                    }
                }
            } else if v["type"]?.stringValue == "subscribed", let r = v["recovered"], r == .bool(false) {
                for ch in v["channels"]?.arrayValue ?? [] { if let c = ch.stringValue { positions[c] = nil } }
            }
            return v.jsonString
        case .binary(let channel, let payload):
            return JSONValue.object([("type", .string("binary")), ("channel", .string(channel)), ("payload_base64", .string(Base64.encode(payload)))]).jsonString
        case .closed(let code, let reason):
            FileHandle.standardError.write(Data("relayctl: closed \(code.map(String.init) ?? "-") \(reason ?? "")\n".utf8))
            return nil
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "GET /site/stats (signed): the site's active and maximum connections.")
    @OptionGroup var connection: Connection

    func run() async throws {
        let p = connection.resolved
        let client = PublishClient(baseURL: p.url!, siteKey: try p.siteKey.required("--site-key"), secret: try p.publishSecret.required("--secret"))
        let a = try await client.stats()
        guard a.status == 200 else { throw CLIError("stats refused (HTTP \(a.status)): \(a.text)") }
        IO.line(a.text)
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "GET /healthz; exits non-zero unless relayd answers ok.")
    @OptionGroup var connection: Connection

    func run() async throws {
        let a = try await RelayHTTP.send(method: "GET", url: connection.resolved.url! + "/healthz")
        guard a.status == 200 else { throw CLIError("unhealthy (HTTP \(a.status)): \(a.text)") }
        IO.line(a.text)
    }
}
