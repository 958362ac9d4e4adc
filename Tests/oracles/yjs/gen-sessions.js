// Generates seeded random multi-client Yjs editing sessions and records what Yjs computes.
// Usage: NODE_PATH=/usr/share/nodejs node gen-sessions.js OUT.json COUNT SEED
// Output: JSON array of sessions. Each session holds hex updates and Yjs's answers for
// mergeUpdates, diffUpdate and encodeStateVectorFromUpdate, plus the expected content.
'use strict'
const Y = require('yjs')
const fs = require('fs')

const [,, outPath, countArg, seedArg] = process.argv
const count = parseInt(countArg || '100', 10)
const baseSeed = parseInt(seedArg || '1', 10)

const { mulberry32, hex } = require('./seeded')
const PIECES = ['a', 'b', 'c', ' ', 'xyz', 'é', '中文', '😀', '👍🏽', '𝄞', 'ñ\u0301', '\u{1F600}\u{1F601}', 'Hello', '\n']
const ANYS = [1, -7, 2147483647, 2147483648, 1.5, 0.1, 'x', '', true, false, null, { a: 1, b: 'two' }, [1, 2, 'three'], { nested: { deep: [true] } }]

function applied (...us) {
  // Some merges of GC'd states with raw items crash Yjs 13.5.43 on apply; record null then.
  try { const d = new Y.Doc(); for (const u of us) Y.applyUpdate(d, u); return content(d) } catch (e) { return null }
}
function content (doc) {
  return JSON.stringify({
    t: doc.getText('t').toDelta(),
    m: doc.getMap('m').toJSON(),
    a: doc.getArray('a').toJSON(),
    x: doc.getXmlFragment('x').toString()
  })
}

