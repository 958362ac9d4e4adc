// Client WebSocket text frames and POST /publish bodies: decode never traps, and parse
// (the optional form) agrees with decode (the throwing form).
import RelayProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let message = ClientMessage.parse(bytes)
    precondition((message != nil) == ((try? ClientMessage.decode(bytes)) != nil), "ClientMessage parse/decode disagree")
    let body = PublishBody.parse(bytes)
    precondition((body != nil) == ((try? PublishBody.decode(bytes)) != nil), "PublishBody parse/decode disagree")
    _ = Wire.parseBinaryFrame(bytes)
    return 0
}
