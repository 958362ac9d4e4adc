import RelayProtocol
import Synchronization

/// Side channels: traffic between the nodes of a cluster for state a transport keeps itself
/// (a Yjs room's document and awareness live in its room store, not in channel history).
/// A frame published on a side channel reaches the handler every *other* node registered for
/// it, through the broker's ephemeral delivery; it never reaches a client subscription (side
/// channel names are `side:{name}`, which no client can spell). With an `.inProcess` broker
/// there are no other nodes: joining and publishing are no-ops.
extension RelayEngine {
    /// Registers `handler` for frames other nodes publish on side channel `name` (a room key)
    /// and, for the first registration on this node, subscribes the node at the broker; returns
    /// once subscribed, so whatever is published after that reaches `handler`. Refcounted:
    /// every `joinSideChannel` needs a `leaveSideChannel`.
    public func joinSideChannel(_ name: String, handler: @escaping @Sendable (SideChannelEvent) -> Void) async throws {
        guard !inProcess else { return }
        let full = Self.sideChannel(name)
        try await interestLocks.withLock(full) {
            let first = sideChannels.withLock { table -> Bool in
                if var entry = table[full] {
                    entry.count += 1
                    table[full] = entry
                    return false
                }
                table[full] = SideChannel(count: 1, handler: handler)
                return true
            }
            guard first else { return }
            do { try await configuration.broker.subscribe(channel: full) } catch {
                _ = sideChannels.withLock { $0.removeValue(forKey: full) }
                metrics.brokerFailures.increment()
                throw error
            }
        }
    }

    /// Drops one registration; the last one unsubscribes the node and runs `whenLast` (under the
    /// channel's lock, so a concurrent `joinSideChannel` waits for it to finish). A no-op with
    /// an `.inProcess` broker.
    public func leaveSideChannel(_ name: String, whenLast: @Sendable () -> Void = {}) async {
        guard !inProcess else { return }
        let full = Self.sideChannel(name)
        await interestLocks.withLock(full) {
            let last = sideChannels.withLock { table -> Bool in
                guard var entry = table[full] else { return false }
                entry.count -= 1
                if entry.count > 0 {
                    table[full] = entry
                    return false
                }
                table[full] = nil
                return true
            }
            guard last else { return }
            whenLast()
            try? await configuration.broker.unsubscribe(channel: full)
        }
    }

    /// Sends `data` to every other node registered for side channel `name`.
    public func publishSide(_ name: String, data: [UInt8]) async throws {
        guard !inProcess else { return }
        let full = Self.sideChannel(name)
        do {
            try await configuration.broker.publishEphemeral(
                BrokerEphemeral(channel: ChannelName.side(ChannelName.exactKey(name)), spelledChannel: full, event: "side",
                                data: data, originNode: configuration.nodeID, skipOrigin: true))
        } catch {
            metrics.brokerFailures.increment()
            throw error
        }
    }

    /// Whether this node is registered for side channel `name` (tests, diagnostics).
    public func isOnSideChannel(_ name: String) -> Bool {
        sideChannels.withLock { $0[Self.sideChannel(name)] != nil }
    }

    static func sideChannel(_ name: String) -> String { "side:" + ChannelName.exactKey(name) }

    /// A broker delivery for a side channel: to its handler (true), or not a side channel (false).
    func deliverSide(_ e: BrokerEphemeral) -> Bool {
        guard e.channel.full.hasPrefix("side:") else { return false }
        if e.skipOrigin && e.originNode == configuration.nodeID { return true }
        let handler = sideChannels.withLock { $0[e.channel.full]?.handler }
        handler?(.message(e.data))
        return true
    }

    /// After a broker outage: every side channel's handler hears that frames may be missing.
    public func brokerDidResubscribe() {
        let handlers = sideChannels.withLock { $0.values.map(\.handler) }
        for h in handlers { h(.resync) }
    }
}

/// What a side channel's handler receives.
public enum SideChannelEvent: Sendable {
    /// A frame another node published.
    case message([UInt8])
    /// The node was cut off from the broker and is back: frames sent meanwhile are lost, so
    /// state built from them must be read again from where it is stored.
    case resync
}

struct SideChannel: Sendable {
    var count: Int
    var handler: @Sendable (SideChannelEvent) -> Void
}
