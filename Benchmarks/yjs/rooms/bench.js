// Yjs rooms benchmark: relayd's /yjs/{room} beside the y-websocket reference server, in one run.
// Spawns the servers itself (fresh ones for the memory test), drives them with raw y-protocols
// messages over `ws` (no WebsocketProvider, no client-side Y.Doc in the hot path) and prints one
// JSON document with every measurement on stdout. Progress goes to stderr.
//
// Usage: NODE_PATH=/usr/share/nodejs node bench.js --relayd PATH --state paper.bin [options]
//   --ref-server PATH     y-websocket server.js (default /usr/share/nodejs/y-websocket/bin/server.js)
//   --fetch-reps N        (a) repetitions per server (default 60)
//   --clients N           (b) typing clients (default 20)
//   --rounds N            (b) rounds per server, interleaved (default 3)
//   --phase-seconds S     (b) measured seconds per phase (default 8)
//   --rate R              (b) open-loop updates/s per client (default 10)
//   --window W            (b) closed-loop outstanding updates per client (default 4)
//   --rooms K             (c) rooms loaded per fresh server (default 16)
//   --servers a,b,c       subset of relayd-memory,relayd-sqlite,reference
//   --pidfile FILE        child pids are written here (run.sh kills leftovers)
//   --skip a,b            leave out fetch, typing, saturated or memory (profiling runs)
//   --timeline            also report the max latency per 250 typed updates (index = room's update count)
'use strict'
const { spawn } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const crypto = require('crypto')
const WebSocket = require('ws')
const Y = require('yjs')
const encoding = require('lib0/dist/encoding.cjs')

// ---------- options ----------
const argv = process.argv.slice(2)
const opt = (name, def) => { const i = argv.indexOf('--' + name); return i >= 0 ? argv[i + 1] : def }
const RELAYD = opt('relayd')
const REF = opt('ref-server', '/usr/share/nodejs/y-websocket/bin/server.js')
const STATE = fs.readFileSync(opt('state'))
const TEXT = fs.existsSync(opt('state') + '.txt') ? fs.readFileSync(opt('state') + '.txt', 'utf8') : null
const FETCH_REPS = +opt('fetch-reps', 60)
const CLIENTS = +opt('clients', 20)
const ROUNDS = +opt('rounds', 3)
const PHASE_S = +opt('phase-seconds', 8)
const RATE = +opt('rate', 10)
const WINDOW = +opt('window', 4)
const ROOMS = +opt('rooms', 16)
const SERVERS = opt('servers', 'relayd-memory,reference,relayd-sqlite').split(',')
const PIDFILE = opt('pidfile')
const TIMELINE = argv.includes('--timeline') // max latency per 250 typed updates (diagnostics)
const SKIP = (opt('skip', '') || '').split(',') // fetch, typing, saturated, memory (for profiling runs)
if (!RELAYD && SERVERS.some(s => s.startsWith('relayd'))) throw new Error('--relayd PATH required')

const log = (...a) => process.stderr.write(a.join(' ') + '\n')
const now = () => performance.now()
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const median = xs => quantile(xs, 0.5)
function quantile (xs, q) {
  if (xs.length === 0) return null
  const s = Float64Array.from(xs).sort()
  const i = (s.length - 1) * q
  const lo = Math.floor(i); const hi = Math.ceil(i)
  return s[lo] + (s[hi] - s[lo]) * (i - lo)
}
const round = (x, d = 2) => x == null ? null : Math.round(x * 10 ** d) / 10 ** d

// ---------- processes ----------
const children = new Set()
function writePids () { if (PIDFILE) fs.writeFileSync(PIDFILE, [...children].map(c => c.pid).join('\n') + '\n') }
function killAll () { for (const c of children) { try { c.kill('SIGKILL') } catch {} } children.clear(); writePids() }
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130) })

let nextPort = 20000 + Math.floor(Math.random() * 20000)
function freePort () { return nextPort++ }

async function waitHTTP (port, ms = 20000) {
  const t0 = now()
  while (now() - t0 < ms) {
    const ok = await new Promise(resolve => {
      const req = require('http').get({ host: '127.0.0.1', port, path: '/' }, res => { res.resume(); resolve(true) })
      req.on('error', () => resolve(false))
      req.setTimeout(1000, () => { req.destroy(); resolve(false) })
    })
    if (ok) return
    await sleep(100)
  }
  throw new Error('server on port ' + port + ' did not start')
}

