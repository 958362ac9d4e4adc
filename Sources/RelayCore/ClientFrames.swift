/// One frame received from a WebSocket client.
public enum ClientFrame: Sendable {
    case text([UInt8])
    case binary([UInt8])
}

extension RelayEngine {
    /// Handles one WebSocket client frame by the wordsocket protocol
    /// (contract §5.2), so transports need not: subscribe/unsubscribe (the
    /// engine enqueues the acks), publish, binary publish, presence, in-band
    /// `auth` (`verifyToken` maps a token to a grant; nil or a refused grant
    /// answers `{"type":"error","code":"unauthorized"}`, which the wordsocket
    /// client treats as a 4001 close), `pong`. Refusals are answered with
    /// `{"type":"error","code":…,"message":…,"channel":…}` frames; a
    /// malformed frame closes the connection with 1008 (after queued frames).
    /// Works in both single-node and broker mode.
    public func handleClientFrame(_ frame: ClientFrame, from conn: RelayConnection,
                                  verifyToken: (String) async -> ConnectionGrant?) async {
        if conn.isClosed { return }
        switch frame {
        case .binary(let bytes):
            guard let (channel, payload) = Wire.parseBinaryFrame(bytes) else {
                disconnect(conn, code: .policyViolation, reason: "malformed binary frame", flushPending: true)
                return
            }
            if case .failure(let e) = await publishBinary(from: conn, channel: channel, payload: Array(payload)) {
                replyError(e.code, "publish refused", channel: channel, to: conn)
            }
        case .text(let bytes):
            switch ClientMessage.parse(bytes) {
            case .subscribe(let channels, let positions)?:
                let result = await subscribe(conn, channels: channels, positions: positions)
                for entry in result.entries {
                    switch entry.outcome {
                    case .forbidden: replyError("forbidden", "subscribe refused", channel: entry.channel, to: conn)
                    case .invalidChannel: replyError("invalid_channel", "subscribe refused", channel: entry.channel, to: conn)
                    case .notProcessed where result.closedWith == nil:
                        replyError("unavailable", "subscribe failed, retry", channel: entry.channel, to: conn)
                    default: break
                    }
                }
            case .unsubscribe(let channels)?:
                unsubscribe(conn, channels: channels)
            case .publish(let channel, let event, let data, let key)?:
                if case .failure(let e) = await publish(from: conn, channel: channel, event: event, data: data, idempotencyKey: key) {
                    replyError(e.code, "publish refused", channel: channel, to: conn)
                }
            case .presence(let channel, let state)?:
                if case .failure(let e) = await setPresence(conn, channel: channel, state: state) {
                    replyError(e.code, "presence refused", channel: channel, to: conn)
                }
            case .auth(let token)?:
                guard let grant = await verifyToken(token), case .success = refreshGrant(conn, grant) else {
                    replyError("unauthorized", "token refused", channel: nil, to: conn)
                    return
                }
            case .pong?, .ping?:
                break
            case nil:
                disconnect(conn, code: .policyViolation, reason: "malformed frame", flushPending: true)
            }
        }
    }

    func replyError(_ code: String, _ message: String, channel: String?, to conn: RelayConnection) {
        guard !conn.isClosed else { return }
        send(Wire.error(code: code, message: message, channel: channel), to: conn)
    }
}
