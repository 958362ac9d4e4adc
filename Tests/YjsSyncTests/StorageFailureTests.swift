import Foundation
import Synchronization
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// A full or read-only disk: the refused update leaves nothing behind (not in the room, not
/// broadcast), the error says which failure it was (relayd's close reason), everything
/// acknowledged before survives a reopen, and the same update is accepted once the disk is fixed.
@Suite struct StorageFailureTests {
    /// `n` appends by client 3 of `length` characters each, every one an update of its own.
    static func typing(_ n: Int, length: Int) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var clock: UInt64 = 0
        for i in 0..<n {
            let text = String(repeating: String(UnicodeScalar(UInt8(0x61 + i % 26))), count: length)
            var e = Lib0Encoder()
            e.writeRaw([1, 1, 3]); e.writeVarUInt(clock)
            if i == 0 {
                e.writeUInt8(0x04); e.writeRaw([1, 1, 0x74])  // String, parent: root type "t"
            } else {
                e.writeUInt8(0x84); e.writeUInt8(3); e.writeVarUInt(clock - 1)  // String with origin
            }
            e.writeVarString(text); e.writeUInt8(0)
            out.append(e.bytes)
            clock += UInt64(length)
        }
        return out
    }

    static func tempPath() throws -> (URL, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("yjs-fault-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return (dir, dir.appendingPathComponent("yjs.sqlite").path)
    }

    @Test func fullDiskRefusesClassifiedAndLosesNothing() throws {
        let (dir, path) = try Self.tempPath()
        defer { try? FileManager.default.removeItem(at: dir) }
        let updates = Self.typing(200, length: 1500)
        var o = DocumentStoreOptions()
        o.backgroundCompaction = false
        var acknowledged = 0
        do {
            let p = try SQLitePersistence(path: path)
            // SQLite's page cap gives SQLITE_FULL exactly as a full disk does.
            try p.executeOnWriter(sql: "PRAGMA max_page_count = 12")
            let store = DocumentStore(persistence: p, options: o)
            var failure: DocumentStoreError?
            for u in updates {
                do {
                    #expect(try store.applyUpdate(room: "doc", update: u).changed)
                    acknowledged += 1
                } catch let e as DocumentStoreError {
                    failure = e
                    break
                }
            }
            #expect(acknowledged > 0 && acknowledged < updates.count, "the cap must stop the typing part-way")
            guard case .persistenceFailed(let detail, let kind)? = failure else {
                Issue.record("expected persistenceFailed, got \(String(describing: failure))")
                return
            }
            #expect(kind == .full, "\(detail)")
            #expect(detail.contains("storage full"), "\(detail)")
            // The refused update is not in the room: the state vector ends at the last acknowledged one.
            let acknowledgedClock = UInt64(acknowledged * 1500)
            #expect(try store.stateVector(room: "doc") == StateVector([3: acknowledgedClock]))
            // Refused again, still classified, still nothing half-applied.
            #expect(throws: DocumentStoreError.persistenceFailed(detail, kind: .full)) {
                try store.applyUpdate(room: "doc", update: updates[acknowledged])
            }
            #expect(try store.stateVector(room: "doc") == StateVector([3: acknowledgedClock]))
            // Space freed: the same update is accepted now, with the next sequence number.
            try p.executeOnWriter(sql: "PRAGMA max_page_count = 1073741823")
            let again = try store.applyUpdate(room: "doc", update: updates[acknowledged])
            #expect(again.changed && again.seq == Int64(acknowledged + 1))
            acknowledged += 1
        }
        // Reopened (no shutdown): everything acknowledged is there, nothing else.
        let store2 = DocumentStore(persistence: try SQLitePersistence(path: path), options: o)
        #expect(try store2.stateVector(room: "doc") == StateVector([3: UInt64(acknowledged * 1500)]))
        #expect(try store2.applyUpdate(room: "doc", update: updates[acknowledged]).seq == Int64(acknowledged + 1))
    }

    @Test func readOnlyDatabaseRefusesClassified() throws {
        let (dir, path) = try Self.tempPath()
        defer { try? FileManager.default.removeItem(at: dir) }
        let updates = Self.typing(4, length: 10)
        let p = try SQLitePersistence(path: path)
        let store = DocumentStore(persistence: p)
        #expect(try store.applyUpdate(room: "doc", update: updates[0]).changed)
        try p.executeOnWriter(sql: "PRAGMA query_only = 1")
        do {
            try store.applyUpdate(room: "doc", update: updates[1])
            Issue.record("a read-only database accepted an update")
        } catch DocumentStoreError.persistenceFailed(let detail, let kind) {
            #expect(kind == .readOnly, "\(detail)")
        }
        // Reads still work: a room not loaded yet loads from the read-only file.
        let reader = DocumentStore(persistence: try SQLitePersistence(path: path))
        #expect(try reader.stateVector(room: "doc") == StateVector([3: 10]))
        try p.executeOnWriter(sql: "PRAGMA query_only = 0")
        #expect(try store.applyUpdate(room: "doc", update: updates[1]).seq == 2)
    }

    /// Every acknowledged update must be on disk (fsync'd WAL), not just in the page cache: the
    /// writer connection must run with synchronous=FULL.
    @Test func writerIsSynchronousFull() throws {
        let (dir, path) = try Self.tempPath()
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = try SQLitePersistence(path: path)
        #expect(try p.writerSynchronous() == 2)
        let store = DocumentStore(persistence: p)
        #expect(try store.applyUpdate(room: "doc", update: Self.typing(1, length: 3)[0]).changed)
        #expect(try p.writerSynchronous() == 2)
    }

    @Test func classification() {
        let dir = FileManager.default.temporaryDirectory.path
        #expect(SQLiteStorageError.classify(primaryResultCode: 13, directory: dir) == .full)  // SQLITE_FULL
        #expect(SQLiteStorageError.classify(primaryResultCode: 8, directory: dir) == .readOnly)  // SQLITE_READONLY
        #expect(SQLiteStorageError.classify(primaryResultCode: 10, directory: dir) == .io,  // SQLITE_IOERR
                "an I/O error on a writable file system with space left")
        #expect(SQLiteStorageError.classify(primaryResultCode: 11, directory: dir) == .corrupt)  // SQLITE_CORRUPT
        #expect(SQLiteStorageError.classify(primaryResultCode: 19, directory: dir) == .other)  // SQLITE_CONSTRAINT
        #expect(StorageFailure.full.rawValue == "storage full" && StorageFailure.readOnly.rawValue == "storage read-only")
        // An error without a classification (another persistence) is `.other`.
        struct Plain: Error {}
        #expect(DocumentStoreError.persistence(Plain()) == .persistenceFailed("Plain()", kind: .other))
    }
}
