// The client's and provider's close-code table against protocol/vectors/close-codes.json, entry by entry.
import test from 'node:test';
import assert from 'node:assert/strict';
import { closeCodesJSON } from './harness.mjs';
import { CLOSE_CODES, closeAction, providerErrorFor, retryAfterMs, backoffDelay } from '../../assets/js/close-codes.js';

test('every vector code has the same client action and provider error', () => {
  const { codes } = closeCodesJSON();
  assert.ok(codes.length > 10);
  for (const c of codes) {
    const mine = CLOSE_CODES[c.code];
    assert.ok(mine, `code ${c.code} (${c.name}) missing from close-codes.js`);
    assert.equal(mine.client, c.client, `client action of ${c.code}`);
    assert.equal(mine.provider, c.provider_error, `provider error of ${c.code}`);
    assert.equal(mine.providerExpired, c.provider_error_when_expired, `expired provider error of ${c.code}`);
  }
  assert.deepEqual(Object.keys(CLOSE_CODES).map(Number).sort(), codes.map((c) => c.code).sort(), 'no codes beyond the vectors');
});

test('4001 reasons pick connection-expired only for an expired token', () => {
  const c = closeCodesJSON().codes.find((x) => x.code === 4001);
  for (const [reason, kind] of Object.entries(c.reasons)) {
    assert.equal(providerErrorFor(4001, reason), kind === 'expired' ? c.provider_error_when_expired : c.provider_error, reason);
  }
});

test('unknown codes reconnect; retry_after_ms parsed; backoff in the upper half and capped', () => {
  assert.equal(closeAction(1006).client, 'reconnect_backoff');
  assert.equal(providerErrorFor(1006), null);
  assert.equal(retryAfterMs('server shutting down; retry_after_ms=1234'), 1234);
  assert.equal(retryAfterMs('bye'), null);
  for (let a = 0; a < 12; a++) {
    const cap = Math.min(60000, 1000 * 2 ** a);
    assert.equal(backoffDelay(a, 1000, 60000, () => 0), cap / 2);
    assert.equal(backoffDelay(a, 1000, 60000, () => 0.999999), Math.round(cap / 2 + 0.999999 * cap / 2));
  }
});

test('browser modules import nothing but each other (no second Yjs, lib0 or y-protocols, no globals besides RelayRealtime)', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  const dir = new URL('../../assets/js/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.js'));
  assert.ok(files.includes('client.js') && files.includes('yjs-provider.js'));
  for (const f of files) {
    const src = readFileSync(new URL(f, dir), 'utf8');
    for (const m of src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)) {
      assert.match(m[1], /^\.\/[a-z-]+\.js$/, `${f} imports ${m[1]}`);
    }
    assert.doesNotMatch(src, /import\(/, `${f} has no dynamic import`);
    for (const m of src.matchAll(/window\.([A-Za-z_]+)\s*=/g)) assert.equal(m[1], 'RelayRealtime', `${f} sets window.${m[1]}`);
  }
});
