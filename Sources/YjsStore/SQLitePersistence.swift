// SQLite persistence for the document store (GRDB, WAL, synchronous=FULL).
import Foundation
import GRDB
import YjsRooms

/// Durable room storage in one SQLite file: a snapshot per room plus an append log.
/// Each `append` is committed with `synchronous=FULL` before it returns.
public final class SQLitePersistence: YjsPersistence {
    private let db: DatabasePool

    /// Opens (creating if needed) the database at `path`.
    public init(path: String) throws {
        var config = Configuration()
        // Another process (or a store still compacting in the background) may hold the write lock
        // for a moment: wait for it instead of failing with SQLITE_BUSY.
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        db = try DatabasePool(path: path, configuration: config)
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

    public func load(room: String) throws -> PersistedRoom {
        try db.read { db in
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
        }
    }

    public func append(room: String, entry: LoggedUpdate) throws {
        try db.write { db in
            try db.execute(sql: "INSERT INTO yjs_update (room, seq, data) VALUES (?, ?, ?)",
                           arguments: [room, entry.seq, Data(entry.update)])
        }
    }

    public func compact(room: String, snapshot: [UInt8], throughSeq: Int64) throws {
        try db.write { db in
            let existing = try Int64.fetchOne(db, sql: "SELECT through_seq FROM yjs_snapshot WHERE room = ?", arguments: [room])
            if let e = existing, e >= throughSeq { return }
            try db.execute(sql: "INSERT OR REPLACE INTO yjs_snapshot (room, state, through_seq) VALUES (?, ?, ?)",
                           arguments: [room, Data(snapshot), throughSeq])
            try db.execute(sql: "DELETE FROM yjs_update WHERE room = ? AND seq <= ?", arguments: [room, throughSeq])
        }
    }

    /// Number of log rows stored for `room` (for tests and diagnostics).
    public func logCount(room: String) throws -> Int {
        try db.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM yjs_update WHERE room = ?", arguments: [room]) ?? 0
        }
    }
}
