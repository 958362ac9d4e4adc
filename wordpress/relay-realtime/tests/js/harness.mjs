// Test harness: relayd on a free loopback port with a temp data dir, tokens,
// signed publishes through relayctl, and a faithful double of Gutenberg's sync
// manager (wp-rtc-provider.md §3, next-round-notes.md B.4) built on Debian's
// node-yjs / node-y-protocols as the editor's copies.
import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import crypto from 'node:crypto';

const require = createRequire(import.meta.url);
export const Y = require('yjs');
export const { Awareness } = require('y-protocols/awareness');
const WS = require('ws');
/** `ws` with every instance tracked, so a suite can terminate leftovers (close handshakes to a killed relayd). */
export class WebSocket extends WS {
  constructor(...a) { super(...a); WebSocket.all.add(this); this.once('close', () => WebSocket.all.delete(this)); }
  static terminateAll() { for (const w of WebSocket.all) { try { w.terminate(); } catch { /* */ } } WebSocket.all.clear(); }
}
WebSocket.all = new Set();

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '../../../..');
export const RELAYD = process.env.RELAYD_BIN || join(REPO, '.build/debug/relayd');
export const RELAYCTL = process.env.RELAYCTL_BIN || join(REPO, '.build/debug/relayctl');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(pred, ms = 5000, step = 20) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await pred()) return true; await sleep(step); }
  return !!(await pred());
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  });
}

/** One relayd process; `restart()` keeps port and data dir. */
export class Relay {
  static async start(args = []) {
    const r = new Relay(args);
    r.port = await freePort();
    r.dataDir = mkdtempSync(join(tmpdir(), 'relay-js-'));
    await r.spawn();
    return r;
  }
  constructor(args) { this.args = args; this.proc = null; this.out = ''; }
  get url() { return `http://127.0.0.1:${this.port}`; }
  async spawn() {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RELAY_')));
    this.proc = spawn(RELAYD, ['--port', String(this.port), '--data-dir', this.dataDir, '--log-level', 'warning', ...this.args],
      { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (d) => { this.out += d; });
    this.proc.stderr.on('data', (d) => { this.out += d; });
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.exited = exited;
    const ok = await until(async () => {
      try { return (await fetch(`${this.url}/healthz`)).ok; } catch { return false; }
    }, 15000, 50);
    if (!ok) { this.kill(); throw new Error(`relayd did not start:\n${this.out.slice(-2000)}`); }
    if (!this.site) {
      const f = (n) => (new RegExp(`${n}:\\s+(\\S+)`).exec(this.out) || [])[1];
      this.site = { siteKey: f('site_key'), siteId: f('site_id'), publishSecret: f('publish_secret'), jwtSecret: f('jwt_secret') };
      if (!this.site.siteId) throw new Error(`no dev site in relayd output:\n${this.out}`);
    }
  }
  kill(signal = 'SIGKILL') { if (this.proc && this.proc.exitCode === null) this.proc.kill(signal); }
  async stopProcess(signal = 'SIGKILL') { this.kill(signal); await this.exited; }
  async restart() { await this.stopProcess(); await this.spawn(); }
  async close() { await this.stopProcess(); rmSync(this.dataDir, { recursive: true, force: true }); }

  /** HS256 token as WordPress mints it. */
  token({ user = '1', write = true, ttl = 300, exp, sub, pub, secret } = {}) {
    const id = this.site.siteId;
    const now = Math.floor(Date.now() / 1000);
    const claims = { site_id: id, user_id: user, v: 2, iat: now - (exp !== undefined && exp < now ? 120 : 0), exp: exp ?? now + ttl,
      allowed_channel_prefixes: sub || [`site:${id}:`],
      allowed_publish_prefixes: pub || (write ? [`site:${id}:`] : [`site:${id}:nothing-here:`]) };
    return { token: jwt(claims, secret || this.site.jwtSecret), exp: claims.exp };
  }
  /** relayctl against the running relayd's admin API; resolves to stdout. */
  ctl(...args) {
    const key = readFileSync(join(this.dataDir, 'admin.key'), 'utf8').trim();
    return new Promise((res, rej) => execFile(RELAYCTL, [...args, '--url', this.url, '--admin-key', key], { timeout: 10000 },
      (err, stdout, stderr) => err ? rej(new Error(`relayctl ${args.join(' ')}: ${stderr || err.message}`)) : res(stdout)));
  }
  /** A second site through the admin API: `{site_key, site_id, jwt_secret, …}` plus a token minter. */
  async addSite(extra = []) {
    const out = await this.ctl('site', 'add', '--site-url', `http://s${Date.now()}.test`, '--name', 'extra', ...extra);
    const site = JSON.parse(out);
    const siteId = site.site_id, secret = site.jwt_secret;
    site.token = ({ ttl = 300 } = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return { token: jwt({ site_id: siteId, user_id: '1', v: 2, iat: now, exp: now + ttl, allowed_channel_prefixes: [`site:${siteId}:`],
        allowed_publish_prefixes: [`site:${siteId}:`] }, secret), exp: now + ttl };
    };
    return site;
  }
  /** `POST /api/sites/unregister` (WordPress "disconnect"): archives the site, closing its sockets with 4003. */
  async unregisterSite(site) {
    const key = readFileSync(join(this.dataDir, 'admin.key'), 'utf8').trim();
    const r = await fetch(`${this.url}/api/sites/unregister`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ site_key: site.site_key, publish_secret: site.publish_secret }) });
    if (!r.ok) throw new Error(`unregister: ${r.status} ${await r.text()}`);
  }
  /** Signed publish through relayctl (a real peer: Swift signs and seals). */
  publish(channel, event, data, extra = []) {
    return new Promise((res, rej) => {
      execFile(RELAYCTL, ['publish', '--url', this.url, '--site-key', this.site.siteKey, '--secret', this.site.publishSecret,
        ...extra, channel, event, JSON.stringify(data)], { timeout: 10000 }, (err, stdout, stderr) =>
        err ? rej(new Error(`relayctl publish: ${stderr || err.message}`)) : res(stdout));
    });
  }
}

