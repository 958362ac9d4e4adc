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
    /// The broker's subscriptions are back after an outage: ephemeral frames sent meanwhile
    /// were not delivered (publications are caught up from the streams by the broker itself).
    func brokerDidResubscribe()
}

/// What a broker can do, which the engine reads once at start.
public struct BrokerCapabilities: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// The broker lives in this process and the engine keeps its streams in
    /// its own channel state: positions are assigned and frames enqueued under
    /// one channel lock, synchronously. The engine then offers
    /// `RelayEngine.synchronous`, the event-loop fast path, and never calls
    /// the broker's stream methods. (`LocalBroker`, the single-node default.)
    public static let inProcess = BrokerCapabilities(rawValue: 1 << 0)
    /// Several engines (nodes) share the broker's streams, presence and counts.
    public static let multiNode = BrokerCapabilities(rawValue: 1 << 1)
}

/// A broker's state for `/readyz` and metrics.
public struct BrokerHealth: Sendable, Equatable {
    /// One server the broker talks to (a Redis shard).
    public struct Endpoint: Sendable, Equatable {
        public var name: String
        public var connected: Bool
        /// Times the connection came back after an outage, since start.
        public var reconnects: Int
        public init(name: String, connected: Bool, reconnects: Int) {
            self.name = name
            self.connected = connected
            self.reconnects = reconnects
        }
    }
    /// `"local"`, `"in-memory"`, `"redis"`.
    public var kind: String
    public var endpoints: [Endpoint]
    /// Every endpoint connected (always true without endpoints).
    public var ready: Bool { endpoints.allSatisfy(\.connected) }
    public init(kind: String, endpoints: [Endpoint] = []) {
        self.kind = kind
        self.endpoints = endpoints
    }
}

/// Publish/subscribe and history: the seam between the engine and where
/// channel streams live.
///
/// Shaped for Redis: `publish` is one Lua script (idempotency key, offset,
/// `XADD` to the channel's Stream with `MAXLEN`/`MINID` trimming, `PUBLISH`);
/// the epoch is created with the stream (lost stream → new epoch);
/// `subscribe` is one subscription per channel per node; `stream` is
/// `XREVRANGE … COUNT n`.
///
/// Every engine has one (`EngineConfiguration.broker`, default `LocalBroker`).
/// With a broker that is not `.inProcess`, publishes go through `publish` and
/// reach local subscribers through the delegate, in offset order per channel;
/// recovery uses the node's local ring, seeded from `stream` when the node
/// first takes interest in a channel. Presence and connection counts are a
/// separate seam (`PresenceManager`), as in centrifuge.
///
/// Lifecycle: `run()` holds the broker's connections until its task is
/// cancelled (relayd runs it as a service started before the listeners and
/// stopped after them); calls made before it connects, or while it is
/// reconnecting, fail with an error the engine reports as `brokerUnavailable`.
public protocol RelayBroker: Sendable {
    /// Fixed for the broker's life.
    var capabilities: BrokerCapabilities { get }
    /// Runs the broker (connections, resubscription) until the task is cancelled.
    func run() async
    /// Whether its servers are reachable now (`/readyz`), and reconnect counts (metrics).
    func health() -> BrokerHealth
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
    /// Records `key` for `ttlMs` milliseconds if no node has: true the first time in the
    /// cluster, false while it is recorded. A signed request's nonce is claimed here so that a
    /// captured request is accepted once by the whole cluster, not once per node.
    func claimOnce(key: String, ttlMs: Int64) async throws -> Bool
}

extension RelayBroker {
    /// An in-process broker is the whole cluster: the node's own replay cache has answered.
    public func claimOnce(key: String, ttlMs: Int64) async throws -> Bool {
        if capabilities.contains(.inProcess) { return true }
        throw BrokerCapabilityError(description: "\(Self.self) does not implement claimOnce")
    }
}

