import Foundation
import NIOCore
import NIOSSL
import RelayRedis
import Synchronization
import Testing

/// `RedisConnection` against a real redis-server 7 (Debian's), each test with its own server.
extension RealRedis {
@Suite(.timeLimit(.minutes(3)))
struct RedisConnectionTests {
    private func bulk(_ s: String) -> RESPValue { .bulkString(ByteBuffer(string: s)) }

    @Test func commandsRepliesAndErrorsOverRESP3() async throws {
        let server = try await RedisServerProcess()
        defer { server.stop() }
        let redis = try await RedisConnection.connect(server.configuration)
        // HELLO 3 was negotiated: HELLO's own reply is a map with proto 3.
        let hello = try await redis.query(RedisCommand("HELLO", "3"))
        guard case .map(let fields) = hello else { Issue.record("HELLO: \(hello)"); return }
        #expect(fields.contains(RESPPair(bulk("proto"), .integer(3))))
        let binary = (0...255).map { UInt8($0) }
        #expect(try await redis.query(RedisCommand("SET", "k", .bytes(binary))) == .simpleString("OK"))
        #expect(try await redis.query(RedisCommand("GET", "k")).bytes == binary)
        #expect(try await redis.query(RedisCommand("GET", "missing")) == .null)
        #expect(try await redis.query(RedisCommand("HSET", "h", "f", "v")) == .integer(1))
        #expect(try await redis.query(RedisCommand("HGETALL", "h")) == .map([RESPPair(bulk("f"), bulk("v"))]))
        #expect(try await redis.query(RedisCommand("ZADD", "z", "1.5", "m")) == .integer(1))
        #expect(try await redis.query(RedisCommand("ZSCORE", "z", "m")) == .double(1.5))
        // An error reply is a value for `send` and a thrown error for `query`; the connection goes on.
        let wrong = try await redis.send(RedisCommand("INCR", "h"))
        guard case .error(let e) = wrong else { Issue.record("\(wrong)"); return }
        #expect(e.code == "WRONGTYPE")
        await #expect(throws: RedisError.self) { try await redis.query(RedisCommand("NOSUCHCOMMAND")) }
        #expect(try await redis.query(RedisCommand("PING")) == .simpleString("PONG"))
        await redis.close()
    }

