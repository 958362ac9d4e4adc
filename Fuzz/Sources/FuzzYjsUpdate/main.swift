// Yjs updates v1 and v2: validation, state vectors, diff and merge never trap; an update that
// validates, in canonical block order, merges with itself into a valid update that merging with
// itself again keeps, and its diff against its own state vector is valid.
import YjsCodec

/// `precondition` that keeps its message in release builds (libFuzzer prints it with the crash).
@inline(__always) func ensure(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    if (try? YUpdate.validate(bytes)) != nil {
        // Yjs's merge assumes client blocks in descending client order, as every Yjs and yrs
        // writer makes them; on other input it can return structs whose clocks run past 2^53
        // (Fuzz/regressions/FuzzYjsUpdate/diff-non-canonical-1, byte-identical to Yjs). The relay
        // stores such updates canonicalized (DocumentStore), so the oracles apply to that form;
        // the raw input must still never trap.
        _ = try? YUpdate.merge([bytes, bytes])
        _ = try? YUpdate.diff(bytes, against: YUpdate.stateVector(of: bytes))
        guard let u = try? YUpdate.canonicalized(bytes) else { fatalError("canonicalizing a valid update failed") }
        ensure((try? YUpdate.hasCanonicalBlockOrder(u)) == true, "canonicalized update is not in canonical order")
        // Merging normalises: Yjs drops skips (a state vector may shrink) and returns a single
        // update as it is, so merge([u]) and merge([u, u]) can differ, in Yjs too
        // (Fuzz/regressions/FuzzYjsUpdate/merge-state-vector-1). What must hold: the result is a
        // valid update, and merging a merged update with itself changes nothing.
        if let m1 = try? YUpdate.merge([u, u]) {
            ensure((try? YUpdate.validate(m1)) != nil, "merge produced an invalid update")
            let m2 = try? YUpdate.merge([m1, m1])
            ensure(m2.map { (try? YUpdate.validate($0)) != nil } == true, "merging a merged update failed")
            ensure((try? YUpdate.stateVector(of: m1)) == m2.flatMap { try? YUpdate.stateVector(of: $0) },
                   "merging a merged update with itself changed its state vector")
            if let sv = try? YUpdate.stateVector(of: m1), let d = try? YUpdate.diff(m1, against: sv) {
                ensure((try? YUpdate.validate(d)) != nil, "diff produced an invalid update")
            }
        } else {
            fatalError("merging a valid canonical update with itself failed")
        }
    }
    if let v1 = try? UpdateV2.toV1(bytes) {
        _ = try? YUpdate.validate(v1)
    }
    return 0
}
