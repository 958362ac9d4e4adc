import YjsCodec
// End-to-end encrypted Yjs rooms: the relay keeps an append-only log of sealed updates with a
// sequence it assigns, the latest sealed snapshot a client made and the sequence it covers, and
// each connection's latest sealed awareness. It never holds a key and cannot read, merge or
// validate what it stores; it checks sizes, grants, sequences and snapshot references.
// Wire format: Docs/protocol.md "Encrypted Yjs rooms"; design: Docs/yjs.md "Encrypted rooms".
import Synchronization

/// Messages of the encrypted-room protocol (first byte of each binary WebSocket message).
public enum EncryptedRoomMessage: Sendable, Equatable {
    // Client → relay
    /// Send me the room from after `knownSeq` (0: everything): snapshot if newer, log, `synced`.
    case syncRequest(knownSeq: UInt64)
    /// A sealed Yjs update to append to the log.
    case update(sealed: [UInt8])
    /// A sealed snapshot of the whole document covering every log entry up to `throughSeq`.
    case snapshot(throughSeq: UInt64, sealed: [UInt8])
    /// The sender's sealed awareness state (replaces its previous one).
    case awareness(sealed: [UInt8])
    // Relay → client
    /// The stored snapshot (sent before the log entries it does not cover).
    case storedSnapshot(throughSeq: UInt64, sealed: [UInt8])
    /// A log entry: a sealed update and the sequence the relay gave it (to everyone, the sender
    /// included: that is the sender's acknowledgement).
    case logEntry(seq: UInt64, sealed: [UInt8])
    /// Catch-up complete: the room's last sequence and the receiver's own peer id.
    case synced(lastSeq: UInt64, peer: UInt64)
    /// Another peer's sealed awareness.
    case peerAwareness(peer: UInt64, sealed: [UInt8])
    /// A peer left: drop its awareness.
    case peerLeft(peer: UInt64)
    /// Please upload a snapshot covering up to `throughSeq` (the log has grown past the thresholds).
    case snapshotRequest(throughSeq: UInt64)
    /// Your snapshot covering `throughSeq` is stored and the covered entries dropped.
    case snapshotStored(throughSeq: UInt64)
    /// A message was refused without closing the connection (a read-only token's update, a stale snapshot).
    case denied(reason: String)

    public static let syncRequestTag: UInt8 = 0x10, updateTag: UInt8 = 0x11, snapshotTag: UInt8 = 0x12, awarenessTag: UInt8 = 0x13
    public static let storedSnapshotTag: UInt8 = 0x20, logEntryTag: UInt8 = 0x21, syncedTag: UInt8 = 0x22
    public static let peerAwarenessTag: UInt8 = 0x23, peerLeftTag: UInt8 = 0x24, snapshotRequestTag: UInt8 = 0x25
    public static let snapshotStoredTag: UInt8 = 0x26, deniedTag: UInt8 = 0x27

    /// Decodes one message; sealed payloads are the rest of the message (no length prefix).
    public init(decoding bytes: [UInt8]) throws {
        var d = Lib0Decoder(bytes)
        let tag = try d.readUInt8()
        func rest() throws -> [UInt8] { Array(bytes[try d.readRawRange(count: d.remaining)]) }
        switch tag {
        case Self.syncRequestTag: self = .syncRequest(knownSeq: try d.readVarUInt())
        case Self.updateTag: self = .update(sealed: try rest())
        case Self.snapshotTag:
            let through = try d.readVarUInt()
            self = .snapshot(throughSeq: through, sealed: try rest())
        case Self.awarenessTag: self = .awareness(sealed: try rest())
        case Self.storedSnapshotTag:
            let through = try d.readVarUInt()
            self = .storedSnapshot(throughSeq: through, sealed: try rest())
        case Self.logEntryTag:
            let seq = try d.readVarUInt()
            self = .logEntry(seq: seq, sealed: try rest())
        case Self.syncedTag:
            let last = try d.readVarUInt()
            self = .synced(lastSeq: last, peer: try d.readVarUInt())
        case Self.peerAwarenessTag:
            let peer = try d.readVarUInt()
            self = .peerAwareness(peer: peer, sealed: try rest())
        case Self.peerLeftTag: self = .peerLeft(peer: try d.readVarUInt())
        case Self.snapshotRequestTag: self = .snapshotRequest(throughSeq: try d.readVarUInt())
        case Self.snapshotStoredTag: self = .snapshotStored(throughSeq: try d.readVarUInt())
        case Self.deniedTag: self = .denied(reason: try d.readVarString())
        default: throw YjsDecodingError.malformed("encrypted-room message type \(tag)", offset: 0)
        }
        if d.remaining != 0 { throw YjsDecodingError.malformed("trailing bytes after encrypted-room message", offset: bytes.count - d.remaining) }
    }

