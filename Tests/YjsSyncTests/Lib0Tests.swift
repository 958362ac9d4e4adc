import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// Known answers from the reference (§1), produced by lib0/Yjs.
@Suite struct Lib0Tests {
    static let varUints: [(UInt64, String)] = [
        (0, "00"), (1, "01"), (127, "7f"), (128, "80 01"), (255, "ff 01"), (300, "ac 02"),
        (16383, "ff 7f"), (16384, "80 80 01"), (4294967295, "ff ff ff ff 0f"),
        (4294967296, "80 80 80 80 10"), ((1 << 53) - 1, "ff ff ff ff ff ff ff 0f"),
    ]

    @Test func varUintVectors() throws {
        for (v, h) in Self.varUints {
            var e = Lib0Encoder()
            e.writeVarUInt(v)
            #expect(e.bytes == hex(h), "encode \(v)")
            var d = Lib0Decoder(hex(h))
            #expect(try d.readVarUInt() == v)
            #expect(d.isAtEnd)
        }
    }

    @Test func varUintRejectsOverflowTruncationAndLongPadding() throws {
        // 2^53 is out of range.
        var d = Lib0Decoder(hex("80 80 80 80 80 80 80 10"))
        #expect(throws: YjsDecodingError.integerOutOfRange(offset: 0)) { try d.readVarUInt() }
        // A huge length 2^40 as a count must throw, not allocate.
        var d2 = Lib0Decoder(hex("80 80 80 80 80 20 00"))
        #expect(throws: YjsDecodingError.self) { try d2.readCount() }
        var d3 = Lib0Decoder(hex("80 80"))
        #expect(throws: YjsDecodingError.unexpectedEnd(offset: 2)) { try d3.readVarUInt() }
        // non-minimal accepted
        var d4 = Lib0Decoder(hex("80 00"))
        #expect(try d4.readVarUInt() == 0)
        // more than 10 bytes of zero padding rejected
        var d5 = Lib0Decoder([UInt8](repeating: 0x80, count: 11) + [0])
        #expect(throws: YjsDecodingError.integerOutOfRange(offset: 0)) { try d5.readVarUInt() }
    }

    @Test func varIntVectors() throws {
        let cases: [(Int64, Bool, String)] = [
            (0, false, "00"), (0, true, "40"), (1, false, "01"), (-1, false, "41"), (63, false, "3f"),
            (-63, false, "7f"), (64, false, "80 01"), (-64, false, "c0 01"), (100, false, "a4 01"),
            (-100, false, "e4 01"), (8191, false, "bf 7f"), (8192, false, "80 80 01"),
            (-8192, false, "c0 80 01"), (2147483647, false, "bf ff ff ff 0f"), (-2147483648, false, "c0 80 80 80 10"),
        ]
        for (v, negZero, h) in cases {
            var e = Lib0Encoder()
            if negZero { e.writeVarInt(magnitude: 0, negative: true) } else { e.writeVarInt(v) }
            #expect(e.bytes == hex(h), "encode \(v)")
            var d = Lib0Decoder(hex(h))
            let (m, neg) = try d.readVarIntSignMagnitude()
            #expect(m == v.magnitude)
            #expect(neg == (v < 0 || negZero))
        }
    }

    @Test func stringsAndUTF8() throws {
        let cases: [(String, String)] = [("", "00"), ("a", "01 61"), ("é", "02 c3 a9"), ("😀", "04 f0 9f 98 80")]
        for (s, h) in cases {
            var e = Lib0Encoder()
            e.writeVarString(s)
            #expect(e.bytes == hex(h))
            var d = Lib0Decoder(hex(h))
            #expect(try d.readVarString() == s)
        }
        // encoded surrogate (ed a0 80), overlong (c0 80), truncated sequence: rejected
        for bad in ["03 ed a0 80", "02 c0 80", "01 e2", "04 f4 90 80 80"] {
            var d = Lib0Decoder(hex(bad))
            #expect(throws: YjsDecodingError.self) { try d.readVarString() }
        }
        // length beyond input
        var d = Lib0Decoder(hex("05 61"))
        #expect(throws: YjsDecodingError.lengthExceedsInput(offset: 0)) { try d.readVarBytes() }
    }

    @Test func anyVectors() throws {
        let cases: [(Lib0Any, String)] = [
            (.undefined, "7f"), (.null, "7e"), (.integer(0), "7d 00"), (.integer(1), "7d 01"), (.integer(-1), "7d 41"),
            (.integer(2147483647), "7d bf ff ff ff 0f"), (.float32(2147483648), "7c 4f 00 00 00"),
            (.float32(-2147483648), "7c cf 00 00 00"), (.float32(1.5), "7c 3f c0 00 00"),
            (.float64(0.1), "7b 3f b9 99 99 99 99 99 9a"), (.float64(1e40), "7b 48 3d 63 29 f1 c3 5c a5"),
            (.float32(.infinity), "7c 7f 80 00 00"), (.bigint(10), "7a 00 00 00 00 00 00 00 0a"),
            (.bigint(-1), "7a ff ff ff ff ff ff ff ff"), (.bool(true), "78"), (.bool(false), "79"),
            (.string("ab"), "77 02 61 62"), (.object([.init(key: "a", value: .integer(1))]), "76 01 01 61 7d 01"),
            (.array([.integer(1), .string("x")]), "75 02 7d 01 77 01 78"), (.bytes([1, 2]), "74 02 01 02"),
        ]
        for (v, h) in cases {
            var e = Lib0Encoder()
            e.writeAny(v)
            #expect(e.bytes == hex(h), "encode \(v)")
            var d = Lib0Decoder(hex(h))
            #expect(try d.readAny() == v)
            var s = Lib0Decoder(hex(h))
            try s.skipAny()
            #expect(s.isAtEnd)
        }
        // NaN: float64 per lib0
        var e = Lib0Encoder()
        e.writeAny(Lib0Any.jsNumber(.nan))
        #expect(e.bytes == hex("7b 7f f8 00 00 00 00 00 00"))
        // JS number choice
        #expect(Lib0Any.jsNumber(2147483648) == .float32(2147483648))
        #expect(Lib0Any.jsNumber(0.1) == .float64(0.1))
        #expect(Lib0Any.jsNumber(-5) == .integer(-5))
        // unknown tag, deep nesting rejected
        var bad = Lib0Decoder(hex("73"))
        #expect(throws: YjsDecodingError.invalidAny(offset: 0)) { try bad.skipAny() }
        let deep: [UInt8] = [UInt8](repeating: 0x75, count: 1000).flatMap { [$0, UInt8(1)] } + [0x7e]
        var dd = Lib0Decoder(deep)
        #expect(throws: YjsDecodingError.self) { try dd.skipAny() }
    }
}
