import RelayProtocol
import Testing
@testable import RelayCore

@Suite struct ConnectTests {
    @Test func refusesExpiredUnknownRevokedAndOverLimit() throws {
        let fx = Fixture(limits: SiteLimits(maxConnections: 2))
        var expired = fx.grant()
        expired.expiresAt = fx.now
        #expect(fx.engine.connect(expired).refusal?.code == .invalidToken)

        var unknown = fx.grant()
        unknown.siteID = String(repeating: "0", count: 64)
        #expect(fx.engine.connect(unknown).refusal?.code == .siteNotFound)

        var revoked = fx.siteB
        revoked.revoked = true
        fx.registry.upsert(revoked)
        #expect(fx.engine.connect(fx.grant(fx.siteB)).refusal?.code == .siteNotFound)

        let a = try fx.connect()
        _ = try fx.connect()
        #expect(fx.engine.connect(fx.grant()).refusal?.code == .connectionLimit)
        #expect(fx.engine.stats(siteID: fx.siteA.siteID) == SiteStats(activeConnections: 2, maxConnections: 2))
        fx.engine.disconnect(a)
        fx.engine.disconnect(a) // idempotent
        #expect(fx.engine.stats(siteID: fx.siteA.siteID)?.activeConnections == 1)
        _ = try fx.connect()
        #expect(fx.engine.connectionCount == 2)
    }

    @Test func disconnectDeliversCloseOnceAndCountsByCode() throws {
        let fx = Fixture()
        let c = try fx.connect()
        fx.engine.disconnect(c, code: .policyViolation, reason: "bad frame")
        #expect(c.texts() == ["CLOSE 1008 bad frame"])
        #expect(c.drain().isEmpty)
        #expect(fx.metrics.value("relay_disconnects_total", [("endpoint", "embedded"), ("code", "1008"), ("name", CloseCode(1008).name)]) == 1)
        #expect(fx.engine.publish(from: c, channel: "events", event: "e", data: Array("1".utf8)) == .failure(.connectionClosed))
    }
}

extension Result where Failure == ConnectRefusal {
    var refusal: ConnectRefusal? { if case .failure(let r) = self { return r } else { return nil } }
}

@Suite struct FanOutTests {
    @Test func bareAndFullSubscribersShareOneChannelAndGetPublisherSpelling() throws {
        let fx = Fixture()
        let bare = try fx.connect()
        let full = try fx.connect()
        let site = fx.siteA.siteID
        #expect(fx.engine.subscribe(bare, channels: ["events"])["events"]?.isSubscribed == true)
        #expect(fx.engine.subscribe(full, channels: ["site:\(site):events"])["site:\(site):events"]?.isSubscribed == true)
        #expect(bare.texts().first?.hasPrefix("{\"type\":\"subscribed\",\"channels\":[\"events\"]") == true)
        _ = full.texts()

        let data = "{ \"v\":1,\n \"p\":\"QUJD\" }"
        let r = try fx.publish("events", data, event: "encrypted").get()
        #expect(r.deliveries == 2)
        #expect(r.position.offset == 1)
        let expected = "{\"type\":\"message\",\"channel\":\"events\",\"event\":\"encrypted\",\"data\":\(data),\"offset\":1,\"epoch\":\"\(r.position.epoch)\"}"
        #expect(bare.messages() == [expected])
        #expect(full.messages() == [expected])

        _ = try fx.publish("site:\(site):events").get()
        #expect(contains(bare.messages()[0], "\"channel\":\"site:\(site):events\""))
        #expect(full.messages().count == 1)
    }

    @Test func resubscribeAndUnsubscribeAreAcknowledged() throws {
        let fx = Fixture()
        let c = try fx.connect()
        _ = fx.engine.subscribe(c, channels: ["events"])
        let r = try fx.publish("events").get()
        _ = c.drain()
        #expect(fx.engine.subscribe(c, channels: ["events"])["events"] == .alreadySubscribed(position: r.position))
        #expect(fx.engine.subscriberCount(siteID: fx.siteA.siteID, channel: "events") == 1)
        #expect(fx.engine.unsubscribe(c, channels: ["site:\(fx.siteA.siteID):events", "never"]) == ["site:\(fx.siteA.siteID):events"])
        let frames = c.texts()
        #expect(frames.count == 2)
        #expect(frames[0].hasPrefix("{\"type\":\"subscribed\",\"channels\":[\"events\"],\"offset\":1,"))
        #expect(frames[1] == "{\"type\":\"unsubscribed\",\"channels\":[\"site:\(fx.siteA.siteID):events\",\"never\"]}")
        _ = fx.publish("events")
        #expect(c.messages().isEmpty)
        #expect(fx.engine.subscriberCount(siteID: fx.siteA.siteID, channel: "events") == 0)
    }