    public func encoded() -> [UInt8] {
        var e = Lib0Encoder()
        switch self {
        case .syncRequest(let k): e.writeUInt8(Self.syncRequestTag); e.writeVarUInt(k)
        case .update(let s): e.writeUInt8(Self.updateTag); e.writeRaw(s)
        case .snapshot(let t, let s): e.writeUInt8(Self.snapshotTag); e.writeVarUInt(t); e.writeRaw(s)
        case .awareness(let s): e.writeUInt8(Self.awarenessTag); e.writeRaw(s)
        case .storedSnapshot(let t, let s): e.writeUInt8(Self.storedSnapshotTag); e.writeVarUInt(t); e.writeRaw(s)
        case .logEntry(let q, let s): e.writeUInt8(Self.logEntryTag); e.writeVarUInt(q); e.writeRaw(s)
        case .synced(let l, let p): e.writeUInt8(Self.syncedTag); e.writeVarUInt(l); e.writeVarUInt(p)
        case .peerAwareness(let p, let s): e.writeUInt8(Self.peerAwarenessTag); e.writeVarUInt(p); e.writeRaw(s)
        case .peerLeft(let p): e.writeUInt8(Self.peerLeftTag); e.writeVarUInt(p)
        case .snapshotRequest(let t): e.writeUInt8(Self.snapshotRequestTag); e.writeVarUInt(t)
        case .snapshotStored(let t): e.writeUInt8(Self.snapshotStoredTag); e.writeVarUInt(t)
        case .denied(let r): e.writeUInt8(Self.deniedTag); e.writeVarString(r)
        }
        return e.bytes
    }
}

/// Why the encrypted-room store refused a message.
public enum EncryptedRoomError: Error, Equatable, Sendable {
    /// Not a message of the protocol, or one a client may not send.
    case invalidMessage(String)
    /// A sealed update or awareness larger than `maxMessageBytes` (or a snapshot over `maxRoomBytes`).
    case messageTooLarge(limit: Int)
    /// Appending would make the room (snapshot + log) exceed `maxRoomBytes`: a client must compact first.
    case roomTooLarge(limit: Int)
    /// Sealed awareness of more than `maxAwarenessBytes`.
    case awarenessTooLarge(limit: Int)
}

/// Limits and compaction thresholds of encrypted rooms.
public struct EncryptedRoomOptions: Sendable {
    /// Bytes a sealed message may exceed the plain limit by (header, nonce, tag: relay-realtime's
    /// sealing adds at most 300).
    public static let sealingAllowance = 1024
    /// Largest sealed update (the plain room's `maxUpdateBytes` plus sealing overhead).
    public var maxMessageBytes = (1 << 20) + sealingAllowance
    /// Largest room: sealed snapshot plus the log after it.
    public var maxRoomBytes = 64 << 20
    /// Largest sealed awareness state.
    public var maxAwarenessBytes = (64 << 10) + sealingAllowance
    /// Ask a client for a snapshot when the log since the snapshot has this many entries...
    public var compactAfterEntries = 500
    /// ...or this many bytes, whichever comes first.
    public var compactAfterBytes = 1 << 20
    /// A snapshot request not answered within this long is made again (to the next writer).
    public var snapshotRequestTimeout: Duration = .seconds(30)
    /// Rooms untouched for this long and without awareness leave memory (they stay in persistence).
    public var idleTimeout: Duration = .seconds(300)

    public init() {}
}

/// Stores encrypted rooms (see the file comment). Thread-safe; each room has its own lock and
/// persistence writes happen under it, in sequence order. Room keys share the persistence with
/// plain rooms (relayd keeps them in a namespace of their own: `site:{id}:yjs-e2e:{room}`).
public final class EncryptedRoomStore: Sendable {
    private let persistence: any YjsPersistence
    private let options: EncryptedRoomOptions
    private let clock: @Sendable () -> Duration
    private let rooms = Mutex<[ExactName: Room]>([:])

    final class Room: Sendable {
        let state: Mutex<RoomState>
        init(_ s: RoomState) { state = Mutex(s) }
    }

