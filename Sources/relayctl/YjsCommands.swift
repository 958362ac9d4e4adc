import RelayJSON
import ArgumentParser
import Foundation
import RelayCrypto
import YjsCodec

struct YjsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yjs",
        abstract: "Inspect and combine Yjs binary data (update v1, state vectors, y-websocket messages).",
        subcommands: [Inspect.self, Merge.self, Diff.self, StateVectorCommand.self, Convert.self])

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
                case "message": IO.line(try YUpdate.inspect(message: bytes, awarenessStateIsValid: JSON.isValid))
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

/// Reads a binary input in the requested text encoding.
struct BinaryInput: ParsableArguments {
    @Flag(help: "Inputs and output are base64 text.") var base64 = false

    func read(_ path: String) throws -> [UInt8] {
        let raw = try IO.readFile(path)
        guard base64 else { return raw }
        let text = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let b = Base64.decode(text, .standard) ?? Base64.decode(text, .url) else { throw CLIError("\(path) is not base64") }
        return b
    }

    func write(_ bytes: [UInt8]) {
        if base64 { IO.line(Base64.encode(bytes)) } else { IO.write(bytes) }
    }
}

extension YjsCommand {
    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert an update between format v1 and v2 (Gutenberg's _crdt_document is v2).",
            discussion: "--to v2 writes what Yjs's encodeStateAsUpdateV2 writes for the same structs; --to v1 is Yjs's convertUpdateFormatV2ToV1.")
        @Option(help: "Output format: v1 or v2.") var to: String
        @OptionGroup var io: BinaryInput
        @Argument(help: "Update file, or - for stdin.") var file: String = "-"

        func run() throws {
            let input = try io.read(file)
            do {
                switch to {
                case "v2": io.write(try UpdateV2.fromV1(input))
                case "v1": io.write(try UpdateV2.toV1(input))
                default: throw CLIError("--to must be v1 or v2")
                }
            } catch let e as CLIError { throw e } catch { throw CLIError("cannot convert: \(error)") }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Merge updates into one (Yjs mergeUpdates).")
        @OptionGroup var io: BinaryInput
        @Argument(help: "Update files.") var files: [String]

        func run() throws {
            do { io.write(try YUpdate.merge(try files.map { try io.read($0) })) } catch let e as CLIError { throw e } catch { throw CLIError("cannot merge: \(error)") }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The part of an update missing from a state vector (Yjs diffUpdate).")
        @OptionGroup var io: BinaryInput
        @Argument(help: "Update file.") var update: String
        @Argument(help: "Encoded state vector file.") var stateVector: String

        func run() throws {
            do { io.write(try YUpdate.diff(try io.read(update), againstEncoded: try io.read(stateVector))) }
            catch let e as CLIError { throw e } catch { throw CLIError("cannot diff: \(error)") }
        }
    }

    struct StateVectorCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "state-vector", abstract: "The encoded state vector of an update (Yjs encodeStateVectorFromUpdate).")
        @OptionGroup var io: BinaryInput
        @Argument(help: "Update file.") var update: String

        func run() throws {
            do { io.write(try YUpdate.encodeStateVector(fromUpdate: try io.read(update))) }
            catch let e as CLIError { throw e } catch { throw CLIError("cannot read update: \(error)") }
        }
    }
}
