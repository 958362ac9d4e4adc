// SQLite persistence for the document store (GRDB, WAL, synchronous=FULL).
import Foundation
import GRDB
import YjsRooms
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A SQLite error of `SQLitePersistence`, with what it means for the operator: a full disk,
/// a read-only file system, another I/O error. The description keeps SQLite's own message.
public struct SQLiteStorageError: ClassifiedStorageError, CustomStringConvertible {
    public let storageFailure: StorageFailure
    public let underlying: DatabaseError

    public var description: String { "\(storageFailure.rawValue): \(underlying)" }

    /// SQLITE_FULL is a full disk (or page cap); SQLITE_READONLY a read-only database or file
    /// system; SQLITE_CORRUPT / SQLITE_NOTADB a damaged file. An I/O error (SQLite reports EROFS
    /// and some ENOSPC cases as SQLITE_IOERR_*) is classified by looking at the file system of
    /// `directory`: read-only mount, no space left, or a write probe refused with EROFS / ENOSPC.
    static func classify(_ e: DatabaseError, directory: String) -> StorageFailure {
        classify(primaryResultCode: e.resultCode.rawValue, directory: directory)
    }

    /// The same, from SQLite's primary result code (13 FULL, 8 READONLY, 10 IOERR, 14 CANTOPEN,
    /// 11 CORRUPT, 26 NOTADB).
    static func classify(primaryResultCode code: Int32, directory: String) -> StorageFailure {
        switch code {
        case 13: return .full
        case 8: return .readOnly
        case 11, 26: return .corrupt
        case 10, 14:
            var st = statvfs()
            if statvfs(directory, &st) == 0 {
                if st.f_flag & UInt(ST_RDONLY) != 0 { return .readOnly }
                if UInt64(st.f_bavail) * UInt64(st.f_frsize) < 64 * 1024 { return .full }
            }
            // ext4's emergency read-only state (errors=remount-ro) can leave the mount flags at rw
            // (Linux ≥ 6.x shows `emergency_ro`): only a write attempt tells. Create and remove an
            // empty probe file next to the database.
            let probe = directory + "/.yjs-write-probe-\(getpid())"
            let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            if fd >= 0 {
                close(fd)
                unlink(probe)
                return .io
            }
            switch errno {
            case EROFS: return .readOnly
            case ENOSPC, EDQUOT: return .full
            default: return .io
            }
        default: return .other
        }
    }
}

/// Durable room storage in one SQLite file: a snapshot per room plus an append log.
/// Each `append` is committed with `synchronous=FULL` before it returns.
public final class SQLitePersistence: YjsPersistence {
    private let db: DatabasePool
    private let directory: String

    /// Opens (creating if needed) the database at `path`.
    public init(path: String) throws {
        directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        var config = Configuration()
        // Another process (or a store still compacting in the background) may hold the write lock
        // for a moment: wait for it instead of failing with SQLITE_BUSY.
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        db = try DatabasePool(path: path, configuration: config)
        // GRDB's DatabasePool sets `synchronous = NORMAL` on its writer when it turns WAL on, after
        // `prepareDatabase` ran: in WAL mode NORMAL does not sync the WAL at commit, so an
        // acknowledged update could be lost by a power cut, a kernel crash or a file system that
        // goes read-only after an error (found by Tests/peers/faults). FULL again, on the writer
        // (the only connection that writes; readers never commit).
        try db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        try db.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS yjs_snapshot (
                    room TEXT PRIMARY KEY NOT NULL,
                    state BLOB NOT NULL,
                    through_seq INTEGER NOT NULL
                );
                CREATE TABLE IF NOT EXISTS yjs_update (
                    room TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY (room, seq)
                ) WITHOUT ROWID;
                """)
        }
    }

    /// Runs `body`, turning SQLite errors into `SQLiteStorageError`s that say what failed.
    private func classified<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as DatabaseError {
            throw SQLiteStorageError(storageFailure: SQLiteStorageError.classify(e, directory: directory), underlying: e)
        }
    }

    public func load(room: String) throws -> PersistedRoom {
        try classified { try db.read { db in
            var p = PersistedRoom()
            if let row = try Row.fetchOne(db, sql: "SELECT state, through_seq FROM yjs_snapshot WHERE room = ?", arguments: [room]) {
                let data: [UInt8] = [UInt8](row["state"] as Data)
                p.snapshot = data
                p.snapshotThroughSeq = row["through_seq"]
            }
            let rows = try Row.fetchCursor(db, sql: "SELECT seq, data FROM yjs_update WHERE room = ? AND seq > ? ORDER BY seq",
                                           arguments: [room, p.snapshotThroughSeq])
            while let row = try rows.next() {
                p.log.append(LoggedUpdate(seq: row["seq"], update: [UInt8](row["data"] as Data)))
            }
            return p
        } }
    }

    public func append(room: String, entry: LoggedUpdate) throws {
        try classified { try db.write { db in
            try db.execute(sql: "INSERT INTO yjs_update (room, seq, data) VALUES (?, ?, ?)",
                           arguments: [room, entry.seq, Data(entry.update)])
        } }
    }

    public func compact(room: String, snapshot: [UInt8], throughSeq: Int64) throws {
        try classified { try db.write { db in try Self.compact(db, room: room, snapshot: snapshot, throughSeq: throughSeq) } }
    }

    private static func compact(_ db: Database, room: String, snapshot: [UInt8], throughSeq: Int64) throws {
        let existing = try Int64.fetchOne(db, sql: "SELECT through_seq FROM yjs_snapshot WHERE room = ?", arguments: [room])
        if let e = existing, e >= throughSeq { return }
        try db.execute(sql: "INSERT OR REPLACE INTO yjs_snapshot (room, state, through_seq) VALUES (?, ?, ?)",
                       arguments: [room, Data(snapshot), throughSeq])
        try db.execute(sql: "DELETE FROM yjs_update WHERE room = ? AND seq <= ?", arguments: [room, throughSeq])
    }

    /// All `writes` in one transaction, committed (one sync of the WAL) before it returns.
    public func write(_ writes: [PersistenceWrite]) throws {
        guard !writes.isEmpty else { return }
        try classified { try db.write { db in
            for w in writes {
                switch w {
                case .append(let room, let entry):
                    try db.execute(sql: "INSERT INTO yjs_update (room, seq, data) VALUES (?, ?, ?)",
                                   arguments: [room, entry.seq, Data(entry.update)])
                case .compact(let room, let snapshot, let throughSeq):
                    try Self.compact(db, room: room, snapshot: snapshot, throughSeq: throughSeq)
                }
            }
        } }
    }

    /// Runs `sql` on the writer connection (tests: `PRAGMA max_page_count` as a full disk,
    /// `PRAGMA query_only` as a read-only one).
    func executeOnWriter(sql: String) throws {
        try db.writeWithoutTransaction { try $0.execute(sql: sql) }
    }

    /// `PRAGMA synchronous` of the writer connection (2 = FULL), for tests.
    func writerSynchronous() throws -> Int {
        try db.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Number of log rows stored for `room` (for tests and diagnostics).
    public func logCount(room: String) throws -> Int {
        try db.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM yjs_update WHERE room = ?", arguments: [room]) ?? 0
        }
    }
}
