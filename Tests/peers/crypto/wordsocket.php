<?php
// A peer written the way the wordsocket plugin does it (PHP openssl, hash,
// sodium), used by RelayCryptoTests to cross-check Swift in both directions.
// Input: one JSON object on stdin. Output: one JSON object on stdout.
$in = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);

function b64url(string $b): string { return rtrim(strtr(base64_encode($b), '+/', '-_'), '='); }
function b64url_dec(string $s): string { return base64_decode(strtr($s, '-_', '+/') . str_repeat('=', (4 - strlen($s) % 4) % 4), true); }

// Config::encryption_key()
function encryption_key(string $seed, string $site_key): string {
    return hash_hkdf('sha256', $seed, 32, 'wpsignal-v1', $site_key);
}
// Publisher::encrypt()
function seal_v1(string $event, $data, string $key): array {
    $plain = json_encode(['event' => $event, 'data' => $data]);
    $iv = random_bytes(12);
    $tag = '';
    $ct = openssl_encrypt($plain, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv, $tag, '', 16);
    return ['v' => 1, 'p' => base64_encode($iv . $ct . $tag)];
}
function open_v1(array $env, string $key) {
    $raw = base64_decode($env['p'], true);
    $iv = substr($raw, 0, 12); $tag = substr($raw, -16); $ct = substr($raw, 12, -16);
    return openssl_decrypt($ct, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv, $tag);
}
function v2_aad(string $alg, string $kid, string $channel): string {
    return 'relay-envelope-v2' . pack('C', strlen($alg)) . $alg . pack('C', strlen($kid)) . $kid . pack('n', strlen($channel)) . $channel;
}
function seal_v2(string $plain, string $key, string $kid, string $channel, string $alg): array {
    $aad = v2_aad($alg, $kid, $channel);
    if ($alg === 'A256GCM') {
        $iv = random_bytes(12); $tag = '';
        $ct = openssl_encrypt($plain, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv, $tag, $aad, 16);
        $p = $iv . $ct . $tag;
    } else {
        $n = random_bytes(SODIUM_CRYPTO_AEAD_XCHACHA20POLY1305_IETF_NPUBBYTES);
        $p = $n . sodium_crypto_aead_xchacha20poly1305_ietf_encrypt($plain, $aad, $n, $key);
    }
    return ['v' => 2, 'alg' => $alg, 'kid' => $kid, 'p' => base64_encode($p)];
}
function open_v2(array $env, string $key, string $channel) {
    $raw = base64_decode($env['p'], true);
    $aad = v2_aad($env['alg'], $env['kid'], $channel);
    if ($env['alg'] === 'A256GCM') {
        return openssl_decrypt(substr($raw, 12, -16), 'aes-256-gcm', $key, OPENSSL_RAW_DATA, substr($raw, 0, 12), substr($raw, -16), $aad);
    }
    return sodium_crypto_aead_xchacha20poly1305_ietf_decrypt(substr($raw, 24), $aad, substr($raw, 0, 24), $key);
}
// Publisher::sign()
function sign_v1(string $body, string $ts, string $secret): string {
    return hash_hmac('sha256', $body . '.' . $ts, $secret);
}
function canonical_query(string $q): string {
    if ($q === '') return '';
    $pairs = [];
    foreach (explode('&', $q) as $part) {
        if ($part === '') continue;
        $kv = explode('=', $part, 2);
        $pairs[] = [rawurlencode(rawurldecode($kv[0])), rawurlencode(rawurldecode($kv[1] ?? ''))];
    }
    usort($pairs, fn($a, $b) => strcmp($a[0], $b[0]) ?: strcmp($a[1], $b[1]));
    return implode('&', array_map(fn($p) => $p[0] . '=' . $p[1], $pairs));
}
function sign_v2(string $method, string $path, string $query, string $site_key, string $kid, string $ts, string $nonce, string $body, string $secret): string {
    $s = implode("\n", ['RELAY-HMAC-SHA256-V2', strtoupper($method), $path, canonical_query($query), $site_key, $kid, $ts, $nonce, hash('sha256', $body)]);
    return 'v2=' . hash_hmac('sha256', $s, $secret);
}
// Token::mint()
function mint_hs256(array $claims, string $secret): string {
    $h = b64url(json_encode(['alg' => 'HS256', 'typ' => 'JWT']));
    $p = b64url(json_encode($claims));
    return "$h.$p." . b64url(hash_hmac('sha256', "$h.$p", $secret, true));
}
function mint_eddsa(array $claims, string $sk): string {
    $h = b64url(json_encode(['alg' => 'EdDSA', 'typ' => 'JWT']));
    $p = b64url(json_encode($claims));
    return "$h.$p." . b64url(sodium_crypto_sign_detached("$h.$p", $sk));
}
function verify_hs256(string $jwt, string $secret) {
    [$h, $p, $s] = explode('.', $jwt);
    $header = json_decode(b64url_dec($h), true);
    if (($header['alg'] ?? '') !== 'HS256') return null;
    if (!hash_equals(b64url(hash_hmac('sha256', "$h.$p", $secret, true)), $s)) return null;
    return json_decode(b64url_dec($p), true);
}
function verify_eddsa(string $jwt, string $pk) {
    [$h, $p, $s] = explode('.', $jwt);
    if ((json_decode(b64url_dec($h), true)['alg'] ?? '') !== 'EdDSA') return null;
    if (!sodium_crypto_sign_verify_detached(b64url_dec($s), "$h.$p", $pk)) return null;
    return json_decode(b64url_dec($p), true);
}

