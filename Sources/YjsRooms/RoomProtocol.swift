import YjsCodec
// y-websocket message handling on top of the store, for a WebSocket room handler.

/// Frames produced by handling one incoming message.
public struct RoomResponse: Sendable, Equatable {
    /// Frames for the sending connection only.
    public var reply: [[UInt8]] = []
    /// Frames for every connection of the room, including the sender (y-websocket echoes).
    public var broadcast: [[UInt8]] = []
    public init(reply: [[UInt8]] = [], broadcast: [[UInt8]] = []) { self.reply = reply; self.broadcast = broadcast }
}

extension DocumentStore {
    /// Frames to send when a connection opens: the room's sync step 1, then all awareness
    /// states if there are any (as the y-websocket server does).
    public func openingFrames(room: String) throws -> [[UInt8]] {
        var frames = [ProtocolMessage.sync(.step1(stateVector: try stateVector(room: room).encoded())).encoded()]
        if let a = try awarenessStates(room: room) { frames.append(ProtocolMessage.awareness(a).encoded()) }
        return frames
    }

    /// Handles one y-websocket frame from `connection`:
    /// - sync step 1 → reply with sync step 2 (exactly the missing part; always answered);
    /// - sync step 2 / update → stored durably, then broadcast as an update if it added anything
    ///   (dropped when `readOnly`);
    /// - awareness → accepted entries broadcast (stale ones dropped);
    /// - query-awareness → reply with all states; auth from a client → ignored.
    /// Malformed frames throw `DocumentStoreError.invalidInput` (close the connection).
    public func handle(room: String, frame: [UInt8], from connection: ConnectionID, readOnly: Bool = false) throws -> RoomResponse {
        let message: ProtocolMessage
        do { message = try ProtocolMessage(decoding: frame) } catch let e as YjsDecodingError {
            throw DocumentStoreError.invalidInput(e)
        }
        switch message {
        case .sync(.step1(let sv)):
            let update = try syncStep2(room: room, forEncodedStateVector: sv)
            return RoomResponse(reply: [ProtocolMessage.sync(.step2(update: update)).encoded()])
        case .sync(.step2(let update)), .sync(.update(let update)):
            if readOnly { return RoomResponse() }
            let applied = try applyUpdate(room: room, update: update)
            return applied.changed ? RoomResponse(broadcast: [ProtocolMessage.sync(.update(update)).encoded()]) : RoomResponse()
        case .awareness(let a):
            guard let changed = try applyAwareness(room: room, update: a, from: connection) else { return RoomResponse() }
            return RoomResponse(broadcast: [ProtocolMessage.awareness(changed).encoded()])
        case .queryAwareness:
            guard let all = try awarenessStates(room: room) else { return RoomResponse() }
            return RoomResponse(reply: [ProtocolMessage.awareness(all).encoded()])
        case .authPermissionDenied:
            return RoomResponse()
        }
    }

    /// The connection closed: frames to broadcast to the remaining connections (its awareness
    /// clients as `null`), possibly none.
    public func close(room: String, connection: ConnectionID) throws -> [[UInt8]] {
        guard let removed = try connectionClosed(room: room, connection: connection) else { return [] }
        return [ProtocolMessage.awareness(removed).encoded()]
    }
}
