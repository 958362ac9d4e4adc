import Foundation
import Testing
@testable import YjsCodec

/// The v2 encoder (`UpdateV2.fromV1`) against Yjs's own v2: a document's v1 state converted by
/// Swift must be the bytes Yjs's `encodeStateAsUpdateV2` writes for that document.
@Suite(.serialized) struct V2EncoderTests {
    /// Byte for byte, except the delete set, whose clients Debian's Yjs 13.5.43 writes in
    /// insertion order (Swift writes them descending, as Yjs ≥ 13.5.47): everything before it
    /// must be identical, and the delete sets equal.
    static func sameV2(_ v1: [UInt8], _ yjsV2: [UInt8]) throws -> Bool {
        let (ours, start) = try UpdateV2.encodeV2(v1)
        if ours == yjsV2 { return true }
        guard ours.count == yjsV2.count, ours.prefix(start) == yjsV2.prefix(start) else { return false }
        return try YUpdate.deleteSet(of: UpdateV2.toV1(ours)) == YUpdate.deleteSet(of: UpdateV2.toV1(yjsV2))
    }

    /// 300 seeded Yjs sessions (gen-sessions.js: text with formats and embeds, arrays of `any`
    /// and binaries, maps, nested types, XML, GC on and off): every document's
    /// `encodeStateAsUpdate` converted to v2 is its `encodeStateAsUpdateV2`; and every v1 state
    /// and update converts to v2 and back to the same structs and delete set.
    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func statesMatchYjsV2() throws {
        guard let sessions = try YjsOracleTests.sessions() else { return }
        var checked = 0, bad: [String] = [], roundTrips = 0, badRoundTrips: [String] = []
        var exactDeleteSets = 0
        for s in sessions {
            let states = s.states.map { [UInt8](hexString: $0) }
            let yjsStates = s.v2.suffix(states.count).map { [UInt8](hexString: $0.v2) }
            for (v1, v2) in zip(states, yjsStates) {
                if try Self.sameV2(v1, v2) { checked += 1 } else { bad.append("seed \(s.seed)") }
                if try UpdateV2.fromV1(v1) == v2 { exactDeleteSets += 1 }
            }
            for u in states + s.updates.map({ [UInt8](hexString: $0) }) {
                roundTrips += 1
                // compared as decoded (the v2 → v1 conversion drops the parentSub flag of items
                // with an origin, as Yjs's convertUpdateFormatV2ToV1 does; nothing reads it)
                if try YUpdate.inspect(UpdateV2.toV1(UpdateV2.fromV1(u))) != YUpdate.inspect(u) { badRoundTrips.append("seed \(s.seed)") }
            }
        }
        print("v2 encoder: \(checked) document states as Yjs writes them (\(exactDeleteSets) byte for byte including the delete set's client order), \(roundTrips) v1 → v2 → v1 round trips")
        #expect(checked >= YjsOracleTests.sessionCount)
        #expect(bad.isEmpty, "\(bad.count) states differ from Yjs's v2, e.g. \(bad.prefix(5))")
        #expect(badRoundTrips.isEmpty, "\(badRoundTrips.count) v1 → v2 → v1 round trips differ, e.g. \(badRoundTrips.prefix(5))")
    }

    /// Every editing trace: the v1 state Yjs wrote, converted, is its `encodeStateAsUpdateV2`.
    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"), arguments: GarbageCollectionTests.traces)
    func traceStatesMatchYjsV2(_ name: String) throws {
        guard let replay = try GarbageCollectionTests.replay(name), let v2 = replay.stateV2 else { return }
        let state = [UInt8](hexString: replay.state), yjsV2 = [UInt8](hexString: v2)
        #expect(try Self.sameV2(state, yjsV2), "\(name): v2 differs from Yjs's encodeStateAsUpdateV2")
        print("trace \(name): v1 state \(state.count) B, v2 \(yjsV2.count) B, identical: \(try UpdateV2.fromV1(state) == yjsV2)")
    }

    /// Hand-checked columns: two runs of one value in `UintOptRleEncoder` (−0 for 0), a single
    /// value, and `IntDiffOptRleEncoder`'s runs of equal differences.
    @Test func rleColumns() {
        var u = UintOptRleEncoder()
        for v: UInt64 in [0, 0, 0, 5, 7, 7] { u.write(v) }
        #expect(u.finish() == [0x40, 0x01, 0x05, 0x47, 0x00])
        var d = IntDiffOptRleEncoder()
        for v: UInt64 in [1, 2, 3, 10] { d.write(v) }
        #expect(d.finish() == [0x03, 0x01, 0x0E])
        var r = RleUInt8Encoder()
        for v: UInt8 in [4, 4, 4, 0x84] { r.write(v) }
        #expect(r.e.bytes == [4, 2, 0x84])
    }
}
