import RelayProtocol
/// What a verified token allows one connection. The server maps verified JWT
/// claims (contract §12.2) to this; RelayCore never parses tokens.
public struct ConnectionGrant: Sendable, Equatable {
    /// `site_id` claim: `sha256_hex("site:" + site_key)`.
    public var siteID: String
    /// `user_id` claim (`"0"` for visitors).
    public var userID: String
    /// `allowed_channel_prefixes`: gates subscribe. Bare prefixes get the site prefix.
    public var subscribePrefixes: [String]
    /// `allowed_publish_prefixes`: gates client publish, binary publish and presence.
    public var publishPrefixes: [String]
    /// `exp` claim, Unix seconds.
    public var expiresAt: Int64
    /// `v` claim (1 when absent).
    public var protocolVersion: Int
    /// Frames this connection receives: `.webSocket`, or `WireFormat.sse(protocolVersion:)` for SSE.
    public var wireFormat: WireFormat
    /// The endpoint the connection came through (metrics); `.embedded` by default.
    public var endpoint: Endpoint = .embedded

    public init(siteID: String, userID: String, subscribePrefixes: [String], publishPrefixes: [String],
                expiresAt: Int64, protocolVersion: Int = 2, wireFormat: WireFormat = .webSocket) {
        self.siteID = siteID
        self.userID = userID
        self.subscribePrefixes = subscribePrefixes
        self.publishPrefixes = publishPrefixes
        self.expiresAt = expiresAt
        self.protocolVersion = protocolVersion
        self.wireFormat = wireFormat
    }

    /// The contract's default grant: both prefix lists `["site:{site_id}:"]`.
    public static func siteWide(siteID: String, userID: String, expiresAt: Int64,
                                protocolVersion: Int = 2, wireFormat: WireFormat = .webSocket) -> ConnectionGrant {
        ConnectionGrant(siteID: siteID, userID: userID, subscribePrefixes: ["site:\(siteID):"],
                        publishPrefixes: ["site:\(siteID):"], expiresAt: expiresAt,
                        protocolVersion: protocolVersion, wireFormat: wireFormat)
    }

    /// Same grant with both prefix lists expanded to full `site:{id}:` form.
    func expanded() -> ConnectionGrant {
        var g = self
        g.subscribePrefixes = subscribePrefixes.map { ChannelName.expandPrefix($0, siteID: siteID) }
        g.publishPrefixes = publishPrefixes.map { ChannelName.expandPrefix($0, siteID: siteID) }
        return g
    }
}
