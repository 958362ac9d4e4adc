#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The verifier's fast path for claims: one pass over the payload bytes that reads the claims the
/// relay models straight into typed fields, without building a JSON tree, key strings or values
/// for claims it does not model.
///
/// It accepts a strict subset of JSON — what token issuers write: ASCII strings with the short
/// escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`), integers, `true`, `false`, `null`,
/// and arrays of those for claims it does not model — and gives up (nil) on anything else: a
/// `\u` escape or a non-ASCII byte, a fraction or exponent, an object value, a repeated name, a
/// claim of the wrong type, malformed JSON. The caller then takes the general path
/// (`JSONParser.forEachMember`), which decides, so both paths give the same claims or the same
/// error for every input.
struct ClaimsScanner {
    private let b: UnsafeRawBufferPointer
    private var i = 0
    private var fields = JWTClaimFields()
    /// Known claims seen (bit per claim), and the name ranges of the others (repeats fall back).
    private var seen: UInt32 = 0
    private var others: [Range<Int>] = []

    private struct GiveUp: Error {}

    private init(_ bytes: UnsafeRawBufferPointer) { b = bytes }

    /// The claims of `payload`, or nil when the general path must decide.
    static func scan(_ payload: [UInt8]) -> JWTClaimFields? {
        payload.withUnsafeBytes { raw in
            var s = ClaimsScanner(raw)
            do { try s.object() } catch { return nil }
            return s.fields
        }
    }

    @inline(__always) private var byte: UInt8 { i < b.count ? b[i] : 0 }

    @inline(__always) private mutating func whitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    @inline(__always) private mutating func expect(_ c: UInt8) throws(GiveUp) {
        guard byte == c else { throw GiveUp() }
        i += 1
    }

