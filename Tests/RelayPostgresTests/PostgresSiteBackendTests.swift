import Foundation
import PostgresNIO
import RelayCore
import RelayCrypto
import RelayPostgres
import RelaySites
import Synchronization
import Testing

/// Polls `condition` every 20 ms for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// A real PostgreSQL and two nodes' site stores over their own pools.
final class TwoNodes: Sendable {
    let server: PostgresServerProcess
    let config: PostgresClient.Configuration
    let backendA: PostgresSiteBackend, backendB: PostgresSiteBackend
    let a: SiteStore, b: SiteStore

    init() async throws {
        server = try await PostgresServerProcess()
        config = try PostgresClient.Configuration.fromURL(server.url)
        backendA = try await PostgresSiteBackend.open(config)
        backendB = try await PostgresSiteBackend.open(config)
        a = try await SiteStore.open(backendA)
        b = try await SiteStore.open(backendB)
    }

    func close() {
        backendA.close()
        backendB.close()
        server.stop()
    }
}

extension RealPostgres {
/// The site registry shared by the nodes of a cluster (issue 14, item 4), on a real PostgreSQL.
@Suite(.timeLimit(.minutes(3)))
struct PostgresSiteBackendTests {
    /// Two nodes (stores over their own pools): what one registers, rotates, limits, archives or
    /// removes, the other's cache follows through the change feed, and a node that missed the feed
    /// finds a new site on demand (at most once a second per key).
    @Test func nodesFollowEachOthersChanges() async throws {
        let nodes = try await TwoNodes()
        defer { nodes.close() }
        let (config, a, b) = (nodes.config, nodes.a, nodes.b)
        let changes = Mutex<[(String?, String?, Bool)]>([])  // old key, new key, new archived
        b.onRemoteChange { old, new in changes.withLock { $0.append((old?.siteKey, new?.siteKey, new?.archived ?? false)) } }
        let follower = Task { try await b.followChanges() }
        defer { follower.cancel() }
        // The feed is listening once the first full re-read happened; give it a moment.
        try await Task.sleep(for: .milliseconds(300))

        let site = SiteRecord.generate(siteURL: "https://one.example", siteName: "one")
        try await a.add(site)
        #expect(await eventually { b.site(key: site.siteKey)?.jwtSecret == site.jwtSecret })
        #expect(b.record(key: site.siteKey)?.publishSecrets.map(\.secret) == site.publishSecrets.map(\.secret))

        let rotated = try await a.rotate(siteKey: site.siteKey, graceSeconds: 60)
        #expect(await eventually { b.publishSecrets(siteKey: site.siteKey)?.map(\.keyID) == ["k1", "k2"] })
        #expect(b.publishSecrets(siteKey: site.siteKey)?.last?.secret == rotated.publishSecrets.last?.secret)
        #expect(b.publishSecrets(siteKey: site.siteKey)?.first?.validUntilMs != nil)

        try await a.setLimits(siteKey: site.siteKey) { $0.maxConnections = 7; $0.monthlyMessageQuota = 1_000 }
        #expect(await eventually { b.site(key: site.siteKey)?.limits.maxConnections == 7 })
        #expect(b.site(key: site.siteKey)?.limits.monthlyMessageQuota == 1_000)

        try await a.archive(siteKey: site.siteKey)
        #expect(await eventually { b.site(key: site.siteKey)?.revoked == true })
        #expect(b.publishSecrets(siteKey: site.siteKey) == nil)
        try await a.remove(siteKey: site.siteKey)
        #expect(await eventually { b.record(key: site.siteKey) == nil })
        let seen = changes.withLock { $0 }
        #expect(seen.contains { $0.0 == site.siteKey && $0.1 == site.siteKey && $0.2 }, "archive reported: \(seen)")
        #expect(seen.contains { $0.0 == site.siteKey && $0.1 == nil }, "removal reported: \(seen)")

        // A node not following the feed (or before the notification arrived) finds the site on demand.
        let bc = try await PostgresSiteBackend.open(config)
        defer { bc.close() }
        let c = try await SiteStore.open(bc)
        let late = SiteRecord.generate(siteURL: "https://two.example")
        try await a.add(late)
        #expect(c.site(key: late.siteKey) == nil)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(await c.refresh(siteKey: late.siteKey, nowMs: now))
        #expect(c.site(key: late.siteKey)?.jwtSecret == late.jwtSecret)
        try await a.rotate(siteKey: late.siteKey)
        #expect(await c.refresh(siteKey: late.siteKey, nowMs: now + 500) == false, "at most once a second per key")
        #expect(await c.refresh(siteKey: late.siteKey, nowMs: now + 1_500))
        #expect(c.record(key: late.siteKey)?.publishSecrets.count == 2)
        #expect(await c.refresh(siteKey: "no-such-site", nowMs: now) == false)
        // And the follower re-read everything when it started: a fresh store sees the same registry.
        #expect(await eventually { b.list().map(\.siteKey) == [late.siteKey] })
    }

