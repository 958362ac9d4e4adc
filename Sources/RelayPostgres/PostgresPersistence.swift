import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import YjsCodec
import YjsRooms
import Synchronization

/// Yjs rooms in PostgreSQL, shared by every relayd node of a cluster (issue 14, item 3): the
/// `YjsPersistence` of a multi-node relayd (`--database postgres://…`).
///
/// Tables (created if missing):
///
/// | table | columns | holds |
/// |---|---|---|
/// | `relay_yjs_rooms` | `room` text key, `snapshot` bytea, `through_id` bigint | the compacted state of a room |
/// | `relay_yjs_updates` | `id` bigserial key, `room` text, `seq` bigint, `data` bytea | updates stored since, any node's (`seq`: the writer's own number) |
///
/// Invariants: an update is acknowledged (its `append` or `write` returns) only once its
/// transaction committed. Compaction never trusts a node's memory (which may lack another
/// node's latest updates): in one transaction it locks the room's row, merges the stored
/// snapshot with the updates it reads, writes the merge and deletes exactly the updates it read,
/// so an update committed meanwhile by another node stays in the log. Loading returns the
/// snapshot and every update still logged (merging is idempotent, so one covered by the
/// snapshot and still logged does no harm).
///
/// Encrypted rooms (`isYjsRoom(room)` false; by default names containing `:yjs-e2e:`) hold
/// sealed entries the relay cannot merge: they keep the single-writer rule of the SQLite store
/// (the writer's snapshot replaces the stored one if newer, and the log entries it covers, by
/// the writer's `seq`, are deleted), so each such room must be served by one node at a time.
///
/// `YjsPersistence` is synchronous (the document store calls it on its commit thread or the
/// Yjs I/O pool, never on an event loop); each call waits for PostgresNIO there, so never call
/// it from Swift concurrency's cooperative threads (it would hold one while it waits).
public final class PostgresPersistence: YjsPersistence, YjsPersistenceHealth, @unchecked Sendable {
    public let client: PostgresClient
    private let logger: Logger
    private let collectGarbage: @Sendable (String) -> Bool
    private let isYjsRoom: @Sendable (String) -> Bool
    /// Longest wait for a load or a commit; past it the call fails (the update is refused, and
    /// the client sends it again when it reconnects), instead of holding the commit thread.
    public let timeout: Duration
    private let runner: Task<Void, Never>

    /// Connects (the pool runs until `close()`), creates the tables if missing, and fails with a
    /// clear error when the server cannot be reached within the connect timeout (+5 s).
    /// `collectGarbage(room)`: whether compaction garbage-collects the room (as Yjs `gc: true`).
    public static func open(_ configuration: PostgresClient.Configuration, logger: Logger = Logger(label: "relay.yjs.postgres"),
                            collectGarbage: @escaping @Sendable (String) -> Bool = { _ in true },
                            isYjsRoom: @escaping @Sendable (String) -> Bool = { !$0.contains(":yjs-e2e:") },
                            timeout: Duration = .seconds(30)) async throws -> PostgresPersistence {
        let p = PostgresPersistence(configuration, logger: logger, collectGarbage: collectGarbage, isYjsRoom: isYjsRoom, timeout: timeout)
        // PostgresNIO's pool retries a refused connection for ever: the first round trip gets a deadline.
        let deadline = configuration.options.connectTimeout + .seconds(5)
        let client = p.client
        do {
            try await within(deadline, "no connection to \(configuration.host ?? "the server"):\(configuration.port ?? 5432)") {
                try await client.query("""
                    CREATE TABLE IF NOT EXISTS relay_yjs_rooms (room TEXT PRIMARY KEY, snapshot BYTEA, through_id BIGINT NOT NULL DEFAULT 0)
                    """, logger: logger)
                try await client.query("""
                    CREATE TABLE IF NOT EXISTS relay_yjs_updates (id BIGSERIAL PRIMARY KEY, room TEXT NOT NULL, seq BIGINT NOT NULL, data BYTEA NOT NULL)
                    """, logger: logger)
                try await client.query("CREATE INDEX IF NOT EXISTS relay_yjs_updates_room ON relay_yjs_updates (room, id)", logger: logger)
            }
        } catch {
            p.close()
            throw PostgresStoreError("cannot prepare the Yjs tables: \(error)")
        }
        return p
    }

