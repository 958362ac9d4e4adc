import Foundation
import RelayJSON
import RelayProtocol
import Testing

/// The repository's `protocol/vectors/` directory.
let vectorsDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("protocol/vectors")

func loadVector(_ name: String) throws -> JSONValue {
    let data = try Data(contentsOf: vectorsDirectory.appendingPathComponent(name))
    return try JSONParser.parse(Array(data), maxDepth: 256)  // the vector files nest test inputs
}

@Suite("Close codes")
struct CloseCodeVectorTests {
    /// The code table and `close-codes.json` say the same thing, row for row.
    @Test func tableMatchesVector() throws {
        let rows = try #require(try loadVector("close-codes.json")["codes"]?.arrayValue)
        #expect(rows.count == CloseCode.table.count)
        for row in rows {
            let code = try #require(row["code"]?.int64Value)
            let info = try #require(CloseCode(UInt16(code)).info, "relayd has no row for \(code)")
            #expect(row["name"]?.stringValue == info.name, "\(code)")
            let endpoints = Set((row["endpoints"]?.arrayValue ?? []).compactMap { $0.stringValue })
            #expect(endpoints == Set(info.endpoints.map(\.rawValue)), "\(code)")
            #expect(row["client"]?.stringValue == info.client.rawValue, "\(code)")
            #expect(row["provider_error"]?.stringValue == info.providerError, "\(code)")
        }
    }

    /// One code, one meaning: no two rows share a code or a name.
    @Test func codesAndNamesAreUnique() {
        #expect(Set(CloseCode.table.map(\.code)).count == CloseCode.table.count)
        #expect(Set(CloseCode.table.map(\.name)).count == CloseCode.table.count)
        #expect(CloseCode(4999).name == "other")
    }
}

@Suite("Protocol vectors: JSON and client frames")
struct JSONAndFrameVectorTests {
    /// Every case of `json.json` gets the documented verdict; `publish_body`
    /// cases are whole `POST /publish` bodies.
    @Test func jsonRules() throws {
        let v = try loadVector("json.json")
        #expect(v["max_depth"]?.int64Value == Int64(JSON.maxDepth))
        let cases = try #require(v["cases"]?.arrayValue)
        #expect(cases.count >= 50)
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let bytes = try #require(hexBytes(c["input_hex"]?.stringValue ?? ""), "\(name)")
            if c["context"]?.stringValue == "publish_body" {
                let ok = c["expected"]?["status"]?.int64Value == 200
                #expect((PublishBody.parse(bytes) != nil) == ok, "\(name)")
            } else {
                #expect(JSON.isValid(bytes) == (c["valid"]?.boolValue == true), "\(name) (\(c["rule"]?.stringValue ?? ""))")
            }
        }
    }

    /// The parse layer of `frames.json`: a frame that must close with 1008 is
    /// refused by the parser; every other text frame parses.
    @Test func clientFrames() throws {
        let v = try loadVector("frames.json")
        let cases = try #require(v["client_to_relay"]?.arrayValue)
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            let malformed = c["expect"]?["kind"]?.stringValue == "close" && c["expect"]?["code"]?.int64Value == 1008
            if let text = c["text"]?.stringValue {
                #expect((ClientMessage.parse(Array(text.utf8)) == nil) == malformed, "\(name)")
            } else if let hex = c["binary_hex"]?.stringValue {
                let frame = try #require(hexBytes(hex))
                #expect((Wire.parseBinaryFrame(frame) == nil) == malformed, "\(name)")
            }
        }
    }
}

func hexBytes(_ s: String) -> [UInt8]? {
    let u = Array(s.utf8)
    guard u.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(u.count / 2)
    var i = 0
    while i < u.count {
        guard let b = UInt8(String(decoding: u[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
        out.append(b)
        i += 2
    }
    return out
}
