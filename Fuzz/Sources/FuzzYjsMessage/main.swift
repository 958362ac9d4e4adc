// y-protocols messages (sync steps, updates, awareness, auth): decoding never traps, and a
// decoded message re-encodes to bytes that decode to the same message.
import YjsCodec

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    if let message = try? ProtocolMessage(decoding: bytes) {
        precondition((try? ProtocolMessage(decoding: message.encoded())) == message, "y-protocols message round trip")
    }
    if let awareness = try? AwarenessUpdate(decoding: bytes) {
        precondition((try? AwarenessUpdate(decoding: awareness.encoded())) == awareness, "awareness round trip")
    }
    _ = try? StateVector(decoding: bytes)
    return 0
}