    /// Changes on two nodes at once are read-modify-write in one transaction each: twelve
    /// rotations on one node and twelve limit changes on the other all take effect, and a key
    /// added on two nodes at once is stored once.
    @Test func concurrentChangesOnTwoNodesAllTakeEffect() async throws {
        let nodes = try await TwoNodes()
        defer { nodes.close() }
        let (ba, a, b) = (nodes.backendA, nodes.a, nodes.b)
        let site = SiteRecord.generate()
        try await a.add(site)
        _ = await b.refresh(siteKey: site.siteKey)
        async let rotations: Void = { for _ in 0..<12 { try await a.rotate(siteKey: site.siteKey, graceSeconds: 600) } }()
        async let limits: Void = { for i in 1...12 { try await b.setLimits(siteKey: site.siteKey) { $0.maxChannelsPerConnection = 100 + i } } }()
        _ = try await (rotations, limits)
        let stored = try #require(try await ba.load(siteKey: site.siteKey))
        #expect(stored.publishSecrets.count == 13)
        #expect(Set(stored.publishSecrets.map(\.keyID)).count == 13)
        #expect(stored.limits.maxChannelsPerConnection == 112)

        let twin = SiteRecord.generate()
        let results = await withTaskGroup(of: Bool.self) { group in
            for store in [a, b] { group.addTask { (try? await store.add(twin)) != nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 1, "one add wins: \(results)")
        await #expect(throws: SiteStoreError.duplicateKey) { try await b.add(twin) }
    }

    /// PostgreSQL gone: a change fails with a clear error within the backend's deadline (the admin
    /// API answers 500), and the cached sites still answer connects and publishes.
    @Test func aDeadDatabaseRefusesChangesAndTheCacheStillAnswers() async throws {
        let server = try await PostgresServerProcess()
        var config = try PostgresClient.Configuration.fromURL(server.url)
        config.options.connectTimeout = .seconds(2)
        let backend = try await PostgresSiteBackend.open(config, timeout: .seconds(3))
        defer { backend.close() }
        let store = try await SiteStore.open(backend)
        let site = SiteRecord.generate()
        try await store.add(site)
        server.stop()
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) { try await store.rotate(siteKey: site.siteKey) }
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(store.site(key: site.siteKey)?.jwtSecret == site.jwtSecret)
        #expect(store.publishSecrets(siteKey: site.siteKey) == site.publishSecrets, "the failed rotation changed nothing")
        let now = Date().timeIntervalSince1970
        #expect(store.chargeMessages(siteID: site.siteID, count: 2, now: now) == .allowed)
        await #expect(throws: (any Error).self) { try await store.flushUsage(now: now) }
        #expect(store.messagesThisMonth(siteID: site.siteID, now: now) == 2, "kept for the next flush")
    }

    /// Monthly quotas count every node: each node's flush adds what it charged since its last one
    /// and learns the total; a fresh node (a restart) starts from the stored total.
    @Test func usageSumsAcrossNodes() async throws {
        let nodes = try await TwoNodes()
        defer { nodes.close() }
        let (ba, a, b) = (nodes.backendA, nodes.a, nodes.b)
        let site = SiteRecord.generate(limits: SiteLimits(monthlyMessageQuota: 100))
        try await a.add(site)
        _ = await b.refresh(siteKey: site.siteKey)
        let now = Date().timeIntervalSince1970
        let id = site.siteID
        #expect(a.chargeMessages(siteID: id, count: 30, now: now) == .allowed)
        #expect(b.chargeMessages(siteID: id, count: 25, now: now) == .allowed)
        try await a.flushUsage(now: now)
        try await b.flushUsage(now: now)
        #expect(b.messagesThisMonth(siteID: id, now: now) == 55)
        try await a.flushUsage(now: now)
        #expect(a.messagesThisMonth(siteID: id, now: now) == 55)
        // Flushing again adds nothing twice.
        try await a.flushUsage(now: now)
        try await b.flushUsage(now: now)
        #expect(a.messagesThisMonth(siteID: id, now: now) == 55 && b.messagesThisMonth(siteID: id, now: now) == 55)
        // The quota is the cluster's: 45 left, whichever node.
        #expect(a.chargeMessages(siteID: id, count: 45, now: now) == .allowed)
        try await a.flushUsage(now: now)
        try await b.flushUsage(now: now)
        #expect(b.chargeMessages(siteID: id, count: 1, now: now) == .exceeded(limit: 100))
        // Concurrent flushes of one node do not add its count twice.
        #expect(a.chargeMessages(siteID: id, count: 0, now: now) == .allowed)
        async let f1: Void = a.flushUsage(now: now)
        async let f2: Void = a.flushUsage(now: now)
        _ = try await (f1, f2)
        let fresh = try await SiteStore.open(try await PostgresSiteBackend.open(client: ba.client))
        #expect(fresh.messagesThisMonth(siteID: id, now: now) == 100)
    }
}
}

/// `SiteStore` over its SQLite backend (single node).
@Suite struct SQLiteSiteStoreTests {
    /// The single-node registry keeps its behaviour: usage flushed twice is stored once and
    /// survives a restart (the stored count is added to, never overwritten).
    @Test func sqliteUsageIsAddedOnce() async throws {
        let dir = NSTemporaryDirectory() + "relay-sites-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let now = Date().timeIntervalSince1970
        let site = SiteRecord.generate(limits: SiteLimits(monthlyMessageQuota: 10))
        do {
            let s = try SiteStore(directory: dir)
            try await s.add(site)
            #expect(s.chargeMessages(siteID: site.siteID, count: 4, now: now) == .allowed)
            try await s.flushUsage(now: now)
            try await s.flushUsage(now: now)
            #expect(s.chargeMessages(siteID: site.siteID, count: 3, now: now) == .allowed)
            try await s.flushUsage(now: now)
        }
        let reopened = try SiteStore(directory: dir)
        #expect(reopened.messagesThisMonth(siteID: site.siteID, now: now) == 7)
        #expect(reopened.chargeMessages(siteID: site.siteID, count: 4, now: now) == .exceeded(limit: 10))
        #expect(reopened.record(key: site.siteKey)?.publishSecrets == site.publishSecrets)
        await #expect(throws: SiteStoreError.duplicateKey) { try await reopened.add(site) }
        await #expect(throws: SiteStoreError.notFound) { try await reopened.remove(siteKey: "nope") }
    }
}