    @Test func encodesOncePerFormatAndSharesBytes() throws {
        let fx = Fixture()
        let conns = try (0..<3).map { _ in try fx.connect() }
        let sse = try (0..<2).map { _ in try fx.connect(format: .sseV2) }
        for c in conns + sse { _ = fx.engine.subscribe(c, channels: ["events"]) ; _ = c.drain() }
        _ = try fx.publish("events").get()
        func buffers(_ cs: [RelayConnection]) -> [UnsafeRawPointer?] {
            cs.map { c in
                guard case .frame(let f)? = c.drain().first else { return nil }
                return f.bytes.withUnsafeBytes { $0.baseAddress }
            }
        }
        let ws = buffers(conns), ss = buffers(sse)
        #expect(ws.allSatisfy { $0 != nil && $0 == ws[0] })
        #expect(ss.allSatisfy { $0 != nil && $0 == ss[0] })
        #expect(ws[0] != ss[0])
    }

    @Test func sseConnectionsGetTheirFramingAndNoBinary() throws {
        let fx = Fixture()
        let v2 = try fx.connect(format: .sse(protocolVersion: 2))
        let legacy = try fx.connect(format: .sse(protocolVersion: 1), v: 1)
        for c in [v2, legacy] { _ = fx.engine.subscribe(c, channels: ["events"]) }
        #expect(v2.texts().isEmpty) // no acks on SSE
        _ = legacy.texts()
        let r = try fx.publish("events", "{\"id\":5}", event: "post.updated").get()
        _ = try fx.engine.publishBinary(siteID: fx.siteA.siteID, channel: "events", payload: [1, 2]).get()
        let id = "id: 1:\(r.position.epoch):site:\(fx.siteA.siteID):events\n"
        #expect(v2.texts() == [id + "data: {\"event\":\"post.updated\",\"channel\":\"events\",\"data\":{\"id\":5}}\n\n"])
        #expect(legacy.texts() == [id + "event: post.updated\ndata: {\"id\":5}\n\n"])
    }

    @Test func binaryPublishEchoesToSender() throws {
        let fx = Fixture()
        let a = try fx.connect(), b = try fx.connect()
        for c in [a, b] { _ = fx.engine.subscribe(c, channels: ["yjs:postType/post:1"]); _ = c.drain() }
        let r = try fx.engine.publishBinary(from: a, channel: "yjs:postType/post:1", payload: [3, 9, 9]).get()
        #expect(r.deliveries == 2)
        for c in [a, b] {
            guard case .frame(let f)? = c.drain().first else { Issue.record("no frame"); continue }
            #expect(f.kind == .binary)
            #expect(f.bytes == [0, 19] + Array("yjs:postType/post:1".utf8) + [3, 9, 9])
        }
    }

