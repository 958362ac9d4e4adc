// @ts-check
/**
 * End-to-end encrypted Yjs rooms, the client's half (Docs/yjs.md "Encrypted rooms",
 * Docs/protocol.md "Encrypted Yjs rooms"): the relay's message framing, and sealing with
 * WebCrypto AES-256-GCM under a per-document key WordPress hands to the post's editors.
 *
 * Sealed message: `01 | kind | varString kid | writer (16 bytes) | varUint counter | nonce (12) |
 * AES-GCM ciphertext and tag`, the associated data being
 * `"relay-realtime/yjs-e2e/1" 00 site_id 00 room 00` followed by everything before the nonce.
 * A ciphertext moved to another room, site or kind, or altered, fails to open; one replayed
 * (a writer's counter not above what this client saw from that writer) is refused by `Opener`.
 */
import { Writer, Reader } from './yprotocol.js';

export const MSG = {
  SYNC_REQUEST: 0x10, UPDATE: 0x11, SNAPSHOT: 0x12, AWARENESS: 0x13,
  STORED_SNAPSHOT: 0x20, LOG_ENTRY: 0x21, SYNCED: 0x22, PEER_AWARENESS: 0x23, PEER_LEFT: 0x24,
  SNAPSHOT_REQUEST: 0x25, SNAPSHOT_STORED: 0x26, DENIED: 0x27,
};
/** Kinds of sealed payload (bound into the associated data). */
export const KIND = { update: 0x75, snapshot: 0x73, awareness: 0x61 };
const VERSION = 1;
const AD_PREFIX = new TextEncoder().encode('relay-realtime/yjs-e2e/1');
const te = new TextEncoder();

/**
 * Why a sealed payload was refused. `stale` (awareness only) is not an attack: the relay hands a
 * joiner its peers' latest awareness, which the live broadcast may also bring, before or after.
 */
export class SealedError extends Error {
  /** @param {'tampered'|'replayed'|'unknown-key'|'malformed'|'stale'} reason @param {string} [message] */
  constructor(reason, message) { super(message || reason); this.name = 'SealedError'; this.reason = reason; }
}

/** @param {Uint8Array} a */
const hex = (a) => Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');

/** @param {string} s */
export function base64urlDecode(s) {
  const b = atob(String(s).replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** @param {number} tag @param {(w: Writer) => void} [body] */
function frame(tag, body) { const w = new Writer(); w.varUint(tag); if (body) body(w); return w.toUint8Array(); }

export const encodeSyncRequest = (/** @type {number} */ known) => frame(MSG.SYNC_REQUEST, (w) => w.varUint(known));
export const encodeUpdate = (/** @type {Uint8Array} */ sealed) => frame(MSG.UPDATE, (w) => w.raw(sealed));
export const encodeSnapshot = (/** @type {number} */ through, /** @type {Uint8Array} */ sealed) => frame(MSG.SNAPSHOT, (w) => w.varUint(through).raw(sealed));
export const encodeAwareness = (/** @type {Uint8Array} */ sealed) => frame(MSG.AWARENESS, (w) => w.raw(sealed));

/**
 * A relay message: `{type, seq?, through?, last?, peer?, sealed?, reason?}`.
 * @param {Uint8Array} bytes
 */
export function decodeMessage(bytes) {
  const r = new Reader(bytes);
  const type = r.varUint();
  const rest = () => { const s = bytes.subarray(r.pos); r.pos = bytes.length; return s; };
  /** @type {any} */ let m;
  switch (type) {
    case MSG.STORED_SNAPSHOT: { const through = r.varUint(); m = { type, through, sealed: rest() }; break; }
    case MSG.LOG_ENTRY: { const seq = r.varUint(); m = { type, seq, sealed: rest() }; break; }
    case MSG.SYNCED: { const last = r.varUint(); m = { type, last, peer: r.varUint() }; break; }
    case MSG.PEER_AWARENESS: { const peer = r.varUint(); m = { type, peer, sealed: rest() }; break; }
    case MSG.PEER_LEFT: m = { type, peer: r.varUint() }; break;
    case MSG.SNAPSHOT_REQUEST: case MSG.SNAPSHOT_STORED: m = { type, through: r.varUint() }; break;
    case MSG.DENIED: m = { type, reason: r.varString() }; break;
    default: throw new SealedError('malformed', `unknown relay message ${type}`);
  }
  if (r.hasMore()) throw new SealedError('malformed', 'trailing bytes');
  return m;
}

/**
 * Keys of one room: `{kid, key}` entries (key = base64url of 32 bytes), the newest first
 * (it seals; every one opens).
 */
export class RoomKeys {
  /** @param {{kid: string, key: string}[]} entries */
  constructor(entries) {
    this.entries = entries.filter((e) => e && typeof e.kid === 'string' && typeof e.key === 'string');
    /** @type {Map<string, Promise<CryptoKey>>} */ this.imported = new Map();
  }
  get current() { return this.entries[0] ? this.entries[0].kid : null; }
  /** New entries first (the newest seals); old key ids stay to open what they sealed. @param {{kid: string, key: string}[]} entries */
  update(entries) {
    const fresh = entries.filter((e) => e && typeof e.kid === 'string' && typeof e.key === 'string');
    this.entries = fresh.concat(this.entries.filter((e) => !fresh.some((f) => f.kid === e.kid)));
  }
  /** @param {string} kid @returns {Promise<CryptoKey>|null} */
  get(kid) {
    const e = this.entries.find((x) => x.kid === kid);
    if (!e) return null;
    let k = this.imported.get(kid);
    if (!k) {
      const raw = base64urlDecode(e.key);
      if (raw.length !== 32) return null;
      k = crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
      this.imported.set(kid, k);
    }
    return k;
  }
}

/** @param {string} site @param {string} room @param {Uint8Array} header */
function associatedData(site, room, header) {
  return new Writer().raw(AD_PREFIX).raw(Uint8Array.of(0)).raw(te.encode(site)).raw(Uint8Array.of(0))
    .raw(te.encode(room)).raw(Uint8Array.of(0)).raw(header).toUint8Array();
}

/** Seals this client's payloads: one writer id per instance, one counter across kinds. */
export class Sealer {
  /** @param {RoomKeys} keys @param {string} site @param {string} room */
  constructor(keys, site, room) {
    this.keys = keys; this.site = site; this.room = room;
    this.writer = crypto.getRandomValues(new Uint8Array(16));
    this.writerHex = hex(this.writer);
    this.counter = 0;
  }
  /** @param {number} kind @param {Uint8Array} plaintext @returns {Promise<Uint8Array>} */
  async seal(kind, plaintext) {
    const kid = this.keys.current;
    const key = kid === null ? null : this.keys.get(kid);
    if (!key || kid === null) throw new SealedError('unknown-key', 'no key for this room');
    const header = new Writer().raw(Uint8Array.of(VERSION, kind)).varString(kid).raw(this.writer).varUint(++this.counter).toUint8Array();
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: associatedData(this.site, this.room, header) },
      await key, plaintext));
    return new Writer().raw(header).raw(nonce).raw(ct).toUint8Array();
  }
}

