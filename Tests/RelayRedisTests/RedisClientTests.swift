import NIOCore
import RelayRedis
import Testing

/// `RedisClient` (pool, reconnect, scripts) against a real redis-server.
extension RealRedis {
@Suite(.timeLimit(.minutes(3)))
struct RedisClientTests {
    @Test func aPoolSpreadsCommandsOverItsConnections() async throws {
        let server = try await RedisServerProcess()
        defer { server.stop() }
        var options = RedisClient.Options()
        options.connections = 3
        let client = RedisClient(server.configuration, options: options)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<600 { group.addTask { _ = try await client.query(RedisCommand("INCR", "n")) } }
            try await group.waitForAll()
        }
        #expect(try await client.query(RedisCommand("GET", "n")).string == "600")
        let list = try #require(try await client.query(RedisCommand("CLIENT", "LIST")).string)
        #expect(list.split(separator: "\n").filter { $0.contains("name=relayd") }.count == 3, "\(list)")
        await client.close()
        await #expect(throws: RedisError.self) { try await client.query(RedisCommand("PING")) }
    }

    /// The server goes away: commands fail at once (no caller waits for a dead server), and once a
    /// server listens again the client reconnects by itself after its backoff.
    @Test func reconnectsAfterTheServerComesBack() async throws {
        let server = try await RedisServerProcess()
        let port = server.port
        var options = RedisClient.Options()
        options.reconnectBaseDelay = .milliseconds(20)
        options.reconnectMaxDelay = .milliseconds(200)
        let client = RedisClient(server.configuration, options: options)
        _ = try await client.query(RedisCommand("SET", "k", "before"))
        server.stop()
        let clock = ContinuousClock()
        for _ in 0..<5 {
            let t0 = clock.now
            await #expect(throws: RedisError.self) { try await client.query(RedisCommand("GET", "k")) }
            // Promptly, not after a hang (generous: CI runs many suites at once on two cores).
            #expect(clock.now - t0 < .seconds(15), "a command against a dead server failed promptly")
        }
        let again = try await RedisServerProcess(port: port)
        defer { again.stop() }
        var reply: RESPValue?
        for _ in 0..<100 where reply == nil {
            reply = try? await client.query(RedisCommand("PING"))
            if reply == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(reply == .simpleString("PONG"))
        // A new, empty server (no persistence): the old value is gone, the client works.
        #expect(try await client.query(RedisCommand("GET", "k")) == .null)
        await client.close()
    }

    /// EVALSHA, with SCRIPT LOAD the first time and again after the server lost its scripts.
    @Test func scriptsLoadOnceAndAgainAfterAFlush() async throws {
        let server = try await RedisServerProcess()
        defer { server.stop() }
        let client = RedisClient(server.configuration)
        let script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])"
        #expect(try await client.evaluate(script, keys: ["a", "b"], arguments: ["x"]).get() == .integer(1))
        #expect(try await client.evaluate(script, keys: ["a", "b"], arguments: ["y"]).get() == .integer(2))
        _ = try await client.query(RedisCommand("SCRIPT", "FLUSH"))
        #expect(try await client.evaluate(script, keys: ["a", "b"], arguments: ["z"]).get() == .integer(3))
        #expect(try await client.query(RedisCommand("GET", "a")).string == "z")
        // A script error is a value (the caller's to handle), not a broken client.
        let bad = try await client.evaluate("return redis.call('NOSUCH')", keys: [], arguments: []).get()
        guard case .error = bad else { Issue.record("\(bad)"); return }
        let stats = try #require(try await client.query(RedisCommand("INFO", "commandstats")).string)
        #expect(stats.contains("cmdstat_script|load:calls=3"), "loaded once, again after the flush, and the bad one: \(stats)")
        await client.close()
    }
}
}

