import RelayProtocol
import DequeModule
import Synchronization

/// A subscriber entry: the connection and its wire format.
struct Subscriber {
    let connection: RelayConnection
    let format: WireFormat
}

/// A presence member.
struct PresenceEntry {
    let connection: RelayConnection
    /// Channel as the member spelled it (used for its leave frame).
    var spelled: String
    var state: [UInt8]
}

/// A channel's state. Lives in a shard's map; all access under `state`'s lock.
final class Channel: Sendable {
    let name: ChannelName
    let policy: HistoryPolicy
    let state: Mutex<ChannelState>

    init(name: ChannelName, policy: HistoryPolicy, epoch: String) {
        self.name = name
        self.policy = policy
        self.state = Mutex(ChannelState(epoch: epoch))
    }
}

struct ChannelState {
    /// Set when the channel left its shard map; holders must look it up again.
    var removed = false
    /// Broker mode: this node receives the channel from the broker.
    var brokerInterest = false
    var epoch: String
    /// Offset of the last publication (0: none yet).
    var offset: UInt64 = 0
    var subscribers: [Subscriber] = []
    var index: [UInt64: Int] = [:]
    var sseV2Count = 0
    var sseLegacyCount = 0
    var history: Deque<Publication> = []
    var historyBytes = 0
    var presence: [PresenceEntry] = []
    var idempotency: [String: (expires: Double, receipt: PublishReceipt)] = [:]
    var idempotencyOrder: Deque<(expires: Double, key: String)> = []

    init(epoch: String) { self.epoch = epoch }

    var position: StreamPosition { StreamPosition(offset: offset, epoch: epoch) }

    var isIdle: Bool {
        subscribers.isEmpty && presence.isEmpty && history.isEmpty && idempotency.isEmpty && !brokerInterest
    }

    mutating func addSubscriber(_ c: RelayConnection) -> Bool {
        guard index[c.id] == nil else { return false }
        index[c.id] = subscribers.count
        subscribers.append(Subscriber(connection: c, format: c.format))
        switch c.format {
        case .sseV2: sseV2Count += 1
        case .sseLegacy: sseLegacyCount += 1
        case .webSocket: break
        }
        return true
    }

    mutating func removeSubscriber(_ c: RelayConnection) -> Bool {
        guard let i = index.removeValue(forKey: c.id) else { return false }
        let last = subscribers.count - 1
        if i != last {
            subscribers[i] = subscribers[last]
            index[subscribers[i].connection.id] = i
        }
        subscribers.removeLast()
        switch c.format {
        case .sseV2: sseV2Count -= 1
        case .sseLegacy: sseLegacyCount -= 1
        case .webSocket: break
        }
        return true
    }

    /// Drops history beyond the policy's count, bytes and age.
    mutating func trimHistory(policy: HistoryPolicy, now: Double) {
        while let first = history.first,
              history.count > policy.maxPublications || historyBytes > policy.maxBytes || now - first.time > policy.maxAge {
            historyBytes -= first.retainedBytes
            history.removeFirst()
        }
    }

    mutating func pruneIdempotency(now: Double) {
        while let first = idempotencyOrder.first, first.expires <= now {
            idempotencyOrder.removeFirst()
            if let e = idempotency[first.key], e.expires <= now { idempotency[first.key] = nil }
        }
    }

    /// Enqueues `pub` to every subscriber; the encoding is made once per
    /// format present. Returns (deliveries, bytes, overflowed connections).
    func fanOut(_ pub: Publication) -> FanOutResult {
        var result = FanOutResult()
        let ws = pub.webSocketFrame
        let v2 = sseV2Count > 0 ? pub.frame(for: .sseV2) : nil
        let legacy = sseLegacyCount > 0 ? pub.frame(for: .sseLegacy) : nil
        for sub in subscribers {
            let frame: OutboundFrame
            switch sub.format {
            case .webSocket: frame = ws
            case .sseV2: guard let v2 else { continue }; frame = v2
            case .sseLegacy: guard let legacy else { continue }; frame = legacy
            }
            switch sub.connection.enqueue(frame) {
            case .queued:
                result.deliveries += 1
                result.bytes += frame.bytes.count
            case .closed: break
            case .overflow: result.overflowed.append(sub.connection)
            }
        }
        return result
    }
}

struct FanOutResult {
    var deliveries = 0
    var bytes = 0
    var overflowed: [RelayConnection] = []
}

/// One shard of the channel map, keyed by `ChannelName.key` (byte identity).
final class ChannelShard: Sendable {
    let map = Mutex<[String: Channel]>([:])
}

/// One shard of the connection table.
final class ConnectionShard: Sendable {
    let map = Mutex<[UInt64: RelayConnection]>([:])
}