/** Starts one server; returns {kind, port, pid, base, token(user), stop()}. */
async function startServer (kind) {
  const port = freePort()
  let child; let out = ''
  if (kind === 'reference') {
    child = spawn(process.execPath, [REF], { env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
  } else {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'yjsbench-relayd-'))
    child = spawn(RELAYD, ['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir,
      '--yjs-persistence', kind === 'relayd-sqlite' ? 'sqlite' : 'memory', '--log-level', 'warning',
      '--site-max-connections', '2000', '--yjs-max-connections-per-room', '200', '--yjs-max-collaborators-per-room', '200',
      // the saturated phase measures the server, not the per-connection message rate (50/s by default)
      '--site-client-publish-rate', '1000000', '--site-client-publish-burst', '1000000'],
    { stdio: ['ignore', 'pipe', 'pipe'] })
    child.dataDir = dataDir
  }
  children.add(child); writePids()
  child.stdout.on('data', d => { out += d })
  child.stderr.on('data', d => { out += d; if (out.length > 1e6) out = out.slice(-1e5) })
  const exited = new Promise(resolve => child.on('exit', (code, sig) => resolve({ code, sig })))
  await Promise.race([waitHTTP(port), exited.then(e => { throw new Error(kind + ' exited ' + JSON.stringify(e) + ': ' + out) })])
  const s = { kind, port, pid: child.pid, base: `ws://127.0.0.1:${port}/yjs/`, child, output: () => out }
  if (kind === 'reference') {
    s.query = () => ''
  } else {
    await sleep(50)
    const site = /site_id:\s*(\S+)/.exec(out); const secret = /jwt_secret:\s*(\S+)/.exec(out)
    if (!site || !secret) throw new Error('relayd did not print its dev site: ' + out)
    s.siteID = site[1]; s.secret = secret[1]
    const cache = new Map()
    s.query = (user = 'u1') => {
      if (!cache.has(user)) cache.set(user, '?auth=' + jwt(s.secret, s.siteID, user))
      return cache.get(user)
    }
  }
  s.stop = async () => {
    child.kill('SIGTERM')
    await Promise.race([exited, sleep(3000).then(() => child.kill('SIGKILL'))])
    children.delete(child); writePids()
    if (child.dataDir) fs.rmSync(child.dataDir, { recursive: true, force: true })
  }
  return s
}

function jwt (secret, siteID, user) {
  const b64 = o => Buffer.from(JSON.stringify(o)).toString('base64url')
  const iat = Math.floor(Date.now() / 1000)
  const prefix = `site:${siteID}:yjs:`
  const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({
    site_id: siteID, user_id: user, v: 2, iat, exp: iat + 3600,
    allowed_channel_prefixes: [prefix], allowed_publish_prefixes: [prefix]
  })
  return body + '.' + crypto.createHmac('sha256', Buffer.from(secret, 'utf8')).update(body).digest('base64url')
}

// ---------- /proc ----------
function procStatus (pid) {
  const t = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = k => +(new RegExp('^' + k + ':\\s+(\\d+)', 'm').exec(t) || [0, 0])[1]
  return { rssKB: kb('VmRSS'), hwmKB: kb('VmHWM'), threads: kb('Threads') }
}
const CLK_TCK = 100
function cpuMs (pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (+f[11] + +f[12]) * 1000 / CLK_TCK // utime + stime (fields 14, 15)
}

// ---------- y-protocols framing ----------
// message: varuint type (0 sync, 1 awareness); sync: varuint subtype (0 step1, 1 step2, 2 update) + varUint8Array
function readVarUint (b, p) {
  let n = 0; let mult = 1; let byte
  do { byte = b[p.i++]; n += (byte & 0x7f) * mult; mult *= 128 } while (byte >= 0x80)
  return n
}
function frame (type, sub, payload) {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, type)
  if (sub != null) encoding.writeVarUint(e, sub)
  encoding.writeVarUint8Array(e, payload)
  return Buffer.from(encoding.toUint8Array(e))
}
const STEP1_EMPTY = frame(0, 0, Uint8Array.of(0)) // state vector with no clients
/** Parses a frame: {type, sub, start, end} (payload = b.subarray(start, end)). */
function parse (b) {
  const p = { i: 0 }
  const type = readVarUint(b, p)
  if (type !== 0) return { type }
  const sub = readVarUint(b, p)
  const len = readVarUint(b, p)
  return { type, sub, start: p.i, end: p.i + len }
}
/** First struct group of a v1 update: [client, clock] or null (delete-only update). */
function firstID (b, start) {
  const p = { i: start }
  if (readVarUint(b, p) === 0) return null
  readVarUint(b, p) // number of structs
  const client = readVarUint(b, p)
  return [client, readVarUint(b, p)]
}

