import RelayJSON
/// JWT signature algorithms the relay supports. The verifier's key decides
/// which one is accepted; the token header must name exactly that one.
public enum JWTAlgorithm: String, Sendable, Equatable {
    case hs256 = "HS256"
    case edDSA = "EdDSA"
}

/// Why a token was refused.
public enum JWTError: Error, Equatable, Sendable {
    /// Longer than the configured cap.
    case tooLarge
    /// Not three base64url segments of JSON objects, or a claim of the wrong type.
    case malformed(String)
    /// The header names an algorithm other than the pinned one (including `none`).
    case algorithmMismatch(String)
    case badSignature
    /// `exp` is in the past (beyond leeway).
    case expired
    /// `nbf` is in the future (beyond leeway).
    case notYetValid
    /// `iat` is in the future (beyond leeway).
    case issuedInTheFuture
    /// A required claim (`exp`) is missing.
    case missingClaim(String)
    case audienceMismatch
    case issuerMismatch
}

/// The claims the relay reads: the wordsocket set and the standard ones.
public struct JWTClaims: Sendable, Equatable {
    public var tenantID: String?
    public var siteID: String?
    public var userID: String?
    public var allowedChannelPrefixes: [String]?
    public var allowedPublishPrefixes: [String]?
    /// Protocol version (`v`); 2 selects the unnamed SSE framing.
    public var version: Int?
    public var issuedAt: Int64?
    public var expiresAt: Int64?
    public var notBefore: Int64?
    public var subject: String?
    /// `aud`, as a list (a single string becomes one element).
    public var audience: [String]?
    public var issuer: String?
    public var tokenID: String?
    /// Every claim, including ones not modelled above (e.g. room grants).
    /// Verified tokens keep their payload bytes and parse them only when asked.
    public var all: JSONValue {
        get {
            if let allStorage { return allStorage }
            if let rawPayload, let v = try? JSONParser.parse(rawPayload, maxDepth: JSON.maxDepth) { return v }
            return .object(jsonMembers())
        }
        set { allStorage = newValue; rawPayload = nil }
    }
    private var allStorage: JSONValue?
    private var rawPayload: [UInt8]?

    public static func == (a: JWTClaims, b: JWTClaims) -> Bool {
        a.tenantID == b.tenantID && a.siteID == b.siteID && a.userID == b.userID
            && a.allowedChannelPrefixes == b.allowedChannelPrefixes && a.allowedPublishPrefixes == b.allowedPublishPrefixes
            && a.version == b.version && a.issuedAt == b.issuedAt && a.expiresAt == b.expiresAt && a.notBefore == b.notBefore
            && a.subject == b.subject && a.audience == b.audience && a.issuer == b.issuer && a.tokenID == b.tokenID && a.all == b.all
    }

    public init(
        tenantID: String? = nil, siteID: String? = nil, userID: String? = nil,
        allowedChannelPrefixes: [String]? = nil, allowedPublishPrefixes: [String]? = nil,
        version: Int? = nil, issuedAt: Int64? = nil, expiresAt: Int64? = nil, notBefore: Int64? = nil,
        subject: String? = nil, audience: [String]? = nil, issuer: String? = nil, tokenID: String? = nil,
        extra: [(String, JSONValue)] = []
    ) {
        self.tenantID = tenantID; self.siteID = siteID; self.userID = userID
        self.allowedChannelPrefixes = allowedChannelPrefixes; self.allowedPublishPrefixes = allowedPublishPrefixes
        self.version = version; self.issuedAt = issuedAt; self.expiresAt = expiresAt; self.notBefore = notBefore
        self.subject = subject; self.audience = audience; self.issuer = issuer; self.tokenID = tokenID
        self.allStorage = .object(jsonMembers() + extra)
    }

