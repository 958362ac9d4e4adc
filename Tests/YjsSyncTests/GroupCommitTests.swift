import Dispatch
import Foundation
import Synchronization
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// A persistence whose first batch write waits until the test opens the gate (so that the queue
/// has to collect what arrives meanwhile), and which counts what reached its inner persistence.
final class GatedPersistence: YjsPersistence {
    let inner: any YjsPersistence
    private let gate = DispatchSemaphore(value: 0)
    struct State { var gated = true; var waiting = false; var durableAppends = 0; var batches: [Int] = [] }
    let state = Mutex(State())

    init(inner: any YjsPersistence) { self.inner = inner }

    func open() { gate.signal() }
    var waiting: Bool { state.withLock { $0.waiting } }
    var durableAppends: Int { state.withLock { $0.durableAppends } }

    func load(room: String) throws -> PersistedRoom { try inner.load(room: room) }
    func append(room: String, entry: LoggedUpdate) throws { try write([.append(room: room, entry: entry)]) }
    func compact(room: String, snapshot: [UInt8], throughSeq: Int64) throws {
        try write([.compact(room: room, snapshot: snapshot, throughSeq: throughSeq)])
    }
    func write(_ writes: [PersistenceWrite]) throws {
        let wait = state.withLock { s -> Bool in
            if s.gated { s.waiting = true }
            return s.gated
        }
        if wait {
            gate.wait()
            state.withLock { $0.gated = false }
        }
        try inner.write(writes)
        let appends = writes.filter { if case .append = $0 { return true } else { return false } }.count
        state.withLock { $0.durableAppends += appends; $0.batches.append(writes.count) }
    }
}

/// The group-commit queue: updates that arrive while a write is in progress share the next
/// transaction, nothing computed from an update leaves before that update is durable, and a failed
/// transaction leaves the rooms it wrote exactly as the disk has them.
@Suite struct GroupCommitTests {
    static func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { Issue.record("timed out waiting for \(what)"); return }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    static func updateFrame(_ u: [UInt8]) -> [UInt8] { ProtocolMessage.sync(.update(u)).encoded() }
    static let step1 = ProtocolMessage.sync(.step1(stateVector: StateVector().encoded())).encoded()

    static func makeQueue(_ base: any YjsPersistence) -> (DocumentStore, GroupCommitQueue) {
        var o = DocumentStoreOptions()
        o.backgroundCompaction = false
        o.persistCompactionThreshold = 25  // a snapshot is written inside the batch too
        o.persistRatio = 0
        let p = GroupCommitPersistence(base: base)
        let store = DocumentStore(persistence: p, options: o)
        return (store, GroupCommitQueue(persistence: p) { store.discard(room: $0) })
    }

    @Test func updatesArrivingDuringAWriteShareOneTransactionAndLeaveOnlyWhenDurable() async throws {
        let gated = GatedPersistence(inner: InMemoryPersistence())
        let (store, queue) = Self.makeQueue(gated)
        let updates = StorageFailureTests.typing(60, length: 3)
        struct Done { var order: [Int] = []; var durableAtCompletion: [Int] = []; var broadcasts = 0; var step2: [UInt8]? }
        let done = Mutex(Done())
        func submit(_ i: Int) {
            queue.submit(room: "a", bytes: updates[i].count, work: {
                try store.handle(room: "a", frame: Self.updateFrame(updates[i]), from: 1)
            }, done: { result in
                let durable = gated.durableAppends
                done.withLock { d in
                    d.order.append(i)
                    d.durableAtCompletion.append(durable)
                    d.broadcasts += (try? result.get())?.broadcast.count ?? 0
                }
            })
        }
        submit(0)
        try await Self.waitUntil("the first write to wait at the gate") { gated.waiting }
        for i in 1..<60 { submit(i) }
        // A late joiner's sync step 1 behind them: its answer holds all 60 updates, so it may only
        // leave once all 60 are durable.
        queue.submit(room: "a", bytes: Self.step1.count, work: { try store.handle(room: "a", frame: Self.step1, from: 2) }) { result in
            let reply = (try? result.get())?.reply.first
            let durable = gated.durableAppends
            done.withLock { d in
                d.order.append(-1)
                d.durableAtCompletion.append(durable)
                if let reply, case .sync(.step2(let u))? = try? ProtocolMessage(decoding: reply) { d.step2 = u }
            }
        }
        #expect(done.withLock { $0.order.isEmpty }, "nothing completes before its write")
        gated.open()
        try await Self.waitUntil("61 completions") { done.withLock { $0.order.count } == 61 }
        let d = done.withLock { $0 }
        #expect(d.order == Array(0..<60) + [-1], "completions in submission order")
        #expect(d.broadcasts == 60)
        for (k, i) in d.order.enumerated() {
            #expect(d.durableAtCompletion[k] >= (i < 0 ? 60 : i + 1), "completion \(i) ran before its update was durable")
        }
        let stats = queue.statistics
        #expect(stats.commits == 2 && stats.failedCommits == 0, "\(stats)")
        #expect(stats.largestBatch == 60)
        // 60 appends, plus the snapshots the store wrote in the same transactions.
        #expect(gated.state.withLock { $0.batches }.count == 2)
        #expect(stats.writes > 60)
        let step2 = try #require(d.step2)
        #expect(try YUpdate.stateVector(of: step2) == StateVector([3: 180]))
        // What the disk holds is the whole document.
        let fresh = DocumentStore(persistence: gated.inner)
        #expect(try fresh.stateVector(room: "a") == StateVector([3: 180]))
        await queue.shutdown()
    }

