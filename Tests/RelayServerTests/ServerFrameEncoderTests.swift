import RelayProtocol
import NIOCore
import NIOEmbedded
import NIOWebSocket
import RelayCore
import RelayWebSocket
import Testing

@Suite("Server frame encoding, decoded by NIO's WebSocketFrameDecoder")
struct ServerFrameEncoderTests {
    /// Decodes `bytes` with NIO's decoder (not ours) and returns the frames.
    func decode(_ buffer: ByteBuffer) throws -> [WebSocketFrame] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        try channel.writeInbound(buffer)
        var frames: [WebSocketFrame] = []
        while let f: WebSocketFrame = try channel.readInbound() { frames.append(f) }
        _ = try channel.finish()
        return frames
    }

    @Test("Every length encoding (7-bit, 16-bit, 64-bit) round-trips, text and binary, unmasked",
          arguments: [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
    func lengths(_ n: Int) throws {
        let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        for binary in [false, true] {
            let buffer = ServerFrameEncoder.encode(payload, binary: binary, allocator: ByteBufferAllocator())
            let frames = try decode(buffer)
            try #require(frames.count == 1)
            #expect(frames[0].fin && frames[0].maskKey == nil)
            #expect(frames[0].opcode == (binary ? .binary : .text))
            #expect(Array(frames[0].data.readableBytesView) == payload)
            #expect(buffer.readableBytes == payload.count + (n <= 125 ? 2 : n <= 65_535 ? 4 : 10))
        }
    }

    @Test("A frame shared by many outboxes is encoded once per thread; a different frame is not confused with it")
    func sharing() {
        let encoder = ServerFrameEncoder()
        let alloc = ByteBufferAllocator()
        let frame = OutboundFrame(kind: .text, bytes: Array(#"{"type":"message","n":1}"#.utf8))
        let copyOfFrame = frame  // what fan-out puts in a second outbox: same array storage
        let a = encoder.encode(frame, allocator: alloc)
        let b = encoder.encode(copyOfFrame, allocator: alloc)
        #expect(a.withUnsafeReadableBytes { $0.baseAddress } == b.withUnsafeReadableBytes { $0.baseAddress }, "not re-encoded")
        // Equal bytes in another array, or the same bytes as binary: encoded afresh and correct.
        let other = OutboundFrame(kind: .text, bytes: Array(#"{"type":"message","n":2}"#.utf8))
        let c = encoder.encode(other, allocator: alloc)
        #expect(Array(c.readableBytesView.dropFirst(2)) == other.bytes)
        let asBinary = encoder.encode(OutboundFrame(kind: .binary, bytes: other.bytes), allocator: alloc)
        #expect(asBinary.getInteger(at: asBinary.readerIndex, as: UInt8.self) == 0x82)
        #expect(a.getInteger(at: a.readerIndex, as: UInt8.self) == 0x81)
    }
}
