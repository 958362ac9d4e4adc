import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import RelayServer
@testable import RelayWebSocket
import Synchronization
import Testing

@Suite("WebSocket connection lifetime (no sockets)")
struct WebSocketLifetimeTests {
    /// Records which endpoint calls arrived.
    final class Probe: WebSocketEndpoint {
        let calls = Mutex<[String]>([])
        func opened(_ session: WebSocketSession) async { calls.withLock { $0.append("opened") } }
        func received(_ message: WebSocketMessage, _ session: WebSocketSession) async { calls.withLock { $0.append("message") } }
        func closed(_ session: WebSocketSession) async { calls.withLock { $0.append("closed") } }
    }

    @Test("After the connection closes, the endpoint hears `closed` last and handler and session are freed")
    func freedAfterClose() async throws {
        let probe = Probe()
        let channel = EmbeddedChannel()
        weak var weakSession: WebSocketSession?
        weak var weakHandler: WebSocketConnectionHandler?
        try {
            let handler = WebSocketConnectionHandler(maxMessageBytes: 1024, closeTimeout: .seconds(1),
                                                     raw: RawFrameWriter(), encoder: ServerFrameEncoder())
            try channel.pipeline.syncOperations.addHandler(handler)
            let session = WebSocketSession(
                request: WebSocketRequest(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws"), remoteAddress: nil),
                eventLoop: channel.eventLoop, handler: handler, endpoint: probe, maxInboxBytes: 1 << 20)
            handler.bind(session)
            weakSession = session
            weakHandler = handler
        }()
        _ = try channel.finish(acceptAlreadyClosed: true)
        for _ in 0..<200 where probe.calls.withLock({ $0.last }) != "closed" {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(probe.calls.withLock { $0 } == ["opened", "closed"])
        for _ in 0..<200 where weakSession != nil || weakHandler != nil {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(weakSession == nil, "session leaked (reference cycle)")
        #expect(weakHandler == nil, "handler leaked (reference cycle)")
    }
}