    @Test func aFailedTransactionRefusesItsRoomsAndKeepsOthers() async throws {
        let (dir, path) = try StorageFailureTests.tempPath()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sqlite = try SQLitePersistence(path: path)
        let gated = GatedPersistence(inner: sqlite)
        gated.open()  // the first write goes through: only later ones are gated
        let (store, queue) = Self.makeQueue(gated)
        let updates = StorageFailureTests.typing(12, length: 2)
        func perform(_ room: String, _ frame: [UInt8]) async -> Result<RoomResponse, any Error> {
            let box = Mutex<Result<RoomResponse, any Error>?>(nil)
            _ = await queue.perform(room: room, bytes: frame.count, work: { try store.handle(room: room, frame: frame, from: 1) }) { r in
                box.withLock { $0 = r }
            }
            return box.withLock { $0! }
        }
        for i in 0..<5 { _ = try await perform("a", Self.updateFrame(updates[i])).get() }
        #expect(gated.durableAppends == 5)

        // The disk turns read-only; a batch with updates of room "a" and a read of room "c".
        try sqlite.executeOnWriter(sql: "PRAGMA query_only = 1")
        let results = Mutex<[String: Result<RoomResponse, any Error>]>([:])
        for i in 5..<8 {
            queue.submit(room: "a", bytes: 1, work: { try store.handle(room: "a", frame: Self.updateFrame(updates[i]), from: 1) }) { r in
                results.withLock { $0["a\(i)"] = r }
            }
        }
        queue.submit(room: "c", bytes: 1, work: { try store.handle(room: "c", frame: Self.step1, from: 2) }) { r in
            results.withLock { $0["c"] = r }
        }
        try await Self.waitUntil("4 completions") { results.withLock { $0.count } == 4 }
        let r = results.withLock { $0 }
        for i in 5..<8 {
            guard case .failure(let e) = r["a\(i)"]!, case DocumentStoreError.persistenceFailed(_, let kind) = e else {
                Issue.record("update \(i) was acknowledged on a read-only disk"); continue
            }
            #expect(kind == .readOnly)
        }
        #expect((try? r["c"]!.get()) != nil, "a job of a room the batch did not write completes")
        #expect(queue.statistics.failedCommits >= 1)
        // Room "a" holds exactly what the disk holds: the 5 acknowledged updates.
        #expect(try store.stateVector(room: "a") == StateVector([3: 10]))

        // The disk is fixed: the refused updates are sent again and stored after the 5 (no gap,
        // no conflict with the refused ones' sequence numbers).
        try sqlite.executeOnWriter(sql: "PRAGMA query_only = 0")
        for i in 5..<12 { _ = try await perform("a", Self.updateFrame(updates[i])).get() }
        await queue.shutdown()
        let reopened = DocumentStore(persistence: try SQLitePersistence(path: path))
        #expect(try reopened.stateVector(room: "a") == StateVector([3: 24]))
    }

    @Test func aSubmitAfterShutdownIsRefused() async throws {
        let (store, queue) = Self.makeQueue(InMemoryPersistence())
        await queue.shutdown()
        let ran = Atomic(false)
        let queued = queue.submit(room: "a", bytes: 1, work: { try store.handle(room: "a", frame: Self.step1, from: 1) }) { _ in
            ran.store(true, ordering: .relaxed)
        }
        #expect(!queued)
        try await Task.sleep(for: .milliseconds(20))
        let didRun = ran.load(ordering: .relaxed)
        #expect(!didRun)
        await queue.shutdown()  // twice is fine
    }
}
