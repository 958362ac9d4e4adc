// Opens Swift-sealed envelopes with Node's WebCrypto (the browser API the
// wordsocket client uses). Input on stdin: {key_b64, channel, v1, v2}.
// Output: {v1: plaintext|null, v2: plaintext|null, v2_wrong_channel: plaintext|null}.
import { readFileSync } from 'node:fs';
const input = JSON.parse(readFileSync(0, 'utf8'));
const subtle = globalThis.crypto.subtle;
const raw = Buffer.from(input.key_b64, 'base64');
const key = await subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['decrypt']);

async function open(envelope, aad) {
  const bytes = Buffer.from(envelope.p, 'base64');
  const params = { name: 'AES-GCM', iv: bytes.subarray(0, 12), tagLength: 128 };
  if (aad) params.additionalData = aad;
  try {
    const pt = await subtle.decrypt(params, key, bytes.subarray(12));
    return new TextDecoder().decode(pt);
  } catch { return null; }
}
function aadFor(env, channel) {
  const enc = new TextEncoder();
  const label = enc.encode('relay-envelope-v2'), alg = enc.encode(env.alg), kid = enc.encode(env.kid), ch = enc.encode(channel);
  return Buffer.concat([label, Buffer.from([alg.length]), alg, Buffer.from([kid.length]), kid,
                        Buffer.from([ch.length >> 8, ch.length & 0xff]), ch]);
}
const out = {
  v1: await open(input.v1, null),
  v2: await open(input.v2, aadFor(input.v2, input.channel)),
  v2_wrong_channel: await open(input.v2, aadFor(input.v2, input.channel + ':other')),
};
process.stdout.write(JSON.stringify(out));
