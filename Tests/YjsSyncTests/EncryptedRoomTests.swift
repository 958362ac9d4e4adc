import Foundation
import RelayJSON
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// The relay's side of encrypted rooms: sequence, log, client-made snapshots, awareness, limits,
/// persistence. The sealed bytes are opaque here (random bytes stand for ciphertext).
@Suite struct EncryptedRoomTests {
    typealias M = EncryptedRoomMessage

    static func sealed(_ n: Int, _ seed: UInt8) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ $0) } }
    static func decode(_ frames: [[UInt8]]) throws -> [M] { try frames.map { try M(decoding: $0) } }

    @Test func messagesRoundTrip() throws {
        let all: [M] = [.syncRequest(knownSeq: 300), .update(sealed: [1, 2, 3]), .snapshot(throughSeq: 7, sealed: [9]),
                        .awareness(sealed: [4]), .storedSnapshot(throughSeq: 7, sealed: [5, 6]), .logEntry(seq: 1 << 40, sealed: [0]),
                        .synced(lastSeq: 12, peer: 99), .peerAwareness(peer: 3, sealed: [8]), .peerLeft(peer: 3),
                        .snapshotRequest(throughSeq: 500), .snapshotStored(throughSeq: 500), .denied(reason: "read-only token")]
        for m in all { #expect(try M(decoding: m.encoded()) == m) }
        #expect(throws: (any Error).self) { try M(decoding: [0x01]) }
        #expect(throws: (any Error).self) { try M(decoding: [M.syncRequestTag, 5, 0]) }  // trailing byte
        #expect(throws: (any Error).self) { try M(decoding: []) }
    }

    @Test func sequenceLogSnapshotAndLateJoin() throws {
        var o = EncryptedRoomOptions()
        o.compactAfterEntries = 5
        let store = EncryptedRoomStore(persistence: InMemoryPersistence(), options: o)
        let room = "site:s:yjs-e2e:doc"
        #expect(try Self.decode(store.handle(room: room, frame: M.syncRequest(knownSeq: 0).encoded(), from: 1, canWrite: true).reply)
                == [.synced(lastSeq: 0, peer: 1)])
        var requests: [M] = []
        for i in 1...6 {
            let r = try store.handle(room: room, frame: M.update(sealed: Self.sealed(40, UInt8(i))).encoded(), from: 1, canWrite: true)
            #expect(try Self.decode(r.broadcast) == [.logEntry(seq: UInt64(i), sealed: Self.sealed(40, UInt8(i)))])
            requests += try Self.decode(r.reply)
        }
        // One request when the log reaches 5 entries, not again while it is pending.
        #expect(requests == [.snapshotRequest(throughSeq: 5)])
        // A snapshot beyond the log, or not newer than the stored one, is refused without closing.
        for bad: UInt64 in [7, 0] {
            let r = try Self.decode(store.handle(room: room, frame: M.snapshot(throughSeq: bad, sealed: [1]).encoded(), from: 1, canWrite: true).reply)
            guard case .denied? = r.first else { Issue.record("snapshot through \(bad) accepted: \(r)"); continue }
        }
        let snap = Self.sealed(100, 77)
        #expect(try Self.decode(store.handle(room: room, frame: M.snapshot(throughSeq: 5, sealed: snap).encoded(), from: 1, canWrite: true).reply)
                == [.snapshotStored(throughSeq: 5)])
        #expect(try store.describe(room: room).logSeqs == [6])
        // A late joiner: snapshot, then what it does not cover, then synced.
        #expect(try Self.decode(store.handle(room: room, frame: M.syncRequest(knownSeq: 0).encoded(), from: 2, canWrite: false).reply)
                == [.storedSnapshot(throughSeq: 5, sealed: snap), .logEntry(seq: 6, sealed: Self.sealed(40, 6)), .synced(lastSeq: 6, peer: 2)])
        // A reconnecting client that has everything up to 6: nothing but synced.
        #expect(try Self.decode(store.handle(room: room, frame: M.syncRequest(knownSeq: 6).encoded(), from: 2, canWrite: false).reply)
                == [.synced(lastSeq: 6, peer: 2)])
        // One that claims sequences this room never had (the relay lost data): everything again.
        #expect(try Self.decode(store.handle(room: room, frame: M.syncRequest(knownSeq: 60).encoded(), from: 2, canWrite: false).reply).count == 3)
        // A stale snapshot after a newer one is refused.
        guard case .denied? = try Self.decode(store.handle(room: room, frame: M.snapshot(throughSeq: 4, sealed: [1]).encoded(), from: 1, canWrite: true).reply).first else {
            Issue.record("an older snapshot replaced a newer one"); return
        }
    }

    @Test func readOnlyAwarenessAndLimits() throws {
        var o = EncryptedRoomOptions()
        o.maxMessageBytes = 100
        o.maxRoomBytes = 250
        o.maxAwarenessBytes = 20
        let store = EncryptedRoomStore(persistence: InMemoryPersistence(), options: o)
        let room = "site:s:yjs-e2e:lim"
        // A read-only token's update and snapshot are denied, not stored.
        for f in [M.update(sealed: [1]), M.snapshot(throughSeq: 1, sealed: [1])] {
            let r = try store.handle(room: room, frame: f.encoded(), from: 5, canWrite: false)
            #expect(try Self.decode(r.reply) == [.denied(reason: "read-only token")] && r.broadcast.isEmpty)
        }
        #expect(try store.describe(room: room).logSeqs.isEmpty)
        #expect(throws: EncryptedRoomError.messageTooLarge(limit: 100)) {
            try store.handle(room: room, frame: M.update(sealed: Self.sealed(101, 1)).encoded(), from: 1, canWrite: true)
        }
        _ = try store.handle(room: room, frame: M.update(sealed: Self.sealed(100, 1)).encoded(), from: 1, canWrite: true)
        _ = try store.handle(room: room, frame: M.update(sealed: Self.sealed(100, 2)).encoded(), from: 1, canWrite: true)
        #expect(throws: EncryptedRoomError.roomTooLarge(limit: 250)) {
            try store.handle(room: room, frame: M.update(sealed: Self.sealed(100, 3)).encoded(), from: 1, canWrite: true)
        }
        #expect(throws: EncryptedRoomError.awarenessTooLarge(limit: 20)) {
            try store.handle(room: room, frame: M.awareness(sealed: Self.sealed(21, 1)).encoded(), from: 1, canWrite: true)
        }
        #expect(throws: EncryptedRoomError.self) { try store.handle(room: room, frame: [0x02, 0, 0], from: 1, canWrite: true) }
        #expect(throws: EncryptedRoomError.self) {
            try store.handle(room: room, frame: M.logEntry(seq: 1, sealed: [1]).encoded(), from: 1, canWrite: true)
        }
        // Awareness: broadcast with the sender's peer id, given to a joiner, dropped on close.
        let aw = try store.handle(room: room, frame: M.awareness(sealed: [7, 7]).encoded(), from: 1, canWrite: false)
        #expect(try Self.decode(aw.broadcast) == [.peerAwareness(peer: 1, sealed: [7, 7])])
        let join = try Self.decode(store.handle(room: room, frame: M.syncRequest(knownSeq: 2).encoded(), from: 2, canWrite: true).reply)
        #expect(join == [.synced(lastSeq: 2, peer: 2), .peerAwareness(peer: 1, sealed: [7, 7])])
        #expect(try Self.decode(store.close(room: room, connection: 1)) == [.peerLeft(peer: 1)])
        #expect(store.close(room: room, connection: 2).isEmpty)
    }

    @Test func logAndSnapshotSurviveARestartOnSQLite() throws {
        let (dir, path) = try StorageFailureTests.tempPath()
        defer { try? FileManager.default.removeItem(at: dir) }
        let room = "site:s:yjs-e2e:disk"
        do {
            let store = EncryptedRoomStore(persistence: try SQLitePersistence(path: path))
            for i in 1...4 { _ = try store.handle(room: room, frame: M.update(sealed: Self.sealed(30, UInt8(i))).encoded(), from: 1, canWrite: true) }
            _ = try store.handle(room: room, frame: M.snapshot(throughSeq: 3, sealed: [42]).encoded(), from: 1, canWrite: true)
            _ = try store.handle(room: room, frame: M.update(sealed: Self.sealed(30, 5)).encoded(), from: 1, canWrite: true)
        }
        let store = EncryptedRoomStore(persistence: try SQLitePersistence(path: path))
        #expect(try Self.decode(store.handle(room: room, frame: M.syncRequest(knownSeq: 0).encoded(), from: 9, canWrite: true).reply)
                == [.storedSnapshot(throughSeq: 3, sealed: [42]), .logEntry(seq: 4, sealed: Self.sealed(30, 4)),
                    .logEntry(seq: 5, sealed: Self.sealed(30, 5)), .synced(lastSeq: 5, peer: 9)])
        // The next update continues the sequence.
        let r = try store.handle(room: room, frame: M.update(sealed: [1]).encoded(), from: 9, canWrite: true)
        #expect(try Self.decode(r.broadcast) == [.logEntry(seq: 6, sealed: [1])])
    }
}