    /// Every RESP3 type as the server itself sends it (`DEBUG PROTOCOL`), including an attribute
    /// (dropped) and a push before a reply (to `onPush`, the reply to the command).
    @Test func everyRESP3TypeFromTheServer() async throws {
        let server = try await RedisServerProcess(["--enable-debug-command", "yes"])
        defer { server.stop() }
        let pushes = Mutex<[RESPValue]>([])
        let redis = try await RedisConnection.connect(server.configuration, onPush: { v in pushes.withLock { $0.append(v) } })
        let expected: [(String, RESPValue)] = [
            ("string", bulk("Hello World")),
            ("integer", .integer(12345)),
            ("double", .double(3.141)),
            ("bignum", .bigNumber("1234567999999999999999999999999999999")),
            ("null", .null),
            ("array", .array([.integer(0), .integer(1), .integer(2)])),
            ("set", .set([.integer(0), .integer(1), .integer(2)])),
            ("map", .map([RESPPair(.integer(0), .boolean(false)), RESPPair(.integer(1), .boolean(true)), RESPPair(.integer(2), .boolean(false))])),
            ("attrib", bulk("Some real reply following the attribute")),
            ("push", bulk("Some real reply following the push reply")),
            ("verbatim", .verbatim(format: "txt", text: ByteBuffer(string: "This is a verbatim\nstring"))),
            ("true", .boolean(true)),
            ("false", .boolean(false)),
        ]
        let replies = try await redis.pipeline(expected.map { RedisCommand("DEBUG", "PROTOCOL", .string($0.0)) })
        for (i, (name, value)) in expected.enumerated() { #expect(replies[i] == value, "DEBUG PROTOCOL \(name)") }
        #expect(pushes.withLock { $0 } == [.push([bulk("server-cpu-usage"), .integer(42)])])
        await redis.close()
    }

    /// Commands in flight at once: one pipeline of 2,000 in one write, and 200 callers at once;
    /// every reply reaches its own caller.
    @Test func pipelinedAndConcurrentCommandsGetTheirOwnReplies() async throws {
        let server = try await RedisServerProcess()
        defer { server.stop() }
        let redis = try await RedisConnection.connect(server.configuration)
        let replies = try await redis.pipeline((0..<2000).map { _ in RedisCommand("INCR", "n") })
        #expect(replies == (1...2000).map { RESPValue.integer(Int64($0)) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    let key = "key:\(i)"
                    _ = try await redis.query(RedisCommand("SET", .string(key), .string("value \(i)")))
                    let got = try await redis.query(RedisCommand("GET", .string(key)))
                    #expect(got.string == "value \(i)")
                }
            }
            try await group.waitForAll()
        }
        await redis.close()
    }

    @Test func authenticationAndDatabase() async throws {
        let server = try await RedisServerProcess(["--requirepass", "s3cret-pass"])
        defer { server.stop() }
        var config = server.configuration
        // No password: the handshake fails with the server's reason, and never names the password.
        do {
            _ = try await RedisConnection.connect(config)
            Issue.record("connected without a password")
        } catch let RedisError.handshake(why) {
            #expect(why.contains("NOAUTH"), "\(why)")
        }
        config.password = "wrong"
        do {
            _ = try await RedisConnection.connect(config)
            Issue.record("connected with a wrong password")
        } catch let RedisError.handshake(why) {
            #expect(why.contains("WRONGPASS"), "\(why)")
            #expect(!why.contains("wrong"), "the password must not appear in the error: \(why)")
        }
        config.password = "s3cret-pass"
        config.database = 3
        let db3 = try await RedisConnection.connect(config)
        _ = try await db3.query(RedisCommand("SET", "only-in-3", "x"))
        config.database = 0
        let db0 = try await RedisConnection.connect(config)
        #expect(try await db0.query(RedisCommand("EXISTS", "only-in-3")) == .integer(0))
        #expect(try await db3.query(RedisCommand("EXISTS", "only-in-3")) == .integer(1))
        #expect(try await db0.query(RedisCommand("CLIENT", "GETNAME")) == bulk("relayd"))
        config.database = 99
        do {
            _ = try await RedisConnection.connect(config)
            Issue.record("SELECT 99 accepted")
        } catch let RedisError.handshake(why) {
            #expect(why.contains("SELECT 99"), "\(why)")
        }
        await db0.close()
        await db3.close()
    }

    /// Pub/sub on a RESP3 connection: the subscription completes with the server's confirmations,
    /// then messages arrive as pushes; ordinary commands work on the same connection meanwhile.
    @Test func subscriptionsDeliverMessagesAsPushes() async throws {
        let server = try await RedisServerProcess()
        defer { server.stop() }
        let (messages, sink) = AsyncStream.makeStream(of: RESPValue.self)
        let subscriber = try await RedisConnection.connect(server.configuration, onPush: { sink.yield($0) })
        let publisher = try await RedisConnection.connect(server.configuration)
        let confirmed = try await subscriber.subscription(.subscribe, ["news", "sports"]).get()
        #expect(confirmed == [.push([bulk("subscribe"), bulk("news"), .integer(1)]),
                              .push([bulk("subscribe"), bulk("sports"), .integer(2)])])
        let sharded = try await subscriber.subscription(.ssubscribe, ["{room}:1"]).get()
        #expect(sharded == [.push([bulk("ssubscribe"), bulk("{room}:1"), .integer(1)])])
        #expect(try await subscriber.query(RedisCommand("PING")) == .simpleString("PONG"))
        #expect(try await publisher.query(RedisCommand("PUBLISH", "news", .bytes([0, 1, 2]))) == .integer(1))
        #expect(try await publisher.query(RedisCommand("SPUBLISH", "{room}:1", "edit")) == .integer(1))
        #expect(try await publisher.query(RedisCommand("PUBLISH", "sports", "goal")) == .integer(1))
        var got: [RESPValue] = []
        for await m in messages {
            got.append(m)
            if got.count == 3 { break }
        }
        #expect(got == [.push([bulk("message"), bulk("news"), .bulkString(ByteBuffer(bytes: [0, 1, 2]))]),
                        .push([bulk("smessage"), bulk("{room}:1"), bulk("edit")]),
                        .push([bulk("message"), bulk("sports"), bulk("goal")])])
        let left = try await subscriber.subscription(.unsubscribe, ["news"]).get()
        #expect(left == [.push([bulk("unsubscribe"), bulk("news"), .integer(1)])])  // "sports" left (shard subscriptions count apart)
        #expect(try await publisher.query(RedisCommand("PUBLISH", "news", "late")) == .integer(0))
        await subscriber.close()
        await publisher.close()
    }

    /// A connection killed with a command in flight fails that command and every later one with
    /// `connectionClosed`, at once, instead of leaving callers waiting.
    @Test func aLostConnectionFailsWhatIsInFlight() async throws {
        let server = try await RedisServerProcess()
        defer { server.stop() }
        let victim = try await RedisConnection.connect(server.configuration)
        let killer = try await RedisConnection.connect(server.configuration)
        let id = try #require(try await victim.query(RedisCommand("CLIENT", "ID")).integer)
        let blocked = victim.send([RedisCommand("BLPOP", "never", "0")])
        #expect(try await killer.query(RedisCommand("CLIENT", "KILL", "ID", .integer(id))) == .integer(1))
        do {
            _ = try await blocked.get()
            Issue.record("BLPOP returned on a killed connection")
        } catch let RedisError.connectionClosed(why) {
            #expect(!why.isEmpty)
        }
        try await victim.closeFuture.get()
        await #expect(throws: RedisError.self) { try await victim.query(RedisCommand("PING")) }
        // The server going away does the same.
        let other = try await RedisConnection.connect(server.configuration)
        let pending = other.send([RedisCommand("BLPOP", "never", "0")])
        server.stop()
        await #expect(throws: RedisError.self) { try await pending.get() }
        await killer.close()
    }
}
}

