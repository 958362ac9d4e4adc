import YjsCodec

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
    /// The connection each client ID last sent a state on (the one whose close removes it).
    private var ownerOf: [UInt64: ConnectionID] = [:]
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

    /// Whether `entry` would be accepted (y-protocols: a newer clock, or a removal at the same clock).
    func accepts(_ entry: AwarenessEntry) -> Bool {
        let currClock = meta[entry.clientID]?.clock ?? 0
        return currClock < entry.clock || (currClock == entry.clock && entry.isRemoval && states[entry.clientID] != nil)
    }

    /// Client IDs whose latest state came on `connection` (it speaks for them).
    public func ownedCount(_ connection: ConnectionID) -> Int { owners[connection]?.count ?? 0 }

    /// How many client IDs `connection` would speak for after `update` (checked before applying it,
    /// against the per-connection cap). Entries a client merely echoes (same clock) do not count:
    /// y-websocket clients send other clients' states back.
    public func ownedCount(_ connection: ConnectionID, after update: AwarenessUpdate) -> Int {
        var owned = owners[connection] ?? []
        for entry in update.entries where accepts(entry) {
            if entry.isRemoval { owned.remove(entry.clientID) } else { owned.insert(entry.clientID) }
        }
        return owned.count
    }

    /// Applies `update` received at `now` from `connection`; returns which clients were accepted.
    /// Stale entries (clock not newer) are ignored and must not be re-broadcast.
    public mutating func apply(_ update: AwarenessUpdate, from connection: ConnectionID?, now: Duration) -> Change {
        var change = Change()
        for entry in update.entries {
            let id = entry.clientID
            let prev = meta[id]
            let isNull = entry.isRemoval
            guard accepts(entry) else { continue }
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
            // A client belongs to the connection its latest state came on: after a reconnect
            // the new connection owns it, so closing that one removes it at once (not after 30 s).
            for id in change.added + change.updated {
                if let old = ownerOf[id], old != c { owners[old]?.remove(id) }
                owners[c, default: []].insert(id)
                ownerOf[id] = c
            }
            for id in change.removed {
                if let old = ownerOf.removeValue(forKey: id) { owners[old]?.remove(id) }
            }
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
        for id in owned where ownerOf[id] == connection { ownerOf[id] = nil }
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
        for id in removed {
            if let c = ownerOf.removeValue(forKey: id) { owners[c]?.remove(id) }
        }
        return removed.isEmpty ? nil : encode(clients: removed)
    }
}
