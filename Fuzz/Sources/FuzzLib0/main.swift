// lib0 decoder primitives, directly: the first byte picks a sequence of reads, the rest is the
// input. Oracles: a varUint/varInt re-encodes (minimally) to bytes that decode to the same value,
// and never exceeds 2^53-1; readAny and skipAny agree on success and on the bytes consumed, and an
// `any` value re-encodes to bytes that decode to the same encoding; strings are valid exactly when
// Swift's UTF-8 validation says so (no surrogates, overlongs or values above U+10FFFF) and their
// UTF-16 count is Swift's; readCount never announces more elements than bytes remain.
import YjsCodec

/// `precondition` that keeps its message in release builds (libFuzzer prints it with the crash).
@inline(__always) func ensure(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}

func anyEncoding(_ v: Lib0Any) -> [UInt8] {
    var e = Lib0Encoder()
    e.writeAny(v)
    return e.bytes
}

func step(_ op: UInt8, _ d: inout Lib0Decoder) throws {
    let start = d.position
    switch op % 8 {
    case 0:
        let v = try d.readVarUInt()
        ensure(v <= lib0MaxSafeInteger, "varUint above 2^53-1")
        var e = Lib0Encoder()
        e.writeVarUInt(v)
        var r = Lib0Decoder(e.bytes)
        let back = try r.readVarUInt()
        ensure(back == v && r.isAtEnd, "varUint round trip")
        ensure(e.bytes.count <= d.position - start, "minimal varUint longer than the input's")
    case 1:
        let (m, neg) = try d.readVarIntSignMagnitude()
        ensure(m <= lib0MaxSafeInteger, "varInt above 2^53-1")
        var e = Lib0Encoder()
        e.writeVarInt(magnitude: m, negative: neg)
        var r = Lib0Decoder(e.bytes)
        let (m2, neg2) = try r.readVarIntSignMagnitude()
        ensure(m2 == m && neg2 == neg && r.isAtEnd, "varInt round trip")
        var r2 = Lib0Decoder(d.bytes, range: start..<d.end)
        let signed = try r2.readVarInt()
        ensure(signed == (neg ? -Int64(m) : Int64(m)), "readVarInt and readVarIntSignMagnitude disagree")
    case 2:
        var skip = d
        let skipped = Result { try skip.skipAny() }
        let value = Result { try d.readAny() }
        switch (value, skipped) {
        case (.success(let v), .success):
            ensure(skip.position == d.position, "readAny and skipAny consumed different lengths")
            let enc = anyEncoding(v)
            var r = Lib0Decoder(enc)
            let again = try r.readAny()
            ensure(r.isAtEnd && anyEncoding(again) == enc, "any round trip")
        case (.failure, .failure): throw YjsDecodingError.malformed("any", offset: start)
        default: fatalError("readAny and skipAny disagree")
        }
    case 3:
        let valid = Result { try d.readVarStringRange() }
        var c = Lib0Decoder(d.bytes, range: start..<d.end)
        let counted = Result { try c.readVarStringRangeCountingUTF16() }
        var raw = Lib0Decoder(d.bytes, range: start..<d.end)
        if let r = try? raw.readVarBytesRange() {
            let swift = String(validating: d.bytes[r], as: UTF8.self)
            ensure((try? valid.get()) == (swift == nil ? nil : r), "UTF-8 validation differs from Swift's")
            if let (r2, n) = try? counted.get() {
                ensure(r2 == r && swift != nil && n == UInt64(swift!.utf16.count), "UTF-16 count differs from Swift's")
            } else {
                ensure(swift == nil, "counting validation refused valid UTF-8")
            }
        }
        _ = try valid.get()
    case 4:
        let n = try d.readCount(minBytesPerElement: Int(op >> 3) % 4)
        let per = Int(op >> 3) % 4
        ensure(per == 0 || n * per <= d.remaining, "readCount allowed more elements than bytes")
    case 5:
        let b = try d.readVarBytes()
        var e = Lib0Encoder()
        e.writeVarBytes(b)
        var r = Lib0Decoder(e.bytes)
        let back = try r.readVarBytes()
        ensure(back == b, "varBytes round trip")
    case 6:
        _ = try d.readBigEndian(byteCount: Int(op >> 3) % 9)
    default:
        _ = try StateVector(decoding: Array(d.bytes[d.position..<d.end]))
        _ = try d.readUInt8()
    }
    ensure(d.position >= start && d.position <= d.end, "decoder position out of range")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let ops = bytes.first else { return 0 }
    // Ops from the first byte: up to 4 reads in a row (op n is bits 2n..2n+7 rotated).
    var d = Lib0Decoder(bytes, range: 1..<bytes.count)
    for k in 0..<4 {
        let op = ops &>> UInt8(2 * k) | ops &<< UInt8(8 - 2 * k)
        do { try step(k == 0 ? ops : op, &d) } catch { break }
    }
    // And the whole input as one any value, as update contents carry them.
    var whole = Lib0Decoder(bytes)
    if let v = try? whole.readAny() {
        var r = Lib0Decoder(anyEncoding(v))
        ensure((try? r.readAny()).map(anyEncoding) == anyEncoding(v), "any round trip (whole input)")
    }
    return 0
}
