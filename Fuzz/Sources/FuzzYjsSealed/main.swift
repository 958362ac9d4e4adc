// Encrypted-room messages and the relay's store for them (EncryptedRoomStore): the input is a
// session of frames, each `flags (1 byte) | varUint length | frame`, flags bit 0 = the sender may
// write, bits 1–2 = which of three connections sends it. Decoding never traps and a decoded
// message re-encodes to bytes that decode to it; the store never traps, and after every frame its
// room keeps its invariants: the snapshot covers no more than the log's last sequence, log
// sequences increase and lie after the snapshot, the room stays within its byte limit, and a sync
// request from scratch replays exactly that: the snapshot (if any), the log in order, `synced`.
import YjsCodec
import YjsRooms

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    if let m = try? EncryptedRoomMessage(decoding: bytes) {
        precondition((try? EncryptedRoomMessage(decoding: m.encoded())) == m, "encrypted-room message round trip")
    }
    var options = EncryptedRoomOptions()
    options.maxMessageBytes = 256
    options.maxRoomBytes = 2048
    options.maxAwarenessBytes = 64
    options.compactAfterEntries = 4
    options.compactAfterBytes = 512
    let store = EncryptedRoomStore(persistence: InMemoryPersistence(), options: options)
    let room = "site:f:yjs-e2e:fuzz"
    var d = Lib0Decoder(bytes)
    var frames = 0
    while !d.isAtEnd && frames < 64 {
        guard let flags = try? d.readUInt8(), let frame = try? d.readVarBytes() else { break }
        frames += 1
        let peer = UInt64(1 + (flags >> 1) % 3)
        let response = try? store.handle(room: room, frame: frame, from: peer, canWrite: flags & 1 == 1)
        for f in (response?.reply ?? []) + (response?.broadcast ?? []) {
            precondition((try? EncryptedRoomMessage(decoding: f)) != nil, "the relay sends only messages of the protocol")
        }
        guard let (through, seqs, size) = try? store.describe(room: room) else { preconditionFailure("describe failed") }
        precondition(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }, "log sequences increase")
        precondition(seqs.allSatisfy { $0 > through }, "log entries lie after the snapshot")
        precondition(size <= options.maxRoomBytes, "room within its byte limit")
        let replay = (try? store.handle(room: room, frame: EncryptedRoomMessage.syncRequest(knownSeq: 0).encoded(), from: 9, canWrite: false))?.reply ?? []
        let messages = replay.compactMap { try? EncryptedRoomMessage(decoding: $0) }
        precondition(messages.count == replay.count, "replay decodes")
        var i = 0
        if through > 0 {
            guard case .storedSnapshot(let t, _)? = messages.first, t == through else { preconditionFailure("replay starts with the snapshot") }
            i = 1
        }
        for seq in seqs {
            guard i < messages.count, case .logEntry(let q, _) = messages[i], q == seq else { preconditionFailure("replay holds the log in order") }
            i += 1
        }
        let last = max(through, seqs.last ?? 0)
        guard i < messages.count, case .synced(let l, 9) = messages[i], l >= last else { preconditionFailure("replay ends with synced") }
    }
    return 0
}