/// `protocol/vectors/yjs-e2e.json`: the relay's messages decode to the listed fields and re-encode
/// to the same bytes; invalid ones are refused.
@Suite("Protocol vectors: encrypted Yjs rooms")
struct EncryptedRoomVectorTests {
    @Test func messagesDecodeAndRoundTrip() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protocol/vectors/yjs-e2e.json")
        let v = try JSONParser.parse(Array(try Data(contentsOf: url)), maxDepth: 64)
        let messages = try #require(v["messages"]?.arrayValue)
        #expect(messages.count == 13)
        for m in messages {
            let name = m["name"]?.stringValue ?? "?"
            let bytes = hex(try #require(m["hex"]?.stringValue))
            let f = try #require(m["fields"])
            let message = try EncryptedRoomMessage(decoding: bytes)
            #expect(message.encoded() == bytes, "\(name): re-encoding")
            let sealed = f["sealed_hex"]?.stringValue.map(hex) ?? []
            let n = { (k: String) in UInt64(f[k]?.int64Value ?? -1) }
            let expected: EncryptedRoomMessage
            switch f["type"]?.int64Value {
            case 16: expected = .syncRequest(knownSeq: n("known_seq"))
            case 17: expected = .update(sealed: sealed)
            case 18: expected = .snapshot(throughSeq: n("through_seq"), sealed: sealed)
            case 19: expected = .awareness(sealed: sealed)
            case 32: expected = .storedSnapshot(throughSeq: n("through_seq"), sealed: sealed)
            case 33: expected = .logEntry(seq: n("seq"), sealed: sealed)
            case 34: expected = .synced(lastSeq: n("last_seq"), peer: n("peer"))
            case 35: expected = .peerAwareness(peer: n("peer"), sealed: sealed)
            case 36: expected = .peerLeft(peer: n("peer"))
            case 37: expected = .snapshotRequest(throughSeq: n("through_seq"))
            case 38: expected = .snapshotStored(throughSeq: n("through_seq"))
            case 39: expected = .denied(reason: f["reason"]?.stringValue ?? "")
            default: Issue.record("\(name): unknown type"); continue
            }
            #expect(message == expected, "\(name)")
        }
        for m in try #require(v["invalid_messages"]?.arrayValue) {
            let bytes = hex(m["hex"]?.stringValue ?? "")
            #expect(throws: (any Error).self, "\(m["name"]?.stringValue ?? "?")") { try EncryptedRoomMessage(decoding: bytes) }
        }
    }
}
