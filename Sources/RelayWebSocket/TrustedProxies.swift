#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The reverse proxies whose `Forwarded` / `X-Forwarded-For` headers relayd
/// believes (`--trusted-proxy`). Headers from any other peer are ignored, so a
/// client cannot choose its own address for per-IP limits and logs.
public struct TrustedProxies: Sendable, Equatable, CustomStringConvertible {
    /// One address range: network bytes (4 or 16) and a prefix length.
    struct Range: Sendable, Equatable {
        let network: [UInt8]
        let prefix: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == network.count else { return false }
            var bits = prefix
            for i in 0..<network.count where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if address[i] & mask != network[i] & mask { return false }
                bits -= 8
            }
            return true
        }
    }

    let ranges: [Range]
    /// The list as configured, for logs and `--help`-style messages.
    public let description: String

    /// Trust no one: the TCP peer is always the client.
    public static let none = TrustedProxies(ranges: [], description: "")

    init(ranges: [Range], description: String) {
        self.ranges = ranges
        self.description = description
    }

    /// Parses a comma- or space-separated list of addresses and CIDR ranges,
    /// IPv4 or IPv6 (`127.0.0.1, 10.0.0.0/8, ::1, fd00::/8`). Throws a message
    /// naming the first entry that is not one.
    public init(parsing list: String) throws(TrustedProxyError) {
        var ranges: [Range] = []
        for entry in list.split(whereSeparator: { $0 == "," || $0 == " " }) {
            let parts = entry.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = Self.parseIP(String(parts[0])) else { throw TrustedProxyError(entry: String(entry)) }
            var prefix = address.count * 8
            if parts.count == 2 {
                guard let p = Int(parts[1]), (0...prefix).contains(p) else { throw TrustedProxyError(entry: String(entry)) }
                prefix = p
            }
            ranges.append(Range(network: address, prefix: prefix))
        }
        self.init(ranges: ranges, description: list)
    }

    public var isEmpty: Bool { ranges.isEmpty }

    /// Whether `ip` (text, as a socket reports it) is a trusted proxy.
    public func contains(_ ip: String) -> Bool {
        guard !ranges.isEmpty, let bytes = Self.parseIP(ip) else { return false }
        return ranges.contains { $0.contains(bytes) }
    }

    /// The client's address for a request that arrived from `peer`.
    ///
    /// Only when `peer` is trusted are the forwarding headers read: RFC 7239
    /// `Forwarded` (`for=` of each element) when present, else
    /// `X-Forwarded-For`. The chain is walked from the nearest hop outwards and
    /// the first address that is not itself a trusted proxy is the client. A hop
    /// that is not an IP address (`unknown`, an obfuscated name, garbage) ends the
    /// walk at the last proxy that could be trusted, and the address is always
    /// returned in canonical text form.
    ///
    /// - Parameters:
    ///   - forwarded: every `Forwarded` header value, in order.
    ///   - xForwardedFor: every `X-Forwarded-For` header value, in order.
    public func clientAddress(peer: String, forwarded: [String], xForwardedFor: [String]) -> String {
        guard contains(peer) else { return peer }
        let chain = forwarded.isEmpty ? Self.xForwardedForChain(xForwardedFor) : Self.forwardedChain(forwarded)
        var client = peer
        for hop in chain.reversed() {
            guard contains(client) else { break }
            guard let bytes = Self.parseIP(hop) else { break }
            client = Self.format(bytes)
        }
        return client
    }

    // MARK: Header chains

    static func xForwardedForChain(_ values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",") }.map { Self.stripPort(String($0.trimmingSpaces)) }
    }

    /// `for=` of each element of `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`.
    static func forwardedChain(_ values: [String]) -> [String] {
        var out: [String] = []
        for value in values {
            for element in value.split(separator: ",") {
                var found = "unknown"
                for pair in element.split(separator: ";") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2, kv[0].trimmingSpaces.lowercased() == "for" else { continue }
                    var v = String(kv[1].trimmingSpaces)
                    if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
                    found = Self.stripPort(v)
                }
                out.append(found)
            }
        }
        return out
    }

    /// `[v6]:port` → `v6`, `[v6]` → `v6`, `v4:port` → `v4`; anything else as is.
    static func stripPort(_ s: String) -> String {
        if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
            return String(s[s.index(after: s.startIndex)..<close])
        }
        if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") {
            return String(s[..<colon])
        }
        return s
    }

    // MARK: Addresses

    /// 4 bytes for IPv4 (an IPv4-mapped IPv6 address counts as IPv4), 16 for IPv6.
    static func parseIP(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
        return bytes
    }

    static func format(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil }
        return ok ? String(cString: buffer) : "unknown"
    }
}

/// A `--trusted-proxy` entry that is neither an IP address nor a CIDR range.
public struct TrustedProxyError: Error, Sendable, CustomStringConvertible {
    public let entry: String
    public var description: String { "not an IP address or CIDR range: \"\(entry)\" (expected e.g. 127.0.0.1, 10.0.0.0/8, ::1)" }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
