import Synchronization

/// Why a signed publish request was refused.
public enum PublishSignatureError: Error, Equatable, Sendable {
    /// Headers missing or unparseable (the message says which).
    case malformed(String)
    /// The site key (or key id) is not known.
    case unknownKey
    /// The timestamp is older than the window.
    case stale
    /// The timestamp is further in the future than the window.
    case fromTheFuture
    /// The signature does not match.
    case badSignature
    /// The nonce was already used within the window (scheme v2).
    case replayed
    /// The replay cache is full; the request is refused rather than risk a replay.
    case replayCacheFull
}

/// A site's publish secret with its key id: the one type for it everywhere
/// (registry, storage, verification). During rotation a site holds the new
/// secret and the old one until `validUntilMs`.
public struct PublishSecret: Sendable, Equatable {
    public let keyID: String
    /// The secret exactly as shared with WordPress (the contract uses the hex
    /// string's bytes as the HMAC key).
    public let secret: String
    /// The HMAC key made from `secret`, pads precomputed.
    public let key: HMACSHA256Key
    /// Unix milliseconds after which this secret is refused (set on rotation); nil = no end.
    public let validUntilMs: Int64?

    public init(keyID: String, secret: String, validUntilMs: Int64? = nil) {
        self.keyID = keyID
        self.secret = secret
        self.key = HMACSHA256Key(utf8: secret)
        self.validUntilMs = validUntilMs
    }

    public static func == (a: PublishSecret, b: PublishSecret) -> Bool {
        a.keyID == b.keyID && a.validUntilMs == b.validUntilMs && ConstantTime.equals(a.secret, b.secret)
    }

    func isValid(atMs now: Int64) -> Bool { validUntilMs.map { now <= $0 } ?? true }
}

/// The parts of an HTTP request a signature covers. Header lookup is case-insensitive.
public struct SignedRequest: Sendable {
    public var method: String
    /// The path as sent (percent-encoded form), without the query.
    public var path: String
    /// The raw query string without `?`, or empty.
    public var query: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(method: String, path: String, query: String = "", headers: [(String, String)], body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The first header named `name`, ignoring case.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.0.lowercased() == lower }?.1
    }
}

/// Who signed an accepted request.
public struct VerifiedPublisher: Sendable, Equatable {
    public let siteKey: String
    public let keyID: String
    public let scheme: PublishSignatureScheme
    /// v2: the request's nonce and when its claim in the replay cache expires (Unix ms). With
    /// several nodes the transport claims it cluster-wide too.
    public var nonce: String? = nil
    public var nonceExpiresAtMs: Int64 = 0
}

/// The two signature schemes.
public enum PublishSignatureScheme: String, Sendable, Equatable {
    /// wordsocket: HMAC over `body + "." + ts_ms`, headers `X-WP-Signal-*`.
    case v1
    /// Relay v2: canonical request with method, path, query, site key, key id, ts, nonce, body hash.
    case v2
}

/// Scheme v1, as the wordsocket plugin's `Publisher::sign()` computes it.
public enum PublishSignatureV1 {
    public static let keyHeader = "X-WP-Signal-Key"
    public static let timestampHeader = "X-WP-Signal-Ts"
    public static let signatureHeader = "X-WP-Signal-Sign"

    /// Lowercase hex HMAC-SHA256 of `body + "." + timestampMs` under `key`.
    public static func signature<Body: ContiguousBytes>(body: Body, timestampMs: Int64, key: HMACSHA256Key) -> String {
        Hex.encode(tag(body: body, timestampMs: timestampMs, key: key))
    }

    static func tag<Body: ContiguousBytes>(body: Body, timestampMs: Int64, key: HMACSHA256Key) -> [UInt8] {
        let suffix = Array(("." + String(timestampMs)).utf8)
        var out = [UInt8](repeating: 0, count: 32)
        body.withUnsafeBytes { b in
            suffix.withUnsafeBytes { s in
                out.withUnsafeMutableBytes { key.authenticate(parts: [b, s], into: $0) }
            }
        }
        return out
    }

