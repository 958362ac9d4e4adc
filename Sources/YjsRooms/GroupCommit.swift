// Group commit for a document store on durable persistence: one thread runs the store's work in
// arrival order and makes the writes of everything that arrived together durable with one
// transaction, before anything computed from them leaves the relay.
import Foundation
import RelaySync
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A persistence whose writes, when made by the thread inside `collecting`, are held and handed
/// back instead of written; writes from any other thread go straight to `base`.
///
/// The document store believes such a write durable when `append` returns, so whoever collects
/// must write the collected batch (`base.write`) before letting anything computed meanwhile out,
/// and discard the rooms it touched when that write fails. `GroupCommitQueue` does both.
public final class GroupCommitPersistence: YjsPersistence {
    /// The persistence the batches are written to.
    public let base: any YjsPersistence
    private struct Batch {
        var owner: pthread_t?
        var writes: [PersistenceWrite] = []
    }
    private let batch = Mutex(Batch())

    public init(base: any YjsPersistence) { self.base = base }

    /// Runs `body` with this thread's writes held; returns them in the order they were made.
    public func collecting(_ body: () -> Void) -> [PersistenceWrite] {
        let me = pthread_self()
        batch.withLock { b in
            precondition(b.owner == nil, "GroupCommitPersistence.collecting is not reentrant")
            b.owner = me
        }
        body()
        return batch.withLock { b in
            b.owner = nil
            defer { b.writes.removeAll() }
            return b.writes
        }
    }

    /// True when the write was held for the current batch.
    private func held(_ write: @autoclosure () -> PersistenceWrite) -> Bool {
        let me = pthread_self()
        return batch.withLock { b in
            guard let owner = b.owner, pthread_equal(owner, me) != 0 else { return false }
            b.writes.append(write())
            return true
        }
    }

    public func load(room: String) throws -> PersistedRoom { try base.load(room: room) }

    public func append(room: String, entry: LoggedUpdate) throws {
        if held(.append(room: room, entry: entry)) { return }
        try base.append(room: room, entry: entry)
    }

    public func compact(room: String, snapshot: [UInt8], throughSeq: Int64) throws {
        if held(.compact(room: room, snapshot: snapshot, throughSeq: throughSeq)) { return }
        try base.compact(room: room, snapshot: snapshot, throughSeq: throughSeq)
    }

    public func write(_ writes: [PersistenceWrite]) throws { try base.write(writes) }
}

/// Runs a document store's work on one thread, in the order it was submitted, and commits the
/// writes of each batch (everything queued while the previous batch was being written) in one
/// transaction: at typing rates a batch is one update and costs one sync to disk; under load many
/// updates share one (group commit), with no waiting window added.
///
/// A job's completion runs on the queue's thread after its batch is durable, so an update is
/// acknowledged and broadcast only once it is on disk, and a reply computed from the room's state
/// (sync step 2) never carries an update that is not. When the transaction fails nothing of the
/// batch is on disk: the rooms it wrote are discarded from memory (they reload from disk on next
/// use) and every job of those rooms completes with `DocumentStoreError.persistenceFailed`; jobs
/// of other rooms complete normally.
///
/// The store must use a `GroupCommitPersistence` (`persistence`) and inline compaction
/// (`DocumentStoreOptions.backgroundCompaction = false`), and every call that may write must be
/// made through the queue.
public final class GroupCommitQueue: Sendable {
    /// What a job's completion receives: the job's result, or the error that refused it.
    public typealias Completion = @Sendable (Result<RoomResponse, any Error>) -> Void

    struct Job: Sendable {
        let room: ExactName
        let bytes: Int
        let work: @Sendable () throws -> RoomResponse
        let done: Completion
    }

    /// Counters of the queue's commits (for tests, stats and metrics).
    public struct Statistics: Sendable, Equatable {
        /// Transactions written (batches that wrote something).
        public var commits = 0
        /// Writes in them (appends and compactions).
        public var writes = 0
        /// Transactions that failed.
        public var failedCommits = 0
        /// Most jobs in one batch.
        public var largestBatch = 0
    }

