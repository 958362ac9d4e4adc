import RelayProtocol

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

