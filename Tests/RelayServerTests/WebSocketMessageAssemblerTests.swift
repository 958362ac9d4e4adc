import NIOCore
import NIOWebSocket
import RelayWebSocket
import Testing

@Suite("WebSocket message rules (RFC 6455, no sockets)")
struct WebSocketMessageAssemblerTests {
    func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    @Test("A single-frame text message passes; fragments reassemble in order")
    func reassembly() throws {
        var a = WebSocketMessageAssembler(maxMessageBytes: 16)
        #expect(try a.append(opcode: .text, fin: true, payload: buffer(Array("héllo".utf8))) == .text(Array("héllo".utf8)))
        #expect(try a.append(opcode: .binary, fin: false, payload: buffer([1, 2])) == nil)
        #expect(try a.append(opcode: .continuation, fin: false, payload: buffer([3])) == nil)
        #expect(try a.append(opcode: .continuation, fin: true, payload: buffer([4])) == .binary([1, 2, 3, 4]))
        // The assembler is ready for the next message.
        #expect(try a.append(opcode: .binary, fin: true, payload: buffer([9])) == .binary([9]))
    }

    @Test("A UTF-8 character split across fragments is valid; an invalid message is 1007")
    func utf8() throws {
        var a = WebSocketMessageAssembler(maxMessageBytes: 64)
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        #expect(try a.append(opcode: .text, fin: false, payload: buffer([euro[0]])) == nil)
        #expect(try a.append(opcode: .continuation, fin: true, payload: buffer(Array(euro[1...]))) == .text(euro))
        #expect(throws: WebSocketViolation(code: 1007, reason: "invalid UTF-8")) {
            try a.append(opcode: .text, fin: true, payload: buffer([0x7B, 0xFF, 0xFE, 0x7D]))
        }
        // Overlong encoding and a UTF-16 surrogate are invalid too.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] {
            var b = WebSocketMessageAssembler(maxMessageBytes: 64)
            #expect(throws: WebSocketViolation.self) { try b.append(opcode: .text, fin: true, payload: buffer(bad)) }
        }
    }

    @Test("Fragmentation errors are 1002; the size limit counts the whole message (1009)")
    func errors() throws {
        var a = WebSocketMessageAssembler(maxMessageBytes: 4)
        #expect(throws: WebSocketViolation.self) { try a.append(opcode: .continuation, fin: true, payload: buffer([1])) }
        _ = try a.append(opcode: .text, fin: false, payload: buffer([0x61]))
        do {
            _ = try a.append(opcode: .binary, fin: true, payload: buffer([1]))
            Issue.record("a new message inside a fragmented one was accepted")
        } catch { #expect(error.code == 1002) }
        var b = WebSocketMessageAssembler(maxMessageBytes: 4)
        _ = try b.append(opcode: .binary, fin: false, payload: buffer([1, 2, 3]))
        do {
            _ = try b.append(opcode: .continuation, fin: true, payload: buffer([4, 5]))
            Issue.record("a 5-byte message passed a 4-byte limit")
        } catch { #expect(error.code == 1009) }
    }

    @Test("Frame checks: unmasked, reserved bits, reserved opcodes, long or fragmented control frames")
    func frameChecks() {
        let key = WebSocketMaskingKey([1, 2, 3, 4])
        func frame(_ op: WebSocketOpcode, fin: Bool = true, rsv1: Bool = false, mask: WebSocketMaskingKey?, length: Int = 1) -> WebSocketFrame {
            WebSocketFrame(fin: fin, rsv1: rsv1, opcode: op, maskKey: mask, data: ByteBuffer(repeating: 0x61, count: length))
        }
        #expect(throws: Never.self) { try WebSocketMessageAssembler.validate(frame(.text, mask: key)) }
        let bad: [(String, WebSocketFrame)] = [
            ("unmasked", frame(.text, mask: nil)),
            ("rsv1", frame(.text, rsv1: true, mask: key)),
            ("opcode 3", frame(WebSocketOpcode(encodedWebSocketOpcode: 3)!, mask: key)),
            ("opcode 0xB", frame(WebSocketOpcode(encodedWebSocketOpcode: 0xB)!, mask: key)),
            ("fragmented ping", frame(.ping, fin: false, mask: key)),
            ("126-byte ping", frame(.ping, mask: key, length: 126)),
        ]
        for (name, f) in bad {
            do {
                try WebSocketMessageAssembler.validate(f)
                Issue.record("\(name) passed")
            } catch { #expect(error.code == 1002, "\(name)") }
        }
    }

    @Test("Close frames: empty, codes allowed on the wire, 1-byte body, reason UTF-8")
    func closeFrames() throws {
        #expect(try WebSocketMessageAssembler.parseClose(ByteBuffer()).code == nil)
        var ok = ByteBuffer(); ok.writeInteger(UInt16(4000)); ok.writeString("bye ✓")
        let parsed = try WebSocketMessageAssembler.parseClose(ok)
        #expect(parsed.code == 4000 && parsed.reason == "bye ✓")
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            var b = ByteBuffer(); b.writeInteger(code)
            #expect(throws: WebSocketViolation.self, "code \(code)") { try WebSocketMessageAssembler.parseClose(b) }
        }
        for code: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999] {
            var b = ByteBuffer(); b.writeInteger(code)
            #expect(throws: Never.self, "code \(code)") { try WebSocketMessageAssembler.parseClose(b) }
        }
        do {
            _ = try WebSocketMessageAssembler.parseClose(ByteBuffer(bytes: [0x03]))
            Issue.record("1-byte close body accepted")
        } catch { #expect(error.code == 1002) }
        var badReason = ByteBuffer(); badReason.writeInteger(UInt16(1000)); badReason.writeBytes([0xCE, 0xBA, 0xFF])
        do {
            _ = try WebSocketMessageAssembler.parseClose(badReason)
            Issue.record("invalid UTF-8 reason accepted")
        } catch { #expect(error.code == 1007) }
    }

    @Test("Close reasons are cut to 123 bytes on a character boundary")
    func reasonTruncation() {
        let long = String(repeating: "é", count: 100)  // 200 bytes
        let cut = WebSocketMessageAssembler.truncatedReason(long)
        #expect(cut.count == 122)
        #expect(String(validating: cut, as: UTF8.self) != nil)
        #expect(WebSocketMessageAssembler.truncatedReason("short") == Array("short".utf8))
    }
}
