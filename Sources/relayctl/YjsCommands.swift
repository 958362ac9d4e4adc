import ArgumentParser
import Foundation
import RelayCrypto
import YjsSync

struct YjsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yjs",
        abstract: "Inspect Yjs binary data.",
        subcommands: [Inspect.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode a Yjs update (v1), a state vector or a y-websocket message to JSON.",
            discussion: "Input is raw bytes from FILE or stdin ('-'); --base64 / --hex decode text input first.")

        @Option(help: "update, state-vector, or message.")
        var kind: String = "update"

        @Flag(help: "Input is base64 text.") var base64 = false
        @Flag(help: "Input is hex text.") var hex = false

        @Argument(help: "File, or - for stdin.") var file: String = "-"

        func run() throws {
            var bytes = try IO.readFile(file)
            if base64 || hex {
                let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard let decoded = base64 ? (Base64.decode(text, .standard) ?? Base64.decode(text, .url)) : Hex.decode(text) else {
                    throw CLIError("input is not valid \(base64 ? "base64" : "hex")")
                }
                bytes = decoded
            }
            do {
                switch kind {
                case "update": IO.line(try YUpdate.inspect(bytes))
                case "state-vector": IO.line(YUpdate.inspect(stateVector: try StateVector(decoding: bytes)))
                case "message": IO.line(try YUpdate.inspect(message: bytes))
                default: throw CLIError("--kind must be update, state-vector or message")
                }
            } catch let e as CLIError {
                throw e
            } catch {
                throw CLIError("cannot decode: \(error)")
            }
        }
    }
}
