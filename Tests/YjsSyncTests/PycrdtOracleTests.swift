import Foundation
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// Cross-checks against a second, independent implementation: pycrdt (Rust yrs). Python makes
/// seeded random sessions with pycrdt and records yrs's merge_updates / get_state / get_update;
/// Swift recomputes them from the same updates and compares bytes.
@Suite(.serialized) struct PycrdtOracleTests {
    struct Merge: Decodable { var inputs: [Int]; var out: String }
    struct Diff: Decodable { var input: String; var sv: String; var out: String }
    struct SV: Decodable { var input: String; var out: String }
    struct Session: Decodable { var seed: Int; var updates: [String]; var merges: [Merge]; var svs: [SV]; var diffs: [Diff] }

    static let sessionCount = 200

    static let corpus: Swift.Result<[Session], YjsOracleTests.OracleError> = {
        guard Peers.pycrdtAvailable else {
            return .failure(.init("python with pycrdt not found (set RELAY_PYTHON to the venv's python)"))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pycrdt-sessions-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let r = try Peers.run([Peers.python, Peers.oracleDir.appendingPathComponent("pycrdt_sessions.py").path, path.path, "\(sessionCount)", "1"])
            guard r.status == 0 else { return .failure(.init("pycrdt_sessions.py failed: \(r.stderr)")) }
            if let dir = ProcessInfo.processInfo.environment["RELAY_ORACLE_DUMP"] {
                try? FileManager.default.copyItem(at: path, to: URL(fileURLWithPath: dir).appendingPathComponent("pycrdt-sessions.json"))
            }
            return .success(try JSONDecoder().decode([Session].self, from: Data(contentsOf: path)))
        } catch {
            return .failure(.init("\(error)"))
        }
    }()

    static func sessions() throws -> [Session]? {
        switch corpus {
        case .success(let s): return s
        case .failure(let e):
            if Peers.required { throw e }
            print("skipping pycrdt oracle test: \(e)")
            return nil
        }
    }

    @Test(.enabled(if: Peers.runPycrdtTests, "pycrdt not available"))
    func matchesYrs() throws {
        guard let sessions = try Self.sessions() else { return }
        var counts = [0, 0, 0], bad: [String] = []
        for s in sessions {
            let updates = s.updates.map { [UInt8](hexString: $0) }
            for (i, m) in s.merges.enumerated() {
                let got = try YUpdate.merge(m.inputs.map { updates[$0] })
                if try !YjsOracleTests.sameUpdate(got, [UInt8](hexString: m.out)) { bad.append("seed \(s.seed) merge \(i)"); YjsOracleTests.dump("yrs-merge-\(s.seed)-\(i)", got) }
                counts[0] += 1
            }
            for c in s.svs {
                let got = try YUpdate.stateVector(of: [UInt8](hexString: c.input))
                if got != (try StateVector(decoding: [UInt8](hexString: c.out))) { bad.append("seed \(s.seed) sv") }
                counts[1] += 1
            }
            for (i, d) in s.diffs.enumerated() {
                let got = try YUpdate.diff([UInt8](hexString: d.input), againstEncoded: [UInt8](hexString: d.sv))
                if try !YjsOracleTests.sameUpdate(got, [UInt8](hexString: d.out)) { bad.append("seed \(s.seed) diff \(i)"); YjsOracleTests.dump("yrs-diff-\(s.seed)-\(i)", got) }
                counts[2] += 1
            }
        }
        // the store fed yrs-made updates has yrs's state vector of the merged session
        for s in sessions where !s.updates.isEmpty {
            let store = DocumentStore(persistence: InMemoryPersistence())
            for u in s.updates { try store.applyUpdate(room: "r", update: [UInt8](hexString: u)) }
            let want = try StateVector(decoding: [UInt8](hexString: s.svs[0].out))
            if try store.stateVector(room: "r") != want { bad.append("seed \(s.seed) store sv") }
            if try YUpdate.stateVector(of: store.encodedState(room: "r")) != want { bad.append("seed \(s.seed) store state") }
        }
        #expect(counts[0] >= Self.sessionCount * 3 && counts[1] >= Self.sessionCount * 2 && counts[2] >= Self.sessionCount)
        #expect(bad.isEmpty, "\(bad.count) of \(counts) (merges, svs, diffs) differ from yrs, e.g. \(bad.prefix(5))")
    }
}
