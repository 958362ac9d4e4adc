// Replays an editing trace (shared/data/editing-traces) into Y.Docs, one update per
// transaction, and records the updates and what Yjs holds at the end and half-way.
// Sequential traces are typed into one document. Concurrent traces (transactions with `parents`
// and `agent`) are typed by one document per agent, each brought to exactly the transaction's
// parents first, as a relay would deliver them; the reference document applies every update in
// the order the transactions were made.
// Usage: NODE_PATH=/usr/share/nodejs node replay-trace.js TRACE.json.gz OUT.json
// OUT: { updates: [hex], half: { sv, state }, sv, content, state, stateV2 } where state and stateV2
// are encodeStateAsUpdate and encodeStateAsUpdateV2 of a garbage-collecting Y.Doc.
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
const updates = []
const ref = new Y.Doc()
let half = null
const halfAt = Math.floor(trace.txns.length / 2)

if (trace.kind === 'concurrent') {
  const docs = []
  const applied = [] // per agent: per other agent, the last transaction index applied
  const own = [] // per agent: its transactions' indices, ascending
  const version = [] // per transaction: per agent, the last of its transactions it has seen
  const updateOf = []
  for (let a = 0; a < trace.numAgents; a++) {
    const d = new Y.Doc()
    d.clientID = 3141592653 + a
    docs.push(d)
    applied.push(new Array(trace.numAgents).fill(-1))
    own.push([])
  }
  trace.txns.forEach((txn, i) => {
    const v = new Array(trace.numAgents).fill(-1)
    for (const p of txn.parents) {
      for (let a = 0; a < v.length; a++) v[a] = Math.max(v[a], version[p][a])
      v[trace.txns[p].agent] = Math.max(v[trace.txns[p].agent], p)
    }
    const doc = docs[txn.agent]
    for (let b = 0; b < trace.numAgents; b++) {
      if (b === txn.agent) continue
      for (const j of own[b]) {
        if (j > applied[txn.agent][b] && j <= v[b]) Y.applyUpdate(doc, updateOf[j], 'remote')
      }
      applied[txn.agent][b] = Math.max(applied[txn.agent][b], v[b])
    }
    let u = null
    const listen = (update, origin) => { if (origin !== 'remote') u = update }
    doc.on('update', listen)
    const text = doc.getText('t')
    doc.transact(() => {
      for (const [pos, del, ins] of txn.patches) {
        if (del > 0) text.delete(pos, del)
        if (ins.length > 0) text.insert(pos, ins)
      }
    })
    doc.off('update', listen)
    version.push(v)
    own[txn.agent].push(i)
    updateOf.push(u)
    if (u) { updates.push(hex(u)); Y.applyUpdate(ref, u) }
    if (i === halfAt) half = { sv: hex(Y.encodeStateVector(ref)), state: hex(Y.encodeStateAsUpdate(ref)) }
  })
} else {
  ref.clientID = 3141592653
  const text = ref.getText('t')
  ref.on('update', u => updates.push(hex(u)))
  const patches = []
  for (const txn of trace.txns) for (const p of txn.patches) patches.push(p)
  patches.forEach(([pos, del, ins], i) => {
    ref.transact(() => {
      if (del > 0) text.delete(pos, del)
      if (ins.length > 0) text.insert(pos, ins)
    })
    if (i === Math.floor(patches.length / 2)) half = { sv: hex(Y.encodeStateVector(ref)), state: hex(Y.encodeStateAsUpdate(ref)) }
  })
}
if (ref.getText('t').toString() !== trace.endContent) throw new Error('replay does not reach endContent')
fs.writeFileSync(outPath, JSON.stringify({
  updates, half, sv: hex(Y.encodeStateVector(ref)), content: content(ref), state: hex(Y.encodeStateAsUpdate(ref)), stateV2: hex(Y.encodeStateAsUpdateV2(ref))
}))
