// Strict base64 (standard and URL): whatever decodes re-encodes to the same text.
import RelayCrypto

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: start, count: count)
    for variant in [Base64.Variant.standard, .url] {
        if let decoded = Base64.decode(raw, variant) {
            let text = Base64.encode(decoded, variant)
            precondition(Array(text.utf8) == Array(raw), "base64 \(variant): decode then encode changed the text")
        }
    }
    return 0
}
