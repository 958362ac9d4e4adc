import RelayWebSocket
import RelayProtocol
import Foundation
import Metrics
import NIOCore
import NIOPosix
import NIOWebSocket
import RelayCore
import RelayCrypto
import Synchronization
import YjsCodec
import YjsRooms
import YjsStore

/// Settings of the y-websocket endpoint.
public struct YjsConfiguration: Sendable {
    /// Keep documents in SQLite (`<data-dir>/yjs.sqlite`); false = memory only.
    public var persistent = true
    /// Largest single update accepted (Gutenberg's polling cap is 1 MiB); larger closes with 4011.
    public var maxUpdateBytes = 1 << 20
    /// Largest document a room may hold; an update that would exceed it closes with 4010.
    public var maxDocumentBytes = 64 << 20
    /// Connections per room; more are closed with 4012 (`connection-limit-exceeded`).
    public var maxConnectionsPerRoom = 100
    /// Distinct users per room; more are closed with 4014 (`connection-limit-exceeded`).
    public var maxCollaboratorsPerRoom = 50
    /// Largest awareness state of one client (JSON bytes); a larger one closes with 1008.
    public var maxAwarenessStateBytes = 64 << 10
    /// Awareness client IDs one connection may speak for; more close with 1008.
    public var maxAwarenessClientsPerConnection = 8
    /// Rooms idle this long (no connections, no awareness) leave memory (they stay on disk).
    public var idleEviction: Double = 300
    /// Awareness states not renewed for this long are removed (y-protocols: 30 s).
    public var awarenessTimeout: Double = 30
    /// Rooms whose deleted content is kept (no garbage collection): room-name prefixes as in
    /// `/yjs/{room}`, `*` for all. Every other room is garbage-collected as Yjs's `gc: true`.
    public var keepHistoryRooms: [String] = []
    /// With persistence: bytes of y-protocols messages waiting for the store's commit thread above
    /// which a connection's next message waits for its own to be stored (back-pressure: its reads
    /// pause once its inbox is full) instead of being queued from the event loop.
    public var maxWriteQueueBytes = 16 << 20
    /// With persistence: messages of one connection queued from the event loop before the next
    /// waits for them to be stored (back-pressure, as above).
    public var maxInFlightPerConnection = 16
    /// Encrypted rooms: the relay asks a writer for a new sealed snapshot when the log since the
    /// last one has this many entries...
    public var e2eCompactAfterEntries = 500
    /// ...or this many bytes.
    public var e2eCompactAfterBytes = 1 << 20

    /// Whether the room stored under `key` (`site:{id}:yjs:{room}`) keeps its history.
    public func keepsHistory(storeKey key: String) -> Bool {
        guard !keepHistoryRooms.isEmpty else { return false }
        if keepHistoryRooms.contains("*") { return true }
        let room = key.range(of: ":yjs:").map { String(key[$0.upperBound...]) } ?? key
        return keepHistoryRooms.contains { room.utf8.starts(with: $0.utf8) }
    }

    public init() {}
}

/// The peers of every open room on this node.
final class YjsRooms: Sendable {
    struct Peer: Sendable {
        let connection: RelayConnection
        let userID: String
    }
    private let rooms = Mutex<[ExactName: [UInt64: Peer]]>([:])  // byte identity: see ExactName

    enum JoinResult { case joined, roomFull, tooManyCollaborators }

    func join(_ room: String, _ peer: Peer, maxConnections: Int, maxCollaborators: Int) -> JoinResult {
        let room = ExactName(room)
        return rooms.withLock { all in
            var peers = all[room] ?? [:]
            if peers.count >= maxConnections { return .roomFull }
            let users = Set(peers.values.map(\.userID))
            if !users.contains(peer.userID) && users.count >= maxCollaborators { return .tooManyCollaborators }
            peers[peer.connection.id] = peer
            all[room] = peers
            return .joined
        }
    }

    func leave(_ room: String, _ connection: RelayConnection) {
        let room = ExactName(room)
        rooms.withLock { all in
            all[room]?[connection.id] = nil
            if all[room]?.isEmpty == true { all[room] = nil }
        }
    }

    func peers(_ room: String) -> [Peer] { rooms.withLock { Array(($0[ExactName(room)] ?? [:]).values) } }

    var openRooms: [String] { rooms.withLock { $0.keys.map(\.name) } }
}

