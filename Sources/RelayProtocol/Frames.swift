// The frames relayd sends (Docs/protocol.md, "WebSocket frames" and "SSE").
// Transport-independent: the engine encodes each publication once per wire
// format and hands the same immutable bytes to every subscriber.

import RelayJSON

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
    public static func error(code: ErrorCode, message: String, channel: String? = nil) -> OutboundFrame {
        var out: [UInt8] = []
        JSON.appendASCII("{\"type\":\"error\",\"code\":", to: &out)
        JSON.appendString(code.rawValue, to: &out)
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


/// A position in a channel's stream: the offset of the last publication seen
/// and the stream's epoch (which changes when history is lost).
public struct StreamPosition: Sendable, Hashable, CustomStringConvertible {
    public var offset: UInt64
    public var epoch: String
    public init(offset: UInt64, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }
    public var description: String { "\(offset)@\(epoch)" }
}
