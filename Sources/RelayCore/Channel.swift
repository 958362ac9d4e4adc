/// A channel name resolved against a site.
///
/// Bare names expand to `site:{site_id}:{name}` (wordsocket contract §7.2);
/// a full name is accepted only for the connection's own site.
public struct ChannelName: Sendable, Hashable {
    /// The tenant-scoped name, `site:{site_id}:{bare}`: the channel's identity.
    public let full: String
    /// The part after `site:{site_id}:`.
    public let bare: String
    /// The namespace: `bare` up to its first `:` (or all of it). Found by scalar, not by
    /// `Character`: `":"` followed by a combining mark is one Character, and a split by Character
    /// put `wps:\u{301}x` outside the reserved `wps` namespace that its bytes are in.
    public var namespace: Substring {
        let scalars = bare.unicodeScalars
        guard let colon = scalars.firstIndex(of: ":") else { return Substring(bare) }
        return Substring(scalars[..<colon])
    }

    /// A side channel's name, `side:{key}` (`RelayEngine.joinSideChannel`): node-to-node
    /// traffic no client can subscribe to (client names resolve to `site:…`).
    public static func side(_ key: String) -> ChannelName { ChannelName(full: "side:" + key, bare: key) }

    /// Longest accepted bare name in UTF-8 bytes.
    public static let maxBareLength = 255

    /// Why a channel name was refused.
    public enum Problem: Error, Sendable, Equatable {
        /// Empty, too long, or containing control characters.
        case invalid
        /// A `site:` name of another site (or malformed `site:` form).
        case foreignSite
    }

    /// Resolves `spelled` (as a client or publisher wrote it) for `siteID`.
    public static func resolve(_ spelled: String, siteID: String) -> Result<ChannelName, Problem> {
        let bare: Substring
        if spelled.hasPrefix("site:") {
            let rest = spelled.utf8.dropFirst(5)
            let idBytes = siteID.utf8
            guard rest.count > idBytes.count + 1,
                  rest.starts(with: idBytes),
                  rest[rest.index(rest.startIndex, offsetBy: idBytes.count)] == UInt8(ascii: ":")
            else { return .failure(.foreignSite) }
            bare = Substring(rest.dropFirst(idBytes.count + 1))
        } else {
            bare = Substring(spelled)
        }
        guard !bare.isEmpty, bare.utf8.count <= maxBareLength else { return .failure(.invalid) }
        for b in bare.utf8 where b < 0x20 || b == 0x7F { return .failure(.invalid) }
        let bareString = String(bare)
        return .success(ChannelName(full: "site:\(siteID):\(bareString)", bare: bareString))
    }

    /// Byte equality (not `String`'s canonical equivalence): see `exactKey(_:)`.
    public static func == (a: ChannelName, b: ChannelName) -> Bool { a.full.utf8.elementsEqual(b.full.utf8) }
    public func hash(into hasher: inout Hasher) { hasher.combine(key) }

    /// The key this channel is stored under (`exactKey(full)`): channels are identified by their bytes.
    public var key: String { Self.exactKey(full) }

    /// The string to key maps of channel (and room) names with, so that identity is byte equality,
    /// as in the grant rule. Swift's `String` equality and hashing follow Unicode canonical
    /// equivalence (`"caf\u{E9}" == "cafe\u{301}"`, KELVIN SIGN `"\u{212A}" == "K"`): keyed by the
    /// name itself, a token granted one spelling would reach the channel of the other. ASCII names,
    /// where canonical equivalence is byte equality, are their own key (no cost on the usual path);
    /// any other name is keyed by U+0001 (refused in names, so never a prefix of one) and the
    /// lowercase hex of its UTF-8 bytes.
    public static func exactKey(_ name: String) -> String {
        var ascii = true
        for b in name.utf8 where b >= 0x80 { ascii = false; break }
        if ascii { return name }
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = [0x01]
        bytes.reserveCapacity(1 + 2 * name.utf8.count)
        for b in name.utf8 { bytes.append(digits[Int(b >> 4)]); bytes.append(digits[Int(b & 0x0F)]) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Expands a token prefix: bare prefixes get the site prefix; `site:` prefixes are kept.
    public static func expandPrefix(_ prefix: String, siteID: String) -> String {
        prefix.hasPrefix("site:") ? prefix : "site:\(siteID):\(prefix)"
    }

    /// Whether `full` is reachable through one of the (expanded) grants.
    public func isAllowed(by expandedPrefixes: [String]) -> Bool {
        for p in expandedPrefixes where Self.grant(p, reaches: full) { return true }
        return false
    }

    /// The grant rule (token prefixes). A grant ending in `:` or `/` is a
    /// namespace and reaches every channel under it (`site:{id}:` is the whole
    /// site, `site:{id}:shop:` covers `shop:orders`). Any other grant names a
    /// channel: it reaches that channel and the channels under it
    /// (`site:{id}:yjs:postType/post:12` reaches `…post:12` and `…post:12:x`,
    /// never `…post:123`; `site:{id}:events` never reaches `events2`).
    /// Compared byte for byte (UTF-8).
    public static func grant(_ grant: String, reaches channel: String) -> Bool {
        let g = grant.utf8, c = channel.utf8
        guard c.starts(with: g) else { return false }
        guard c.count > g.count, let last = g.last else { return true }
        if last == UInt8(ascii: ":") || last == UInt8(ascii: "/") { return true }
        let next = c[c.index(c.startIndex, offsetBy: g.count)]
        return next == UInt8(ascii: ":") || next == UInt8(ascii: "/")
    }

    /// The relay-owned namespace; clients and HTTP publishers cannot publish there.
    public static let reservedNamespace = "wps"

    public var isReserved: Bool { namespace.utf8.elementsEqual(Self.reservedNamespace.utf8) }

    /// Whether this is a site's `wps:connections` channel (relay-owned, shared by every node).
    public var isConnectionsChannel: Bool { bare == "wps:connections" }

    /// `site:{id}:wps:connections`.
    public static func connectionsChannel(siteID: String) -> ChannelName {
        ChannelName(full: "site:\(siteID):wps:connections", bare: "wps:connections")
    }
}

