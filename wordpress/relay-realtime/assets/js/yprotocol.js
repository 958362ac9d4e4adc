// @ts-check
/**
 * The small part of lib0 encoding and y-protocols the provider needs, written
 * here so the page never loads a second copy of Yjs, lib0 or y-protocols:
 * varUint / varUint8Array / varString, y-websocket message framing, and
 * awareness encode/apply with y-protocols' semantics (clock rule, meta,
 * `change` and `update` events) operating on the editor's Awareness object.
 */

export const MESSAGE_SYNC = 0;
export const MESSAGE_AWARENESS = 1;
export const MESSAGE_AUTH = 2;
export const MESSAGE_QUERY_AWARENESS = 3;
export const SYNC_STEP1 = 0;
export const SYNC_STEP2 = 1;
export const SYNC_UPDATE = 2;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** Growable byte writer. */
export class Writer {
  constructor() { /** @type {number[]} */ this.bytes = []; /** @type {Uint8Array[]} */ this.parts = []; }
  /** @param {number} n non-negative integer ≤ 2^53 */
  varUint(n) {
    while (n > 0x7f) { this.bytes.push(0x80 | (n % 0x80)); n = Math.floor(n / 0x80); }
    this.bytes.push(n);
    return this;
  }
  /** @param {Uint8Array} b */
  raw(b) { this._flush(); this.parts.push(b); return this; }
  /** @param {Uint8Array} b */
  varUint8Array(b) { return this.varUint(b.length).raw(b); }
  /** @param {string} s */
  varString(s) { return this.varUint8Array(textEncoder.encode(s)); }
  _flush() { if (this.bytes.length) { this.parts.push(Uint8Array.from(this.bytes)); this.bytes = []; } }
  /** @returns {Uint8Array} */
  toUint8Array() {
    this._flush();
    let len = 0;
    for (const p of this.parts) len += p.length;
    const out = new Uint8Array(len);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

/** Byte reader; throws RangeError on truncated input (callers catch). */
export class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) { this.bytes = bytes; this.pos = 0; }
  hasMore() { return this.pos < this.bytes.length; }
  varUint() {
    let n = 0, mult = 1;
    for (;;) {
      if (this.pos >= this.bytes.length) throw new RangeError('truncated varUint');
      const b = this.bytes[this.pos++];
      n += (b & 0x7f) * mult;
      if (b < 0x80) return n;
      mult *= 0x80;
      if (mult > 2 ** 56) throw new RangeError('varUint too long');
    }
  }
  varUint8Array() {
    const len = this.varUint();
    if (this.pos + len > this.bytes.length) throw new RangeError('truncated bytes');
    const out = this.bytes.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  varString() { return textDecoder.decode(this.varUint8Array()); }
}

/** @param {Uint8Array} sv */
export const encodeSyncStep1 = (sv) => new Writer().varUint(MESSAGE_SYNC).varUint(SYNC_STEP1).varUint8Array(sv).toUint8Array();
/** @param {Uint8Array} update */
export const encodeSyncStep2 = (update) => new Writer().varUint(MESSAGE_SYNC).varUint(SYNC_STEP2).varUint8Array(update).toUint8Array();
/** @param {Uint8Array} update */
export const encodeSyncUpdate = (update) => new Writer().varUint(MESSAGE_SYNC).varUint(SYNC_UPDATE).varUint8Array(update).toUint8Array();
/** @param {Uint8Array} awarenessUpdate */
export const encodeAwarenessMessage = (awarenessUpdate) => new Writer().varUint(MESSAGE_AWARENESS).varUint8Array(awarenessUpdate).toUint8Array();
export const encodeQueryAwareness = () => new Writer().varUint(MESSAGE_QUERY_AWARENESS).toUint8Array();

/**
 * The subset of y-protocols' Awareness this module relies on.
 * @typedef {{clientID: number, states: Map<number, any>, meta: Map<number, {clock: number, lastUpdated: number}>,
 *   getLocalState(): any, setLocalState(s: any): void, on(e: string, f: Function): void, off(e: string, f: Function): void,
 *   emit(e: string, args: any[]): void}} AwarenessLike
 */

/**
 * y-protocols `encodeAwarenessUpdate`.
 * @param {AwarenessLike} awareness
 * @param {number[]} clients
 */
export function encodeAwarenessUpdate(awareness, clients) {
  const w = new Writer().varUint(clients.length);
  for (const id of clients) {
    const meta = awareness.meta.get(id);
    w.varUint(id).varUint(meta ? meta.clock : 0).varString(JSON.stringify(awareness.states.get(id) ?? null));
  }
  return w.toUint8Array();
}

/**
 * An awareness update saying `clientID` left, at `clock`.
 * @param {number} clientID @param {number} clock
 */
export function encodeAwarenessRemoval(clientID, clock) {
  return new Writer().varUint(1).varUint(clientID).varUint(clock).varString('null').toUint8Array();
}

/** @param {any} a @param {any} b */
function equalDeep(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!Object.prototype.hasOwnProperty.call(b, k) || !equalDeep(a[k], b[k])) return false;
  return true;
}

/**
 * y-protocols `applyAwarenessUpdate`, on any Awareness-shaped object.
 * @param {AwarenessLike} awareness
 * @param {Uint8Array} update
 * @param {any} origin
 */