    /// Reads claims from a JSON object, checking the types of known claims.
    public init(json: JSONValue) throws(JWTError) {
        guard case .object = json else { throw .malformed("claims are not a JSON object") }
        func string(_ name: String) throws(JWTError) -> String? {
            guard let v = json[name] else { return nil }
            if case .null = v { return nil }
            if let s = v.stringValue { return s }
            // wordsocket's user_id is a string, but accept integers too.
            if name == "user_id" || name == "sub", let i = v.int64Value { return String(i) }
            throw .malformed("claim \(name) must be a string")
        }
        func int(_ name: String) throws(JWTError) -> Int64? {
            guard let v = json[name] else { return nil }
            guard let i = v.int64Value else { throw .malformed("claim \(name) must be an integer") }
            return i
        }
        func strings(_ name: String) throws(JWTError) -> [String]? {
            guard let v = json[name] else { return nil }
            guard let items = v.arrayValue else { throw .malformed("claim \(name) must be an array of strings") }
            var out: [String] = []
            for item in items {
                guard let s = item.stringValue else { throw .malformed("claim \(name) must be an array of strings") }
                out.append(s)
            }
            return out
        }
        tenantID = try string("tenant_id")
        siteID = try string("site_id")
        userID = try string("user_id")
        allowedChannelPrefixes = try strings("allowed_channel_prefixes")
        allowedPublishPrefixes = try strings("allowed_publish_prefixes")
        version = try int("v").map { Int(clamping: $0) }
        issuedAt = try int("iat")
        expiresAt = try int("exp")
        notBefore = try int("nbf")
        subject = try string("sub")
        if let aud = json["aud"] {
            if let s = aud.stringValue { audience = [s] } else { audience = try strings("aud") }
        } else {
            audience = nil
        }
        issuer = try string("iss")
        tokenID = try string("jti")
        allStorage = json
    }

    /// Reads claims straight from payload bytes (the verifier's hot path): `ClaimsScanner` reads
    /// what token issuers write in one pass without a JSON tree, anything else takes the general
    /// parser; `all` is parsed later, only if used.
    public init(payload bytes: [UInt8]) throws(JWTError) {
        let fields: JWTClaimFields
        if let fast = ClaimsScanner.scan(bytes) { fields = fast } else { fields = try Self.generalFields(bytes) }
        tenantID = fields.tenantID; siteID = fields.siteID; userID = fields.userID
        allowedChannelPrefixes = fields.allowedChannelPrefixes; allowedPublishPrefixes = fields.allowedPublishPrefixes
        version = fields.version; issuedAt = fields.issuedAt; expiresAt = fields.expiresAt; notBefore = fields.notBefore
        subject = fields.subject; audience = fields.audience; issuer = fields.issuer; tokenID = fields.tokenID
        rawPayload = bytes
    }

