import RelayJSON
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// Known answers from the reference (§2), produced by y-protocols.
@Suite struct ProtocolTests {
    @Test func syncMessageVectors() throws {
        let step1 = hex("00 00 03 01 01 02")
        #expect(try ProtocolMessage(decoding: step1) == .sync(.step1(stateVector: hex("01 01 02"))))
        #expect(ProtocolMessage.sync(.step1(stateVector: hex("01 01 02"))).encoded() == step1)
        let step2 = hex("00 01 0c 01 01 01 00 04 01 01 74 02 68 69 00")
        #expect(try ProtocolMessage(decoding: step2) == .sync(.step2(update: hex("01 01 01 00 04 01 01 74 02 68 69 00"))))
        #expect(ProtocolMessage.sync(.step2(update: YUpdate.empty)).encoded() == hex("00 01 02 00 00"))
        #expect(ProtocolMessage.sync(.update(hex("00 00"))).encoded() == hex("00 02 02 00 00"))
        #expect(ProtocolMessage.authPermissionDenied(reason: "no").encoded() == hex("02 00 02 6e 6f"))
        #expect(try ProtocolMessage(decoding: hex("02 00 02 6e 6f")) == .authPermissionDenied(reason: "no"))
        #expect(try ProtocolMessage(decoding: hex("03")) == .queryAwareness)
        #expect(ProtocolMessage.queryAwareness.encoded() == hex("03"))
    }

    @Test func malformedMessagesThrow() {
        for bad in ["", "00", "00 03 00", "04", "00 00 05 01", "00 00 01 00 ff", "02 01 00", "01"] {
            #expect(throws: YjsDecodingError.self, "\(bad)") { try ProtocolMessage(decoding: hex(bad)) }
        }
    }

    @Test func awarenessVectors() throws {
        let set = hex("01 01 01 0c 7b 22 75 73 65 72 22 3a 22 61 22 7d")
        let u = try AwarenessUpdate(decoding: set)
        #expect(u.entries == [AwarenessEntry(clientID: 1, clock: 1, state: #"{"user":"a"}"#)])
        #expect(u.encoded() == set)
        #expect(ProtocolMessage.awareness(set).encoded() == hex("01 10") + set)
        let removal = hex("01 01 02 04 6e 75 6c 6c")
        let r = try AwarenessUpdate(decoding: removal)
        #expect(r.entries[0].isRemoval)
        #expect(ProtocolMessage.awareness(removal).encoded() == hex("01 08 01 01 02 04 6e 75 6c 6c"))
    }

    @Test func awarenessStatesMustBeJSON() throws {
        for good in ["null", "{}", " {\"a\":[1,-2.5e3,true,false,null,\"\\u00e9\\n\"]} ", "\"x\"", "0"] {
            #expect(JSON.isValid(good), "\(good)")
        }
        for bad in ["", "{", "{\"a\":}", "[1,]", "01", "1.", "\"\u{1}\"", "nul", "{} {}", "'a'", "\"\\x\"",
                    String(repeating: "[", count: 200) + String(repeating: "]", count: 200)] {
            #expect(!JSON.isValid(bad), "\(bad)")
        }
        var e = Lib0Encoder()
        e.writeVarUInt(1); e.writeVarUInt(5); e.writeVarUInt(1); e.writeVarString("{not json")
        #expect(throws: YjsDecodingError.self) { try AwarenessUpdate(decoding: e.bytes, stateIsValid: JSON.isValid) }
    }

    @Test func awarenessRules() throws {
        var t = AwarenessTable()
        func upd(_ id: UInt64, _ clock: UInt64, _ s: String) -> AwarenessUpdate {
            AwarenessUpdate(entries: [AwarenessEntry(clientID: id, clock: clock, state: s)])
        }
        var c = t.apply(upd(7, 1, #"{"a":1}"#), from: 100, now: .seconds(0))
        #expect(c.added == [7])
        // stale (same clock, non-null) ignored
        c = t.apply(upd(7, 1, #"{"a":2}"#), from: 100, now: .seconds(1))
        #expect(c.isEmpty)
        #expect(t.state(of: 7) == #"{"a":1}"#)
        // higher clock wins
        c = t.apply(upd(7, 2, #"{"a":2}"#), from: 100, now: .seconds(2))
        #expect(c.updated == [7])
        // lower clock ignored
        c = t.apply(upd(7, 1, "null"), from: 100, now: .seconds(3))
        #expect(c.isEmpty)
        // same clock + null removes a present client
        c = t.apply(upd(7, 2, "null"), from: 100, now: .seconds(3))
        #expect(c.removed == [7])
        #expect(t.state(of: 7) == nil)
        // connection close removes its clients with unchanged clocks
        _ = t.apply(upd(8, 5, "{}"), from: 200, now: .seconds(4))
        _ = t.apply(upd(9, 1, "{}"), from: 300, now: .seconds(4))
        let closed = t.connectionClosed(200)
        #expect(closed == AwarenessUpdate(entries: [AwarenessEntry(clientID: 8, clock: 5, state: "null")]))
        #expect(t.clientIDs == [9])
        // 30 s timeout
        #expect(t.expire(now: .seconds(33)) == nil)
        let expired = t.expire(now: .seconds(34))
        #expect(expired?.entries.map(\.clientID) == [9])
        #expect(t.isEmpty)
        #expect(t.encodeAll() == nil)
    }

    /// A client that reconnects belongs to its new connection: closing that one removes it at
    /// once (it used to wait for the 30 s timeout, because the client was only "updated" there).
    @Test func reconnectedClientIsRemovedWithItsNewConnection() {
        var t = AwarenessTable()
        func upd(_ id: UInt64, _ clock: UInt64, _ s: String) -> AwarenessUpdate {
            AwarenessUpdate(entries: [AwarenessEntry(clientID: id, clock: clock, state: s)])
        }
        _ = t.apply(upd(7, 1, #"{"u":1}"#), from: 100, now: .seconds(0))
        // The tab's socket drops; it reconnects before relayd noticed and renews its state there.
        #expect(t.apply(upd(7, 2, #"{"u":1}"#), from: 200, now: .seconds(1)).updated == [7])
        #expect(t.connectionClosed(100) == nil, "the old connection no longer owns the client")
        #expect(t.state(of: 7) != nil)
        let closed = t.connectionClosed(200)
        #expect(closed?.entries.map(\.clientID) == [7], "closing the new connection removes it")
        #expect(t.isEmpty)
        // After a removal the same client may come back on a third connection and is owned there.
        _ = t.apply(upd(7, 3, #"{"u":1}"#), from: 300, now: .seconds(2))
        #expect(t.connectionClosed(300)?.entries.map(\.clientID) == [7])
    }
}