/**
 * Opens sealed payloads and refuses replays: per writer, the highest counter seen in the log
 * (updates, and the clocks a snapshot covers) and, separately, in snapshots and in awareness.
 * A snapshot's own counter says nothing about the log: its maker's updates sealed before it can
 * still follow it there (they were in flight when it sealed the snapshot).
 */
export class Opener {
  /** @param {RoomKeys} keys @param {string} site @param {string} room */
  constructor(keys, site, room) {
    this.keys = keys; this.site = site; this.room = room;
    /** @type {Map<string, number>} */ this.logSeen = new Map();
    /** @type {Map<string, number>} */ this.snapshotSeen = new Map();
    /** @type {Map<string, number>} */ this.awarenessSeen = new Map();
  }
  /**
   * @param {number} kind @param {Uint8Array} sealed
   * @returns {Promise<{plaintext: Uint8Array, writer: string, counter: number}>}
   */
  async open(kind, sealed) {
    const r = new Reader(sealed);
    let header, kid = '', writer = '', counter = 0;
    try {
      const version = sealed[0], k = sealed[1];
      r.pos = 2;
      if (version !== VERSION) throw new SealedError('malformed', `sealed version ${version}`);
      if (k !== kind) throw new SealedError('tampered', 'sealed payload of another kind');
      kid = r.varString();
      if (r.pos + 16 > sealed.length) throw new RangeError('truncated writer');
      writer = hex(sealed.subarray(r.pos, r.pos + 16));
      r.pos += 16;
      counter = r.varUint();
      header = sealed.subarray(0, r.pos);
      if (r.pos + 12 + 16 > sealed.length) throw new RangeError('truncated ciphertext');
    } catch (e) {
      if (e instanceof SealedError) throw e;
      throw new SealedError('malformed', String(e));
    }
    const key = this.keys.get(kid);
    if (!key) throw new SealedError('unknown-key', `no key ${kid}`);
    const nonce = sealed.subarray(r.pos, r.pos + 12);
    let plaintext;
    try {
      plaintext = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: associatedData(this.site, this.room, header) },
        await key, sealed.subarray(r.pos + 12)));
    } catch (_) {
      throw new SealedError('tampered', 'does not open under this room\'s key (altered, or sealed for another room or site)');
    }
    const seen = kind === KIND.awareness ? this.awarenessSeen : kind === KIND.snapshot ? this.snapshotSeen : this.logSeen;
    if (counter <= (seen.get(writer) || 0)) {
      // An awareness state no newer than the one applied is dropped either way (no rollback);
      // only log entries and snapshots are reported as replays.
      throw new SealedError(kind === KIND.awareness ? 'stale' : 'replayed', `writer ${writer.slice(0, 8)} counter ${counter} already seen`);
    }
    seen.set(writer, counter);
    return { plaintext, writer, counter };
  }
}

/**
 * Snapshot plaintext: the Yjs state and the log clocks it covers.
 * @param {Uint8Array} state @param {Map<string, number>} clocks
 */
export function encodeSnapshotPlaintext(state, clocks) {
  const w = new Writer().varUint8Array(state).varUint(clocks.size);
  for (const [writer, counter] of clocks) w.raw(Uint8Array.from(writer.match(/../g) || [], (h) => parseInt(h, 16))).varUint(counter);
  return w.toUint8Array();
}

/** @param {Uint8Array} bytes @returns {{state: Uint8Array, clocks: Map<string, number>}} */
export function decodeSnapshotPlaintext(bytes) {
  const r = new Reader(bytes);
  const state = r.varUint8Array();
  const n = r.varUint();
  const clocks = new Map();
  for (let i = 0; i < n; i++) {
    if (r.pos + 16 > bytes.length) throw new RangeError('truncated snapshot clocks');
    const writer = hex(bytes.subarray(r.pos, r.pos + 16));
    r.pos += 16;
    clocks.set(writer, r.varUint());
  }
  return { state, clocks };
}
