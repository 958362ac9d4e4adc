import RelayJSON
// y-protocols / y-websocket messages: sync, awareness, auth, query-awareness.

/// A y-protocols sync sub-message.
public enum SyncMessage: Sendable, Equatable {
    /// "Here is my state vector; send what I miss."
    case step1(stateVector: [UInt8])
    /// Answer to step 1: an update.
    case step2(update: [UInt8])
    /// An incremental update.
    case update([UInt8])
}

/// One y-websocket message (exactly one per WebSocket binary frame).
public enum ProtocolMessage: Sendable, Equatable {
    case sync(SyncMessage)
    /// An encoded awareness update (see `AwarenessUpdate`).
    case awareness([UInt8])
    /// Auth sub-type 0: permission denied, with a reason.
    case authPermissionDenied(reason: String)
    case queryAwareness

    /// Outer message type numbers.
    public enum Kind: UInt64, Sendable { case sync = 0, awareness = 1, auth = 2, queryAwareness = 3 }

    /// Decodes one message. Trailing bytes after the message are rejected.
    public init(decoding bytes: [UInt8]) throws {
        var d = Lib0Decoder(bytes)
        let typeOffset = d.position
        switch try d.readVarUInt() {
        case 0:
            let subOffset = d.position
            switch try d.readVarUInt() {
            case 0: self = .sync(.step1(stateVector: try d.readVarBytes()))
            case 1: self = .sync(.step2(update: try d.readVarBytes()))
            case 2: self = .sync(.update(try d.readVarBytes()))
            default: throw YjsDecodingError.malformed("unknown sync message type", offset: subOffset)
            }
        case 1:
            self = .awareness(try d.readVarBytes())
        case 2:
            let subOffset = d.position
            guard try d.readVarUInt() == 0 else {
                throw YjsDecodingError.malformed("unknown auth message type", offset: subOffset)
            }
            self = .authPermissionDenied(reason: try d.readVarString())
        case 3:
            self = .queryAwareness
        default:
            throw YjsDecodingError.malformed("unknown message type", offset: typeOffset)
        }
        if !d.isAtEnd { throw YjsDecodingError.trailingBytes(offset: d.position) }
    }

    /// The wire bytes of this message.
    public func encoded() -> [UInt8] {
        var e = Lib0Encoder()
        switch self {
        case .sync(let s):
            e.writeVarUInt(0)
            switch s {
            case .step1(let sv): e.writeVarUInt(0); e.bytes.reserveCapacity(sv.count + 8); e.writeVarBytes(sv)
            case .step2(let u): e.writeVarUInt(1); e.bytes.reserveCapacity(u.count + 8); e.writeVarBytes(u)
            case .update(let u): e.writeVarUInt(2); e.bytes.reserveCapacity(u.count + 8); e.writeVarBytes(u)
            }
        case .awareness(let a):
            e.writeVarUInt(1); e.writeVarBytes(a)
        case .authPermissionDenied(let reason):
            e.writeVarUInt(2); e.writeVarUInt(0); e.writeVarString(reason)
        case .queryAwareness:
            e.writeVarUInt(3)
        }
        return e.bytes
    }
}

/// One client's entry in an awareness update.
public struct AwarenessEntry: Sendable, Equatable {
    public var clientID: UInt64
    public var clock: UInt64
    /// The state as JSON text, exactly as received; `null` means the client is gone.
    public var state: String

    public init(clientID: UInt64, clock: UInt64, state: String) {
        self.clientID = clientID; self.clock = clock; self.state = state
    }

    /// Whether the state is JSON `null` (a removal).
    public var isRemoval: Bool {
        state.utf8.filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }.elementsEqual("null".utf8)
    }
}

/// An awareness update: `vu(n)` then n × (`vu(clientID)`, `vu(clock)`, `vs(JSON state)`).
public struct AwarenessUpdate: Sendable, Equatable {
    public var entries: [AwarenessEntry]

    public init(entries: [AwarenessEntry]) { self.entries = entries }

    /// Decodes an awareness update; each state must be valid JSON (peers `JSON.parse` it).
    public init(decoding bytes: [UInt8]) throws {
        var d = Lib0Decoder(bytes)
        let n = try d.readCount(minBytesPerElement: 3)
        var entries: [AwarenessEntry] = []
        entries.reserveCapacity(n)
        for _ in 0..<n {
            let id = try d.readVarUInt()
            let clock = try d.readVarUInt()
            let p = d.position
            let state = try d.readVarString()
            guard JSON.isValid(state) else { throw YjsDecodingError.malformed("awareness state is not JSON", offset: p) }
            entries.append(AwarenessEntry(clientID: id, clock: clock, state: state))
        }
        if !d.isAtEnd { throw YjsDecodingError.trailingBytes(offset: d.position) }
        self.entries = entries
    }

