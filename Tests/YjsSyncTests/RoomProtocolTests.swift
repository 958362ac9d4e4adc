import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

@Suite struct RoomProtocolTests {
    @Test func syncConversation() throws {
        let store = DocumentStore(persistence: InMemoryPersistence())
        // empty room: step 1 with empty SV; a client's step 1 is always answered (empty update)
        #expect(try store.openingFrames(room: "r") == [hex("00 00 01 00")])
        #expect(try store.handle(room: "r", frame: hex("00 00 01 00"), from: 1) == RoomResponse(reply: [hex("00 01 02 00 00")]))
        // an update is broadcast to everyone (including the sender), once
        let upd = hex("01 01 01 00 04 01 01 74 02 68 69 00")
        let frame = ProtocolMessage.sync(.update(upd)).encoded()
        #expect(try store.handle(room: "r", frame: frame, from: 1) == RoomResponse(broadcast: [frame]))
        #expect(try store.handle(room: "r", frame: frame, from: 2) == RoomResponse())
        // read-only connections cannot write
        let other = ProtocolMessage.sync(.step2(update: hex("01 01 02 00 04 01 01 74 01 78 00"))).encoded()
        #expect(try store.handle(room: "r", frame: other, from: 3, readOnly: true) == RoomResponse())
        // a new client gets the reference Step2 for "hi" (§2.3)
        #expect(try store.handle(room: "r", frame: hex("00 00 01 00"), from: 4)
                == RoomResponse(reply: [hex("00 01 0c 01 01 01 00 04 01 01 74 02 68 69 00")]))
        #expect(try store.openingFrames(room: "r") == [hex("00 00 03 01 01 02")])
        #expect(throws: DocumentStoreError.self) { try store.handle(room: "r", frame: hex("00 07"), from: 1) }
    }

    @Test func awarenessConversation() throws {
        let store = DocumentStore(persistence: InMemoryPersistence())
        let set = hex("01 10 01 01 01 0c 7b 22 75 73 65 72 22 3a 22 61 22 7d")
        #expect(try store.handle(room: "r", frame: set, from: 1) == RoomResponse(broadcast: [set]))
        #expect(try store.handle(room: "r", frame: set, from: 1) == RoomResponse())  // stale
        #expect(try store.handle(room: "r", frame: hex("03"), from: 2) == RoomResponse(reply: [set]))
        #expect(try store.openingFrames(room: "r").last == set)
        #expect(try store.close(room: "r", connection: 1) == [hex("01 08 01 01 01 04 6e 75 6c 6c")])
        #expect(try store.close(room: "r", connection: 1) == [])
    }
}
