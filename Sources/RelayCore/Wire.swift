import RelayJSON
// Wordsocket wire encodings (contract §5 and §6). Transport-independent:
// the engine encodes each publication once per wire format and hands the same
// immutable bytes to every subscriber.

/// How a connection wants its frames.
public enum WireFormat: UInt8, Sendable, Hashable, CaseIterable {
    /// WebSocket: JSON text frames and binary frames.
    case webSocket
    /// SSE for tokens with `v >= 2`: unnamed events, `data:` is `{"event","channel","data"}`.
    case sseV2
    /// SSE for older tokens: named `event:` with only the payload as data.
    case sseLegacy

    /// The SSE framing the token's `v` claim selects.
    public static func sse(protocolVersion v: Int) -> WireFormat { v >= 2 ? .sseV2 : .sseLegacy }

    public var isSSE: Bool { self != .webSocket }
}

/// What kind of transport frame the bytes are.
public enum FrameKind: UInt8, Sendable {
    /// A WebSocket text frame (UTF-8 JSON).
    case text
    /// A WebSocket binary frame.
    case binary
    /// A complete SSE event block, already terminated by a blank line: write as is.
    case sse
}

/// An encoded frame. `bytes` is shared (copy-on-write storage, never mutated)
/// between every connection that receives it.
public struct OutboundFrame: Sendable {
    public let kind: FrameKind
    public let bytes: [UInt8]
    public init(kind: FrameKind, bytes: [UInt8]) {
        self.kind = kind
        self.bytes = bytes
    }
    /// The text of a `.text` or `.sse` frame (for tests and logs).
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A publication's payload.
public enum Payload: Sendable, Equatable {
    /// Validated JSON bytes, passed through byte for byte.
    case json([UInt8])
    /// Opaque binary payload (binary frames; WebSocket only).
    case binary([UInt8])

    public var byteCount: Int {
        switch self {
        case .json(let b), .binary(let b): return b.count
        }
    }
}

/// One accepted publication. Immutable; the WebSocket encoding is made once
/// at publish time and shared.
public final class Publication: Sendable {
    /// The channel as the publisher spelled it; delivered frames carry this (§7.2).
    public let spelledChannel: String
    /// The resolved channel.
    public let channel: ChannelName
    /// Event name (`""` for binary publications).
    public let event: String
    public let payload: Payload
    /// Offset and epoch; `nil` for ephemeral frames (presence).
    public let position: StreamPosition?
    /// Acceptance time, Unix seconds.
    public let time: Double
    /// The encoded WebSocket frame.
    public let webSocketFrame: OutboundFrame

    public init(spelledChannel: String, channel: ChannelName, event: String, payload: Payload,
                position: StreamPosition?, time: Double) {
        self.spelledChannel = spelledChannel
        self.channel = channel
        self.event = event
        self.payload = payload
        self.position = position
        self.time = time
        switch payload {
        case .json(let data):
            webSocketFrame = OutboundFrame(kind: .text, bytes: Wire.messageJSON(
                channel: spelledChannel, event: event, data: data, position: position))
        case .binary(let data):
            webSocketFrame = OutboundFrame(kind: .binary, bytes: Wire.binaryFrame(channel: spelledChannel, payload: data))
        }
    }

    /// Approximate retained bytes (for history accounting).
    public var retainedBytes: Int { payload.byteCount + webSocketFrame.bytes.count + 96 }

