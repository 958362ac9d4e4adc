// Builds the y-protocols / y-websocket message vectors with real Yjs and
// y-protocols (Debian node-yjs, node-y-protocols, node-lib0), fixed client IDs,
// so every run gives the same bytes. Prints one JSON object on stdout;
// gen.py writes it to protocol/vectors/yprotocols.json.
//
//   NODE_PATH=/usr/share/nodejs node protocol/generate/yprotocols.js
'use strict'
const Y = require('yjs')
const syncProtocol = require('y-protocols/sync')
const awarenessProtocol = require('y-protocols/awareness')
const authProtocol = require('y-protocols/auth')
const encoding = require('lib0/encoding')
const decoding = require('lib0/decoding')

// y-websocket message types (the first varUint of every frame).
const messageSync = 0
const messageAwareness = 1
const messageAuth = 2
const messageQueryAwareness = 3

const hex = (u8) => Buffer.from(u8).toString('hex')

function svObject (sv) {
  const out = {}
  for (const [client, clock] of [...sv.entries()].sort((a, b) => a[0] - b[0])) out[String(client)] = clock
  return out
}

function makeDoc (clientID) {
  const doc = new Y.Doc({ gc: true })
  doc.clientID = clientID
  return doc
}

function frame (build) {
  const e = encoding.createEncoder()
  build(e)
  return encoding.toUint8Array(e)
}

function updateSummary (update) {
  const d = Y.decodeUpdate(update)
  return {
    structs: d.structs.map((s) => ({ client: s.id.client, clock: s.id.clock, length: s.length, kind: s.constructor.name })),
    delete_set: [...d.ds.clients.entries()].map(([client, items]) => ({ client, ranges: items.map((i) => [i.clock, i.len]) })),
    // Y.encodeStateVectorFromUpdate: contiguous from clock 0 per client, so an update that starts past 0 gives {}.
    state_vector_from_update: svObject(Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update)))
  }
}

// A decoder that checks a message the way a y-websocket peer reads it.
function decodeMessage (bytes) {
  const d = decoding.createDecoder(bytes)
  const type = decoding.readVarUint(d)
  const out = { message_type: type }
  if (type === messageSync) {
    const sub = decoding.readVarUint(d)
    out.sync_type = sub
    const payload = decoding.readVarUint8Array(d)
    if (sub === syncProtocol.messageYjsSyncStep1) out.state_vector = svObject(Y.decodeStateVector(payload))
    else out.update_hex = hex(payload)
  } else if (type === messageAwareness) {
    const u = decoding.readVarUint8Array(d)
    const ud = decoding.createDecoder(u)
    const n = decoding.readVarUint(ud)
    out.states = []
    for (let i = 0; i < n; i++) {
      const clientID = decoding.readVarUint(ud)
      const clock = decoding.readVarUint(ud)
      const state = decoding.readVarString(ud)
      out.states.push({ client_id: clientID, clock, state_json: state })
    }
  } else if (type === messageAuth) {
    out.auth_type = decoding.readVarUint(d)
    out.reason = decoding.readVarString(d)
  }
  if (decoding.hasContent(d)) throw new Error('trailing bytes')
  return out
}

const messages = []
function add (name, description, direction, bytes, extra = {}) {
  const decoded = decodeMessage(bytes)
  messages.push(Object.assign({ name, description, direction, hex: hex(bytes), decoded }, extra))
}

// Editor A (client 1) types "Hello" into Y.Text "content"; editor B (client 2) is empty.
const docA = makeDoc(1)
const docB = makeDoc(2)
const emptyDoc = makeDoc(3)
const updatesA = []
docA.on('update', (u) => updatesA.push(u))
docA.getText('content').insert(0, 'Hello')

add('sync_step1_empty', 'sync step 1 of an empty document (what relayd sends first in a new room; also an empty editor)',
  'both', frame((e) => { encoding.writeVarUint(e, messageSync); syncProtocol.writeSyncStep1(e, emptyDoc) }))

add('sync_step1', 'sync step 1 of editor A after typing "Hello" (state vector {1: 5})',
  'both', frame((e) => { encoding.writeVarUint(e, messageSync); syncProtocol.writeSyncStep1(e, docA) }))

add('sync_step2_empty', 'sync step 2 answering a step 1 when there is nothing missing (an empty update)',
  'both', frame((e) => { encoding.writeVarUint(e, messageSync); syncProtocol.writeSyncStep2(e, emptyDoc, Y.encodeStateVector(docA)) }))

const svB = Y.encodeStateVector(docB)
const step2 = frame((e) => { encoding.writeVarUint(e, messageSync); syncProtocol.writeSyncStep2(e, docA, svB) })
add('sync_step2', 'sync step 2 from A answering B\'s empty state vector: the whole document',
  'both', step2, { update: updateSummary(Y.encodeStateAsUpdate(docA, svB)) })

