import NIOCore

/// A reply from Redis in RESP3 (the protocol after `HELLO 3`; RESP2 replies are its subset).
///
/// Server errors are values, not thrown: in a pipeline one command's error does not fail the
/// others. `RedisConnection.query` turns `.error` into a thrown `RedisError.server`.
public enum RESPValue: Sendable, Hashable {
    /// `+OK`
    case simpleString(String)
    /// `-ERR …` and the bulk error `!…`.
    case error(RedisServerError)
    /// `:42`
    case integer(Int64)
    /// `$5\r\nhello` — binary-safe.
    case bulkString(ByteBuffer)
    /// `_`, and RESP2's `$-1` and `*-1`.
    case null
    /// `,3.14` (also `inf`, `-inf`, `nan`).
    case double(Double)
    /// `#t` / `#f`
    case boolean(Bool)
    /// `(3492890328409238509324850943850943825024385` — kept as its decimal digits.
    case bigNumber(String)
    /// `=15\r\ntxt:Some string` — a three-letter format and the text.
    case verbatim(format: String, text: ByteBuffer)
    /// `*2 …`
    case array([RESPValue])
    /// `~2 …` (order as sent).
    case set([RESPValue])
    /// `%2 …` (order as sent; keys are any value).
    case map([RESPPair])
    /// `>3 …` — out-of-band data (pub/sub messages, invalidations), never a command's reply.
    case push([RESPValue])

    /// The text of a simple, bulk or verbatim string (lossy UTF-8), else nil.
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let b), .verbatim(_, let b): return String(buffer: b)
        default: return nil
        }
    }

    /// The bytes of a bulk or verbatim string, else nil.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let b), .verbatim(_, let b): return Array(b.readableBytesView)
        case .simpleString(let s): return Array(s.utf8)
        default: return nil
        }
    }

    /// The value of an integer reply, else nil.
    public var integer: Int64? {
        if case .integer(let i) = self { return i }
        return nil
    }

    /// The elements of an array, set or push, else nil.
    public var elements: [RESPValue]? {
        switch self {
        case .array(let a), .set(let a), .push(let a): return a
        default: return nil
        }
    }
}

/// One entry of a RESP3 map.
public struct RESPPair: Sendable, Hashable {
    public var key: RESPValue
    public var value: RESPValue
    public init(_ key: RESPValue, _ value: RESPValue) {
        self.key = key
        self.value = value
    }
}

/// An error reply: `code` is its first word (`ERR`, `WRONGTYPE`, `NOSCRIPT`, …).
public struct RedisServerError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var code: Substring { message.prefix(while: { $0 != " " }) }
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
