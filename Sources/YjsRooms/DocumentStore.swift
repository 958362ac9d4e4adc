import RelayJSON
import YjsCodec
// Per-room Yjs document store: merged state + pending log, durable appends, compaction,
// eviction of idle rooms, size limits, and awareness tracking.
import Synchronization

/// Errors of the document store.
public enum DocumentStoreError: Error, Equatable, Sendable {
    /// Accepting the update would make the room hold more than `limit` bytes.
    case roomTooLarge(room: String, limit: Int)
    /// The update or state vector was malformed.
    case invalidInput(YjsDecodingError)
    /// The persistence layer failed; the update was not accepted (nothing of it is in the room).
    /// `kind` says why when the persistence knows (a full or read-only disk), for the close reason.
    case persistenceFailed(String, kind: StorageFailure = .other)
    /// An awareness update over `maxAwarenessStateBytes` or `maxAwarenessClientsPerConnection`
    /// (nothing applied); the text says which.
    case awarenessLimit(String)
}

/// Why durable storage refused a write, as far as the persistence can tell. Its `rawValue` is
/// the text relayd puts in the close reason (`update not stored: storage full`).
public enum StorageFailure: String, Sendable, Equatable {
    /// The disk (or a size cap) is full: SQLITE_FULL, or an I/O error with no space left.
    case full = "storage full"
    /// The file system is read-only (e.g. remounted read-only after disk errors): SQLITE_READONLY,
    /// or an I/O error on a read-only mount.
    case readOnly = "storage read-only"
    /// Any other I/O error of the disk.
    case io = "storage I/O error"
    /// The database file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB): restore it from a backup.
    case corrupt = "storage corrupt"
    /// Anything else.
    case other = "storage error"
}

/// A persistence error that knows its `StorageFailure` (SQLitePersistence throws these).
public protocol ClassifiedStorageError: Error {
    var storageFailure: StorageFailure { get }
}

extension DocumentStoreError {
    /// Wraps an error of the persistence layer, keeping its classification.
    static func persistence(_ error: any Error) -> DocumentStoreError {
        .persistenceFailed("\(error)", kind: (error as? any ClassifiedStorageError)?.storageFailure ?? .other)
    }
}

/// One update as stored in the persistence log.
public struct LoggedUpdate: Sendable, Equatable {
    public var seq: Int64
    public var update: [UInt8]
    public init(seq: Int64, update: [UInt8]) { self.seq = seq; self.update = update }
}

/// What persistence holds for a room: a compacted snapshot covering log entries up to
/// `snapshotThroughSeq`, and the log entries after it, in sequence order.
public struct PersistedRoom: Sendable, Equatable {
    public var snapshot: [UInt8]?
    public var snapshotThroughSeq: Int64
    public var log: [LoggedUpdate]
    public init(snapshot: [UInt8]? = nil, snapshotThroughSeq: Int64 = 0, log: [LoggedUpdate] = []) {
        self.snapshot = snapshot; self.snapshotThroughSeq = snapshotThroughSeq; self.log = log
    }
}

/// Durable storage for rooms. `append` must be durable when it returns.
/// Implementations must be safe to call from several threads (different rooms concurrently).
public protocol YjsPersistence: Sendable {
    func load(room: String) throws -> PersistedRoom
    func append(room: String, entry: LoggedUpdate) throws
    /// Replaces the snapshot by `snapshot` (covering entries ≤ `throughSeq`) and deletes those
    /// log entries, atomically. Ignored if an equal or newer snapshot is already stored.
    func compact(room: String, snapshot: [UInt8], throughSeq: Int64) throws
    /// Performs `writes` in order as one durable transaction: all of them or none
    /// (group commit: one sync to disk for many updates).
    func write(_ writes: [PersistenceWrite]) throws
}

/// A persistence on a server (PostgreSQL) that can say whether it is reachable now (`/readyz`).
public protocol YjsPersistenceHealth: Sendable {
    /// A short name of the store (`"postgres"`).
    var storeKind: String { get }
    /// Whether a trivial round trip succeeds within a short time.
    func isReachable() async -> Bool
}

