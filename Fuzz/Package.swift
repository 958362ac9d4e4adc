// swift-tools-version:6.0
// Coverage-guided fuzz targets (libFuzzer) for the decoders that read untrusted bytes.
// Built apart from the main package: `make fuzz` / `make fuzz-replay` (see Fuzz/README.md).
import PackageDescription

let relay: [Target.Dependency] = [
    .product(name: "RelayCrypto", package: "Relay"),
    .product(name: "YjsRooms", package: "Relay"),
    .product(name: "YjsCodec", package: "Relay"),
    .product(name: "RelayProtocol", package: "Relay"),
    .product(name: "RelayJSON", package: "Relay"),
]
// RelayWebSocket is not a product of its own: it is imported through RelayServer, which re-uses it.
let webSocket: [Target.Dependency] = [
    .product(name: "RelayServer", package: "Relay"),
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
    .product(name: "NIOWebSocket", package: "swift-nio"),
    .product(name: "NIOEmbedded", package: "swift-nio"),
]

let targets: [(String, [Target.Dependency])] = [
    ("FuzzJSON", relay), ("FuzzClientFrame", relay), ("FuzzBase64", relay), ("FuzzJWT", relay),
    ("FuzzEnvelope", relay), ("FuzzYjsMessage", relay), ("FuzzYjsUpdate", relay),
    ("FuzzPublishSignature", relay), ("FuzzLib0", relay), ("FuzzYjsMerge", relay), ("FuzzYjsGC", relay), ("FuzzYjsSealed", relay),
    ("FuzzWebSocketFrames", relay + webSocket), ("FuzzHTTPUpgrade", relay + webSocket),
]

let package = Package(
    name: "RelayFuzz",
    dependencies: [
        .package(name: "Relay", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: targets.map { name, deps in
        .executableTarget(name: name, dependencies: deps, path: "Sources/\(name)")
    }
)