    @Test func concurrentPublishersAreSeenInOneOrderByEverySubscriber() async throws {
        let fx = Fixture(limits: SiteLimits(clientPublishRate: RateLimit(perSecond: 1e9, burst: 1e9)))
        let subs = try (0..<5).map { _ in try fx.connect() }
        for c in subs { _ = await fx.engine.subscribe(c, channels: ["events"]); _ = c.drain() }
        let engine = fx.engine, siteID = fx.siteA.siteID
        await withTaskGroup(of: Void.self) { group in
            for p in 0..<4 {
                group.addTask {
                    for i in 0..<500 {
                        _ = await engine.publish(siteID: siteID, channel: "events", event: "e", data: Array("{\"p\":\(p),\"i\":\(i)}".utf8))
                    }
                }
            }
        }
        let seqs = subs.map { $0.messages() }
        #expect(seqs[0].count == 2000)
        #expect(seqs[0].map { offsetOf($0)! } == Array(1...2000))
        for s in seqs.dropFirst() { #expect(s == seqs[0]) }
        // Each publisher's own publications stay in its order.
        for p in 0..<4 {
            let mine = seqs[0].filter { contains($0, "{\"p\":\(p),") }
            #expect(mine.count == 500)
            #expect(mine.enumerated().allSatisfy { contains($0.element, "\"i\":\($0.offset)}") })
        }
    }

    @Test func asyncConsumerReceivesFramesAndCancellationEndsIt() async throws {
        let fx = Fixture()
        let c = try fx.connect()
        _ = await fx.engine.subscribe(c, channels: ["events"])
        guard case .frame(let ack)? = await c.next() else { Issue.record("no ack"); return }
        #expect(contains(ack.text, "subscribed"))
        let reader = Task { await c.next() }
        // Whether the reader is already suspended or not, it gets this frame.
        _ = try fx.publish("events").get()
        guard case .frame(let f)? = await reader.value else { Issue.record("no frame"); return }
        #expect(offsetOf(f.text) == 1)

        let waiting = Task { await c.next() }
        waiting.cancel()
        #expect(await waiting.value == nil)

        fx.engine.disconnect(c, code: .normal, reason: "bye")
        var items: [String] = []
        for await item in c.items {
            if case .close(let code, _) = item { items.append("close \(code.rawValue)") }
        }
        #expect(items == ["close 1000"])
    }
}

extension OutboxItem: Equatable {
    public static func == (a: OutboxItem, b: OutboxItem) -> Bool {
        switch (a, b) {
        case (.frame(let x), .frame(let y)): return x.kind == y.kind && x.bytes == y.bytes
        case (.close(let c1, let r1), .close(let c2, let r2)): return c1 == c2 && r1 == r2
        default: return false
        }
    }
}

@Suite struct BackpressureTests {
    @Test func stalledSubscriberIsClosedWhileAThousandOthersGetEverything() throws {
        let fx = Fixture(limits: SiteLimits(maxConnections: 2000)) { $0.outbox = OutboxLimits(maxBytes: 16 * 1024, maxFrames: 10_000) }
        let stalled = try fx.connect()
        let others = try (0..<1000).map { _ in try fx.connect() }
        for c in [stalled] + others { _ = fx.engine.subscribe(c, channels: ["events"]); _ = c.drain() }
        let payload = "{\"p\":\"" + String(repeating: "x", count: 250) + "\"}"
        // Every other subscriber gets exactly the publication's frame (the
        // same shared buffer) for each of the 100 publications, in order.
        var complete = 0
        for n in 1...100 {
            guard case .success(let r) = fx.publish("events", payload) else { Issue.record("publish \(n) failed"); continue }
            #expect(r.position.offset == UInt64(n))
            let expected = Wire.messageJSON(channel: "events", event: "e", data: Array(payload.utf8), position: r.position)
            var expectedBase: UnsafeRawPointer?
            for c in others {
                let items = c.drain()
                guard items.count == 1, case .frame(let f) = items[0] else { continue }
                let base = f.bytes.withUnsafeBytes { $0.baseAddress }
                if expectedBase == nil, f.bytes == expected { expectedBase = base }
                if base == expectedBase { complete += 1 }
            }
        }
        #expect(complete == 100 * others.count)
        let items = stalled.drain()
        #expect(items.count == 1)
        guard case .close(let code, _)? = items.first else { Issue.record("no close"); return }
        #expect(code == .slowConsumer)
        #expect(stalled.queuedBytes == 0)
        #expect(fx.engine.subscriberCount(siteID: fx.siteA.siteID, channel: "events") == 1000)
        #expect(fx.metrics.value("relay_outbox_overflow_closes_total") == 1)
        #expect(fx.metrics.value("relay_disconnects_total", [("endpoint", "embedded"), ("code", "4008"), ("name", CloseCode(4008).name)]) == 1)
        #expect(fx.engine.stats(siteID: fx.siteA.siteID)?.activeConnections == 1000)
    }

    @Test func frameCountLimitAlsoCloses() throws {
        let fx = Fixture { $0.outbox = OutboxLimits(maxBytes: 1 << 20, maxFrames: 3) }
        let c = try fx.connect()
        _ = fx.engine.subscribe(c, channels: ["events"])  // the ack is frame 1
        for _ in 0..<3 { _ = fx.publish("events") }
        #expect(c.closeItem()?.0 == .slowConsumer)
    }
}
