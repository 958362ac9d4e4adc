// Publish signatures v1 and v2 (headers, timestamps, nonces, the canonical query, HMAC check and
// the replay cache), with the site, secret and clock of protocol/vectors/signatures.json.
//
// Input: an HTTP request as text, `METHOD path?query`, header lines `Name: value`, an empty line,
// the body. Oracles:
// - verification is deterministic; a v2 request accepted once is `replayed` the second time on the
//   same replay cache, a v1 request is accepted again;
// - header names are case-insensitive; the order of the query's parameters does not matter (for
//   the canonical query, and for the verdict on a signed request);
// - the canonical query equals an independent byte-level implementation (PHP's explode,
//   rawurldecode, rawurlencode, sort) and is idempotent;
// - verify-after-sign: the request's method, path, query and body signed with v1 and v2 verify, v2
//   once; altering the body or the timestamp breaks the signature.
import RelayCrypto

/// `precondition` that keeps its message in release builds (libFuzzer prints it with the crash).
@inline(__always) func ensure(_ ok: Bool, _ message: @autoclosure () -> String) {
    if !ok { fatalError(message()) }
}

let nowMs: Int64 = 1_767_225_600_250
let siteKey = "0123456789abcdef0123456789abcdef"
let secret = "5f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa00"
let secrets = [PublishSecret(keyID: "k1", secret: secret),
               PublishSecret(keyID: "k0", secret: "retired", validUntilMs: nowMs - 1)]
func verifier(_ cache: InMemoryReplayCache = InMemoryReplayCache(capacity: 64)) -> PublishVerifier {
    PublishVerifier(replayCache: cache) { $0 == siteKey ? secrets : nil }
}
func verify(_ v: PublishVerifier, _ r: SignedRequest) -> Result<VerifiedPublisher, PublishSignatureError> {
    Result { () throws(PublishSignatureError) in try v.verify(r, nowMs: nowMs) }
}

/// The canonical query on bytes, written from the description (as PHP computes it).
func referenceCanonicalQuery(_ query: [UInt8]) -> [UInt8] {
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    func decode(_ s: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = [], i = s.startIndex
        while i < s.endIndex {
            if s[i] == 0x25, i + 2 < s.endIndex, let h = hex(s[i + 1]), let l = hex(s[i + 2]) {
                out.append(h << 4 | l); i += 3
            } else { out.append(s[i]); i += 1 }
        }
        return out
    }
    func encode(_ b: [UInt8]) -> [UInt8] {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for c in b {
            switch c {
            case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2D, 0x5F, 0x2E, 0x7E: out.append(c)
            default: out += [0x25, digits[Int(c >> 4)], digits[Int(c & 15)]]
            }
        }
        return out
    }
    var pairs: [([UInt8], [UInt8])] = []
    for part in query.split(separator: 0x26) {
        if let eq = part.firstIndex(of: 0x3D) {
            pairs.append((encode(decode(part[..<eq])), encode(decode(part[(eq + 1)...]))))
        } else {
            pairs.append((encode(decode(part)), []))
        }
    }
    pairs.sort { $0.0 != $1.0 ? $0.0.lexicographicallyPrecedes($1.0) : $0.1.lexicographicallyPrecedes($1.1) }
    return Array(pairs.map { $0.0 + [0x3D] + $0.1 }.joined(separator: [0x26]))
}

func parse(_ bytes: [UInt8]) -> SignedRequest {
    var lines: [ArraySlice<UInt8>] = []
    var i = bytes.startIndex, lineStart = i
    var bodyStart = bytes.endIndex
    while i < bytes.endIndex {
        if bytes[i] == 0x0A {
            if i == lineStart && !lines.isEmpty { bodyStart = i + 1; break }
            lines.append(bytes[lineStart..<i]); lineStart = i + 1
        }
        i += 1
    }
    if i == bytes.endIndex && lineStart < bytes.endIndex { lines.append(bytes[lineStart...]) }
    let text = { (s: ArraySlice<UInt8>) in String(decoding: s, as: UTF8.self) }
    let first = lines.first ?? []
    let sp = first.firstIndex(of: 0x20) ?? first.endIndex
    let target = sp < first.endIndex ? first[(sp + 1)...] : []
    let q = target.firstIndex(of: 0x3F)
    var headers: [(String, String)] = []
    // At most 12 header lines: every header lookup lowercases every name, and longer lists only slow
    // the search down (a request has five signature headers).
    for line in lines.dropFirst().prefix(12) {
        let colon = line.firstIndex(of: 0x3A) ?? line.endIndex
        var value = colon < line.endIndex ? line[(colon + 1)...] : []
        while value.first == 0x20 { value = value.dropFirst() }
        headers.append((text(line[..<colon]), text(value)))
    }
    return SignedRequest(method: text(first[..<sp]), path: text(target[..<(q ?? target.endIndex)]),
                         query: q.map { text(target[($0 + 1)...]) } ?? "", headers: headers,
                         body: bodyStart < bytes.endIndex ? Array(bytes[bodyStart...]) : [])
}

