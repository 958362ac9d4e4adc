import RelayProtocol
import RelayJSON
import Testing
@testable import RelayCore

@Suite struct RobustnessTests {
    /// Mutated and random inputs never crash the parsers, and whatever the
    /// validator accepts round-trips through a publish byte for byte.
    @Test func parsersSurviveMutatedInput() throws {
        var rng = SplitMix(seed: 42)
        let seeds = [
            "{\"type\":\"message\",\"channel\":\"events\",\"event\":\"e\",\"data\":{\"v\":1,\"p\":\"QUJD\"}}",
            "{\"type\":\"subscribe\",\"channels\":[\"a\",\"b\"],\"positions\":{\"a\":{\"offset\":3,\"epoch\":\"x\"}}}",
            "{\"type\":\"presence\",\"channel\":\"c\",\"state\":{\"n\":[1,2.5e3,true,null,\"\\u00e9\"]}}",
        ].map { Array($0.utf8) }
        let fx = Fixture()
        let c = try fx.connect()
        _ = fx.engine.subscribe(c, channels: ["events"]); _ = c.drain()
        var accepted = 0
        for i in 0..<3000 {
            var bytes = seeds[i % seeds.count]
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let pos = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[pos] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.remove(at: pos)
                default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: pos)
                }
                if bytes.isEmpty { bytes = [0x7B] }
            }
            _ = Wire.parseBinaryFrame(bytes)
            _ = PublishBody.parse(bytes)
            if case .publish(let channel, let event, let data, _)? = ClientMessage.parse(bytes) {
                #expect(JSON.isValid(data))
                if case .success = fx.engine.publish(siteID: fx.siteA.siteID, channel: channel, event: event, data: data),
                   channel == "events" {
                    accepted += 1
                    let frame = c.messages().last!
                    #expect(frame.utf8.count > data.count)
                    #expect(contains(frame, ",\"data\":" + String(decoding: data, as: UTF8.self) + ",\"offset\":"))
                }
            }
        }
        #expect(accepted > 10)
    }
}

@Suite struct ChurnTests {
    /// Random connects, subscribes, presence, publishes and disconnects with
    /// invariants checked at the end: no leaked connections, subscriptions,
    /// presence members or channels.
    @Test func randomChurnLeavesNothingBehind() throws {
        let fx = Fixture(limits: SiteLimits(maxConnections: 1000, maxChannelsPerConnection: 8,
                                            clientPublishRate: RateLimit(perSecond: 1e6, burst: 1e6))) {
            $0.history = HistoryConfiguration(defaultPolicy: HistoryPolicy(maxPublications: 20, maxBytes: 1 << 16, maxAge: 30))
            $0.outbox = OutboxLimits(maxBytes: 4096, maxFrames: 8)
        }
        var rng = SplitMix(seed: 7)
        var live: [RelayConnection] = []
        let channels = (0..<12).map { "ch\($0)" }
        for _ in 0..<4000 {
            switch rng.next() % 7 {
            case 0:
                if let c = try? fx.connect() { live.append(c) }
            case 1 where !live.isEmpty:
                let c = live.remove(at: Int(rng.next() % UInt64(live.count)))
                fx.engine.disconnect(c)
            case 2 where !live.isEmpty:
                let c = live[Int(rng.next() % UInt64(live.count))]
                _ = fx.engine.subscribe(c, channels: [channels[Int(rng.next() % 12)], channels[Int(rng.next() % 12)]])
            case 3 where !live.isEmpty:
                let c = live[Int(rng.next() % UInt64(live.count))]
                _ = fx.engine.setPresence(c, channel: channels[Int(rng.next() % 12)], state: rng.next() % 3 == 0 ? nil : Array("{}".utf8))
            case 4 where !live.isEmpty:
                let c = live[Int(rng.next() % UInt64(live.count))]
                _ = fx.engine.unsubscribe(c, channels: [channels[Int(rng.next() % 12)]])
            case 5:
                _ = fx.publish(channels[Int(rng.next() % 12)])
            default:
                // Drain some outboxes; the rest may overflow (4008) or hit 4009.
                for c in live where rng.next() % 2 == 0 { _ = c.drain() }
                fx.clock.advance(by: 0.5)
            }
            live.removeAll { $0.isClosed }
        }
        for c in live { fx.engine.disconnect(c) }
        #expect(fx.engine.connectionCount == 0)
        #expect(fx.metrics.value("relay_subscriptions") == 0)
        #expect(fx.metrics.value("relay_connections") == 0)
        for ch in channels {
            #expect(fx.engine.subscriberCount(siteID: fx.siteA.siteID, channel: ch) == 0)
            #expect(fx.engine.presenceCount(siteID: fx.siteA.siteID, channel: ch) == 0)
        }
        #expect(fx.engine.stats(siteID: fx.siteA.siteID)?.activeConnections == 0)
        // The first tick flushes the coalesced wps.connections event; the
        // second, after its history aged out, removes every idle channel.
        fx.clock.advance(by: 400)
        fx.engine.tick()
        fx.clock.advance(by: 400)
        fx.engine.tick()
        #expect(fx.engine.channelCount == 0)
        #expect(fx.metrics.value("relay_channels") == 0)
        #expect(fx.metrics.value("relay_outbox_overflow_closes_total") > 0)
    }
}