extension YjsPersistence {
    /// One write after the other (not atomic): for persistences without transactions.
    public func write(_ writes: [PersistenceWrite]) throws {
        for w in writes {
            switch w {
            case .append(let room, let entry): try append(room: room, entry: entry)
            case .compact(let room, let snapshot, let through): try compact(room: room, snapshot: snapshot, throughSeq: through)
            }
        }
    }
}

/// One write of a group commit.
public enum PersistenceWrite: Sendable, Equatable {
    case append(room: String, entry: LoggedUpdate)
    case compact(room: String, snapshot: [UInt8], throughSeq: Int64)

    /// The room written.
    public var room: String {
        switch self {
        case .append(let room, _), .compact(let room, _, _): return room
        }
    }
}

/// Volatile persistence (tests, ephemeral relays). Survives room eviction, not process exit.
public final class InMemoryPersistence: YjsPersistence {
    private let rooms = Mutex<[ExactName: PersistedRoom]>([:])
    public init() {}

    public func load(room: String) throws -> PersistedRoom {
        rooms.withLock { $0[ExactName(room)] ?? PersistedRoom() }
    }

    public func append(room: String, entry: LoggedUpdate) throws {
        rooms.withLock { $0[ExactName(room), default: PersistedRoom()].log.append(entry) }
    }

    public func compact(room: String, snapshot: [UInt8], throughSeq: Int64) throws {
        rooms.withLock { all in
            var r = all[ExactName(room)] ?? PersistedRoom()
            guard r.snapshot == nil || throughSeq > r.snapshotThroughSeq else { return }
            r.snapshot = snapshot
            r.snapshotThroughSeq = throughSeq
            r.log.removeAll { $0.seq <= throughSeq }
            all[ExactName(room)] = r
        }
    }
}

/// Tuning and limits of a `DocumentStore`.
public struct DocumentStoreOptions: Sendable {
    /// Maximum bytes a room may hold (merged state + pending updates).
    public var maxRoomBytes: Int = 64 << 20
    /// Fold pending updates into the merged state when at least this many are pending and their
    /// size is at least `foldRatio` of the merged state (amortizes merge cost).
    public var foldMinPending: Int = 64
    public var foldRatio: Double = 0.25
    /// Always fold when this many updates are pending.
    public var foldMaxPending: Int = 4096
    /// Write a snapshot to persistence (and drop its log entries) when at least this many log
    /// entries accumulated since the last snapshot and their size reaches `persistRatio` of the
    /// snapshot (so compaction cost stays proportional to the data written, never a fold per update).
    public var persistCompactionThreshold: Int = 500
    public var persistRatio: Double = 0.5
    /// Coalesce structs (`YUpdate.coalesced`) whenever pending updates are folded into the state.
    public var coalesce: Bool = true
    /// Rooms for which deleted content is kept (no garbage collection). Every other room's
    /// state is garbage-collected as a Yjs `Y.Doc` with `gc: true` would (`YUpdate.collectingGarbage`)
    /// whenever pending updates are folded, so snapshots and late joiners get the collected state.
    public var keepHistory: @Sendable (_ room: String) -> Bool = { _ in false }
    /// Run persistence compaction on a detached task instead of inline.
    public var backgroundCompaction: Bool = true
    /// Rooms untouched for this long and without awareness states are evicted by `evictIdleRooms`.
    public var idleTimeout: Duration = .seconds(300)
    /// Awareness states not renewed for this long expire (y-protocols: 30 s).
    public var awarenessTimeout: Duration = .seconds(30)
    /// Largest awareness state of one client, in bytes of JSON (y-websocket's are user, colour and
    /// cursor: well under 1 KiB). Bounds a room's awareness memory with the next limit.
    public var maxAwarenessStateBytes: Int = 64 << 10
    /// Client IDs one connection may speak for in a room's awareness (a y-websocket client has one
    /// per document). Without it one connection could fill the table with made-up clients.
    public var maxAwarenessClientsPerConnection: Int = 8

    public init() {}
}

/// The result of `applyUpdate`.
public struct AppliedUpdate: Sendable, Equatable {
    /// False when the update added nothing new (no structs or deletions unknown to the room);
    /// such an update is not stored and should not be broadcast.
    public var changed: Bool
    /// Log sequence number of the stored update (nil when unchanged).
    public var seq: Int64?
    /// Bytes the room holds after the update.
    public var roomBytes: Int
}

