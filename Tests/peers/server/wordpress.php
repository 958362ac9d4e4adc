<?php
// WordPress's side of the wordsocket contract, written the way the plugin does it
// (Token::mint, Config::encryption_key, Publisher::encrypt/sign/publish) with PHP's
// own hash, openssl and stream functions. Used by the relayd integration tests.
// Input: one JSON object on stdin {mode, ...}. Output: one JSON object on stdout.
$in = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);

function b64url(string $b): string { return rtrim(strtr(base64_encode($b), '+/', '-_'), '='); }

// Token::mint(): HS256 over the per-site jwt_secret, 300 s lifetime.
function mint(string $site_key, string $jwt_secret, string $user_id, array $read, array $publish): string {
    $site_id = hash('sha256', 'site:' . $site_key);
    $now = time();
    $claims = [
        'tenant_id' => hash('sha256', 'tenant:' . $site_key),
        'site_id' => $site_id,
        'user_id' => $user_id,
        'allowed_channel_prefixes' => $read,
        'allowed_publish_prefixes' => $publish,
        'v' => 2,
        'iat' => $now,
        'exp' => $now + 300,
    ];
    $h = b64url(json_encode(['alg' => 'HS256', 'typ' => 'JWT']));
    $p = b64url(json_encode($claims));
    return $h . '.' . $p . '.' . b64url(hash_hmac('sha256', $h . '.' . $p, $jwt_secret, true));
}

// Config::encryption_key()
function encryption_key(string $seed, string $site_key): string {
    return hash_hkdf('sha256', $seed, 32, 'wpsignal-v1', $site_key);
}

// Publisher::encrypt()
function seal(string $event, $data, string $key): array {
    $plain = json_encode(['event' => $event, 'data' => $data]);
    $iv = random_bytes(12);
    $tag = '';
    $ct = openssl_encrypt($plain, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv, $tag, '', 16);
    return ['v' => 1, 'p' => base64_encode($iv . $ct . $tag)];
}

function open_envelope(array $env, string $key) {
    $raw = base64_decode($env['p'], true);
    return openssl_decrypt(substr($raw, 12, -16), 'aes-256-gcm', $key, OPENSSL_RAW_DATA, substr($raw, 0, 12), substr($raw, -16));
}

// Publisher::publish(): json_encode the body (slashes escaped, as PHP does by default),
// sign the exact bytes sent, POST with a 2 s timeout.
function publish(string $url, string $site_key, string $secret, string $channel, array $envelope): array {
    $body = json_encode(['channel' => $channel, 'event' => 'encrypted', 'data' => $envelope]);
    $ts = (string) round(microtime(true) * 1000);
    $sig = hash_hmac('sha256', $body . '.' . $ts, $secret);
    $ctx = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => "Content-Type: application/json\r\nX-WP-Signal-Key: $site_key\r\nX-WP-Signal-Ts: $ts\r\nX-WP-Signal-Sign: $sig\r\n",
        'content' => $body,
        'timeout' => 2,
        'ignore_errors' => true,
    ]]);
    $resp = file_get_contents($url . '/publish', false, $ctx);
    $status = isset($http_response_header[0]) ? (int) explode(' ', $http_response_header[0])[1] : 0;
    return ['status' => $status, 'response' => $resp, 'body_sent' => $body];
}

$out = [];
switch ($in['mode']) {
case 'mint':
    $out['token'] = mint($in['site_key'], $in['jwt_secret'], $in['user_id'] ?? '1', $in['read'], $in['publish'] ?? []);
    break;
case 'publish':
    $key = encryption_key($in['seed'], $in['site_key']);
    // Seal until the base64 holds a '/', which json_encode sends as '\/': then a relay that
    // re-serialized `data` would be caught (a '/' appears in ~95% of seals; the IV is random).
    do { $env = seal($in['event'], $in['data'], $key); } while (strpos($env['p'], '/') === false);
    $out = publish($in['url'], $in['site_key'], $in['publish_secret'], $in['channel'], $env);
    $out['envelope_json'] = json_encode($env);
    break;
case 'open':
    $key = encryption_key($in['seed'], $in['site_key']);
    $plain = open_envelope(json_decode($in['envelope_json'], true), $key);
    $out['plain'] = $plain === false ? null : json_decode($plain, true);
    break;
}
echo json_encode($out);