    /// The three headers to send for `body` (signed with the secret string's bytes).
    public static func headers(siteKey: String, secret: String, body: [UInt8], timestampMs: Int64) -> [(String, String)] {
        [
            (keyHeader, siteKey),
            (timestampHeader, String(timestampMs)),
            (signatureHeader, signature(body: body, timestampMs: timestampMs, key: HMACSHA256Key(utf8: secret))),
        ]
    }
}

/// Scheme v2 (ours). The signed string is
///
///     RELAY-HMAC-SHA256-V2\n{METHOD}\n{path}\n{canonical query}\n{site key}\n{key id}\n{ts ms}\n{nonce}\n{hex sha256(body)}
///
/// The canonical query percent-decodes every name and value (`+` stays a
/// literal plus), re-encodes them as RFC 3986 does (PHP `rawurlencode`),
/// sorts the pairs by name then value bytewise and joins them with `&`.
/// The signature header is `v2=` followed by lowercase hex.
public enum PublishSignatureV2 {
    public static let keyHeader = "X-Relay-Key"
    public static let keyIDHeader = "X-Relay-Key-Id"
    public static let timestampHeader = "X-Relay-Timestamp"
    public static let nonceHeader = "X-Relay-Nonce"
    public static let signatureHeader = "X-Relay-Signature"
    public static let algorithmLine = "RELAY-HMAC-SHA256-V2"

    /// The canonical form of a raw query string.
    public static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        var pairs: [([UInt8], [UInt8])] = []
        // Split on bytes, as PHP's explode does: a String split is by Character, and "&" followed
        // by a combining mark is one Character, so that "&" did not separate (Fuzz/regressions/
        // FuzzPublishSignature/ampersand-combining-mark).
        for part in Array(query.utf8).split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let eq = part.firstIndex(of: UInt8(ascii: "=")) ?? part.endIndex
            let name = rfc3986Encode(percentDecode(part[..<eq]))
            let value = eq < part.endIndex ? rfc3986Encode(percentDecode(part[(eq + 1)...])) : []
            pairs.append((name, value))
        }
        pairs.sort { a, b in a.0 != b.0 ? a.0.lexicographicallyPrecedes(b.0) : a.1.lexicographicallyPrecedes(b.1) }
        var out = [UInt8]()
        for (i, (n, v)) in pairs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: "&")) }
            out += n
            out.append(UInt8(ascii: "="))
            out += v
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.endIndex,
               let h = Hex.decode(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self)) {
                out.append(h[0]); i += 3
            } else {
                out.append(bytes[i]); i += 1
            }
        }
        return out
    }

    static func rfc3986Encode(_ bytes: [UInt8]) -> [UInt8] {
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        for b in bytes {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%")); out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 15)])
            }
        }
        return out
    }

    /// The exact string that is signed.
    public static func stringToSign(
        method: String, path: String, query: String, siteKey: String, keyID: String,
        timestampMs: Int64, nonce: String, body: [UInt8]
    ) -> String {
        [algorithmLine, method.uppercased(), path, canonicalQuery(query), siteKey, keyID,
         String(timestampMs), nonce, Hex.encode(SHA256.hash(body))].joined(separator: "\n")
    }

    /// The headers to send for a request, with a fresh random nonce unless one is given.
    public static func headers(
        method: String, path: String, query: String = "", siteKey: String, keyID: String,
        secret: String, body: [UInt8], timestampMs: Int64, nonce: String? = nil
    ) -> [(String, String)] {
        let n = nonce ?? Base64.encode(SecureRandom.bytes(count: 18), .url)
        let s = stringToSign(method: method, path: path, query: query, siteKey: siteKey, keyID: keyID,
                             timestampMs: timestampMs, nonce: n, body: body)
        let tag = HMACSHA256Key(utf8: secret).authenticationCode(for: Array(s.utf8))
        return [
            (keyHeader, siteKey), (keyIDHeader, keyID), (timestampHeader, String(timestampMs)),
            (nonceHeader, n), (signatureHeader, "v2=" + Hex.encode(tag)),
        ]
    }
}