    /// The `site_id` claim of a token, read **without verifying anything** (to pick the key that
    /// verifies it). Nil when the token has no three segments, the payload is not base64url JSON,
    /// or it has no string `site_id`.
    public static func unverifiedSiteID(_ token: String) -> String? {
        let parts = token.utf8.split(separator: UInt8(ascii: "."), maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Base64.decode(bytes: Array(parts[1]), .url) else { return nil }
        if let fast = ClaimsScanner.scan(payload) { return fast.siteID }
        return (try? JSONParser.parse(payload))?["site_id"]?.stringValue
    }

    /// The general path of `init(payload:)`: any JSON, every error named (tests compare the
    /// fast path against it).
    static func generalFields(_ bytes: [UInt8]) throws(JWTError) -> JWTClaimFields {
        var fields = JWTClaimFields()
        do {
            try JSONParser.forEachMember(of: bytes, maxDepth: JSON.maxDepth) { (key, value) throws(JWTError) in
                try fields.take(key, value)
            }
        } catch let e as JWTError {
            throw e
        } catch let e as JSONError {
            throw .malformed("payload: \(e.description)")
        } catch {
            throw .malformed("payload")
        }
        return fields
    }

    func jsonMembers() -> [(String, JSONValue)] {
        var m: [(String, JSONValue)] = []
        if let tenantID { m.append(("tenant_id", .string(tenantID))) }
        if let siteID { m.append(("site_id", .string(siteID))) }
        if let userID { m.append(("user_id", .string(userID))) }
        if let allowedChannelPrefixes { m.append(("allowed_channel_prefixes", .array(allowedChannelPrefixes.map(JSONValue.string)))) }
        if let allowedPublishPrefixes { m.append(("allowed_publish_prefixes", .array(allowedPublishPrefixes.map(JSONValue.string)))) }
        if let version { m.append(("v", .int(Int64(version)))) }
        if let issuedAt { m.append(("iat", .int(issuedAt))) }
        if let expiresAt { m.append(("exp", .int(expiresAt))) }
        if let notBefore { m.append(("nbf", .int(notBefore))) }
        if let subject { m.append(("sub", .string(subject))) }
        if let audience { m.append(("aud", audience.count == 1 ? .string(audience[0]) : .array(audience.map(JSONValue.string)))) }
        if let issuer { m.append(("iss", .string(issuer))) }
        if let tokenID { m.append(("jti", .string(tokenID))) }
        return m
    }
}

/// Typed claims collected while walking a payload's members.
struct JWTClaimFields: Equatable {
    var tenantID, siteID, userID, subject, issuer, tokenID: String?
    var allowedChannelPrefixes, allowedPublishPrefixes, audience: [String]?
    var version: Int?
    var issuedAt, expiresAt, notBefore: Int64?

    mutating func take(_ key: String, _ v: JSONValue) throws(JWTError) {
        func string() throws(JWTError) -> String? {
            if case .null = v { return nil }
            if let s = v.stringValue { return s }
            if key == "user_id" || key == "sub", let i = v.int64Value { return String(i) }
            throw .malformed("claim \(key) must be a string")
        }
        func int() throws(JWTError) -> Int64 {
            guard let i = v.int64Value else { throw .malformed("claim \(key) must be an integer") }
            return i
        }
        func strings() throws(JWTError) -> [String] {
            guard let items = v.arrayValue else { throw .malformed("claim \(key) must be an array of strings") }
            var out: [String] = []
            out.reserveCapacity(items.count)
            for item in items {
                guard let s = item.stringValue else { throw .malformed("claim \(key) must be an array of strings") }
                out.append(s)
            }
            return out
        }
        switch key {
        case "tenant_id": tenantID = try string()
        case "site_id": siteID = try string()
        case "user_id": userID = try string()
        case "allowed_channel_prefixes": allowedChannelPrefixes = try strings()
        case "allowed_publish_prefixes": allowedPublishPrefixes = try strings()
        case "v": version = Int(clamping: try int())
        case "iat": issuedAt = try int()
        case "exp": expiresAt = try int()
        case "nbf": notBefore = try int()
        case "sub": subject = try string()
        case "aud":
            if let s = v.stringValue { audience = [s] } else { audience = try strings() }
        case "iss": issuer = try string()
        case "jti": tokenID = try string()
        default: break
        }
    }
}

/// Signs tokens (WordPress's job; the relay and relayctl use it for tests and scripts).
public struct JWTSigner: Sendable {
    public enum Key: Sendable {
        /// HS256 with the secret's bytes.
        case hs256(HMACSHA256Key)
        case ed25519(Ed25519.PrivateKey)
    }

    public let key: Key

    public init(key: Key) { self.key = key }

    /// HS256 with the UTF-8 bytes of `secret`, as WordPress does with `jwt_secret`.
    public static func hs256(secret: String) -> JWTSigner { JWTSigner(key: .hs256(HMACSHA256Key(utf8: secret))) }

    public var algorithm: JWTAlgorithm {
        switch key {
        case .hs256: return .hs256
        case .ed25519: return .edDSA
        }
    }

    /// A compact JWS over the given claims object.
    public func sign(_ claims: JSONValue) -> String {
        sign(payload: claims.serialized())
    }

