<?php
// Independent check of the crypto and JSON vectors with PHP (hash, openssl,
// sodium, json), written the way the wordsocket plugin does it. Nothing here
// is shared with gen.py.
//
//   php protocol/generate/crosscheck.php [protocol/vectors]
$dir = $argv[1] ?? __DIR__ . '/../vectors';
$load = fn($f) => json_decode(file_get_contents("$dir/$f"), true, 512, JSON_THROW_ON_ERROR);
$fail = 0; $ok = 0;
function check(bool $cond, string $what) {
    global $fail, $ok;
    if ($cond) { $ok++; } else { $fail++; fwrite(STDERR, "FAIL $what\n"); }
}
function b64url(string $b): string { return rtrim(strtr(base64_encode($b), '+/', '-_'), '='); }
function b64url_dec(string $s) { return base64_decode(strtr($s, '-_', '+/') . str_repeat('=', (4 - strlen($s) % 4) % 4), true); }

// ---------------------------------------------------------------- tokens
$t = $load('tokens.json');
$site = $t['site'];
$sk = sodium_crypto_sign_secretkey(sodium_crypto_sign_seed_keypair(hex2bin($site['ed25519_seed_hex'])));
$pk = hex2bin($site['ed25519_public_key_hex']);
check(bin2hex(sodium_crypto_sign_publickey(sodium_crypto_sign_seed_keypair(hex2bin($site['ed25519_seed_hex'])))) === $site['ed25519_public_key_hex'], 'ed25519 public key');
check($site['site_id'] === hash('sha256', 'site:' . $site['site_key']), 'site_id');
check($site['tenant_id'] === hash('sha256', 'tenant:' . $site['site_key']), 'tenant_id');

function verify_token(string $tok, array $keys, array $site, string $pk, int $now, int $leeway, int $max): array {
    if (strlen($tok) > $max) return ['tooLarge', 4001];
    $parts = explode('.', $tok);
    if (count($parts) !== 3) return ['malformed', 4001];
    [$h, $p, $s] = $parts;
    $payload = b64url_dec($p);
    // PHP's depth counts one more level than the protocol's 64.
    $claims = $payload === false ? null : json_decode($payload, true, 65);
    if (!is_array($claims)) return ['malformed', 4001];
    if (!isset($claims['site_id'])) return ['malformed(no site_id)', 4001];
    if ($claims['site_id'] !== $site['site_id']) return ['siteNotFound', 4003];
    $header = json_decode(b64url_dec($h), true, 4);
    if (!is_array($header) || !isset($header['alg'])) return ['malformed', 4001];
    $alg = $header['alg'];
    if (!in_array($alg, $keys, true)) return ["algorithmMismatch($alg)", 4001];
    if (isset($header['crit'])) return ['malformed', 4001];
    $sig = b64url_dec($s);
    $valid = $alg === 'HS256'
        ? hash_equals(hash_hmac('sha256', "$h.$p", $site['jwt_secret'], true), (string) $sig)
        : (strlen((string) $sig) === 64 && sodium_crypto_sign_verify_detached($sig, "$h.$p", $pk));
    if (!$valid) return ['badSignature', 4001];
    // Duplicate member names: PHP keeps the last one silently, so look for them in the raw payload.
    if (preg_match_all('/"([a-z_]+)":/', $payload, $m) && count($m[1]) !== count(array_unique($m[1]))) return ['malformed', 4001];
    foreach (['exp', 'nbf', 'iat'] as $c) if (isset($claims[$c]) && !is_int($claims[$c])) return ['malformed', 4001];
    if (!isset($claims['exp'])) return ['missingClaim(exp)', 4001];
    if ($now >= $claims['exp'] + $leeway) return ['expired', 4001];
    if (isset($claims['nbf']) && $now + $leeway < $claims['nbf']) return ['notYetValid', 4001];
    if (isset($claims['iat']) && $now + $leeway < $claims['iat']) return ['issuedInTheFuture', 4001];
    return ['valid', 0, $claims];
}
foreach ($t['cases'] as $c) {
    $r = verify_token($c['token'], $c['site_keys'], $site, $pk, $c['now'], $t['leeway_seconds'], $t['max_token_bytes']);
    $e = $c['expected'];
    if ($e['valid']) {
        check($r[0] === 'valid', "token {$c['name']}: expected valid, got {$r[0]}");
        if ($r[0] === 'valid') {
            $cl = $r[2];
            $g = $e['grant'];
            $expand = fn($x) => str_starts_with($x, 'site:') ? $x : "site:{$site['site_id']}:$x";
            $def = ["site:{$site['site_id']}:"];
            check($g['subscribe_prefixes'] === array_map($expand, $cl['allowed_channel_prefixes'] ?? $def), "token {$c['name']}: subscribe prefixes");
            check($g['publish_prefixes'] === array_map($expand, $cl['allowed_publish_prefixes'] ?? $def), "token {$c['name']}: publish prefixes");
            check($g['user_id'] === (string) ($cl['user_id'] ?? '0'), "token {$c['name']}: user_id");
            check($g['v'] === ($cl['v'] ?? 1), "token {$c['name']}: v");
        }
    } else {
        check($r[0] === $e['error'], "token {$c['name']}: expected {$e['error']}, got {$r[0]}");
        check($r[1] === $e['close_code'], "token {$c['name']}: close code");
    }
    // Re-mint byte for byte where the header and claims are given and the signature is meant to be good.
    if (isset($c['header'], $c['claims']) && in_array($c['header']['alg'], ['HS256', 'EdDSA'], true)
        && !in_array($c['name'], ['wrong_secret', 'payload_changed', 'eddsa_bad_signature', 'hs256_with_public_key_as_secret'], true)) {
        $h = b64url(json_encode($c['header'], JSON_UNESCAPED_SLASHES));
        $p = b64url(json_encode($c['claims'], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE));
        $sig = $c['header']['alg'] === 'HS256' ? hash_hmac('sha256', "$h.$p", $site['jwt_secret'], true) : sodium_crypto_sign_detached("$h.$p", $sk);
        check("$h.$p." . b64url($sig) === $c['token'], "token {$c['name']}: re-minted bytes");
    }
}