/// Remembers nonces so that each is accepted once within the replay window.
public protocol ReplayCache: Sendable {
    /// Records `nonce` in `scope` until `expiresAtMs`. Returns `.accepted` the
    /// first time, `.replayed` when it is already recorded and unexpired.
    func claim(nonce: String, scope: String, expiresAtMs: Int64, nowMs: Int64) -> ReplayCacheResult
}

/// The answer of a replay cache.
public enum ReplayCacheResult: Sendable, Equatable {
    case accepted
    case replayed
    /// No room left even after dropping expired entries.
    case full
}

/// A bounded in-memory replay cache (single node). Expired entries are pruned
/// as time passes; when full of unexpired entries it refuses new nonces.
public final class InMemoryReplayCache: ReplayCache {
    private struct State {
        var expiry: [String: Int64] = [:]
        var order: [(key: String, expiresAt: Int64)] = []  // FIFO by insertion ≈ by expiry
        var head = 0
    }
    private let state = Mutex(State())
    /// Maximum number of unexpired nonces held.
    public let capacity: Int

    public init(capacity: Int = 1_000_000) {
        self.capacity = capacity
    }

    public func claim(nonce: String, scope: String, expiresAtMs: Int64, nowMs: Int64) -> ReplayCacheResult {
        let key = scope + "\u{0}" + nonce
        return state.withLock { s in
            // Prune from the front while expired (entries are appended with
            // roughly increasing expiry; stragglers are pruned by the lookup).
            while s.head < s.order.count, s.order[s.head].expiresAt < nowMs {
                let e = s.order[s.head]
                if let exp = s.expiry[e.key], exp == e.expiresAt { s.expiry[e.key] = nil }
                s.head += 1
            }
            if s.head > 4096 && s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
            if let exp = s.expiry[key], exp >= nowMs { return .replayed }
            guard s.expiry.count < capacity else { return .full }
            s.expiry[key] = expiresAtMs
            s.order.append((key, expiresAtMs))
            return .accepted
        }
    }

    /// Number of nonces currently held.
    public var count: Int { state.withLock { $0.expiry.count } }
}

/// Verifies signed publish requests of both schemes.
///
/// Order of checks (the wordsocket plugin depends on the first two): the site
/// key must exist, then the signature headers must be present, then the
/// timestamp must be inside the window, then the signature must match, then
/// (v2) the nonce must be fresh. A v1 signature that is not 64 hex characters
/// is a bad signature before anything else is checked, so the plugin's
/// `dummy` existence probe always reads `invalid_signature`.
public struct PublishVerifier: Sendable {
    /// Looks up the publish secrets of a site key; nil when the site is unknown.
    public typealias SecretLookup = @Sendable (String) -> [PublishSecret]?

    public let lookup: SecretLookup
    public let replayCache: any ReplayCache
    /// Accepted clock difference in either direction (default 60 s).
    public let windowMs: Int64

    public init(windowMs: Int64 = 60_000, replayCache: any ReplayCache = InMemoryReplayCache(), lookup: @escaping SecretLookup) {
        self.windowMs = windowMs
        self.replayCache = replayCache
        self.lookup = lookup
    }

    /// Verifies `request` at `nowMs` (Unix milliseconds).
    public func verify(_ request: SignedRequest, nowMs: Int64) throws(PublishSignatureError) -> VerifiedPublisher {
        if request.header(PublishSignatureV2.signatureHeader) != nil {
            return try verifyV2(request, nowMs: nowMs)
        }
        return try verifyV1(request, nowMs: nowMs)
    }

