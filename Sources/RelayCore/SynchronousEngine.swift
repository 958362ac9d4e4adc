import RelayProtocol

/// The engine's publish, subscribe and presence calls without `async`, for
/// callers on an event loop. Exists only while the broker is `.inProcess`
/// (`RelayEngine.synchronous`), where these calls never wait on anything, so
/// every answer means the same as the `async` one: there is no broker mode
/// in which a synchronous call could quietly answer "unavailable".
public struct SynchronousEngine: Sendable {
    let engine: RelayEngine

    /// Server publish; see `RelayEngine.publish(siteID:channel:event:data:idempotencyKey:)`.
    public func publish(siteID: String, channel: String, event: String, data: [UInt8],
                        idempotencyKey: String? = nil) -> Result<PublishReceipt, PublishError> {
        engine.publish(siteID: siteID, channel: channel, event: event, data: data, idempotencyKey: idempotencyKey)
    }

    /// Server binary publish.
    public func publishBinary(siteID: String, channel: String, payload: [UInt8]) -> Result<PublishReceipt, PublishError> {
        engine.publishBinary(siteID: siteID, channel: channel, payload: payload)
    }

    /// Client publish; see `RelayEngine.publish(from:channel:event:data:idempotencyKey:)`.
    public func publish(from conn: RelayConnection, channel: String, event: String, data: [UInt8],
                        idempotencyKey: String? = nil) -> Result<PublishReceipt, PublishError> {
        engine.publish(from: conn, channel: channel, event: event, data: data, idempotencyKey: idempotencyKey)
    }

    /// Client binary publish.
    public func publishBinary(from conn: RelayConnection, channel: String, payload: [UInt8]) -> Result<PublishReceipt, PublishError> {
        engine.publishBinary(from: conn, channel: channel, payload: payload)
    }

    /// Subscribe; see `RelayEngine.subscribe(_:channels:positions:)`.
    public func subscribe(_ conn: RelayConnection, channels: [String], positions: [String: StreamPosition] = [:]) -> SubscribeResult {
        engine.subscribe(conn, channels: channels, positions: positions)
    }

    /// Presence change; see `RelayEngine.setPresence(_:channel:state:)`.
    public func setPresence(_ conn: RelayConnection, channel: String, state: [UInt8]?) -> Result<PresenceOutcome, PresenceError> {
        engine.setPresence(conn, channel: channel, state: state)
    }

    /// Members of a channel (order of joining).
    public func presence(siteID: String, channel: String) -> [PresenceMember] {
        engine.presence(siteID: siteID, channel: channel)
    }

    /// Count-only presence query.
    public func presenceCount(siteID: String, channel: String) -> Int {
        engine.presenceCount(siteID: siteID, channel: channel)
    }
}
