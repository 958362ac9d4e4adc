import RelayProtocol
import Testing
@testable import RelayCore

@Suite struct RecoveryTests {
    func subscribe(_ fx: Fixture, _ c: RelayConnection, since: StreamPosition?) -> SubscribeOutcome? {
        fx.engine.subscribe(c, channels: ["events"], positions: since.map { ["events": $0] } ?? [:])["events"]
    }

    @Test func recoversAfterAGapInOrderThenGoesLive() throws {
        let fx = Fixture()
        let a = try fx.connect()
        _ = subscribe(fx, a, since: nil)
        for i in 1...3 { _ = fx.publish("events", "{\"i\":\(i)}") }
        let seen = a.messages()
        let last = StreamPosition(offset: offsetOf(seen.last!)!, epoch: epochOf(seen.last!)!)
        #expect(last.offset == 3)
        fx.engine.disconnect(a)
        for i in 4...6 { _ = fx.publish("events", "{\"i\":\(i)}") }

        let b = try fx.connect()
        let outcome = subscribe(fx, b, since: last)
        #expect(outcome == .subscribed(position: StreamPosition(offset: 6, epoch: last.epoch), recovery: .recovered(replayed: 3)))
        _ = fx.publish("events", "{\"i\":7}")
        let frames = b.texts()
        #expect(frames.first == "{\"type\":\"subscribed\",\"channels\":[\"events\"],\"offset\":6,\"epoch\":\"\(last.epoch)\",\"recovered\":true}")
        #expect(frames.dropFirst().map { offsetOf($0) } == [4, 5, 6, 7])
        #expect(frames.dropFirst().allSatisfy { contains($0, "\"data\":{\"i\":\(offsetOf($0)!)}") })
        #expect(fx.metrics.value("relay_recovery_total", [("result", "recovered")]) == 1)
        #expect(fx.metrics.value("relay_recovered_publications_total") == 3)
    }

    @Test func nothingMissedIsARecoveryWithNoReplay() throws {
        let fx = Fixture()
        let r = try fx.publish("events").get()
        let c = try fx.connect()
        #expect(subscribe(fx, c, since: r.position) == .subscribed(position: r.position, recovery: .recovered(replayed: 0)))
        #expect(c.messages().isEmpty)
    }

    @Test func refusedAfterEpochChange() throws {
        let fx = Fixture { $0.history = HistoryConfiguration(defaultPolicy: HistoryPolicy(maxPublications: 10, maxBytes: 1 << 20, maxAge: 60)) }
        let first = try fx.publish("events").get()
        // History ages out, the idle channel is dropped: its epoch is gone.
        fx.clock.advance(by: 61)
        fx.engine.tick()
        #expect(fx.engine.channelCount == 0)
        let second = try fx.publish("events").get()
        #expect(second.position.epoch != first.position.epoch)
        #expect(second.position.offset == 1)
        let c = try fx.connect()
        let outcome = subscribe(fx, c, since: first.position)
        #expect(outcome == .subscribed(position: second.position, recovery: .failed(.epochChanged)))
        let frames = c.texts()
        #expect(frames.count == 1)
        #expect(contains(frames[0], "\"recovered\":false"))
        #expect(fx.metrics.value("relay_recovery_total", [("result", "failed")]) == 1)
    }