extension RealRedis {
/// `rediss://`: RESP3 over TLS to a redis-server with a self-signed certificate.
@Suite(.timeLimit(.minutes(3)))
struct RedisTLSTests {
    @Test func commandsOverTLSWithTheServersCertificateTrusted() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redis-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        for _ in 0..<500 where openssl.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        #expect(openssl.terminationStatus == 0)
        let server = try await RedisServerProcess(tls: (cert, key))
        defer { server.stop() }

        var trusted = TLSConfiguration.makeClientConfiguration()
        trusted.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(cert))
        var config = server.configuration
        config.tls = trusted
        config.tlsServerName = "localhost"
        let redis = try await RedisConnection.connect(config)
        #expect(try await redis.query(RedisCommand("PING")) == .simpleString("PONG"))
        #expect(try await redis.query(RedisCommand("SET", "k", .bytes([0, 1, 2]))) == .simpleString("OK"))
        #expect(try await redis.query(RedisCommand("GET", "k")).bytes == [0, 1, 2])
        await redis.close()

        // The system's trust store does not know this certificate: refused, with the reason.
        var untrusted = server.configuration
        untrusted.tls = TLSConfiguration.makeClientConfiguration()
        untrusted.tlsServerName = "localhost"
        do {
            _ = try await RedisConnection.connect(untrusted)
            Issue.record("an untrusted certificate was accepted")
        } catch let error as RedisError {
            #expect("\(error)".lowercased().contains("certificate") || "\(error)".contains("handshake"), "\(error)")
        }
        // Plain RESP to the TLS port: no answer the handshake accepts.
        await #expect(throws: RedisError.self) {
            var plain = server.configuration
            plain.connectTimeout = .seconds(2)
            _ = try await RedisConnection.connect(plain)
        }
    }
}
}
