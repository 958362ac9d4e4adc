// Replays a sequential editing trace (shared/data/editing-traces) into a Y.Doc, one update per
// patch, and records the updates and what Yjs holds at the end and half-way.
// Usage: NODE_PATH=/usr/share/nodejs node replay-trace.js TRACE.json.gz OUT.json
'use strict'
const Y = require('yjs')
const fs = require('fs')
const zlib = require('zlib')
const [,, tracePath, outPath] = process.argv
const hex = u => Buffer.from(u).toString('hex')
function content (doc) {
  return JSON.stringify({
    t: doc.getText('t').toDelta(),
    m: doc.getMap('m').toJSON(),
    a: doc.getArray('a').toJSON(),
    x: doc.getXmlFragment('x').toString()
  })
}
const trace = JSON.parse(zlib.gunzipSync(fs.readFileSync(tracePath)))
const doc = new Y.Doc()
doc.clientID = 3141592653
const text = doc.getText('t')
const updates = []
doc.on('update', u => updates.push(hex(u)))
const patches = []
for (const txn of trace.txns) for (const p of txn.patches) patches.push(p)
let half = null
patches.forEach(([pos, del, ins], i) => {
  doc.transact(() => {
    if (del > 0) text.delete(pos, del)
    if (ins.length > 0) text.insert(pos, ins)
  })
  if (i === Math.floor(patches.length / 2)) half = { sv: hex(Y.encodeStateVector(doc)), state: hex(Y.encodeStateAsUpdate(doc)) }
})
if (text.toString() !== trace.endContent) throw new Error('replay does not reach endContent')
fs.writeFileSync(outPath, JSON.stringify({
  updates, half, sv: hex(Y.encodeStateVector(doc)), content: content(doc), state: hex(Y.encodeStateAsUpdate(doc))
}))