    private mutating func object() throws(GiveUp) {
        whitespace()
        try expect(UInt8(ascii: "{"))
        whitespace()
        if byte == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                try member()
                whitespace()
                if byte == UInt8(ascii: ",") { i += 1; whitespace(); continue }
                try expect(UInt8(ascii: "}"))
                break
            }
        }
        whitespace()
        guard i == b.count else { throw GiveUp() }
    }

    /// The claims the relay models, by name.
    private enum Claim: UInt32 {
        case tenantID, siteID, userID, subject, issuer, tokenID
        case channelPrefixes, publishPrefixes, audience
        case version, issuedAt, expiresAt, notBefore

        init?(_ name: UnsafeRawBufferPointer) {
            func eq(_ s: StaticString) -> Bool {
                s.utf8CodeUnitCount == name.count && memcmp(s.utf8Start, name.baseAddress!, name.count) == 0
            }
            switch name.count {
            case 1: if eq("v") { self = .version } else { return nil }
            case 3:
                if eq("exp") { self = .expiresAt } else if eq("iat") { self = .issuedAt } else if eq("nbf") { self = .notBefore }
                else if eq("sub") { self = .subject } else if eq("aud") { self = .audience } else if eq("iss") { self = .issuer }
                else if eq("jti") { self = .tokenID } else { return nil }
            case 7:
                if eq("site_id") { self = .siteID } else if eq("user_id") { self = .userID } else { return nil }
            case 9: if eq("tenant_id") { self = .tenantID } else { return nil }
            case 24:
                if eq("allowed_channel_prefixes") { self = .channelPrefixes }
                else if eq("allowed_publish_prefixes") { self = .publishPrefixes } else { return nil }
            default: return nil
            }
        }
    }

    private mutating func member() throws(GiveUp) {
        try expect(UInt8(ascii: "\""))
        let start = i
        while i < b.count, b[i] != UInt8(ascii: "\"") {
            // names with escapes or non-ASCII bytes go the general way
            guard b[i] >= 0x20, b[i] < 0x80, b[i] != UInt8(ascii: "\\") else { throw GiveUp() }
            i += 1
        }
        let name = start..<i
        try expect(UInt8(ascii: "\""))
        whitespace()
        try expect(UInt8(ascii: ":"))
        whitespace()
        guard let claim = Claim(UnsafeRawBufferPointer(rebasing: b[name])) else {
            for o in others where o.count == name.count && memcmp(b.baseAddress! + o.lowerBound, b.baseAddress! + name.lowerBound, name.count) == 0 {
                throw GiveUp()
            }
            others.append(name)
            try skipValue(depth: 1)
            return
        }
        let bit: UInt32 = 1 << claim.rawValue
        guard seen & bit == 0 else { throw GiveUp() }
        seen |= bit
        switch claim {
        case .tenantID: fields.tenantID = try optionalString()
        case .siteID: fields.siteID = try optionalString()
        case .userID: fields.userID = try optionalString(integerAllowed: true)
        case .subject: fields.subject = try optionalString(integerAllowed: true)
        case .issuer: fields.issuer = try optionalString()
        case .tokenID: fields.tokenID = try optionalString()
        case .channelPrefixes: fields.allowedChannelPrefixes = try strings()
        case .publishPrefixes: fields.allowedPublishPrefixes = try strings()
        case .audience:
            if byte == UInt8(ascii: "[") { fields.audience = try strings() } else { fields.audience = [try string()] }
        case .version: fields.version = Int(clamping: try integer())
        case .issuedAt: fields.issuedAt = try integer()
        case .expiresAt: fields.expiresAt = try integer()
        case .notBefore: fields.notBefore = try integer()
        }
    }

    /// A string claim: a string, `null` (absent), or for `user_id`/`sub` an integer.
    private mutating func optionalString(integerAllowed: Bool = false) throws(GiveUp) -> String? {
        switch byte {
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "n"): try literal("null"); return nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            guard integerAllowed else { throw GiveUp() }
            return String(try integer())
        default: throw GiveUp()
        }
    }

    private mutating func strings() throws(GiveUp) -> [String] {
        try expect(UInt8(ascii: "["))
        whitespace()
        var out: [String] = []
        if byte == UInt8(ascii: "]") { i += 1; return out }
        while true {
            out.append(try string())
            whitespace()
            if byte == UInt8(ascii: ",") { i += 1; whitespace(); continue }
            try expect(UInt8(ascii: "]"))
            return out
        }
    }

    /// An ASCII string; the short escapes are decoded, anything else gives up.
    private mutating func string() throws(GiveUp) -> String {
        try expect(UInt8(ascii: "\""))
        let start = i
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                defer { i += 1 }
                return String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            }
            guard c >= 0x20, c < 0x80 else { throw GiveUp() }
            if c == UInt8(ascii: "\\") { break }
            i += 1
        }
        // with escapes
        var out = Array(b[start..<i])
        while i < b.count {
            let c = b[i]
            i += 1
            if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            guard c >= 0x20, c < 0x80 else { throw GiveUp() }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard i < b.count else { throw GiveUp() }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            default: throw GiveUp()  // \u and invalid escapes
            }
        }
        throw GiveUp()
    }

    /// An integer of at most 18 digits, not followed by a fraction or exponent.
    private mutating func integer() throws(GiveUp) -> Int64 {
        var negative = false
        if byte == UInt8(ascii: "-") { negative = true; i += 1 }
        let start = i
        var v: Int64 = 0
        while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") {
            v = v &* 10 &+ Int64(b[i] &- UInt8(ascii: "0"))
            i += 1
        }
        let digits = i - start
        guard digits > 0, digits <= 18, digits == 1 || b[start] != UInt8(ascii: "0") else { throw GiveUp() }
        switch byte {
        case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): throw GiveUp()
        default: break
        }
        return negative ? -v : v
    }

    private mutating func literal(_ s: StaticString) throws(GiveUp) {
        let n = s.utf8CodeUnitCount
        guard b.count - i >= n, memcmp(s.utf8Start, b.baseAddress! + i, n) == 0 else { throw GiveUp() }
        i += n
    }

    /// Skips a value of a claim the relay does not model (scalars and arrays of them).
    private mutating func skipValue(depth: Int) throws(GiveUp) {
        switch byte {
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try integer()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "["):
            guard depth < 8 else { throw GiveUp() }
            i += 1
            whitespace()
            if byte == UInt8(ascii: "]") { i += 1; return }
            while true {
                try skipValue(depth: depth + 1)
                whitespace()
                if byte == UInt8(ascii: ",") { i += 1; whitespace(); continue }
                try expect(UInt8(ascii: "]"))
                return
            }
        default: throw GiveUp()  // objects and anything malformed
        }
    }
}
