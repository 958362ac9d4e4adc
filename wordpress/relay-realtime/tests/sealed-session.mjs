// The provider's encrypted mode with what the plugin hands out: two editors holding tokens and
// room keys from the token route converge through relayd; a user the route gave no key is told
// authentication-failed. Usage: node sealed-session.mjs '{"url","siteId","postId","editors":[{token,exp,e2e}],"reader":{token,exp,e2e}}'
// Prints one JSON object with what the editors observed.
import { SyncManagerDouble, createHooks, text, until, WebSocket } from './js/harness.mjs';
import { register, liveProviders } from '../assets/js/yjs-provider.js';

const cfg = JSON.parse(process.argv[2]);
const out = {};
function editor(grant, id) {
  const hooks = createHooks();
  register({ url: cfg.url, siteId: cfg.siteId, token: grant.token, exp: grant.exp, e2e: grant.e2e, WebSocket,
    yjs: { enabled: true, roomPrefix: '', syncTimeoutMs: 3000, retryBaseMs: 200, retryMaxMs: 1000 } }, { hooks });
  return new SyncManagerDouble({ hooks, user: { id, name: `U${id}` } });
}
const content = (e) => e.ydoc.getMap('document').get('content')?.toString();
try {
  const [a, b] = cfg.editors.map((g, i) => editor(g, i + 1));
  const [ea, eb] = await Promise.all([a.load(`postType/post`, String(cfg.postId)), b.load(`postType/post`, String(cfg.postId))]);
  out.encrypted = ea.providers[0].provider.debugState().encrypted === true;
  out.statuses = [ea, eb].map((e) => e.statuses.filter(Boolean).at(-1)?.status);
  text(ea.ydoc).insert(0, 'sealed by A;');
  out.b_saw_a = await until(() => content(eb) === 'sealed by A;');
  text(eb.ydoc).insert(content(eb).length, 'B too');
  out.converged = await until(() => content(ea) === 'sealed by A;B too' && content(eb) === content(ea));
  const r = editor(cfg.reader, 9);
  const er = await r.load(`postType/post`, String(cfg.postId));
  const last = er.statuses.filter(Boolean).at(-1);
  out.reader_status = last?.status;
  out.reader_error = last?.error?.code;
  out.reader_connects = er.providers[0].provider.debugState().connects;
  for (const m of [a, b, r]) m.unloadAll();
} catch (e) {
  out.error = String(e && e.stack || e);
}
for (const p of liveProviders) p.destroy();
WebSocket.terminateAll();
console.log(JSON.stringify(out));
process.exit(0);
