import NIOCore
import NIOWebSocket

/// A complete WebSocket message, unmasked and reassembled.
public enum WebSocketMessage: Sendable, Equatable {
    /// A text message, already checked to be valid UTF-8.
    case text([UInt8])
    case binary([UInt8])

    var byteCount: Int {
        switch self {
        case .text(let b), .binary(let b): return b.count
        }
    }
}

/// Why a connection must be failed (RFC 6455 §7.1.7), with the close code to send.
public struct WebSocketViolation: Error, Sendable, Equatable {
    public let code: UInt16
    public let reason: String

    public init(code: UInt16, reason: String) {
        self.code = code
        self.reason = reason
    }

    static func protocolError(_ reason: String) -> Self { .init(code: 1002, reason: reason) }
    static let invalidUTF8 = Self(code: 1007, reason: "invalid UTF-8")
    static func tooBig(_ limit: Int) -> Self { .init(code: 1009, reason: "message larger than \(limit) bytes") }
}

/// The RFC 6455 rules for data frames and close frames that NIO's frame
/// decoder leaves to the application: masking, reserved bits, reserved
/// opcodes, fragmentation, the message size limit, UTF-8 of text messages
/// and of close reasons, and valid close codes. Pure state, no I/O.
public struct WebSocketMessageAssembler: Sendable {
    /// Largest reassembled message.
    public let maxMessageBytes: Int
    private var partial: [UInt8] = []
    private var partialIsText = false
    private var inMessage = false

    public init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Checks that apply to every client frame (masking, reserved bits and opcodes).
    public static func validate(_ frame: WebSocketFrame) throws(WebSocketViolation) {
        guard frame.maskKey != nil else { throw .protocolError("client frames must be masked") }
        guard !frame.rsv1 && !frame.rsv2 && !frame.rsv3 else { throw .protocolError("reserved bits set without an extension") }
        switch frame.opcode {
        case .text, .binary, .continuation, .ping, .pong, .connectionClose: break
        default: throw .protocolError("reserved opcode")
        }
        if frame.opcode.isControlOpcode {
            guard frame.fin else { throw .protocolError("fragmented control frame") }
            guard frame.length <= 125 else { throw .protocolError("control frame longer than 125 bytes") }
        }
    }

    /// Feeds one (validated, unmasked) data frame; returns the message it completes, if any.
    public mutating func append(opcode: WebSocketOpcode, fin: Bool, payload: ByteBuffer) throws(WebSocketViolation) -> WebSocketMessage? {
        switch opcode {
        case .text, .binary:
            guard !inMessage else { throw .protocolError("new message inside a fragmented message") }
            guard payload.readableBytes <= maxMessageBytes else { throw .tooBig(maxMessageBytes) }
            if fin { return try Self.message(text: opcode == .text, Array(payload.readableBytesView)) }
            inMessage = true
            partialIsText = opcode == .text
            partial = Array(payload.readableBytesView)
            return nil
        case .continuation:
            guard inMessage else { throw .protocolError("continuation frame without a message") }
            guard partial.count + payload.readableBytes <= maxMessageBytes else {
                partial = []
                throw .tooBig(maxMessageBytes)
            }
            partial.append(contentsOf: payload.readableBytesView)
            guard fin else { return nil }
            inMessage = false
            defer { partial = [] }
            return try Self.message(text: partialIsText, partial)
        default:
            throw .protocolError("not a data frame")
        }
    }

    private static func message(text: Bool, _ bytes: [UInt8]) throws(WebSocketViolation) -> WebSocketMessage {
        guard text else { return .binary(bytes) }
        guard isValidUTF8(bytes) else { throw .invalidUTF8 }
        return .text(bytes)
    }

    /// The payload of a client's close frame: nil code when empty; violations for
    /// a 1-byte body, a code that must not be sent, or a reason that is not UTF-8.
    public static func parseClose(_ payload: ByteBuffer) throws(WebSocketViolation) -> (code: UInt16?, reason: String) {
        var body = payload
        guard body.readableBytes > 0 else { return (nil, "") }
        guard let code = body.readInteger(as: UInt16.self) else { throw .protocolError("close frame with a 1-byte body") }
        guard isSendableCloseCode(code) else { throw .protocolError("invalid close code \(code)") }
        let reasonBytes = Array(body.readableBytesView)
        guard isValidUTF8(reasonBytes) else { throw .invalidUTF8 }
        return (code, String(decoding: reasonBytes, as: UTF8.self))
    }

    /// Close codes an endpoint may put on the wire (RFC 6455 §7.4, IANA registry).
    public static func isSendableCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014: return true
        case 3000...4999: return true
        default: return false
        }
    }

    /// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
    public static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        // Fast path: ASCII.
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        return String(validating: bytes, as: UTF8.self) != nil
    }

    /// `reason` cut to at most `limit` bytes without splitting a character (close frames carry ≤ 123).
    public static func truncatedReason(_ reason: String, limit: Int = 123) -> [UInt8] {
        var out: [UInt8] = []
        for ch in reason.unicodeScalars {
            let enc = Array(String(ch).utf8)
            if out.count + enc.count > limit { break }
            out += enc
        }
        return out
    }
}
