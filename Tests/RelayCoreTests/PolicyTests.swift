import Testing
@testable import RelayCore

@Suite struct AccessTests {
    @Test func tokenPrefixesGateSubscribeAndPublish() throws {
        let fx = Fixture()
        let site = fx.siteA.siteID
        // Strict-mode style token: explicit read list, bare publish prefix.
        let c = try fx.connect(subscribe: ["site:\(site):events", "woo:orders"], publish: ["yjs:"])
        let r = fx.engine.subscribe(c, channels: ["events", "shop", "woo:orders:7", "site:\(site):events2", "", "site:\(fx.siteB.siteID):events"])
        #expect(r["events"]?.isSubscribed == true)
        #expect(r["shop"] == .forbidden)
        #expect(r["woo:orders:7"]?.isSubscribed == true)
        #expect(r["site:\(site):events2"] == .forbidden)  // a channel grant, not a string prefix (wordsocket grants channels and namespaces)
        #expect(r[""] == .invalidChannel)
        #expect(r["site:\(fx.siteB.siteID):events"] == .forbidden)
        #expect(fx.engine.publish(from: c, channel: "events", event: "e", data: Array("{}".utf8)) == .failure(.forbidden))
        #expect((try? fx.engine.publish(from: c, channel: "yjs:doc", event: "e", data: Array("{}".utf8)).get()) != nil)
        #expect(fx.engine.publishBinary(from: c, channel: "events", payload: [1]) == .failure(.forbidden))
        #expect(fx.engine.setPresence(c, channel: "events", state: Array("{}".utf8)) == .failure(.forbidden))
    }

    @Test func visitorWithEmptyPublishListCannotPublish() throws {
        let fx = Fixture()
        let c = try fx.connect(publish: [])
        #expect(fx.engine.publish(from: c, channel: "events", event: "e", data: Array("{}".utf8)) == .failure(.forbidden))
    }

    @Test func relayOwnedNamespaceIsReadOnly() throws {
        let fx = Fixture()
        let c = try fx.connect()
        #expect(fx.engine.publish(from: c, channel: "wps:connections", event: "e", data: Array("{}".utf8)) == .failure(.reservedChannel))
        #expect(fx.publish("wps:connections") == .failure(.reservedChannel))
        #expect(fx.engine.setPresence(c, channel: "wps:x", state: Array("{}".utf8)) == .failure(.forbidden))
    }

    @Test func sitesAreIsolated() throws {
        let fx = Fixture()
        let a = try fx.connect(fx.siteA)
        let b = try fx.connect(fx.siteB)
        _ = fx.engine.subscribe(a, channels: ["events"]); _ = a.drain()
        _ = fx.engine.subscribe(b, channels: ["events"]); _ = b.drain()
        #expect(try fx.publish("events", site: fx.siteA).get().deliveries == 1)
        #expect(a.messages().count == 1)
        #expect(b.messages().isEmpty)
        // A publisher of site A cannot name site B's channel, in any spelling.
        #expect(fx.publish("site:\(fx.siteB.siteID):events", site: fx.siteA) == .failure(.forbidden))
        #expect(fx.engine.publish(from: a, channel: "site:\(fx.siteB.siteID):events", event: "e", data: Array("{}".utf8)) == .failure(.forbidden))
        // A token naming site B's prefixes still only reaches site A.
        let sneaky = try fx.connect(fx.siteA, subscribe: ["site:\(fx.siteB.siteID):"])
        #expect(fx.engine.subscribe(sneaky, channels: ["events"])["events"] == .forbidden)
        #expect(fx.engine.subscribe(sneaky, channels: ["site:\(fx.siteB.siteID):events"])["site:\(fx.siteB.siteID):events"] == .forbidden)
        #expect(b.messages().isEmpty)
    }

    @Test func publishValidation() throws {
        let fx = Fixture(limits: SiteLimits(maxMessageBytes: 16))
        #expect(fx.publish("events", "{\"a\":") == .failure(.invalidJSON))
        #expect(fx.publish("events", "{}", event: "") == .failure(.invalidEvent))
        #expect(fx.publish("events", "{}", event: "a\nb") == .failure(.invalidEvent))
        #expect(fx.publish("events", "{\"p\":\"0123456789\"}") == .failure(.messageTooLarge(limit: 16)))
        #expect(fx.engine.publish(siteID: String(repeating: "0", count: 64), channel: "events", event: "e", data: Array("1".utf8)) == .failure(.siteNotFound))
        #expect(PublishError.quotaExceeded(limit: 1).httpStatus == 429)
        #expect(PublishError.quotaExceeded(limit: 1).code.rawValue == "quota_exceeded")
    }
}

