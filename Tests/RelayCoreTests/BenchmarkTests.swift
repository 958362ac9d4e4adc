import Testing
import RelayCore
#if canImport(Glibc)
import Glibc
#endif

/// Not run by default: `RELAY_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter RelayCoreTests.Benchmarks`.
@Suite(.enabled(if: getenv("RELAY_BENCH") != nil, "set RELAY_BENCH=1 to run"), .serialized)
struct Benchmarks {
    @Test func fanOut() {
        for n in [1_000, 10_000, 50_000] {
            let pubs = n >= 50_000 ? 200 : 1000
            print(RelayBenchmark.fanOut(subscribers: n, publications: pubs, drainEvery: n >= 50_000 ? 20 : 50))
        }
    }

    @Test func idleMemory() {
        print(RelayBenchmark.idleMemory(connections: 50_000, sharedChannel: true))
        print(RelayBenchmark.idleMemory(connections: 50_000, sharedChannel: false))
    }
}
