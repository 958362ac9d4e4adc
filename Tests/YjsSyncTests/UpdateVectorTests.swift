import Foundation
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// Known answers from the reference (§3-§4), all produced by Yjs 13.6 (and 13.5.43 / pycrdt where noted).
@Suite struct UpdateVectorTests {
    static let u0 = hex("01 01 01 00 04 01 01 74 02 61 62 00")
    static let u1 = hex("01 01 01 02 84 01 01 01 63 00")
    static let u2 = hex("01 01 01 03 84 01 02 02 64 65 00")
    static let full = hex("01 01 01 00 04 01 01 74 05 61 62 63 64 65 00")

    static let decodable: [String] = [
        "01 01 01 00 04 01 01 74 02 68 69 00",
        "01 01 01 02 84 01 01 01 21 00",
        "01 01 02 00 44 01 00 01 58 00",
        "00 02 02 01 01 01 01 01 00 01",
        "02 02 02 00 44 01 00 01 58 c1 01 00 01 01 01 02 01 00 01 01 01 74 01 84 01 00 02 69 21 02 02 01 01 01 01 01 00 01",
        "01 01 05 00 28 01 01 6d 01 6b 01 77 01 76 00",
        "01 01 05 01 a8 05 00 01 7d 2a 01 05 01 00 01",
        "01 02 05 00 21 01 01 6d 01 6b 01 a8 05 00 01 7d 2a 01 05 01 00 01",
        "01 02 03 00 07 01 0b 70 72 6f 73 65 6d 69 72 72 6f 72 03 01 70 07 00 03 00 06 00",
        "01 01 03 02 04 00 03 01 02 6f 6b 00",
        "01 01 03 04 28 00 03 00 01 61 01 77 01 62 00",
        "01 03 04 00 06 01 01 74 04 62 6f 6c 64 04 74 72 75 65 84 04 00 01 62 86 04 01 04 62 6f 6c 64 04 6e 75 6c 6c 00",
        "01 01 04 03 85 04 02 0d 7b 22 69 6d 61 67 65 22 3a 22 78 22 7d 00",
        "01 02 06 00 08 01 01 61 02 7d 01 77 01 78 83 06 01 01 09 00",
        "01 01 07 00 29 01 01 6d 02 73 64 02 67 31 76 00 00",
        "01 02 08 00 01 01 01 61 01 00 01 01 08 01 00 02",
        "01 01 04 00 01 01 01 74 03 01 04 01 00 03",
        "01 01 01 00 04 01 01 74 05 f0 9f 98 80 61 00",
        "01 01 01 00 02 01 01 61 02 03 22 78 22 01 31 00",
    ]

    @Test func referenceUpdatesDecode() throws {
        for h in Self.decodable { try YUpdate.validate(hex(h)) }
    }

    @Test func stateVectors() throws {
        #expect(try YUpdate.encodeStateVector(fromUpdate: Self.u2) == hex("00"))
        let m02 = try YUpdate.merge([Self.u0, Self.u2])
        #expect(try YUpdate.encodeStateVector(fromUpdate: m02) == hex("01 01 02"))
        #expect(try YUpdate.encodeStateVector(fromUpdate: Self.full) == hex("01 01 05"))
        // emoji: "😀a" is 3 units
        #expect(try YUpdate.stateVector(of: hex("01 01 01 00 04 01 01 74 05 f0 9f 98 80 61 00")) == StateVector([1: 3]))
        #expect(try YUpdate.encodeStateVector(fromUpdate: YUpdate.empty) == hex("00"))
    }

    @Test func diffs() throws {
        #expect(try YUpdate.diff(Self.full, against: StateVector([1: 1])) == hex("01 01 01 01 84 01 00 04 62 63 64 65 00"))
        let m = try YUpdate.merge([Self.u0, Self.u1, Self.u2])
        #expect(try YUpdate.diff(m, against: StateVector([1: 1])) == hex("01 03 01 01 84 01 00 01 62 84 01 01 01 63 84 01 02 02 64 65 00"))
        #expect(try YUpdate.diff(Self.full, against: StateVector([1: 5])) == hex("00 00"))
        // surrogate pair split: "a😀b" with SV {9:2} gives "\u{FFFD}b"
        var e = Lib0Encoder()
        e.writeRaw(hex("01 01 09 00 04 01 01 74")); e.writeVarString("a😀b"); e.writeUInt8(0)
        #expect(try YUpdate.diff(e.bytes, against: StateVector([9: 2])) == hex("01 01 09 02 84 09 01 04 ef bf bd 62 00"))
        // map overwrite: the 0x20 flag is dropped when an origin exists
        let over = hex("01 01 05 01 a8 05 00 01 7d 2a 01 05 01 00 01")
        #expect(try YUpdate.diff(over, against: StateVector()) == hex("01 01 05 01 88 05 00 01 7d 2a 01 05 01 00 01"))
    }

