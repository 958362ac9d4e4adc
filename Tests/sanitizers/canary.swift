// A deliberate bug for each sanitizer, run by scripts/sanitize.sh before the suite: it proves the
// instrumentation is on and that reports land where the script looks (a harness that could never
// report would pass every time).
#if canImport(Glibc)
import Glibc
#endif

final class Shared: @unchecked Sendable { var n = 0 }

switch CommandLine.arguments.dropFirst().first {
case "thread":
    // Two threads increment one unprotected counter: a data race.
    let shared = Shared()
    var threads: [pthread_t] = []
    for _ in 0..<2 {
        var t = pthread_t()
        let box = Unmanaged.passRetained(shared).toOpaque()
        pthread_create(&t, nil, { p in
            let s = Unmanaged<Shared>.fromOpaque(p!).takeRetainedValue()
            for _ in 0..<10_000 { s.n += 1 }
            return nil
        }, box)
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
    print(shared.n)
case "address":
    // One element past the end of a heap block.
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 16)
    p[16] = 1
    print(p[0])
default:
    print("usage: canary thread|address")
}