/// `RedisSubscriber` against a real redis-server: subscriptions survive a killed connection and a
/// server restart, and each reconnect is announced (messages in between are lost, by design of
/// Redis pub/sub).
extension RealRedis {
@Suite(.timeLimit(.minutes(3)))
struct RedisSubscriberTests {
    @Test func keepsItsChannelsAcrossReconnects() async throws {
        let server = try await RedisServerProcess()
        let port = server.port
        let (events, sink) = AsyncStream.makeStream(of: RedisSubscriber.Event.self)
        var options = RedisClient.Options()
        options.reconnectBaseDelay = .milliseconds(20)
        options.reconnectMaxDelay = .milliseconds(200)
        let subscriber = RedisSubscriber(server.configuration, options: options) { sink.yield($0) }
        let running = Task { await subscriber.run() }
        var subscribed = false
        for _ in 0..<200 where !subscribed {
            subscribed = (try? await subscriber.subscribe(["news"]).get()) != nil
            if !subscribed { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(subscribed)
        try await subscriber.subscribe(["{room}:7"], sharded: true).get()
        let publisher = RedisClient(server.configuration, options: options)
        var iterator = events.makeAsyncIterator()
        func next() async -> RedisSubscriber.Event? { await iterator.next() }
        func message(_ ch: String, _ text: String, sharded: Bool = false) -> RedisSubscriber.Event {
            .message(channel: ch, payload: ByteBuffer(string: text), sharded: sharded)
        }

        #expect(try await publisher.query(RedisCommand("PUBLISH", "news", "one")) == .integer(1))
        #expect(await next() == message("news", "one"))
        #expect(try await publisher.query(RedisCommand("SPUBLISH", "{room}:7", "edit")) == .integer(1))
        #expect(await next() == message("{room}:7", "edit", sharded: true))

        // The server drops the pub/sub connection: a reconnect, announced, and both channels back.
        _ = try await publisher.query(RedisCommand("CLIENT", "KILL", "TYPE", "pubsub"))
        guard case .disconnected? = await next() else { Issue.record("no disconnect event"); return }
        #expect(await next() == .resubscribed)
        #expect(try await publisher.query(RedisCommand("PUBLISH", "news", "two")) == .integer(1))
        #expect(await next() == message("news", "two"))

        // The server itself goes and a new one comes on the same port.
        server.stop()
        guard case .disconnected? = await next() else { Issue.record("no disconnect event"); return }
        let again = try await RedisServerProcess(port: port)
        defer { again.stop() }
        #expect(await next() == .resubscribed)
        var delivered = RESPValue.integer(0)
        for _ in 0..<100 where delivered == .integer(0) {
            delivered = (try? await publisher.query(RedisCommand("SPUBLISH", "{room}:7", "three"))) ?? .integer(0)
            if delivered == .integer(0) { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(delivered == .integer(1))
        #expect(await next() == message("{room}:7", "three", sharded: true))

        // Unsubscribed channels stay gone.
        try await subscriber.unsubscribe(["news"]).get()
        #expect(try await publisher.query(RedisCommand("PUBLISH", "news", "four")) == .integer(0))
        running.cancel()
        await running.value
        await publisher.close()
    }
}
}

/// A server that accepts but never answers (stopped with SIGSTOP): connects and commands give up
/// after their timeouts instead of hanging, and the client recovers when it answers again.
extension RealRedis {
@Suite(.timeLimit(.minutes(3)))
struct RedisTimeoutTests {
    @Test func aHungServerTimesOutThenRecovers() async throws {
        let server = try await RedisServerProcess()
        defer { server.resume(); server.stop() }
        var config = server.configuration
        config.connectTimeout = .milliseconds(400)
        var options = RedisClient.Options()
        options.connections = 1
        options.commandTimeout = .milliseconds(400)
        options.reconnectBaseDelay = .milliseconds(20)
        options.reconnectMaxDelay = .milliseconds(100)
        let client = RedisClient(config, options: options)
        #expect(try await client.query(RedisCommand("PING")) == .simpleString("PONG"))
        server.pause()
        do {
            _ = try await client.query(RedisCommand("PING"))
            Issue.record("a paused server answered")
        } catch RedisError.timeout {
        } catch {
            Issue.record("expected a timeout, got \(error)")
        }
        // A new connection to the paused server: the TCP connect succeeds (the kernel accepts),
        // the handshake gets no answer and gives up.
        do {
            _ = try await RedisConnection.connect(config)
            Issue.record("a handshake with a paused server completed")
        } catch let RedisError.handshake(why) {
            #expect(why.contains("no answer to HELLO"), "\(why)")
        }
        server.resume()
        var reply: RESPValue?
        for _ in 0..<200 where reply == nil {
            reply = try? await client.query(RedisCommand("PING"))
            if reply == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(reply == .simpleString("PONG"))
        await client.close()
    }
}
}