extension RelayService {
    static func makeYjsStore(_ c: ServerConfiguration, metrics: (any MetricsFactory)? = nil) throws -> (DocumentStore, EncryptedRoomStore, GroupCommitQueue?) {
        var options = DocumentStoreOptions()
        options.maxRoomBytes = c.yjs.maxDocumentBytes
        options.idleTimeout = .milliseconds(Int64(c.yjs.idleEviction * 1000))
        options.awarenessTimeout = .milliseconds(Int64(c.yjs.awarenessTimeout * 1000))
        options.maxAwarenessStateBytes = c.yjs.maxAwarenessStateBytes
        options.maxAwarenessClientsPerConnection = c.yjs.maxAwarenessClientsPerConnection
        let yjs = c.yjs
        options.keepHistory = { yjs.keepsHistory(storeKey: $0) }
        var e2e = EncryptedRoomOptions()
        e2e.maxMessageBytes = c.yjs.maxUpdateBytes + EncryptedRoomOptions.sealingAllowance
        e2e.maxRoomBytes = c.yjs.maxDocumentBytes
        e2e.maxAwarenessBytes = c.yjs.maxAwarenessStateBytes + EncryptedRoomOptions.sealingAllowance
        e2e.compactAfterEntries = c.yjs.e2eCompactAfterEntries
        e2e.compactAfterBytes = c.yjs.e2eCompactAfterBytes
        e2e.idleTimeout = options.idleTimeout
        if let shared = c.sharedYjsPersistence {
            return try durableStores(GroupCommitPersistence(base: shared), options, e2e, metrics: metrics)
        }
        guard c.yjs.persistent && !c.dataDirectory.isEmpty else {
            let memory = InMemoryPersistence()
            return (DocumentStore(persistence: memory, options: options), EncryptedRoomStore(persistence: memory, options: e2e), nil)
        }
        try FileManager.default.createDirectory(atPath: c.dataDirectory, withIntermediateDirectories: true)
        return try durableStores(GroupCommitPersistence(base: try SQLitePersistence(path: c.dataDirectory + "/yjs.sqlite")),
                                 options, e2e, metrics: metrics)
    }

    /// Durable rooms: every store call that may write runs on the group-commit thread, and
    /// snapshots are written in the same transactions as the updates they cover.
    static func durableStores(_ persistence: GroupCommitPersistence, _ baseOptions: DocumentStoreOptions, _ e2e: EncryptedRoomOptions,
                              metrics: (any MetricsFactory)?) throws -> (DocumentStore, EncryptedRoomStore, GroupCommitQueue?) {
        var options = baseOptions
        options.backgroundCompaction = false
        let store = DocumentStore(persistence: persistence, options: options)
        let sealed = EncryptedRoomStore(persistence: persistence, options: e2e)
        // Room keys are disjoint (`:yjs:` and `:yjs-e2e:`): a failed commit discards in both.
        let factory = metrics ?? MetricsSystem.factory
        let commits = Metrics.Counter(label: "relay_yjs_commits_total", dimensions: [], factory: factory)
        let failed = Metrics.Counter(label: "relay_yjs_commit_failures_total", dimensions: [], factory: factory)
        let writes = Metrics.Counter(label: "relay_yjs_commit_writes_total", dimensions: [], factory: factory)
        let batch = Metrics.Recorder(label: "relay_yjs_commit_batch_jobs", dimensions: [], aggregate: true, factory: factory)
        let onCommit: @Sendable (Int, Int, Bool) -> Void = { jobs, n, failure in
            commits.increment()
            writes.increment(by: n)
            batch.record(jobs)
            if failure { failed.increment() }
        }
        return (store, sealed, GroupCommitQueue(persistence: persistence, onCommit: onCommit) { room in
            store.discard(room: room)
            sealed.discard(room: room)
        })
    }

    /// The room's storage key and ACL channel: `site:{site_id}:yjs:{room}` (a full name for this site is accepted as is).
    static func yjsChannel(room: String, siteID: String) -> String? {
        if room.hasPrefix("site:") {
            return room.hasPrefix("site:\(siteID):yjs:") && room.count > "site:\(siteID):yjs:".count ? room : nil
        }
        guard !room.isEmpty, room.utf8.count <= 512, !room.unicodeScalars.contains(where: { $0.value < 0x20 }) else { return nil }
        return "site:\(siteID):yjs:\(room)"
    }