    private func checkWindow(_ ts: Int64, nowMs: Int64) throws(PublishSignatureError) {
        if ts < nowMs - windowMs { throw .stale }
        if ts > nowMs + windowMs { throw .fromTheFuture }
    }

    private static func parseTimestamp(_ s: String?) throws(PublishSignatureError) -> Int64 {
        guard let s, !s.isEmpty, s.count <= 16, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let ts = Int64(s) else {
            throw .malformed("timestamp must be Unix milliseconds")
        }
        return ts
    }

    private func verifyV1(_ request: SignedRequest, nowMs: Int64) throws(PublishSignatureError) -> VerifiedPublisher {
        guard let siteKey = request.header(PublishSignatureV1.keyHeader), !siteKey.isEmpty else {
            throw .malformed("missing \(PublishSignatureV1.keyHeader)")
        }
        guard let secrets = lookup(siteKey) else { throw .unknownKey }
        guard let sign = request.header(PublishSignatureV1.signatureHeader) else {
            throw .malformed("missing \(PublishSignatureV1.signatureHeader)")
        }
        // A signature that cannot be one (the plugin's "dummy" probe) is a bad
        // signature whatever the timestamp says.
        guard sign.utf8.count == 64, let given = Hex.decode(sign) else { throw .badSignature }
        let ts = try Self.parseTimestamp(request.header(PublishSignatureV1.timestampHeader))
        try checkWindow(ts, nowMs: nowMs)
        for secret in secrets where secret.isValid(atMs: nowMs) {
            let expected = PublishSignatureV1.tag(body: request.body, timestampMs: ts, key: secret.key)
            if ConstantTime.equals(expected, given) {
                return VerifiedPublisher(siteKey: siteKey, keyID: secret.keyID, scheme: .v1)
            }
        }
        throw .badSignature
    }

    private func verifyV2(_ request: SignedRequest, nowMs: Int64) throws(PublishSignatureError) -> VerifiedPublisher {
        guard let siteKey = request.header(PublishSignatureV2.keyHeader), !siteKey.isEmpty else {
            throw .malformed("missing \(PublishSignatureV2.keyHeader)")
        }
        guard let secrets = lookup(siteKey) else { throw .unknownKey }
        guard let kid = request.header(PublishSignatureV2.keyIDHeader), !kid.isEmpty else {
            throw .malformed("missing \(PublishSignatureV2.keyIDHeader)")
        }
        guard let secret = secrets.first(where: { $0.keyID == kid }), secret.isValid(atMs: nowMs) else { throw .unknownKey }
        let ts = try Self.parseTimestamp(request.header(PublishSignatureV2.timestampHeader))
        guard let nonce = request.header(PublishSignatureV2.nonceHeader),
              (16...128).contains(nonce.utf8.count),
              nonce.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw .malformed("\(PublishSignatureV2.nonceHeader) must be 16-128 printable ASCII characters")
        }
        try checkWindow(ts, nowMs: nowMs)
        guard let header = request.header(PublishSignatureV2.signatureHeader), header.hasPrefix("v2=") else {
            throw .badSignature
        }
        let hex = header.dropFirst(3)
        guard hex.utf8.count == 64, let given = Hex.decode(String(hex)) else { throw .badSignature }
        let s = PublishSignatureV2.stringToSign(
            method: request.method, path: request.path, query: request.query, siteKey: siteKey, keyID: kid,
            timestampMs: ts, nonce: nonce, body: request.body)
        let expected = secret.key.authenticationCode(for: Array(s.utf8))
        guard ConstantTime.equals(expected, given) else { throw .badSignature }
        switch replayCache.claim(nonce: nonce, scope: siteKey, expiresAtMs: ts + windowMs, nowMs: nowMs) {
        case .accepted: return VerifiedPublisher(siteKey: siteKey, keyID: kid, scheme: .v2, nonce: nonce, nonceExpiresAtMs: ts + windowMs)
        case .replayed: throw .replayed
        case .full: throw .replayCacheFull
        }
    }
}
