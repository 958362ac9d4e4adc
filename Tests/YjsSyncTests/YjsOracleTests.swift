import Foundation
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// Cross-checks against Yjs itself (Debian node-yjs): node generates seeded random multi-client
/// sessions and records Yjs's mergeUpdates / diffUpdate / encodeStateVectorFromUpdate outputs and
/// the resulting document content; Swift recomputes them and compares.
@Suite(.serialized) struct YjsOracleTests {
    struct Merge: Decodable { var inputs: [Int]; var out: String; var content: String? }
    struct Diff: Decodable { var input: String; var sv: String; var out: String; var base: String?; var content: String? }
    struct SV: Decodable { var input: String; var out: String }
    struct V2: Decodable { var v2: String; var v1: String }
    struct Session: Decodable {
        var seed: Int; var updates: [String]; var states: [String]
        var merges: [Merge]; var diffs: [Diff]; var svs: [SV]; var content: String; var v2: [V2]
    }

    static let sessionCount = 300

    /// Generated once per test process.
    static let corpus: Swift.Result<[Session], OracleError> = {
        guard Peers.nodeYjsAvailable else { return .failure(OracleError("node with yjs not found (NODE_PATH=/usr/share/nodejs)")) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("yjs-sessions-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let r = try Peers.run(["node", Peers.oracleDir.appendingPathComponent("gen-sessions.js").path, path.path, "\(sessionCount)", "1"])
            guard r.status == 0 else { return .failure(OracleError("gen-sessions.js failed: \(r.stderr)")) }
            return .success(try JSONDecoder().decode([Session].self, from: Data(contentsOf: path)))
        } catch {
            return .failure(OracleError("\(error)"))
        }
    }()

    struct OracleError: Error, CustomStringConvertible { var description: String; init(_ d: String) { description = d } }

    static func sessions() throws -> [Session]? {
        switch corpus {
        case .success(let s): return s
        case .failure(let e):
            if Peers.required { throw e }
            print("skipping Yjs oracle test: \(e)")
            return nil
        }
    }

    /// Equal struct sections byte for byte, and equal delete sets (Debian's Yjs 13.5.43 writes
    /// delete-set clients in insertion order; Yjs ≥ 13.5.47 and this module write them descending).
    static func sameUpdate(_ a: [UInt8], _ b: [UInt8]) throws -> Bool {
        let x = try YUpdate.structSectionAndDeleteSet(a), y = try YUpdate.structSectionAndDeleteSet(b)
        return x.structBytes == y.structBytes && x.deleteSet == y.deleteSet
    }

    /// With RELAY_ORACLE_DUMP=dir, mismatching Swift outputs are written there for inspection.
    static func dump(_ name: String, _ bytes: [UInt8]) {
        guard let dir = ProcessInfo.processInfo.environment["RELAY_ORACLE_DUMP"] else { return }
        try? Data(bytes).write(to: URL(fileURLWithPath: dir).appendingPathComponent(name + ".bin"))
    }

    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func stateVectorsMatchYjs() throws {
        guard let sessions = try Self.sessions() else { return }
        var checked = 0, bad: [String] = []
        for s in sessions {
            for c in s.svs {
                let got = try YUpdate.encodeStateVector(fromUpdate: [UInt8](hexString: c.input))
                if got != [UInt8](hexString: c.out) { bad.append("seed \(s.seed)") }
                checked += 1
            }
        }
        #expect(checked > 1000)
        #expect(bad.isEmpty, "\(bad.count)/\(checked) state vectors differ, e.g. \(bad.prefix(5))")
    }

    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func v2ConversionMatchesYjs() throws {
        guard let sessions = try Self.sessions() else { return }
        var checked = 0, bad: [String] = []
        for s in sessions {
            for (i, c) in s.v2.enumerated() {
                let got = try UpdateV2.toV1([UInt8](hexString: c.v2))
                if try !Self.sameUpdate(got, [UInt8](hexString: c.v1)) { bad.append("seed \(s.seed) v2 \(i)"); Self.dump("v2-\(s.seed)-\(i)", got) }
                checked += 1
            }
        }
        #expect(checked >= Self.sessionCount * 3)
        #expect(bad.isEmpty, "\(bad.count)/\(checked) v2→v1 conversions differ, e.g. \(bad.prefix(5))")
    }

    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func mergesMatchYjs() throws {
        guard let sessions = try Self.sessions() else { return }
        var checked = 0, bad: [String] = []
        for s in sessions {
            let pool = (s.updates + s.states).map { [UInt8](hexString: $0) }
            for (i, m) in s.merges.enumerated() {
                let got = try YUpdate.merge(m.inputs.map { pool[$0] })
                if try !Self.sameUpdate(got, [UInt8](hexString: m.out)) {
                    bad.append("seed \(s.seed) merge \(i)")
                    Self.dump("merge-\(s.seed)-\(i)", got)
                }
                checked += 1
            }
        }
        #expect(checked >= Self.sessionCount * 3)
        #expect(bad.isEmpty, "\(bad.count)/\(checked) merges differ, e.g. \(bad.prefix(5))")
    }

    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func diffsMatchYjs() throws {
        guard let sessions = try Self.sessions() else { return }
        var checked = 0, bad: [String] = []
        for s in sessions {
            for (i, d) in s.diffs.enumerated() {
                let got = try YUpdate.diff([UInt8](hexString: d.input), againstEncoded: [UInt8](hexString: d.sv))
                if try !Self.sameUpdate(got, [UInt8](hexString: d.out)) { bad.append("seed \(s.seed) diff \(i)") }
                checked += 1
            }
        }
        #expect(checked >= Self.sessionCount * 5)
        #expect(bad.isEmpty, "\(bad.count)/\(checked) diffs differ, e.g. \(bad.prefix(5))")
    }

    /// Applies each list of updates to a fresh Y.Doc in node; returns the content strings.
    static func yjsContent(_ cases: [[[UInt8]]], withState: Bool = false, canonical: Bool = false) throws -> [String?] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("yjs-apply-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let inp = dir.appendingPathComponent("in.json"), out = dir.appendingPathComponent("out.json")
        try JSONEncoder().encode(cases.map { $0.map(hexString) }).write(to: inp)
        let r = try Peers.run(["node", Peers.oracleDir.appendingPathComponent("apply-content.js").path, inp.path, out.path] + (canonical ? ["canonical-state"] : withState ? ["state"] : []))
        guard r.status == 0 else { throw OracleError("apply-content.js failed: \(r.stderr)") }
        return try JSONDecoder().decode([String?].self, from: Data(contentsOf: out))
    }

    /// Swift's merges (both the exact V8-order path and the heap path used for ≥64 inputs) and
    /// diffs, applied by Yjs to fresh documents, give the same content as Yjs's own outputs.
    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func swiftOutputsGiveYjsContent() throws {
        guard let sessions = try Self.sessions() else { return }
        var cases: [[[UInt8]]] = [], expected: [String] = [], labels: [String] = []
        var heapIdentical = 0, heapTotal = 0
        var bad0: [String] = []
        var modSurrogates: Set<Int> = []
        for s in sessions {
            let pool = (s.updates + s.states).map { [UInt8](hexString: $0) }
            for (i, m) in s.merges.enumerated() {
                guard let want = m.content else { continue }  // Yjs itself could not apply its merge
                let inputs = m.inputs.map { pool[$0] }
                var heapMerger = try KWayMerger(inputs, forceHeap: true)
                let heap = try heapMerger.run()
                heapTotal += 1
                let yjsOut = [UInt8](hexString: m.out)
                // outputs identical to Yjs's (struct bytes and delete set) trivially give its
                // content; only the others need node to apply them
                if try Self.sameUpdate(heap, yjsOut) {
                    heapIdentical += 1
                } else {
                    cases.append([heap]); expected.append(want); labels.append("seed \(s.seed) heap merge \(i)")
                }
                let exact = try YUpdate.merge(inputs)
                if try !Self.sameUpdate(exact, yjsOut) {
                    cases.append([exact]); expected.append(want); labels.append("seed \(s.seed) merge \(i)")
                }
            }
            for (i, d) in s.diffs.enumerated() {
                guard let base = d.base, let want = d.content else { continue }
                let got = try YUpdate.diff([UInt8](hexString: d.input), againstEncoded: [UInt8](hexString: d.sv))
                cases.append([[UInt8](hexString: base), got]); expected.append(want); labels.append("seed \(s.seed) diff \(i)")
            }
            // Stores fed every update (one folding only when asked for step 2, one folding after
            // every couple of updates) have Yjs's state vector, and their step 2 applied on the
            // snapshot gives Yjs's content up to surrogate pairs: the store drops updates that add
            // nothing and merges in a different order than one mergeUpdates(all), and a struct
            // boundary inside a pair becomes U+FFFD in whichever representation sliced there.
            let plain = DocumentStore(persistence: InMemoryPersistence())
            for u in pool.prefix(s.updates.count) { try plain.applyUpdate(room: "r", update: u) }
            let yjsSV = try StateVector(decoding: [UInt8](hexString: s.svs[0].out))  // encodeStateVectorFromUpdate(all)
            if try plain.stateVector(room: "r") != yjsSV { bad0.append("seed \(s.seed) store state vector") }
            for (i, d) in s.diffs.enumerated() {
                guard let base = d.base, let want = d.content else { continue }
                let step2 = try plain.syncStep2(room: "r", forEncodedStateVector: [UInt8](hexString: d.sv))
                cases.append([[UInt8](hexString: base), step2]); expected.append(want); labels.append("seed \(s.seed) plain store step2 \(i)")
                modSurrogates.insert(cases.count - 1)
            }
            var o = DocumentStoreOptions()
            o.foldMinPending = 2; o.foldRatio = 0; o.persistCompactionThreshold = 5; o.backgroundCompaction = false
            let store = DocumentStore(persistence: InMemoryPersistence(), options: o)
            for u in pool.prefix(s.updates.count) { try store.applyUpdate(room: "r", update: u) }
            if try store.stateVector(room: "r") != yjsSV { bad0.append("seed \(s.seed) folding store state vector") }
            for (i, d) in s.diffs.enumerated() {
                guard let base = d.base, let want = d.content else { continue }
                let step2 = try store.syncStep2(room: "r", forEncodedStateVector: [UInt8](hexString: d.sv))
                cases.append([[UInt8](hexString: base), step2]); expected.append(want); labels.append("seed \(s.seed) store step2 \(i)")
                modSurrogates.insert(cases.count - 1)
            }
            // the whole session merged by Swift in shuffled order equals the synced document
            var rng = SeededRNG(seed: UInt64(s.seed))
            let shuffled = pool.prefix(s.updates.count).shuffled(using: &rng)
            cases.append([try YUpdate.merge(Array(shuffled))]); expected.append(s.content); labels.append("seed \(s.seed) shuffled")
        }
        let got = try Self.yjsContent(cases)
        var bad: [String] = bad0
        /// Non-BMP characters and U+FFFD → "?" (both are 2 UTF-16 units or one split half).
        func splitPairs(_ x: String?) -> String? {
            x.map { String(String.UnicodeScalarView($0.unicodeScalars.flatMap { (u: Unicode.Scalar) -> [Unicode.Scalar] in
                u.value > 0xFFFF ? ["?", "?"] : (u.value == 0xFFFD ? ["?"] : [u]) })) }
        }
        for i in cases.indices where got[i] != expected[i] {
            if modSurrogates.contains(i) && splitPairs(got[i]) == splitPairs(expected[i]) { continue }
            bad.append(labels[i])
            if bad.count == 1 { print("first content mismatch \(labels[i]):\n yjs:   \(expected[i])\n swift: \(got[i] ?? "nil (Yjs threw)")") }
        }
        #expect(cases.count > Self.sessionCount * 3)
        #expect(bad.isEmpty, "\(bad.count)/\(cases.count) contents differ, e.g. \(bad.prefix(5))")
        print("heap-path merges byte-identical to Yjs: \(heapIdentical)/\(heapTotal)")
    }

    /// Struct coalescing is lossless: Yjs builds the same document (content and its own encoded
    /// state, byte for byte) from a coalesced merge as from the merge itself, and a diff of the
    /// coalesced state applied on a snapshot gives the same content.
    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func coalescingKeepsYjsDocumentsIdentical() throws {
        guard let sessions = try Self.sessions() else { return }
        var cases: [[[UInt8]]] = [], labels: [String] = []
        var diffCases: [[[UInt8]]] = [], diffExpected: [String] = [], diffLabels: [String] = []
        var before = 0, after = 0
        for s in sessions {
            let pool = (s.updates + s.states).map { [UInt8](hexString: $0) }
            // Partial merges leave structs pending in a Y.Doc, and Yjs re-emits pending structs as
            // received; so partial merges are followed by the full (uncoalesced) merge before the
            // documents' encoded states are compared.
            let full = [UInt8](hexString: s.merges[0].out)
            for (i, m) in s.merges.enumerated() where m.content != nil {
                let merged = [UInt8](hexString: m.out)
                let c = try YUpdate.coalesced(merged)
                try YUpdate.validate(c)
                before += merged.count; after += c.count
                if i == 0 {
                    cases.append([merged]); cases.append([c])
                } else {
                    cases.append([merged, full]); cases.append([c, full])
                }
                labels.append("seed \(s.seed) merge \(i)")
            }
            // coalesce raw updates too, then merge them
            let coalescedUpdates = try pool.prefix(s.updates.count).map(YUpdate.coalesced)
            cases.append([try YUpdate.merge(Array(pool.prefix(s.updates.count)))])
            cases.append([try YUpdate.coalesced(try YUpdate.merge(coalescedUpdates))])
            labels.append("seed \(s.seed) coalesced updates")
            let all = try YUpdate.coalesced([UInt8](hexString: s.merges[0].out))
            for (i, d) in s.diffs.enumerated() {
                guard let base = d.base, let want = d.content else { continue }
                diffCases.append([[UInt8](hexString: base), try YUpdate.diff(all, againstEncoded: [UInt8](hexString: d.sv))])
                diffExpected.append(want); diffLabels.append("seed \(s.seed) diff \(i)")
            }
        }
        let got = try Self.yjsContent(cases, withState: true)
        var bad: [String] = []
        for k in labels.indices where got[2 * k] == nil || got[2 * k] != got[2 * k + 1] {
            bad.append(labels[k])
            if bad.count == 1 { print("first coalescing mismatch \(labels[k]):\n plain:     \(got[2 * k] ?? "nil")\n coalesced: \(got[2 * k + 1] ?? "nil")\n input \(hexString(cases[2 * k][0]))") }
        }
        let gotDiffs = try Self.yjsContent(diffCases)
        for k in diffCases.indices where gotDiffs[k] != diffExpected[k] { bad.append(diffLabels[k]) }
        #expect(labels.count > Self.sessionCount * 4)
        #expect(after < before)
        #expect(bad.isEmpty, "\(bad.count)/\(labels.count + diffCases.count) coalesced documents differ, e.g. \(bad.prefix(5))")
        print("coalescing: merged updates \(before) -> \(after) bytes")
    }
}

/// `Lib0Any.jsonText` (used to turn v2 Embed/Format values into v1 JSON text) must equal
/// JavaScript's JSON.stringify of the value lib0's readAny produces.
@Suite struct JSONTextOracleTests {
    @Test(.enabled(if: Peers.runNodeTests, "node not available"))
    func matchesJavaScript() throws {
        guard Peers.nodeYjsAvailable else {
            if Peers.required { throw YjsOracleTests.OracleError("node with yjs not found") }
            return
        }
        var rng = SeededRNG(seed: 99)
        var values: [Lib0Any] = [
            .float64(1.5), .float64(1e21), .float64(1e-7), .float64(0.000001), .float64(123456789012345683968),
            .float64(-0.0), .float64(100), .float64(.greatestFiniteMagnitude), .float64(.leastNonzeroMagnitude), .float64(.nan),
            .float64(-.infinity), .float32(1.1), .float32(-3.4e38), .integer(-2147483648), .string("a\"b\\c\n\u{1}\u{7f}é😀"),
            .object([.init(key: "b", value: .integer(1)), .init(key: "10", value: .null), .init(key: "2", value: .bool(true)),
                     .init(key: "b", value: .integer(3)), .init(key: "u", value: .undefined), .init(key: "01", value: .float64(0.5))]),
            .array([.undefined, .null, .bytes([1, 2])]),
        ]
        for _ in 0..<300 {
            let bits = rng.next()
            let d = Double(bitPattern: bits)
            values.append(.float64(d.isNaN ? 0 : d))
            values.append(.float64(Double(Int64(bitPattern: rng.next()) % 1_000_000_000) / Double(1 << Int(rng.next() % 40))))
        }
        let inputs = values.map { v -> String in var e = Lib0Encoder(); e.writeAny(v); return hexString(e.bytes) }
        let script = """
        const dec = require('lib0/dist/decoding.cjs');
        const lines = require('fs').readFileSync(0, 'utf8').trim().split('\\n');
        process.stdout.write(JSON.stringify(lines.map(h => JSON.stringify(dec.readAny(dec.createDecoder(Buffer.from(h, 'hex')))))));
        """
        let r = try Peers.run(["node", "-e", script], stdin: Data(inputs.joined(separator: "\n").utf8))
        #expect(r.status == 0, "\(r.stderr)")
        let js = try JSONDecoder().decode([String].self, from: r.stdout)
        var bad: [String] = []
        for (i, v) in values.enumerated() where v.jsonText() != js[i] { bad.append("\(v): swift \(v.jsonText() ?? "nil") js \(js[i])") }
        #expect(bad.isEmpty, "\(bad.count) differ: \(bad.prefix(5))")
    }
}