// ---------------------------------------------------------------- signatures
$s = $load('signatures.json');
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
$seen = [];
foreach ($s['cases'] as $c) {
    $r = $c['request']; $h = $r['headers']; $now = $s['now_ms']; $w = $s['window_ms'];
    $verdict = (function () use ($c, $r, $h, $s, $now, $w, &$seen) {
        if ($c['scheme'] === 'v1') {
            if (($h['X-WP-Signal-Key'] ?? '') !== $s['site']['site_key']) return [401, 'unknown_site_key'];
            $sig = $h['X-WP-Signal-Sign'];
            if (strlen($sig) !== 64 || !ctype_xdigit($sig)) return [401, 'invalid_signature'];
            $ts = $h['X-WP-Signal-Ts'] ?? '';
            if (!ctype_digit($ts)) return [400, 'malformed_request'];
            if ((int) $ts < $now - $w) return [401, 'stale_timestamp'];
            if ((int) $ts > $now + $w) return [401, 'future_timestamp'];
            $want = hash_hmac('sha256', $r['body'] . '.' . $ts, $s['site']['publish_secret']);
            return hash_equals($want, strtolower($sig)) ? [200, null] : [401, 'invalid_signature'];
        }
        if ($h['X-Relay-Key-Id'] !== $s['site']['publish_key_id']) return [401, 'unknown_site_key'];
        $ts = $h['X-Relay-Timestamp']; $nonce = $h['X-Relay-Nonce'];
        if (!ctype_digit($ts)) return [400, 'malformed_request'];
        if (strlen($nonce) < 16 || strlen($nonce) > 128) return [400, 'malformed_request'];
        if ((int) $ts < $now - $w) return [401, 'stale_timestamp'];
        if ((int) $ts > $now + $w) return [401, 'future_timestamp'];
        $str = implode("\n", ['RELAY-HMAC-SHA256-V2', strtoupper($r['method']), $r['path'], canonical_query($r['query']),
            $h['X-Relay-Key'], $h['X-Relay-Key-Id'], $ts, $nonce, hash('sha256', $r['body'])]);
        $want = 'v2=' . hash_hmac('sha256', $str, $s['site']['publish_secret']);
        if (!hash_equals($want, $h['X-Relay-Signature'])) return [401, 'invalid_signature'];
        if (isset($seen[$nonce])) return [401, 'replayed_request'];
        $seen[$nonce] = true;
        return [200, null];
    })();
    $e = $c['expected'];
    if ($e['valid']) check($verdict[0] === 200, "signature {$c['name']}: expected valid, got {$verdict[1]}");
    else check($verdict[0] === $e['status'] && $verdict[1] === $e['error'], "signature {$c['name']}: expected {$e['error']}, got " . ($verdict[1] ?? 'valid'));
    // The signed string and the signature the signer made.
    if ($c['scheme'] === 'v2') {
        $str = implode("\n", ['RELAY-HMAC-SHA256-V2', strtoupper($c['request']['method'] === 'POST' && $c['name'] === 'v2_method_lowercase' ? 'post' : ($c['name'] === 'v2_path_changed' ? 'POST' : $r['method'])),
            $c['name'] === 'v2_path_changed' ? '/publish' : $r['path'], canonical_query($r['query']), $h['X-Relay-Key'], $h['X-Relay-Key-Id'],
            $h['X-Relay-Timestamp'], $h['X-Relay-Nonce'], $c['body_sha256']]);
        check($str === $c['signed_string'], "signature {$c['name']}: signed string");
        check(canonical_query($r['query']) === $c['canonical_query'], "signature {$c['name']}: canonical query");
        if (!in_array($c['name'], ['v2_malformed_hex', 'v2_missing_prefix'], true))
            check('v2=' . hash_hmac('sha256', $c['signed_string'], $c['signed_secret']) === $h['X-Relay-Signature'], "signature {$c['name']}: signature");
    } elseif ($c['signed_string'] !== null && !in_array($c['name'], ['v1_uppercase_hex', 'v1_malformed_hex', 'v1_short_signature', 'v1_dummy_probe', 'v1_dummy_probe_unknown_site', 'v1_missing_timestamp', 'v1_timestamp_seconds_fraction'], true)) {
        check(hash_hmac('sha256', $c['signed_string'], $c['signed_secret']) === $h['X-WP-Signal-Sign'], "signature {$c['name']}: signature");
    }
}

