import Hummingbird
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