/// Stores Yjs documents per room, without a document model: a merged v1 state plus pending
/// updates, with an incrementally maintained state vector. Thread-safe: each room has its own
/// lock, so rooms proceed in parallel; persistence appends happen under the room lock, in order.
public final class DocumentStore: Sendable {
    private let persistence: any YjsPersistence
    private let options: DocumentStoreOptions
    private let clock: @Sendable () -> Duration
    private let rooms = Mutex<[ExactName: Room]>([:])  // byte identity: see ExactName

    /// - Parameter clock: monotonic time source (injected for eviction/awareness tests).
    public init(persistence: any YjsPersistence, options: DocumentStoreOptions = DocumentStoreOptions(),
                clock: @escaping @Sendable () -> Duration = { ContinuousClock.now - DocumentStore.processStart }) {
        self.persistence = persistence
        self.options = options
        self.clock = clock
    }

    /// Reference instant for the default clock.
    public static let processStart = ContinuousClock.now

    final class Room: Sendable {
        let state: Mutex<RoomState>
        init(_ s: RoomState) { state = Mutex(s) }
    }

    struct RoomState: Sendable {
        var loaded = false
        /// Set when the room was evicted; holders of a stale reference must look it up again.
        var evicted = false
        var merged: [UInt8] = YUpdate.empty
        var pending: [LoggedUpdate] = []
        var pendingBytes = 0
        var known = KnownState()
        var lastSeq: Int64 = 0
        var persistedThroughSeq: Int64 = 0
        var persistedSnapshotBytes = 0
        var logBytesSinceSnapshot = 0
        var compacting = false
        /// `options.keepHistory(room)`, decided when the room is loaded.
        var keepHistory = false
        /// Whether an update with deletions arrived since the state was last garbage-collected
        /// (a fold without any has nothing new to collect, and skips the pass).
        var uncollectedDeletions = false
        var awareness: AwarenessTable
        var lastAccess: Duration
        var bytes: Int { merged.count + pendingBytes }
    }

    private func room(_ name: String) -> Room {
        let now = clock()
        let key = ExactName(name)
        return rooms.withLock { all in
            if let r = all[key] { return r }
            let r = Room(RoomState(awareness: AwarenessTable(timeout: options.awarenessTimeout), lastAccess: now))
            all[key] = r
            return r
        }
    }

    private enum Attempt<T> { case retry, done(T) }

    /// Runs `body` under the room's lock with the room loaded, retrying if it was just evicted.
    private func withRoom<T>(_ name: String, _ body: (Room, inout RoomState) throws -> T) throws -> T {
        while true {
            let r = room(name)
            let a: Attempt<T> = try r.state.withLock { s in
                if s.evicted { return .retry }
                try ensureLoaded(name, &s)
                return .done(try body(r, &s))
            }
            if case .done(let x) = a { return x }
        }
    }

    /// Loads the room from persistence on first use (under the room lock).
    private func ensureLoaded(_ name: String, _ s: inout RoomState) throws {
        s.lastAccess = clock()
        if s.loaded { return }
        s.keepHistory = options.keepHistory(name)
        let p: PersistedRoom
        do { p = try persistence.load(room: name) } catch { throw DocumentStoreError.persistence(error) }
        var parts: [[UInt8]] = []
        if let snap = p.snapshot { parts.append(snap) }
        parts.append(contentsOf: p.log.map(\.update))
        do {
            for u in parts { s.known.insert(try KnownState.ranges(of: u)) }
            s.merged = parts.isEmpty ? YUpdate.empty : try YUpdate.merge(parts)
            if parts.count > 1 { s.merged = try folded(s.merged, collect: !s.keepHistory) }
        } catch let e as YjsDecodingError {
            throw DocumentStoreError.invalidInput(e)
        }
        s.persistedThroughSeq = p.snapshotThroughSeq
        s.persistedSnapshotBytes = p.snapshot?.count ?? 0
        s.logBytesSinceSnapshot = p.log.reduce(0) { $0 + $1.update.count }
        s.lastSeq = max(p.snapshotThroughSeq, p.log.last?.seq ?? 0)
        s.loaded = true
    }

