// JSON: the validator, the tree parser and the member walker must agree on every input,
// and a parsed value must re-serialise to JSON the parser accepts again.
import RelayJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let valid = JSON.isValid(bytes)
    let tree = try? JSONParser.parse(bytes)
    precondition(valid == (tree != nil), "JSON.isValid and JSONParser.parse disagree")
    if let tree {
        let again = Array(tree.jsonString.utf8)
        precondition(JSON.isValid(again), "re-serialised JSON is refused")
        precondition((try? JSONParser.parse(again)) == tree, "re-serialised JSON parses to another value")
    }
    if bytes.first == UInt8(ascii: "{") {
        var names = 0
        let walked = (try? JSONParser.forEachMember(of: bytes) { (_: String, _: JSONValue) in names += 1 }) != nil
        if walked { precondition(valid, "forEachMember accepted invalid JSON") }
    }
    return 0
}