@Suite struct LimitTests {
    @Test func tooManyChannelsCloses4009() throws {
        let fx = Fixture(limits: SiteLimits(maxChannelsPerConnection: 2))
        let c = try fx.connect()
        let r = fx.engine.subscribe(c, channels: ["a", "b", "c", "d"])
        #expect(r["a"]?.isSubscribed == true && r["b"]?.isSubscribed == true)
        #expect(r["c"] == .notProcessed && r["d"] == .notProcessed)
        #expect(r.closedWith == .tooManyChannels)
        #expect(c.closeItem()?.0 == .tooManyChannels)
        #expect(fx.engine.subscriberCount(siteID: fx.siteA.siteID, channel: "a") == 0)
        #expect(fx.engine.connectionCount == 0)
    }

    @Test("Client publish admission: go while tokens last, then wait for the next one; refused (4013) only after waiting longer than maxWait")
    func clientPublishAdmissionWaitsThenRefuses() throws {
        let fx = Fixture(limits: SiteLimits(clientPublishRate: RateLimit(perSecond: 2, burst: 2)))
        let c = try fx.connect()
        for _ in 0..<2 {
            #expect(fx.engine.clientPublishAdmission(c, maxWait: 5) == .now)
            #expect((try? fx.engine.publish(from: c, channel: "x", event: "e", data: Array("1".utf8)).get()) != nil)
        }
        #expect(fx.engine.clientPublishWouldWait(c))
        #expect(fx.engine.clientPublishAdmission(c, maxWait: 5) == .wait(seconds: 0.5))
        fx.clock.advance(by: 0.5)
        #expect(!fx.engine.clientPublishWouldWait(c))
        #expect(fx.engine.clientPublishAdmission(c, maxWait: 5) == .now, "a token after 1/rate s")
        #expect((try? fx.engine.publish(from: c, channel: "x", event: "e", data: Array("1".utf8)).get()) != nil)
        // A client that keeps its queue full: every publish has to wait, as a transport
        // does it (sleep, ask again with waited: true); past maxWait the client is closed.
        var refused = false, published = 0
        flood: for _ in 0..<40 {
            var waited = false
            while true {
                switch fx.engine.clientPublishAdmission(c, maxWait: 5, waited: waited) {
                case .now:
                    _ = fx.engine.publish(from: c, channel: "x", event: "e", data: Array("1".utf8))
                    published += 1
                    continue flood
                case .wait(let s): fx.clock.advance(by: s); waited = true
                case .refused: refused = true; break flood
                }
            }
        }
        #expect(refused)
        #expect((9...12).contains(published), "about 5 s at 2/s before the close: \(published)")
        #expect(c.closeItem()?.0 == .rateLimited)
        #expect(fx.metrics.value("relay_client_rate_limited_total") == 1)
        // A burst that ends in time resets the clock of waiting.
        let d = try fx.connect()
        for _ in 0..<2 { _ = fx.engine.publish(from: d, channel: "x", event: "e", data: Array("1".utf8)) }
        #expect(fx.engine.clientPublishAdmission(d, maxWait: 1) == .wait(seconds: 0.5))
        fx.clock.advance(by: 10)
        #expect(fx.engine.clientPublishAdmission(d, maxWait: 1) == .now)
        #expect(d.closeItem() == nil)
    }

    @Test func defaultClientRateFitsCoEditing() {
        let rate = SiteLimits().clientPublishRate
        #expect(rate.perSecond >= 30, "an update and an awareness frame per keystroke at 15 keys/s")
        #expect(rate.burst >= 100, "an offline queue flushed at once")
    }

