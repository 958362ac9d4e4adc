import Foundation
import Testing
import YjsCodec

/// Bugs found by the libFuzzer targets in Fuzz/ (each input is kept in Fuzz/regressions/<target>/).
@Suite("Fuzz regressions (YjsCodec)")
struct YjsFuzzRegressionTests {
    /// A v1 update with no structs and a delete set of one client with the given ranges.
    func deleteSetOnly(_ ranges: [(UInt64, UInt64)]) -> [UInt8] {
        var e = Lib0Encoder()
        e.writeVarUInt(0)  // no struct blocks
        e.writeVarUInt(1)  // one client
        e.writeVarUInt(7)
        e.writeVarUInt(UInt64(ranges.count))
        for (clock, length) in ranges { e.writeVarUInt(clock); e.writeVarUInt(length) }
        return e.bytes
    }

    /// FuzzYjsMerge/delete-range-past-2-53: a delete range was read without checking that it ends
    /// at or below 2^53 − 1 (structs were checked). Such an update validated, and merging it
    /// coalesced ranges into one whose length exceeds 2^53 − 1: a merged update (what a room
    /// stores) that no decoder reads back.
    @Test("A delete range must end at or below 2^53 − 1, like a struct")
    func deleteRangePast2to53() throws {
        let max = lib0MaxSafeInteger
        #expect(throws: YjsDecodingError.self) { try YUpdate.validate(deleteSetOnly([(max, 101)])) }
        #expect(throws: YjsDecodingError.self) { try YUpdate.validate(deleteSetOnly([(15360, max)])) }
        #expect(throws: YjsDecodingError.self) { try YUpdate.merge([deleteSetOnly([(0, 8), (15360, max)]), YUpdate.empty]) }
        // Up to the limit is fine, and merges into an update that validates.
        let edge = deleteSetOnly([(0, 8), (8, max - 8)])
        try YUpdate.validate(edge)
        let merged = try YUpdate.merge([edge, deleteSetOnly([(4, 100)])])
        try YUpdate.validate(merged)
        #expect(try YUpdate.deleteSet(of: merged) == DeleteSet([7: [DeleteRange(clock: 0, length: max)]]))
    }

    /// FuzzYjsGC/content-deleted-outside-delete-set (after 9.97 M executions over two runs): a
    /// merged update held a 391-unit map entry whose content was already `ContentDeleted` but
    /// whose IDs were not in the delete set. Collection cut it at the key's last unit and kept
    /// that unit outside the delete set; collecting again added it, so the bytes changed. A
    /// `ContentDeleted` item is now deleted whatever the delete set says, as in Yjs.
    @Test("Collecting garbage treats ContentDeleted items as deleted, and twice changes nothing")
    func contentDeletedOutsideTheDeleteSet() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/regressions/FuzzYjsGC/content-deleted-outside-delete-set")
        let input = Array(try Data(contentsOf: file))
        let merged = try YUpdate.merge([YUpdate.empty, try YUpdate.canonicalized(input)])
        #expect(try YUpdate.deleteSet(of: merged).clients[64] == nil, "the input's shape: no deletions of client 64")
        let once = try YUpdate.collectingGarbage(merged)
        #expect(try YUpdate.collectingGarbage(once) == once)
        var ds = try YUpdate.deleteSet(of: once)
        ds.sortAndMerge()
        #expect(ds.clients[64] == [DeleteRange(clock: 0, length: 393)], "the deleted entry (0..<391) and the GC after it")
    }
}
