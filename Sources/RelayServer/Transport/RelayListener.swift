import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The listening socket: accepts connections and sets each one up on its event loop with
/// `RelayChildChannel` (TLS first when configured). Nothing per connection leaves the event
/// loop until a connection turns out to be HTTP/1 (then `HTTPConnections` serves it in a task):
/// a WebSocket costs no task, no thread hop and no async-sequence element.
///
/// Graceful shutdown: stops accepting and asks every open connection to quiesce (an HTTP/1
/// connection closes after its current request; WebSockets were closed with 4500 by
/// `ShutdownDrainService` before this runs), then returns once the listening socket is closed.
final class RelayListener: Service, Sendable {
    let host: String
    let port: Int
    let backlog: Int32
    let logger: Logger
    let group: any EventLoopGroup
    let setUp: @Sendable (any Channel) -> EventLoopFuture<Void>

    init(host: String, port: Int, backlog: Int32 = 256, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
         tls: NIOSSLContext?, child: RelayChildChannel, logger: Logger) {
        self.host = host
        self.port = port
        self.backlog = backlog
        self.group = group
        self.logger = logger
        setUp = { channel in
            if let tls {
                do { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            return child.setup(channel: channel, logger: logger).map { _ in }
        }
    }

    func run() async throws {
        let quiescing = ServerQuiescingHelper(group: group)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: backlog)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer(setUp)
            .bind(host: host, port: port).get()
        logger.debug("accepting connections", metadata: ["address": "\(server.localAddress.map { "\($0)" } ?? "?")"])
        do {
            try await gracefulShutdown()
        } catch {
            // Cancelled (the service group is stopping without a graceful shutdown).
            try? await server.close()
            return
        }
        // Closes the listening socket and asks every connection to quiesce, without waiting for
        // them (as Hummingbird's server did): HTTP/1 requests in flight finish in `HTTPConnections`,
        // which shuts down after this service; a connection that has not sent its first request
        // yet, or a WebSocket whose client never answers the close, must not hold up the exit.
        quiescing.initiateShutdown(promise: nil)
        try? await server.closeFuture.get()
    }
}

/// Hummingbird's router as the responder of HTTP/1 connections, with what Hummingbird's
/// `Application` adds to every response (`Date`, `Server`) and its error policy (an error that
/// is not an `HTTPResponseError` is a bare 500).
struct ApplicationResponder: Sendable {
    let respond: HTTPChannelHandler.Responder

    init<R: HTTPResponder>(_ responder: R, serverName: String, logger: Logger)
    where R.Context == RelayRequestContext {
        let dates = HTTPDateCache()
        respond = { request, writer, channel in
            let context = RelayRequestContext(source: .init(channel: channel, logger: logger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                throw error
            } catch {
                logger.debug("unhandled error in a route: \(error)")
                response = Response(status: .internalServerError, body: .init())
            }
            response.headers[.date] = dates.now()
            response.headers[.server] = serverName
            try await writer.write(response: response.head, body: response.body)
        }
    }
}

/// The `Date` header's value (RFC 9110 IMF-fixdate), formatted once a second.
final class HTTPDateCache: Sendable {
    private let cached = Mutex<(second: Int, text: String)>((-1, ""))

    func now() -> String {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        let second = t.tv_sec
        return cached.withLock { c in
            if c.second != second { c = (second, Self.format(second)) }
            return c.text
        }
    }

    static func format(_ second: Int) -> String {
        var time = time_t(second)
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
