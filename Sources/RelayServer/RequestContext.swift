import Hummingbird
import HTTPTypes
import RelayWebSocket
import NIOCore

/// The request context of every HTTP route: Hummingbird's core context plus the peer address
/// (for the per-IP connection cap).
public struct RelayRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: Source) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The peer's IP address as text ("unknown" when not an IP socket).
    public var remoteIP: String { remoteAddress?.ipAddress ?? "unknown" }
}

extension RelayService {
    /// The client address of an HTTP request: the peer's, or the forwarded one
    /// when the peer is a trusted proxy (`--trusted-proxy`).
    func clientIP(_ request: Request, _ context: RelayRequestContext) -> String {
        let peer = context.remoteIP
        let proxies = configuration.trustedProxies
        guard !proxies.isEmpty else { return peer }
        return proxies.clientAddress(peer: peer, forwarded: request.headers[values: .forwarded],
                                     xForwardedFor: request.headers[values: .xForwardedFor])
    }
}

extension HTTPField.Name {
    static let forwarded = HTTPField.Name("Forwarded")!
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
