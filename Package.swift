// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Relay",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "RelayJSON", targets: ["RelayJSON"]),
        .library(name: "RelayProtocol", targets: ["RelayProtocol"]),
        .library(name: "RelayCrypto", targets: ["RelayCrypto"]),
        .library(name: "RelayCore", targets: ["RelayCore"]),
        .library(name: "YjsCodec", targets: ["YjsCodec"]),
        .library(name: "YjsRooms", targets: ["YjsRooms"]),
        .library(name: "YjsStore", targets: ["YjsStore"]),
        .library(name: "RelayRedis", targets: ["RelayRedis"]),
        .library(name: "RelayPostgres", targets: ["RelayPostgres"]),
        .library(name: "RelayServer", targets: ["RelayServer"]),
        .library(name: "RelayClient", targets: ["RelayClient"]),
        .executable(name: "relayd", targets: ["relayd"]),
        .executable(name: "relayctl", targets: ["relayctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.20.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.30.0"),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),

        // Libraries.
        // The one JSON scanner and writer (RFC 8259, one strictness); no dependencies.
        .target(name: "RelayJSON"),
        // A pthread mutex shaped like Synchronization.Mutex, used only by `make test-tsan`
        // (-DRELAY_TSAN), where TSan cannot see the standard library's futex-based Mutex.
        .target(name: "RelaySync"),
        // The public protocol: frames, error codes, close codes of every endpoint.
        .target(name: "RelayProtocol", dependencies: ["RelayJSON"]),
        .target(
            name: "RelayCrypto",
            dependencies: ["RelayJSON", "RelaySync", "COpenSSL", "CSodium"]
        ),
        .target(
            name: "RelayCore",
            dependencies: [
                "RelayJSON", "RelayProtocol", "RelayCrypto", "RelaySync",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Yjs: the binary codec and update algebra (no dependencies), rooms
        // (documents, awareness, y-protocols replies), and the SQLite store.
        .target(name: "YjsCodec"),
        .target(name: "YjsRooms", dependencies: ["YjsCodec", "RelayJSON", "RelaySync"]),
        .target(
            name: "YjsStore",
            dependencies: [
                "YjsRooms",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),

        // The WebSocket transport on SwiftNIO: RFC 6455 checks, message assembly,
        // frames encoded once per event loop, the per-connection session.
        .target(
            name: "RelayWebSocket",
            dependencies: [
                "RelayProtocol", "RelayCore", "RelaySync",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // The site registry (SQLite): used by relayd and by relayctl without the server.
        .target(
            name: "RelaySites",
            dependencies: [
                "RelayJSON", "RelayCrypto", "RelayCore", "RelaySync",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // Redis over RESP3 on SwiftNIO (no Redis client is in the package set): the codec, pipelined
        // connections with pub/sub pushes. The engine's Redis broker builds on it.
        .target(
            name: "RelayRedis",
            dependencies: [
                "RelaySync", "RelayCore", "RelayProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Yjs rooms shared by several nodes in PostgreSQL (behind YjsRooms' YjsPersistence seam).
        .target(
            name: "RelayPostgres",
            dependencies: [
                "YjsCodec", "YjsRooms", "RelaySites", "RelayCore", "RelayCrypto", "RelayJSON",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "RelayServer",
            dependencies: [
                "RelayJSON", "RelayProtocol", "RelayCrypto", "RelayCore", "RelaySites", "RelayWebSocket", "YjsCodec", "YjsRooms", "YjsStore", "RelaySync",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),

        .target(
            name: "RelayClient",
            dependencies: [
                "RelayJSON", "RelayCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        // Load generation for `relayctl bench` (not part of the relay).
        .target(
            name: "RelayLoad",
            dependencies: [
                "RelayJSON", "RelayCrypto", "RelayClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        // Executables: argument parsing and composition only.
        .executableTarget(
            name: "relayd",
            dependencies: [
                "RelayServer", "RelayRedis", "RelayPostgres", "RelaySites", "RelayCore", "RelayProtocol", "RelayWebSocket", "RelayJSON", "YjsRooms",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "relayctl",
            dependencies: [
                "RelayJSON", "RelayProtocol", "RelayCrypto", "RelayCore", "YjsCodec", "YjsRooms", "RelaySites", "RelayClient", "RelayLoad",
                "RelayPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Tests (Swift Testing).
        .testTarget(name: "RelayJSONTests", dependencies: ["RelayJSON"]),
        .testTarget(name: "RelayCryptoTests", dependencies: ["RelayJSON", "RelayCrypto"]),
        .testTarget(name: "RelayProtocolTests", dependencies: ["RelayProtocol", "RelayJSON"]),
        .testTarget(name: "RelayCoreTests", dependencies: ["RelayJSON", "RelayProtocol", "RelayCore"]),
        .testTarget(name: "YjsSyncTests", dependencies: ["YjsCodec", "YjsRooms", "YjsStore", "RelayJSON"]),
        .testTarget(name: "RelayServerTests", dependencies: [
            "RelayServer", "RelaySites", "RelayWebSocket", "RelayJSON", "RelayProtocol", "RelayCrypto", "RelayCore", "RelayTestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
        ]),
        .testTarget(name: "CLITests", dependencies: ["RelayJSON", "RelayCrypto"]),
        .testTarget(name: "RelayRedisTests", dependencies: [
            "RelayRedis", "RelayCore", "RelayProtocol", "RelayTestSupport",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Real servers (redis-server, postgres) started for tests, shared by the test targets.
        .target(name: "RelayTestSupport", path: "Tests/RelayTestSupport"),
        .testTarget(name: "RelayPostgresTests", dependencies: [
            "RelayPostgres", "YjsRooms", "YjsCodec", "RelayTestSupport", "RelaySites", "RelayCore", "RelayCrypto",
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),
        .testTarget(name: "RelayLoadTests", dependencies: ["RelayLoad", "RelayJSON", "RelayCrypto"]),
    ],
    swiftLanguageModes: [.v6]
)
