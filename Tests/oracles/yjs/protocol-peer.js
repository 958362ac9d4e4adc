// Simulated y-websocket clients (real Y.Doc + y-protocols sync/awareness handling, as the
// y-websocket client does it), driven over stdin/stdout by the Swift test that plays the server.
// Usage: NODE_PATH=/usr/share/nodejs node protocol-peer.js SEED NCLIENTS
// Each stdin line is a JSON command; each answer is one JSON line {frames: [[client, hex]...], ...}.
'use strict'
const Y = require('yjs')
const syncProtocol = require('y-protocols/dist/sync.cjs')
const awarenessProtocol = require('y-protocols/dist/awareness.cjs')
const encoding = require('lib0/dist/encoding.cjs')
const decoding = require('lib0/dist/decoding.cjs')
const readline = require('readline')

const seed = parseInt(process.argv[2] || '1', 10)
const n = parseInt(process.argv[3] || '3', 10)
let a = seed
const rnd = () => { a |= 0; a = a + 0x6D2B79F5 | 0; let t = Math.imul(a ^ a >>> 15, 1 | a); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296 }
const int = k => Math.floor(rnd() * k)
const hex = u => Buffer.from(u).toString('hex')
let out = []
const clients = []
for (let i = 0; i < n; i++) {
  const doc = new Y.Doc()
  doc.clientID = 1000 + i
  const awareness = new awarenessProtocol.Awareness(doc)
  clearInterval(awareness._checkInterval) // no wall-clock timeouts in the test
  const c = { doc, awareness, origin: { client: i } }
  doc.on('update', (update, origin) => {
    if (origin !== c.origin) {
      const e = encoding.createEncoder(); encoding.writeVarUint(e, 0); syncProtocol.writeUpdate(e, update); out.push([i, hex(encoding.toUint8Array(e))])
    }
  })
  // like the y-websocket client: every awareness update event is sent, whatever its origin
  awareness.on('update', ({ added, updated, removed }) => {
    const changed = added.concat(updated).concat(removed)
    const e = encoding.createEncoder(); encoding.writeVarUint(e, 1)
    encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awareness, changed)); out.push([i, hex(encoding.toUint8Array(e))])
  })
  clients.push(c)
}
// Map key order depends on integration order, so keys are sorted.
const sorted = v => Array.isArray(v) ? v.map(sorted) : (v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map(k => [k, sorted(v[k])])) : v)
function content (doc) {
  return JSON.stringify(sorted({ t: doc.getText('t').toDelta(), m: doc.getMap('m').toJSON(), a: doc.getArray('a').toJSON() }))
}
function deliver (i, frame) {
  const c = clients[i]
  const decoder = decoding.createDecoder(Buffer.from(frame, 'hex'))
  const type = decoding.readVarUint(decoder)
  if (type === 0) {
    const e = encoding.createEncoder(); encoding.writeVarUint(e, 0)
    syncProtocol.readSyncMessage(decoder, e, c.doc, c.origin)
    if (encoding.length(e) > 1) out.push([i, hex(encoding.toUint8Array(e))])
  } else if (type === 1) {
    awarenessProtocol.applyAwarenessUpdate(c.awareness, decoding.readVarUint8Array(decoder), c.origin)
  } else if (type === 3) {
    const e = encoding.createEncoder(); encoding.writeVarUint(e, 1)
    encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(c.awareness, Array.from(c.awareness.getStates().keys())))
    out.push([i, hex(encoding.toUint8Array(e))])
  }
}
const PIECES = ['a', 'b', 'é', '中', '😀', 'xyz', ' ']
// Positions never split a surrogate pair: Yjs itself diverges when peers split pairs
// concurrently (yjs issue #248), which is not what this test is about.
function boundary (s, p) {
  const c = s.charCodeAt(p - 1)
  return p > 0 && c >= 0xD800 && c <= 0xDBFF ? p - 1 : p
}
function edit (i) {
  const { doc, awareness } = clients[i]
  const t = doc.getText('t')
  const s = t.toString()
  const r = rnd()
  if (r < 0.45) t.insert(boundary(s, int(s.length + 1)), PIECES[int(PIECES.length)], rnd() < 0.2 ? { bold: true } : undefined)
  else if (r < 0.6 && s.length > 0) {
    const p = boundary(s, int(s.length)); const q = boundary(s, Math.min(s.length, p + 1 + int(3)))
    if (q > p) t.delete(p, q - p)
  }
  else if (r < 0.7) doc.getMap('m').set('k' + int(4), int(100))
  else if (r < 0.8) doc.getArray('a').insert(0, [int(10)])
  else if (r < 0.9 && doc.getArray('a').length > 0) doc.getArray('a').delete(0, 1)
  else awareness.setLocalStateField('cursor', int(1000))
}
const rl = readline.createInterface({ input: process.stdin })
rl.on('line', line => {
  const cmd = JSON.parse(line)
  const res = {}
  if (cmd.op === 'connect') {
    const c = clients[cmd.client]
    const e = encoding.createEncoder(); encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep1(e, c.doc); out.push([cmd.client, hex(encoding.toUint8Array(e))])
    c.awareness.setLocalStateField('user', { name: 'u' + cmd.client })
  } else if (cmd.op === 'deliver') {
    deliver(cmd.client, cmd.frame)
  } else if (cmd.op === 'edit') {
    edit(cmd.client)
  } else if (cmd.op === 'check') {
    const d = new Y.Doc(); Y.applyUpdate(d, Buffer.from(cmd.state, 'hex'))
    res.server = content(d)
    res.clients = clients.map(c => content(c.doc))
    res.awareness = clients.map(c => Array.from(c.awareness.getStates().keys()).sort())
  }
  res.frames = out
  out = []
  process.stdout.write(JSON.stringify(res) + '\n')
})
