import RelayProtocol
import NIOCore
import NIOPosix
import RelayCore

/// Encodes server-to-client data frames (unmasked, RFC 6455 §5.2) straight
/// into one `ByteBuffer` each. The last frame encoded on each thread is kept:
/// a publication is one `OutboundFrame` shared by every subscriber's outbox,
/// so when an event loop writes it to many connections it is encoded once and
/// the same buffer (reference-counted, not copied) goes to every socket.
public final class ServerFrameEncoder: Sendable {
    public init() {}
    private let lastFrame = ThreadSpecificVariable<Slot>()

    /// One thread's last frame; only that thread touches it.
    private final class Slot: @unchecked Sendable {
        var bytes: [UInt8] = []
        var binary = false
        var buffer: ByteBuffer?
    }

    public func encode(_ frame: OutboundFrame, allocator: ByteBufferAllocator) -> ByteBuffer {
        let binary = frame.kind == .binary
        let slot: Slot
        if let s = lastFrame.currentValue {
            slot = s
            // Same array storage (kept alive by the slot, so it cannot have been reused) = same frame.
            if let buffer = s.buffer, s.binary == binary, Self.sameStorage(s.bytes, frame.bytes) { return buffer }
        } else {
            slot = Slot()
            lastFrame.currentValue = slot
        }
        let buffer = Self.encode(frame.bytes, binary: binary, allocator: allocator)
        slot.bytes = frame.bytes
        slot.binary = binary
        slot.buffer = buffer
        return buffer
    }

    public static func encode(_ payload: [UInt8], binary: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: payload.count + 10)
        buffer.writeInteger(UInt8(0x80 | (binary ? 0x2 : 0x1)))
        switch payload.count {
        case 0...125:
            buffer.writeInteger(UInt8(payload.count))
        case 126...0xFFFF:
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(payload.count))
        default:
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(payload.count))
        }
        buffer.writeBytes(payload)
        return buffer
    }

    private static func sameStorage(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in pa.baseAddress == pb.baseAddress } }
    }
}

/// Sits on the head side of NIO's frame encoder, so encoded frames skip the
/// encoder but still pass the handlers nearer the socket (TLS); it only lends
/// its context.
public final class RawFrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer
    public init() {}

    private(set) var context: ChannelHandlerContext?

    public func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    public func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Writes an encoded frame toward the socket (no flush).
    func write(_ buffer: ByteBuffer) {
        context?.write(NIOAny(buffer), promise: nil)
    }
}