    struct RoomState: Sendable {
        var loaded = false
        var evicted = false
        var snapshot: [UInt8]?
        var snapshotThrough: UInt64 = 0
        var log: [(seq: UInt64, sealed: [UInt8])] = []
        var logBytes = 0
        var lastSeq: UInt64 = 0
        var awareness: [UInt64: [UInt8]] = [:]
        var snapshotRequestedAt: Duration?
        var lastAccess: Duration
        var bytes: Int { (snapshot?.count ?? 0) + logBytes }
    }

    public init(persistence: any YjsPersistence, options: EncryptedRoomOptions = EncryptedRoomOptions(),
                clock: @escaping @Sendable () -> Duration = { ContinuousClock.now - DocumentStore.processStart }) {
        self.persistence = persistence
        self.options = options
        self.clock = clock
    }

    private func withRoom<T>(_ name: String, _ body: (inout RoomState) throws -> T) throws -> T {
        let key = ExactName(name)
        while true {
            let now = clock()
            let r = rooms.withLock { all in
                if let r = all[key] { return r }
                let r = Room(RoomState(lastAccess: now))
                all[key] = r
                return r
            }
            let result: T? = try r.state.withLock { s in
                if s.evicted { return nil }
                s.lastAccess = now
                if !s.loaded {
                    let p: PersistedRoom
                    do { p = try persistence.load(room: name) } catch { throw DocumentStoreError.persistence(error) }
                    s.snapshot = p.snapshot
                    s.snapshotThrough = UInt64(max(0, p.snapshotThroughSeq))
                    s.log = p.log.map { (UInt64($0.seq), $0.update) }
                    s.logBytes = p.log.reduce(0) { $0 + $1.update.count }
                    s.lastSeq = max(s.snapshotThrough, s.log.last?.seq ?? 0)
                    s.loaded = true
                }
                return try body(&s)
            }
            if let result { return result }
        }
    }

    /// Handles one message from `connection` (its peer id). `canWrite`: the token grants writing
    /// (updates and snapshots); a read-only connection's are answered with `denied`.
    /// Throws `EncryptedRoomError` (close the connection) or `DocumentStoreError.persistenceFailed`.
    public func handle(room: String, frame: [UInt8], from connection: UInt64, canWrite: Bool) throws -> RoomResponse {
        let message: EncryptedRoomMessage
        do { message = try EncryptedRoomMessage(decoding: frame) } catch {
            throw EncryptedRoomError.invalidMessage("\(error)")
        }
        switch message {
        case .syncRequest(let known):
            return try withRoom(room) { s in
                var reply: [[UInt8]] = []
                var after = known
                if known > s.lastSeq { after = 0 }  // the client has seen sequences this room never had: resend all
                if let snap = s.snapshot, s.snapshotThrough > after {
                    reply.append(EncryptedRoomMessage.storedSnapshot(throughSeq: s.snapshotThrough, sealed: snap).encoded())
                    after = s.snapshotThrough
                }
                for entry in s.log where entry.seq > after {
                    reply.append(EncryptedRoomMessage.logEntry(seq: entry.seq, sealed: entry.sealed).encoded())
                }
                reply.append(EncryptedRoomMessage.synced(lastSeq: s.lastSeq, peer: connection).encoded())
                for (peer, sealed) in s.awareness.sorted(by: { $0.key < $1.key }) where peer != connection {
                    reply.append(EncryptedRoomMessage.peerAwareness(peer: peer, sealed: sealed).encoded())
                }
                return RoomResponse(reply: reply)
            }
        case .update(let sealed):
            guard canWrite else { return RoomResponse(reply: [EncryptedRoomMessage.denied(reason: "read-only token").encoded()]) }
            guard !sealed.isEmpty else { throw EncryptedRoomError.invalidMessage("empty sealed update") }
            guard sealed.count <= options.maxMessageBytes else { throw EncryptedRoomError.messageTooLarge(limit: options.maxMessageBytes) }
            let now = clock()
            return try withRoom(room) { s in
                if s.bytes + sealed.count > options.maxRoomBytes { throw EncryptedRoomError.roomTooLarge(limit: options.maxRoomBytes) }
                let seq = s.lastSeq + 1
                do { try persistence.append(room: room, entry: LoggedUpdate(seq: Int64(seq), update: sealed)) } catch {
                    throw DocumentStoreError.persistence(error)
                }
                s.lastSeq = seq
                s.log.append((seq, sealed))
                s.logBytes += sealed.count
                var reply: [[UInt8]] = []
                let due = s.log.count >= options.compactAfterEntries || s.logBytes >= options.compactAfterBytes
                let pending = s.snapshotRequestedAt.map { now - $0 < options.snapshotRequestTimeout } ?? false
                if due && !pending {
                    s.snapshotRequestedAt = now
                    reply.append(EncryptedRoomMessage.snapshotRequest(throughSeq: seq).encoded())
                }
                // The broadcast (the sender's copy is its acknowledgement) goes before the request.
                return RoomResponse(reply: reply, broadcast: [EncryptedRoomMessage.logEntry(seq: seq, sealed: sealed).encoded()])
            }
        case .snapshot(let through, let sealed):
            guard canWrite else { return RoomResponse(reply: [EncryptedRoomMessage.denied(reason: "read-only token").encoded()]) }
            guard !sealed.isEmpty else { throw EncryptedRoomError.invalidMessage("empty sealed snapshot") }
            guard sealed.count <= options.maxRoomBytes else { throw EncryptedRoomError.messageTooLarge(limit: options.maxRoomBytes) }
            return try withRoom(room) { s in
                guard through > s.snapshotThrough, through <= s.lastSeq else {
                    return RoomResponse(reply: [EncryptedRoomMessage.denied(
                        reason: "snapshot through \(through) refused: stored snapshot covers \(s.snapshotThrough), log ends at \(s.lastSeq)").encoded()])
                }
                do { try persistence.compact(room: room, snapshot: sealed, throughSeq: Int64(through)) } catch {
                    throw DocumentStoreError.persistence(error)
                }
                s.snapshot = sealed
                s.snapshotThrough = through
                s.log.removeAll { $0.seq <= through }
                s.logBytes = s.log.reduce(0) { $0 + $1.sealed.count }
                var reply = [EncryptedRoomMessage.snapshotStored(throughSeq: through).encoded()]
                // Entries that arrived while the snapshot was made may be over the thresholds
                // already: ask the same writer again rather than wait for the next update.
                if s.log.count >= options.compactAfterEntries || s.logBytes >= options.compactAfterBytes {
                    s.snapshotRequestedAt = clock()
                    reply.append(EncryptedRoomMessage.snapshotRequest(throughSeq: s.lastSeq).encoded())
                } else {
                    s.snapshotRequestedAt = nil
                }
                return RoomResponse(reply: reply)
            }
        case .awareness(let sealed):
            guard !sealed.isEmpty else { throw EncryptedRoomError.invalidMessage("empty sealed awareness") }
            guard sealed.count <= options.maxAwarenessBytes else { throw EncryptedRoomError.awarenessTooLarge(limit: options.maxAwarenessBytes) }
            return try withRoom(room) { s in
                s.awareness[connection] = sealed
                return RoomResponse(broadcast: [EncryptedRoomMessage.peerAwareness(peer: connection, sealed: sealed).encoded()])
            }
        default:
            throw EncryptedRoomError.invalidMessage("a relay message sent by a client")
        }
    }

