// The frames and bodies clients send (Docs/protocol.md).

import RelayJSON

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
