import NIOCore

/// One argument of a command: sent as a RESP bulk string.
public enum RESPArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String)
    case bytes([UInt8])
    case buffer(ByteBuffer)
    case integer(Int64)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

/// A command and its arguments, e.g. `RedisCommand("SET", "key", .bytes(value))`.
public struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    public var arguments: [RESPArgument]

    public init(_ name: String, _ arguments: RESPArgument...) {
        self.arguments = [.string(name)] + arguments
    }

    public init(arguments: [RESPArgument]) {
        precondition(!arguments.isEmpty, "a command has a name")
        self.arguments = arguments
    }

    /// The command's name and argument count only: arguments may be secrets (AUTH) or payloads.
    public var description: String {
        if case .string(let name) = arguments[0] { return "\(name) (\(arguments.count - 1) arguments)" }
        return "command (\(arguments.count - 1) arguments)"
    }

    /// Appends the command as a RESP array of bulk strings.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        Self.writeDecimal(Int64(arguments.count), into: &buffer)
        for argument in arguments {
            switch argument {
            case .string(let s):
                let count = s.utf8.count
                Self.bulkHeader(count, into: &buffer)
                buffer.writeString(s)
            case .bytes(let b):
                Self.bulkHeader(b.count, into: &buffer)
                buffer.writeBytes(b)
            case .buffer(let b):
                Self.bulkHeader(b.readableBytes, into: &buffer)
                buffer.writeImmutableBuffer(b)
            case .integer(let i):
                var digits = ByteBuffer()
                Self.writeDecimal(i, into: &digits, crlf: false)
                Self.bulkHeader(digits.readableBytes, into: &buffer)
                buffer.writeImmutableBuffer(digits)
            }
            buffer.writeInteger(UInt16(0x0D0A))
        }
    }

    private static func bulkHeader(_ count: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "$"))
        writeDecimal(Int64(count), into: &buffer)
    }

    private static func writeDecimal(_ value: Int64, into buffer: inout ByteBuffer, crlf: Bool = true) {
        buffer.writeString(String(value))
        if crlf { buffer.writeInteger(UInt16(0x0D0A)) }
    }
}
