// Human-readable decoding of updates and messages (for `relayctl yjs inspect`).

extension YUpdate {
    /// Decodes a v1 update to pretty JSON: client blocks with their structs, and the delete set.
    public static func inspect(_ update: [UInt8]) throws -> String {
        var r = try StructReader(update, filterSkips: false)
        let src = r.bytes
        var blocks: [(client: UInt64, structs: [String])] = []
        while let s = r.curr {
            if blocks.last?.client != s.client { blocks.append((s.client, [])) }
            blocks[blocks.count - 1].structs.append(describe(s, src))
            try r.next()
        }
        let ds = try r.readDeleteSet()
        var out = "{\n  \"clients\": ["
        for (i, b) in blocks.enumerated() {
            out += (i > 0 ? "," : "") + "\n    {\"client\": \(b.client), \"structs\": [\n      "
            out += b.structs.joined(separator: ",\n      ") + "\n    ]}"
        }
        out += "\n  ],\n  \"deleteSet\": {"
        out += ds.clients.keys.sorted(by: >).map { c in
            "\"\(c)\": [" + ds.clients[c]!.map { "[\($0.clock), \($0.length)]" }.joined(separator: ", ") + "]"
        }.joined(separator: ", ")
        out += "}\n}\n"
        return out
    }

    /// The `stateVector` as JSON (`{"client": clock}`).
    public static func inspect(stateVector sv: StateVector) -> String {
        "{" + sv.clocks.keys.sorted(by: >).map { "\"\($0)\": \(sv.clocks[$0]!)" }.joined(separator: ", ") + "}"
    }

    /// Decodes a y-websocket message to JSON (updates inside sync messages are expanded).
    public static func inspect(message bytes: [UInt8], awarenessStateIsValid: (String) -> Bool = { _ in true }) throws -> String {
        switch try ProtocolMessage(decoding: bytes) {
        case .sync(.step1(let sv)): return "{\"type\": \"syncStep1\", \"stateVector\": \(inspect(stateVector: try StateVector(decoding: sv)))}\n"
        case .sync(.step2(let u)): return "{\"type\": \"syncStep2\", \"update\": \(try inspect(u))}\n"
        case .sync(.update(let u)): return "{\"type\": \"update\", \"update\": \(try inspect(u))}\n"
        case .awareness(let a):
            let entries = try AwarenessUpdate(decoding: a, stateIsValid: awarenessStateIsValid).entries.map {
                var s = ""
                Lib0Any.appendJSONString($0.state, &s)
                return "{\"clientID\": \($0.clientID), \"clock\": \($0.clock), \"state\": \(s)}"
            }
            return "{\"type\": \"awareness\", \"entries\": [" + entries.joined(separator: ", ") + "]}\n"
        case .authPermissionDenied(let reason):
            var s = ""
            Lib0Any.appendJSONString(reason, &s)
            return "{\"type\": \"authPermissionDenied\", \"reason\": \(s)}\n"
        case .queryAwareness: return "{\"type\": \"queryAwareness\"}\n"
        }
    }

    static func describe(_ s: RawStruct, _ src: [UInt8]) -> String {
        func str(_ r: Range<Int>) -> String {
            var o = ""
            Lib0Any.appendJSONString(String(decoding: src[r], as: UTF8.self), &o)
            return o
        }
        func id(_ x: YID) -> String { "[\(x.client), \(x.clock)]" }
        switch s.kind {
        case .gc: return "{\"clock\": \(s.clock), \"kind\": \"GC\", \"length\": \(s.length)}"
        case .skip: return "{\"clock\": \(s.clock), \"kind\": \"Skip\", \"length\": \(s.length)}"
        case .item:
            let names = ["", "Deleted", "JSON", "Binary", "String", "Embed", "Format", "Type", "Any", "Doc"]
            var f = ["\"clock\": \(s.clock)", "\"kind\": \"\(names[Int(s.ref)])\"", "\"length\": \(s.length)"]
            if s.hasOrigin { f.append("\"origin\": \(id(s.origin))") }
            if s.hasRightOrigin { f.append("\"rightOrigin\": \(id(s.rightOrigin))") }
            if s.parentKind == 1 { f.append("\"parent\": \(str(s.parentKey))") }
            if s.parentKind == 2 { f.append("\"parent\": \(id(s.parentID))") }
            if s.hasParentSub { f.append("\"parentSub\": \(str(s.parentSub))") }
            switch s.ref {
            case 4, 5: f.append("\"content\": \(str(s.a))")
            case 6: f.append("\"key\": \(str(s.a))"); f.append("\"value\": \(str(s.b))")
            case 7:
                let types = ["YArray", "YMap", "YText", "YXmlElement", "YXmlFragment", "YXmlHook", "YXmlText"]
                f.append("\"type\": \"\(types[Int(s.typeRef)])\"")
                if s.typeRef == 3 || s.typeRef == 5 { f.append("\"name\": \(str(s.a))") }
            case 8:
                var d = Lib0Decoder(src, range: s.a)
                var items: [String] = []
                while !d.isAtEnd, let v = try? d.readAny() { items.append(v.jsonText() ?? "null") }
                f.append("\"content\": [" + items.joined(separator: ", ") + "]")
            case 3: f.append("\"bytes\": \(s.a.count)")
            case 9: f.append("\"guid\": \(str(s.a))")
            default: break
            }
            return "{" + f.joined(separator: ", ") + "}"
        }
    }
}
