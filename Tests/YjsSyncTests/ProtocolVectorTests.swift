import Foundation
import RelayJSON
@testable import YjsCodec
import Testing

/// `protocol/vectors/yprotocols.json`: messages made by Yjs 13.5 and
/// y-protocols 1.0 with fixed client IDs, decoded and re-encoded by YjsCodec.
@Suite("Protocol vectors: y-protocols")
struct YProtocolsVectorTests {
    static func load() throws -> JSONValue {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protocol/vectors/yprotocols.json")
        return try JSONParser.parse(Array(try Data(contentsOf: url)), maxDepth: 256)
    }

    @Test func messagesDecodeAndRoundTrip() throws {
        let v = try Self.load()
        let messages = try #require(v["messages"]?.arrayValue)
        #expect(messages.count >= 8)
        for m in messages {
            let name = m["name"]?.stringValue ?? "?"
            let bytes = hex(try #require(m["hex"]?.stringValue))
            let decoded = try #require(m["decoded"])
            let message = try ProtocolMessage(decoding: bytes)
            #expect(message.encoded() == bytes, "\(name): re-encoding")
            switch (message, decoded["message_type"]?.int64Value) {
            case (.sync(.step1(let sv)), 0?):
                let expected = (decoded["state_vector"]?.objectValue ?? []).map { (UInt64($0.0)!, UInt64($0.1.int64Value!)) }
                #expect(try StateVector(decoding: sv).clocks == Dictionary(uniqueKeysWithValues: expected), "\(name)")
            case (.sync(.step2(let u)), 0?), (.sync(.update(let u)), 0?):
                #expect(hexString(u) == decoded["update_hex"]?.stringValue, "\(name)")
                if let svHex = m["update"]?["state_vector_from_update"] {
                    let expected = (svHex.objectValue ?? []).map { (UInt64($0.0)!, UInt64($0.1.int64Value!)) }
                    #expect(try YUpdate.stateVector(of: u).clocks == Dictionary(uniqueKeysWithValues: expected), "\(name)")
                }
            case (.awareness(let a), 1?):
                let update = try AwarenessUpdate(decoding: a, stateIsValid: JSON.isValid)
                let states = decoded["states"]?.arrayValue ?? []
                #expect(update.entries.count == states.count, "\(name)")
                for (e, s) in zip(update.entries, states) {
                    #expect(Int64(e.clientID) == s["client_id"]?.int64Value && Int64(e.clock) == s["clock"]?.int64Value, "\(name)")
                    #expect(e.state == s["state_json"]?.stringValue, "\(name)")
                }
            case (.authPermissionDenied(let reason), 2?):
                #expect(reason == decoded["reason"]?.stringValue, "\(name)")
            case (.queryAwareness, 3?):
                break
            default:
                Issue.record("\(name): decoded as \(message), vector says \(decoded.jsonString)")
            }
        }
        for bad in v["invalid"]?.arrayValue ?? [] {
            let bytes = hex(bad["hex"]?.stringValue ?? "")
            // Refused by the codec, or (awareness states) by the rooms' JSON rule: either way relayd closes with 1008.
            #expect(throws: (any Error).self, "\(bad["name"]?.stringValue ?? "?")") {
                if case .awareness(let a) = try ProtocolMessage(decoding: bytes) {
                    _ = try AwarenessUpdate(decoding: a, stateIsValid: JSON.isValid)
                }
            }
        }
    }

}
