import Foundation
import Testing
@testable import YjsCodec
@testable import YjsRooms
@testable import YjsStore

/// Long-lived node process with simulated y-websocket clients (real Y.Doc + y-protocols sync and
/// awareness code); the test plays the server with `DocumentStore.handle`. Clients connect, edit
/// concurrently while frames are delivered in random order, and must converge with each other
/// and with the store; the awareness echo (every client re-sends what it applies) must die out.
@Suite(.serialized) struct ProtocolPeerTests {
    final class Peer {
        let process = Process()
        let input = Pipe(), output = Pipe()
        var buffer = Data()
        init(seed: Int, clients: Int) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["node", Peers.oracleDir.appendingPathComponent("protocol-peer.js").path, "\(seed)", "\(clients)"]
            process.environment = Peers.environment
            process.standardInput = input
            process.standardOutput = output
            try process.run()
        }
        struct Answer: Decodable { var frames: [[Entry]]; var server: String?; var clients: [String]?; var awareness: [[UInt64]]? }
        enum Entry: Decodable {
            case int(Int), str(String)
            init(from d: Decoder) throws {
                let c = try d.singleValueContainer()
                if let i = try? c.decode(Int.self) { self = .int(i) } else { self = .str(try c.decode(String.self)) }
            }
        }
        func send(_ cmd: [String: Any]) throws -> (frames: [(Int, [UInt8])], answer: Answer) {
            input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: cmd) + Data("\n".utf8))
            while !buffer.contains(0x0A) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { throw YjsOracleTests.OracleError("protocol-peer.js exited") }
                buffer.append(chunk)
            }
            let nl = buffer.firstIndex(of: 0x0A)!
            let line = buffer[buffer.startIndex..<nl]
            buffer = Data(buffer[(nl + 1)...])
            let a = try JSONDecoder().decode(Answer.self, from: line)
            let frames = a.frames.map { e -> (Int, [UInt8]) in
                guard case .int(let c) = e[0], case .str(let h) = e[1] else { return (0, []) }
                return (c, [UInt8](hexString: h))
            }
            return (frames, a)
        }
        func close() { try? input.fileHandleForWriting.close(); process.waitUntilExit() }
    }

    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"), arguments: [1, 2, 3, 4, 5, 6])
    func clientsConvergeThroughTheStore(seed: Int) throws {
        guard Peers.nodeYjsAvailable else {
            if Peers.required { throw YjsOracleTests.OracleError("node with yjs not found") }
            return
        }
        let n = 2 + seed % 3
        let peer = try Peer(seed: seed, clients: n)
        defer { peer.close() }
        var o = DocumentStoreOptions()
        if seed % 2 == 1 {  // fold, coalesce and compact all the time
            o.foldMinPending = 2; o.foldRatio = 0; o.persistCompactionThreshold = 3; o.backgroundCompaction = false
        }
        let store = DocumentStore(persistence: InMemoryPersistence(), options: o)
        var rng = SeededRNG(seed: UInt64(seed))
        var queue: [(Int, [UInt8])] = []
        var handled = 0
        func deliver(_ c: Int, _ frame: [UInt8]) throws {
            queue += try peer.send(["op": "deliver", "client": c, "frame": hexString(frame)]).frames
        }
        func step() throws {
            let (c, frame) = queue.remove(at: Int.random(in: 0..<queue.count, using: &rng))
            handled += 1
            let r = try store.handle(room: "room", frame: frame, from: ConnectionID(c))
            for f in r.reply { try deliver(c, f) }
            for f in r.broadcast { for other in 0..<n { try deliver(other, f) } }
        }
        for c in 0..<n {
            queue += try peer.send(["op": "connect", "client": c]).frames
            for f in try store.openingFrames(room: "room") { try deliver(c, f) }
        }
        for _ in 0..<150 {
            queue += try peer.send(["op": "edit", "client": Int.random(in: 0..<n, using: &rng)]).frames
            for _ in 0..<Int.random(in: 0...3, using: &rng) where !queue.isEmpty { try step() }
        }
        while !queue.isEmpty && handled < 100_000 { try step() }
        #expect(queue.isEmpty, "frames kept circulating (awareness echo did not die out)")
        let check = try peer.send(["op": "check", "state": hexString(try store.encodedState(room: "room"))]).answer
        let clients = check.clients ?? []
        #expect(clients.count == n)
        #expect(Set(clients).count == 1, "clients diverged")
        #expect(check.server == clients.first, "store state differs from the clients")
        let everyone = (0..<n).map { UInt64(1000 + $0) }
        #expect(check.awareness == Array(repeating: everyone, count: n))
    }
}

/// The awareness table against y-protocols' `Awareness`: random batches (older, equal and newer
/// clocks, `null` removals) must be accepted or refused exactly as y-protocols does.
@Suite struct AwarenessOracleTests {
    struct Change: Decodable { var added: [UInt64]; var updated: [UInt64]; var removed: [UInt64] }
    struct Batch: Decodable { var update: String; var change: Change? }
    struct Run: Decodable { var batches: [Batch]; var states: [[Entry]] }
    enum Entry: Decodable {
        case int(UInt64), str(String)
        init(from d: Decoder) throws {
            let c = try d.singleValueContainer()
            if let i = try? c.decode(UInt64.self) { self = .int(i) } else { self = .str(try c.decode(String.self)) }
        }
    }

    @Test(.enabled(if: Peers.runNodeTests, "node+yjs not available"), arguments: [1, 2, 3])
    func matchesYProtocols(seed: Int) throws {
        guard Peers.nodeYjsAvailable else {
            if Peers.required { throw YjsOracleTests.OracleError("node with yjs not found") }
            return
        }
        let r = try Peers.run(["node", Peers.oracleDir.appendingPathComponent("awareness-oracle.js").path, "\(seed)", "400"])
        #expect(r.status == 0, "\(r.stderr)")
        let run = try JSONDecoder().decode(Run.self, from: r.stdout)
        var table = AwarenessTable()
        var bad = 0
        for (i, b) in run.batches.enumerated() {
            let c = table.apply(try AwarenessUpdate(decoding: [UInt8](hexString: b.update)), from: 1, now: .seconds(Int64(i)))
            let want = b.change.map { AwarenessTable.Change(added: $0.added, updated: $0.updated, removed: $0.removed) } ?? AwarenessTable.Change()
            if c != want { bad += 1 }
        }
        #expect(bad == 0, "\(bad)/\(run.batches.count) batches accepted differently")
        // final states: same clients with the same JSON values
        let want = run.states.compactMap { e -> (UInt64, String)? in
            guard case .int(let c) = e[0], case .str(let s) = e[1] else { return nil }
            return (c, s)
        }
        #expect(table.clientIDs == want.map(\.0))
        for (c, s) in want {
            let mine = table.state(of: c).map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? NSDictionary }
            let theirs = try JSONSerialization.jsonObject(with: Data(s.utf8)) as? NSDictionary
            #expect(mine == theirs, "client \(c)")
        }
    }
}