    @Test func clientRateLimitCloses4013() throws {
        let fx = Fixture(limits: SiteLimits(clientPublishRate: RateLimit(perSecond: 1, burst: 3)))
        let c = try fx.connect()
        for _ in 0..<3 { #expect((try? fx.engine.publish(from: c, channel: "x", event: "e", data: Array("1".utf8)).get()) != nil) }
        fx.clock.advance(by: 1)
        #expect((try? fx.engine.publish(from: c, channel: "x", event: "e", data: Array("1".utf8)).get()) != nil)
        #expect(fx.engine.publish(from: c, channel: "x", event: "e", data: Array("1".utf8)) == .failure(.rateLimited))
        #expect(c.closeItem()?.0 == .rateLimited)
        #expect(fx.metrics.value("relay_client_rate_limited_total") == 1)
    }

    @Test("A payload over the site's limit is refused without closing the client (issue 20); one at the limit passes")
    func clientMessageTooBigIsRefusedAndTheConnectionStaysOpen() throws {
        let fx = Fixture(limits: SiteLimits(maxMessageBytes: 8))
        #expect(fx.publish("x", "[1,2,3,4,5]") == .failure(.messageTooLarge(limit: 8)))
        let c = try fx.connect()
        #expect(fx.engine.publishBinary(from: c, channel: "x", payload: Array(repeating: 0, count: 9)) == .failure(.messageTooLarge(limit: 8)))
        #expect(fx.engine.publish(from: c, channel: "x", event: "e", data: Array("[1,2,3,4]".utf8)) == .failure(.messageTooLarge(limit: 8)))
        #expect(c.closeItem() == nil, "refused, not closed")
        #expect((try? fx.engine.publishBinary(from: c, channel: "x", payload: Array(repeating: 0, count: 8)).get()) != nil)
        #expect((try? fx.engine.publish(from: c, channel: "x", event: "e", data: Array("[1,2,34]".utf8)).get()) != nil)
        #expect(c.closeItem() == nil)
        #expect(PublishError.messageTooLarge(limit: 8).message.contains("8 bytes"))
    }

    @Test("Defaults: a payload up to the 2 MiB frame cap, and an outbox that holds two of them")
    func defaultsFitTheWordsocketProvider() {
        #expect(SiteLimits().maxMessageBytes == 2 << 20)
        #expect(SiteLimits().maxMessageBytes >= (1 << 20) + 1, "1-byte tag + the provider's 1 MiB update cap")
        #expect(OutboxLimits().maxBytes >= 2 * SiteLimits().maxMessageBytes)
    }

    @Test func monthlyQuotaReturnsTypedErrorAndResetsNextMonth() throws {
        let fx = Fixture(limits: SiteLimits(monthlyMessageQuota: 2))
        fx.clock.set(1_701_388_000) // 2023-11-30 23:46:40 UTC
        _ = try fx.publish("events").get()
        _ = try fx.publish("events").get()
        #expect(fx.publish("events") == .failure(.quotaExceeded(limit: 2)))
        #expect(fx.metrics.value("relay_quota_rejections_total") == 1)
        let b = try fx.connect()
        #expect(fx.engine.publish(from: b, channel: "events", event: "e", data: Array("1".utf8)) == .failure(.quotaExceeded(limit: 2)))
        fx.clock.advance(by: 1000) // December
        #expect((try? fx.publish("events").get()) != nil)
    }

    @Test func connectionsChannelReportsCountsCoalesced() throws {
        let fx = Fixture(limits: SiteLimits(maxConnections: 50))
        let watcher = try fx.connect()
        _ = fx.engine.subscribe(watcher, channels: ["wps:connections"]); _ = watcher.drain()
        fx.clock.advance(by: 5)
        let burst = try (0..<10).map { _ in try fx.connect() }
        // First change is reported at once, the rest of the burst is coalesced.
        var events = watcher.messages()
        #expect(events.count == 1)
        #expect(contains(events[0], "\"event\":\"wps.connections\",\"data\":{\"active_connections\":2,\"max_connections\":50}"))
        #expect(contains(events[0], "\"channel\":\"site:\(fx.siteA.siteID):wps:connections\""))
        fx.engine.tick()
        #expect(watcher.messages().isEmpty) // interval not over
        fx.clock.advance(by: 1)
        fx.engine.tick()
        events = watcher.messages()
        #expect(events.count == 1)
        #expect(contains(events[0], "{\"active_connections\":11,"))
        for c in burst { fx.engine.disconnect(c) }
        fx.clock.advance(by: 1)
        fx.engine.tick()
        events = watcher.messages()
        #expect(events.count == 1 && contains(events[0], "{\"active_connections\":1,"))
        fx.engine.tick()
        #expect(watcher.messages().isEmpty)
    }
}

@Suite struct PresenceTests {
    @Test func joinSyncUpdateAndLeaveOnDisconnect() throws {
        let fx = Fixture()
        let a = try fx.connect(), b = try fx.connect(), shopper = try fx.connect()
        #expect(fx.engine.setPresence(a, channel: "room", state: Array("{\"name\":\"A\"}".utf8)) == .success(.joined))
        _ = fx.engine.subscribe(b, channels: ["room"])
        let bFrames = b.texts()
        #expect(bFrames.count == 2)
        #expect(bFrames[1] == "{\"type\":\"message\",\"channel\":\"room\",\"event\":\"wps.presence\",\"data\":{\"action\":\"sync\",\"members\":[{\"id\":\"\(a.presenceID)\",\"state\":{\"name\":\"A\"}}]}}")
        // Presence without subscribing (ShopSocket shoppers).
        #expect(fx.engine.setPresence(shopper, channel: "site:\(fx.siteA.siteID):room", state: Array("{}".utf8)) == .success(.joined))
        #expect(b.messages() == ["{\"type\":\"message\",\"channel\":\"site:\(fx.siteA.siteID):room\",\"event\":\"wps.presence\",\"data\":{\"action\":\"join\",\"id\":\"\(shopper.presenceID)\",\"state\":{}}}"])
        #expect(fx.engine.setPresence(a, channel: "room", state: Array("{\"name\":\"A2\"}".utf8)) == .success(.updated))
        #expect(contains(b.messages()[0], "\"action\":\"join\",\"id\":\"\(a.presenceID)\",\"state\":{\"name\":\"A2\"}"))
        #expect(fx.engine.presenceCount(siteID: fx.siteA.siteID, channel: "room") == 2)
        #expect(fx.engine.presence(siteID: fx.siteA.siteID, channel: "room").map(\.id) == [a.presenceID, shopper.presenceID])

        fx.engine.disconnect(a)
        #expect(b.messages() == ["{\"type\":\"message\",\"channel\":\"room\",\"event\":\"wps.presence\",\"data\":{\"action\":\"leave\",\"id\":\"\(a.presenceID)\"}}"])
        #expect(fx.engine.setPresence(shopper, channel: "room", state: nil) == .success(.left))
        #expect(contains(b.messages()[0], "\"action\":\"leave\",\"id\":\"\(shopper.presenceID)\""))
        #expect(fx.engine.setPresence(shopper, channel: "room", state: nil) == .success(.notMember))
        #expect(fx.engine.presenceCount(siteID: fx.siteA.siteID, channel: "room") == 0)
    }