    private init(_ configuration: PostgresClient.Configuration, logger: Logger, collectGarbage: @escaping @Sendable (String) -> Bool,
                 isYjsRoom: @escaping @Sendable (String) -> Bool, timeout: Duration) {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        self.collectGarbage = collectGarbage
        self.isYjsRoom = isYjsRoom
        self.timeout = timeout
        runner = Task.detached { await client.run() }
    }

    public var storeKind: String { "postgres" }

    /// `SELECT 1` within 2 seconds.
    public func isReachable() async -> Bool {
        let client = self.client, logger = self.logger
        return (try? await Self.within(.seconds(2), "no answer") { try await client.query("SELECT 1", logger: logger); return true }) ?? false
    }

    /// Stops the connection pool.
    public func close() { runner.cancel() }

    deinit { runner.cancel() }

    public func load(room: String) throws -> PersistedRoom {
        let merged = isYjsRoom(room)
        return try Self.blocking { [client, logger, timeout] in
          try await Self.within(timeout, "PostgreSQL did not answer within \(timeout)") {
            var result = PersistedRoom()
            for try await (snapshot, through) in try await client.query(
                "SELECT snapshot, through_id FROM relay_yjs_rooms WHERE room = \(room)", logger: logger
            ).decode((ByteBuffer?, Int64).self) {
                result.snapshot = snapshot.map { Array($0.readableBytesView) }
                result.snapshotThroughSeq = through
            }
            // A Yjs room's entries are numbered by id (several writers); a sealed room's by its writer.
            for try await (id, seq, data) in try await client.query(
                "SELECT id, seq, data FROM relay_yjs_updates WHERE room = \(room) ORDER BY id", logger: logger
            ).decode((Int64, Int64, ByteBuffer).self) {
                result.log.append(LoggedUpdate(seq: merged ? id : seq, update: Array(data.readableBytesView)))
            }
            return result
          }
        }
    }

    public func append(room: String, entry: LoggedUpdate) throws {
        try write([.append(room: room, entry: entry)])
    }

    /// Compacts the room from what is stored (the arguments, a node's view, are not used: see
    /// the invariants above).
    public func compact(room: String, snapshot: [UInt8], throughSeq: Int64) throws {
        try write([.compact(room: room, snapshot: snapshot, throughSeq: throughSeq)])
    }

    /// All writes in one transaction, committed before this returns.
    public func write(_ writes: [PersistenceWrite]) throws {
        guard !writes.isEmpty else { return }
        let collect = collectGarbage, isYjsRoom = self.isYjsRoom
        try Self.blocking { [client, logger, timeout] in
          try await Self.within(timeout, "PostgreSQL did not commit within \(timeout)") {
            try await client.withTransaction(logger: logger) { conn in
                for w in writes {
                    switch w {
                    case .append(let room, let entry):
                        let data = ByteBuffer(bytes: entry.update)
                        try await conn.query("INSERT INTO relay_yjs_updates (room, seq, data) VALUES (\(room), \(entry.seq), \(data))", logger: logger)
                    case .compact(let room, let snapshot, let through):
                        if isYjsRoom(room) {
                            try await Self.compact(room: room, on: conn, collect: collect(room), logger: logger)
                        } else {
                            try await Self.replaceSnapshot(room: room, snapshot: snapshot, through: through, on: conn, logger: logger)
                        }
                    }
                }
            }
          }
        }
    }

