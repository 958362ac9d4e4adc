import Foundation
import PostgresNIO
import RelayPostgres
import Testing
import YjsCodec
import YjsRooms

/// A v1 update: client `client` inserts `char` at the start of root text "t" (clock 0).
func insert(client: UInt8, _ char: Character) -> [UInt8] {
    [0x01, 0x01, client, 0x00, 0x04, 0x01, 0x01, 0x74, 0x01] + Array(String(char).utf8) + [0x00]
}

/// Runs `body` on a thread of its own: the store is synchronous and waits for PostgresNIO, which
/// must not hold one of Swift concurrency's few cooperative threads (relayd calls it on its commit
/// thread and I/O pool).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { cont in
        Thread.detachNewThread { cont.resume(with: Result { try body() }) }
    }
}

extension RealPostgres {
@Suite(.timeLimit(.minutes(3)))
struct PostgresPersistenceTests {
    @Test func urlsParseAndBadOnesSayWhy() throws {
        let c = try PostgresClient.Configuration.fromURL("postgres://relay:s3cret@db.example:6543/relay?sslmode=require")
        #expect(c.host == "db.example" && c.port == 6543 && c.username == "relay" && c.password == "s3cret" && c.database == "relay")
        #expect(throws: PostgresStoreError.self) { try PostgresClient.Configuration.fromURL("mysql://x/y") }
        #expect(throws: PostgresStoreError.self) { try PostgresClient.Configuration.fromURL("postgres://host") }
        #expect(throws: PostgresStoreError.self) { try PostgresClient.Configuration.fromURL("postgres://host/db?sslmode=sometimes") }
    }

    @Test func anUnreachableServerIsAClearError() async throws {
        var c = try PostgresClient.Configuration.fromURL("postgres://postgres@127.0.0.1:1/postgres?sslmode=disable")
        c.options.connectTimeout = .seconds(2)
        await #expect(throws: PostgresStoreError.self) { _ = try await PostgresPersistence.open(c) }
    }

    /// Two nodes (document stores over their own connection pools) write one room; a third that
    /// loads it later sees everything, before and after compaction by either node, and an update
    /// a node appends while another compacts is never lost.
    @Test func nodesShareRoomsAndCompactionNeverLosesAnUpdate() async throws {
        let server = try await PostgresServerProcess()
        defer { server.stop() }
        let config = try PostgresClient.Configuration.fromURL(server.url)
        let pa = try await PostgresPersistence.open(config), pb = try await PostgresPersistence.open(config)
        defer { pa.close(); pb.close() }
        let a = DocumentStore(persistence: pa), b = DocumentStore(persistence: pb)
        let room = "site:s:yjs:post/1"
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        try await onThread {
            for i in 0..<40 { try (i % 2 == 0 ? a : b).applyUpdate(room: room, update: insert(client: UInt8(i + 1), letters[i % 26])) }
        }
        func freshStateVector() async throws -> [UInt64: UInt64] {
            let p = try await PostgresPersistence.open(config)
            defer { p.close() }
            return try await onThread { try DocumentStore(persistence: p).stateVector(room: room).clocks }
        }
        #expect(try await freshStateVector().count == 40)
        // Compaction by a node that has not seen the other's updates still keeps them.
        try await onThread { try a.compact(room: room) }
        #expect(try await freshStateVector().count == 40)
        let stored = try await onThread { try pa.load(room: room) }
        #expect(stored.snapshot != nil && stored.log.isEmpty)
        // Appends racing compactions from both nodes.
        async let appends: Void = onThread { for i in 40..<80 { try b.applyUpdate(room: room, update: insert(client: UInt8(i + 1), "x")) } }
        async let compactions: Void = onThread { for _ in 0..<10 { try pa.compact(room: room, snapshot: [], throughSeq: 0) } }
        _ = try await (appends, compactions)
        try await onThread { try b.compact(room: room) }
        #expect(try await freshStateVector().count == 80)
        #expect(try await onThread { try pb.load(room: room) }.log.isEmpty)
        // Survives the pool's restart (a relayd restart).
        pa.close()
        #expect(try await freshStateVector().count == 80)
    }

    /// Sealed (encrypted) rooms cannot be merged by the relay: the writer's snapshot replaces an
    /// older one and removes the entries it covers, by the writer's numbers; an older snapshot
    /// changes nothing.
    @Test func sealedRoomsKeepTheWritersSnapshotRule() async throws {
        let server = try await PostgresServerProcess()
        defer { server.stop() }
        let p = try await PostgresPersistence.open(try PostgresClient.Configuration.fromURL(server.url))
        defer { p.close() }
        let room = "site:s:yjs-e2e:post/3"
        var loaded = try await onThread {
            for seq in Int64(1)...3 { try p.append(room: room, entry: LoggedUpdate(seq: seq, update: [UInt8(seq), 0xEE])) }
            try p.compact(room: room, snapshot: [9, 9], throughSeq: 2)
            return try p.load(room: room)
        }
        #expect(loaded.snapshot == [9, 9] && loaded.snapshotThroughSeq == 2 && loaded.log == [LoggedUpdate(seq: 3, update: [3, 0xEE])])
        loaded = try await onThread {
            try p.compact(room: room, snapshot: [1], throughSeq: 1)
            return try p.load(room: room)
        }
        #expect(loaded.snapshot == [9, 9] && loaded.log.map(\.seq) == [3])
    }

    /// A group commit is one transaction: a batch with a bad write stores none of it.
    @Test func aBatchIsAllOrNothing() async throws {
        let server = try await PostgresServerProcess()
        defer { server.stop() }
        let p = try await PostgresPersistence.open(try PostgresClient.Configuration.fromURL(server.url))
        defer { p.close() }
        let room = "site:s:yjs:post/2"
        let (failed, log) = try await onThread {
            try p.write([.append(room: room, entry: LoggedUpdate(seq: 1, update: insert(client: 1, "a")))])
            // Compaction merges what is stored: an undecodable stored update makes it throw, and the
            // append before it in the same batch is rolled back.
            try p.write([.append(room: "site:s:yjs:broken", entry: LoggedUpdate(seq: 1, update: [0xFF, 0xFF]))])
            let failed = (try? p.write([.append(room: room, entry: LoggedUpdate(seq: 2, update: insert(client: 2, "b"))),
                                        .compact(room: "site:s:yjs:broken", snapshot: [], throughSeq: 1)])) == nil
            return (failed, try p.load(room: room).log.map(\.update))
        }
        #expect(failed)
        #expect(log == [insert(client: 1, "a")])
    }
}
}
