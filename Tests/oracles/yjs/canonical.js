// A document's content as JSON that does not depend on the order keys were first written in
// (Yjs's toJSON follows the order entries were integrated, which differs between a document
// built update by update and one loaded from a merged state).
'use strict'
const Y = require('yjs')

function sorted (o) {
  if (Array.isArray(o)) return o.map(sorted)
  if (o instanceof Uint8Array) return { binary: Array.from(o) }
  if (o !== null && typeof o === 'object') {
    const out = {}
    for (const k of Object.keys(o).sort()) out[k] = sorted(o[k])
    return out
  }
  return o
}

function canon (v) {
  if (v instanceof Y.XmlText) return { xmlText: sorted(v.toDelta()), attrs: sorted(v.getAttributes()) }
  if (v instanceof Y.XmlElement) return { element: v.nodeName, attrs: sorted(v.getAttributes()), children: v.toArray().map(canon) }
  if (v instanceof Y.XmlFragment) return { fragment: v.toArray().map(canon) }
  if (v instanceof Y.Text) return { text: v.toDelta().map(op => sorted({ ...op, insert: op.insert instanceof Y.AbstractType ? canon(op.insert) : op.insert })) }
  if (v instanceof Y.Map) {
    const out = {}
    for (const k of Array.from(v.keys()).sort()) out[k] = canon(v.get(k))
    return { map: out }
  }
  if (v instanceof Y.Array) return { array: v.toArray().map(canon) }
  return sorted(v)
}

/** Canonical content of the root types the oracles use (t, m, a, x). */
function canonicalContent (doc) {
  return JSON.stringify({
    t: canon(doc.getText('t')), m: canon(doc.getMap('m')), a: canon(doc.getArray('a')), x: canon(doc.getXmlFragment('x'))
  })
}

module.exports = { canonicalContent }
