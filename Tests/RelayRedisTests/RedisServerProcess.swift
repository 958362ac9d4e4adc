import Foundation
import NIOCore
import RelayRedis
@_exported import RelayTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every suite that starts redis-server runs inside this one, one test at a time: `make test`
/// runs all other suites at once on two cores, and a dozen Redis servers beside them starved
/// handshakes past their timeouts.
@Suite(.serialized, .enabled(if: RedisServerProcess.enabled, "needs redis-server (Debian package)"))
enum RealRedis {}

extension RedisServerProcess {
    /// Generous timeouts: `make test` runs every suite at once on two cores.
    var configuration: RedisConfiguration { RedisConfiguration(host: "127.0.0.1", port: port, connectTimeout: .seconds(20)) }
}
