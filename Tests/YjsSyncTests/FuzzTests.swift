import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// Seeded, bounded fuzzing of every decoder: truncated, bit-flipped and random inputs must throw
/// `YjsDecodingError` or decode, never trap; whatever validates must also merge, diff and
/// re-encode consistently.
@Suite struct FuzzTests {
    static let seeds: [[UInt8]] = UpdateVectorTests.decodable.map(hex) + [
        UpdateVectorTests.full, hex("01 01 09 00 04 01 01 74 08 61 f0 9f 98 80 62 e4 b8"),  // truncated on purpose
    ]

    /// Exercises all update-level operations on `u`; checks consistency when it validates.
    static func exercise(_ input: [UInt8], _ other: [UInt8]) -> Bool {
        // Yjs's merge assumes descending client blocks; others are canonicalized first (as the
        // store does). Non-canonical input still must not trap.
        _ = try? YUpdate.merge([input, other])
        let u = (try? YUpdate.canonicalized(input)) ?? input
        if (try? YUpdate.validate(input)) != nil {
            guard (try? YUpdate.stateVector(of: u)) == (try? YUpdate.stateVector(of: input)) else { return false }
        }
        var valid = true
        do { try YUpdate.validate(u) } catch { valid = false }
        let sv = try? YUpdate.stateVector(of: u)
        let d = try? YUpdate.diff(u, against: StateVector([1: 1, 3: 2, 9: 2]))
        let m = try? YUpdate.merge([u, other])
        let m3 = try? YUpdate.merge([other, u, u])
        _ = try? KnownState.ranges(of: u)
        _ = try? ProtocolMessage(decoding: u)
        _ = try? AwarenessUpdate(decoding: u)
        _ = try? StateVector(decoding: u)
        _ = try? UpdateV2.toV1(u)
        if valid {
            // a valid update must be fully processable, and the results must themselves validate
            guard let sv, let d, let m, let m3 else { return false }
            guard (try? YUpdate.validate(d)) != nil, (try? YUpdate.validate(m)) != nil, (try? YUpdate.validate(m3)) != nil else { return false }
            // merging with itself changes nothing semantically: same state vector
            guard let mm = try? YUpdate.merge([u, u]), (try? YUpdate.stateVector(of: mm)) == sv else { return false }
        }
        return true
    }

    @Test func truncatedInputs() {
        let other = UpdateVectorTests.u1
        var inconsistent = 0
        for s in Self.seeds {
            for n in 0..<s.count where !Self.exercise(Array(s.prefix(n)), other) { inconsistent += 1 }
        }
        #expect(inconsistent == 0)
    }

    @Test func bitFlippedInputs() {
        var rng = SeededRNG(seed: 42)
        var inconsistent = 0, validCount = 0
        for _ in 0..<4000 {
            var s = Self.seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<s.count, using: &rng)
                s[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            }
            if (try? YUpdate.validate(s)) != nil { validCount += 1 }
            if !Self.exercise(s, UpdateVectorTests.u0) {
                inconsistent += 1
                print("inconsistent: \(hexString(s))")
            }
        }
        #expect(inconsistent == 0)
        #expect(validCount > 100)  // the mutations reach the deeper decoding paths
    }

    @Test func randomInputs() {
        var rng = SeededRNG(seed: 7)
        var inconsistent = 0
        for _ in 0..<4000 {
            let n = Int.random(in: 0..<64, using: &rng)
            var s = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !s.isEmpty && Bool.random(using: &rng) { s[0] = UInt8.random(in: 0...3, using: &rng) }  // plausible headers
            if !Self.exercise(s, UpdateVectorTests.u2) { inconsistent += 1 }
        }
        #expect(inconsistent == 0)
    }

    @Test func hugeLengthPrefixesThrowWithoutAllocating() {
        // varUint 2^40 as a count/length in every position that reads one
        let big = hex("80 80 80 80 80 20")
        let inputs: [[UInt8]] = [
            big + [0], [1] + big + [1, 0], hex("01 01 01 00 04 01 01") + big, hex("01 01 01 00 08 01 01 74") + big,
            hex("01 01 01 00 03 01 01 74") + big, [0] + big, [0x00, 0x00] + big, [0x01] + big,
        ]
        for u in inputs {
            #expect(throws: YjsDecodingError.self) { try YUpdate.validate(u) }
            #expect(throws: YjsDecodingError.self) { try StateVector(decoding: u) }
        }
        #expect(throws: YjsDecodingError.self) { try AwarenessUpdate(decoding: big + [1, 1, 0]) }
    }
}

extension FuzzTests {
    /// Mutated updates thrown at a store: each is rejected with a typed error or accepted, and the
    /// incrementally kept state vector always equals the state vector of the store's merged state.
    @Test func storeSurvivesMutatedUpdates() throws {
        var rng = SeededRNG(seed: 1234)
        var o = DocumentStoreOptions()
        o.foldMinPending = 3
        o.foldRatio = 0
        let store = DocumentStore(persistence: InMemoryPersistence(), options: o)
        var accepted = 0
        for i in 0..<2000 {
            var s = Self.seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 0...2, using: &rng) {
                let k = Int.random(in: 0..<s.count, using: &rng)
                s[k] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            }
            do {
                if try store.applyUpdate(room: "fuzz", update: s).changed { accepted += 1 }
            } catch is DocumentStoreError {
            }
            if i % 100 == 99 {
                let state = try store.encodedState(room: "fuzz")
                try YUpdate.validate(state)
                #expect(try YUpdate.stateVector(of: state) == store.stateVector(room: "fuzz"))
            }
        }
        #expect(accepted > 20)
    }
}
