import RelayProtocol
import DequeModule
import Synchronization

// MARK: - The seam

/// A publication as it travels between nodes: the broker assigned its position.
public struct BrokerPublication: Sendable, Equatable {
    public var channel: ChannelName
    /// The channel as the publisher spelled it.
    public var spelledChannel: String
    public var event: String
    public var payload: Payload
    public var position: StreamPosition
    public var time: Double

    public init(channel: ChannelName, spelledChannel: String, event: String, payload: Payload, position: StreamPosition, time: Double) {
        self.channel = channel
        self.spelledChannel = spelledChannel
        self.event = event
        self.payload = payload
        self.position = position
        self.time = time
    }
}

/// What a node asks the broker to publish.
public struct BrokerPublishRequest: Sendable {
    public var channel: ChannelName
    public var spelledChannel: String
    public var event: String
    public var payload: Payload
    /// Retention of the channel's shared stream.
    public var history: HistoryPolicy
    public var idempotencyKey: String?
    public var idempotencyWindow: Double
    public var time: Double
}

/// Outcome of a broker publish.
public enum BrokerPublishOutcome: Sendable, Equatable {
    case published(StreamPosition)
    /// Same idempotency key within the window: not appended, not delivered.
    case duplicate(StreamPosition)
}

/// The retained tail of a channel's shared stream.
public struct BrokerStream: Sendable, Equatable {
    /// Oldest first, contiguous offsets.
    public var publications: [BrokerPublication]
    public var position: StreamPosition

    public init(publications: [BrokerPublication], position: StreamPosition) {
        self.publications = publications
        self.position = position
    }
}

/// A frame without a position (presence join/leave) sent to every node with interest.
public struct BrokerEphemeral: Sendable, Equatable {
    public var channel: ChannelName
    public var spelledChannel: String
    public var event: String
    public var data: [UInt8]
    /// `nodeID` of the sending node.
    public var originNode: String
    /// The origin already delivered it to its own subscribers.
    public var skipOrigin: Bool

    public init(channel: ChannelName, spelledChannel: String, event: String, data: [UInt8], originNode: String, skipOrigin: Bool) {
        self.channel = channel
        self.spelledChannel = spelledChannel
        self.event = event
        self.data = data
        self.originNode = originNode
        self.skipOrigin = skipOrigin
    }
}

/// Receives what the broker delivers to a node (the engine implements it).
public protocol BrokerDelegate: AnyObject, Sendable {
    /// A publication on a channel this node subscribed to, its own included,
    /// in offset order per channel.
    func brokerDidDeliver(_ publication: BrokerPublication)
    /// An ephemeral frame on a channel this node subscribed to.
    func brokerDidDeliverEphemeral(_ frame: BrokerEphemeral)
}

/// Cross-node publish/subscribe, history and presence.
///
/// Shaped for Redis: `publish` is one Lua script (`SET NX EX` idempotency
/// key, `INCR` offset, `XADD` to the channel's Stream with `MAXLEN`/`MINID`
/// trimming, `PUBLISH`/`SPUBLISH` to the channel); the epoch is a key created
/// with the stream (lost stream → new epoch); `subscribe` is one sharded
/// subscription per channel per node; `stream` is `XREVRANGE … COUNT n`;
/// presence is a hash per channel with per-member expiry, refreshed by the
/// owning node.
///
/// `RelayEngine` uses it when `EngineConfiguration.broker` is set: publishes
/// go through `publish` and reach local subscribers through the delegate;
/// recovery uses the node's local ring, seeded from `stream` when the node
/// first takes interest in a channel. Without a broker the engine is its own
/// single-node in-memory broker.
public protocol RelayBroker: Sendable {
    /// Sets the node's delegate (called once by the engine).
    func attach(_ delegate: any BrokerDelegate)
    /// Appends to the shared stream and delivers to every interested node.
    func publish(_ request: BrokerPublishRequest) async throws -> BrokerPublishOutcome
    /// Starts delivering `channel` (full name) to this node.
    func subscribe(channel: String) async throws
    /// Stops delivering `channel` to this node.
    func unsubscribe(channel: String) async throws
    /// The retained tail (at most `limit`) and current position of `channel`.
    func stream(channel: ChannelName, limit: Int) async throws -> BrokerStream
    /// Delivers a frame to every node with interest in its channel (no stream append).
    func publishEphemeral(_ frame: BrokerEphemeral) async throws
    /// Sets (`state != nil`) or removes a presence member; `ttl` bounds how long
    /// a member outlives a crashed node.
    func setPresence(channel: String, memberID: String, state: [UInt8]?, ttl: Double, now: Double) async throws
    /// Live members of `channel` across nodes.
    func presence(channel: String, now: Double) async throws -> [PresenceMember]
    /// Records this node's connection count for a site (expiring after `ttl`
    /// unless reported again, so a crashed node stops counting) and returns
    /// the site's total over all live nodes. Redis: a hash per site of node →
    /// count plus a per-node heartbeat key.
    func reportConnections(siteID: String, node: String, count: Int, ttl: Double, now: Double) async throws -> Int
}

// MARK: - In-memory implementation

/// An in-process broker linking several engines (nodes) in one process: the
/// reference implementation of the seam and the test double for clusters.
public final class InMemoryBroker: Sendable {
    struct Stream {
        var epoch: String
        var offset: UInt64 = 0
        var entries: Deque<BrokerPublication> = []
        var bytes = 0
        var idempotency: [String: (expires: Double, position: StreamPosition)] = [:]
    }