    static func compact(room: String, on conn: PostgresConnection, collect: Bool, logger: Logger) async throws {
        try await conn.query("INSERT INTO relay_yjs_rooms (room) VALUES (\(room)) ON CONFLICT (room) DO NOTHING", logger: logger)
        var parts: [[UInt8]] = []
        for try await snapshot in try await conn.query(
            "SELECT snapshot FROM relay_yjs_rooms WHERE room = \(room) FOR UPDATE", logger: logger
        ).decode(ByteBuffer?.self) {
            if let snapshot { parts.append(Array(snapshot.readableBytesView)) }
        }
        var ids: [Int64] = []
        for try await (id, data) in try await conn.query(
            "SELECT id, data FROM relay_yjs_updates WHERE room = \(room) ORDER BY id", logger: logger
        ).decode((Int64, ByteBuffer).self) {
            ids.append(id)
            parts.append(Array(data.readableBytesView))
        }
        guard let through = ids.last else { return }
        var merged = try YUpdate.merge(parts)
        if collect { merged = try YUpdate.collectingGarbage(merged) }
        merged = try YUpdate.coalesced(merged)
        let snapshot = ByteBuffer(bytes: merged)
        try await conn.query("UPDATE relay_yjs_rooms SET snapshot = \(snapshot), through_id = \(through) WHERE room = \(room)", logger: logger)
        try await conn.query("DELETE FROM relay_yjs_updates WHERE room = \(room) AND id = ANY(\(ids))", logger: logger)
    }

    /// A sealed room: the writer's snapshot, if newer than the stored one, and the entries it covers.
    static func replaceSnapshot(room: String, snapshot: [UInt8], through: Int64, on conn: PostgresConnection, logger: Logger) async throws {
        let data = ByteBuffer(bytes: snapshot)
        var replaced = false
        for try await _ in try await conn.query("""
            INSERT INTO relay_yjs_rooms (room, snapshot, through_id) VALUES (\(room), \(data), \(through))
            ON CONFLICT (room) DO UPDATE SET snapshot = EXCLUDED.snapshot, through_id = EXCLUDED.through_id
            WHERE relay_yjs_rooms.snapshot IS NULL OR relay_yjs_rooms.through_id < EXCLUDED.through_id
            RETURNING through_id
            """, logger: logger).decode(Int64.self) { replaced = true }
        if replaced {
            try await conn.query("DELETE FROM relay_yjs_updates WHERE room = \(room) AND seq <= \(through)", logger: logger)
        }
    }

    /// `body`'s result, or `PostgresStoreError(why)` once `limit` has passed. The body is
    /// cancelled then but not waited for (PostgresNIO's pool does not give up waiting for a
    /// connection when cancelled, and a task group would wait for it).
    static func within<T: Sendable>(_ limit: Duration, _ why: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let once = Once<T>()
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            once.set(cont)
            let timer = Task {
                try? await Task.sleep(for: limit)
                if !Task.isCancelled { once.finish(.failure(PostgresStoreError(why))) }
            }
            let work = Task {
                do { once.finish(.success(try await body())) } catch { once.finish(.failure(error)) }
                timer.cancel()
            }
            Task {
                _ = await timer.value
                work.cancel()
            }
        }
    }

    /// A continuation resumed by whichever comes first.
    final class Once<T: Sendable>: Sendable {
        private let cont = Mutex<CheckedContinuation<T, any Error>?>(nil)
        func set(_ c: CheckedContinuation<T, any Error>) { cont.withLock { $0 = c } }
        func finish(_ r: Result<T, any Error>) {
            cont.withLock { c in
                c?.resume(with: r)
                c = nil
            }
        }
    }

    /// Runs `body` on the concurrency pool and waits for it on this (non-pool) thread.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task.detached {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }

    private final class ResultBox<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }
}

/// A PostgreSQL store failure, with the server's message.
public struct PostgresStoreError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension PostgresClient.Configuration {
    /// `postgres://[user[:password]@]host[:port]/database[?sslmode=disable|prefer|require]`
    /// (`postgresql://` too). Without `sslmode`: `prefer`, as libpq.
    public static func fromURL(_ text: String) throws -> PostgresClient.Configuration {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql",
              let host = url.host, !host.isEmpty else {
            throw PostgresStoreError("not a postgres:// URL (postgres://user:password@host:port/database)")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        guard !database.isEmpty else { throw PostgresStoreError("the URL names no database (…/database)") }
        let tls: PostgresClient.Configuration.TLS
        switch url.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer" {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
        case let other: throw PostgresStoreError("sslmode=\(other) is not one of disable, prefer, require")
        }
        var c = PostgresClient.Configuration(host: host, port: url.port ?? 5432, username: url.user ?? "postgres",
                                             password: url.password, database: database, tls: tls)
        c.options.connectTimeout = .seconds(10)
        return c
    }
}
