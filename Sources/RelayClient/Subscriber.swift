import RelayJSON
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import RelayCrypto

/// One thing a subscriber saw.
public enum SubscriberEvent: Sendable {
    /// A JSON text frame from the relay (message, subscribed, error, ping…).
    case text(JSONValue)
    /// A binary frame: channel and payload.
    case binary(channel: String, payload: [UInt8])
    /// The relay closed the socket.
    case closed(code: Int?, reason: String?)
}

/// A WebSocket subscriber speaking the wordsocket protocol: subscribes, answers
/// pings, remembers positions, and reconnects with them when asked.
public struct WebSocketSubscriber: Sendable {
    public var baseURL: String
    public var token: String
    public var channels: [String]
    /// Offsets to recover from, per channel as subscribed.
    public var positions: [String: (offset: UInt64, epoch: String)]
    public var presence: [String: JSONValue]
    public var maxFrameBytes: Int

    public init(baseURL: String, token: String, channels: [String], positions: [String: (offset: UInt64, epoch: String)] = [:],
                presence: [String: JSONValue] = [:], maxFrameBytes: Int = 2 << 20) {
        self.baseURL = baseURL
        self.token = token
        self.channels = channels
        self.positions = positions
        self.presence = presence
        self.maxFrameBytes = maxFrameBytes
    }

    var wsURL: String {
        var u = baseURL
        if u.hasPrefix("https://") { u = "wss://" + u.dropFirst(8) } else if u.hasPrefix("http://") { u = "ws://" + u.dropFirst(7) }
        if u.hasSuffix("/") { u.removeLast() }
        return u + "/ws?token=" + (token.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? token)
    }

    /// The subscribe frame, with recovery positions when known.
    public func subscribeFrame() -> JSONValue {
        var m: [(String, JSONValue)] = [("type", .string("subscribe")), ("channels", .array(channels.map(JSONValue.string)))]
        if !positions.isEmpty {
            m.append(("positions", .object(positions.map { ($0.key, .object([("offset", .number(String($0.value.offset))), ("epoch", .string($0.value.epoch))])) })))
        }
        return .object(m)
    }

    /// Connects once and calls `onEvent` for everything received until the socket closes.
    /// Returns the close code, if any.
    @discardableResult
    public func run(logger: Logger = Logger(label: "relayctl"), onEvent: @escaping @Sendable (SubscriberEvent) async -> Void) async throws -> Int? {
        let subscribe = subscribeFrame().jsonString
        let presenceFrames = presence.map { JSONValue.object([("type", .string("presence")), ("channel", .string($0.key)), ("state", $0.value)]).jsonString }
        let close = try await WebSocketClient.connect(url: wsURL, configuration: .init(maxFrameSize: maxFrameBytes), logger: logger) { inbound, outbound, _ in
            try await outbound.write(.text(subscribe))
            for p in presenceFrames { try await outbound.write(.text(p)) }
            for try await message in inbound.messages(maxSize: maxFrameBytes) {
                switch message {
                case .text(let s):
                    guard let v = try? JSONParser.parse(s) else { continue }
                    if v["type"]?.stringValue == "ping" { try await outbound.write(.text(#"{"type":"pong"}"#)); continue }
                    await onEvent(.text(v))
                case .binary(let buffer):
                    let bytes = Array(buffer.readableBytesView)
                    guard bytes.count >= 2 else { continue }
                    let n = Int(bytes[0]) << 8 | Int(bytes[1])
                    guard bytes.count >= 2 + n else { continue }
                    await onEvent(.binary(channel: String(decoding: bytes[2..<(2 + n)], as: UTF8.self), payload: Array(bytes[(2 + n)...])))
                }
            }
        }
        let code = close.map { Self.code($0.closeCode) }
        await onEvent(.closed(code: code, reason: close?.reason))
        return code
    }

    static func code(_ c: WebSocketErrorCode) -> Int {
        switch c {
        case .normalClosure: return 1000
        case .goingAway: return 1001
        case .protocolError: return 1002
        case .unacceptableData: return 1003
        case .dataInconsistentWithMessage: return 1007
        case .policyViolation: return 1008
        case .messageTooLarge: return 1009
        case .missingExtension: return 1010
        case .unexpectedServerError: return 1011
        case .unknown(let n): return Int(n)
        }
    }
}