    struct State {
        var streams: [String: Stream] = [:]
        var interest: [String: Set<Int>] = [:]
        var nodes: [Int: WeakDelegate] = [:]
        var presence: [String: [(id: String, state: [UInt8], expires: Double)]] = [:]
        var connections: [String: [String: (count: Int, expires: Double)]] = [:]
        var nextNode = 0
    }

    struct WeakDelegate { weak var value: (any BrokerDelegate)? }

    let state = Mutex(State())

    public init() {}

    /// A handle for one node; give each engine its own.
    public func node() -> any RelayBroker {
        let id = state.withLock { s in
            defer { s.nextNode += 1 }
            return s.nextNode
        }
        return Node(hub: self, id: id)
    }

    /// Forgets a channel's stream, as a Redis restart without persistence would
    /// (the next publish starts a new epoch).
    public func dropStream(channel: String) {
        _ = state.withLock { $0.streams.removeValue(forKey: channel) }
    }

    static func size(_ p: BrokerPublication) -> Int { p.payload.byteCount + p.spelledChannel.utf8.count + p.event.utf8.count + 64 }

    struct Node: RelayBroker {
        let hub: InMemoryBroker
        let id: Int

        func attach(_ delegate: any BrokerDelegate) {
            hub.state.withLock { $0.nodes[id] = WeakDelegate(value: delegate) }
        }

        func publish(_ r: BrokerPublishRequest) async throws -> BrokerPublishOutcome {
            // Delivery happens inside the hub's lock: one global order per channel.
            hub.state.withLock { s in
                let key = r.channel.key
                var stream = s.streams[key] ?? Stream(epoch: RelayEngine.newEpoch())
                defer { s.streams[key] = stream }
                if let k = r.idempotencyKey {
                    stream.idempotency = stream.idempotency.filter { $0.value.expires > r.time }
                    if let prior = stream.idempotency[k] { return .duplicate(prior.position) }
                }
                stream.offset += 1
                let position = StreamPosition(offset: stream.offset, epoch: stream.epoch)
                let pub = BrokerPublication(channel: r.channel, spelledChannel: r.spelledChannel, event: r.event,
                                            payload: r.payload, position: position, time: r.time)
                if let k = r.idempotencyKey { stream.idempotency[k] = (r.time + r.idempotencyWindow, position) }
                if r.history.maxPublications > 0 {
                    stream.entries.append(pub)
                    stream.bytes += InMemoryBroker.size(pub)
                }
                while let first = stream.entries.first,
                      stream.entries.count > r.history.maxPublications || stream.bytes > r.history.maxBytes
                      || r.time - first.time > r.history.maxAge {
                    stream.bytes -= InMemoryBroker.size(first)
                    stream.entries.removeFirst()
                }
                for node in (s.interest[key] ?? []).sorted() {
                    s.nodes[node]?.value?.brokerDidDeliver(pub)
                }
                return .published(position)
            }
        }

        func publishEphemeral(_ frame: BrokerEphemeral) async throws {
            hub.state.withLock { s in
                for node in (s.interest[frame.channel.key] ?? []).sorted() {
                    s.nodes[node]?.value?.brokerDidDeliverEphemeral(frame)
                }
            }
        }

        func subscribe(channel: String) async throws {
            _ = hub.state.withLock { $0.interest[ChannelName.exactKey(channel), default: []].insert(id) }
        }

        func unsubscribe(channel: String) async throws {
            hub.state.withLock { s in
                let key = ChannelName.exactKey(channel)
                s.interest[key]?.remove(id)
                if s.interest[key]?.isEmpty == true { s.interest[key] = nil }
            }
        }

        func stream(channel: ChannelName, limit: Int) async throws -> BrokerStream {
            hub.state.withLock { s in
                if s.streams[channel.key] == nil { s.streams[channel.key] = Stream(epoch: RelayEngine.newEpoch()) }
                let st = s.streams[channel.key]!
                return BrokerStream(publications: Array(st.entries.suffix(max(0, limit))),
                                    position: StreamPosition(offset: st.offset, epoch: st.epoch))
            }
        }

        func setPresence(channel: String, memberID: String, state: [UInt8]?, ttl: Double, now: Double) async throws {
            hub.state.withLock { s in
                let key = ChannelName.exactKey(channel)
                var members = s.presence[key] ?? []
                members.removeAll { $0.id == memberID || $0.expires <= now }
                if let state { members.append((memberID, state, now + ttl)) }
                s.presence[key] = members.isEmpty ? nil : members
            }
        }

        func reportConnections(siteID: String, node: String, count: Int, ttl: Double, now: Double) async throws -> Int {
            hub.state.withLock { s in
                var nodes = s.connections[siteID] ?? [:]
                nodes[node] = (count, now + ttl)
                nodes = nodes.filter { $0.value.expires > now }
                s.connections[siteID] = nodes
                return nodes.values.reduce(0) { $0 + $1.count }
            }
        }

        func presence(channel: String, now: Double) async throws -> [PresenceMember] {
            hub.state.withLock { s in
                (s.presence[ChannelName.exactKey(channel)] ?? []).filter { $0.expires > now }.map { PresenceMember(id: $0.id, state: $0.state) }
            }
        }
    }
}
