// protocol/vectors/yjs-e2e.json against sealed-room.js: the relay's messages decode to the listed
// fields, client messages encode to the listed bytes, and the vector's sealed payloads open with the
// room key (and fail moved to another room, altered, or replayed).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './harness.mjs';
import { decodeMessage, encodeSyncRequest, encodeUpdate, encodeSnapshot, encodeAwareness, RoomKeys, Opener, Sealer, KIND, SealedError } from '../../assets/js/sealed-room.js';

const v = JSON.parse(readFileSync(join(REPO, 'protocol/vectors/yjs-e2e.json'), 'utf8'));
const hex = (h) => Uint8Array.from(Buffer.from(h, 'hex'));
const toHex = (b) => Buffer.from(b).toString('hex');

test('relay messages decode, client messages encode, invalid ones are refused', () => {
  for (const m of v.messages) {
    const f = m.fields, s = f.sealed_hex ? hex(f.sealed_hex) : null;
    if (m.direction === 'client') {
      const made = { 16: () => encodeSyncRequest(f.known_seq), 17: () => encodeUpdate(s), 18: () => encodeSnapshot(f.through_seq, s), 19: () => encodeAwareness(s) }[f.type]();
      assert.equal(toHex(made), m.hex, m.name);
    } else {
      const d = decodeMessage(hex(m.hex));
      assert.equal(d.type, f.type, m.name);
      if ('seq' in f) assert.equal(d.seq, f.seq, m.name);
      if ('through_seq' in f) assert.equal(d.through, f.through_seq, m.name);
      if ('last_seq' in f) assert.equal(d.last, f.last_seq, m.name);
      if ('peer' in f) assert.equal(d.peer, f.peer, m.name);
      if ('reason' in f) assert.equal(d.reason, f.reason, m.name);
      if (s) assert.equal(toHex(d.sealed), f.sealed_hex, m.name);
    }
  }
  for (const m of v.invalid_messages.filter((x) => x.hex.startsWith('2'))) assert.throws(() => decodeMessage(hex(m.hex)), Error, m.name);
});

test('sealed payloads open with the room key; moved, altered or replayed ones are refused', async () => {
  const { sealing: sl, room_key: rk } = v;
  const keys = new RoomKeys([{ kid: rk.kid, key: rk.key_b64url }]);
  const opener = new Opener(keys, sl.site_id, sl.room);
  const kinds = { update: KIND.update, awareness: KIND.awareness, snapshot: KIND.snapshot };
  for (const c of sl.seals) {
    const { plaintext, writer, counter } = await opener.open(kinds[c.kind], hex(c.sealed_hex));
    assert.equal(toHex(plaintext), c.plaintext_hex, c.kind);
    assert.equal(writer, sl.writer_hex);
    assert.equal(counter, c.counter);
  }
  const reason = async (p) => { try { await p; return 'opened'; } catch (e) { return e instanceof SealedError ? e.reason : String(e); } };
  const first = hex(sl.seals[0].sealed_hex);
  assert.equal(await reason(opener.open(KIND.update, first)), 'replayed');
  assert.equal(await reason(new Opener(keys, sl.site_id, sl.moved_room).open(KIND.update, first)), 'tampered');
  assert.equal(await reason(new Opener(keys, 'another-site', sl.room).open(KIND.update, first)), 'tampered');
  assert.equal(await reason(new Opener(keys, sl.site_id, sl.room).open(KIND.awareness, first)), 'tampered');
  const altered = Uint8Array.from(first); altered[altered.length - 1] ^= 1;
  assert.equal(await reason(new Opener(keys, sl.site_id, sl.room).open(KIND.update, altered)), 'tampered');
  assert.equal(await reason(new Opener(new RoomKeys([{ kid: 'other', key: rk.key_b64url }]), sl.site_id, sl.room).open(KIND.update, first)), 'unknown-key');
});

test('an update its writer sealed before its snapshot still opens after that snapshot (it was in flight); a replayed snapshot does not', async () => {
  // The writer seals update 1, then answers a snapshot request (counter 2) before update 1 comes
  // back in the log: a late joiner receives the snapshot, then update 1 after it.
  const { sealing: sl, room_key: rk } = v;
  const keys = new RoomKeys([{ kid: rk.kid, key: rk.key_b64url }]);
  const sealer = new Sealer(keys, sl.site_id, sl.room);
  const update = await sealer.seal(KIND.update, Uint8Array.of(1, 2, 3));
  const snapshot = await sealer.seal(KIND.snapshot, Uint8Array.of(4, 5, 6));
  const later = await sealer.seal(KIND.update, Uint8Array.of(7));
  const joiner = new Opener(keys, sl.site_id, sl.room);
  assert.equal((await joiner.open(KIND.snapshot, snapshot)).counter, 2);
  assert.equal((await joiner.open(KIND.update, update)).counter, 1);
  assert.equal((await joiner.open(KIND.update, later)).counter, 3);
  const reason = async (p) => { try { await p; return 'opened'; } catch (e) { return e instanceof SealedError ? e.reason : String(e); } };
  assert.equal(await reason(joiner.open(KIND.update, update)), 'replayed');
  assert.equal(await reason(joiner.open(KIND.snapshot, snapshot)), 'replayed');
});

test('awareness no newer than the last applied is dropped as stale, not reported as a replay', async () => {
  const { sealing: sl, room_key: rk } = v;
  const keys = new RoomKeys([{ kid: rk.kid, key: rk.key_b64url }]);
  const sealer = new Sealer(keys, sl.site_id, sl.room);
  const first = await sealer.seal(KIND.awareness, Uint8Array.of(1));
  const second = await sealer.seal(KIND.awareness, Uint8Array.of(2));
  const peer = new Opener(keys, sl.site_id, sl.room);
  const reason = async (p) => { try { await p; return 'opened'; } catch (e) { return e instanceof SealedError ? e.reason : String(e); } };
  assert.equal(await reason(peer.open(KIND.awareness, first)), 'opened');
  assert.equal(await reason(peer.open(KIND.awareness, first)), 'stale', 'the same state twice (catch-up and live)');
  assert.equal(await reason(peer.open(KIND.awareness, second)), 'opened');
  assert.equal(await reason(peer.open(KIND.awareness, first)), 'stale', 'an older state after a newer one');
});