    public let persistence: GroupCommitPersistence
    /// Drops a room from memory after a failed commit (`DocumentStore.discard`, and that of any
    /// other store writing through `persistence`).
    private let discard: @Sendable (String) -> Void
    /// Called after each batch that wrote something: jobs in it, writes, whether it failed (metrics).
    private let onCommit: @Sendable (_ jobs: Int, _ writes: Int, _ failed: Bool) -> Void
    /// Most jobs run in one batch (bounds the time between a batch's first job and its commit).
    public let maxBatch: Int
    private let queue = BlockingBatchQueue<Job>()
    private let queued = Atomic<Int>(0)
    private let stats = Mutex(Statistics())
    private let exited = BlockingBatchQueue<Void>()

    /// Starts the queue's thread. `discard` drops a room from memory after a failed commit
    /// (`DocumentStore.discard` of every store writing through `persistence`).
    public init(persistence: GroupCommitPersistence, maxBatch: Int = 1024,
                onCommit: @escaping @Sendable (_ jobs: Int, _ writes: Int, _ failed: Bool) -> Void = { _, _, _ in },
                discard: @escaping @Sendable (String) -> Void) {
        self.discard = discard
        self.onCommit = onCommit
        self.persistence = persistence
        self.maxBatch = max(1, maxBatch)
        let thread = Thread { [self] in
            run()
            _ = exited.append(())
        }
        thread.name = "yjs-commit"
        thread.start()
    }

    /// Queues `work` (a store call) for `room`; `done` runs on the queue's thread once the batch
    /// it ran in is durable. `bytes` is what the job holds (the message), counted in
    /// `queuedBytes` until it completes. False when the queue was shut down (nothing queued).
    @discardableResult
    public func submit(room: String, bytes: Int, work: @escaping @Sendable () throws -> RoomResponse,
                       done: @escaping Completion) -> Bool {
        queued.add(bytes, ordering: .relaxed)
        guard queue.append(Job(room: ExactName(room), bytes: bytes, work: work, done: done)) else {
            queued.subtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    /// `submit`, waiting for the completion (which has run when this returns).
    public func perform(room: String, bytes: Int, work: @escaping @Sendable () throws -> RoomResponse,
                        done: @escaping Completion) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let queuedIt = submit(room: room, bytes: bytes, work: work) { result in
                done(result)
                c.resume(returning: true)
            }
            if !queuedIt { c.resume(returning: false) }
        }
    }

    /// Bytes of the jobs queued or running.
    public var queuedBytes: Int { queued.load(ordering: .relaxed) }

    /// The commit counters so far.
    public var statistics: Statistics { stats.withLock { $0 } }

    /// Refuses new jobs, finishes those queued, and returns when the thread has ended.
    public func shutdown() async {
        queue.close()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            Thread {
                _ = self.exited.takeAll()
                _ = self.exited.append(())  // a second shutdown() returns at once
                c.resume()
            }.start()
        }
    }

    private func run() {
        while let jobs = queue.takeAll(limit: maxBatch) {
            var results: [Result<RoomResponse, any Error>] = []
            results.reserveCapacity(jobs.count)
            let writes = persistence.collecting {
                for job in jobs { results.append(Result { try job.work() }) }
            }
            var failure: (any Error)?
            var failedRooms: Set<ExactName> = []
            if !writes.isEmpty {
                do { try persistence.base.write(writes) } catch {
                    failure = error
                    failedRooms = Set(writes.map { ExactName($0.room) })
                    for room in failedRooms { discard(room.name) }
                }
            }
            stats.withLock { s in
                if !writes.isEmpty {
                    s.commits += 1
                    s.writes += writes.count
                    if failure != nil { s.failedCommits += 1 }
                }
                s.largestBatch = max(s.largestBatch, jobs.count)
            }
            if !writes.isEmpty { onCommit(jobs.count, writes.count, failure != nil) }
            var bytes = 0
            for (job, result) in zip(jobs, results) {
                bytes += job.bytes
                if let failure, failedRooms.contains(job.room), case .success = result {
                    job.done(.failure(DocumentStoreError.persistence(failure)))
                } else {
                    job.done(result)
                }
            }
            queued.subtract(bytes, ordering: .relaxed)
        }
    }
}
