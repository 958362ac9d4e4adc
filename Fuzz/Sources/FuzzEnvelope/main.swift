// Payload envelopes v1 and v2: opening arbitrary bytes never traps and never "succeeds"
// without the key's authentication tag.
import RelayCrypto

let key = SecureBytes(copying: [UInt8](repeating: 7, count: 32))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    _ = try? EnvelopeV1.open(bytes, key: key)
    _ = try? EnvelopeV2.open(bytes, channel: "site:fuzz:events") { _ in key }
    return 0
}