function open (url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.on('open', () => resolve(ws))
    ws.on('error', reject)
    ws.on('unexpected-response', (_, res) => reject(new Error('HTTP ' + res.statusCode)))
  })
}
function closeWS (ws) {
  return new Promise(resolve => {
    if (ws.readyState === WebSocket.CLOSED) return resolve()
    ws.once('close', resolve)
    ws.close()
    setTimeout(() => { ws.terminate(); resolve() }, 2000)
  })
}
function withTimeout (p, ms, what) {
  let t
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error('timeout: ' + what)), ms) })]).finally(() => clearTimeout(t))
}

/** Loads `state` into `room` (one sync update, as an editor's first save would), waits for the echo. */
async function loadRoom (s, room, state = STATE, keepOpen = false) {
  const ws = await open(s.base + room + s.query('loader'))
  const echoed = new Promise((resolve, reject) => {
    ws.on('message', d => { const m = parse(d); if (m.type === 0 && m.sub === 2 && m.end - m.start === state.length) resolve() })
    ws.on('close', (code, reason) => reject(new Error(`load ${room}: closed ${code} ${reason}`)))
  })
  ws.send(frame(0, 2, state))
  await withTimeout(echoed, 60000, 'load ' + room + ' on ' + s.kind)
  if (!keepOpen) { ws.removeAllListeners('close'); await closeWS(ws) }
  return ws
}

// ---------- (a) a new client receives the whole document ----------
/** Opens a connection, sends sync step 1 with an empty state vector (as a fresh y-websocket client
 *  does on open) and waits for the sync step 2 answer. Times from `new WebSocket` and from `open`. */
async function fetchDoc (s, room, verify = false) {
  const t0 = now()
  const ws = new WebSocket(s.base + room + s.query('reader'), { perMessageDeflate: false })
  let tOpen
  const got = new Promise((resolve, reject) => {
    ws.on('open', () => { tOpen = now(); ws.send(STEP1_EMPTY) })
    ws.on('message', d => {
      const m = parse(d)
      if (m.type === 0 && m.sub === 1) resolve({ t: now(), d, m })
    })
    ws.on('error', reject)
    ws.on('close', (code, reason) => reject(new Error(`closed ${code} ${reason}`)))
  })
  const { t, d, m } = await withTimeout(got, 30000, 'fetch ' + room + ' on ' + s.kind)
  ws.removeAllListeners('close')
  const r = { totalMs: t - t0, afterOpenMs: t - tOpen, bytes: m.end - m.start }
  if (verify) {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, d.subarray(m.start, m.end))
    r.verified = TEXT == null ? null : doc.getText('t').toString() === TEXT
  }
  await closeWS(ws)
  return r
}

