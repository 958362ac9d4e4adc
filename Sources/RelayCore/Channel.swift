/// A channel name resolved against a site.
///
/// Bare names expand to `site:{site_id}:{name}` (wordsocket contract §7.2);
/// a full name is accepted only for the connection's own site.
public struct ChannelName: Sendable, Hashable {
    /// The tenant-scoped name, `site:{site_id}:{bare}`: the channel's identity.
    public let full: String
    /// The part after `site:{site_id}:`.
    public let bare: String
    /// The namespace: `bare` up to its first `:` (or all of it).
    public var namespace: Substring {
        bare.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(bare)
    }

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

    /// Expands a token prefix: bare prefixes get the site prefix; `site:` prefixes are kept.
    public static func expandPrefix(_ prefix: String, siteID: String) -> String {
        prefix.hasPrefix("site:") ? prefix : "site:\(siteID):\(prefix)"
    }

    /// Whether `full` is reachable through one of the (expanded) prefixes.
    public func isAllowed(by expandedPrefixes: [String]) -> Bool {
        for p in expandedPrefixes where full.hasPrefix(p) { return true }
        return false
    }

    /// The relay-owned namespace; clients and HTTP publishers cannot publish there.
    public static let reservedNamespace = "wps"

    public var isReserved: Bool { namespace == Substring(Self.reservedNamespace) }

    /// `site:{id}:wps:connections`.
    public static func connectionsChannel(siteID: String) -> ChannelName {
        ChannelName(full: "site:\(siteID):wps:connections", bare: "wps:connections")
    }
}

