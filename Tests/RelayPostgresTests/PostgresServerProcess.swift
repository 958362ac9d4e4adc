import Foundation
@_exported import RelayTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every suite that starts a PostgreSQL server runs inside this one, one test at a time.
@Suite(.serialized, .enabled(if: PostgresServerProcess.enabled, "needs postgresql (Debian package)"))
enum RealPostgres {}

