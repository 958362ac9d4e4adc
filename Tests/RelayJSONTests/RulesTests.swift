import RelayJSON
import Testing

/// One test per rule of the project's JSON strictness (Docs/protocol.md, "JSON"):
/// the same verdict from every entry point (validation, ranges, trees, members).
@Suite("JSON rules")
struct RulesTests {
    /// Every way the project reads JSON, as one verdict each.
    static func verdicts(_ text: [UInt8]) -> [String: Bool] {
        var r = JSONReader(text)
        let ranges: Bool
        do { r.skipWhitespace(); _ = try r.readRawValue(); try r.expectEnd(); ranges = true } catch { ranges = false }
        let wrapped = Array("[".utf8) + text + Array("]".utf8)
        return [
            "isValid": JSON.isValid(text),
            "ranges": ranges,
            "tree": (try? JSONParser.parse(text)) != nil,
            "arrayElement": (try? JSONParser.arrayElementRanges(wrapped)) != nil,
        ]
    }

    static func expect(_ text: String, valid: Bool, _ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation) {
        expect(Array(text.utf8), valid: valid, comment, sourceLocation: sourceLocation)
    }

    static func expect(_ bytes: [UInt8], valid: Bool, _ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation) {
        for (path, ok) in verdicts(bytes) {
            #expect(ok == valid, "\(path): \(comment)", sourceLocation: sourceLocation)
        }
    }

    @Test func grammar() {
        Self.expect(#"{"a":[1,-0.5e+3,true,false,null,"x"]}"#, valid: true, "plain RFC 8259")
        Self.expect(" \t\r\n{}\n", valid: true, "the four whitespace kinds around a value")
        Self.expect("[1,]", valid: false, "trailing comma")
        Self.expect(#"{"a":1,}"#, valid: false, "trailing comma in object")
        Self.expect("01", valid: false, "leading zero")
        Self.expect("1.", valid: false, "empty fraction")
        Self.expect("+1", valid: false, "plus sign")
        Self.expect("NaN", valid: false, "NaN")
        Self.expect("[1] [2]", valid: false, "two values")
        Self.expect("// c\n1", valid: false, "comment")
        Self.expect([0xEF, 0xBB, 0xBF] + Array("{}".utf8), valid: false, "byte order mark")
        Self.expect("\u{0C}1", valid: false, "form feed is not JSON whitespace")
        Self.expect("{'a':1}", valid: false, "single quotes")
    }

    @Test func strings() {
        Self.expect(#""\u00e9\n\/""#, valid: true, "escapes")
        Self.expect("\"a\u{01}b\"", valid: false, "raw control character")
        Self.expect(#""\x41""#, valid: false, "unknown escape")
        Self.expect(#""\u12""#, valid: false, "short \\u escape")
        Self.expect([0x22, 0xC0, 0xAF, 0x22], valid: false, "overlong UTF-8")
        Self.expect([0x22, 0xED, 0xA0, 0x80, 0x22], valid: false, "UTF-8-encoded surrogate")
        Self.expect([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], valid: false, "beyond U+10FFFF")
        Self.expect([0x22, 0xE2, 0x82, 0x22], valid: false, "truncated sequence")
        Self.expect("\"é😀\"", valid: true, "raw UTF-8")
    }

    @Test func surrogates() throws {
        Self.expect(#"{"a":"\uD83D\uDE00"}"#, valid: true, "a surrogate pair")
        Self.expect(#"{"a":"\uD800"}"#, valid: false, "lone high surrogate")
        Self.expect(#"{"a":"\uDC00"}"#, valid: false, "lone low surrogate")
        Self.expect(#"{"a":"\uD800\u0041"}"#, valid: false, "high surrogate followed by a non-surrogate")
        Self.expect(#"{"a":"\uDE00\uD83D"}"#, valid: false, "pair in the wrong order")
        #expect(try JSONParser.parse(#""\uD83D\uDE00""#).stringValue == "😀")
    }

    @Test func duplicateNames() {
        Self.expect(#"{"a":1,"a":2}"#, valid: false, "duplicate at the top")
        Self.expect(#"{"x":{"a":1,"b":2,"a":3}}"#, valid: false, "duplicate nested")
        Self.expect(#"[{"a":1},{"a":2}]"#, valid: true, "same name in sibling objects")
        Self.expect(#"{"a":1,"\u0061":2}"#, valid: false, "duplicate after unescaping")
        Self.expect(#"{"a":1,"A":2}"#, valid: true, "names are case-sensitive")
        // Names are scoped to their own object: a child's names never clash with its parent's.
        Self.expect(#"{"a":{"a":1},"b":{"a":2,"b":3},"c":[{"c":1}]}"#, valid: true, "same name in parent and child")
        Self.expect(#"{"a":{"b":1},"b":2}"#, valid: true, "a child's name reused by the parent after it")
        Self.expect(#"{"a":{"b":1},"a":2}"#, valid: false, "a duplicate after a child object")
        // Past the linear-scan threshold the set path must agree.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        Self.expect("{\(many)}", valid: true, "40 distinct names")
        Self.expect("{\(many),\"k7\":0}", valid: false, "a duplicate among 40 names")
        Self.expect("{\(many),\"\\u006b7\":0}", valid: false, "an escaped duplicate among 40 names")
    }

    @Test func depth() {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(JSON.isValid(ok), "64 levels")
        #expect(!JSON.isValid(deep), "65 levels")
        #expect((try? JSONParser.parse(ok)) != nil)
        #expect((try? JSONParser.parse(deep)) == nil)
        let objects = String(repeating: "{\"a\":", count: 64) + "1" + String(repeating: "}", count: 64)
        #expect(JSON.isValid(objects))
        #expect(!JSON.isValid("{\"a\":" + objects + "}"))
    }

    @Test func writerRoundTrips() throws {
        for s in ["plain", "quote\" back\\slash", "\u{01}\u{1F}\u{7F}\n\r\t", "é😀", ""] {
            var out: [UInt8] = []
            JSON.appendString(s, to: &out)
            #expect(JSON.isValid(out))
            #expect(try JSONParser.parse(out).stringValue == s)
        }
        let tree = try JSONParser.parse(#"{"a":[1,{"b":null}],"c":"\u00e9"}"#)
        #expect(tree.jsonString == #"{"a":[1,{"b":null}],"c":"é"}"#)
    }

    @Test func errorsSayWhere() {
        #expect(throws: JSONError(offset: 7, reason: "duplicate member name")) { try JSONParser.parse(#"{"a":1,"a":2}"#) }
        do {
            _ = try JSONParser.parse(#"{"a":"\uD800"}"#)
            Issue.record("accepted a lone surrogate")
        } catch {
            #expect(error.reason == "unpaired surrogate")
        }
    }

    @Test func batchMember() throws {
        let body = Array(#"{"publications":[{"a":1},[2]],"other":true}"#.utf8)
        let ranges = try JSONParser.arrayElementRanges(body, member: "publications")
        #expect(ranges.map { String(decoding: body[$0], as: UTF8.self) } == [#"{"a":1}"#, "[2]"])
        #expect(throws: JSONError.self) { try JSONParser.arrayElementRanges(Array(#"{"x":[]}"#.utf8), member: "publications") }
        #expect(throws: JSONError.self) { try JSONParser.arrayElementRanges(Array(#"{"publications":[{"a":"\uD800"}]}"#.utf8), member: "publications") }
    }
}
