// Differential merge and diff of Yjs v1 updates (v2 input is converted first).
//
// Input: one selector byte, a varUint length L, an update U of L bytes, and optionally a second,
// independent update V (the rest). U is put in canonical block order (`canonicalized`, which must
// produce that order). Two cuts per client, picked by the selector, give A = diff(U, sv1) and
// B = diff(U, sv2): slices of the same structs, so every merge of them has one right answer.
// Oracles:
// - every merge and diff result is a valid update in canonical block order;
// - merge([A, B]) and merge([B, A]) are equivalent, as are merge([U, A, B]), merge([B, A, U]),
//   merge([merge([A, B]), U]), merge([U, U]) and the ≥ 64-input heap merge of U, A, B padded with
//   empty updates; equivalent = the same struct ranges, the same (normalised) delete set and the
//   same bytes once coalesced (merges may split a struct at different points);
// - those merges cover exactly U's struct ranges and carry exactly U's delete set;
// - diff(M, sv) covers the same ranges as diff(U, sv) for the merged M;
// - merge([U, V]) and merge([V, U]) cover the same ranges with the same delete set, whatever the
//   contents (when V is in canonical block order too, as every Yjs writer makes it).
import RelayJSON
import YjsCodec

/// `precondition` that keeps its message in release builds (libFuzzer prints it with the crash).
@inline(__always) func ensure(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}

struct Shape: Equatable {
    var structs: [UInt64: [Range<UInt64>]] = [:]
    var deletes: DeleteSet
}

/// Struct ranges per client (Skips excluded, sorted and joined, read from `YUpdate.inspect`, whose
/// output must be JSON) and the normalised delete set; the update must be valid and canonical.
func shape(_ u: [UInt8], _ what: @autoclosure () -> String) -> Shape {
    guard let text = try? YUpdate.inspect(u), let ds = try? YUpdate.deleteSet(of: u),
          (try? YUpdate.validate(u)) != nil else {
        fatalError("\(what()) is not a valid update")
    }
    ensure((try? YUpdate.hasCanonicalBlockOrder(u)) == true, "\(what()) is not in canonical block order")
    // `any` content nests up to lib0MaxAnyDepth levels below the five of the inspection itself
    guard let json = try? JSONParser.parse(Array(text.utf8), maxDepth: lib0MaxAnyDepth + 8), let blocks = json["clients"]?.arrayValue else {
        fatalError("YUpdate.inspect of \(what()) is not JSON")
    }
    var out: [UInt64: [Range<UInt64>]] = [:]
    for block in blocks {
        let c = UInt64(block["client"]!.int64Value!)
        for s in block["structs"]!.arrayValue! where s["kind"]!.stringValue! != "Skip" {
            let clock = UInt64(s["clock"]!.int64Value!), length = UInt64(s["length"]!.int64Value!)
            out[c, default: []].append(clock..<(clock + length))
        }
    }
    for c in out.keys {
        var joined: [Range<UInt64>] = []
        for x in out[c]!.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let l = joined.last, x.lowerBound <= l.upperBound {
                joined[joined.count - 1] = l.lowerBound..<max(l.upperBound, x.upperBound)
            } else { joined.append(x) }
        }
        out[c] = joined
    }
    return Shape(structs: out, deletes: DeleteSet.merged([ds]))
}

func merge(_ parts: [[UInt8]], _ what: String) -> [UInt8] {
    do { return try YUpdate.merge(parts) } catch { fatalError("\(what): merging valid updates failed: \(error)") }
}

func coalesced(_ u: [UInt8], _ what: String) -> [UInt8] {
    do { return try YUpdate.coalesced(u) } catch { fatalError("\(what): coalescing failed: \(error)") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard bytes.count >= 2 else { return 0 }
    let selector = bytes[0]
    var d = Lib0Decoder(bytes, range: 1..<bytes.count)
    guard let range = try? d.readVarBytesRange() else { return 0 }
    let rest = Array(bytes[d.position...])
    func update(_ b: [UInt8]) -> [UInt8]? {
        if (try? YUpdate.validate(b)) != nil { return b }
        return try? UpdateV2.toV1(b)
    }
    guard let raw = update(Array(bytes[range])), (try? YUpdate.validate(raw)) != nil,
          let u = try? YUpdate.canonicalized(raw) else { return 0 }
    let su = shape(u, "canonicalized(U)")

    // Cuts: per client, two clocks inside (or at the ends of) its ranges.
    var sv1 = StateVector(), sv2 = StateVector()
    for (i, (c, rs)) in su.structs.sorted(by: { $0.key < $1.key }).enumerated() {
        let lo = rs.first!.lowerBound, hi = rs.last!.upperBound
        let span = hi - lo + 1
        let k = UInt64(selector) &* 0x9E37_79B9 &+ UInt64(i) &* 0x85EB_CA6B
        sv1.clocks[c] = lo + (k % span)
        sv2.clocks[c] = lo + ((k >> 8) % span)
    }
    guard let a = try? YUpdate.diff(u, against: sv1), let b = try? YUpdate.diff(u, against: sv2) else {
        fatalError("diff of a valid update failed")
    }
    _ = shape(a, "diff(U, sv1)")
    _ = shape(b, "diff(U, sv2)")

    let ab = merge([a, b], "merge([A, B])"), ba = merge([b, a], "merge([B, A])")
    ensure(shape(ab, "merge([A, B])") == shape(ba, "merge([B, A])"), "merge([A, B]) and merge([B, A]) cover different ranges")
    ensure(coalesced(ab, "AB") == coalesced(ba, "BA"), "merge([A, B]) and merge([B, A]) differ")

    let reference = merge([u, u], "merge([U, U])")
    let refShape = shape(reference, "merge([U, U])")
    ensure(refShape.structs == su.structs && refShape.deletes == su.deletes, "merge([U, U]) does not cover U")
    let refCoalesced = coalesced(reference, "UU")
    let empties = [[UInt8]](repeating: YUpdate.empty, count: 61)
    let orders = [([u, a, b], "merge([U, A, B])"), ([b, a, u], "merge([B, A, U])"),
                  ([ab, u], "merge([merge([A, B]), U])"), ([u, ba], "merge([U, merge([B, A])])"),
                  ([u, a, b] + empties, "heap merge of U, A, B and 61 empty updates")]
    // Two of the five orders per input, picked by the selector (every order is compared to U's).
    for (parts, name) in [orders[Int(selector) % 5], orders[Int(selector / 5) % 5]] {
        let m = merge(parts, name)
        ensure(shape(m, name) == refShape, "\(name) covers other ranges than merge([U, U])")
        ensure(coalesced(m, name) == refCoalesced, "\(name) differs from merge([U, U])")
        if let dm = try? YUpdate.diff(m, against: sv1) {
            ensure(shape(dm, "diff(\(name), sv1)").structs == shape(a, "A").structs, "diff(\(name), sv1) != diff(U, sv1)")
        } else {
            fatalError("diff of \(name) failed")
        }
    }

    // An independent second update: coverage and deletions do not depend on the merge order.
    if let v = update(rest), (try? YUpdate.hasCanonicalBlockOrder(v)) == true {
        let uv = merge([u, v], "merge([U, V])"), vu = merge([v, u], "merge([V, U])")
        ensure(shape(uv, "merge([U, V])") == shape(vu, "merge([V, U])"), "merge([U, V]) and merge([V, U]) cover different ranges")
    }
    return 0
}