async function benchFetch (servers) {
  log('(a) loading the document and fetching it', FETCH_REPS, 'times per server, interleaved')
  const room = 'bench/paper-a'
  for (const s of servers) await loadRoom(s, room)
  const res = Object.fromEntries(servers.map(s => [s.kind, { total: [], afterOpen: [], bytes: null, verified: null, serverCpuMs: 0 }]))
  for (const s of servers) { const r = await fetchDoc(s, room, true); res[s.kind].bytes = r.bytes; res[s.kind].verified = r.verified } // warm-up + check
  for (let i = 0; i < FETCH_REPS; i++) {
    const order = i % 2 === 0 ? servers : [...servers].reverse()
    for (const s of order) {
      const c0 = cpuMs(s.pid)
      const r = await fetchDoc(s, room)
      res[s.kind].serverCpuMs += cpuMs(s.pid) - c0
      res[s.kind].total.push(r.totalMs); res[s.kind].afterOpen.push(r.afterOpenMs)
    }
  }
  // concurrent joiners: 10 clients open at once, time until the last has the document
  const burst = Object.fromEntries(servers.map(s => [s.kind, []]))
  for (let i = 0; i < Math.max(3, Math.floor(FETCH_REPS / 10)); i++) {
    for (const s of (i % 2 === 0 ? servers : [...servers].reverse())) {
      const t0 = now()
      await Promise.all(Array.from({ length: 10 }, () => fetchDoc(s, room)))
      burst[s.kind].push(now() - t0)
    }
  }
  const out = {}
  for (const s of servers) {
    const r = res[s.kind]
    out[s.kind] = {
      reps: r.total.length, bytes: r.bytes, verified: r.verified,
      medianMs: round(median(r.total)), p10Ms: round(quantile(r.total, 0.1)), p90Ms: round(quantile(r.total, 0.9)),
      medianAfterOpenMs: round(median(r.afterOpen)),
      serverCpuMsPerFetch: round(r.serverCpuMs / r.total.length),
      burst10MedianMs: round(median(burst[s.kind]))
    }
    log('  ', s.kind, JSON.stringify(out[s.kind]))
  }
  return out
}

// ---------- (b) 20 clients typing in one room ----------
// Every client types one character per update into the shared Y.Text 't' (a chain of its own
// characters, starting at the front of the document), as Yjs encodes a one-character insert.
// The updates are encoded by hand (checked against Yjs below) so the load generator stays cheap.
function typedUpdate (client, clock) {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1) // one client block
  encoding.writeVarUint(e, 1) // one struct
  encoding.writeVarUint(e, client)
  encoding.writeVarUint(e, clock)
  const ch = String.fromCharCode(97 + (clock % 26))
  if (clock === 0) {
    encoding.writeUint8(e, 4) // ContentString, no origins: parent follows
    encoding.writeVarUint(e, 1) // parent is a root type, by name
    encoding.writeVarString(e, 't')
  } else {
    encoding.writeUint8(e, 0x80 | 4) // ContentString with origin
    encoding.writeVarUint(e, client)
    encoding.writeVarUint(e, clock - 1)
  }
  encoding.writeVarString(e, ch)
  encoding.writeVarUint(e, 0) // empty delete set
  return frame(0, 2, encoding.toUint8Array(e))
}
function checkTypedUpdates () {
  const doc = new Y.Doc(); doc.clientID = 77
  const ups = []; doc.on('update', u => ups.push(Buffer.from(frame(0, 2, u))))
  const t = doc.getText('t')
  for (let k = 0; k < 30; k++) t.insert(k, String.fromCharCode(97 + (k % 26)))
  for (let k = 0; k < 30; k++) if (!ups[k].equals(typedUpdate(77, k))) throw new Error('hand-encoded update differs from Yjs at ' + k)
}

