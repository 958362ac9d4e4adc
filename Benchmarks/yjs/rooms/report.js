// Turns bench.js's JSON into the `yjs` section of Docs/benchmarks.md (between <!-- yjs:start -->
// and <!-- yjs:end -->, appended at the end when absent) and prints it.
// Usage: node report.js RESULT.json [BENCHMARKS.md] --command "..." --machine "..."
'use strict'
const fs = require('fs')
const argv = process.argv.slice(2)
const opt = (n, d) => { const i = argv.indexOf('--' + n); return i >= 0 ? argv[i + 1] : d }
const positional = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')))
const r = JSON.parse(fs.readFileSync(positional[0], 'utf8'))
const docPath = positional[1]
const command = opt('command', 'Benchmarks/yjs/rooms/run.sh')
const machine = opt('machine', '')

const R = 'relayd-memory'; const F = 'reference'; const S = 'relayd-sqlite'
const has = k => r.fetch && r.fetch[k]
const med = xs => { const s = xs.filter(x => x != null).sort((a, b) => a - b); if (!s.length) return null; const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const typing = (k, phase, field) => r.typing && r.typing[k] ? med(r.typing[k].map(x => x[phase][field])) : null
const fmt = (x, d = 1) => x == null ? 'n/a' : x >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toFixed(d)
const ratio = (num, den) => (num == null || den == null || den === 0) ? 'n/a' : (num / den).toFixed(2) + '×'

// rows: [label, value(kind), better: 'lower' | 'higher', digits]
const rows = [
  ['(a) new client receives the whole document, median ms', k => r.fetch[k].medianMs, 'lower', 1, true],
  ['(a) same, p90 ms', k => r.fetch[k].p90Ms, 'lower', 1],
  ['(a) 10 clients join at once, ms until the last has it (median)', k => r.fetch[k].burst10MedianMs, 'lower', 1],
  ['(a) server CPU per full-document fetch, ms', k => r.fetch[k].serverCpuMsPerFetch, 'lower', 1],
  [`(b) ${r.rate} updates/s per client: delivered updates/s`, k => typing(k, 'fixed', 'deliveredPerSec'), 'higher', 0],
  [`(b) ${r.rate} updates/s per client: p50 latency ms`, k => typing(k, 'fixed', 'p50Ms'), 'lower', 2, true],
  [`(b) ${r.rate} updates/s per client: p99 latency ms`, k => typing(k, 'fixed', 'p99Ms'), 'lower', 2, true],
  [`(b) ${r.rate} updates/s per client: server CPU µs per delivered update`, k => typing(k, 'fixed', 'serverCpuUsPerDelivery'), 'lower', 1],
  [`(b) saturated (closed loop, ${r.window} in flight per client): delivered updates/s`, k => typing(k, 'saturated', 'deliveredPerSec'), 'higher', 0, true],
  ['(b) saturated: p50 latency ms', k => typing(k, 'saturated', 'p50Ms'), 'lower', 2],
  ['(b) saturated: p99 latency ms', k => typing(k, 'saturated', 'p99Ms'), 'lower', 2],
  ['(b) saturated: server CPU, % of one core', k => typing(k, 'saturated', 'serverCpuPct'), 'none', 0],
  ['(b) saturated: server CPU µs per delivered update', k => typing(k, 'saturated', 'serverCpuUsPerDelivery'), 'lower', 1],
  ['(b) saturated: load generator CPU, % of one core', k => typing(k, 'saturated', 'loadgenCpuPct'), 'none', 0],
  [`(c) RSS per loaded room, MB (${r.rooms} rooms − baseline) / ${r.rooms}`, k => r.memory[k] && r.memory[k].perRoomMB, 'mem', 2, true],
  [`(c) RSS per room, MB, marginal from ${r.rooms / 2} to ${r.rooms} rooms`, k => r.memory[k] && r.memory[k].marginalPerRoomMB, 'mem', 2],
  ['(c) baseline RSS after warm-up, MB', k => r.memory[k] && r.memory[k].baselineRssMB, 'none', 1]
]
const ratioCell = (better, a, b) => better === 'lower' ? ratio(b, a) : better === 'higher' ? ratio(a, b) : better === 'mem' ? ratio(a, b) : ''

const withSqlite = !!has(S)
let t = '| measurement | relayd (memory) | y-websocket reference | relayd vs reference | goal |' + (withSqlite ? ' relayd (sqlite) | sqlite vs reference |' : '') + '\n'
t += '|---|---:|---:|---:|---|' + (withSqlite ? '---:|---:|' : '') + '\n'
for (const [label, get0, better, d, isGoal] of rows) {
  const get = k => { try { const v = get0(k); return v == null ? null : v } catch { return null } }
  const a = get(R); const b = get(F); const c = withSqlite ? get(S) : null
  const goal = !isGoal ? '' : better === 'mem' ? '≤ 0.50×' : '≥ 2×'
  const met = goal === '' ? '' : (a == null || b == null) ? goal : (() => {
    const v = better === 'lower' ? b / a : better === 'higher' ? a / b : a / b
    if (!isFinite(v)) return goal
    return goal + (better === 'mem' ? (v <= 0.5 ? ' met' : ' not met') : (v >= 2 ? ' met' : ' not met'))
  })()
  t += `| ${label} | ${fmt(a, d)} | ${fmt(b, d)} | ${ratioCell(better, a, b)} | ${met} |` + (withSqlite ? ` ${fmt(c, d)} | ${ratioCell(better, c, b)} |` : '') + '\n'
}

const bytes = k => has(k) ? r.fetch[k].bytes : null
const verified = [R, F, S].filter(has).map(k => `${k} ${r.fetch[k].verified ? 'text matches endContent' : 'TEXT MISMATCH'} (${bytes(k).toLocaleString('en-US')} B step 2)`).join('; ')
const closed = [R, F, S].flatMap(k => (r.typing[k] || []).flatMap(x => [x.fixed, x.saturated]).filter(p => p.closedClients).map(p => `${k}: ${p.closedClients.join(', ')}`))

const section = `<!-- yjs:start -->
## Yjs rooms: relayd vs the y-websocket reference server (issue 6, item 7)

Machine: ${machine}. Run: ${r.started.slice(0, 16).replace('T', ' ')} UTC to ${r.finished.slice(11, 16)} UTC; node ${r.node}.

${t}
"relayd vs reference" is the factor by which relayd is better for times, throughput and CPU
(reference ÷ relayd for times, relayd ÷ reference for rates), and relayd ÷ reference for memory.
At ${r.rate} updates/s per client both servers deliver the whole offered load, so that row is 1×
by construction; the (b) goal applies to the saturated rate and to latency.
Both servers are driven by the same client code in the same run, interleaved; medians over
${r.fetchReps} fetches for (a) and over ${r.rounds} rounds of ${r.phaseSeconds} s per phase for (b).

- **Document**: the automerge-paper trace (259,778 edits, CC BY 4.0, Kleppmann & Beresford via
  josephg/editing-traces) replayed into a Y.Doc with node Yjs, one transaction per edit;
  \`Y.encodeStateAsUpdate\` = ${r.stateBytes.toLocaleString('en-US')} bytes, loaded into a room by one client as one
  sync update. Checked: ${verified}.
- **(a)** a fresh connection (\`new WebSocket\` → open → sync step 1 with an empty state vector)
  until the sync step 2 message has arrived (TCP connect, upgrade and, on relayd, JWT verification
  included; decoding it into a Y.Doc is client work and not timed). "10 clients join at once":
  10 such connections started together, time until the last has its step 2.
- **(b)** ${r.clients} clients, each its own user, joined a room holding the paper (sync step 1 →
  full document), then typed: each update is one character (Yjs's encoding of a one-character
  insert, ~20 bytes, made by the load generator without a Y.Doc). First ${r.rate} updates/s per client
  (open loop, ~human typing), then closed loop with ${r.window} updates in flight per client (next update
  sent when the server's echo of one's own update returns: both servers echo to the sender).
  Delivered = arrivals at the *other* ${r.clients - 1} clients per second; latency = send → arrival
  at each other client (same process, same clock). 1.5 s warm-up per phase not counted.
  Server CPU from /proc/<pid>/stat (10 ms ticks).
- **(c)** fresh servers; a small room is written and read as warm-up, then baseline VmRSS from
  /proc/<pid>/status; ${r.rooms} rooms are loaded with the paper (loader connection closed after
  the echo) and each is fetched once by a new client, 3 s settle, VmRSS again. Reference without
  persistence keeps every Y.Doc in memory (its rooms are only dropped when persistence is on);
  relayd keeps a room in memory until it has been idle 300 s. No forced GC in node.
- **Servers**: relayd release build, \`--yjs-persistence memory\` (parity with the reference,
  which here runs **without persistence**: its \`YPERSISTENCE\` option requires y-leveldb, which
  Debian does not package (\`apt-cache policy node-y-leveldb\`: no candidate), so no LevelDB run) and \`--yjs-persistence sqlite\`
  (relayd's default, durable before broadcast) as a second data point. Reference: Debian's
  \`node /usr/share/nodejs/y-websocket/bin/server.js\` (y-websocket 1.4.5), env HOST/PORT, GC on.
  All on 127.0.0.1; per-message deflate off on the clients.
${closed.length ? '- **Connections closed by a server during (b)**: ' + closed.join('; ') + '\n' : ''}
### What limited relayd, and what changed (2026-11-29, 2026-12-04)

Profiles from \`Benchmarks/yjs/rooms/profile.sh\` (\`perf record -g\` of the server during (b)'s
closed-loop phase); not re-measured by every run.

- **Before (06:30-06:45 UTC runs):** about 63% of relayd's CPU samples were under NIO's
  \`NIOAsyncChannelHandler._didYield\`, i.e. Hummingbird's async WebSocket writer writing and
  flushing **one frame at a time** from a per-connection writer task (about 44% inside \`writev\`).
  The Yjs work itself was small (\`handleYjsFrame\` about 5%). Saturated throughput was 1.44-1.96×
  the reference, and relayd's p99 under saturation was worse than the reference's (305-611 ms
  against 92-108 ms).
- **Change (08:00-08:30 UTC):** WebSocket connections are served by relayd's own event-loop
  handler (\`Sources/RelayServer/Transport\`): the engine's wake-up drains a connection's whole
  outbox on its event loop and flushes once, so frames queued while the loop was busy go out in
  one \`writev\`; frames are encoded once per event loop and shared by every connection it writes
  them to. The 08:50 UTC run above: saturated 3.28× the reference at 4.3 against 12.9 µs of
  server CPU per delivered update, p99 under saturation 15.8 against 36.8 ms.
- **Change (2026-12-04, issue 16 item 2):** a \`/yjs\` message that arrives while nothing of its
  connection is queued is handled on the connection's event loop (no task, no thread pool): in
  memory it is validated, applied and broadcast right there; with SQLite the event loop queues it
  for one group-commit thread, which stores everything queued meanwhile in one transaction (one
  sync of the WAL) and then acknowledges and broadcasts it (Docs/yjs.md "Group commit"). Before
  it crossed the session inbox (a task) and the store's thread pool, and every SQLite update
  was its own transaction. Before/after runs in one session: Docs/benchmarks.md, "Yjs at typing
  rates". The disk sync stays in the SQLite path (durable before broadcast): with the data
  directory on tmpfs (no sync) relayd-sqlite's p99 at 10 updates/s was below the reference's in
  every round.
- relayd answers step 1 with 276,979 bytes (it coalesces structs) against Yjs's 311,035; both
  decode to the trace's endContent.

Command: \`${command}\` (builds relayd in release, prepares the document once (cached in
\`Benchmarks/yjs/rooms/.cache\`), runs \`Benchmarks/yjs/rooms/bench.js\` under a 9-minute timeout,
writes this section; raw numbers in \`Benchmarks/yjs/rooms/last-run.json\`). The machine is shared
(2 cores, other sessions' builds running, load average given above), so absolute numbers move
between runs; the interleaving keeps the ratios comparable.
<!-- yjs:end -->
`
process.stdout.write(section)
if (docPath) {
  let md = fs.readFileSync(docPath, 'utf8')
  const a = md.indexOf('<!-- yjs:start -->'); const b = md.indexOf('<!-- yjs:end -->')
  if (a >= 0 && b > a) md = md.slice(0, a) + section.trimEnd() + md.slice(b + '<!-- yjs:end -->'.length)
  else md = md.trimEnd() + '\n\n' + section
  fs.writeFileSync(docPath, md)
}