    @Test func refusedWhenTheWindowPassedOrTooManyMissedOrAhead() throws {
        let fx = Fixture {
            $0.history = HistoryConfiguration(defaultPolicy: HistoryPolicy(maxPublications: 3, maxBytes: 1 << 20, maxAge: 300))
            $0.maxRecoveredPublications = 2
        }
        var epoch = ""
        for _ in 1...10 { epoch = try fx.publish("events").get().position.epoch }
        let c = try fx.connect()
        // 3..10 missed, only 8..10 retained: never a partial replay.
        #expect(subscribe(fx, c, since: StreamPosition(offset: 2, epoch: epoch))
                == .subscribed(position: StreamPosition(offset: 10, epoch: epoch), recovery: .failed(.windowPassed)))
        #expect(c.messages().isEmpty)
        let d = try fx.connect()
        #expect(subscribe(fx, d, since: StreamPosition(offset: 7, epoch: epoch))
                == .subscribed(position: StreamPosition(offset: 10, epoch: epoch), recovery: .failed(.tooManyMissed)))
        let e = try fx.connect()
        #expect(subscribe(fx, e, since: StreamPosition(offset: 11, epoch: epoch))
                == .subscribed(position: StreamPosition(offset: 10, epoch: epoch), recovery: .failed(.positionAhead)))
        let f = try fx.connect()
        #expect(subscribe(fx, f, since: StreamPosition(offset: 8, epoch: epoch))
                == .subscribed(position: StreamPosition(offset: 10, epoch: epoch), recovery: .recovered(replayed: 2)))
        #expect(f.messages().map { offsetOf($0) } == [9, 10])
    }

    @Test func historyIsBoundedByBytesAndAge() throws {
        let fx = Fixture { $0.history = HistoryConfiguration(defaultPolicy: HistoryPolicy(maxPublications: 100, maxBytes: 1000, maxAge: 10),
                                                              namespaces: ["yjs": .disabled]) }
        for _ in 0..<20 { _ = fx.publish("events", "{\"p\":\"" + String(repeating: "x", count: 100) + "\"}") }
        guard case .publications(let pubs, let pos)? = fx.engine.history(siteID: fx.siteA.siteID, channel: "events") else {
            Issue.record("no history"); return
        }
        #expect(pos.offset == 20)
        #expect(pubs.count < 5 && pubs.count > 0)
        #expect(pubs.last?.position.offset == 20)
        fx.clock.advance(by: 11)
        guard case .publications(let none, _)? = fx.engine.history(siteID: fx.siteA.siteID, channel: "events") else { return }
        #expect(none.isEmpty)
        _ = fx.publish("yjs:doc")
        guard case .publications(let y, _)? = fx.engine.history(siteID: fx.siteA.siteID, channel: "yjs:doc") else { return }
        #expect(y.isEmpty)
    }

    @Test func sseEventIDsCarryTheRecoveryPosition() throws {
        let fx = Fixture()
        let c = try fx.connect(format: .sseV2)
        _ = fx.engine.subscribe(c, channels: ["events"])
        _ = fx.publish("events")
        let text = c.texts()[0]
        let id = String(text.dropFirst(4).prefix { $0 != "\n" })
        let parsed = try #require(SSEEventID.parse(id))
        #expect(parsed.channel == "site:\(fx.siteA.siteID):events")
        fx.engine.disconnect(c)
        _ = fx.publish("events", "{\"n\":2}")
        let d = try fx.connect(format: .sseV2)
        // The browser's channel list says `events`; the id carries the full name.
        let out = fx.engine.subscribe(d, channels: ["events"], positions: [parsed.channel: parsed.position])
        #expect(out["events"] == .subscribed(position: StreamPosition(offset: 2, epoch: parsed.position.epoch),
                                                   recovery: .recovered(replayed: 1)))
        #expect(d.texts().count == 1)
    }
}

@Suite struct IdempotencyTests {
    @Test func duplicatesWithinTheWindowAreAcceptedOnce() throws {
        let fx = Fixture(limits: SiteLimits(monthlyMessageQuota: 10))
        let c = try fx.connect()
        _ = fx.engine.subscribe(c, channels: ["events"]); _ = c.drain()
        let first = try fx.publish("events", key: "k1").get()
        let dup = try fx.publish("events", key: "k1").get()
        #expect(!first.duplicate && dup.duplicate)
        #expect(dup.position == first.position)
        #expect(dup.deliveries == 0)
        #expect(c.messages().count == 1)
        #expect(fx.registry.messagesThisMonth(siteID: fx.siteA.siteID, now: fx.clock.now()) == 1)
        _ = try fx.publish("other", key: "k1").get()  // keys are per channel
        fx.clock.advance(by: 301)
        let later = try fx.publish("events", key: "k1").get()
        #expect(!later.duplicate && later.position.offset == 2)
        #expect(fx.publish("events", key: "") == .failure(.invalidIdempotencyKey))
    }
}
