// Swift side of the YjsSync benchmark, compiled together with the module sources by run.sh
// (so it needs no Package.swift change). Usage: bench UPDATES SUBSET HALF_SV_HEX
import Foundation

func ms(_ start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}

let args = CommandLine.arguments
let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: args[1])))
let subset = Int(args[2])!
var halfSV: [UInt8] = []
do {
    var it = args[3].utf8.makeIterator()
    while let a = it.next(), let b = it.next() { halfSV.append(UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16)!) }
}
var updates: [[UInt8]] = []
var i = 0
while i < data.count {
    let n = Int(data[i]) | Int(data[i + 1]) << 8 | Int(data[i + 2]) << 16 | Int(data[i + 3]) << 24
    updates.append(Array(data[(i + 4)..<(i + 4 + n)]))
    i += 4 + n
}
var out: [String: Double] = [:]
var t = ContinuousClock.now
_ = try YUpdate.merge(Array(updates[0..<subset]))
out["mergeSubsetMs"] = ms(t)
t = ContinuousClock.now
let merged = try YUpdate.merge(updates)
out["mergeAllMs"] = ms(t)
out["mergedBytes"] = Double(merged.count)
t = ContinuousClock.now
_ = try YUpdate.encodeStateVector(fromUpdate: merged)
out["svMs"] = ms(t)
t = ContinuousClock.now
let d = try YUpdate.diff(merged, againstEncoded: halfSV)
out["diffMs"] = ms(t)
out["diffBytes"] = Double(d.count)
// the store: every keystroke applied as it would arrive from a client, then compacted; once
// keeping history (no garbage collection) and once collecting (the default)
var keep = DocumentStoreOptions()
keep.keepHistory = { _ in true }
let history = DocumentStore(persistence: InMemoryPersistence(), options: keep)
t = ContinuousClock.now
for u in updates { try history.applyUpdate(room: "b4", update: u) }
out["storeKeepHistoryApplyAllMs"] = ms(t)
try history.compact(room: "b4")
out["storeKeepHistoryBytes"] = Double(try history.roomBytes(room: "b4"))
let store = DocumentStore(persistence: InMemoryPersistence())
t = ContinuousClock.now
for u in updates { try store.applyUpdate(room: "b4", update: u) }
out["storeApplyAllMs"] = ms(t)
try store.compact(room: "b4")
out["storeBytesAfterCompaction"] = Double(try store.roomBytes(room: "b4"))
// one garbage collection of the whole merged document, best of 5
var best = Double.infinity
for _ in 0..<5 {
    t = ContinuousClock.now
    _ = try YUpdate.collectingGarbage(merged)
    best = min(best, ms(t))
}
out["collectMergedMs"] = best
t = ContinuousClock.now
let step2 = try store.syncStep2(room: "b4", forEncodedStateVector: [0])
out["storeStep2FullMs"] = ms(t)
out["storeStep2FullBytes"] = Double(step2.count)
let json = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