async function typingRound (s, room) {
  // the room holds the paper; CLIENTS editors join (sync step 1 → full document), then type
  await loadRoom(s, room)
  const clients = []
  const sent = new Map() // key client*1e7+clock → send time
  const sentIndex = new Map() // same key → how many updates the room had received before it
  let sentTotal = 0
  let st = null // per-phase stats
  const onMessage = (c, d) => {
    const m = parse(d)
    if (m.type !== 0) return
    if (m.sub === 1) { c.onReady(); return }
    if (m.sub !== 2) return
    const id = firstID(d, m.start)
    if (id === null) return
    const t = now()
    if (id[0] === c.id) { // own echo: the closed loop's acknowledgement
      c.inflight--
      if (st && st.closed && st.running) sendNext(c)
      return
    }
    if (st === null) return
    const t0 = sent.get(id[0] * 1e7 + id[1])
    if (t0 === undefined || !st.measuring) return
    st.delivered++
    st.lat.push(t - t0)
    c.lat.push(t - t0)
    if (TIMELINE && t - t0 > 100) { const k = id[0] * 1e7 + id[1]; st.slowBy.set(k, (st.slowBy.get(k) || 0) + 1) }
    if (TIMELINE) { const b = Math.floor(sentIndex.get(id[0] * 1e7 + id[1]) / 250); st.timeline[b] = Math.max(st.timeline[b] || 0, Math.round(t - t0)) }
    if (t - t0 > 100) { st.slow++; const n = sentIndex.get(id[0] * 1e7 + id[1]); if (!st.slowAt.includes(n)) st.slowAt.push(n) }
  }
  for (let i = 0; i < CLIENTS; i++) {
    const id = 1000 + i
    const ws = await open(s.base + room + s.query('u' + (i + 1)))
    const c = { id, ws, clock: 0, inflight: 0, closed: null, lat: [] }
    c.ready = new Promise(resolve => { c.onReady = resolve })
    clients.push(c)
    ws.on('close', (code, reason) => { c.closed = code + ' ' + reason })
    ws.on('message', d => onMessage(c, d))
    ws.send(STEP1_EMPTY)
  }
  await withTimeout(Promise.all(clients.map(c => c.ready)), 60000, 'clients join on ' + s.kind)
  const sendNext = c => {
    if (c.closed) return
    const f = typedUpdate(c.id, c.clock)
    sent.set(c.id * 1e7 + c.clock, now())
    sentIndex.set(c.id * 1e7 + c.clock, sentTotal++)
    c.clock++; c.inflight++
    c.ws.send(f)
    if (st.measuring) st.sent++
  }
  async function phase (closedLoop) {
    for (const c of clients) c.lat = []
    st = { closed: closedLoop, running: true, measuring: false, sent: 0, delivered: 0, lat: [], slow: 0, slowAt: [], timeline: [], slowBy: new Map() }
    const warm = 1500
    const t0 = now()
    let m0 = null
    const begin = () => { st.measuring = true; m0 = { t: now(), cpu: cpuMs(s.pid), me: process.cpuUsage() } }
    if (closedLoop) {
      for (const c of clients) for (let k = 0; k < WINDOW; k++) sendNext(c)
      await sleep(warm); begin(); await sleep(PHASE_S * 1000)
    } else {
      const due = clients.map((_, i) => i / clients.length) // spread the clients' phases
      const count = clients.map(() => 0)
      await new Promise(resolve => {
        const tick = () => {
          const t = now()
          if (m0 === null && t - t0 >= warm) begin()
          if (m0 !== null && t - m0.t >= PHASE_S * 1000) return resolve()
          const elapsed = (t - t0) / 1000
          clients.forEach((c, i) => { while (count[i] < Math.floor(elapsed * RATE + due[i])) { count[i]++; sendNext(c) } })
          setTimeout(tick, 1)
        }
        tick()
      })
    }
    const secs = (now() - m0.t) / 1000
    const cpu = cpuMs(s.pid) - m0.cpu
    const me = process.cpuUsage(m0.me)
    st.measuring = false; st.running = false
    const r = {
      mode: closedLoop ? `closed loop, ${WINDOW} in flight per client` : `${RATE} updates/s per client`,
      seconds: round(secs), updatesSentPerSec: round(st.sent / secs, 0), deliveredPerSec: round(st.delivered / secs, 0),
      p50Ms: round(quantile(st.lat, 0.5), 3), p99Ms: round(quantile(st.lat, 0.99), 3), maxMs: round(st.lat.reduce((a, b) => a > b ? a : b, 0), 1),
      serverCpuPct: round(cpu / secs / 10, 0), serverCpuUsPerDelivery: round(cpu * 1000 / Math.max(1, st.delivered), 2),
      loadgenCpuPct: round((me.user + me.system) / 1000 / secs / 10, 0),
      deliveriesOver100ms: st.slow,
      // fairness: the lowest and highest per-receiver p50 / p99 (ms)
      receiverP50Range: [round(Math.min(...clients.map(c => quantile(c.lat, 0.5))), 2), round(Math.max(...clients.map(c => quantile(c.lat, 0.5))), 2)],
      receiverP99Range: [round(Math.min(...clients.map(c => quantile(c.lat, 0.99))), 2), round(Math.max(...clients.map(c => quantile(c.lat, 0.99))), 2)],
      // which updates (the room's n-th typed update) arrived > 100 ms late somewhere (first 20)
      slowUpdates: st.slowAt.slice(0, 20),
      ...(TIMELINE ? {
        timelineMaxMsPer250: Array.from(st.timeline, x => x || 0),
        // for updates late (> 100 ms) somewhere: how many of the other clients got them late → count of updates
        slowFanout: [...st.slowBy.values()].reduce((h, n) => { h[n] = (h[n] || 0) + 1; return h }, {})
      } : {})
    }
    // drain: wait for in-flight updates before the next phase
    const td = now()
    while (clients.some(c => c.inflight > 0 && !c.closed) && now() - td < 10000) await sleep(20)
    const dead = clients.filter(c => c.closed)
    if (dead.length) r.closedClients = dead.map(c => c.closed)
    return r
  }
  const fixed = await phase(false)
  const sat = SKIP.includes('saturated') ? null : await phase(true)
  const rss = procStatus(s.pid)
  await Promise.all(clients.map(c => closeWS(c.ws)))
  return { fixed, saturated: sat, rssKBAfter: rss.rssKB }
}