    /// A merged state as the room keeps it: garbage-collected when asked (the room does not keep
    /// its history and something was deleted since the last collection), then coalesced.
    private func folded(_ merged: [UInt8], collect: Bool) throws -> [UInt8] {
        let collected = collect ? try YUpdate.collectingGarbage(merged) : merged
        return options.coalesce ? try YUpdate.coalesced(collected) : collected
    }

    private func foldPending(_ s: inout RoomState) throws {
        guard !s.pending.isEmpty else { return }
        let merged = try YUpdate.merge([s.merged] + s.pending.map(\.update))
        s.merged = try folded(merged, collect: !s.keepHistory && s.uncollectedDeletions)
        s.uncollectedDeletions = false
        s.pending.removeAll(keepingCapacity: true)
        s.pendingBytes = 0
    }

    /// `original`'s known-state ranges, and the update itself in Yjs's canonical block order
    /// (canonicalized when its client blocks are not in descending order).
    private static func canonical(_ original: [UInt8]) throws -> ([UInt8], KnownState.Ranges) {
        do {
            let ranges = try KnownState.ranges(of: original)
            if ranges.canonicalOrder { return (original, ranges) }
            let update = try YUpdate.canonicalized(original)
            return (update, try KnownState.ranges(of: update))
        } catch let e as YjsDecodingError {
            throw DocumentStoreError.invalidInput(e)
        }
    }

    /// Adds a new update to the room's pending list and folds when enough is pending (under the room lock).
    private func addPending(_ entry: LoggedUpdate, _ ranges: KnownState.Ranges, _ s: inout RoomState) throws {
        s.pending.append(entry)
        s.pendingBytes += entry.update.count
        if ranges.hasDeletions { s.uncollectedDeletions = true }
        s.known.insert(ranges)
        if s.pending.count >= options.foldMaxPending ||
            (s.pending.count >= options.foldMinPending && Double(s.pendingBytes) >= options.foldRatio * Double(s.merged.count)) {
            try foldPending(&s)
        }
    }

    /// Validates `update`, appends it durably and adds it to the room. Returns after the update
    /// is durable, so the caller may then broadcast it. Throws `DocumentStoreError.roomTooLarge`
    /// (nothing stored) when the room would exceed `maxRoomBytes`.
    /// An update whose client blocks are not in Yjs's descending order is stored canonicalized.
    @discardableResult
    public func applyUpdate(room name: String, update original: [UInt8]) throws -> AppliedUpdate {
        let (update, ranges) = try Self.canonical(original)
        let (r, applied, compaction): (Room, AppliedUpdate, (snapshot: [UInt8], through: Int64, logBytes: Int)?) = try withRoom(name) { r, s in
            guard s.known.isNew(ranges) else {
                return (r, AppliedUpdate(changed: false, seq: nil, roomBytes: s.bytes), nil)
            }
            if s.bytes + update.count > options.maxRoomBytes {
                throw DocumentStoreError.roomTooLarge(room: name, limit: options.maxRoomBytes)
            }
            let entry = LoggedUpdate(seq: s.lastSeq + 1, update: update)
            do { try persistence.append(room: name, entry: entry) } catch {
                throw DocumentStoreError.persistence(error)
            }
            s.lastSeq = entry.seq
            s.logBytesSinceSnapshot += update.count
            try addPending(entry, ranges, &s)
            var compaction: (snapshot: [UInt8], through: Int64, logBytes: Int)? = nil
            if !s.compacting && s.lastSeq - s.persistedThroughSeq >= Int64(options.persistCompactionThreshold)
                && Double(s.logBytesSinceSnapshot) >= options.persistRatio * Double(s.persistedSnapshotBytes) {
                try foldPending(&s)
                s.compacting = true
                compaction = (s.merged, s.lastSeq, s.logBytesSinceSnapshot)
            }
            return (r, AppliedUpdate(changed: true, seq: entry.seq, roomBytes: s.bytes), compaction)
        }
        if let c = compaction {
            if options.backgroundCompaction {
                Task.detached(priority: .background) { self.persistSnapshot(r, name, c.snapshot, c.through, c.logBytes) }
            } else {
                persistSnapshot(r, name, c.snapshot, c.through, c.logBytes)
            }
        }
        return applied
    }

