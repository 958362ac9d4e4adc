import NIOCore
import RelayRedis
import Testing

@Suite struct RESPCodecTests {
    private func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }
    private func bulk(_ s: String) -> RESPValue { .bulkString(ByteBuffer(string: s)) }

    private func decodeAll(_ s: String, limits: RESPDecoder.Limits = .init()) throws -> [RESPValue] {
        var b = buffer(s)
        var out: [RESPValue] = []
        while b.readableBytes > 0, let v = try RESPDecoder(limits: limits).decode(&b) { out.append(v) }
        #expect(b.readableBytes == 0, "left over: \(String(buffer: b))")
        return out
    }

    /// Every RESP3 type, as the specification writes them.
    static let examples: [(String, RESPValue)] = [
        ("+OK\r\n", .simpleString("OK")),
        ("-ERR unknown command 'FOO'\r\n", .error(RedisServerError("ERR unknown command 'FOO'"))),
        (":1000\r\n", .integer(1000)),
        (":-9223372036854775808\r\n", .integer(.min)),
        (":9223372036854775807\r\n", .integer(.max)),
        ("$5\r\nhello\r\n", .bulkString(ByteBuffer(string: "hello"))),
        ("$0\r\n\r\n", .bulkString(ByteBuffer())),
        ("$-1\r\n", .null),
        ("*-1\r\n", .null),
        ("_\r\n", .null),
        (",1.23\r\n", .double(1.23)),
        (",-1e10\r\n", .double(-1e10)),
        (",inf\r\n", .double(.infinity)),
        (",-inf\r\n", .double(-.infinity)),
        ("#t\r\n", .boolean(true)),
        ("#f\r\n", .boolean(false)),
        ("(3492890328409238509324850943850943825024385\r\n", .bigNumber("3492890328409238509324850943850943825024385")),
        ("!21\r\nSYNTAX invalid syntax\r\n", .error(RedisServerError("SYNTAX invalid syntax"))),
        ("=15\r\ntxt:Some string\r\n", .verbatim(format: "txt", text: ByteBuffer(string: "Some string"))),
        ("*3\r\n:1\r\n$1\r\nb\r\n*1\r\n#t\r\n", .array([.integer(1), .bulkString(ByteBuffer(string: "b")), .array([.boolean(true)])])),
        ("*0\r\n", .array([])),
        ("~2\r\n+a\r\n+b\r\n", .set([.simpleString("a"), .simpleString("b")])),
        ("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", .map([RESPPair(.simpleString("first"), .integer(1)),
                                                          RESPPair(.simpleString("second"), .integer(2))])),
        (">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n", .push([.simpleString("message"), .simpleString("ch"), .bulkString(ByteBuffer(string: "hi"))])),
        // An attribute is dropped; the value after it is the reply.
        ("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2\r\n", .array([.integer(2)])),
    ]

    @Test func decodesEveryType() throws {
        for (wire, value) in Self.examples {
            let got = try decodeAll(wire)
            #expect(got == [value], "\(wire.debugDescription)")
        }
        if case .double(let d)? = try decodeAll(",nan\r\n").first { #expect(d.isNaN) } else { Issue.record("nan") }
    }

    /// A value split anywhere is not returned, and nothing is consumed, until its last byte.
    @Test func incompleteValuesWaitForTheirLastByte() throws {
        let decoder = RESPDecoder()
        for (wire, value) in Self.examples {
            let bytes = Array(wire.utf8)
            for cut in 0..<bytes.count {
                var b = ByteBuffer(bytes: bytes[0..<cut])
                #expect(try decoder.decode(&b) == nil, "\(wire.debugDescription) cut at \(cut)")
                #expect(b.readableBytes == cut)
                b.writeBytes(bytes[cut...])
                #expect(try decoder.decode(&b) == value)
                #expect(b.readableBytes == 0)
            }
        }
    }

    @Test func pipelinedRepliesDecodeInOrder() throws {
        let wire = Self.examples.map(\.0).joined()
        #expect(try decodeAll(wire) == Self.examples.map(\.1))
    }

    @Test func binaryBulkStringsKeepEveryByte() throws {
        var b = ByteBuffer(string: "$256\r\n")
        b.writeBytes((0...255).map { UInt8($0) })
        b.writeString("\r\n")
        let v = try #require(try RESPDecoder().decode(&b))
        #expect(v.bytes == (0...255).map { UInt8($0) })
    }

    @Test func malformedRepliesAreProtocolErrors() throws {
        var small = RESPDecoder.Limits()
        small.maxBulkBytes = 10
        small.maxAggregateCount = 4
        small.maxDepth = 3
        small.maxLineBytes = 24
        let cases: [(String, String)] = [
            ("?\r\n", "unknown type"),
            (":12a\r\n", "not a number"),
            (":\r\n", "empty"),
            (":9223372036854775808\r\n", "out of range"),
            (":-9223372036854775809\r\n", "out of range"),
            ("$-2\r\n", "negative length"),
            ("$11\r\nhello world\r\n", "over the limit"),
            ("$3\r\nabcde\r\n", "not followed by CRLF"),
            ("*5\r\n", "over the limit"),
            ("%3\r\n", "over the limit"),
            ("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "deeper"),
            ("|1\r\n+a\r\n+b\r\n|1\r\n+a\r\n+b\r\n|1\r\n+a\r\n+b\r\n|1\r\n+a\r\n+b\r\n:1\r\n", "deeper"),
            ("#x\r\n", "boolean"),
            (",0x1p3\r\n", "double"),
            (",1 \r\n", "double"),
            ("(12a\r\n", "big number"),
            ("_x\r\n", "null with content"),
            ("=2\r\nab\r\n", "verbatim"),
            ("=5\r\ntxtab\r\n", "verbatim"),
            ("!-1\r\n", "length -1"),
            ("~-1\r\n", "length -1"),
            ("$?\r\n", "streamed"),
            ("*?\r\n", "streamed"),
            ("+OK\rX\n", "CR not followed by LF"),
            ("+0123456789abcdef0123456789", "line longer"),
        ]
        for (wire, reason) in cases {
            var b = buffer(wire)
            do {
                let v = try RESPDecoder(limits: small).decode(&b)
                Issue.record("\(wire.debugDescription): decoded \(String(describing: v)), expected \(reason)")
            } catch {
                #expect(error.reason.contains(reason), "\(wire.debugDescription): \(error.reason)")
            }
        }
    }

    @Test func commandsEncodeAsArraysOfBulkStrings() {
        var b = ByteBuffer()
        RedisCommand("SET", "key", .bytes([0, 13, 10, 255]), .integer(-42)).write(into: &b)
        #expect(Array(b.readableBytesView) == Array("*4\r\n$3\r\nSET\r\n$3\r\nkey\r\n$4\r\n".utf8) + [0, 13, 10, 255]
            + Array("\r\n$3\r\n-42\r\n".utf8))
        var e = ByteBuffer()
        RedisCommand("É", .string("ü")).write(into: &e)  // lengths count UTF-8 bytes
        #expect(String(buffer: e) == "*2\r\n$2\r\nÉ\r\n$2\r\nü\r\n")
        #expect(RedisCommand("AUTH", "user", "secret").description == "AUTH (2 arguments)")
    }

    /// What the encoder writes, the decoder reads back (a command is an array of bulk strings).
    @Test func encodedCommandsDecode() throws {
        var b = ByteBuffer()
        RedisCommand("EVALSHA", "abc", 1, .buffer(ByteBuffer(string: "k")), .bytes([])).write(into: &b)
        #expect(try RESPDecoder().decode(&b) == .array([bulk("EVALSHA"), bulk("abc"), bulk("1"), bulk("k"), bulk("")]))
    }
}

@Suite struct RedisURLTests {
    @Test func urlsParse() throws {
        let plain = try RedisConfiguration(url: "redis://127.0.0.1")
        #expect(plain.host == "127.0.0.1" && plain.port == 6379 && plain.database == 0 && plain.password == nil && plain.tls == nil)
        let full = try RedisConfiguration(url: "rediss://relay:p%40ss%3Aword@redis.example:6380/3")
        #expect(full.host == "redis.example" && full.port == 6380 && full.database == 3)
        #expect(full.username == "relay" && full.password == "p@ss:word" && full.tls != nil)
        let passwordOnly = try RedisConfiguration(url: "redis://:secret@[::1]:7000")
        #expect(passwordOnly.host == "::1" && passwordOnly.port == 7000 && passwordOnly.username == nil && passwordOnly.password == "secret")
        for bad in ["http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x", "redis://[::1"] {
            #expect(throws: (any Error).self, "\(bad)") { try RedisConfiguration(url: bad) }
        }
    }
}
