// Generates seeded random multi-client Yjs sessions heavy in deletions (text, formats, embeds,
// arrays, maps overwritten concurrently, nested and XML types deleted with their contents) and
// records what a garbage-collecting Y.Doc makes of them.
// Usage: NODE_PATH=/usr/share/nodejs node gen-gc.js OUT.json COUNT SEED
// Output: JSON array of { seed, updates: [hex] (in the order the docs emitted them),
// state: hex(encodeStateAsUpdate of a new Y.Doc({ gc: true }) that applied them in that order),
// content } where content is canonical.js's.
'use strict'
const Y = require('yjs')
const fs = require('fs')
const { canonicalContent } = require('./canonical')

const [,, outPath, countArg, seedArg] = process.argv
const count = parseInt(countArg || '100', 10)
const baseSeed = parseInt(seedArg || '1', 10)

const { mulberry32, hex } = require('./seeded')
const PIECES = ['a', 'b', 'c', ' ', 'xyz', 'é', '中文', '😀', '👍🏽', '𝄞', 'Hello', '\n', 'lorem ipsum ']
const ANYS = [1, -7, 2147483648, 1.5, 'x', '', true, null, { a: 1, b: 'two' }, [1, 2, 'three']]

function session (seed) {
  const rnd = mulberry32(seed)
  const int = n => Math.floor(rnd() * n)
  const pick = arr => arr[int(arr.length)]
  const ndocs = 1 + int(3)
  const docs = []
  const updates = []
  for (let i = 0; i < ndocs; i++) {
    const doc = new Y.Doc({ gc: rnd() < 0.5 })
    doc.clientID = rnd() < 0.2 ? i + 1 : (int(0xFFFFFFFF) >>> 0)
    doc.on('update', (u, origin) => { if (origin !== 'sync') updates.push(u) })
    docs.push(doc)
  }
  const randText = () => { let s = ''; const n = 1 + int(3); for (let i = 0; i < n; i++) s += pick(PIECES); return s }
  const newType = () => {
    const q = rnd()
    if (q < 0.35) { const m = new Y.Map(); m.set('k', int(10)); if (rnd() < 0.5) { const t = new Y.Text(); t.insert(0, randText()); m.set('t', t) } return m }
    if (q < 0.7) { const t = new Y.Text(); t.insert(0, randText()); return t }
    const a = new Y.Array(); a.insert(0, [1, 'two', { three: 3 }]); return a
  }
  const nestedTargets = d => {
    const out = []
    const walk = (v, depth) => {
      if (depth > 3) return
      if (v instanceof Y.Map) { out.push(v); v.forEach(c => walk(c, depth + 1)) } else if (v instanceof Y.Array) { out.push(v); v.forEach(c => walk(c, depth + 1)) } else if (v instanceof Y.Text) out.push(v)
    }
    d.getMap('m').forEach(v => walk(v, 0))
    d.getArray('a').forEach(v => walk(v, 0))
    return out
  }
  const editText = t => {
    const len = t.length
    const r = rnd()
    if (r < 0.4 || len === 0) {
      const attrs = rnd() < 0.2 ? pick([{ bold: true }, { italic: true, color: '#f00' }]) : undefined
      t.insert(int(len + 1), randText(), attrs)
    } else if (r < 0.75) {
      const p = int(len); t.delete(p, 1 + int(Math.min(8, len - p)))
    } else if (r < 0.9) {
      const p = int(len); t.format(p, 1 + int(Math.min(6, len - p)), pick([{ bold: true }, { bold: null }, { italic: true }]))
    } else {
      t.insertEmbed(int(len + 1), { image: 'img' + int(9) })
    }
  }
  const editArray = a => {
    const len = a.length
    if (rnd() < 0.5 || len === 0) {
      const items = []
      const n = 1 + int(3)
      for (let i = 0; i < n; i++) {
        const q = rnd()
        if (q < 0.1) items.push(new Uint8Array([int(256), int(256)]))
        else if (q < 0.35) items.push(newType())
        else items.push(pick(ANYS))
      }
      a.insert(int(len + 1), items)
    } else {
      const p = int(len); a.delete(p, 1 + int(Math.min(3, len - p)))
    }
  }
  const editMap = m => {
    const r = rnd()
    const key = pick(['k1', 'k2', 'é', '😀'])
    if (r < 0.45) m.set(key, pick(ANYS))
    else if (r < 0.8) m.set(key, newType())
    else if (r < 0.85) m.set(key, new Uint8Array([1, 2, 3]))
    else m.delete(key)
  }
  const editXml = d => {
    const x = d.getXmlFragment('x')
    const r = rnd()
    if (r < 0.45 || x.length === 0) {
      const el = new Y.XmlElement(pick(['p', 'h1', 'li']))
      const tx = new Y.XmlText()
      el.insert(0, [tx])
      x.insert(int(x.length + 1), [el])
      tx.insert(0, randText(), rnd() < 0.3 ? { bold: true } : undefined)
      if (rnd() < 0.5) el.setAttribute('class', 'c' + int(5))
    } else if (r < 0.75) {
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
  const nops = 30 + int(120)
  for (let op = 0; op < nops; op++) {
    const d = pick(docs)
    const r = rnd()
    if (r < 0.15 && ndocs > 1) {
      const a = pick(docs); const b = pick(docs)
      if (a !== b) Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)), 'sync')
    } else {
      d.transact(() => {
        const n = rnd() < 0.2 ? 2 + int(3) : 1
        for (let i = 0; i < n; i++) {
          const q = rnd()
          if (q < 0.35) editText(d.getText('t'))
          else if (q < 0.5) editArray(d.getArray('a'))
          else if (q < 0.68) editMap(d.getMap('m'))
          else if (q < 0.8) editXml(d)
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
  const ref = new Y.Doc({ gc: true })
  for (const u of updates) Y.applyUpdate(ref, u)
  return { seed, updates: updates.map(hex), state: hex(Y.encodeStateAsUpdate(ref)), content: canonicalContent(ref) }
}

const out = []
for (let i = 0; i < count; i++) out.push(session(baseSeed + i))
fs.writeFileSync(outPath, JSON.stringify(out))
