import RelayWebSocket
import Foundation
import RelayCore
import Synchronization

/// The live WebSocket and SSE sessions of this process, for the shared
/// keepalive timer (one timer for all connections, not one per connection).
final class SessionRegistry: Sendable {
    final class Entry: Sendable {
        let connection: RelayConnection
        let isSSE: Bool
        /// Last time a frame arrived from the client (Unix ms); the transport stamps it.
        let activity: ActivityStamp
        /// The y-websocket room of a `/yjs` connection (no JSON pings: y-websocket is binary only).
        let yjsRoom: String?

        init(connection: RelayConnection, isSSE: Bool, activity: ActivityStamp, yjsRoom: String? = nil) {
            self.connection = connection
            self.isSSE = isSSE
            self.yjsRoom = yjsRoom
            self.activity = activity
        }
    }

    private let entries = Mutex<[UInt64: Entry]>([:])
    private let perIP = Mutex<[String: Int]>([:])
    let count = Atomic<Int>(0)

    /// Why a new connection was not admitted.
    enum Refusal {
        case serverFull
        case addressFull

        var reason: String {
            switch self {
            case .serverFull: return "server at its connection limit"
            case .addressFull: return "too many connections from this address"
            }
        }
    }

    /// Takes a process-wide slot and a slot for `ip`, or neither. Pair with `leave(ip:)`.
    func admit(ip: String, maxTotal: Int, maxPerIP: Int) -> Refusal? {
        guard reserve(limit: maxTotal) else { return .serverFull }
        guard reserve(ip: ip, limit: maxPerIP) else {
            release()
            return .addressFull
        }
        return nil
    }

    /// Gives back what `admit` took.
    func leave(ip: String) {
        release(ip: ip)
        release()
    }

    /// Reserves a slot for `ip` under `limit` connections per address; false when it is at the cap.
    private func reserve(ip: String, limit: Int) -> Bool {
        perIP.withLock { m in
            let n = m[ip, default: 0]
            if n >= limit { return false }
            m[ip] = n + 1
            return true
        }
    }

    private func release(ip: String) {
        perIP.withLock { m in
            let n = (m[ip] ?? 1) - 1
            m[ip] = n > 0 ? n : nil
        }
    }

    /// Reserves a slot under `limit`; false when the process is full.
    private func reserve(limit: Int) -> Bool {
        while true {
            let c = count.load(ordering: .relaxed)
            if c >= limit { return false }
            if count.compareExchange(expected: c, desired: c + 1, ordering: .relaxed).exchanged { return true }
        }
    }

    private func release() { count.wrappingSubtract(1, ordering: .relaxed) }

    func add(_ entry: Entry) { entries.withLock { $0[entry.connection.id] = entry } }

    func remove(_ connection: RelayConnection) { _ = entries.withLock { $0.removeValue(forKey: connection.id) } }

    func all() -> [Entry] { entries.withLock { Array($0.values) } }

    /// The WebSocket entries whose connection id falls in `slice` of `slices` (for the keepalive tick).
    func webSockets(slice: Int, of slices: Int) -> [Entry] {
        entries.withLock { m in m.values.filter { !$0.isSSE && Int($0.connection.id % UInt64(slices)) == slice } }
    }
}