/// Presence members and per-site connection counts shared by several nodes
/// (centrifuge's PresenceManager). Members carry a TTL their node refreshes,
/// so a crashed node's members expire.
public protocol PresenceManager: Sendable {
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

/// Raised by a broker asked for something its capabilities exclude.
public struct BrokerCapabilityError: Error, CustomStringConvertible {
    public var description: String
}

/// The single-node broker (the default): the engine's channel state is the
/// stream, so it is `.inProcess` and the engine serves every call itself,
/// synchronously, without touching the broker. Its stream methods are never
/// called by the engine and refuse with `BrokerCapabilityError`; it has no
/// connections to run.
public struct LocalBroker: RelayBroker {
    public init() {}
    public var capabilities: BrokerCapabilities { .inProcess }
    public func run() async {}
    public func health() -> BrokerHealth { BrokerHealth(kind: "local") }
    public func attach(_ delegate: any BrokerDelegate) {}
    public func publish(_ request: BrokerPublishRequest) async throws -> BrokerPublishOutcome { throw Self.refusal }
    public func subscribe(channel: String) async throws { throw Self.refusal }
    public func unsubscribe(channel: String) async throws { throw Self.refusal }
    public func stream(channel: ChannelName, limit: Int) async throws -> BrokerStream { throw Self.refusal }
    public func publishEphemeral(_ frame: BrokerEphemeral) async throws { throw Self.refusal }
    static let refusal = BrokerCapabilityError(description: "LocalBroker is in-process: the engine keeps its streams in its own channel state")
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
        /// Per node: deliveries not yet handed to its delegate, in order, and whether a caller is handing them.
        var outboxes: [Int: (queue: Deque<Delivery>, draining: Bool)] = [:]
        var presence: [String: [(id: String, state: [UInt8], expires: Double)]] = [:]
        var connections: [String: [String: (count: Int, expires: Double)]] = [:]
        /// `claimOnce` keys → expiry (ContinuousClock-free: wall milliseconds).
        var claims: [String: Int64] = [:]
        var nextNode = 0
    }

    struct WeakDelegate { weak var value: (any BrokerDelegate)? }
    enum Delivery {
        case publication(BrokerPublication)
        case ephemeral(BrokerEphemeral)
    }

    /// Queues `delivery` for every node interested in `key` (call with the lock held, so
    /// each node's queue is in position order); returns those nodes.
    static func enqueue(_ delivery: Delivery, key: String, in s: inout State) -> [Int] {
        let targets = (s.interest[key] ?? []).sorted()
        for node in targets { s.outboxes[node, default: ([], false)].queue.append(delivery) }
        return targets
    }

    /// Hands a node's queued deliveries to its delegate outside the hub's lock, one caller at
    /// a time per node (a caller that finds another draining leaves the work to it), in order.
    func drain(_ node: Int) {
        let claimed = state.withLock { s -> Bool in
            guard var box = s.outboxes[node], !box.draining, !box.queue.isEmpty else { return false }
            box.draining = true
            s.outboxes[node] = box
            return true
        }
        guard claimed else { return }
        while true {
            let next: (Delivery, (any BrokerDelegate)?)? = state.withLock { s in
                guard let d = s.outboxes[node]?.queue.popFirst() else {
                    s.outboxes[node]?.draining = false
                    return nil
                }
                return (d, s.nodes[node]?.value)
            }
            guard let (delivery, delegate) = next else { return }
            switch delivery {
            case .publication(let p): delegate?.brokerDidDeliver(p)
            case .ephemeral(let e): delegate?.brokerDidDeliverEphemeral(e)
            }
        }
    }

    let state = Mutex(State())

    public init() {}

    /// A handle for one node; give each engine its own.
    public func node() -> any RelayBroker & PresenceManager {
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

    struct Node: RelayBroker, PresenceManager {
        let hub: InMemoryBroker
        let id: Int

        var capabilities: BrokerCapabilities { .multiNode }
        func run() async {}
        func health() -> BrokerHealth { BrokerHealth(kind: "in-memory") }

        func claimOnce(key: String, ttlMs: Int64) async throws -> Bool {
            let now = SystemClock.nowMs
            return hub.state.withLock { s in
                if s.claims.count > 10_000 { s.claims = s.claims.filter { $0.value > now } }
                if let until = s.claims[key], until > now { return false }
                s.claims[key] = now + ttlMs
                return true
            }
        }

        func attach(_ delegate: any BrokerDelegate) {
            hub.state.withLock { $0.nodes[id] = WeakDelegate(value: delegate) }
        }

        func publish(_ r: BrokerPublishRequest) async throws -> BrokerPublishOutcome {
            // Positions are assigned and deliveries queued inside the hub's lock (one order per
            // channel); the delegates are called outside it, as a network broker would.
            let (outcome, targets) = hub.state.withLock { s -> (BrokerPublishOutcome, [Int]) in
                let key = r.channel.key
                var stream = s.streams[key] ?? Stream(epoch: RelayEngine.newEpoch())
                defer { s.streams[key] = stream }
                if let k = r.idempotencyKey {
                    stream.idempotency = stream.idempotency.filter { $0.value.expires > r.time }
                    if let prior = stream.idempotency[k] { return (.duplicate(prior.position), []) }
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
                return (.published(position), InMemoryBroker.enqueue(.publication(pub), key: key, in: &s))
            }
            for node in targets { hub.drain(node) }
            return outcome
        }

        func publishEphemeral(_ frame: BrokerEphemeral) async throws {
            let targets = hub.state.withLock { s in InMemoryBroker.enqueue(.ephemeral(frame), key: frame.channel.key, in: &s) }
            for node in targets { hub.drain(node) }
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
