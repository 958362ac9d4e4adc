import Foundation
import Testing
@testable import YjsCodec
@testable import YjsRooms

/// Garbage collection (`YUpdate.collectingGarbage`) against Yjs itself: the collected state must
/// give Yjs the same document as the updates, and a garbage-collecting Y.Doc must encode the
/// same bytes whether it loaded our collected state or applied the updates one by one.
@Suite(.serialized) struct GarbageCollectionTests {
    struct Session: Decodable { var seed: Int; var updates: [String]; var state: String; var content: String }

    static let sessionCount = 300

    static func sessions() throws -> [Session]? {
        guard Peers.nodeYjsAvailable else {
            if Peers.required { throw YjsOracleTests.OracleError("node with yjs not found (NODE_PATH=/usr/share/nodejs)") }
            return nil
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("yjs-gc-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: path) }
        let r = try Peers.run(["node", Peers.oracleDir.appendingPathComponent("gen-gc.js").path, path.path, "\(sessionCount)", "1"])
        guard r.status == 0 else { throw YjsOracleTests.OracleError("gen-gc.js failed: \(r.stderr)") }
        return try JSONDecoder().decode([Session].self, from: Data(contentsOf: path))
    }

    /// 300 seeded sessions (1–3 clients, syncing now and then; text with formats and embeds,
    /// arrays and maps of nested types, XML; 35 % of text edits delete): the collected state
    /// gives Yjs the same document (canonical content), Yjs holds exactly the same state (struct
    /// section byte for byte, same delete set) after loading the collected state as after
    /// loading the uncollected merge, and the collected state is no larger than Yjs's own.
    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func collectedSessionsMatchYjs() throws {
        guard let sessions = try Self.sessions() else { return }
        var cases: [[[UInt8]]] = []
        var ours: [[UInt8]] = [], plain: [[UInt8]] = []
        for s in sessions {
            let merged = try YUpdate.merge(s.updates.map { [UInt8](hexString: $0) })
            let collected = try YUpdate.coalesced(try YUpdate.collectingGarbage(merged))
            ours.append(collected)
            plain.append(try YUpdate.coalesced(merged))
            cases.append([collected])
            cases.append([merged])
        }
        let got = try YjsOracleTests.yjsContent(cases, canonical: true)
        var badContent: [Int] = [], differentState: [Int] = [], larger: [Int] = []
        var sameAsIncremental = 0
        var oursBytes = 0, yjsBytes = 0, plainBytes = 0, worst = 0.0, worstSeed = 0
        for (k, s) in sessions.enumerated() {
            let gc = got[2 * k]?.split(separator: "\n", maxSplits: 1).map(String.init)
            let loaded = got[2 * k + 1]?.split(separator: "\n", maxSplits: 1).map(String.init)
            guard let gc, let loaded, gc.count == 2, loaded.count == 2 else { badContent.append(s.seed); continue }
            if gc[0] != s.content { badContent.append(s.seed) }
            if try !YjsOracleTests.sameUpdate([UInt8](hexString: gc[1]), [UInt8](hexString: loaded[1])) { differentState.append(s.seed) }
            if try YjsOracleTests.sameUpdate([UInt8](hexString: gc[1]), [UInt8](hexString: s.state)) { sameAsIncremental += 1 }
            let yjs = s.state.count / 2
            oursBytes += ours[k].count; yjsBytes += yjs; plainBytes += plain[k].count
            let ratio = Double(ours[k].count) / Double(yjs)
            if ratio > worst { worst = ratio; worstSeed = s.seed }
            if ratio > 1.05 { larger.append(s.seed) }
        }
        print("gc sessions: \(sessions.count); collected \(oursBytes) B, Yjs gc state \(yjsBytes) B (\(String(format: "%.3f", Double(oursBytes) / Double(yjsBytes)))×), uncollected \(plainBytes) B; largest session ratio \(String(format: "%.3f", worst))× (seed \(worstSeed)); Yjs state after loading ours equals the incremental document's in \(sameAsIncremental)")
        #expect(badContent.isEmpty, "\(badContent.count) collected states give Yjs a different document, e.g. seeds \(badContent.prefix(5))")
        #expect(differentState.isEmpty, "\(differentState.count) collected states leave Yjs a different state than the merge, e.g. seeds \(differentState.prefix(5))")
        #expect(larger.isEmpty, "\(larger.count) collected states are more than 5 % larger than Yjs's, e.g. seeds \(larger.prefix(5))")
    }

    static let traces = ["sveltecomponent", "rustcode", "seph-blog1", "automerge-paper", "friendsforever"]

    static func tracePath(_ name: String) -> String? {
        let candidates = [
            Peers.oracleDir.appendingPathComponent("../../../../shared/data/editing-traces/\(name).json.gz").standardized.path,
            "/work/shared/data/editing-traces/\(name).json.gz",
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Every trace replayed by Yjs once per test process (about 25 s), for the tests that use them.
    static let replays: [String: Swift.Result<TraceTests.Replay, YjsOracleTests.OracleError>] = {
        var out: [String: Swift.Result<TraceTests.Replay, YjsOracleTests.OracleError>] = [:]
        for name in traces {
            guard Peers.nodeYjsAvailable, let trace = tracePath(name) else {
                out[name] = .failure(YjsOracleTests.OracleError("node with yjs, or the trace \(name), not found"))
                continue
            }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("trace-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: file) }
            do {
                let r = try Peers.run(["node", Peers.oracleDir.appendingPathComponent("replay-trace.js").path, trace, file.path])
                guard r.status == 0 else { out[name] = .failure(YjsOracleTests.OracleError("replay-trace.js \(name): \(r.stderr)")); continue }
                out[name] = .success(try JSONDecoder().decode(TraceTests.Replay.self, from: Data(contentsOf: file)))
            } catch {
                out[name] = .failure(YjsOracleTests.OracleError("\(name): \(error)"))
            }
        }
        return out
    }()

    /// The replay of `name`, nil (test skipped) when node or the trace is missing and peers are
    /// not required.
    static func replay(_ name: String) throws -> TraceTests.Replay? {
        switch replays[name]! {
        case .success(let r): return r
        case .failure(let e):
            if Peers.required { throw e }
            print("skipping: \(e)")
            return nil
        }
    }

    /// Every editing trace (four typed by one person, friendsforever by two at once), replayed by
    /// Yjs one update per transaction: the store (which collects garbage when it folds) and a
    /// one-shot collection of the merge both give Yjs the trace's document, Yjs holds the same
    /// state after loading them as the garbage-collecting document that typed it, and they are
    /// within 5 % of that document's own encoding.
    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"), arguments: traces)
    func tracesCollectLikeYjs(_ name: String) throws {
        guard let replay = try Self.replay(name) else { return }
        let updates = replay.updates.map { [UInt8](hexString: $0) }
        let store = DocumentStore(persistence: InMemoryPersistence())
        for u in updates { try store.applyUpdate(room: name, update: u) }
        let stored = try store.encodedState(room: name)
        let merged = try YUpdate.merge(updates)
        let oneShot = try YUpdate.coalesced(try YUpdate.collectingGarbage(merged))
        let uncollected = try YUpdate.coalesced(merged)
        let got = try YjsOracleTests.yjsContent([[stored], [oneShot]], withState: true)
        let yjsState = [UInt8](hexString: replay.state)
        for (label, g) in zip(["store", "one-shot"], got) {
            let parts = g?.split(separator: "\n", maxSplits: 1).map(String.init)
            #expect(parts?.first == replay.content, "\(name): \(label) state gives Yjs a different document")
            #expect(try parts.map { try YjsOracleTests.sameUpdate([UInt8](hexString: $0.last!), yjsState) } == true,
                    "\(name): Yjs holds a different state after loading the \(label) state")
        }
        let ratio = Double(stored.count) / Double(yjsState.count)
        print("trace \(name): \(updates.count) updates; store state \(stored.count) B, one-shot \(oneShot.count) B, Yjs gc document \(yjsState.count) B (\(String(format: "%.3f", ratio))×), without gc \(uncollected.count) B")
        #expect(ratio <= 1.05, "\(name): store state \(stored.count) B is more than 5 % larger than Yjs's \(yjsState.count) B")
    }
}
