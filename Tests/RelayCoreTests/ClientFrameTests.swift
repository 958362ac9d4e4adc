import Testing
@testable import RelayCore

@Suite struct ClientFrameTests {
    func text(_ s: String) -> ClientFrame { .text(Array(s.utf8)) }

    @Test func drivesTheWholeProtocol() async throws {
        let fx = Fixture()
        let c = try fx.connect(subscribe: ["events", "room"], publish: ["events", "room"])
        let site = fx.siteA.siteID
        let verify: (String) async -> ConnectionGrant? = { token in
            token == "good" ? fx.grant(subscribe: ["events"], publish: ["events"], ttl: 600) : nil
        }
        await fx.engine.handleClientFrame(text("{\"type\":\"subscribe\",\"channels\":[\"events\",\"shop\",\"room\"]}"), from: c, verifyToken: verify)
        await fx.engine.handleClientFrame(text("{\"type\":\"message\",\"channel\":\"events\",\"event\":\"e\",\"data\":{\"a\":1}}"), from: c, verifyToken: verify)
        await fx.engine.handleClientFrame(text("{\"type\":\"message\",\"channel\":\"shop\",\"event\":\"e\",\"data\":1}"), from: c, verifyToken: verify)
        await fx.engine.handleClientFrame(text("{\"type\":\"presence\",\"channel\":\"room\",\"state\":{\"n\":1}}"), from: c, verifyToken: verify)
        await fx.engine.handleClientFrame(.binary([0, 6] + Array("events".utf8) + [9]), from: c, verifyToken: verify)
        await fx.engine.handleClientFrame(text("{\"type\":\"pong\"}"), from: c, verifyToken: verify)
        await fx.engine.handleClientFrame(text("{\"type\":\"auth\",\"token\":\"bad\"}"), from: c, verifyToken: verify)
        await fx.engine.handleClientFrame(text("{\"type\":\"auth\",\"token\":\"good\"}"), from: c, verifyToken: verify)
        await fx.engine.handleClientFrame(text("{\"type\":\"unsubscribe\",\"channels\":[\"events\"]}"), from: c, verifyToken: verify)
        let frames = c.texts()
        #expect(frames.count == 10)
        #expect(frames[0].hasPrefix("{\"type\":\"subscribed\",\"channels\":[\"events\"]"))
        #expect(frames[1].hasPrefix("{\"type\":\"subscribed\",\"channels\":[\"room\"]"))
        #expect(frames[2] == "{\"type\":\"error\",\"code\":\"forbidden\",\"message\":\"subscribe refused\",\"channel\":\"shop\"}")
        #expect(frames[3].hasPrefix("{\"type\":\"message\",\"channel\":\"events\",\"event\":\"e\",\"data\":{\"a\":1}"))
        #expect(frames[4] == "{\"type\":\"error\",\"code\":\"forbidden\",\"message\":\"publish refused\",\"channel\":\"shop\"}")
        #expect(contains(frames[5], "\"action\":\"join\""))
        #expect(frames[6] == "\u{0}\u{6}events\u{9}")
        #expect(frames[7] == "{\"type\":\"error\",\"code\":\"unauthorized\",\"message\":\"token refused\"}")
        #expect(frames[8].hasPrefix("{\"type\":\"auth_ok\",\"exp\":"))
        #expect(frames[9] == "{\"type\":\"unsubscribed\",\"channels\":[\"events\"]}")
        // The refreshed grant no longer reaches `room`: presence and subscription are gone.
        #expect(c.subscribedChannels.isEmpty)
        #expect(await fx.engine.presenceCount(siteID: site, channel: "room") == 0)
    }

    @Test func malformedFramesClose1008AfterQueuedFrames() async throws {
        let fx = Fixture()
        let c = try fx.connect()
        _ = fx.engine.send(Wire.ping, to: c)
        await fx.engine.handleClientFrame(.text(Array("{\"type\":".utf8)), from: c, verifyToken: { _ in nil })
        #expect(c.texts() == ["{\"type\":\"ping\"}", "CLOSE 1008 malformed frame"])
        let d = try fx.connect()
        await fx.engine.handleClientFrame(.binary([0, 9, 1]), from: d, verifyToken: { _ in nil })
        #expect(d.closeItem()?.0 == .policyViolation)
    }
}
