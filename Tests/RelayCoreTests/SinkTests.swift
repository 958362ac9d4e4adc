import RelayProtocol
import Synchronization
import Testing
@testable import RelayCore

final class RecordingSink: RelayTransportSink {
    let frames = Mutex<[String]>([])
    let backlog = Atomic<Int>(0)
    let concurrent = Atomic<Int>(0)
    let overlapped = Atomic<Bool>(false)

    func deliver(_ frame: OutboundFrame) {
        if concurrent.add(1, ordering: .relaxed).newValue > 1 { overlapped.store(true, ordering: .relaxed) }
        frames.withLock { $0.append(frame.text) }
        concurrent.subtract(1, ordering: .relaxed)
    }
    func close(code: CloseCode, reason: String) { frames.withLock { $0.append("CLOSE \(code.rawValue)") } }
    var queuedBytes: Int { backlog.load(ordering: .relaxed) }
    func take() -> [String] { frames.withLock { f in defer { f = [] }; return f } }
}

@Suite struct SinkTests {
    @Test func framesArePushedInOrderAndTheSinkBacklogClosesWith4008() throws {
        let fx = Fixture()
        let sink = RecordingSink()
        let c = try fx.engine.connect(fx.grant(), sink: sink).get()
        _ = fx.engine.subscribe(c, channels: ["events"])
        _ = fx.publish("events")
        let got = sink.take()
        #expect(got.count == 2 && contains(got[0], "subscribed") && offsetOf(got[1]) == 1)
        #expect(c.queuedFrames == 0)

        sink.backlog.store(OutboxLimits().maxBytes, ordering: .relaxed)   // the socket stopped draining, a full outbox behind
        _ = fx.publish("events")
        #expect(sink.take() == ["CLOSE 4008"])
        #expect(fx.engine.connectionCount == 0)
        #expect(fx.metrics.value("relay_disconnects_total", [("endpoint", "embedded"), ("code", "4008"), ("name", CloseCode(4008).name)]) == 1)
        #expect(fx.metrics.value("relay_outbox_overflow_closes_total") == 1)
    }

    @Test func concurrentPublishersNeverInterleaveDeliveries() async throws {
        let fx = Fixture()
        let sink = RecordingSink()
        let c = try fx.engine.connect(fx.grant(), sink: sink).get()
        _ = await fx.engine.subscribe(c, channels: ["events"])
        _ = sink.take()
        let engine = fx.engine, siteID = fx.siteA.siteID
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<250 { _ = await engine.publish(siteID: siteID, channel: "events", event: "e", data: Array("{}".utf8)) }
                }
            }
        }
        #expect(sink.take().map { offsetOf($0)! } == Array(1...1000))
        let overlapped = sink.overlapped.load(ordering: .relaxed)
        #expect(!overlapped)
    }
}