function session (seed) {
  const rnd = mulberry32(seed)
  const int = n => Math.floor(rnd() * n)
  const pick = arr => arr[int(arr.length)]
  const ndocs = 1 + int(3)
  const docs = []
  const updates = []
  const updatesV2 = []
  for (let i = 0; i < ndocs; i++) {
    const doc = new Y.Doc({ gc: rnd() < 0.5 })
    doc.clientID = rnd() < 0.2 ? i + 1 : (int(0xFFFFFFFF) >>> 0)
    doc.on('update', u => { updates.push(u) })
    doc.on('updateV2', u => { if (updatesV2.length < 12) updatesV2.push(u) })
    docs.push(doc)
  }
  const snapshots = []
  const nops = 10 + int(60)
  const randText = () => { let s = ''; const n = 1 + int(3); for (let i = 0; i < n; i++) s += pick(PIECES); return s }
  const nestedTargets = d => {
    const out = []
    d.getMap('m').forEach(v => { if (v instanceof Y.Map || v instanceof Y.Array || v instanceof Y.Text) out.push(v) })
    d.getArray('a').forEach(v => { if (v instanceof Y.Map || v instanceof Y.Array || v instanceof Y.Text) out.push(v) })
    return out
  }
  const editText = (t) => {
    const len = t.length
    const r = rnd()
    if (r < 0.45 || len === 0) {
      const attrs = rnd() < 0.25 ? pick([{ bold: true }, { italic: true, color: '#f00' }, { link: 'https://x' }]) : undefined
      t.insert(int(len + 1), randText(), attrs)
    } else if (r < 0.7) {
      const p = int(len); t.delete(p, 1 + int(Math.min(5, len - p)))
    } else if (r < 0.85) {
      const p = int(len); t.format(p, 1 + int(Math.min(6, len - p)), pick([{ bold: true }, { bold: null }, { italic: true }]))
    } else {
      t.insertEmbed(int(len + 1), { image: 'img' + int(9) })
    }
  }
  const editArray = (a) => {
    const len = a.length
    const r = rnd()
    if (r < 0.5 || len === 0) {
      const items = []
      const n = 1 + int(3)
      for (let i = 0; i < n; i++) {
        const q = rnd()
        if (q < 0.1) items.push(new Uint8Array([int(256), int(256)]))
        else if (q < 0.18) { const m = new Y.Map(); m.set('k', int(10)); items.push(m) } else if (q < 0.24) { const t = new Y.Text(); t.insert(0, randText()); items.push(t) } else items.push(pick(ANYS))
      }
      a.insert(int(len + 1), items)
    } else {
      const p = int(len); a.delete(p, 1 + int(Math.min(3, len - p)))
    }
  }
  const editMap = (m) => {
    const r = rnd()
    const key = pick(['k1', 'k2', 'k3', 'é', '😀'])
    if (r < 0.6) m.set(key, pick(ANYS))
    else if (r < 0.7) { const sub = new Y.Map(); sub.set('x', 1); m.set(key, sub) } else if (r < 0.78) { const t = new Y.Text(); t.insert(0, randText()); m.set(key, t) } else if (r < 0.83) { const arr = new Y.Array(); arr.insert(0, [1, 2]); m.set(key, arr) } else if (r < 0.86) { m.set(key, new Uint8Array([1, 2, 3])) } else m.delete(key)
  }
  const editXml = (d) => {
    const x = d.getXmlFragment('x')
    const r = rnd()
    if (r < 0.5 || x.length === 0) {
      const el = new Y.XmlElement(pick(['p', 'h1', 'li']))
      const tx = new Y.XmlText()
      el.insert(0, [tx])
      x.insert(int(x.length + 1), [el])
      tx.insert(0, randText(), rnd() < 0.3 ? { bold: true } : undefined)
      if (rnd() < 0.5) el.setAttribute('class', 'c' + int(5))
    } else if (r < 0.8) {
      const el = x.get(int(x.length))
      if (el instanceof Y.XmlElement) {
        const tx = el.get(0)
        if (tx instanceof Y.XmlText) editText(tx)
        else el.setAttribute('data', String(int(100)))
      }
    } else {
      x.delete(int(x.length), 1)
    }
  }
  for (let op = 0; op < nops; op++) {
    const d = pick(docs)
    const r = rnd()
    if (r < 0.12 && ndocs > 1) {
      const a = pick(docs); const b = pick(docs)
      if (a !== b) Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
    } else if (r < 0.16) {
      snapshots.push({ sv: Y.encodeStateVector(d), base: Y.encodeStateAsUpdate(d) })
    } else {
      d.transact(() => {
        const n = rnd() < 0.2 ? 2 + int(3) : 1
        for (let i = 0; i < n; i++) {
          const q = rnd()
          if (q < 0.4) editText(d.getText('t'))
          else if (q < 0.55) editArray(d.getArray('a'))
          else if (q < 0.7) editMap(d.getMap('m'))
          else if (q < 0.82) editXml(d)
          else {
            const ts = nestedTargets(d)
            if (ts.length === 0) editMap(d.getMap('m'))
            else {
              const t = pick(ts)
              if (t instanceof Y.Text) editText(t)
              else if (t instanceof Y.Array) editArray(t)
              else editMap(t)
            }
          }
        }
      })
    }
  }
  // Full sync so the union is well defined
  const all = Y.mergeUpdates(updates)
  const states = docs.map(d => Y.encodeStateAsUpdate(d))
  const fullDoc = new Y.Doc(); Y.applyUpdate(fullDoc, all)
  const out = { seed, updates: updates.map(hex), states: states.map(hex), merges: [], diffs: [], svs: [], content: content(fullDoc) }
  // Merge cases: [indices into updates ∪ states (states are numbered after updates)]
  const pool = updates.concat(states)
  const addMerge = idx => {
    const res = Y.mergeUpdates(idx.map(i => pool[i]))
    out.merges.push({ inputs: idx, out: hex(res), content: applied(res) })
    return res
  }
  addMerge(updates.map((_, i) => i))
  for (let k = 0; k < 3 && updates.length > 1; k++) {
    const n = 2 + int(Math.min(12, updates.length - 1))
    const idx = []
    for (let i = 0; i < n; i++) idx.push(int(updates.length))
    addMerge(idx)
  }
  if (updates.length > 0) addMerge([updates.length + int(states.length), int(updates.length), int(updates.length)])
  if (states.length > 1) addMerge(states.map((_, i) => updates.length + i))
  // v2 → v1 cases: update events and full states in v2, with Yjs's conversion
  out.v2 = updatesV2.concat(docs.map(d => Y.encodeStateAsUpdateV2(d))).map(u => ({ v2: hex(u), v1: hex(Y.convertUpdateFormatV2ToV1(u)) }))
  // SV cases
  for (const u of [all, ...states, ...updates.slice(0, 5), ...out.merges.map(m => Buffer.from(m.out, 'hex'))]) {
    out.svs.push({ input: hex(u), out: hex(Y.encodeStateVectorFromUpdate(u)) })
  }
  // Diff cases
  const svAll = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(all))
  const inputs = [all, ...states, out.merges.length > 1 ? Buffer.from(out.merges[1].out, 'hex') : all]
  const addDiff = (input, svBytes, base) => {
    const res = Y.diffUpdate(input, svBytes)
    const rec = { input: hex(input), sv: hex(svBytes), out: hex(res) }
    if (base) {
      rec.base = hex(base); rec.content = applied(base, res)
    }
    out.diffs.push(rec)
  }
  for (const s of snapshots) addDiff(all, s.sv, s.base)
  for (let k = 0; k < 4; k++) {
    // random SV: boundaries anywhere, including inside surrogate pairs
    const m = new Map()
    svAll.forEach((clock, client) => { if (rnd() < 0.8) m.set(client, int(clock + 1)) })
    if (rnd() < 0.2) m.set(12345, 3)
    const enc = Y.encodeStateVector(new Map(m))
    addDiff(pick(inputs), enc)
  }
  addDiff(all, Y.encodeStateVector(new Map()))
  return out
}

const sessions = []
for (let i = 0; i < count; i++) sessions.push(session(baseSeed + i))
fs.writeFileSync(outPath, JSON.stringify(sessions))
