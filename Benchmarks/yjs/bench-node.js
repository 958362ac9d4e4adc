// Yjs side of the YjsSync benchmark. Replays the automerge-paper (B4) trace into a Y.Doc, one
// update per keystroke, writes the updates to UPDATES (u32 LE length-prefixed), then times Yjs.
// Usage: NODE_PATH=/usr/share/nodejs node --expose-gc bench-node.js TRACE.json.gz UPDATES SUBSET
'use strict'
const Y = require('yjs')
const fs = require('fs')
const zlib = require('zlib')
const [,, tracePath, updatesPath, subsetArg] = process.argv
const subset = parseInt(subsetArg || '8000', 10)
const ms = t => Number(process.hrtime.bigint() - t) / 1e6

const trace = JSON.parse(zlib.gunzipSync(fs.readFileSync(tracePath)))
const doc = new Y.Doc()
doc.clientID = 2654435761
const text = doc.getText('t')
const updates = []
doc.on('update', u => updates.push(u))
let t = process.hrtime.bigint()
for (const txn of trace.txns) {
  for (const [pos, del, ins] of txn.patches) {
    doc.transact(() => {
      if (del > 0) text.delete(pos, del)
      if (ins.length > 0) text.insert(pos, ins)
    })
  }
}
const replayMs = ms(t)
if (text.toString() !== trace.endContent) throw new Error('replay mismatch')
const parts = []
for (const u of updates) { const h = Buffer.alloc(4); h.writeUInt32LE(u.length); parts.push(h, Buffer.from(u)) }
fs.writeFileSync(updatesPath, Buffer.concat(parts))

const out = { updates: updates.length, updateBytes: updates.reduce((a, u) => a + u.length, 0), replayMs }
t = process.hrtime.bigint()
Y.mergeUpdates(updates.slice(0, subset))
out.mergeSubsetMs = ms(t)
t = process.hrtime.bigint()
let acc = new Uint8Array([0, 0])
for (let i = 0; i < updates.length; i += 1000) acc = Y.mergeUpdates([acc, ...updates.slice(i, i + 1000)])
out.mergeAllFold1000Ms = ms(t)
out.mergedBytes = acc.length
t = process.hrtime.bigint()
const sv = Y.encodeStateVectorFromUpdate(acc)
out.svMs = ms(t)
// half-way state vector: the state after half of the updates
const half = Y.encodeStateVectorFromUpdate(Y.mergeUpdates(updates.slice(0, 1000)))
const halfDoc = new Y.Doc(); for (let i = 0; i < updates.length / 2; i++) Y.applyUpdate(halfDoc, updates[i])
const halfSV = Y.encodeStateVector(halfDoc)
t = process.hrtime.bigint()
const d = Y.diffUpdate(acc, halfSV)
out.diffMs = ms(t)
out.diffBytes = d.length
out.halfSV = Buffer.from(halfSV).toString('hex')
void sv; void half
// (c) what a y-websocket server holds: one Y.Doc with the document loaded
global.gc(); global.gc()
const before = process.memoryUsage().heapUsed
const serverDoc = new Y.Doc()
Y.applyUpdate(serverDoc, acc)
global.gc(); global.gc()
out.yDocHeapBytes = process.memoryUsage().heapUsed - before
out.yDocEncodedBytes = Y.encodeStateAsUpdate(serverDoc).length
process.stdout.write(JSON.stringify(out) + '\n')
