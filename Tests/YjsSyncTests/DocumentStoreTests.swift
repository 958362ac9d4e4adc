import Foundation
import Synchronization
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

final class ManualClock: Sendable {
    private let t = Mutex<Duration>(.zero)
    var now: Duration { t.withLock { $0 } }
    func advance(_ d: Duration) { t.withLock { $0 += d } }
    var source: @Sendable () -> Duration { { self.now } }
}

/// Counts appends to check durability-before-ack and deduplication.
final class CountingPersistence: YjsPersistence {
    let inner = InMemoryPersistence()
    let appends = Mutex(0)
    func load(room: String) throws -> PersistedRoom { try inner.load(room: room) }
    func append(room: String, entry: LoggedUpdate) throws {
        appends.withLock { $0 += 1 }
        try inner.append(room: room, entry: entry)
    }
    func compact(room: String, snapshot: [UInt8], throughSeq: Int64) throws {
        try inner.compact(room: room, snapshot: snapshot, throughSeq: throughSeq)
    }
}

@Suite struct DocumentStoreTests {
    static let u0 = UpdateVectorTests.u0, u1 = UpdateVectorTests.u1, u2 = UpdateVectorTests.u2

    @Test func applyStateVectorAndStep2() throws {
        let p = CountingPersistence()
        let store = DocumentStore(persistence: p)
        #expect(try store.stateVector(room: "r") == StateVector())
        #expect(try store.syncStep2(room: "r", forStateVector: StateVector()) == YUpdate.empty)
        #expect(try store.applyUpdate(room: "r", update: Self.u0).changed)
        #expect(try store.applyUpdate(room: "r", update: Self.u2).changed)
        // u2 sits after a gap: the state vector stops at the gap (Yjs semantics)
        #expect(try store.stateVector(room: "r") == StateVector([1: 2]))
        #expect(try store.applyUpdate(room: "r", update: Self.u1).changed)
        #expect(try store.stateVector(room: "r") == StateVector([1: 5]))
        // a duplicate adds nothing: not stored, not to be broadcast
        let again = try store.applyUpdate(room: "r", update: Self.u1)
        #expect(!again.changed && again.seq == nil)
        #expect(p.appends.withLock { $0 } == 3)
        // step 2 answers exactly the missing part; the store coalesced "ab", "c", "de" into one
        // struct, so the answer is what Yjs gives for its own document (reference §4.2)
        #expect(try store.syncStep2(room: "r", forStateVector: StateVector([1: 1]))
                == hex("01 01 01 01 84 01 00 04 62 63 64 65 00"))
        #expect(try store.syncStep2(room: "r", forStateVector: StateVector([1: 5])) == YUpdate.empty)
        // a delete-only update is new, and its repeat is not
        let del = hex("00 01 01 01 01 01")
        #expect(try store.applyUpdate(room: "r", update: del).changed)
        #expect(try !store.applyUpdate(room: "r", update: del).changed)
        #expect(try store.syncStep2(room: "r", forStateVector: StateVector([1: 5])) == hex("00 01 01 01 01 01"))
        // rooms are independent
        #expect(try store.stateVector(room: "other") == StateVector())
    }

    /// Room names that are canonically equivalent but differ in bytes are different rooms, in
    /// memory as in SQLite (Swift's `String` keys would merge them: attack matrix, confusables).
    @Test func canonicallyEquivalentRoomNamesAreDifferentRooms() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("exact-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) } }
        for persistence in [InMemoryPersistence() as any YjsPersistence, try SQLitePersistence(path: file)] {
            let store = DocumentStore(persistence: persistence)
            let (nfc, nfd) = ("site:a:yjs:caf\u{E9}", "site:a:yjs:cafe\u{301}")
            #expect(try store.applyUpdate(room: nfc, update: Self.u0).changed)
            #expect(try store.stateVector(room: nfd) == StateVector(), "the other spelling's room is empty")
            #expect(try store.encodedState(room: nfd) == YUpdate.empty)
            #expect(try store.applyUpdate(room: nfd, update: Self.u1).changed)
            #expect(Set(store.loadedRooms.map { Array($0.utf8) }) == [Array(nfc.utf8), Array(nfd.utf8)])
        }
    }

    /// "hello" typed by client 1, then "ell" deleted: a room collects the deleted text when it
    /// folds (Yjs's gc: the item is split, the middle becomes ContentDeleted(3)); a room matched
    /// by `keepHistory` keeps it. Both keep the document's state vector and delete set.
    @Test func garbageCollectionAndKeepHistory() throws {
        let typed = hex("01 01 01 00 04 01 01 74 05 68 65 6c 6c 6f 00")
        let deleted = hex("00 01 01 01 01 03")
        var options = DocumentStoreOptions()
        options.keepHistory = { $0.hasPrefix("history/") }
        let store = DocumentStore(persistence: InMemoryPersistence(), options: options)
        for room in ["post/1", "history/1"] {
            try store.applyUpdate(room: room, update: typed)
            try store.applyUpdate(room: room, update: deleted)
            try store.compact(room: room)
        }
        // h (root "t"), Deleted(3) after (1,0), o after (1,3); delete set (1: 1+3)
        #expect(try store.encodedState(room: "post/1") == hex("01 03 01 00 04 01 01 74 01 68 81 01 00 03 84 01 03 01 6f 01 01 01 01 03"))
        #expect(try store.encodedState(room: "history/1") == hex("01 01 01 00 04 01 01 74 05 68 65 6c 6c 6f 01 01 01 01 03"))
        #expect(try store.stateVector(room: "post/1") == store.stateVector(room: "history/1"))
        // a late joiner with "h" only gets no deleted text either
        let step2 = try store.syncStep2(room: "post/1", forStateVector: StateVector([1: 1]))
        #expect(!hexString(step2).contains("656c6c"))
    }

    @Test func canonicalizesBlockOrder() throws {
        // client 2 before client 17: Yjs's merge would drop client 17's first struct
        let u = hex("020202004401000158c101000101010211000101017401840100026921020201010101010001")
        #expect(try !YUpdate.hasCanonicalBlockOrder(u))
        let c = try YUpdate.canonicalized(u)
        #expect(try YUpdate.hasCanonicalBlockOrder(c))
        #expect(try YUpdate.hasCanonicalBlockOrder(UpdateVectorTests.full))
        // the same client twice, restarting at clock 0
        #expect(try !YUpdate.hasCanonicalBlockOrder(hex("02 01 01 00 04 01 01 74 01 61 01 01 00 04 01 01 74 01 61 00")))
        #expect(try YUpdate.stateVector(of: c) == StateVector([2: 2, 17: 3]))
        let store = DocumentStore(persistence: InMemoryPersistence())
        try store.applyUpdate(room: "r", update: u)
        try store.applyUpdate(room: "r", update: UpdateVectorTests.u0)
        let state = try store.encodedState(room: "r")
        #expect(try YUpdate.stateVector(of: state) == StateVector([1: 2, 2: 2, 17: 3]))
        // The delete set is Yjs's for u + u0 (node-yjs, gc on or off): u's deletions plus its
        // ContentDeleted item 17:0, which Yjs adds to the delete set when it integrates it.
        var ds = try YUpdate.deleteSet(of: state)
        ds.sortAndMerge()
        #expect(ds == DeleteSet([1: [DeleteRange(clock: 0, length: 1)], 2: [DeleteRange(clock: 1, length: 1)],
                                 17: [DeleteRange(clock: 0, length: 1)]]))
    }

    @Test func rejectsInvalidAndOversizedUpdates() throws {
        var o = DocumentStoreOptions()
        o.maxRoomBytes = 20
        let store = DocumentStore(persistence: InMemoryPersistence(), options: o)
        #expect(throws: DocumentStoreError.self) { try store.applyUpdate(room: "r", update: hex("01 01 01")) }
        try store.applyUpdate(room: "r", update: Self.u0)  // 12 bytes
        #expect(throws: DocumentStoreError.roomTooLarge(room: "r", limit: 20)) {
            try store.applyUpdate(room: "r", update: Self.u2)
        }
        #expect(try store.stateVector(room: "r") == StateVector([1: 2]))
        #expect(throws: DocumentStoreError.self) { try store.syncStep2(room: "r", forEncodedStateVector: hex("05 01")) }
    }

    @Test func evictsIdleRoomsAndReloads() throws {
        let clock = ManualClock()
        var o = DocumentStoreOptions()
        o.idleTimeout = .seconds(60)
        let store = DocumentStore(persistence: InMemoryPersistence(), options: o, clock: clock.source)
        try store.applyUpdate(room: "a", update: Self.u0)
        try store.applyUpdate(room: "b", update: Self.u0)
        clock.advance(.seconds(30))
        try store.applyUpdate(room: "b", update: Self.u1)
        clock.advance(.seconds(31))
        #expect(store.evictIdleRooms() == ["a"])
        #expect(store.loadedRooms == ["b"])
        // awareness keeps a room loaded until it expires
        _ = try store.applyAwareness(room: "b", update: AwarenessUpdate(entries: [.init(clientID: 1, clock: 1, state: "{}")]).encoded(), from: 1)
        clock.advance(.seconds(61))
        #expect(store.evictIdleRooms() == ["b"])
        #expect(try store.stateVector(room: "a") == StateVector([1: 2]))
        #expect(try store.stateVector(room: "b") == StateVector([1: 3]))
    }

    @Test func awarenessThroughStore() throws {
        let clock = ManualClock()
        let store = DocumentStore(persistence: InMemoryPersistence(), clock: clock.source)
        let set = hex("01 01 01 0c 7b 22 75 73 65 72 22 3a 22 61 22 7d")
        #expect(try store.applyAwareness(room: "r", update: set, from: 7) == set)
        #expect(try store.applyAwareness(room: "r", update: set, from: 7) == nil)  // stale: no rebroadcast
        #expect(try store.awarenessStates(room: "r") == set)
        #expect(try store.connectionClosed(room: "r", connection: 7) == hex("01 01 01 04 6e 75 6c 6c"))
        #expect(try store.awarenessStates(room: "r") == nil)
        _ = try store.applyAwareness(room: "r", update: set, from: 8)  // same clock: stale
        #expect(try store.awarenessStates(room: "r") == nil)
    }

    /// Attack matrix, awareness floods: one connection cannot speak for more than
    /// `maxAwarenessClientsPerConnection` clients nor send a state over `maxAwarenessStateBytes`;
    /// echoed states of other clients (as y-websocket sends them) do not count.
    @Test func awarenessLimits() throws {
        var options = DocumentStoreOptions()
        options.maxAwarenessClientsPerConnection = 3
        options.maxAwarenessStateBytes = 100
        let store = DocumentStore(persistence: InMemoryPersistence(), options: options)
        func update(_ ids: ClosedRange<UInt64>, clock: UInt64 = 1, state: String = #"{"user":"a"}"#) -> [UInt8] {
            AwarenessUpdate(entries: ids.map { AwarenessEntry(clientID: $0, clock: clock, state: state) }).encoded()
        }
        #expect(try store.applyAwareness(room: "r", update: update(1...3), from: 7) != nil)
        #expect(throws: DocumentStoreError.self) { try store.applyAwareness(room: "r", update: update(4...4), from: 7) }
        #expect(throws: DocumentStoreError.self) { try store.applyAwareness(room: "r", update: update(10...13), from: 8) }
        // Nothing of a refused update was applied.
        #expect(try store.awarenessStates(room: "r") == update(1...3))
        // Another connection echoes clients 1…3 (same clocks) and adds its own: allowed.
        #expect(try store.applyAwareness(room: "r", update: update(1...3), from: 8) == nil)
        #expect(try store.applyAwareness(room: "r", update: update(20...22), from: 8) != nil)
        // Renewals of its own clients, and removals, stay allowed at the cap.
        #expect(try store.applyAwareness(room: "r", update: update(1...3, clock: 2), from: 7) != nil)
        #expect(try store.applyAwareness(room: "r", update: update(3...3, clock: 3, state: "null"), from: 7) != nil)
        #expect(try store.applyAwareness(room: "r", update: update(5...5), from: 7) != nil, "a removal frees a slot")
        // State size.
        let big = "{\"c\":\"" + String(repeating: "x", count: 100) + "\"}"
        #expect(throws: DocumentStoreError.awarenessLimit("awareness state of client 30 is \(big.utf8.count) bytes, over 100")) {
            try store.applyAwareness(room: "r", update: update(30...30, state: big), from: 9)
        }
        #expect(try store.applyAwareness(room: "r", update: update(30...30, state: "null"), from: 9) == nil, "a removal of an unknown client changes nothing")
    }

    @Test func sqliteSurvivesRestartAndCompacts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("yjs-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("rooms.sqlite").path
        var o = DocumentStoreOptions()
        o.persistCompactionThreshold = 10
        o.backgroundCompaction = false
        o.foldMinPending = 4
        // 25 single-character appends by client 3, each an update of its own
        var updates: [[UInt8]] = []
        for i in 0..<25 {
            var e = Lib0Encoder()
            if i == 0 { e.writeRaw(hex("01 01 03 00 04 01 01 74 01 61 00")) } else {
                e.writeRaw([1, 1, 3]); e.writeVarUInt(UInt64(i)); e.writeUInt8(0x84)
                e.writeUInt8(3); e.writeVarUInt(UInt64(i - 1)); e.writeRaw([1, 0x61 + UInt8(i % 26), 0])
            }
            updates.append(e.bytes)
        }
        // what Yjs's encodeStateAsUpdate gives for that typing: one String struct (coalesced)
        var ex = Lib0Encoder()
        ex.writeRaw(hex("01 01 03 00 04 01 01 74")); ex.writeVarString("abcdefghijklmnopqrstuvwxy"); ex.writeUInt8(0)
        let expected = ex.bytes
        do {
            let p = try SQLitePersistence(path: path)
            let store = DocumentStore(persistence: p, options: o)
            for u in updates { #expect(try store.applyUpdate(room: "doc", update: u).changed) }
            #expect(try p.logCount(room: "doc") == 5)  // 20 compacted into the snapshot
            // no shutdown: the store is simply dropped, as in a crash after the last ack
        }
        let p2 = try SQLitePersistence(path: path)
        let store2 = DocumentStore(persistence: p2, options: o)
        #expect(try store2.stateVector(room: "doc") == StateVector([3: 25]))
        #expect(try store2.encodedState(room: "doc") == expected)
        #expect(try !store2.applyUpdate(room: "doc", update: updates[7]).changed)
        try store2.compact(room: "doc")
        #expect(try p2.logCount(room: "doc") == 0)
        let store3 = DocumentStore(persistence: try SQLitePersistence(path: path), options: o)
        #expect(try store3.encodedState(room: "doc") == expected)
    }

    @Test func concurrentRoomsAndConnections() async throws {
        var o = DocumentStoreOptions()
        o.foldMinPending = 3
        o.persistCompactionThreshold = 7
        let store = DocumentStore(persistence: InMemoryPersistence(), options: o)
        // 4 rooms; in each, 8 clients append 20 characters each, concurrently.
        func update(client: UInt64, i: Int) -> [UInt8] {
            var e = Lib0Encoder()
            e.writeRaw([1, 1]); e.writeVarUInt(client); e.writeVarUInt(UInt64(i))
            if i == 0 { e.writeRaw(hex("04 01 01 74 01 78 00")) } else {
                e.writeUInt8(0x84); e.writeVarUInt(client); e.writeVarUInt(UInt64(i - 1)); e.writeRaw([1, 0x79, 0])
            }
            return e.bytes
        }
        try await withThrowingTaskGroup(of: Void.self) { g in
            for room in 0..<4 {
                for client in 1...8 {
                    g.addTask {
                        for i in 0..<20 { try store.applyUpdate(room: "room\(room)", update: update(client: UInt64(client), i: i)) }
                        _ = try store.syncStep2(room: "room\(room)", forStateVector: StateVector())
                    }
                }
            }
            try await g.waitForAll()
        }
        var want = StateVector()
        for c in 1...8 { want[UInt64(c)] = 20 }
        for room in 0..<4 {
            #expect(try store.stateVector(room: "room\(room)") == want)
            let state = try store.encodedState(room: "room\(room)")
            #expect(try YUpdate.stateVector(of: state) == want)
        }
    }

    @Test func evictionRacingWithWritersLosesNothing() async throws {
        let persistence = InMemoryPersistence()
        var o = DocumentStoreOptions()
        o.idleTimeout = .zero
        o.foldMinPending = 2
        o.persistCompactionThreshold = 3
        o.backgroundCompaction = false
        let store = DocumentStore(persistence: persistence, options: o)
        func update(client: UInt64, i: Int) -> [UInt8] {
            var e = Lib0Encoder()
            e.writeRaw([1, 1]); e.writeVarUInt(client); e.writeVarUInt(UInt64(i))
            if i == 0 { e.writeRaw(hex("04 01 01 74 01 78 00")) } else {
                e.writeUInt8(0x84); e.writeVarUInt(client); e.writeVarUInt(UInt64(i - 1)); e.writeRaw([1, 0x79, 0])
            }
            return e.bytes
        }
        try await withThrowingTaskGroup(of: Void.self) { g in
            for client in 1...4 {
                g.addTask { for i in 0..<40 { try store.applyUpdate(room: "r", update: update(client: UInt64(client), i: i)) } }
            }
            g.addTask { for _ in 0..<300 { store.evictIdleRooms(); await Task.yield() } }
            try await g.waitForAll()
        }
        var want = StateVector()
        for c in 1...4 { want[UInt64(c)] = 40 }
        // a fresh store on the same persistence sees every acknowledged update, seqs unique
        let p = try persistence.load(room: "r")
        #expect(Set(p.log.map(\.seq)).count == p.log.count)
        let fresh = DocumentStore(persistence: persistence)
        #expect(try fresh.stateVector(room: "r") == want)
        #expect(try YUpdate.stateVector(of: fresh.encodedState(room: "r")) == want)
    }

    @Test func expiresAwarenessAcrossRooms() throws {
        let clock = ManualClock()
        let store = DocumentStore(persistence: InMemoryPersistence(), clock: clock.source)
        let set = AwarenessUpdate(entries: [.init(clientID: 5, clock: 3, state: "{}")]).encoded()
        _ = try store.applyAwareness(room: "a", update: set, from: 1)
        clock.advance(.seconds(20))
        _ = try store.applyAwareness(room: "b", update: set, from: 1)
        clock.advance(.seconds(10))
        let expired = store.expireAwarenessInAllRooms()
        #expect(expired.map(\.room) == ["a"])
        #expect(expired.first?.frame == ProtocolMessage.awareness(AwarenessUpdate(entries: [.init(clientID: 5, clock: 3, state: "null")]).encoded()).encoded())
    }

    @Test func sqliteBackgroundCompactionAndRestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("yjs-bg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("rooms.sqlite").path
        var o = DocumentStoreOptions()
        o.persistCompactionThreshold = 50
        o.foldMinPending = 8
        let n = 600
        var text = ""
        do {
            let store = DocumentStore(persistence: try SQLitePersistence(path: path), options: o)
            for i in 0..<n {
                let ch = String(UnicodeScalar(UInt8(0x61 + i % 26)))
                text += ch
                var e = Lib0Encoder()
                e.writeRaw([1, 1, 9]); e.writeVarUInt(UInt64(i))
                if i == 0 { e.writeRaw(hex("04 01 01 74")) } else { e.writeUInt8(0x84); e.writeVarUInt(9); e.writeVarUInt(UInt64(i - 1)) }
                e.writeVarString(ch); e.writeUInt8(0)
                try store.applyUpdate(room: "bg", update: e.bytes)
            }
            // no waiting for background compactions: the next store opens the file right away
        }
        let p2 = try SQLitePersistence(path: path)
        let store2 = DocumentStore(persistence: p2, options: o)
        #expect(try store2.stateVector(room: "bg") == StateVector([9: UInt64(n)]))
        var ex = Lib0Encoder()
        ex.writeRaw(hex("01 01 09 00 04 01 01 74")); ex.writeVarString(text); ex.writeUInt8(0)
        #expect(try store2.encodedState(room: "bg") == ex.bytes)
        // background compaction ran (poll: the detached task may be scheduled late under load)
        var compacted = false
        for _ in 0..<100 where !compacted {
            compacted = try p2.logCount(room: "bg") < n
            if !compacted { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(compacted)
        // a v2 snapshot (Gutenberg's _crdt_document format) imports into a room
        #expect(try store2.applyUpdate(room: "v2", updateV2: UpdateV2Tests.hiV2).changed)
        #expect(try store2.encodedState(room: "v2") == hex("01 01 01 00 04 01 01 74 02 68 69 00"))
    }
}

@Suite struct IntervalSetTests {
    /// Random ranges inserted one by one and in batches give the same coalesced set, equal to a
    /// brute-force bitmap; a large unsorted delete set is absorbed quickly.
    @Test func matchesBitmap() {
        var rng = SeededRNG(seed: 3)
        for _ in 0..<200 {
            var single = IntervalSet(), batched = IntervalSet()
            var bitmap = [Bool](repeating: false, count: 300)
            var batch: [Range<UInt64>] = []
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                let lo = UInt64.random(in: 0..<290, using: &rng)
                let r = lo..<(lo + UInt64.random(in: 0...10, using: &rng))
                single.insert(r)
                batch.append(r)
                for k in r { bitmap[Int(k)] = true }
                if Bool.random(using: &rng) { batched.insert(contentsOf: batch); batch = [] }
            }
            batched.insert(contentsOf: batch)
            var expected: [Range<UInt64>] = []
            var k = 0
            while k < bitmap.count {
                if bitmap[k] {
                    let start = k
                    while k < bitmap.count && bitmap[k] { k += 1 }
                    expected.append(UInt64(start)..<UInt64(k))
                } else { k += 1 }
            }
            #expect(single.ranges == expected)
            #expect(batched.ranges == expected)
            for r in expected { #expect(single.contains(r)) }
        }
    }

    @Test func largeUnsortedDeleteSetIsLinearithmic() throws {
        // 100 000 disjoint deletions of client 1 in shuffled order, in one update
        var rng = SeededRNG(seed: 8)
        let clocks = (0..<100_000).map { UInt64($0) * 2 }.shuffled(using: &rng)
        var e = Lib0Encoder(capacity: 1_000_000)
        e.writeRaw([0, 1, 1]); e.writeVarUInt(UInt64(clocks.count))
        for c in clocks { e.writeVarUInt(c); e.writeVarUInt(1) }
        let store = DocumentStore(persistence: InMemoryPersistence())
        let start = ContinuousClock.now
        #expect(try store.applyUpdate(room: "r", update: e.bytes).changed)
        #expect(ContinuousClock.now - start < .seconds(30))
        #expect(try !store.applyUpdate(room: "r", update: e.bytes).changed)
        // the same deletions as 100 000 one-range entries of a repeated client
        var f = Lib0Encoder(capacity: 1_000_000)
        f.writeRaw([0]); f.writeVarUInt(UInt64(clocks.count))
        for c in clocks { f.writeVarUInt(1); f.writeVarUInt(1); f.writeVarUInt(c + 1); f.writeVarUInt(1) }
        let t2 = ContinuousClock.now
        #expect(try YUpdate.deleteSet(of: f.bytes).clients[1]?.count == clocks.count)
        #expect(try store.applyUpdate(room: "r", update: f.bytes).changed)
        #expect(ContinuousClock.now - t2 < .seconds(30))
    }
}