    @Test func merges() throws {
        #expect(try YUpdate.merge([Self.u0, Self.u1, Self.u2]) == hex("01 03 01 00 04 01 01 74 02 61 62 84 01 01 01 63 84 01 02 02 64 65 00"))
        #expect(try YUpdate.merge([Self.u0, Self.u2]) == hex("01 03 01 00 04 01 01 74 02 61 62 0a 01 84 01 02 02 64 65 00"))
        #expect(try YUpdate.merge([Self.u2, Self.u0]) == hex("01 03 01 00 04 01 01 74 02 61 62 0a 01 84 01 02 02 64 65 00"))
        #expect(try YUpdate.merge([Self.u0, Self.u0]) == Self.u0)
        #expect(try YUpdate.merge([Self.u0, Self.full]) == hex("01 02 01 00 04 01 01 74 02 61 62 84 01 01 03 63 64 65 00"))
        #expect(try YUpdate.merge([Self.full, Self.u1]) == Self.full)
        let a = hex("01 01 03 00 04 01 01 74 06 61 62 63 64 65 66 00")
        let b = hex("00 01 03 01 01 01")
        let c = hex("00 01 03 01 03 01")
        #expect(try YUpdate.merge([a, b, c]) == hex("01 01 03 00 04 01 01 74 06 61 62 63 64 65 66 01 03 02 01 01 03 01"))
        #expect(try YUpdate.merge([b, c]) == hex("00 01 03 02 01 01 03 01"))
        #expect(try YUpdate.merge([]) == YUpdate.empty)
    }

    @Test func hostileUpdatesThrow() {
        let bad = [
            "", "01", "01 01 01 00", "01 01 01 00 04 01 01 74 05 61 62 00",  // string length beyond input
            "01 01 01 00 0b 01 00", // unknown content ref 11
            "01 01 01 00 8a 01 00 01 00", // ref 10 with origin flag
            "01 01 01 00 07 01 01 74 07 00", // typeRef 7 (yrs WeakLink)
            "01 01 01 00 01 01 01 74 00 00", // zero-length Deleted
            "01 01 01 00 04 02 00", // parent info 2
            "ff ff ff ff 0f", // 2^32-1 blocks
            "01 80 80 80 80 80 20 01 00", // 2^40 structs
            "00 01 01 80 80 80 80 80 20", // 2^40 delete ranges
            "01 01 01 ff ff ff ff ff ff ff 0f 00 02 00", // clock overflow 2^53
        ]
        for h in bad {
            #expect(throws: YjsDecodingError.self, "\(h)") { try YUpdate.validate(hex(h)) }
        }
    }
}

@Suite struct InspectTests {
    @Test func inspectsUpdatesAndMessages() throws {
        let json = try YUpdate.inspect(hex("01 03 04 00 06 01 01 74 04 62 6f 6c 64 04 74 72 75 65 84 04 00 01 62 86 04 01 04 62 6f 6c 64 04 6e 75 6c 6c 00"))
        #expect(json.contains("\"kind\": \"Format\", \"length\": 1, \"parent\": \"t\", \"key\": \"bold\", \"value\": \"true\""))
        #expect(json.contains("{\"clock\": 1, \"kind\": \"String\", \"length\": 1, \"origin\": [4, 0], \"content\": \"b\"}"))
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect((parsed?["clients"] as? [Any])?.count == 1)
        let m = try YUpdate.inspect(message: hex("00 00 03 01 01 02"))
        #expect(m == "{\"type\": \"syncStep1\", \"stateVector\": {\"1\": 2}}\n")
        let a = try YUpdate.inspect(message: hex("01 10 01 01 01 0c 7b 22 75 73 65 72 22 3a 22 61 22 7d"))
        #expect(a.contains("\"state\": \"{\\\"user\\\":\\\"a\\\"}\""))
    }
}

/// Update format v2 known answers (reference §5) and fuzzing of the v2 decoder.
@Suite struct UpdateV2Tests {
    static let hiV2 = hex("00 00 01 01 00 00 01 04 06 03 74 68 69 01 02 01 01 00 00 01 01 00 00")
    static let emptyV2 = hex("00 00 00 00 00 00 01 00 00 00 00 00 00")

    @Test func knownAnswers() throws {
        #expect(try UpdateV2.toV1(Self.hiV2) == hex("01 01 01 00 04 01 01 74 02 68 69 00"))
        #expect(try UpdateV2.toV1(Self.emptyV2) == YUpdate.empty)
    }

    @Test func fuzzedV2NeverTraps() {
        var rng = SeededRNG(seed: 5)
        var decoded = 0
        for _ in 0..<4000 {
            var s = Bool.random(using: &rng) ? Self.hiV2 : Self.emptyV2
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<s.count, using: &rng)
                s[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            }
            if Bool.random(using: &rng) { s = Array(s.prefix(Int.random(in: 0...s.count, using: &rng))) }
            if let v1 = try? UpdateV2.toV1(s) {
                decoded += 1
                // whatever converts must be a valid v1 update
                #expect((try? YUpdate.validate(v1)) != nil, "\(hexString(s))")
            }
        }
        #expect(decoded > 50)
    }
}