    public func encoded() -> [UInt8] {
        var e = Lib0Encoder()
        e.writeVarUInt(UInt64(entries.count))
        for x in entries {
            e.writeVarUInt(x.clientID); e.writeVarUInt(x.clock); e.writeVarString(x.state)
        }
        return e.bytes
    }
}

/// Identifies one connection within a room (assigned by the server).
public typealias ConnectionID = UInt64

/// Server-side awareness table of one room, following y-protocols' rules: a higher clock wins, an
/// equal clock with `null` removes a present client, states silent for `timeout` expire, and a
/// closing connection's clients are removed with unchanged clocks.
public struct AwarenessTable: Sendable {
    struct Meta: Sendable { var clock: UInt64; var lastUpdated: Duration }
    private var meta: [UInt64: Meta] = [:]
    private var states: [UInt64: String] = [:]
    private var owners: [ConnectionID: Set<UInt64>] = [:]
    /// Remote states not renewed for this long are removed (y-protocols: 30 s).
    public var timeout: Duration

    public init(timeout: Duration = .seconds(30)) { self.timeout = timeout }

    /// Client IDs that currently have a state.
    public var clientIDs: [UInt64] { states.keys.sorted() }
    public var isEmpty: Bool { states.isEmpty }
    public func state(of client: UInt64) -> String? { states[client] }
    public func clock(of client: UInt64) -> UInt64? { meta[client]?.clock }

    /// The result of applying an awareness update.
    public struct Change: Sendable, Equatable {
        public var added: [UInt64] = []
        public var updated: [UInt64] = []
        public var removed: [UInt64] = []
        /// Every accepted client (added, updated incl. unchanged renewals, removed).
        public var accepted: [UInt64] { added + updated + removed }
        public var isEmpty: Bool { added.isEmpty && updated.isEmpty && removed.isEmpty }
    }

    /// Applies `update` received at `now` from `connection`; returns which clients were accepted.
    /// Stale entries (clock not newer) are ignored and must not be re-broadcast.
    public mutating func apply(_ update: AwarenessUpdate, from connection: ConnectionID?, now: Duration) -> Change {
        var change = Change()
        for entry in update.entries {
            let id = entry.clientID
            let prev = meta[id]
            let currClock = prev?.clock ?? 0
            let isNull = entry.isRemoval
            guard currClock < entry.clock || (currClock == entry.clock && isNull && states[id] != nil) else { continue }
            if isNull {
                states[id] = nil
            } else {
                states[id] = entry.state
            }
            meta[id] = Meta(clock: entry.clock, lastUpdated: now)
            if prev == nil && !isNull {
                change.added.append(id)
            } else if prev != nil && isNull {
                change.removed.append(id)
            } else if !isNull {
                change.updated.append(id)
            }
        }
        if let c = connection {
            var owned = owners[c] ?? []
            for id in change.added { owned.insert(id) }
            for id in change.removed { owned.remove(id) }
            owners[c] = owned
        }
        return change
    }

    /// Encodes the current entries of `clients` (absent clients as `null` with their last clock).
    public func encode(clients: [UInt64]) -> AwarenessUpdate {
        AwarenessUpdate(entries: clients.compactMap { id in
            guard let m = meta[id] else { return nil }
            return AwarenessEntry(clientID: id, clock: m.clock, state: states[id] ?? "null")
        })
    }

    /// All present states, e.g. to send to a newly connected peer (nil when there are none).
    public func encodeAll() -> AwarenessUpdate? {
        states.isEmpty ? nil : encode(clients: clientIDs)
    }

    /// Removes `clients` without changing their clocks; returns those that were present.
    public mutating func remove(clients: [UInt64]) -> [UInt64] {
        var removed: [UInt64] = []
        for id in clients where states[id] != nil {
            states[id] = nil
            removed.append(id)
        }
        return removed
    }

    /// A connection closed: removes the clients it introduced. Returns the update to broadcast
    /// (their `null` states with unchanged clocks), or nil if nothing changed.
    public mutating func connectionClosed(_ connection: ConnectionID) -> AwarenessUpdate? {
        guard let owned = owners.removeValue(forKey: connection) else { return nil }
        let removed = remove(clients: owned.sorted())
        return removed.isEmpty ? nil : encode(clients: removed)
    }

    /// Removes states not renewed within `timeout` before `now`; returns the update to broadcast.
    public mutating func expire(now: Duration) -> AwarenessUpdate? {
        var stale: [UInt64] = []
        for (id, _) in states {
            if let m = meta[id], now - m.lastUpdated >= timeout { stale.append(id) }
        }
        let removed = remove(clients: stale.sorted())
        for (c, var owned) in owners {
            let before = owned.count
            for id in removed { owned.remove(id) }
            if owned.count != before { owners[c] = owned }
        }
        return removed.isEmpty ? nil : encode(clients: removed)
    }
}
