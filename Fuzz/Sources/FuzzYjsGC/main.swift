// Garbage collection of Yjs updates (`YUpdate.collectingGarbage`), which the document store runs
// on every room's merged state, so on whatever clients sent.
//
// Input: a v1 update (or a v2 update, converted first), canonicalized and merged with the empty
// update into the form the store keeps (as it does with every update it stores). Oracles:
// - collecting it succeeds and gives a valid update in canonical block order, which coalesces;
// - the same state vector (collection keeps every ID: content goes, structs stay);
// - a delete set containing the original one;
// - collecting again changes nothing (byte for byte).
import YjsCodec

/// `precondition` that keeps its message in release builds (libFuzzer prints it with the crash).
@inline(__always) func ensure(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}

func contains(_ big: DeleteSet, _ small: DeleteSet) -> Bool {
    for (client, ranges) in small.clients {
        let outer = big.clients[client] ?? []
        for r in ranges where !outer.contains(where: { $0.clock <= r.clock && r.end <= $0.end }) { return false }
    }
    return true
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let update: [UInt8]
    if (try? YUpdate.validate(bytes)) != nil { update = bytes }
    else if let v1 = try? UpdateV2.toV1(bytes) { update = v1 }
    else { return 0 }
    guard let canonical = try? YUpdate.canonicalized(update),
          let merged = try? YUpdate.merge([YUpdate.empty, canonical]) else { return 0 }
    let collected: [UInt8]
    do { collected = try YUpdate.collectingGarbage(merged) } catch { fatalError("collecting a merged update failed: \(error)") }
    ensure((try? YUpdate.validate(collected)) != nil, "the collected update is not valid")
    ensure((try? YUpdate.hasCanonicalBlockOrder(collected)) == true, "the collected update is not in canonical block order")
    ensure((try? YUpdate.coalesced(collected)) != nil, "the collected update does not coalesce")
    ensure((try? YUpdate.stateVector(of: collected)) == (try? YUpdate.stateVector(of: merged)), "collection changed the state vector")
    var before = (try? YUpdate.deleteSet(of: merged)) ?? DeleteSet()
    var after = (try? YUpdate.deleteSet(of: collected)) ?? DeleteSet()
    before.sortAndMerge(); after.sortAndMerge()
    ensure(contains(after, before), "collection dropped deletions")
    let again = try? YUpdate.collectingGarbage(collected)
    ensure(again == collected, "collecting twice changed the update")
    return 0
}
