import RelayJSON
import HTTPTypes
import NIOCore
import NIOHTTPTypes
import RelayCore
import RelayCrypto

/// Answers `POST /publish` and `POST /publish/batch` on the connection's event
/// loop, without the hop to a task that Hummingbird's router needs: signature
/// check, fan-out into the outboxes, and the reply, in one go.
///
/// Only when it is safe to answer out of Hummingbird's sight: single-node mode
/// (no broker to await), no other request of the connection still in flight
/// (HTTP/1.1 answers in order), and no `Origin` header (browsers get the CORS
/// middleware). Everything else passes through unchanged.
final class PublishFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Verifies and publishes synchronously; returns the status and the JSON reply.
    typealias Publish = @Sendable (SignedRequest, _ batch: Bool) -> (status: HTTPResponse.Status, json: JSONValue)

    private let publish: Publish
    private let maxBodyBytes: Int

    private enum Current {
        case none
        case forwarding
        case collecting(HTTPRequest, body: ByteBuffer?, batch: Bool, tooLarge: Bool)
    }
    private var current = Current.none
    /// Requests handed to Hummingbird whose response has not ended yet.
    private var inFlight = 0

    init(maxBodyBytes: Int, publish: @escaping Publish) {
        self.maxBodyBytes = maxBodyBytes
        self.publish = publish
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if inFlight == 0, head.method == .post, head.headerFields[.origin] == nil, let batch = Self.publishRoute(head.path) {
                current = .collecting(head, body: nil, batch: batch, tooLarge: false)
                return
            }
            current = .forwarding
            inFlight += 1
            context.fireChannelRead(data)
        case .body(var chunk):
            guard case .collecting(let head, var body, let batch, var tooLarge) = current else {
                context.fireChannelRead(data)
                return
            }
            if !tooLarge {
                if (body?.readableBytes ?? 0) + chunk.readableBytes > maxBodyBytes {
                    tooLarge = true
                    body = nil
                } else if body == nil {
                    body = chunk
                } else {
                    body!.writeBuffer(&chunk)
                }
            }
            current = .collecting(head, body: body, batch: batch, tooLarge: tooLarge)
        case .end:
            guard case .collecting(let head, let body, let batch, let tooLarge) = current else {
                context.fireChannelRead(data)
                return
            }
            current = .none
            respond(context: context, head: head, body: body, batch: batch, tooLarge: tooLarge)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), inFlight > 0 { inFlight -= 1 }
        context.write(data, promise: promise)
    }

    /// `/publish` → false, `/publish/batch` → true, anything else → nil (a query string is allowed).
    static func publishRoute(_ path: String?) -> Bool? {
        guard let path else { return nil }
        let bare = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        switch bare {
        case "/publish": return false
        case "/publish/batch": return true
        default: return nil
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequest, body: ByteBuffer?, batch: Bool, tooLarge: Bool) {
        let status: HTTPResponse.Status
        let json: JSONValue
        if tooLarge {
            status = .contentTooLarge
            json = .object([("error", .string("payload_too_large")), ("message", .string("body larger than \(maxBodyBytes) bytes"))])
        } else {
            let full = head.path ?? "/"
            let parts = full.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            var headers: [(String, String)] = []
            headers.reserveCapacity(head.headerFields.count)
            for field in head.headerFields { headers.append((field.name.canonicalName, field.value)) }
            let signed = SignedRequest(method: head.method.rawValue, path: String(parts[0]),
                                       query: parts.count > 1 ? String(parts[1]) : "",
                                       headers: headers, body: body.map { Array($0.readableBytesView) } ?? [])
            (status, json) = publish(signed, batch)
        }
        let bytes = json.serialized()
        let close = head.headerFields[.connection]?.lowercased().contains("close") == true
        var fields: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store",
                                  .contentLength: String(bytes.count)]
        if close { fields[.connection] = "close" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: bytes))), promise: nil)
        if close {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
