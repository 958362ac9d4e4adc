import Foundation
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// A real editing trace (sveltecomponent, CC BY 4.0, shared/data/editing-traces) replayed into a
/// Y.Doc in node, one update per keystroke; the store ingests every update and must end up with
/// Yjs's state vector, and Yjs must rebuild a byte-identical document from the store's state.
@Suite(.serialized) struct TraceTests {
    struct Half: Decodable { var sv: String; var state: String }
    struct Replay: Decodable { var updates: [String]; var half: Half; var sv: String; var content: String; var state: String; var stateV2: String? }

    static var tracePath: String? {
        let candidates = [
            Peers.oracleDir.appendingPathComponent("../../../../shared/data/editing-traces/sveltecomponent.json.gz").standardized.path,
            "/work/shared/data/editing-traces/sveltecomponent.json.gz",
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"))
    func storeRebuildsYjsDocumentFromTrace() throws {
        guard Peers.nodeYjsAvailable else {
            if Peers.required { throw YjsOracleTests.OracleError("node with yjs not found") }
            return
        }
        guard let trace = Self.tracePath else {
            if Peers.required { throw YjsOracleTests.OracleError("editing trace not found") }
            print("skipping: editing trace not found")
            return
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("trace-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try Peers.run(["node", Peers.oracleDir.appendingPathComponent("replay-trace.js").path, trace, out.path])
        #expect(r.status == 0, "\(r.stderr)")
        let replay = try JSONDecoder().decode(Replay.self, from: Data(contentsOf: out))
        let updates = replay.updates.map { [UInt8](hexString: $0) }
        #expect(updates.count > 15000)

        let store = DocumentStore(persistence: InMemoryPersistence())
        for u in updates { #expect(try store.applyUpdate(room: "svelte", update: u).changed) }
        #expect(try store.stateVector(room: "svelte") == StateVector(decoding: [UInt8](hexString: replay.sv)))
        let state = try store.encodedState(room: "svelte")
        let oneShot = try YUpdate.coalesced(try YUpdate.merge(updates))
        // step 2 for the half-way state vector, applied on the half-way document
        let step2 = try store.syncStep2(room: "svelte", forEncodedStateVector: [UInt8](hexString: replay.half.sv))
        let got = try YjsOracleTests.yjsContent([[state], [oneShot], [[UInt8](hexString: replay.half.state), step2]], withState: true)
        let want = replay.content + "\n" + replay.state
        #expect(got[0] == want, "store state rebuilds a different document")
        #expect(got[1] == want, "one-shot merge rebuilds a different document")
        #expect(got[2] == want, "half-way document + step 2 differs")
        print("trace: \(updates.count) updates, \(updates.reduce(0) { $0 + $1.count }) bytes; store state \(state.count) bytes; Yjs document state \(replay.state.count / 2) bytes")
    }
}