    /// An encrypted room's storage key and ACL channel: `site:{site_id}:yjs-e2e:{room}`.
    static func yjsE2EChannel(room: String, siteID: String) -> String? {
        if room.hasPrefix("site:") {
            return room.hasPrefix("site:\(siteID):yjs-e2e:") && room.count > "site:\(siteID):yjs-e2e:".count ? room : nil
        }
        return yjsChannel(room: room, siteID: siteID).map { _ in "site:\(siteID):yjs-e2e:\(room)" }
    }

    /// RelayCore's grant rule (bare prefixes get the site prefix), applied to the room's channel.
    static func allowed(_ channel: String, by prefixes: [String], siteID: String) -> Bool {
        prefixes.contains { ChannelName.grant(ChannelName.expandPrefix($0, siteID: siteID), reaches: channel) }
    }

    /// Handles one y-protocols message where the caller is (an event loop or the connection's
    /// inbox task) when the rooms live in memory; with persistence, on the group-commit thread,
    /// waiting until the message's effects are durable and sent.
    func handleYjsFrame(_ bytes: [UInt8], room: String, conn: RelayConnection, readOnly: Bool, encrypted: Bool) async {
        guard let commits = yjsCommit else {
            handleYjsFrameNow(bytes, room: room, conn: conn, readOnly: readOnly, encrypted: encrypted)
            return
        }
        let queued = await commits.perform(room: room, bytes: bytes.count,
                                           work: yjsWork(bytes, room: room, conn: conn, readOnly: readOnly, encrypted: encrypted),
                                           done: { self.deliverYjs($0, bytes, room: room, conn: conn, readOnly: readOnly && !encrypted) })
        if !queued { engine.disconnect(conn, code: CloseCode.shuttingDown, reason: "relay shutting down", flushPending: true) }
    }

    /// The store call for one message: the y-protocols store, or the encrypted-room store.
    func yjsWork(_ bytes: [UInt8], room: String, conn: RelayConnection, readOnly: Bool, encrypted: Bool) -> @Sendable () throws -> RoomResponse {
        let id = conn.id
        if encrypted {
            let store = yjsE2E
            return { try store.handle(room: room, frame: bytes, from: id, canWrite: !readOnly) }
        }
        let store = yjsStore
        return { try store.handle(room: room, frame: bytes, from: id, readOnly: readOnly) }
    }

    /// The in-memory store's path: store call and delivery right here.
    func handleYjsFrameNow(_ bytes: [UInt8], room: String, conn: RelayConnection, readOnly: Bool, encrypted: Bool) {
        deliverYjs(Result(catching: yjsWork(bytes, room: room, conn: conn, readOnly: readOnly, encrypted: encrypted)), bytes,
                   room: room, conn: conn, readOnly: readOnly && !encrypted)
    }

    /// With persistence, from the event loop: queues the message for the group-commit thread,
    /// which delivers its effects once durable; `finished` runs after that (or now, when the
    /// relay is shutting down and the connection was closed instead).
    func submitYjsFrame(_ bytes: [UInt8], room: String, conn: RelayConnection, readOnly: Bool, encrypted: Bool,
                        finished: @escaping @Sendable () -> Void) {
        guard let commits = yjsCommit else { return finished() }
        let queued = commits.submit(room: room, bytes: bytes.count,
                                    work: yjsWork(bytes, room: room, conn: conn, readOnly: readOnly, encrypted: encrypted),
                                    done: { result in
                                        self.deliverYjs(result, bytes, room: room, conn: conn, readOnly: readOnly && !encrypted)
                                        finished()
                                    })
        if !queued {
            engine.disconnect(conn, code: CloseCode.shuttingDown, reason: "relay shutting down", flushPending: true)
            finished()
        }
    }