    /// Adds an update another node already stored durably (multi-node rooms share one
    /// persistence): to memory only, and only if this node has the room loaded (otherwise it will
    /// read the update from persistence when it loads the room). Returns whether it added anything
    /// new, i.e. whether local peers need it. Invalid updates are refused as in `applyUpdate`.
    @discardableResult
    public func applyRemoteUpdate(room name: String, update original: [UInt8]) throws -> Bool {
        guard let r = rooms.withLock({ $0[ExactName(name)] }) else { return false }
        let (update, ranges) = try Self.canonical(original)
        return try r.state.withLock { s in
            guard s.loaded, !s.evicted, s.known.isNew(ranges) else { return false }
            s.lastAccess = clock()
            do { try addPending(LoggedUpdate(seq: 0, update: update), ranges, &s) } catch let e as YjsDecodingError {
                throw DocumentStoreError.invalidInput(e)
            }
            return true
        }
    }

    /// Imports a v2 update (e.g. a Gutenberg `_crdt_document` snapshot) by converting it to v1.
    @discardableResult
    public func applyUpdate(room name: String, updateV2: [UInt8]) throws -> AppliedUpdate {
        let v1: [UInt8]
        do { v1 = try UpdateV2.toV1(updateV2) } catch let e as YjsDecodingError { throw DocumentStoreError.invalidInput(e) }
        return try applyUpdate(room: name, update: v1)
    }

    private func persistSnapshot(_ r: Room, _ name: String, _ snapshot: [UInt8], _ through: Int64, _ coveredLogBytes: Int) {
        let ok = (try? persistence.compact(room: name, snapshot: snapshot, throughSeq: through)) != nil
        r.state.withLock { s in
            if ok && through > s.persistedThroughSeq {
                s.persistedThroughSeq = through
                s.persistedSnapshotBytes = snapshot.count
                s.logBytesSinceSnapshot = max(0, s.logBytesSinceSnapshot - coveredLogBytes)
            }
            s.compacting = false
        }
    }

    /// Folds pending updates and writes a snapshot to persistence now (inline).
    public func compact(room name: String) throws {
        let c: (Room, [UInt8], Int64, Int)? = try withRoom(name) { r, s in
            try foldPending(&s)
            guard !s.compacting, s.lastSeq > s.persistedThroughSeq else { return nil }
            s.compacting = true
            return (r, s.merged, s.lastSeq, s.logBytesSinceSnapshot)
        }
        if let (r, snap, through, bytes) = c { persistSnapshot(r, name, snap, through, bytes) }
    }

    /// The room's state vector (Yjs encoding: clients descending).
    public func stateVector(room name: String) throws -> StateVector {
        try withRoom(name) { _, s in s.known.stateVector }
    }

    /// The answer to a client's sync step 1: exactly what the room holds beyond `stateVector`
    /// (Yjs `diffUpdate` of the merged state; the delete set is always sent whole).
    public func syncStep2(room name: String, forStateVector sv: StateVector) throws -> [UInt8] {
        try withRoom(name) { _, s in
            do {
                try foldPending(&s)
                return try YUpdate.diff(s.merged, against: sv)
            } catch let e as YjsDecodingError { throw DocumentStoreError.invalidInput(e) }
        }
    }

    /// `syncStep2` with an encoded state vector.
    public func syncStep2(room name: String, forEncodedStateVector sv: [UInt8]) throws -> [UInt8] {
        let v: StateVector
        do { v = try StateVector(decoding: sv) } catch let e as YjsDecodingError { throw DocumentStoreError.invalidInput(e) }
        return try syncStep2(room: name, forStateVector: v)
    }

    /// The whole document as one v1 update.
    public func encodedState(room name: String) throws -> [UInt8] {
        try syncStep2(room: name, forStateVector: StateVector())
    }

    /// Bytes the room holds in memory (merged state + pending updates).
    public func roomBytes(room name: String) throws -> Int {
        try withRoom(name) { _, s in s.bytes }
    }