    @Test func presenceLimits() throws {
        let fx = Fixture { $0.presence = PresenceLimits(maxStateBytes: 10, maxMembersPerChannel: 2) }
        let cs = try (0..<3).map { _ in try fx.connect() }
        #expect(fx.engine.setPresence(cs[0], channel: "r", state: Array("{\"a\":\"0123456789\"}".utf8)) == .failure(.stateTooLarge(limit: 10)))
        #expect(fx.engine.setPresence(cs[0], channel: "r", state: Array("{\"a\":".utf8)) == .failure(.invalidState))
        #expect(fx.engine.setPresence(cs[0], channel: "r", state: Array("1".utf8)) == .success(.joined))
        #expect(fx.engine.setPresence(cs[1], channel: "r", state: Array("2".utf8)) == .success(.joined))
        #expect(fx.engine.setPresence(cs[2], channel: "r", state: Array("3".utf8)) == .failure(.memberLimitReached(limit: 2)))
        #expect(fx.engine.setPresence(cs[1], channel: "r", state: Array("4".utf8)) == .success(.updated))
        #expect(fx.engine.presence(siteID: fx.siteA.siteID, channel: "r").map { String(decoding: $0.state, as: UTF8.self) } == ["1", "4"])
    }
}

@Suite struct LifecycleTests {
    @Test func refreshGrantAcksAndDropsChannelsNoLongerAllowed() throws {
        let fx = Fixture()
        let c = try fx.connect()
        _ = fx.engine.subscribe(c, channels: ["events", "woo:orders"])
        _ = fx.engine.setPresence(c, channel: "woo:carts", state: Array("{}".utf8))
        _ = c.drain()
        fx.clock.advance(by: 200)
        let newGrant = fx.grant(subscribe: ["events"], publish: ["yjs:"], ttl: 300)
        let r = try fx.engine.refreshGrant(c, newGrant).get()
        #expect(r.expiresAt == newGrant.expiresAt)
        #expect(r.revokedChannels == ["site:\(fx.siteA.siteID):woo:orders"])
        #expect(c.texts() == ["{\"type\":\"auth_ok\",\"exp\":\(newGrant.expiresAt)}"])
        #expect(c.subscribedChannels == ["site:\(fx.siteA.siteID):events"])
        #expect(fx.engine.presenceCount(siteID: fx.siteA.siteID, channel: "woo:carts") == 0)

        var expired = newGrant
        expired.expiresAt = fx.now - 1
        #expect(fx.engine.refreshGrant(c, expired).refusal?.code == .invalidToken)
        #expect(fx.engine.refreshGrant(c, fx.grant(fx.siteB)).refusal?.code == .invalidToken)
    }

