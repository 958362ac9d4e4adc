import RelayProtocol
import Synchronization
import Testing
@testable import RelayCore

@Suite struct OutboxTests {
    @Test func wakeFiresOncePerEmptyToNonEmptyTransitionAndOnClose() throws {
        let fx = Fixture()
        let wakes = Atomic<Int>(0)
        let c = try fx.engine.connect(fx.grant(), onWake: { wakes.add(1, ordering: .relaxed) }).get()
        _ = fx.engine.subscribe(c, channels: ["events"])       // ack: wake 1
        for _ in 0..<3 { _ = fx.publish("events") }            // no more wakes until drained
        #expect(wakes.load(ordering: .relaxed) == 1)
        #expect(c.queuedFrames == 4)
        #expect(c.drain(maxItems: 2).count == 2)               // partial drain: caller drains again
        _ = fx.publish("events")
        #expect(wakes.load(ordering: .relaxed) == 1)
        #expect(c.drain().count == 3)
        _ = fx.publish("events")                                // empty -> non-empty: wake 2
        #expect(wakes.load(ordering: .relaxed) == 2)
        _ = c.drain()
        fx.engine.disconnect(c, code: .shuttingDown, reason: "x")  // close: wake 3
        #expect(wakes.load(ordering: .relaxed) == 3)
        #expect(c.drain() == [.close(.shuttingDown, reason: "x")])
        #expect(c.drain().isEmpty)
    }

    @Test func queuedBytesTrackTheOutbox() throws {
        let fx = Fixture()
        let c = try fx.connect()
        _ = fx.engine.subscribe(c, channels: ["events"])
        let ackBytes = c.queuedBytes
        #expect(ackBytes > 0)
        let r = try fx.publish("events", "{\"a\":1}").get()
        let frame = Wire.messageJSON(channel: "events", event: "e", data: Array("{\"a\":1}".utf8), position: r.position)
        #expect(c.queuedBytes == ackBytes + frame.count)
        _ = c.drain(maxItems: 1)
        #expect(c.queuedBytes == frame.count)
    }

    @Test func anIdleConnectionTakesOneOversizedFrame() throws {
        let fx = Fixture { $0.outbox = OutboxLimits(maxBytes: 1000, maxFrames: 100) }
        let idle = try fx.connect(), busy = try fx.connect()
        for c in [idle, busy] { _ = fx.engine.subscribe(c, channels: ["yjs:doc"]) }
        _ = idle.drain()                                  // busy still holds its ack
        let big = [UInt8](repeating: 7, count: 5000)
        #expect(try fx.engine.publishBinary(siteID: fx.siteA.siteID, channel: "yjs:doc", payload: big).get().deliveries == 1)
        guard case .frame(let f)? = idle.drain().first else { Issue.record("no frame"); return }
        #expect(f.bytes.count == 2 + 7 + 5000)
        #expect(busy.closeItem()?.0 == .slowConsumer)
    }

    @Test func sendEnqueuesTransportFramesInOrderAndOverflowCloses() throws {
        let fx = Fixture { $0.outbox = OutboxLimits(maxBytes: 100, maxFrames: 100) }
        let c = try fx.connect()
        #expect(fx.engine.send(Wire.ping, to: c))
        #expect(fx.engine.send(Wire.error(code: .internalError, message: String(repeating: "m", count: 100)), to: c) == false)
        #expect(c.drain() == [.close(.slowConsumer, reason: "slow consumer: outbox overflow, reconnect and recover")])
        #expect(fx.engine.connectionCount == 0)
    }
}

@Suite struct MetricsTests {
    @Test func publicationsDeliveriesAndBytesAreCounted() throws {
        let fx = Fixture()
        let cs = try (0..<3).map { _ in try fx.connect() }
        for c in cs { _ = fx.engine.subscribe(c, channels: ["events"]) }
        let r = try fx.publish("events", "[1]").get()
        let size = Int64(Wire.messageJSON(channel: "events", event: "e", data: Array("[1]".utf8), position: r.position).count)
        _ = try fx.engine.publish(from: cs[0], channel: "events", event: "e", data: Array("[1]".utf8)).get()
        #expect(fx.metrics.value("relay_publications_in_total", [("source", "server")]) == 1)
        #expect(fx.metrics.value("relay_publications_in_total", [("source", "client")]) == 1)
        #expect(fx.metrics.value("relay_publications_out_total") == 6)
        #expect(fx.engine.publicationCount == 2 + fx.metrics.value("relay_publications_in_total", [("source", "system")]))
        #expect(fx.metrics.value("relay_bytes_out_total") == 6 * size)
        #expect(fx.metrics.value("relay_connections") == 3)
        #expect(fx.metrics.value("relay_subscriptions") == 3)
        fx.engine.disconnect(cs[0])
        #expect(fx.metrics.value("relay_connections") == 2)
        #expect(fx.metrics.value("relay_subscriptions") == 2)
    }
}