    /// Sends what handling a message produced (replies to `conn`, broadcasts to the room), or
    /// closes `conn` with the code its error calls for.
    func deliverYjs(_ result: Result<RoomResponse, any Error>, _ bytes: [UInt8], room: String, conn: RelayConnection, readOnly: Bool) {
        do {
            let response = try result.get()
            for f in response.reply { _ = engine.send(OutboundFrame(kind: .binary, bytes: f), to: conn) }
            broadcastYjs(response.broadcast, room: room)
            if readOnly, case .sync(let s)? = try? ProtocolMessage(decoding: bytes) {
                switch s {
                case .step2, .update:
                    let denied = ProtocolMessage.authPermissionDenied(reason: "read-only token").encoded()
                    _ = engine.send(OutboundFrame(kind: .binary, bytes: denied), to: conn)
                case .step1: break
                }
            }
        } catch DocumentStoreError.roomTooLarge(_, let limit) {
            engine.disconnect(conn, code: CloseCode.documentTooLarge, reason: "document would exceed \(limit) bytes", flushPending: true)
        } catch DocumentStoreError.invalidInput(let e) {
            engine.disconnect(conn, code: .policyViolation, reason: "malformed y-protocols message: \(e)", flushPending: true)
        } catch DocumentStoreError.awarenessLimit(let why) {
            engine.disconnect(conn, code: .policyViolation, reason: why, flushPending: true)
        } catch let e as EncryptedRoomError {
            switch e {
            case .invalidMessage(let why):
                engine.disconnect(conn, code: .policyViolation, reason: "malformed encrypted-room message: \(why)", flushPending: true)
            case .messageTooLarge(let limit):
                engine.disconnect(conn, code: CloseCode.updateTooLarge, reason: "sealed message larger than \(limit) bytes", flushPending: true)
            case .roomTooLarge(let limit):
                engine.disconnect(conn, code: CloseCode.documentTooLarge, reason: "room would exceed \(limit) bytes", flushPending: true)
            case .awarenessTooLarge(let limit):
                engine.disconnect(conn, code: .policyViolation, reason: "sealed awareness larger than \(limit) bytes", flushPending: true)
            }
        } catch DocumentStoreError.persistenceFailed(let detail, let kind) {
            // Nothing of the update is in the room and nothing was broadcast: the client keeps it and
            // sends it again when it reconnects (sync step 2), which succeeds once the disk is fixed.
            storageErrors.log(level: .error, "yjs room \(room): update not stored: \(kind.rawValue) (\(detail))")
            engine.disconnect(conn, code: .internalError, reason: "update not stored: \(kind.rawValue)", flushPending: true)
        } catch {
            logger.error("yjs room \(room): \(error)")
            engine.disconnect(conn, code: .internalError, reason: "update not stored", flushPending: true)
        }
    }

    /// Sends frames to every peer of the room (the sender included, as y-websocket does) and,
    /// for rooms shared across nodes, to the other nodes with the room open.
    func broadcastYjs(_ frames: [[UInt8]], room: String) {
        guard !frames.isEmpty else { return }
        if yjsAcrossNodes && !Self.isEncryptedChannel(room) {
            let engine = self.engine, logger = self.logger
            Task {
                for f in frames {
                    do { try await engine.publishSide(room, data: f) } catch {
                        logger.warning("yjs room \(room): not sent to other nodes: \(error)")
                    }
                }
            }
        }
        broadcastYjsLocally(frames, room: room)
    }

    /// A message another node's peer sent to a shared room: an update goes into this node's copy
    /// of the room (already durable: the other node stored it) and, if it added anything, to the
    /// local peers; awareness goes to the local peers. Called on the broker's event loop, so the
    /// store work goes to the commit thread (in the room's turn; a room being loaded from the
    /// database must not hold an event loop).
    func receiveYjsFromNode(_ frame: [UInt8], room: String) {
        guard let message = try? ProtocolMessage(decoding: frame) else {
            logger.warning("yjs room \(room): undecodable message from another node dropped")
            return
        }
        switch message {
        case .sync(.update(let u)), .sync(.step2(let u)):
            let store = yjsStore
            let work: @Sendable () throws -> RoomResponse = {
                try store.applyRemoteUpdate(room: room, update: u) ? RoomResponse(broadcast: [frame]) : RoomResponse()
            }
            let deliver: @Sendable (Result<RoomResponse, any Error>) -> Void = { [self] result in
                switch result {
                case .success(let r): broadcastYjsLocally(r.broadcast, room: room)
                case .failure(let e): logger.warning("yjs room \(room): update from another node refused: \(e)")
                }
            }
            if let commits = yjsCommit {
                _ = commits.submit(room: room, bytes: frame.count, work: work, done: deliver)
            } else {
                deliver(Result(catching: work))
            }
        case .awareness:
            broadcastYjsLocally([frame], room: room)
        default:
            break
        }
    }