async function benchTyping (servers) {
  checkTypedUpdates()
  log(`(b) ${CLIENTS} clients typing in one room holding the paper: ${RATE}/s each, then closed loop (${WINDOW} in flight); ${ROUNDS} rounds`)
  const out = Object.fromEntries(servers.map(s => [s.kind, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of (r % 2 === 0 ? servers : [...servers].reverse())) {
      const res = await typingRound(s, `bench/typing-${r}`)
      out[s.kind].push(res)
      log('  ', s.kind, 'round', r, JSON.stringify(res))
    }
  }
  return out
}

// ---------- (c) memory per loaded room ----------
async function benchMemory (kind) {
  const s = await startServer(kind)
  try {
    // warm-up: a small room is created, written, read and closed, so lazily built code and
    // buffers are in the baseline
    const small = new Y.Doc(); small.getText('t').insert(0, 'warm-up')
    await loadRoom(s, 'bench/warm', Buffer.from(Y.encodeStateAsUpdate(small)))
    await fetchDoc(s, 'bench/warm')
    await sleep(2000)
    const base = procStatus(s.pid)
    const steps = []
    let loaded = 0
    for (const k of [ROOMS / 2, ROOMS]) {
      for (; loaded < k; loaded++) await loadRoom(s, `bench/mem-${loaded}`)
      for (let i = 0; i < k; i++) await fetchDoc(s, `bench/mem-${i}`) // each room served once
      await sleep(3000)
      const st = procStatus(s.pid)
      steps.push({ rooms: k, rssKB: st.rssKB, perRoomMB: round((st.rssKB - base.rssKB) / k / 1024, 2) })
    }
    const last = steps[steps.length - 1]
    const r = {
      baselineRssMB: round(base.rssKB / 1024, 1), rooms: ROOMS, rssMB: round(last.rssKB / 1024, 1),
      perRoomMB: last.perRoomMB,
      marginalPerRoomMB: round((last.rssKB - steps[0].rssKB) / (last.rooms - steps[0].rooms) / 1024, 2),
      peakMB: round(procStatus(s.pid).hwmKB / 1024, 1), steps
    }
    log('  ', kind, JSON.stringify(r))
    return r
  } finally { await s.stop() }
}

// ---------- main ----------
async function main () {
  const started = new Date().toISOString()
  const servers = []
  for (const k of SERVERS) servers.push(await startServer(k))
  log('servers:', servers.map(s => `${s.kind} pid ${s.pid} port ${s.port}`).join(', '))
  const result = {
    started, stateBytes: STATE.length, clients: CLIENTS, rate: RATE, window: WINDOW, phaseSeconds: PHASE_S, rounds: ROUNDS,
    fetchReps: FETCH_REPS, rooms: ROOMS, node: process.version
  }
  try {
    if (!SKIP.includes('fetch')) result.fetch = await benchFetch(servers)
    if (!SKIP.includes('typing')) result.typing = await benchTyping(servers)
  } finally {
    for (const s of servers) await s.stop()
  }
  if (!SKIP.includes('memory')) log(`(c) memory: fresh servers, ${ROOMS} rooms each holding the paper`)
  result.memory = {}
  for (const k of SERVERS) if (!SKIP.includes('memory')) result.memory[k] = await benchMemory(k)
  result.finished = new Date().toISOString()
  process.stdout.write(JSON.stringify(result, null, 1) + '\n')
}
main().then(() => { killAll(); process.exit(0) }, e => { log('FAILED:', e.stack || e); killAll(); process.exit(1) })