    /// The connection closed: the frame that tells the others to drop its awareness (if it had any).
    public func close(room: String, connection: UInt64) -> [[UInt8]] {
        let had = (try? withRoom(room) { s in s.awareness.removeValue(forKey: connection) != nil }) ?? false
        return had ? [EncryptedRoomMessage.peerLeft(peer: connection).encoded()] : []
    }

    /// Drops the room from memory (after a failed group commit: it reloads from persistence).
    public func discard(room name: String) {
        let key = ExactName(name)
        guard let r = rooms.withLock({ $0[key] }) else { return }
        r.state.withLock { $0.evicted = true }
        rooms.withLock { all in if all[key] === r { all[key] = nil } }
    }

    /// Removes rooms idle for `idleTimeout` with no awareness from memory; returns their names.
    @discardableResult
    public func evictIdleRooms() -> [String] {
        let now = clock()
        let candidates = rooms.withLock { Array($0) }
        var evicted: [(ExactName, Room)] = []
        for (name, r) in candidates {
            let idle = r.state.withLock { s in
                guard !s.evicted, s.awareness.isEmpty, now - s.lastAccess >= options.idleTimeout else { return false }
                s.evicted = true
                return true
            }
            if idle { evicted.append((name, r)) }
        }
        rooms.withLock { all in for (name, r) in evicted where all[name] === r { all[name] = nil } }
        return evicted.map(\.0.name).sorted()
    }

    /// What the room holds: the snapshot's coverage, the log's sequences and bytes (tests, stats).
    public func describe(room: String) throws -> (snapshotThrough: UInt64, logSeqs: [UInt64], bytes: Int) {
        try withRoom(room) { s in (s.snapshotThrough, s.log.map(\.seq), s.bytes) }
    }
}
