// Random awareness update batches applied by y-protocols' Awareness; records what it accepted.
// Usage: NODE_PATH=/usr/share/nodejs node awareness-oracle.js SEED COUNT > OUT.json
'use strict'
const Y = require('yjs')
const awarenessProtocol = require('y-protocols/dist/awareness.cjs')
const encoding = require('lib0/dist/encoding.cjs')
const seed = parseInt(process.argv[2] || '1', 10)
const count = parseInt(process.argv[3] || '500', 10)
let a = seed
const rnd = () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296 }
const int = k => Math.floor(rnd() * k)
const doc = new Y.Doc()
doc.clientID = 999999
const aw = new awarenessProtocol.Awareness(doc)
clearInterval(aw._checkInterval)
aw.setLocalState(null)
const clocks = new Map()
const batches = []
for (let i = 0; i < count; i++) {
  const n = 1 + int(3)
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, n)
  for (let k = 0; k < n; k++) {
    const client = 1 + int(5)
    const base = clocks.get(client) || 0
    const clock = Math.max(0, base + int(4) - 1) // older, equal or newer clocks
    clocks.set(client, Math.max(base, clock))
    const state = rnd() < 0.25 ? null : { user: { name: 'u' + client }, cursor: int(3) }
    encoding.writeVarUint(e, client)
    encoding.writeVarUint(e, clock)
    encoding.writeVarString(e, JSON.stringify(state))
  }
  const update = encoding.toUint8Array(e)
  let change = null
  const h = (c) => { change = c }
  aw.on('update', h)
  awarenessProtocol.applyAwarenessUpdate(aw, update, 'remote')
  aw.off('update', h)
  batches.push({ update: Buffer.from(update).toString('hex'), change })
}
const states = Array.from(aw.getStates().entries()).filter(([c]) => c !== doc.clientID).map(([c, s]) => [c, JSON.stringify(s)]).sort((x, y) => x[0] - y[0])
process.stdout.write(JSON.stringify({ batches, states }))
