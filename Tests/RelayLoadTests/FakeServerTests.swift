import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Testing
@testable import RelayLoad

/// An nchan-like server with known faults: it delivers each publish `delay` after
/// answering it, drops chosen sequence numbers and repeats others. The load
/// generator must count exactly those losses and duplicates and measure at least
/// `delay` from the publish instant.
final class FakeRelay: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var subscribers: [String: [Channel]] = [:]
    let delay: TimeAmount
    let drop: @Sendable (String, UInt64) -> Bool
    let duplicate: @Sendable (String, UInt64) -> Bool
    var port = 0

    init(delay: TimeAmount, drop: @escaping @Sendable (String, UInt64) -> Bool, duplicate: @escaping @Sendable (String, UInt64) -> Bool) {
        self.delay = delay
        self.drop = drop
        self.duplicate = duplicate
    }

    static func channelID(_ uri: String) -> String {
        guard let r = uri.range(of: "id=") else { return "" }
        return String(uri[r.upperBound...])
    }

    func start() throws {
        let upgrader = NIOWebSocketServerUpgrader(
            shouldUpgrade: { ch, _ in ch.eventLoop.makeSucceededFuture(HTTPHeaders()) },
            upgradePipelineHandler: { ch, head in
                let id = FakeRelay.channelID(head.uri)
                self.subscribers[id, default: []].append(ch)
                return ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(IgnoreFrames()) }
            })
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    let publish = PublishHandler(relay: self)
                    try ch.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: { ctx in
                            ctx.pipeline.syncOperations.removeHandler(publish, promise: nil)
                        }))
                    try ch.pipeline.syncOperations.addHandler(publish)
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        port = server.localAddress!.port!
    }

    func deliver(id: String, body: [UInt8]) {
        guard let p = Payload.parse(body) else { return }
        if drop(id, p.seq) { return }
        let times = duplicate(id, p.seq) ? 2 : 1
        for ch in subscribers[id] ?? [] {
            for _ in 0..<times {
                var buf = ch.allocator.buffer(capacity: body.count)
                buf.writeBytes(body)
                ch.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: buf), promise: nil)
            }
        }
    }

    final class IgnoreFrames: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = WebSocketFrame
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }

    final class PublishHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let relay: FakeRelay
        var uri = ""
        var body: [UInt8] = []
        init(relay: FakeRelay) { self.relay = relay }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): uri = h.uri; body = []
            case .body(var b): body += b.readBytes(length: b.readableBytes) ?? []
            case .end:
                let id = FakeRelay.channelID(uri), bytes = body
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .created, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                let relay = self.relay
                context.eventLoop.scheduleTask(in: relay.delay) { relay.deliver(id: id, body: bytes) }
            }
        }
    }

    func stop() { try? group.syncShutdownGracefully() }
}

@Suite struct FakeServerTests {
    @Test func countsExactlyTheInjectedLossesAndDuplicatesAndMeasuresFromThePublishInstant() async throws {
        let relay = FakeRelay(delay: .milliseconds(30),
                              drop: { id, seq in id.hasSuffix("-0") && seq % 10 == 0 },
                              duplicate: { id, seq in id.hasSuffix("-1") && seq == 5 })
        try relay.start()
        defer { relay.stop() }
        let target = LoadTarget(kind: .nchan, port: relay.port)
        var config = FanoutConfig()
        config.subscribers = 6       // 3 on channel 0, 3 on channel 1
        config.channels = 2
        config.payloadBytes = 300
        config.rates = [100]         // 50 per channel per second
        config.stepSeconds = 1
        config.drainSeconds = 2
        config.p99LimitMs = 1000
        config.publishConnections = 2
        config.stopAtFirstFailure = false
        var options = LoadOptions()
        options.threads = 2
        options.sources = 2
        let r = try await LoadScenarios.fanout(target: target, config: config, options: options)
        #expect(r.ramp.connected == 6)
        let step = try #require(r.steps.first)
        let perChannel = step.publish.acceptedPerChannel
        #expect(step.publish.failed == 0)
        #expect(perChannel.count == 2 && perChannel[0] >= 40)
        let dropped = perChannel[0] / 10          // seq 10, 20, … on channel 0
        #expect(r.totalLost == 3 * dropped)
        #expect(step.lost == 3 * dropped)
        #expect(r.totalDuplicates == 3)           // seq 5 on channel 1, once per subscriber
        #expect(step.delivered == 3 * (perChannel[0] - dropped) + 3 * perChannel[1])
        #expect(step.latency.p50 >= 30)            // measured from the publish instant, not from the answer
        #expect(step.latency.max < 30 + 200)
        #expect(!step.sustained)                   // losses make the step unsustained
    }
}
