import RelayJSON
import ArgumentParser
import RelayCrypto

struct Sign: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign a publish request; prints the headers to send.",
        discussion: "v1 is the wordsocket scheme (X-WP-Signal-*); v2 adds method, path, query, key id, nonce and body hash (X-Relay-*).")

    @Option(help: "The site key.")
    var key: String

    @Option(help: "The publish secret.")
    var secret: String

    @Option(name: .customLong("body-file"), help: "File with the exact body bytes (\"-\" = stdin).")
    var bodyFile: String

    @Option(help: "v1 or v2.")
    var scheme: String = "v1"

    @Option(help: "HTTP method (v2).")
    var method: String = "POST"

    @Option(help: "Request path (v2).")
    var path: String = "/publish"

    @Option(help: "Raw query string without '?' (v2).")
    var query: String = ""

    @Option(help: "Key id of the secret (v2).")
    var kid: String = "k1"

    @Option(help: "Timestamp in Unix milliseconds (default: now).")
    var timestamp: Int64?

    @Flag(help: "Print a JSON object instead of header lines.")
    var json = false

    func run() throws {
        let body = try IO.readFile(bodyFile)
        let ts = timestamp ?? IO.nowMs
        let headers: [(String, String)]
        switch scheme {
        case "v1": headers = PublishSignatureV1.headers(siteKey: key, secret: secret, body: body, timestampMs: ts)
        case "v2":
            headers = PublishSignatureV2.headers(method: method, path: path, query: query, siteKey: key, keyID: kid,
                                                 secret: secret, body: body, timestampMs: ts)
        default: throw CLIError("--scheme must be v1 or v2")
        }
        if json {
            IO.json(.object(headers.map { ($0.0, .string($0.1)) }))
        } else {
            for (name, value) in headers { IO.line("\(name): \(value)") }
        }
    }
}

struct Seal: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seal stdin into a payload envelope on stdout.",
        discussion: "Without --channel: envelope v1 (wordsocket, AES-256-GCM). With --channel: envelope v2, bound to that channel and key id. With --event, stdin is the event's data JSON and the plaintext becomes {\"event\":…,\"data\":…}.")

    @Option(name: .customLong("key-base64"), help: "The 32-byte key, base64.")
    var keyBase64: String

    @Option(help: "Full channel name to bind (selects envelope v2).")
    var channel: String?

    @Option(help: "Key id (v2).")
    var kid: String = "k1"

    @Option(help: "A256GCM or XC20P (v2).")
    var alg: String = "A256GCM"

    @Option(help: "Wrap stdin as the data of this event.")
    var event: String?

    func run() throws {
        let key = try IO.decodeKey(base64: keyBase64)
        var input = IO.readStdin()
        if let event {
            while let last = input.last, last == 0x0a || last == 0x0d || last == 0x20 { input.removeLast() }
            do { try JSONParser.validate(input) } catch { throw CLIError("stdin is not JSON: \(error)") }
            input = EnvelopeV1.eventPlaintext(event: event, dataJSON: input)
        }
        do {
            if let channel {
                guard let algorithm = EnvelopeAlgorithm(rawValue: alg) else { throw CLIError("--alg must be A256GCM or XC20P") }
                IO.write(try EnvelopeV2.seal(input, key: key, keyID: kid, channel: channel, algorithm: algorithm) + [0x0a])
            } else {
                IO.write(try EnvelopeV1.seal(input, key: key) + [0x0a])
            }
        } catch let e as EnvelopeError {
            throw CLIError("seal failed: \(e)")
        }
    }
}

struct Open: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open an envelope from stdin; writes the plaintext to stdout.",
        discussion: "Without --channel: envelope v1. With --channel: envelope v2 (the channel must be the one it was sealed for).")

    @Option(name: .customLong("key-base64"), help: "The 32-byte key, base64.")
    var keyBase64: String

    @Option(help: "Full channel name the envelope was delivered on (selects envelope v2).")
    var channel: String?

    @Option(help: "Only accept this key id (v2).")
    var kid: String?

    func run() throws {
        let key = try IO.decodeKey(base64: keyBase64)
        var input = IO.readStdin()
        while let last = input.last, last == 0x0a || last == 0x0d || last == 0x20 { input.removeLast() }
        do {
            if let channel {
                let wanted = kid
                IO.write(try EnvelopeV2.open(input, channel: channel, keys: { wanted == nil || $0 == wanted ? key : nil }))
            } else {
                IO.write(try EnvelopeV1.open(input, key: key))
            }
        } catch {
            throw CLIError("open failed: \(error)")
        }
    }
}