    /// A compact JWS over the given claims.
    public func sign(_ claims: JWTClaims) -> String {
        sign(payload: claims.all.serialized())
    }

    /// A compact JWS over raw payload bytes (used by tests to sign exact bytes).
    public func sign(payload: [UInt8], header: [UInt8]? = nil) -> String {
        let h = header ?? Array(#"{"alg":"\#(algorithm.rawValue)","typ":"JWT"}"#.utf8)
        var signingInput = [UInt8]()
        h.withUnsafeBytes { Base64.encode($0, .url, into: &signingInput) }
        signingInput.append(UInt8(ascii: "."))
        payload.withUnsafeBytes { Base64.encode($0, .url, into: &signingInput) }
        let sig: [UInt8]
        switch key {
        case .hs256(let k): sig = k.authenticationCode(for: signingInput)
        case .ed25519(let k): sig = k.signature(for: signingInput)
        }
        signingInput.append(UInt8(ascii: "."))
        sig.withUnsafeBytes { Base64.encode($0, .url, into: &signingInput) }
        return String(decoding: signingInput, as: UTF8.self)
    }
}

/// Verification settings.
public struct JWTVerificationOptions: Sendable {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    public var leewaySeconds: Int64
    /// Tokens longer than this are refused before any parsing.
    public var maxTokenBytes: Int
    /// When set, `aud` must contain it.
    public var audience: String?
    /// When set, `iss` must equal it.
    public var issuer: String?
    /// Whether `exp` must be present (default true: relay tokens are short-lived).
    public var requireExpiry: Bool

    public init(leewaySeconds: Int64 = 5, maxTokenBytes: Int = 8192, audience: String? = nil, issuer: String? = nil, requireExpiry: Bool = true) {
        self.leewaySeconds = leewaySeconds
        self.maxTokenBytes = maxTokenBytes
        self.audience = audience
        self.issuer = issuer
        self.requireExpiry = requireExpiry
    }
}

/// Verifies compact JWS tokens. The algorithm is pinned by the key:
/// a header naming any other algorithm, `none` included, is refused.
public struct JWTVerifier: Sendable {
    public enum Key: Sendable {
        case hs256(HMACSHA256Key)
        case ed25519(Ed25519.PublicKey)
    }

    public let key: Key
    public let options: JWTVerificationOptions
    /// Encoded headers that name exactly the pinned algorithm (skip parsing).
    private let knownHeaders: [[UInt8]]

    public init(key: Key, options: JWTVerificationOptions = .init()) {
        self.key = key
        self.options = options
        let alg: String
        switch key {
        case .hs256: alg = JWTAlgorithm.hs256.rawValue
        case .ed25519: alg = JWTAlgorithm.edDSA.rawValue
        }
        knownHeaders = [#"{"alg":"\#(alg)","typ":"JWT"}"#, #"{"typ":"JWT","alg":"\#(alg)"}"#, #"{"alg":"\#(alg)"}"#].map {
            Array(Base64.encode(Array($0.utf8), .url).utf8)
        }
    }

    public static func hs256(secret: String, options: JWTVerificationOptions = .init()) -> JWTVerifier {
        JWTVerifier(key: .hs256(HMACSHA256Key(utf8: secret)), options: options)
    }

    public var algorithm: JWTAlgorithm {
        switch key {
        case .hs256: return .hs256
        case .ed25519: return .edDSA
        }
    }

    /// Verifies `token` at Unix time `now` (seconds) and returns its claims.
    public func verify(_ token: String, now: Int64) throws(JWTError) -> JWTClaims {
        var t = token
        let result: Result<JWTClaims, JWTError> = t.withUTF8 { bytes in
            Result { () throws(JWTError) in try verify(UnsafeRawBufferPointer(bytes), now: now) }
        }
        return try result.get()
    }

