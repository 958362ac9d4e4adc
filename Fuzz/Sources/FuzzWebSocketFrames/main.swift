// WebSocket frame parsing and message assembly, as a connection reads them: the input is the
// client's byte stream, decoded by NIO's WebSocketFrameDecoder (in an EmbeddedChannel, as relayd's
// pipeline does; on every other input, the costly part) or by the parser below, then checked and reassembled by RelayWebSocket (`validate`, unmasking,
// `parseClose`, `WebSocketMessageAssembler.append`). Oracles:
// - NIO's decoder and an independent RFC 6455 frame parser written here agree on every frame
//   (header bits, opcode, mask key, payload) and on where the stream becomes invalid;
// - RelayWebSocket and an independent model of RFC 6455 §5.4/§5.5/§8.1 written here agree, frame by
//   frame, on each completed message and on each violation's close code (1002, 1007, 1009);
// - close reasons are cut to ≤ 123 bytes of whole characters.
import NIOCore
import NIOEmbedded
import NIOWebSocket
import RelayWebSocket

/// `precondition` that keeps its message in release builds (libFuzzer prints it with the crash).
@inline(__always) func ensure(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}

let maxFrame = 1 << 12
let maxMessage = 1 << 10

struct RefFrame: Equatable {
    var fin: Bool, rsv: UInt8, opcode: UInt8, mask: [UInt8]?, payload: [UInt8]
}

/// RFC 6455 §5.2 framing, with the limits NIO's decoder enforces. Returns the complete frames and
/// whether the stream was invalid at the point where it stopped.
func referenceFrames(_ b: [UInt8]) -> (frames: [RefFrame], invalid: Bool) {
    var out: [RefFrame] = [], i = 0
    while i + 2 <= b.count {
        let b0 = b[i], b1 = b[i + 1]
        var p = i + 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            guard p + 2 <= b.count else { break }
            length = UInt64(b[p]) << 8 | UInt64(b[p + 1]); p += 2
        } else if length == 127 {
            guard p + 8 <= b.count else { break }
            length = b[p..<(p + 8)].reduce(0) { $0 << 8 | UInt64($1) }; p += 8
            if length > UInt64(Int.max) { return (out, true) }
        }
        let control = b0 & 0x08 != 0
        if length > UInt64(maxFrame) || (control && b0 & 0x80 == 0) || (control && length > 125) { return (out, true) }
        var mask: [UInt8]? = nil
        if b1 & 0x80 != 0 {
            guard p + 4 <= b.count else { break }
            mask = Array(b[p..<(p + 4)]); p += 4
        }
        guard p + Int(length) <= b.count else { break }
        out.append(RefFrame(fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0F, mask: mask,
                            payload: Array(b[p..<(p + Int(length))])))
        i = p + Int(length)
    }
    return (out, false)
}

func isUTF8(_ b: [UInt8]) -> Bool { Array(String(decoding: b, as: UTF8.self).utf8) == b }

enum Outcome: Equatable { case none, message(WebSocketMessage), violation(UInt16), closed }

/// The RFC 6455 rules for a server reading client frames, written from the RFC.
struct ReferenceAssembler {
    var inMessage = false, text = false, buffer: [UInt8] = []
    mutating func feed(_ f: RefFrame) -> Outcome {
        guard let mask = f.mask else { return .violation(1002) }
        guard f.rsv == 0 else { return .violation(1002) }
        let payload = f.payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        switch f.opcode {
        case 0x9, 0xA:
            return .none
        case 0x8:
            if payload.isEmpty { return .closed }
            if payload.count == 1 { return .violation(1002) }
            let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code) else {
                return .violation(1002)
            }
            return isUTF8(Array(payload[2...])) ? .closed : .violation(1007)
        case 0x1, 0x2:
            if inMessage { return .violation(1002) }
            if payload.count > maxMessage { return .violation(1009) }
            if !f.fin { inMessage = true; text = f.opcode == 1; buffer = payload; return .none }
            return complete(text: f.opcode == 1, payload)
        case 0x0:
            if !inMessage { return .violation(1002) }
            if buffer.count + payload.count > maxMessage { return .violation(1009) }
            buffer += payload
            if !f.fin { return .none }
            inMessage = false
            return complete(text: text, buffer)
        default:
            return .violation(1002)
        }
    }
    func complete(text: Bool, _ b: [UInt8]) -> Outcome {
        text ? (isUTF8(b) ? .message(.text(b)) : .violation(1007)) : .message(.binary(b))
    }
}

/// What RelayWebSocket does with one decoded frame (WebSocketConnectionHandler.channelRead).
func relay(_ frame: WebSocketFrame, _ a: inout WebSocketMessageAssembler) -> Outcome {
    do {
        try WebSocketMessageAssembler.validate(frame)
        var payload = frame.data
        if let key = frame.maskKey { payload.webSocketUnmask(key) }
        switch frame.opcode {
        case .ping, .pong: return .none
        case .connectionClose:
            let (_, reason) = try WebSocketMessageAssembler.parseClose(payload)
            let cut = WebSocketMessageAssembler.truncatedReason(reason)
            ensure(cut.count <= 123 && isUTF8(cut) && Array(reason.utf8).starts(with: cut), "close reason cut badly")
            return .closed
        default:
            return try a.append(opcode: frame.opcode, fin: frame.fin, payload: payload).map(Outcome.message) ?? .none
        }
    } catch {
        return .violation(error.code)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let (refFrames, refInvalid) = referenceFrames(bytes)
    var nioFrames: [WebSocketFrame] = []
    if bytes.count % 2 == 0 {
        // NIO's decoder in a channel (the costly part), on every other input.
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrame)))
        var nioInvalid = false
        do {
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        } catch {
            nioInvalid = true
        }
        while let f = try? channel.readInbound(as: WebSocketFrame.self) { nioFrames.append(f) }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        ensure(nioInvalid == refInvalid, "NIO's decoder and the reference disagree on validity")
        ensure(nioFrames.count == refFrames.count, "NIO's decoder and the reference found different frames")
    } else {
        // The reference's frames, as NIO would have made them.
        nioFrames = refFrames.map { r in
            WebSocketFrame(fin: r.fin, rsv1: r.rsv & 4 != 0, rsv2: r.rsv & 2 != 0, rsv3: r.rsv & 1 != 0,
                           opcode: WebSocketOpcode(encodedWebSocketOpcode: r.opcode)!,
                           maskKey: r.mask.map { WebSocketMaskingKey($0)! }, data: ByteBuffer(bytes: r.payload))
        }
    }
    var assembler = WebSocketMessageAssembler(maxMessageBytes: maxMessage)
    var model = ReferenceAssembler()
    for (f, r) in zip(nioFrames, refFrames) {
        let got = RefFrame(fin: f.fin, rsv: (f.rsv1 ? 4 : 0) | (f.rsv2 ? 2 : 0) | (f.rsv3 ? 1 : 0),
                           opcode: UInt8(webSocketOpcode: f.opcode), mask: f.maskKey.map(Array.init),
                           payload: Array(f.data.readableBytesView))
        ensure(got == r, "NIO's decoder and the reference decoded a frame differently")
        let outcome = relay(f, &assembler)
        let expected = model.feed(r)
        ensure(outcome == expected, "RelayWebSocket: \(outcome), the RFC model: \(expected)")
        if case .violation = outcome { break }
        if case .closed = outcome { break }
    }
    return 0
}
