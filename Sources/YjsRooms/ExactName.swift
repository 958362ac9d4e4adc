/// A room name that is equal to another only when their UTF-8 bytes are, for keying rooms.
///
/// Swift's `String` equality and hashing follow Unicode canonical equivalence
/// (`"caf\u{E9}" == "cafe\u{301}"`, KELVIN SIGN `"\u{212A}" == "K"`), while grants, SQLite and
/// every client compare names byte for byte. Keyed by `String`, two rooms whose names differ only
/// in normalization would share one document in memory, and a token granted one spelling would
/// reach the other's room (RelayCore's `ChannelName.exactKey` is the same rule for channels).
public struct ExactName: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }

    public static func == (a: ExactName, b: ExactName) -> Bool { a.name.utf8.elementsEqual(b.name.utf8) }

    public func hash(into hasher: inout Hasher) {
        var name = name
        name.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    public var description: String { name }
}
