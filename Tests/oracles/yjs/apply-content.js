// Applies updates to fresh Y.Docs and prints each document's content.
// Usage: NODE_PATH=/usr/share/nodejs node apply-content.js IN.json OUT.json [state]
// With "state", each result is the content, a newline, and hex(Y.encodeStateAsUpdate(doc));
// with "canonical-state" the same with canonical.js's content (map keys sorted).
// IN: JSON array of arrays of hex updates (applied in order to one new Y.Doc).
// OUT: JSON array of content strings (same shape as gen-sessions.js), null when Yjs throws.
'use strict'
const Y = require('yjs')
const fs = require('fs')
const { canonicalContent } = require('./canonical')
const [,, inPath, outPath, mode] = process.argv
function content (doc) {
  return JSON.stringify({
    t: doc.getText('t').toDelta(),
    m: doc.getMap('m').toJSON(),
    a: doc.getArray('a').toJSON(),
    x: doc.getXmlFragment('x').toString()
  })
}
const cases = JSON.parse(fs.readFileSync(inPath, 'utf8'))
const out = cases.map(parts => {
  try {
    const d = new Y.Doc()
    for (const p of parts) Y.applyUpdate(d, Buffer.from(p, 'hex'))
    const state = () => '\n' + Buffer.from(Y.encodeStateAsUpdate(d)).toString('hex')
    if (mode === 'canonical-state') return canonicalContent(d) + state()
    return mode === 'state' ? content(d) + state() : content(d)
  } catch (e) { return null }
})
fs.writeFileSync(outPath, JSON.stringify(out))