    /// After a broker outage this node may have missed other nodes' updates of a shared room: it
    /// reads the room again from the shared store and sends its peers what they lack (the
    /// difference from what the node had), in the room's turn on the commit thread.
    func resyncYjsRoom(_ room: String) {
        let store = yjsStore
        let work: @Sendable () throws -> RoomResponse = {
            let before = try store.stateVector(room: room)
            store.discard(room: room)
            let missed = try store.syncStep2(room: room, forStateVector: before)
            return missed == YUpdate.empty ? RoomResponse() : RoomResponse(broadcast: [ProtocolMessage.sync(.update(missed)).encoded()])
        }
        let deliver: @Sendable (Result<RoomResponse, any Error>) -> Void = { [self] result in
            switch result {
            case .success(let r):
                if !r.broadcast.isEmpty { logger.notice("yjs room \(room): caught up from the database after a broker outage") }
                broadcastYjsLocally(r.broadcast, room: room)
            case .failure(let e): logger.warning("yjs room \(room): not caught up after a broker outage: \(e)")
            }
        }
        if let commits = yjsCommit {
            Task { _ = await commits.perform(room: room, bytes: 0, work: work, done: deliver) }
        } else {
            deliver(Result(catching: work))
        }
    }

    /// Sends frames to this node's peers of the room.
    func broadcastYjsLocally(_ frames: [[UInt8]], room: String) {
        let peers = yjsRooms.peers(room)
        for f in frames {
            let frame = OutboundFrame(kind: .binary, bytes: f)
            for p in peers { _ = engine.send(frame, to: p.connection) }
        }
    }

    /// Expires stale awareness and evicts idle rooms (called by the maintenance timer).
    func yjsMaintenance() {
        for room in yjsRooms.openRooms where !Self.isEncryptedChannel(room) {
            if let frames = try? yjsStore.expireAwareness(room: room) {
                broadcastYjs([ProtocolMessage.awareness(frames).encoded()], room: room)
            }
        }
        _ = yjsStore.evictIdleRooms()
        _ = yjsE2E.evictIdleRooms()
    }

    /// Whether `channel` (`site:{id}:…`) names an encrypted room (`site:{id}:yjs-e2e:{room}`).
    static func isEncryptedChannel(_ channel: String) -> Bool {
        guard channel.hasPrefix("site:") else { return false }
        let rest = channel.dropFirst(5)
        guard let colon = rest.firstIndex(of: ":") else { return false }
        return rest[rest.index(after: colon)...].hasPrefix("yjs-e2e:")
    }
}

/// `/yjs/{room}`: one y-websocket peer. Calls arrive one at a time from the session's inbox.
final class YjsEndpoint: WebSocketEndpoint, @unchecked Sendable {
    let relay: RelayService
    let room: String
    // Touched only by the serial inbox calls.
    private var connection: RelayConnection?
    private var channel = ""
    private var readOnly = true
    /// An end-to-end encrypted room (`site:{id}:yjs-e2e:{room}`, EncryptedRoomStore).
    private var encrypted = false
    private var admitted = false
    private var joined = false
    /// Registered on the room's side channel (a room shared across nodes).
    private var onSideChannel = false
    /// Messages queued from the event loop for the group-commit thread and not yet delivered.
    private let inFlight = Atomic<Int>(0)

    init(relay: RelayService, room: String) {
        self.relay = relay
        self.room = room
    }