    @Test func expiredConnectionsAreFoundAndClosedWith4001() throws {
        let fx = Fixture { $0.tokenExpiryGrace = 5 }
        let short = try fx.engine.connect(fx.grant(ttl: 10)).get()
        let long = try fx.engine.connect(fx.grant(ttl: 100)).get()
        fx.clock.advance(by: 12)
        #expect(fx.engine.expiredConnections().isEmpty)
        fx.clock.advance(by: 4)
        #expect(fx.engine.expiredConnections() == [short])
        #expect(fx.engine.closeExpired() == 1)
        #expect(short.closeItem()?.0 == .invalidToken)
        #expect(!long.isClosed)
    }

    @Test func keepalivesGoToEveryConnectionInItsFormat() throws {
        let fx = Fixture()
        let ws = try fx.connect(), sse = try fx.connect(format: .sseV2)
        #expect(fx.engine.sendKeepalives() == 2)
        #expect(ws.texts() == ["{\"type\":\"ping\"}"])
        #expect(sse.texts() == [": ping\n\n"])
    }

    @Test func shutdownClosesEveryoneWith4500AndAJitteredDelay() throws {
        let fx = Fixture()
        let cs = try (0..<5).map { _ in try fx.connect() }
        _ = fx.engine.subscribe(cs[0], channels: ["events"])
        _ = fx.publish("events")
        var rng = SplitMix(seed: 7)
        fx.engine.shutdown(retryAfterMs: 1000...5000, using: &rng)
        let first = cs[0].texts()
        #expect(first.count == 3) // ack and message are flushed before the close
        for c in cs {
            let items = c === cs[0] ? [first.last!] : c.texts()
            let close = try #require(items.last)
            #expect(close.hasPrefix("CLOSE 4500 server shutting down; retry_after_ms="))
            let ms = Int(close.split(separator: "=").last!)!
            #expect((1000...5000).contains(ms))
        }
        #expect(fx.engine.connect(fx.grant()).refusal?.code == .shuttingDown)
        #expect(fx.engine.connectionCount == 0)
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Grants: namespaces and channels, never string prefixes")
struct GrantRuleTests {
    @Test("A grant ending in ':' or '/' is a namespace; any other names a channel and the channels under it")
    func rule() {
        let yes: [(String, String)] = [
            ("site:a:", "site:a:events"), ("site:a:shop:", "site:a:shop:orders"),
            ("site:a:events", "site:a:events"), ("site:a:events", "site:a:events:eu"),
            ("site:a:yjs:postType/post:12", "site:a:yjs:postType/post:12"),
            ("site:a:yjs:postType/", "site:a:yjs:postType/post:12"),
            ("site:a:yjs:postType/post", "site:a:yjs:postType/post:12"),
            ("site:a:presence:post:12", "site:a:presence:post:12"),
        ]
        let no: [(String, String)] = [
            ("site:a:events", "site:a:events2"),
            ("site:a:yjs:postType/post:12", "site:a:yjs:postType/post:123"),
            ("site:a:yjs:postType/post:12", "site:a:yjs:postType/post:1"),
            ("site:a:presence:post:12", "site:a:presence:post:120"),
            ("site:a:shop:", "site:a:shopping"), ("site:a:", "site:b:events"),
            ("site:a:é", "site:a:e\u{301}"),  // byte for byte, not canonical equivalence
        ]
        for (g, c) in yes { #expect(ChannelName.grant(g, reaches: c), "\(g) → \(c)") }
        for (g, c) in no { #expect(!ChannelName.grant(g, reaches: c), "\(g) ↛ \(c)") }
    }

    @Test("Subscribe and publish follow the rule: post 12's grant does not reach post 123")
    func engine() throws {
        let fx = Fixture()
        let full = { (bare: String) in "site:\(fx.siteA.siteID):\(bare)" }
        let c = try fx.connect(subscribe: [full("yjs:postType/post:12"), full("events")], publish: [full("yjs:postType/post:12")])
        let r = fx.engine.subscribe(c, channels: ["yjs:postType/post:12", "yjs:postType/post:123", "events2", "events:eu"])
        #expect(r.entries.map { $0.outcome.isSubscribed } == [true, false, false, true], "\(r.entries)")
        #expect((try? fx.engine.publishBinary(from: c, channel: "yjs:postType/post:12", payload: [1]).get()) != nil)
        #expect(fx.engine.publishBinary(from: c, channel: "yjs:postType/post:123", payload: [1]) == .failure(.forbidden))
    }
}

@Suite("Channel identity is byte equality, as the grant rule is (attack matrix: unicode confusables)")
struct ChannelIdentityTests {
    /// Canonically equivalent but byte-different spellings: composed/decomposed é, KELVIN SIGN/K,
    /// ANGSTROM SIGN/Å, GREEK QUESTION MARK/semicolon.
    static let pairs: [(String, String)] = [
        ("notes:caf\u{E9}", "notes:cafe\u{301}"), ("notes:\u{212A}", "notes:K"),
        ("notes:\u{212B}", "notes:\u{C5}"), ("notes:a\u{37E}b", "notes:a;b"),
    ]

    @Test("exactKey: ASCII names are their own key; others differ whenever their bytes do")
    func keys() {
        #expect(ChannelName.exactKey("site:a:events") == "site:a:events")
        for (x, y) in Self.pairs {
            #expect(x == y, "Swift's String equality is canonical equivalence: \(x.debugDescription)")
            #expect(ChannelName.exactKey(x) != ChannelName.exactKey(y))
            #expect(ChannelName.exactKey(x) == ChannelName.exactKey(String(decoding: Array(x.utf8), as: UTF8.self)))
        }
        // Never equal to the key of an ASCII name (U+0001 is refused in names).
        #expect(ChannelName.exactKey("é").hasPrefix("\u{1}"))
        #expect(ChannelName.resolve("\u{1}c3a9", siteID: "a") == .failure(.invalid))
    }

    @Test("The reserved wps namespace is found by bytes: a combining mark after its ':' does not leave it")
    func reservedNamespaceByBytes() throws {
        let fx = Fixture()
        let name = try ChannelName.resolve("wps:\u{301}connections", siteID: fx.siteA.siteID).get()
        #expect(name.namespace == "wps")
        #expect(name.isReserved)
        #expect(fx.publish("wps:\u{301}connections") == .failure(.reservedChannel))
        #expect(try ChannelName.resolve("events:\u{301}x", siteID: "a").get().namespace == "events")
    }

    @Test("A token granted one spelling neither subscribes to nor receives the other's channel")
    func engine() throws {
        let fx = Fixture()
        let site = fx.siteA.siteID
        for (victimName, attackerName) in Self.pairs + Self.pairs.map({ ($0.1, $0.0) }) {
            let victim = try fx.connect(subscribe: ["site:\(site):\(victimName)"])
            let attacker = try fx.connect(subscribe: ["site:\(site):\(attackerName)"])
            #expect(fx.engine.subscribe(victim, channels: [victimName])[victimName]?.isSubscribed == true)
            // The attacker's own spelling is granted: a different channel, not the victim's.
            #expect(fx.engine.subscribe(attacker, channels: [attackerName])[attackerName]?.isSubscribed == true)
            #expect(fx.engine.subscribe(attacker, channels: [victimName])[victimName]?.isSubscribed == false)
            _ = victim.texts(); _ = attacker.texts()
            let r = try fx.publish(victimName, "{\"secret\":1}").get()
            #expect(r.deliveries == 1, "\(victimName.debugDescription) reached \(r.deliveries) subscribers")
            #expect(victim.messages().count == 1)
            #expect(attacker.messages().isEmpty, "\(attackerName.debugDescription) received \(victimName.debugDescription)'s message")
            #expect(r.position.offset == 1, "a fresh channel per spelling")
            fx.engine.disconnect(victim); fx.engine.disconnect(attacker)
        }
    }
}
