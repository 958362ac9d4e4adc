// Seeded randomness and hex for the oracle generators (gen-sessions.js, gen-gc.js).
'use strict'

/** Mulberry32: a small seeded PRNG returning floats in [0, 1). */
function mulberry32 (a) {
  return function () {
    a |= 0; a = a + 0x6D2B79F5 | 0
    let t = Math.imul(a ^ a >>> 15, 1 | a)
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t
    return ((t ^ t >>> 14) >>> 0) / 4294967296
  }
}

const hex = u => Buffer.from(u).toString('hex')

module.exports = { mulberry32, hex }
