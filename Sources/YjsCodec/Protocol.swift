// y-protocols / y-websocket messages: sync, awareness, auth, query-awareness.

/// A y-protocols sync sub-message.
public enum SyncMessage: Sendable, Equatable {
    /// "Here is my state vector; send what I miss."
    case step1(stateVector: [UInt8])
    /// Answer to step 1: an update.
    case step2(update: [UInt8])
    /// An incremental update.
    case update([UInt8])
}

/// One y-websocket message (exactly one per WebSocket binary frame).
public enum ProtocolMessage: Sendable, Equatable {
    case sync(SyncMessage)
    /// An encoded awareness update (see `AwarenessUpdate`).
    case awareness([UInt8])
    /// Auth sub-type 0: permission denied, with a reason.
    case authPermissionDenied(reason: String)
    case queryAwareness

    /// Outer message type numbers.
    public enum Kind: UInt64, Sendable { case sync = 0, awareness = 1, auth = 2, queryAwareness = 3 }

    /// Decodes one message. Trailing bytes after the message are rejected.
    public init(decoding bytes: [UInt8]) throws {
        var d = Lib0Decoder(bytes)
        let typeOffset = d.position
        switch try d.readVarUInt() {
        case 0:
            let subOffset = d.position
            switch try d.readVarUInt() {
            case 0: self = .sync(.step1(stateVector: try d.readVarBytes()))
            case 1: self = .sync(.step2(update: try d.readVarBytes()))
            case 2: self = .sync(.update(try d.readVarBytes()))
            default: throw YjsDecodingError.malformed("unknown sync message type", offset: subOffset)
            }
        case 1:
            self = .awareness(try d.readVarBytes())
        case 2:
            let subOffset = d.position
            guard try d.readVarUInt() == 0 else {
                throw YjsDecodingError.malformed("unknown auth message type", offset: subOffset)
            }
            self = .authPermissionDenied(reason: try d.readVarString())
        case 3:
            self = .queryAwareness
        default:
            throw YjsDecodingError.malformed("unknown message type", offset: typeOffset)
        }
        if !d.isAtEnd { throw YjsDecodingError.trailingBytes(offset: d.position) }
    }

    /// The wire bytes of this message.
    public func encoded() -> [UInt8] {
        var e = Lib0Encoder()
        switch self {
        case .sync(let s):
            e.writeVarUInt(0)
            switch s {
            case .step1(let sv): e.writeVarUInt(0); e.bytes.reserveCapacity(sv.count + 8); e.writeVarBytes(sv)
            case .step2(let u): e.writeVarUInt(1); e.bytes.reserveCapacity(u.count + 8); e.writeVarBytes(u)
            case .update(let u): e.writeVarUInt(2); e.bytes.reserveCapacity(u.count + 8); e.writeVarBytes(u)
            }
        case .awareness(let a):
            e.writeVarUInt(1); e.writeVarBytes(a)
        case .authPermissionDenied(let reason):
            e.writeVarUInt(2); e.writeVarUInt(0); e.writeVarString(reason)
        case .queryAwareness:
            e.writeVarUInt(3)
        }
        return e.bytes
    }
}

/// One client's entry in an awareness update.
public struct AwarenessEntry: Sendable, Equatable {
    public var clientID: UInt64
    public var clock: UInt64
    /// The state as JSON text, exactly as received; `null` means the client is gone.
    public var state: String

    public init(clientID: UInt64, clock: UInt64, state: String) {
        self.clientID = clientID; self.clock = clock; self.state = state
    }

    /// Whether the state is JSON `null` (a removal).
    public var isRemoval: Bool {
        state.utf8.filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }.elementsEqual("null".utf8)
    }
}

/// An awareness update: `vu(n)` then n × (`vu(clientID)`, `vu(clock)`, `vs(JSON state)`).
public struct AwarenessUpdate: Sendable, Equatable {
    public var entries: [AwarenessEntry]

    public init(entries: [AwarenessEntry]) { self.entries = entries }

    /// Decodes an awareness update. `stateIsValid` judges each state's text
    /// (a server passes its JSON check: peers `JSON.parse` the states); the
    /// codec itself only reads lib0.
    public init(decoding bytes: [UInt8], stateIsValid: (String) -> Bool = { _ in true }) throws {
        var d = Lib0Decoder(bytes)
        let n = try d.readCount(minBytesPerElement: 3)
        var entries: [AwarenessEntry] = []
        entries.reserveCapacity(n)
        for _ in 0..<n {
            let id = try d.readVarUInt()
            let clock = try d.readVarUInt()
            let p = d.position
            let state = try d.readVarString()
            guard stateIsValid(state) else { throw YjsDecodingError.malformed("awareness state is not JSON", offset: p) }
            entries.append(AwarenessEntry(clientID: id, clock: clock, state: state))
        }
        if !d.isAtEnd { throw YjsDecodingError.trailingBytes(offset: d.position) }
        self.entries = entries
    }

    public func encoded() -> [UInt8] {
        var e = Lib0Encoder()
        e.writeVarUInt(UInt64(entries.count))
        for x in entries {
            e.writeVarUInt(x.clientID); e.writeVarUInt(x.clock); e.writeVarString(x.state)
        }
        return e.bytes
    }
}