// ---------------------------------------------------------------- envelopes
$e = $load('envelopes.json');
$k1 = hash_hkdf('sha256', $e['seed'], 32, 'wpsignal-v1', $e['site_key']);
$k2 = hash_hkdf('sha256', $e['seed'], 32, 'relay-envelope-v2:' . $e['keys']['v2']['kid'], $e['site_key']);
check(base64_encode($k1) === $e['keys']['v1']['key_b64'], 'envelope key v1');
check(base64_encode($k2) === $e['keys']['v2']['key_b64'], 'envelope key v2');
$keys = ['v1' => $k1, 'v2' => $k2];
function aad(string $alg, string $kid, string $ch): string {
    return 'relay-envelope-v2' . pack('C', strlen($alg)) . $alg . pack('C', strlen($kid)) . $kid . pack('n', strlen($ch)) . $ch;
}
foreach ($e['cases'] as $c) {
    $env = $c['envelope']; $key = $keys[$c['key']]; $ch = $c['open']['channel'];
    $raw = base64_decode($env['p'], true);
    if (isset($c['nonce_hex'])) {
        // Seal again with the same nonce: byte for byte.
        $n = hex2bin($c['nonce_hex']);
        $plain = $c['plaintext'];
        $data = json_decode($plain, true);
        check(json_encode($data) === $plain, "envelope {$c['name']}: plaintext is PHP json_encode output");
        if ($env['v'] === 1) {
            $tag = ''; $ct = openssl_encrypt($plain, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $n, $tag, '', 16);
            $p = $n . $ct . $tag;
        } elseif ($env['alg'] === 'A256GCM') {
            $tag = ''; $ct = openssl_encrypt($plain, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $n, $tag, aad('A256GCM', $env['kid'], $ch), 16);
            $p = $n . $ct . $tag;
            check(bin2hex(aad('A256GCM', $env['kid'], $ch)) === $c['aad_hex'], "envelope {$c['name']}: AAD");
        } else {
            $p = $n . sodium_crypto_aead_xchacha20poly1305_ietf_encrypt($plain, aad('XC20P', $env['kid'], $ch), $n, $key);
            check(bin2hex(aad('XC20P', $env['kid'], $ch)) === $c['aad_hex'], "envelope {$c['name']}: AAD");
        }
        check(base64_encode($p) === $env['p'], "envelope {$c['name']}: sealed bytes");
        $body = json_encode(['channel' => $c['published']['channel'], 'event' => 'encrypted', 'data' => $env]);
        check($body === $c['published']['body'], "envelope {$c['name']}: published body (json_encode)");
        check(json_encode($env) === $c['published']['delivered_data'], "envelope {$c['name']}: delivered data");
        if (isset($c['published']['headers_v1'])) {
            $hd = $c['published']['headers_v1'];
            check(hash_hmac('sha256', $body . '.' . $hd['X-WP-Signal-Ts'], $s['site']['publish_secret']) === $hd['X-WP-Signal-Sign'], "envelope {$c['name']}: v1 signature of the body");
        }
    }
    // Open.
    if ($env['v'] === 1) {
        $out = openssl_decrypt(substr($raw, 12, -16), 'aes-256-gcm', $key, OPENSSL_RAW_DATA, substr($raw, 0, 12), substr($raw, -16), '');
    } elseif ($env['alg'] === 'A256GCM') {
        $out = strlen($raw) < 28 ? false : openssl_decrypt(substr($raw, 12, -16), 'aes-256-gcm', $key, OPENSSL_RAW_DATA, substr($raw, 0, 12), substr($raw, -16), aad($env['alg'], $env['kid'], $ch));
    } else {
        try { $out = sodium_crypto_aead_xchacha20poly1305_ietf_decrypt(substr($raw, 24), aad($env['alg'], $env['kid'], $ch), substr($raw, 0, 24), $key); }
        catch (SodiumException $x) { $out = false; }
    }
    check(($out !== false) === ($c['open']['expected'] === 'ok'), "envelope {$c['name']}: open {$c['open']['expected']}");
}

