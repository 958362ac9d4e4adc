#if RELAY_TSAN
import RelaySync

/// Under ThreadSanitizer (`make test-tsan` builds with `-DRELAY_TSAN`) this module's `Mutex` is a
/// pthread mutex TSan can see; see `RelaySync.PthreadMutex` for why. Other builds use
/// `Synchronization.Mutex`.
typealias Mutex<Value> = PthreadMutex<Value>
#endif
