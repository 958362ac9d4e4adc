// The transport sketch from Docs/embedding.md, compiled and exercised.
import RelayProtocol
import Synchronization
import Testing
import RelayCore

// MARK: - What a transport provides (Hummingbird/Vapor/NIO map onto this)

/// The minimum a WebSocket library gives: write a frame, close.
protocol WebSocketLike: Sendable {
    func writeText(_ bytes: [UInt8]) async throws
    func writeBinary(_ bytes: [UInt8]) async throws
    func close(code: UInt16, reason: String) async
}

/// One WebSocket session on top of RelayCore. `token` verification is the
/// server's job; here the grant is given.
struct RelayWebSocketSession {
    let engine: RelayEngine
    let socket: any WebSocketLike

    /// Runs the session: `inbound` yields the client's frames (text or binary).
    func run(grant: ConnectionGrant, inbound: some AsyncSequence<InboundFrame, Never>,
             verify: @Sendable (String) -> ConnectionGrant?) async {
        let conn: RelayConnection
        switch engine.connect(grant) {
        case .success(let c): conn = c
        case .failure(let refusal):
            await socket.close(code: refusal.code.rawValue, reason: refusal.reason)
            return
        }
        await withTaskGroup(of: Void.self) { group in
            // Writer: the only task that writes to the socket.
            group.addTask {
                for await item in conn.items {
                    switch item {
                    case .frame(let f):
                        do {
                            if f.kind == .binary { try await socket.writeBinary(f.bytes) } else { try await socket.writeText(f.bytes) }
                        } catch {
                            engine.disconnect(conn, code: .normal, reason: "write failed")
                        }
                    case .close(let code, let reason):
                        await socket.close(code: code.rawValue, reason: reason)
                    }
                }
            }
            // Reader: maps client frames to engine calls.
            for await frame in inbound {
                if conn.isClosed { break }
                switch frame {
                case .binary(let bytes):
                    guard let (channel, payload) = Wire.parseBinaryFrame(bytes) else {
                        engine.disconnect(conn, code: .policyViolation, reason: "malformed binary frame", flushPending: true); break
                    }
                    if case .failure(let e) = await engine.publishBinary(from: conn, channel: channel, payload: Array(payload)) {
                        engine.send(Wire.error(code: e.code, message: "publish refused", channel: channel), to: conn)
                    }
                case .text(let bytes):
                    await handle(ClientMessage.parse(bytes), conn: conn, verify: verify)
                }
            }
            engine.disconnect(conn)  // socket gone: presence leaves at once
        }
    }

    func handle(_ message: ClientMessage?, conn: RelayConnection, verify: (String) -> ConnectionGrant?) async {
        switch message {
        case .subscribe(let channels, let positions)?:
            let result = await engine.subscribe(conn, channels: channels, positions: positions)
            for entry in result.entries where entry.outcome == .forbidden || entry.outcome == .invalidChannel {
                engine.send(Wire.error(code: entry.outcome == .forbidden ? .forbidden : .invalidChannel,
                                       message: "subscribe refused", channel: entry.channel), to: conn)
            }
        case .unsubscribe(let channels)?:
            engine.unsubscribe(conn, channels: channels)
        case .publish(let channel, let event, let data, let key)?:
            if case .failure(let e) = await engine.publish(from: conn, channel: channel, event: event, data: data, idempotencyKey: key) {
                engine.send(Wire.error(code: e.code, message: "publish refused", channel: channel), to: conn)
            }
        case .presence(let channel, let state)?:
            if case .failure(let e) = await engine.setPresence(conn, channel: channel, state: state) {
                engine.send(Wire.error(code: e.code, message: "presence refused", channel: channel), to: conn)
            }
        case .auth(let token)?:
            guard let grant = verify(token), case .success = engine.refreshGrant(conn, grant) else {
                // The wordsocket client treats this as a 4001 close.
                engine.send(Wire.error(code: .unauthorized, message: "token refused"), to: conn)
                return
            }
        case .pong?, .ping?:
            break
        case nil:
            engine.disconnect(conn, code: .policyViolation, reason: "malformed frame", flushPending: true)
        }
    }
}

enum InboundFrame: Sendable {
    case text([UInt8])
    case binary([UInt8])
}

// MARK: - Test double and test

final class RecordingSocket: WebSocketLike {
    let log = Mutex<[String]>([])
    func writeText(_ bytes: [UInt8]) async throws { log.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
    func writeBinary(_ bytes: [UInt8]) async throws { log.withLock { $0.append("binary \(bytes.count)") } }
    func close(code: UInt16, reason: String) async { log.withLock { $0.append("close \(code)") } }
}

@Suite struct EmbeddingExampleTests {
    @Test func sessionSubscribesPublishesAndCloses() async throws {
        let fx = Fixture()
        let socket = RecordingSocket()
        let session = RelayWebSocketSession(engine: fx.engine, socket: socket)
        let (inbound, input) = AsyncStream<InboundFrame>.makeStream()
        let grant = fx.grant()
        let run = Task { await session.run(grant: grant, inbound: inbound, verify: { _ in nil }) }

        input.yield(.text(Array("{\"type\":\"subscribe\",\"channels\":[\"events\",\"site:\(fx.siteB.siteID):x\"]}".utf8)))
        input.yield(.text(Array("{\"type\":\"message\",\"channel\":\"events\",\"event\":\"hi\",\"data\":{\"a\":1}}".utf8)))
        input.yield(.binary([0, 6] + Array("events".utf8) + [1, 2]))
        input.yield(.text(Array("{\"type\":\"auth\",\"token\":\"bad\"}".utf8)))
        input.yield(.text(Array("not json".utf8)))
        input.finish()
        await run.value

        let log = socket.log.withLock { $0 }
        #expect(log.count == 6)
        #expect(log.first?.hasPrefix("{\"type\":\"subscribed\",\"channels\":[\"events\"]") == true)
        #expect(log.dropFirst().first?.hasPrefix("{\"type\":\"error\",\"code\":\"forbidden\"") == true)
        #expect(log.contains { $0.hasPrefix("{\"type\":\"message\",\"channel\":\"events\",\"event\":\"hi\",\"data\":{\"a\":1},\"offset\":1") })
        #expect(log.contains("binary \(2 + 6 + 2)"))
        #expect(log.contains { $0.hasPrefix("{\"type\":\"error\",\"code\":\"unauthorized\"") })
        #expect(log.last == "close 1008")
        #expect(fx.engine.connectionCount == 0)
    }
}