    func opened(_ session: WebSocketSession) async {
        guard relay.admitWebSocket(session) else { return }
        admitted = true
        let request = session.request
        guard let token = request.query["auth"] ?? RelayService.token(from: request) else {
            relay.refuse(session, code: CloseCode.invalidToken, reason: "token required (?auth=)")
            return
        }
        let grant: ConnectionGrant
        switch relay.tokens.grant(for: token, sse: false) {
        case .success(var g):
            g.endpoint = .yjs
            grant = g
        case .failure(let r):
            relay.refuse(session, code: r.code, reason: r.reason)
            return
        }
        // A short name has both a plain and an encrypted channel; a full name (`site:{id}:yjs:…`
        // or `site:{id}:yjs-e2e:…`) only its own.
        let plainChannel = RelayService.yjsChannel(room: room, siteID: grant.siteID)
        let sealedChannel = RelayService.yjsE2EChannel(room: room, siteID: grant.siteID)
        // The grant chooses the mode: `?e2e=1` (or a full encrypted name) asks for the encrypted
        // room, which the token must grant; otherwise the plain room when granted, else the
        // encrypted one when that is.
        let grants = { RelayService.allowed($0, by: grant.subscribePrefixes, siteID: grant.siteID) }
        let wantsSealed = request.query["e2e"] == "1" || plainChannel == nil
        let channel: String
        if wantsSealed, let sealed = sealedChannel {
            channel = sealed
            encrypted = true
        } else if !wantsSealed, let plain = plainChannel {
            if !grants(plain), let sealed = sealedChannel, grants(sealed) {
                channel = sealed
                encrypted = true
            } else {
                channel = plain
            }
        } else {
            relay.refuse(session, code: CloseCode.roomForbidden, reason: "invalid room name")
            return
        }
        guard grants(channel) else {
            relay.refuse(session, code: CloseCode.roomForbidden, reason: "token does not grant this room")
            return
        }
        self.channel = channel
        readOnly = !RelayService.allowed(channel, by: grant.publishPrefixes, siteID: grant.siteID)
        let conn: RelayConnection
        switch relay.engine.connect(grant, onWake: { session.wake() }) {
        case .success(let c): conn = c
        case .failure(let r):
            relay.refuse(session, code: r.code, reason: r.reason)
            return
        }
        let yjs = relay.configuration.yjs
        switch relay.yjsRooms.join(channel, .init(connection: conn, userID: grant.userID),
                                   maxConnections: yjs.maxConnectionsPerRoom, maxCollaborators: yjs.maxCollaboratorsPerRoom) {
        case .joined: break
        case .roomFull:
            relay.engine.disconnect(conn, code: CloseCode.roomFull, reason: "room connection limit")
            relay.refuse(session, code: CloseCode.roomFull, reason: "room connection limit (\(yjs.maxConnectionsPerRoom))")
            return
        case .tooManyCollaborators:
            relay.engine.disconnect(conn, code: CloseCode.tooManyCollaborators, reason: "collaborator limit")
            relay.refuse(session, code: CloseCode.tooManyCollaborators, reason: "room collaborator limit (\(yjs.maxCollaboratorsPerRoom))")
            return
        }
        joined = true
        connection = conn
        relay.sessions.add(SessionRegistry.Entry(connection: conn, isSSE: false, activity: session.activity, yjsRoom: channel))
        session.attach(conn)
        // An encrypted room waits for the client's sync request; nothing is read here.
        if encrypted { return }
        // A room shared across nodes: hear the other nodes before reading the room, so an update
        // is either in what is read (stored before) or heard (sent after it was stored).
        if relay.yjsAcrossNodes {
            let relay = self.relay, room = channel
            do {
                try await relay.engine.joinSideChannel(channel) { event in
                    switch event {
                    case .message(let frame): relay.receiveYjsFromNode(frame, room: room)
                    case .resync: relay.resyncYjsRoom(room)
                    }
                }
                onSideChannel = true
            } catch {
                relay.logger.warning("yjs room \(channel): other nodes unreachable: \(error)")
                relay.engine.disconnect(conn, code: CloseCode.tryAgainLater, reason: "broker unavailable", flushPending: true)
                return
            }
        }
        // Like the y-websocket server: our sync step 1, then the awareness of everyone present.
        do {
            let store = relay.yjsStore
            for f in try await relay.yjsIO.runIfActive({ try store.openingFrames(room: channel) }) {
                _ = relay.engine.send(OutboundFrame(kind: .binary, bytes: f), to: conn)
            }
        } catch DocumentStoreError.persistenceFailed(let detail, let kind) {
            relay.storageErrors.log(level: .error, "yjs room \(channel): room could not be loaded: \(kind.rawValue) (\(detail))")
            relay.engine.disconnect(conn, code: .internalError, reason: "room could not be loaded: \(kind.rawValue)", flushPending: true)
        } catch {
            relay.logger.error("yjs room \(channel): room could not be loaded: \(error)")
            relay.engine.disconnect(conn, code: .internalError, reason: "room could not be loaded", flushPending: true)
        }
    }