const b64url = (b) => Buffer.from(b).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
export function jwt(claims, secret) {
  const h = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' })), p = b64url(JSON.stringify(claims));
  return `${h}.${p}.${b64url(crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest())}`;
}

/** `@wordpress/hooks`-like filters. */
export function createHooks() {
  const filters = new Map();
  return {
    addFilter(name, ns, fn) { (filters.get(name) || filters.set(name, []).get(name)).push(fn); },
    applyFilters(name, value) { for (const fn of filters.get(name) || []) value = fn(value); return value; },
  };
}

export const LOCAL_EDITOR_ORIGIN = 'gutenberg';
export const LOCAL_SYNC_MANAGER_ORIGIN = 'syncManager';

/**
 * Double of `@wordpress/sync`'s manager: creators from `sync.providers`
 * applied once and validated; one Y.Doc per entity (maps `document`, `state`)
 * plus collection rooms without awareness; `Promise.all` over creators;
 * `on('status')` attached after each resolves; unload-during-load handled;
 * one macrotask, then the persisted snapshot unless the provider synced
 * remote state; `destroy` + `onStatusChange(null)` + `ydoc.destroy()` on unload.
 */
export class SyncManagerDouble {
  constructor({ hooks, defaults = [], user = { id: 1, name: 'Editor' }, passY = true } = {}) {
    this.hooks = hooks; this.defaults = defaults; this.user = user; this.passY = passY;
    this.creators = null; this.entities = new Map();
  }
  getProviderCreators() {
    if (this.creators) return this.creators;
    let r = this.hooks.applyFilters('sync.providers', this.defaults.slice());
    if (!Array.isArray(r)) r = [];
    this.creators = r.filter((c) => typeof c === 'function');
    return this.creators;
  }
  async load(objectType, objectId, { persisted, awareness = objectId !== null } = {}) {
    const creators = this.getProviderCreators();
    const key = `${objectType}:${objectId}`;
    if (!creators.length || this.entities.has(key)) return null;
    const ydoc = new Y.Doc({ meta: new Map() });
    ydoc.getMap('document'); ydoc.getMap('state');
    let aw;
    if (awareness) {
      aw = new Awareness(ydoc);
      aw.setLocalState({ collaboratorInfo: { id: this.user.id, name: this.user.name, browserType: 'Node', enteredAt: Date.now() } });
    }
    const e = { key, objectType, objectId, ydoc, awareness: aw, statuses: [], providers: [], unloaded: false, rejected: null,
      flagAtResolve: undefined, persistedApplied: false };
    this.entities.set(key, e);
    const onStatusChange = (s) => e.statuses.push(s);
    try {
      e.providers = await Promise.all(creators.map(async (create) => {
        const opts = { objectType, objectId, ydoc, awareness: aw };
        if (this.passY) opts.Y = Y;
        const p = await create(opts);
        p.on('status', onStatusChange);
        return p;
      }));
    } catch (err) { e.rejected = err; throw err; }
    e.flagAtResolve = ydoc.meta.get('hasProviderSyncedRemoteState') === true;
    if (e.unloaded) { for (const p of e.providers) p.destroy(); return e; }
    await sleep(0);
    if (e.unloaded) return e;
    if (persisted && !ydoc.meta.get('hasProviderSyncedRemoteState')) {
      Y.applyUpdateV2(ydoc, persisted, LOCAL_SYNC_MANAGER_ORIGIN);
      e.persistedApplied = true;
    }
    ydoc.transact(() => { if (ydoc.getMap('state').get('version') === undefined) ydoc.getMap('state').set('version', 1); }, LOCAL_SYNC_MANAGER_ORIGIN);
    e.unload = () => this.unload(key);
    return e;
  }
  loadCollection(objectType) { return this.load(objectType, null, { awareness: false }); }
  unload(key) {
    const e = this.entities.get(key);
    if (!e) return;
    this.entities.delete(key);
    e.unloaded = true;
    for (const p of e.providers) p.destroy();
    e.statuses.push(null);
    e.awareness?.destroy();
    e.ydoc.destroy();
  }
  unloadAll() { for (const k of Array.from(this.entities.keys())) this.unload(k); }
}

/** Local edit as the block editor makes it. */
export function edit(ydoc, fn) { ydoc.transact(() => fn(ydoc.getMap('document')), LOCAL_EDITOR_ORIGIN); }

export function text(ydoc, key = 'content') {
  const d = ydoc.getMap('document');
  let t = d.get(key);
  if (!t) { t = new Y.Text(); edit(ydoc, (m) => m.set(key, t)); }
  return d.get(key);
}

export const closeCodesJSON = () => JSON.parse(readFileSync(join(REPO, 'protocol/vectors/close-codes.json'), 'utf8'));
