#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex on `pthread_mutex_t` with the shape of `Synchronization.Mutex` (`init`, `withLock`).
///
/// It exists for ThreadSanitizer only. The standard library's `Mutex` locks with futexes that
/// TSan does not model on Linux, so every access it protects is reported as a race (checked with
/// a two-thread counter: correct result, four reports). Built with `-DRELAY_TSAN`
/// (`make test-tsan`), each module that locks names this type `Mutex` (see its
/// `SanitizerLocks.swift`); every other build uses `Synchronization.Mutex`.
public final class PthreadMutex<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ initialValue: Value) {
        value = initialValue
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

/// A FIFO that one consumer thread drains in batches: `append` from any thread, `takeAll` blocks
/// the consumer until something is queued (or the queue is closed). Built on a pthread mutex and
/// condition variable (a thread that sleeps must wait on something the kernel can wake).
public final class BlockingBatchQueue<Element>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var items: [Element] = []
    private var closed = false

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        precondition(pthread_cond_init(condition, nil) == 0, "pthread_cond_init failed")
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Queues `element`; false (not queued) once the queue is closed.
    public func append(_ element: Element) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard !closed else { return false }
        items.append(element)
        if items.count == 1 { pthread_cond_signal(condition) }
        return true
    }

    /// Waits until something is queued and returns everything queued, in order, at most `limit`
    /// elements; nil when the queue is closed and empty (the consumer should then end).
    public func takeAll(limit: Int = .max) -> [Element]? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while items.isEmpty && !closed { pthread_cond_wait(condition, mutex) }
        if items.isEmpty { return nil }
        if items.count <= limit {
            defer { items.removeAll(keepingCapacity: true) }
            return items
        }
        let batch = Array(items.prefix(limit))
        items.removeFirst(limit)
        return batch
    }

    /// Refuses further elements; the consumer still gets those already queued.
    public func close() {
        pthread_mutex_lock(mutex)
        closed = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }
}