    /// The one-hop path: a message that arrives while nothing of this connection is queued is
    /// handled on its event loop, without a task: in memory right here (validate, apply,
    /// broadcast); with persistence it is queued from here for the group-commit thread, which
    /// stores it with whatever else arrived meanwhile and then acknowledges and broadcasts it.
    /// A client over its rate, a connection with `maxInFlightPerConnection` messages queued or a
    /// full write queue go the inbox way, which waits (and keeps the order of what follows).
    func handleOnEventLoop(_ job: WebSocketSession.Job, _ session: WebSocketSession) -> Bool {
        guard case .message(let message) = job, let conn = connection else { return false }
        if conn.isClosed { return true }
        guard case .binary(let bytes) = message else { return true }  // y-websocket is binary only
        let yjs = relay.configuration.yjs
        if bytes.count > yjs.maxUpdateBytes {
            relay.engine.disconnect(conn, code: CloseCode.updateTooLarge, reason: "update larger than \(yjs.maxUpdateBytes) bytes", flushPending: true)
            return true
        }
        if relay.engine.clientPublishWouldWait(conn) { return false }
        let durable = relay.yjsCommit != nil
        if let commits = relay.yjsCommit, inFlight.load(ordering: .relaxed) >= yjs.maxInFlightPerConnection
            || commits.queuedBytes >= yjs.maxWriteQueueBytes { return false }
        switch relay.engine.clientPublishAdmission(conn, maxWait: relay.configuration.clientPublishMaxWait, consume: true) {
        case .now: break
        case .refused: return true  // closed with 4013
        case .wait: return false
        }
        guard durable else {
            relay.handleYjsFrameNow(bytes, room: channel, conn: conn, readOnly: readOnly, encrypted: encrypted)
            return true
        }
        inFlight.add(1, ordering: .relaxed)
        relay.submitYjsFrame(bytes, room: channel, conn: conn, readOnly: readOnly, encrypted: encrypted,
                             finished: { self.inFlight.subtract(1, ordering: .relaxed) })
        return true
    }

    func received(_ message: WebSocketMessage, _ session: WebSocketSession) async {
        guard let conn = connection, !conn.isClosed else { return }
        guard case .binary(let bytes) = message else { return }  // y-websocket is binary only
        let limit = relay.configuration.yjs.maxUpdateBytes
        if bytes.count > limit {
            relay.engine.disconnect(conn, code: CloseCode.updateTooLarge, reason: "update larger than \(limit) bytes", flushPending: true)
            return
        }
        // Every message a client sends is broadcast or answered: it counts against the site's
        // client publish rate, like a /ws publish (a burst waits; 4013 after --client-publish-max-wait).
        // Waiting here holds this socket's reads (its inbox fills), never another connection's.
        guard await relay.throttle(conn, consume: true) else { return }
        await relay.handleYjsFrame(bytes, room: channel, conn: conn, readOnly: readOnly, encrypted: encrypted)
    }

    func closed(_ session: WebSocketSession) async {
        if let conn = connection {
            relay.engine.disconnect(conn, code: .normal, reason: "client closed")
            relay.sessions.remove(conn)
            connection = nil
            if joined {
                joined = false
                relay.yjsRooms.leave(channel, conn)
                let store = relay.yjsStore, sealed = relay.yjsE2E, id = conn.id, channel = self.channel, relay = self.relay
                let encrypted = self.encrypted
                let work: @Sendable () throws -> RoomResponse = {
                    RoomResponse(broadcast: encrypted ? sealed.close(room: channel, connection: id) : try store.close(room: channel, connection: id))
                }
                if let commits = relay.yjsCommit {
                    // After this connection's queued messages (its last awareness included).
                    _ = await commits.perform(room: channel, bytes: 0, work: work,
                                              done: { if case .success(let r) = $0 { relay.broadcastYjs(r.broadcast, room: channel) } })
                } else if let r = try? work() {
                    relay.broadcastYjs(r.broadcast, room: channel)
                }
                if onSideChannel {
                    // The last local peer gone: this node stops hearing the room, so its copy would
                    // go stale; drop it (the room is durable in the shared store).
                    onSideChannel = false
                    let store = relay.yjsStore
                    await relay.engine.leaveSideChannel(channel, whenLast: { store.discard(room: channel) })
                }
            }
        }
        if admitted {
            relay.sessions.leave(ip: session.request.remoteIP)
            admitted = false
        }
    }
}
