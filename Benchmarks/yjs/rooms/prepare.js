// Builds the automerge-paper (B4) document once: replays every patch of the editing trace into a
// Y.Doc (one transaction per patch, as a typing editor would), checks the text against endContent
// and writes Y.encodeStateAsUpdate(doc) to OUT. Also writes OUT.txt with the final text.
// Usage: NODE_PATH=/usr/share/nodejs node prepare.js TRACE.json.gz OUT
'use strict'
const Y = require('yjs')
const fs = require('fs')
const zlib = require('zlib')
const [,, tracePath, out] = process.argv
const trace = JSON.parse(zlib.gunzipSync(fs.readFileSync(tracePath)))
const doc = new Y.Doc()
doc.clientID = 2654435761
const text = doc.getText('t')
const t0 = process.hrtime.bigint()
let n = 0
for (const txn of trace.txns) {
  for (const [pos, del, ins] of txn.patches) {
    doc.transact(() => {
      if (del > 0) text.delete(pos, del)
      if (ins.length > 0) text.insert(pos, ins)
    })
    n++
  }
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6
if (text.toString() !== trace.endContent) throw new Error('replay mismatch')
const state = Y.encodeStateAsUpdate(doc)
fs.writeFileSync(out, state)
fs.writeFileSync(out + '.txt', trace.endContent)
process.stdout.write(JSON.stringify({ patches: n, replayMs: Math.round(ms), stateBytes: state.length, textChars: [...trace.endContent].length }) + '\n')