    /// The frame for `format`: the shared WebSocket frame, or a fresh SSE
    /// encoding (the fan-out calls this once per format per publication).
    /// `nil` when the format cannot carry it (binary over SSE).
    public func frame(for format: WireFormat) -> OutboundFrame? {
        switch format {
        case .webSocket: return webSocketFrame
        case .sseV2, .sseLegacy:
            guard case .json(let data) = payload else { return nil }
            return OutboundFrame(kind: .sse, bytes: Wire.sseEvent(
                legacy: format == .sseLegacy, channel: spelledChannel, fullChannel: channel.full,
                event: event, data: data, position: position))
        }
    }
}

/// Encoders for every frame the relay sends.
public enum Wire {
    /// `{"type":"message","channel":…,"event":…,"data":…[,"offset":n,"epoch":"…"]}`
    public static func messageJSON(channel: String, event: String, data: [UInt8], position: StreamPosition?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + channel.utf8.count + event.utf8.count + 96)
        JSON.appendASCII("{\"type\":\"message\",\"channel\":", to: &out)
        JSON.appendString(channel, to: &out)
        JSON.appendASCII(",\"event\":", to: &out)
        JSON.appendString(event, to: &out)
        JSON.appendASCII(",\"data\":", to: &out)
        out.append(contentsOf: data)
        if let position {
            JSON.appendASCII(",\"offset\":", to: &out)
            JSON.appendInt(position.offset, to: &out)
            JSON.appendASCII(",\"epoch\":", to: &out)
            JSON.appendString(position.epoch, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Binary frame: u16 big-endian channel length, channel UTF-8, payload (§5.4).
    public static func binaryFrame(channel: String, payload: [UInt8]) -> [UInt8] {
        let name = Array(channel.utf8)
        precondition(name.count <= Int(UInt16.max))
        var out: [UInt8] = []
        out.reserveCapacity(2 + name.count + payload.count)
        out.append(UInt8(name.count >> 8))
        out.append(UInt8(name.count & 0xFF))
        out.append(contentsOf: name)
        out.append(contentsOf: payload)
        return out
    }

    /// Parses a client binary frame into channel and payload; `nil` if malformed.
    public static func parseBinaryFrame(_ bytes: [UInt8]) -> (channel: String, payload: ArraySlice<UInt8>)? {
        guard bytes.count >= 2 else { return nil }
        let n = Int(bytes[0]) << 8 | Int(bytes[1])
        guard n > 0, bytes.count >= 2 + n else { return nil }
        guard let channel = String(validating: bytes[2..<(2 + n)], as: UTF8.self) else { return nil }
        return (channel, bytes[(2 + n)...])
    }

    /// One SSE event block. v2: `id:` + `data: {"event","channel","data"}`;
    /// legacy: `id:` + `event: <name>` + `data: <payload>`. Multi-line JSON is
    /// split over several `data:` lines (the client rejoins them with `\n`).
    public static func sseEvent(legacy: Bool, channel: String, fullChannel: String, event: String,
                                data: [UInt8], position: StreamPosition?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + channel.utf8.count + 2 * event.utf8.count + 128)
        if let position {
            JSON.appendASCII("id: ", to: &out)
            out.append(contentsOf: SSEEventID.format(channel: fullChannel, position: position).utf8)
            out.append(0x0A)
        }
        if legacy {
            JSON.appendASCII("event: ", to: &out)
            out.append(contentsOf: event.utf8)
            out.append(0x0A)
            appendDataLines(data, to: &out)
        } else {
            var body: [UInt8] = []
            body.reserveCapacity(data.count + channel.utf8.count + event.utf8.count + 40)
            JSON.appendASCII("{\"event\":", to: &body)
            JSON.appendString(event, to: &body)
            JSON.appendASCII(",\"channel\":", to: &body)
            JSON.appendString(channel, to: &body)
            JSON.appendASCII(",\"data\":", to: &body)
            body.append(contentsOf: data)
            body.append(UInt8(ascii: "}"))
            appendDataLines(body, to: &out)
        }
        out.append(0x0A)
        return out
    }

    static func appendDataLines(_ data: [UInt8], to out: inout [UInt8]) {
        JSON.appendASCII("data: ", to: &out)
        var i = 0
        while i < data.count {
            let b = data[i]
            if b == 0x0D || b == 0x0A {
                if b == 0x0D, i + 1 < data.count, data[i + 1] == 0x0A { i += 1 }
                out.append(0x0A)
                JSON.appendASCII("data: ", to: &out)
            } else {
                out.append(b)
            }
            i += 1
        }
        out.append(0x0A)
    }

    // MARK: Control frames (WebSocket JSON)

    /// `{"type":"subscribed","channels":[…]}` plus, when known, the stream
    /// position and recovery outcome (fields old clients ignore).
    public static func subscribed(channels: [String], position: StreamPosition? = nil, recovered: Bool? = nil) -> OutboundFrame {
        var out: [UInt8] = []
        JSON.appendASCII("{\"type\":\"subscribed\",\"channels\":", to: &out)
        appendStringArray(channels, to: &out)
        if let position {
            JSON.appendASCII(",\"offset\":", to: &out)
            JSON.appendInt(position.offset, to: &out)
            JSON.appendASCII(",\"epoch\":", to: &out)
            JSON.appendString(position.epoch, to: &out)
        }
        if let recovered {
            JSON.appendASCII(recovered ? ",\"recovered\":true" : ",\"recovered\":false", to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return OutboundFrame(kind: .text, bytes: out)
    }

    /// `{"type":"unsubscribed","channels":[…]}`
    public static func unsubscribed(channels: [String]) -> OutboundFrame {
        var out: [UInt8] = []
        JSON.appendASCII("{\"type\":\"unsubscribed\",\"channels\":", to: &out)
        appendStringArray(channels, to: &out)
        out.append(UInt8(ascii: "}"))
        return OutboundFrame(kind: .text, bytes: out)
    }

    /// `{"type":"auth_ok","exp":<unix s>}`
    public static func authOK(expiresAt: Int64) -> OutboundFrame {
        var out: [UInt8] = []
        JSON.appendASCII("{\"type\":\"auth_ok\",\"exp\":", to: &out)
        JSON.appendInt(expiresAt, to: &out)
        out.append(UInt8(ascii: "}"))
        return OutboundFrame(kind: .text, bytes: out)
    }

    /// `{"type":"error","code":…,"message":…[,"channel":…]}`. Note: the
    /// wordsocket client treats `code:"unauthorized"` as a 4001 close.
    public static func error(code: String, message: String, channel: String? = nil) -> OutboundFrame {
        var out: [UInt8] = []
        JSON.appendASCII("{\"type\":\"error\",\"code\":", to: &out)
        JSON.appendString(code, to: &out)
        JSON.appendASCII(",\"message\":", to: &out)
        JSON.appendString(message, to: &out)
        if let channel {
            JSON.appendASCII(",\"channel\":", to: &out)
            JSON.appendString(channel, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return OutboundFrame(kind: .text, bytes: out)
    }

    /// `{"type":"ping"}`
    public static let ping = OutboundFrame(kind: .text, bytes: Array("{\"type\":\"ping\"}".utf8))

    /// SSE comment line used as a keepalive (`: ping`).
    public static let sseKeepalive = OutboundFrame(kind: .sse, bytes: Array(": ping\n\n".utf8))

    static func appendStringArray(_ items: [String], to out: inout [UInt8]) {
        JSON.appendStringArray(items, to: &out)
    }
}

/// The SSE `id:` the relay writes: `<offset>:<epoch>:<full channel>`. A client
/// reconnecting with `Last-Event-ID` recovers that one channel.
public enum SSEEventID {
    public static func format(channel: String, position: StreamPosition) -> String {
        "\(position.offset):\(position.epoch):\(channel)"
    }

    public static func parse(_ id: String) -> (channel: String, position: StreamPosition)? {
        let parts = id.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let offset = UInt64(parts[0]), !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        return (String(parts[2]), StreamPosition(offset: offset, epoch: String(parts[1])))
    }
}

/// A frame a WebSocket client sent (contract §5.2, plus the optional
/// recovery and idempotency extensions).
public enum ClientMessage: Sendable, Equatable {
    /// `{"type":"subscribe","channels":[…],"positions":{"<channel>":{"offset":n,"epoch":"…"}}}`
    case subscribe(channels: [String], positions: [String: StreamPosition])
    case unsubscribe(channels: [String])
    /// `{"type":"message","channel","event","data"[,"idempotency_key"]}`; `data` raw.
    case publish(channel: String, event: String, data: [UInt8], idempotencyKey: String?)
    /// `{"type":"presence","channel","state"}`; `state == nil` leaves.
    case presence(channel: String, state: [UInt8]?)
    case auth(token: String)
    case pong
    case ping

    /// Parses a text frame. `nil` for anything malformed or unknown (close 1008
    /// or answer with an error frame, at the transport's choice).
    public static func parse(_ text: [UInt8]) -> ClientMessage? {
        try? decode(text)
    }

    /// Parses a text frame under the project's JSON rules; unknown members are
    /// validated and ignored. Throws for malformed JSON or an unknown `type`.
    public static func decode(_ text: [UInt8]) throws(JSONError) -> ClientMessage {
        var reader = JSONReader(text)
        var type: String?
        var channels: [String]?
        var channel: String?
        var event: String?
        var data: Range<Int>?
        var state: Range<Int>?
        var stateIsNull = false
        var token: String?
        var idem: String?
        var positions: [String: StreamPosition] = [:]
        try reader.readObject { (key, r: inout JSONReader) throws(JSONError) in
            switch key {
            case "type": type = try r.readString()
            case "channels": channels = try r.readStringArray()
            case "channel": channel = try r.readString()
            case "event": event = try r.readString()
            case "data": data = try r.readRawValue(depth: 1)
            case "token": token = try r.readString()
            case "idempotency_key": idem = try r.readString()
            case "state":
                if r.readNull() { stateIsNull = true } else { state = try r.readRawValue(depth: 1) }
            case "positions":
                try r.readObject(depth: 1) { (name, pr: inout JSONReader) throws(JSONError) in
                    var offset: UInt64?
                    var epoch: String?
                    try pr.readObject(depth: 2) { (k, vr: inout JSONReader) throws(JSONError) in
                        switch k {
                        case "offset": offset = try vr.readUInt64()
                        case "epoch": epoch = try vr.readString()
                        default: _ = try vr.readRawValue(depth: 3)
                        }
                    }
                    if let offset, let epoch { positions[name] = StreamPosition(offset: offset, epoch: epoch) }
                }
            default:
                _ = try r.readRawValue(depth: 1)
            }
        }
        try reader.expectEnd()
        func missing(_ what: String) -> JSONError { JSONError(offset: 0, reason: "missing \"\(what)\"") }
        guard let type else { throw missing("type") }
        switch type {
        case "subscribe":
            guard let channels else { throw missing("channels") }
            return .subscribe(channels: channels, positions: positions)
        case "unsubscribe":
            guard let channels else { throw missing("channels") }
            return .unsubscribe(channels: channels)
        case "message":
            guard let channel, let event, let data else { throw missing("channel, event and data") }
            return .publish(channel: channel, event: event, data: Array(text[data]), idempotencyKey: idem)
        case "presence":
            guard let channel else { throw missing("channel") }
            if stateIsNull || state == nil { return .presence(channel: channel, state: nil) }
            return .presence(channel: channel, state: Array(text[state!]))
        case "auth":
            guard let token else { throw missing("token") }
            return .auth(token: token)
        case "pong": return .pong
        case "ping": return .ping
        default: throw JSONError(offset: 0, reason: "unknown frame type")
        }
    }
}

/// The body of an HTTP publish, `{"channel":…,"event":…,"data":…}` (contract
/// §4), with `data` kept as raw bytes. `idempotency_key` is optional.
public struct PublishBody: Sendable, Equatable {
    public var channel: String
    public var event: String
    public var data: [UInt8]
    public var idempotencyKey: String?

    public init(channel: String, event: String, data: [UInt8], idempotencyKey: String? = nil) {
        self.channel = channel
        self.event = event
        self.data = data
        self.idempotencyKey = idempotencyKey
    }

    /// Parses a publish body; `nil` when it breaks the JSON rules or lacks a member.
    public static func parse(_ body: [UInt8]) -> PublishBody? {
        try? decode(body)
    }

    /// Parses a publish body (a whole text, or one element of a batch: the
    /// same rules either way).
    public static func decode(_ body: [UInt8]) throws(JSONError) -> PublishBody {
        var reader = JSONReader(body)
        var channel: String?
        var event: String?
        var data: Range<Int>?
        var idem: String?
        try reader.readObject { (key, r: inout JSONReader) throws(JSONError) in
            switch key {
            case "channel": channel = try r.readString()
            case "event": event = try r.readString()
            case "data": data = try r.readRawValue(depth: 1)
            case "idempotency_key": idem = try r.readString()
            default: _ = try r.readRawValue(depth: 1)
            }
        }
        try reader.expectEnd()
        guard let channel, let event, let data else {
            throw JSONError(offset: 0, reason: "a publication needs \"channel\", \"event\" and \"data\"")
        }
        return PublishBody(channel: channel, event: event, data: Array(body[data]), idempotencyKey: idem)
    }
}