// ---------------------------------------------------------------- JSON (json_decode, depth 64; duplicates are invisible to PHP)
$j = $load('json.json');
foreach ($j['cases'] as $c) {
    if ($c['rule'] === 'duplicate_key' && !$c['valid']) continue;
    $raw = hex2bin($c['input_hex']);
    // PHP's depth counts one more level than the protocol's (64 nested arrays need depth 65).
    json_decode($raw, false, $j['max_depth'] + 1);
    $valid = json_last_error() === JSON_ERROR_NONE && $raw !== '' && !str_starts_with($raw, "\xEF\xBB\xBF");
    check($valid === $c['valid'], "json {$c['name']}: php says " . ($valid ? 'valid' : 'invalid') . ' (' . json_last_error_msg() . ')');
}


// ---------------------------------------------------------------- encrypted Yjs rooms: room key (as the plugin derives it) and sealed payloads
$x = $load('yjs-e2e.json');
$rk = $x['room_key'];
$room_key = hash_hkdf('sha256', $rk['seed'], 32, $rk['info'], $rk['site_key']);
check(b64url($room_key) === $rk['key_b64url'], 'e2e room key');
$sl = $x['sealing'];
foreach ($sl['seals'] as $c) {
    $raw = hex2bin($c['sealed_hex']);
    $hlen = strlen($raw) - 12 - 16 - strlen(hex2bin($c['plaintext_hex']));
    $header = substr($raw, 0, $hlen);
    $ad = "relay-realtime/yjs-e2e/1\0" . $sl['site_id'] . "\0" . $sl['room'] . "\0" . $header;
    check(bin2hex($ad) === $c['associated_data_hex'], "e2e {$c['kind']}: associated data");
    $body = substr($raw, $hlen + 12);
    $out = openssl_decrypt(substr($body, 0, -16), 'aes-256-gcm', $room_key, OPENSSL_RAW_DATA, substr($raw, $hlen, 12), substr($body, -16), $ad);
    check($out !== false && bin2hex($out) === $c['plaintext_hex'], "e2e {$c['kind']}: opens to the plaintext");
    $moved = "relay-realtime/yjs-e2e/1\0" . $sl['site_id'] . "\0" . $sl['moved_room'] . "\0" . $header;
    check(openssl_decrypt(substr($body, 0, -16), 'aes-256-gcm', $room_key, OPENSSL_RAW_DATA, substr($raw, $hlen, 12), substr($body, -16), $moved) === false, "e2e {$c['kind']}: moved to another room does not open");
}

printf("crosscheck.php: %d checks passed, %d failed\n", $ok, $fail);
exit($fail ? 1 : 0);
