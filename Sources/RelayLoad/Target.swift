import RelayJSON
import Foundation
import RelayCrypto

/// The server under load and how to speak to it.
public struct LoadTarget: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// relayd: one WebSocket at `/ws?token=…` subscribing with a JSON frame; signed `POST /publish`.
        case relayd
        /// nginx + nchan: one WebSocket per channel at `<subPath>?id=<channel>`; `POST <pubPath>?id=<channel>`.
        case nchan
    }

    public var kind: Kind
    public var host: String
    public var port: Int
    // relayd
    public var siteKey: String
    public var publishSecret: String
    public var jwtSecret: String
    // nchan
    public var subscribePath: String
    public var publishPath: String

    let signingKey: HMACSHA256Key
    let siteID: String
    let token: String

    public init(kind: Kind, host: String = "127.0.0.1", port: Int, siteKey: String = "", publishSecret: String = "",
                jwtSecret: String = "", subscribePath: String = "/sub", publishPath: String = "/pub") {
        self.kind = kind
        self.host = host
        self.port = port
        self.siteKey = siteKey
        self.publishSecret = publishSecret
        self.jwtSecret = jwtSecret
        self.subscribePath = subscribePath
        self.publishPath = publishPath
        self.signingKey = HMACSHA256Key(utf8: publishSecret)
        self.siteID = RelaydToken.siteID(siteKey: siteKey)
        self.token = kind == .relayd && !jwtSecret.isEmpty ? RelaydToken.mint(siteKey: siteKey, jwtSecret: jwtSecret) : ""
    }

    /// Parses `http://host:port` (a path is ignored).
    public static func hostPort(url: String) throws -> (String, Int) {
        guard let u = URL(string: url), let h = u.host else { throw LoadError("invalid URL \(url)") }
        return (h, u.port ?? 80)
    }

    /// Full channel name for channel number `i` of run `run`.
    public func channelName(run: String, index: Int) -> String {
        switch kind {
        case .relayd: return "site:\(siteID):bench-\(run)-\(index)"
        case .nchan: return "bench-\(run)-\(index)"
        }
    }

    /// Request URI of the WebSocket upgrade for a subscriber of `channel`.
    public func webSocketURI(channel: String) -> String {
        switch kind {
        case .relayd: return "/ws?token=\(token)"
        case .nchan: return "\(subscribePath)?id=\(channel)"
        }
    }

    /// First frame to send after the upgrade (nil for nchan: the URI names the channel).
    public func subscribeFrame(channel: String) -> [UInt8]? {
        switch kind {
        case .relayd:
            var out = Array(#"{"type":"subscribe","channels":["#.utf8)
            JSONValue.writeString(channel, into: &out)
            out += Array("]}".utf8)
            return out
        case .nchan: return nil
        }
    }

    /// URI, extra headers and body of a publish of `payload` on `channel`.
    public func publishRequest(channel: String, payload: [UInt8]) -> (uri: String, headers: [(String, String)], body: [UInt8]) {
        switch kind {
        case .relayd:
            var body = Array(#"{"channel":"#.utf8)
            JSONValue.writeString(channel, into: &body)
            body += Array(#","event":"bench","data":"#.utf8)
            body += payload
            body.append(UInt8(ascii: "}"))
            let ts = Int64(Date().timeIntervalSince1970 * 1000)
            let sig = PublishSignatureV1.signature(body: body, timestampMs: ts, key: signingKey)
            return ("/publish", [(PublishSignatureV1.keyHeader, siteKey), (PublishSignatureV1.timestampHeader, String(ts)),
                                 (PublishSignatureV1.signatureHeader, sig), ("Content-Type", "application/json")], body)
        case .nchan:
            return ("\(publishPath)?id=\(channel)", [("Content-Type", "application/json")], payload)
        }
    }
}

public struct LoadError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}
