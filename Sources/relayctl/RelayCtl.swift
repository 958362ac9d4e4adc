import RelayProtocol
import RelayJSON
import ArgumentParser
import Foundation
import RelayCrypto

@main
struct RelayCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relayctl",
        abstract: "Scripting tool for Relay: keys, tokens, signing, sealing, publishing, subscribing, sites, benchmarks.",
        discussion: "Every command exits 0 on success and prints a one-line error on stderr otherwise. See Docs/relayctl.md.",
        version: RelayVersion.description,
        subcommands: [Keygen.self, Token.self, Sign.self, Seal.self, Open.self, DeriveKey.self, Publish.self, Subscribe.self, Stats.self, Health.self, SiteCommand.self, YjsCommand.self, Backup.self, Doctor.self, Bench.self]
    )
}

/// A one-line error for scripts.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum IO {
    static func readStdin() -> [UInt8] {
        Array(FileHandle.standardInput.readDataToEndOfFile())
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        if path == "-" { return readStdin() }
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
        return Array(data)
    }

    static func write(_ bytes: [UInt8]) {
        writeOut(bytes)
    }

    /// One output line, written at once: `subscribe`/`tail` output is read line by line through pipes.
    static func line(_ s: String) {
        writeOut(Array(s.utf8) + [0x0A])
    }

    /// Writes to standard output unbuffered. When the reader has gone (`relayctl subscribe … |
    /// head -n 2`), relayctl stops with status 0 instead of writing into a closed pipe until
    /// something else ends it (SIGPIPE is ignored in this process, as NIO needs).
    private static func writeOut(_ bytes: [UInt8]) {
        fflush(nil)  // anything `print` buffered goes first; `stdout` itself is not concurrency-safe to name in Swift 6
        bytes.withUnsafeBytes { buf in
            var offset = 0
            while offset < buf.count {
                let n = Foundation.write(1, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EPIPE { exit(0) }
                    return
                }
                offset += n
            }
        }
    }

    static func json(_ value: JSONValue) { line(value.jsonString) }

    static func decodeKey(base64 s: String) throws -> SecureBytes {
        let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let raw = Base64.decode(trimmed, .standard) ?? Base64.decode(trimmed, .url) else {
            throw CLIError("key is not valid base64")
        }
        guard raw.count == 32 else { throw CLIError("key must be 32 bytes, got \(raw.count)") }
        return SecureBytes(copying: raw)
    }

    static var nowMs: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
