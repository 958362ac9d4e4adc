// Yjs updates v1 and v2: validation, state vectors, diff and merge never trap; an update that
// validates merges with itself into a valid update with the same state vector, and its diff
// against its own state vector is valid.
import YjsCodec

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    if (try? YUpdate.validate(bytes)) != nil {
        // Merging normalises: Yjs drops skips (a state vector may shrink) and returns a single
        // update as it is, so merge([u]) and merge([u, u]) can differ, in Yjs too
        // (Fuzz/regressions/FuzzYjsUpdate/merge-state-vector-1). What must hold: the result is a
        // valid update, and merging a merged update with itself changes nothing.
        if let m1 = try? YUpdate.merge([bytes, bytes]) {
            precondition((try? YUpdate.validate(m1)) != nil, "merge produced an invalid update")
            let m2 = try? YUpdate.merge([m1, m1])
            precondition(m2.map { (try? YUpdate.validate($0)) != nil } == true, "merging a merged update failed")
            precondition((try? YUpdate.stateVector(of: m1)) == m2.flatMap { try? YUpdate.stateVector(of: $0) },
                         "merging a merged update with itself changed its state vector")
            if let sv = try? YUpdate.stateVector(of: m1), let d = try? YUpdate.diff(m1, against: sv) {
                precondition((try? YUpdate.validate(d)) != nil, "diff produced an invalid update")
            }
        }
    }
    if let v1 = try? UpdateV2.toV1(bytes) {
        _ = try? YUpdate.validate(v1)
    }
    return 0
}