export function applyAwarenessUpdate(awareness, update, origin) {
  const r = new Reader(update);
  const now = Date.now();
  /** @type {number[]} */ const added = [], updated = [], filteredUpdated = [], removed = [];
  const len = r.varUint();
  for (let i = 0; i < len; i++) {
    const clientID = r.varUint();
    let clock = r.varUint();
    const state = JSON.parse(r.varString());
    const clientMeta = awareness.meta.get(clientID);
    const prevState = awareness.states.get(clientID);
    const currClock = clientMeta === undefined ? 0 : clientMeta.clock;
    if (currClock < clock || (currClock === clock && state === null && awareness.states.has(clientID))) {
      if (state === null) {
        if (clientID === awareness.clientID && awareness.getLocalState() != null) {
          clock++; // never let a remote peer remove our own state
        } else {
          awareness.states.delete(clientID);
        }
      } else {
        awareness.states.set(clientID, state);
      }
      awareness.meta.set(clientID, { clock, lastUpdated: now });
      if (clientMeta === undefined && state !== null) added.push(clientID);
      else if (clientMeta !== undefined && state === null) removed.push(clientID);
      else if (state !== null) {
        if (!equalDeep(state, prevState)) filteredUpdated.push(clientID);
        updated.push(clientID);
      }
    }
  }
  if (added.length || filteredUpdated.length || removed.length) {
    awareness.emit('change', [{ added, updated: filteredUpdated, removed }, origin]);
  }
  if (added.length || updated.length || removed.length) {
    awareness.emit('update', [{ added, updated, removed }, origin]);
  }
}

/**
 * y-protocols `removeAwarenessStates`.
 * @param {AwarenessLike} awareness
 * @param {number[]} clients
 * @param {any} origin
 */
export function removeAwarenessStates(awareness, clients, origin) {
  const removed = [];
  for (const id of clients) {
    if (awareness.states.has(id)) {
      awareness.states.delete(id);
      if (id === awareness.clientID) {
        const m = awareness.meta.get(id);
        awareness.meta.set(id, { clock: (m ? m.clock : 0) + 1, lastUpdated: Date.now() });
      }
      removed.push(id);
    }
  }
  if (removed.length) {
    awareness.emit('change', [{ added: [], updated: [], removed }, origin]);
    awareness.emit('update', [{ added: [], updated: [], removed }, origin]);
  }
}

/**
 * A minimal y-protocols-compatible Awareness, for rooms the editor gives none
 * (collection rooms). Same events, clock rules, 15 s renewal and 30 s expiry.
 */
export class Awareness {
  /** @param {{clientID: number, on?: Function}} doc */
  constructor(doc) {
    this.doc = doc;
    this.clientID = doc.clientID;
    /** @type {Map<number, any>} */ this.states = new Map();
    /** @type {Map<number, {clock: number, lastUpdated: number}>} */ this.meta = new Map();
    /** @type {Map<string, Set<Function>>} */ this._observers = new Map();
    this._timer = setInterval(() => {
      const now = Date.now();
      const mine = this.meta.get(this.clientID);
      if (this.getLocalState() !== null && mine && now - mine.lastUpdated >= 15000) this.setLocalState(this.getLocalState());
      const stale = [];
      for (const [id, m] of this.meta) if (id !== this.clientID && now - m.lastUpdated >= 30000 && this.states.has(id)) stale.push(id);
      if (stale.length) removeAwarenessStates(this, stale, 'timeout');
    }, 3000);
    if (typeof doc.on === 'function') doc.on('destroy', () => this.destroy());
    this.setLocalState({});
  }
  /** @param {string} name @param {Function} f */
  on(name, f) { let s = this._observers.get(name); if (!s) this._observers.set(name, s = new Set()); s.add(f); }
  /** @param {string} name @param {Function} f */
  off(name, f) { this._observers.get(name)?.delete(f); }
  /** @param {string} name @param {any[]} args */
  emit(name, args) { for (const f of Array.from(this._observers.get(name) || [])) f(...args); }
  getLocalState() { return this.states.get(this.clientID) ?? null; }
  getStates() { return this.states; }
  /** @param {any} state */
  setLocalState(state) {
    const id = this.clientID;
    const m = this.meta.get(id);
    const clock = m === undefined ? 0 : m.clock + 1;
    const prev = this.states.get(id);
    if (state === null) this.states.delete(id); else this.states.set(id, state);
    this.meta.set(id, { clock, lastUpdated: Date.now() });
    /** @type {number[]} */ const added = [], updated = [], filteredUpdated = [], removed = [];
    if (state === null) removed.push(id);
    else if (prev == null) added.push(id);
    else { updated.push(id); if (!equalDeep(prev, state)) filteredUpdated.push(id); }
    if (added.length || filteredUpdated.length || removed.length) this.emit('change', [{ added, updated: filteredUpdated, removed }, 'local']);
    this.emit('update', [{ added, updated, removed }, 'local']);
  }
  /** @param {string} field @param {any} value */
  setLocalStateField(field, value) { const s = this.getLocalState(); if (s !== null) this.setLocalState({ ...s, [field]: value }); }
  destroy() {
    if (!this._timer) return;
    this.emit('destroy', [this]);
    this.setLocalState(null);
    clearInterval(this._timer);
    this._timer = null;
    this._observers.clear();
  }
}
