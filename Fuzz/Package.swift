// swift-tools-version:6.0
// Coverage-guided fuzz targets (libFuzzer) for the decoders that read untrusted bytes.
// Built apart from the main package: `make fuzz` / `make fuzz-replay` (see Fuzz/README.md).
import PackageDescription

let targets = ["FuzzJSON", "FuzzClientFrame", "FuzzBase64", "FuzzJWT", "FuzzEnvelope", "FuzzYjsMessage", "FuzzYjsUpdate"]

let package = Package(
    name: "RelayFuzz",
    dependencies: [.package(name: "Relay", path: "..")],
    targets: targets.map { name in
        .executableTarget(name: name, dependencies: [
            .product(name: "RelayCrypto", package: "Relay"),
            .product(name: "YjsCodec", package: "Relay"),
            .product(name: "RelayProtocol", package: "Relay"),
            .product(name: "RelayJSON", package: "Relay"),
        ], path: "Sources/\(name)")
    }
)