func accepted(_ r: Result<VerifiedPublisher, PublishSignatureError>, _ scheme: PublishSignatureScheme) -> Bool {
    guard case .success(let p) = r else { return false }
    return p.siteKey == siteKey && p.keyID == "k1" && p.scheme == scheme
}

func reversedQuery(_ q: String) -> String {
    Array(q.utf8).split(separator: 0x26, omittingEmptySubsequences: false).reversed()
        .map { String(decoding: $0, as: UTF8.self) }.joined(separator: "&")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let request = parse(bytes)

    // The canonical query.
    let canonical = PublishSignatureV2.canonicalQuery(request.query)
    ensure(Array(canonical.utf8) == referenceCanonicalQuery(Array(request.query.utf8)),
                 "canonical query differs from the byte-level reference")
    ensure(PublishSignatureV2.canonicalQuery(canonical) == canonical, "canonical query is not idempotent")
    ensure(PublishSignatureV2.canonicalQuery(reversedQuery(request.query)) == canonical,
                 "canonical query depends on the parameters' order")

    // One of two groups of checks per input (they cost a dozen verifications between them).
    if bytes.count % 2 == 0 {
        checkAsSent(request)
    } else {
        checkSigned(request, bytes.count)
    }
    return 0
}

/// Verification of the request as it came.
func checkAsSent(_ request: SignedRequest) {
    let cache = InMemoryReplayCache(capacity: 64)
    let first = verify(verifier(cache), request)
    let again = verify(verifier(cache), request)
    switch (first, again) {
    case (.success(let p), .success(let q)):
        ensure(p == q && p.scheme == .v1, "a request was accepted twice by one replay cache (\(p.scheme))")
    case (.success(let p), .failure(let e)):
        ensure(p.scheme == .v2 && e == .replayed, "second verification: \(e) after \(p.scheme) was accepted")
    case (.failure(let e), .failure(let f)):
        ensure(e == f, "verification is not deterministic: \(e) then \(f)")
    case (.failure(let e), .success):
        fatalError("refused (\(e)) then accepted")
    }
    var lowered = request
    lowered.headers = request.headers.map { (String(decoding: $0.0.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 32 : $0 }, as: UTF8.self), $0.1) }
    ensure(verify(verifier(), lowered) == first, "header names are not case-insensitive")

}

/// Verify after sign, both schemes, with the request's method, path, query and body.
func checkSigned(_ request: SignedRequest, _ count: Int) {
    let ts = nowMs - Int64(count % 60_000)
    var v1 = request
    v1.headers = PublishSignatureV1.headers(siteKey: siteKey, secret: secret, body: request.body, timestampMs: ts)
    ensure(accepted(verify(verifier(), v1), .v1), "a v1-signed request was refused")
    var v1Tampered = v1
    v1Tampered.body.append(0x20)
    ensure(verify(verifier(), v1Tampered) == .failure(.badSignature), "v1 accepted an altered body")
    var v2 = request
    let nonce = "fuzz-nonce-" + Hex.encode(SHA256.hash(request.body)).prefix(16)
    v2.headers = PublishSignatureV2.headers(method: request.method, path: request.path, query: request.query,
                                            siteKey: siteKey, keyID: "k1", secret: secret, body: request.body,
                                            timestampMs: ts, nonce: nonce)
    let v2Cache = InMemoryReplayCache(capacity: 64)
    ensure(accepted(verify(verifier(v2Cache), v2), .v2), "a v2-signed request was refused")
    ensure(verify(verifier(v2Cache), v2) == .failure(.replayed), "a v2 nonce was accepted twice")
    var v2Reordered = v2
    v2Reordered.query = reversedQuery(request.query)
    ensure(accepted(verify(verifier(), v2Reordered), .v2), "v2: reordering the query's parameters broke the signature")
    var v2Tampered = v2
    v2Tampered.body.append(0x20)
    ensure(verify(verifier(), v2Tampered) == .failure(.badSignature), "v2 accepted an altered body")
    var v2Late = v2
    v2Late.headers = v2.headers.map { $0.0 == PublishSignatureV2.timestampHeader ? ($0.0, String(ts - 1)) : $0 }
    ensure(verify(verifier(), v2Late) == .failure(.badSignature), "v2 accepted an altered timestamp")
}
