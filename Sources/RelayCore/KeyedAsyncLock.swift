import DequeModule
import Synchronization

/// An async mutual-exclusion lock per key (FIFO handoff). Used in broker mode
/// so a node's subscribe/seed and unsubscribe of one channel never interleave, and by the
/// site store so two usage flushes never add the same counts.
public final class KeyedAsyncLock: Sendable {
    private let waiters = Mutex<[String: Deque<CheckedContinuation<Void, Never>>]>([:])

    public init() {}

    public func lock(_ key: String) async {
        let acquired: Bool = waiters.withLock { w in
            if w[key] == nil { w[key] = []; return true }
            return false
        }
        if acquired { return }
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let now: Bool = waiters.withLock { w in
                if w[key] == nil { w[key] = []; return true }  // released meanwhile
                w[key]!.append(cont)
                return false
            }
            if now { cont.resume() }
        }
    }

    public func unlock(_ key: String) {
        let next: CheckedContinuation<Void, Never>? = waiters.withLock { w in
            guard var q = w[key] else { return nil }
            if q.isEmpty { w[key] = nil; return nil }
            let c = q.removeFirst()
            w[key] = q
            return c  // ownership passes to the next waiter
        }
        next?.resume()
    }

    public func withLock<R>(_ key: String, _ body: () async throws -> R) async rethrows -> R {
        await lock(key)
        defer { unlock(key) }
        return try await body()
    }
}