    /// Verifies a token given as UTF-8 bytes.
    public func verify(_ token: UnsafeRawBufferPointer, now: Int64) throws(JWTError) -> JWTClaims {
        let claims = try JWTClaims(payload: try verifiedPayload(token))
        try check(claims, now: now)
        return claims
    }

    /// Checks size, structure, pinned algorithm and signature, and returns the
    /// decoded payload bytes without interpreting them as claims.
    public func verifiedPayload(_ token: String) throws(JWTError) -> [UInt8] {
        var t = token
        let result: Result<[UInt8], JWTError> = t.withUTF8 { bytes in
            Result { () throws(JWTError) in try verifiedPayload(UnsafeRawBufferPointer(bytes)) }
        }
        return try result.get()
    }

    /// Byte form of ``verifiedPayload(_:)-(String)``.
    public func verifiedPayload(_ token: UnsafeRawBufferPointer) throws(JWTError) -> [UInt8] {
        guard token.count <= options.maxTokenBytes else { throw .tooLarge }
        var first = -1, second = -1, i = 0
        let count = token.count
        while i < count {
            if token[i] == UInt8(ascii: ".") {
                if first < 0 { first = i } else if second < 0 { second = i } else { throw .malformed("expected three dot-separated segments") }
            }
            i += 1
        }
        guard second > 0 else { throw .malformed("expected three dot-separated segments") }
        let headerPart = UnsafeRawBufferPointer(rebasing: token[0..<first])
        let payloadPart = UnsafeRawBufferPointer(rebasing: token[(first + 1)..<second])
        let signaturePart = UnsafeRawBufferPointer(rebasing: token[(second + 1)...])
        // Fast path: the exact header WordPress (and most libraries) send.
        if !knownHeaders.contains(where: { ConstantTime.bytesEqual($0, headerPart) }) {
            guard let headerBytes = Base64.decode(headerPart, .url) else { throw .malformed("header is not base64url") }
            let header: JSONValue
            do { header = try JSONParser.parse(headerBytes, maxDepth: JSON.maxDepth) } catch { throw .malformed("header: \(error.description)") }
            guard let alg = header["alg"]?.stringValue else { throw .malformed("header has no alg") }
            guard alg == algorithm.rawValue else { throw .algorithmMismatch(alg) }
            if let crit = header["crit"], crit != .null { throw .malformed("unsupported crit header") }
        }
        guard let signature = Base64.decode(signaturePart, .url) else { throw .malformed("signature is not base64url") }
        let signingInput = UnsafeRawBufferPointer(rebasing: token[0..<second])
        let valid: Bool
        switch key {
        case .hs256(let k):
            guard signature.count == 32 else { throw .badSignature }
            var expected = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            valid = withUnsafeMutableBytes(of: &expected) { e in
                k.authenticate(parts: [signingInput], into: e)
                return ConstantTime.equals(UnsafeRawBufferPointer(e), signature)
            }
        case .ed25519(let pk):
            valid = signature.withUnsafeBytes { pk.isValidSignature($0, for: signingInput) }
        }
        guard valid else { throw .badSignature }
        guard let payloadBytes = Base64.decode(payloadPart, .url) else { throw .malformed("payload is not base64url") }
        return payloadBytes
    }

    /// Applies the time, audience and issuer rules to already-authentic claims.
    public func check(_ claims: JWTClaims, now: Int64) throws(JWTError) {
        let leeway = options.leewaySeconds
        if let exp = claims.expiresAt {
            if now >= exp + leeway { throw .expired }
        } else if options.requireExpiry {
            throw .missingClaim("exp")
        }
        if let nbf = claims.notBefore, now + leeway < nbf { throw .notYetValid }
        if let iat = claims.issuedAt, now + leeway < iat { throw .issuedInTheFuture }
        if let aud = options.audience {
            guard let list = claims.audience, list.contains(aud) else { throw .audienceMismatch }
        }
        if let iss = options.issuer {
            guard claims.issuer == iss else { throw .issuerMismatch }
        }
    }
}
