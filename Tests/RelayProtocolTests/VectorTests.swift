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
    return try JSONParser.parse(Array(data))
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