$out = [];
switch ($in['mode']) {
case 'produce':
    $key = encryption_key($in['seed'], $in['site_key']);
    $out['key_b64'] = base64_encode($key);
    $out['envelope_v1'] = seal_v1($in['event'], $in['data'], $key);
    $plain = json_encode(['event' => $in['event'], 'data' => $in['data']]);
    $v2key = base64_decode($in['v2_key_b64']);
    $out['envelope_v2_gcm'] = seal_v2($plain, $v2key, $in['kid'], $in['channel'], 'A256GCM');
    $out['envelope_v2_xc20p'] = seal_v2($plain, $v2key, $in['kid'], $in['channel'], 'XC20P');
    $out['plaintext'] = $plain;
    $ts = (string) round(microtime(true) * 1000);
    $out['ts'] = $ts;
    $out['sign_v1'] = sign_v1($in['body'], $ts, $in['secret']);
    $nonce = b64url(random_bytes(18));
    $out['nonce'] = $nonce;
    $out['sign_v2'] = sign_v2('POST', '/publish', $in['query'], $in['site_key'], $in['kid'], $ts, $nonce, $in['body'], $in['secret']);
    $out['jwt_hs256'] = mint_hs256($in['claims'], $in['jwt_secret']);
    $kp = sodium_crypto_sign_seed_keypair(base64_decode($in['ed25519_seed_b64']));
    $out['jwt_eddsa'] = mint_eddsa($in['claims'], sodium_crypto_sign_secretkey($kp));
    break;
case 'consume':
    $key = encryption_key($in['seed'], $in['site_key']);
    $out['key_b64'] = base64_encode($key);
    $out['open_v1'] = open_v1($in['envelope_v1'], $key);
    $v2key = base64_decode($in['v2_key_b64']);
    $out['open_v2_gcm'] = open_v2($in['envelope_v2_gcm'], $v2key, $in['channel']);
    $out['open_v2_xc20p'] = open_v2($in['envelope_v2_xc20p'], $v2key, $in['channel']);
    $out['open_v2_wrong_channel'] = open_v2($in['envelope_v2_gcm'], $v2key, $in['channel'] . 'x');
    $out['sign_v1_ok'] = hash_equals(sign_v1($in['body'], $in['ts'], $in['secret']), $in['sign_v1']);
    $out['sign_v2_ok'] = hash_equals(sign_v2('POST', '/publish', $in['query'], $in['site_key'], $in['kid'], $in['ts'], $in['nonce'], $in['body'], $in['secret']), $in['sign_v2']);
    $out['jwt_hs256_claims'] = verify_hs256($in['jwt_hs256'], $in['jwt_secret']);
    $out['jwt_eddsa_claims'] = verify_eddsa($in['jwt_eddsa'], base64_decode($in['ed25519_public_b64']));
    break;
}
echo json_encode($out, JSON_UNESCAPED_SLASHES);
