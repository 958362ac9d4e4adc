import Foundation

/// The soak's publication payload: `{"ts":<mono ns>,"seq":<n>,"ch":<channel index>,"pad":"xx…"}`,
/// padded to `size` bytes. `ch` lets a subscriber check a publication reached the right channel.
public enum SoakPayload {
    static let chKey = Array(#""ch":"#.utf8)

    public static func make(ts: UInt64, seq: UInt64, ch: Int, size: Int) -> [UInt8] {
        Payload.make(ts: ts, seq: seq, ch: ch, size: size)
    }

    public static func parse(_ b: UnsafeRawBufferPointer) -> (ts: UInt64, seq: UInt64, ch: Int)? {
        guard let t = Payload.number(after: Payload.tsKey, in: b, from: 0),
              let s = Payload.number(after: Payload.seqKey, in: b, from: t.end),
              let c = Payload.number(after: chKey, in: b, from: s.end) else { return nil }
        return (t.value, s.value, Int(c.value))
    }

    public static func parse(_ bytes: [UInt8]) -> (ts: UInt64, seq: UInt64, ch: Int)? {
        bytes.withUnsafeBytes { parse($0) }
    }
}

/// Just enough of lib0, y-protocols and the Yjs update v1 format for a load generator to type
/// into a Y.Text without a Y.Doc: each update is one ContentString item appended after the
/// client's previous one (the first has no origin: it goes to the start of the root text `t`).
public enum YjsWire {
    public static func writeVarUint(_ v: UInt64, into out: inout [UInt8]) {
        var v = v
        while v > 0x7F {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    public static func writeVarString(_ s: String, into out: inout [UInt8]) {
        let u = Array(s.utf8)
        writeVarUint(UInt64(u.count), into: &out)
        out += u
    }

    public static func writeVarBytes(_ b: [UInt8], into out: inout [UInt8]) {
        writeVarUint(UInt64(b.count), into: &out)
        out += b
    }

    /// A cursor over bytes; every read returns nil past the end.
    public struct Reader {
        let b: UnsafeRawBufferPointer
        public var pos = 0
        public init(_ b: UnsafeRawBufferPointer) { self.b = b }

        public mutating func varUint() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while pos < b.count {
                let x = b[pos]
                pos += 1
                v |= UInt64(x & 0x7F) << shift
                if x < 0x80 { return v }
                shift += 7
                if shift > 63 { return nil }
            }
            return nil
        }

        public mutating func byte() -> UInt8? {
            guard pos < b.count else { return nil }
            defer { pos += 1 }
            return b[pos]
        }

        public mutating func varString() -> String? {
            guard let n = varUint(), pos + Int(n) <= b.count else { return nil }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: b[pos..<(pos + Int(n))]), as: UTF8.self)
            pos += Int(n)
            return s
        }
    }

    /// Update v1 inserting `text` (ASCII) as client `client`'s item at `clock`, after its own
    /// item ending at `clock - 1` (none when `clock == 0`), in the root type `key`.
    public static func update(client: UInt64, clock: UInt64, text: String, key: String = "t") -> [UInt8] {
        var u: [UInt8] = []
        writeVarUint(1, into: &u)        // clients
        writeVarUint(1, into: &u)        // structs of this client
        writeVarUint(client, into: &u)
        writeVarUint(clock, into: &u)
        if clock == 0 {
            u.append(4)                  // ContentString, no origins: parent info follows
            writeVarUint(1, into: &u)    // parent is a root type (y key)
            writeVarString(key, into: &u)
        } else {
            u.append(4 | 0x80)           // ContentString with a left origin
            writeVarUint(client, into: &u)
            writeVarUint(clock - 1, into: &u)
        }
        writeVarString(text, into: &u)
        writeVarUint(0, into: &u)        // empty delete set
        return u
    }

    /// y-protocols sync step 1 with an empty state vector.
    public static let syncStep1Empty: [UInt8] = [0, 0, 1, 0]
    /// Sync step 2 carrying an empty update (`00 00`).
    public static let syncStep2Empty: [UInt8] = [0, 1, 2, 0, 0]

    public static func syncUpdate(_ update: [UInt8]) -> [UInt8] {
        var m: [UInt8] = [0, 2]
        writeVarBytes(update, into: &m)
        return m
    }

    public static func awareness(client: UInt64, clock: UInt64, stateJSON: String) -> [UInt8] {
        var inner: [UInt8] = []
        writeVarUint(1, into: &inner)
        writeVarUint(client, into: &inner)
        writeVarUint(clock, into: &inner)
        writeVarString(stateJSON, into: &inner)
        var m: [UInt8] = [1]
        writeVarBytes(inner, into: &m)
        return m
    }

    public enum Message: Equatable, Sendable {
        case step1
        /// Sync step 2: the update's byte length.
        case step2(updateBytes: Int)
        /// A sync update whose first struct is a string item of `client` at `clock` with `text`
        /// (nil text: some other first struct).
        case update(client: UInt64, clock: UInt64, text: String?)
        case awareness
        case other
    }

    /// Classifies a y-websocket message and, for an update, reads its first struct.
    public static func parse(_ b: UnsafeRawBufferPointer) -> Message {
        var r = Reader(b)
        guard let type = r.varUint() else { return .other }
        switch type {
        case 0:
            guard let sub = r.varUint() else { return .other }
            switch sub {
            case 0: return .step1
            case 1: return .step2(updateBytes: Int(r.varUint() ?? 0))
            case 2:
                guard r.varUint() != nil,                      // update length
                      let clients = r.varUint(), clients >= 1,
                      r.varUint() != nil,                      // structs
                      let client = r.varUint(), let clock = r.varUint(),
                      let info = r.byte() else { return .other }
                if info & 0x80 != 0 { guard r.varUint() != nil, r.varUint() != nil else { return .other } }
                if info & 0x40 != 0 { guard r.varUint() != nil, r.varUint() != nil else { return .other } }
                if info & 0xC0 == 0 {
                    guard let isKey = r.varUint() else { return .other }
                    if isKey == 1 { guard r.varString() != nil else { return .other } } else {
                        guard r.varUint() != nil, r.varUint() != nil else { return .other }
                    }
                    if info & 0x20 != 0 { guard r.varString() != nil else { return .other } }
                }
                let text = (info & 0x1F) == 4 ? r.varString() : nil
                return .update(client: client, clock: clock, text: text)
            default: return .other
            }
        case 1: return .awareness
        default: return .other
        }
    }

    public static func parse(_ bytes: [UInt8]) -> Message { bytes.withUnsafeBytes { parse($0) } }

    /// The soak's typed text: `s<seq>t<mono ns>;`.
    public static func text(seq: UInt64, ts: UInt64) -> String { "s\(seq)t\(ts);" }

    public static func parseText(_ s: String) -> (seq: UInt64, ts: UInt64)? {
        let u = Array(s.utf8)
        guard u.first == UInt8(ascii: "s"), let tIdx = u.firstIndex(of: UInt8(ascii: "t")), u.last == UInt8(ascii: ";") else { return nil }
        guard let seq = UInt64(String(decoding: u[1..<tIdx], as: UTF8.self)),
              let ts = UInt64(String(decoding: u[(tIdx + 1)..<(u.count - 1)], as: UTF8.self)) else { return nil }
        return (seq, ts)
    }
}