// Applying step 2 to B must give "Hello".
Y.applyUpdate(docB, Y.encodeStateAsUpdate(docA, svB))
if (docB.getText('content').toString() !== 'Hello') throw new Error('step 2 did not converge')

// A second edit: an update message (type 0, sync type 2).
docA.getText('content').insert(5, '!')
const u2 = updatesA[updatesA.length - 1]
add('update', 'an update (A appends "!" at index 5; client 1, clock 5, length 1)', 'both',
  frame((e) => { encoding.writeVarUint(e, messageSync); syncProtocol.writeUpdate(e, u2) }),
  { update: updateSummary(u2), text_after: docA.getText('content').toString() })

// A deletion: the update carries only a delete set.
docA.getText('content').delete(0, 1)
const u3 = updatesA[updatesA.length - 1]
add('update_delete', 'an update that deletes "H" (delete set only: client 1, clock 0, length 1)', 'both',
  frame((e) => { encoding.writeVarUint(e, messageSync); syncProtocol.writeUpdate(e, u3) }),
  { update: updateSummary(u3), text_after: docA.getText('content').toString() })

// Awareness: client 1 announces a user; clock 1 (the constructor set {} at clock 0).
const awA = new awarenessProtocol.Awareness(docA)
awA.setLocalState({ user: { name: 'Ada', color: '#3366ff' }, cursor: null })
add('awareness', 'awareness update of client 1 (clock 1) with a user and cursor', 'both',
  frame((e) => { encoding.writeVarUint(e, messageAwareness); encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awA, [1])) }))

// Removal: state null at the next clock; relayd sends this for every client of a closing connection (clock unchanged).
awA.setLocalState(null)
add('awareness_removed', 'awareness update removing client 1 (clock 2, state null)', 'both',
  frame((e) => { encoding.writeVarUint(e, messageAwareness); encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awA, [1])) }))

// Two clients in one awareness message (what a late joiner gets).
const awB = new awarenessProtocol.Awareness(docB)
awB.setLocalState({ user: { name: 'Bo' } })
const awC = new awarenessProtocol.Awareness(makeDoc(7))
awC.setLocalState({ user: { name: 'Cy' } })
awarenessProtocol.applyAwarenessUpdate(awB, awarenessProtocol.encodeAwarenessUpdate(awC, [7]), 'test')
add('awareness_two_clients', 'awareness of clients 2 and 7 in one message (as sent to a late joiner)', 'relay_to_client',
  frame((e) => { encoding.writeVarUint(e, messageAwareness); encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awB, [2, 7])) }))

add('query_awareness', 'query-awareness: ask for every awareness state; relayd answers with one awareness message', 'client_to_relay',
  frame((e) => { encoding.writeVarUint(e, messageQueryAwareness) }))

add('auth_permission_denied', 'auth permission-denied, as relayd sends to a read-only client after it drops its update', 'relay_to_client',
  frame((e) => { encoding.writeVarUint(e, messageAuth); authProtocol.writePermissionDenied(e, 'read-only token') }))

awA.destroy(); awB.destroy(); awC.destroy()

// One awareness message with one entry whose state is the given text (not checked by y-protocols).
function awarenessHex (client, clock, stateText) {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, client)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, stateText)
  return hex(frame((e) => { encoding.writeVarUint(e, messageAwareness); encoding.writeVarUint8Array(e, encoding.toUint8Array(inner)) }))
}

const invalid = [
  { name: 'empty', hex: '', why: 'no message type' },
  { name: 'unknown_type', hex: '04', why: 'message type 4 is not defined' },
  { name: 'sync_unknown_subtype', hex: '0003', why: 'sync type 3 is not defined' },
  { name: 'sync_step1_truncated', hex: '000005', why: 'varUint8Array length 5 with no bytes' },
  { name: 'trailing_bytes', hex: '0300', why: 'one message per frame: a byte after query-awareness' },
  // awareness, varUint8Array of 5 bytes: count 1, client 1, clock 5, varString "{" (length 1).
  { name: 'awareness_bad_json', hex: '0105010105017b', why: 'an awareness state that is not JSON' },
  { name: 'awareness_duplicate_key', hex: awarenessHex(1, 5, '{"a":1,"a":2}'), why: 'an awareness state that breaks the JSON rules (duplicate member names)' },
  { name: 'awareness_lone_surrogate', hex: awarenessHex(1, 5, '{"name":"\\uD800"}'), why: 'an awareness state that breaks the JSON rules (lone surrogate escape)' }
]

process.stdout.write(JSON.stringify({
  made_with: `node ${process.version}, yjs ${require('yjs/package.json').version}, y-protocols ${require('y-protocols/package.json').version}, lib0 ${require('lib0/package.json').version}`,
  messages,
  invalid
}))
