// @ts-check
/**
 * relayd's WebSocket close codes (one table for /ws and /yjs).
 * Transcribed from protocol/vectors/close-codes.json, which is the truth:
 * tests/js/close-codes.test.mjs checks this table against it entry by entry.
 *
 * `client`: what a client does —
 *   reconnect_backoff | reconnect_recover | reconnect_after_retry_after_ms |
 *   remint_once_then_stop | stop
 * `provider`: the Gutenberg sync ConnectionErrorCode a /yjs provider reports
 *   (null: plain disconnect with an automatic retry);
 * `providerExpired`: the code when the close reason says the token expired.
 *
 * @typedef {{client: string, provider: string|null, providerExpired?: string}} CloseAction
 */

/** @type {Record<number, CloseAction>} */
export const CLOSE_CODES = Object.freeze({
  1000: { client: 'reconnect_backoff', provider: null },
  1002: { client: 'reconnect_backoff', provider: 'unknown-error' },
  1007: { client: 'reconnect_backoff', provider: 'unknown-error' },
  1008: { client: 'reconnect_backoff', provider: 'unknown-error' },
  1009: { client: 'reconnect_backoff', provider: 'document-size-limit-exceeded' },
  1011: { client: 'reconnect_backoff', provider: null },
  1013: { client: 'reconnect_backoff', provider: null },
  4001: { client: 'remint_once_then_stop', provider: 'authentication-failed', providerExpired: 'connection-expired' },
  4002: { client: 'reconnect_backoff', provider: null },
  4003: { client: 'stop', provider: 'authentication-failed' },
  4004: { client: 'stop', provider: 'authentication-failed' },
  4008: { client: 'reconnect_recover', provider: null },
  4009: { client: 'reconnect_backoff', provider: null },
  4010: { client: 'stop', provider: 'document-size-limit-exceeded' },
  4011: { client: 'stop', provider: 'document-size-limit-exceeded' },
  4012: { client: 'reconnect_backoff', provider: 'connection-limit-exceeded' },
  4013: { client: 'reconnect_backoff', provider: null },
  4014: { client: 'reconnect_backoff', provider: 'connection-limit-exceeded' },
  4029: { client: 'reconnect_backoff', provider: null },
  4500: { client: 'reconnect_after_retry_after_ms', provider: null },
});

/** What to do for a code not in the table (1001, 1006 abnormal closure, …). */
export const DEFAULT_CLOSE_ACTION = Object.freeze({ client: 'reconnect_backoff', provider: null });

/**
 * @param {number} code
 * @returns {CloseAction}
 */
export function closeAction(code) {
  return CLOSE_CODES[code] || DEFAULT_CLOSE_ACTION;
}

/**
 * The provider error code for a close, honouring 4001's "token expired" reason.
 * @param {number} code
 * @param {string} [reason]
 * @returns {string|null}
 */
export function providerErrorFor(code, reason = '') {
  const a = closeAction(code);
  if (a.providerExpired && /expired/i.test(reason)) return a.providerExpired;
  return a.provider;
}

/**
 * `retry_after_ms=<n>` from a 4500 close reason, or null.
 * @param {string} [reason]
 * @returns {number|null}
 */
export function retryAfterMs(reason = '') {
  const m = /retry_after_ms=(\d+)/.exec(reason);
  return m ? Number(m[1]) : null;
}

/**
 * Jittered exponential backoff: a delay drawn from the upper half of
 * [0, min(max, base·2^attempt)].
 * @param {number} attempt 0-based
 * @param {number} baseMs
 * @param {number} maxMs
 * @param {() => number} [random]
 */
export function backoffDelay(attempt, baseMs, maxMs, random = Math.random) {
  const cap = Math.min(maxMs, baseMs * Math.pow(2, Math.min(attempt, 30)));
  return Math.round(cap / 2 + random() * cap / 2);
}