    /// Drops the room from memory whatever its state (its data stays in persistence): after a
    /// failed group commit, the room's memory holds updates the disk does not, so it is reloaded
    /// from what is durable on next use. Awareness states of the room are dropped with it.
    public func discard(room name: String) {
        let key = ExactName(name)
        guard let r = rooms.withLock({ $0[key] }) else { return }
        r.state.withLock { $0.evicted = true }
        rooms.withLock { all in
            if all[key] === r { all[key] = nil }
        }
    }

    /// Names of rooms currently in memory.
    public var loadedRooms: [String] { rooms.withLock { $0.keys.map(\.name).sorted() } }

    /// Removes rooms idle for `idleTimeout` with no awareness states from memory (their data
    /// stays in persistence). Returns the evicted room names.
    @discardableResult
    public func evictIdleRooms() -> [String] {
        let now = clock()
        // Check rooms without holding the table lock (a room may be busy folding); a room is first
        // marked evicted under its own lock (stale holders then retry), then removed from the table.
        let candidates = rooms.withLock { Array($0) }
        var evicted: [(ExactName, Room)] = []
        for (name, r) in candidates {
            let idle = r.state.withLock { s in
                _ = s.awareness.expire(now: now)
                guard !s.evicted, !s.compacting, s.awareness.isEmpty, now - s.lastAccess >= options.idleTimeout else { return false }
                s.evicted = true
                return true
            }
            if idle { evicted.append((name, r)) }
        }
        rooms.withLock { all in
            for (name, r) in evicted where all[name] === r { all[name] = nil }
        }
        return evicted.map(\.0.name).sorted()
    }

    // MARK: Awareness

    /// Applies an encoded awareness update from `connection`; returns the update to broadcast to
    /// every connection of the room (re-encoded accepted entries), or nil if nothing changed.
    public func applyAwareness(room name: String, update: [UInt8], from connection: ConnectionID?) throws -> [UInt8]? {
        let u: AwarenessUpdate
        do { u = try AwarenessUpdate(decoding: update, stateIsValid: JSON.isValid) } catch let e as YjsDecodingError { throw DocumentStoreError.invalidInput(e) }
        let now = clock()
        for e in u.entries where !e.isRemoval && e.state.utf8.count > options.maxAwarenessStateBytes {
            throw DocumentStoreError.awarenessLimit(
                "awareness state of client \(e.clientID) is \(e.state.utf8.count) bytes, over \(options.maxAwarenessStateBytes)")
        }
        return try withRoom(name) { _, s in
            if let c = connection, s.awareness.ownedCount(c, after: u) > options.maxAwarenessClientsPerConnection {
                throw DocumentStoreError.awarenessLimit(
                    "awareness for more than \(options.maxAwarenessClientsPerConnection) client ids on one connection")
            }
            let change = s.awareness.apply(u, from: connection, now: now)
            return change.isEmpty ? nil : s.awareness.encode(clients: change.accepted).encoded()
        }
    }

    /// All current awareness states of the room (to send to a joining connection), or nil.
    public func awarenessStates(room name: String) throws -> [UInt8]? {
        try withRoom(name) { _, s in s.awareness.encodeAll()?.encoded() }
    }

    /// A connection closed: returns the removal update to broadcast, or nil.
    public func connectionClosed(room name: String, connection: ConnectionID) throws -> [UInt8]? {
        try withRoom(name) { _, s in s.awareness.connectionClosed(connection)?.encoded() }
    }

    /// Expires silent awareness states in every loaded room (call every few seconds); returns, per
    /// room with removals, the awareness frame to broadcast.
    public func expireAwarenessInAllRooms() -> [(room: String, frame: [UInt8])] {
        let now = clock()
        let all = rooms.withLock { Array($0) }
        var out: [(room: String, frame: [UInt8])] = []
        for (key, r) in all.sorted(by: { $0.key.name < $1.key.name }) {
            if let u = r.state.withLock({ $0.evicted ? nil : $0.awareness.expire(now: now) }) {
                out.append((key.name, ProtocolMessage.awareness(u.encoded()).encoded()))
            }
        }
        return out
    }

    /// Expires silent awareness states; returns the removal update to broadcast, or nil.
    public func expireAwareness(room name: String) throws -> [UInt8]? {
        let now = clock()
        return try withRoom(name) { _, s in s.awareness.expire(now: now)?.encoded() }
    }
}
