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
