<?php
/**
 * Envelopes, publish signatures and connection tokens (Docs/security.md).
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Stateless cryptography shared by the publisher and the token route.
 *
 * Everything here is byte-compatible with relayd (RelayCrypto) and the
 * wordsocket plugin: envelope v1/v2, publish signatures v1/v2, HS256/EdDSA JWTs.
 *
 * @since 0.1.0
 */
final class Crypto {

	const V1_INFO = 'wpsignal-v1';
	const V2_INFO = 'relay-envelope-v2:';

	/**
	 * HKDF info prefix of encrypted Yjs room keys.
	 */
	const ROOM_INFO = 'relay-realtime/yjs-e2e/1:';
	const V2_AAD  = 'relay-envelope-v2';

	/**
	 * Base64url without padding.
	 *
	 * @param string $bytes Raw bytes.
	 * @return string
	 */
	public static function b64url( $bytes ) {
		return rtrim( strtr( base64_encode( $bytes ), '+/', '-_' ), '=' ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
	}

	/**
	 * Decodes base64url (padding optional). Returns false on bad input.
	 *
	 * @param string $text Encoded text.
	 * @return string|false
	 */
	public static function b64url_decode( $text ) {
		$text = strtr( (string) $text, '-_', '+/' );
		$pad  = ( 4 - strlen( $text ) % 4 ) % 4;
		return base64_decode( $text . str_repeat( '=', $pad ), true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode
	}

	/**
	 * Envelope v1 key: HKDF-SHA256(seed, salt = site key, info = "wpsignal-v1").
	 *
	 * @param string $seed     Input keying material (the WordPress salts).
	 * @param string $site_key Site key as stored.
	 * @return string 32 raw bytes.
	 */
	public static function v1_key( $seed, $site_key ) {
		return hash_hkdf( 'sha256', $seed, 32, self::V1_INFO, $site_key );
	}

	/**
	 * Envelope v2 key for a key id: HKDF-SHA256(seed, salt = site key, info = "relay-envelope-v2:" . kid).
	 *
	 * @param string $seed     Input keying material.
	 * @param string $site_key Site key.
	 * @param string $kid      Key id.
	 * @return string 32 raw bytes.
	 */
	public static function v2_key( $seed, $site_key, $kid ) {
		return hash_hkdf( 'sha256', $seed, 32, self::V2_INFO . $kid, $site_key );
	}

	/**
	 * Key of an encrypted Yjs room: HKDF-SHA256(seed, salt = site key,
	 * info = "relay-realtime/yjs-e2e/1:" . kid . ":" . room). One key per document and key id.
	 *
	 * @param string $seed     Input keying material.
	 * @param string $site_key Site key.
	 * @param string $kid      Key id.
	 * @param string $room     Room name (`postType/{type}:{id}`).
	 * @return string 32 raw bytes.
	 */
	public static function room_key( $seed, $site_key, $kid, $room ) {
		return hash_hkdf( 'sha256', $seed, 32, self::ROOM_INFO . $kid . ':' . $room, $site_key );
	}

	/**
	 * Plaintext of a sealed event, as the wordsocket plugin builds it.
	 *
	 * @param string $event Event name.
	 * @param mixed  $data  JSON-encodable data.
	 * @return string
	 */
	public static function plaintext( $event, $data ) {
		return (string) wp_json_encode(
			array(
				'event' => $event,
				'data'  => $data,
			)
		);
	}

	/**
	 * Seals an envelope v1 (AES-256-GCM, no associated data).
	 *
	 * @param string $plaintext Plaintext JSON.
	 * @param string $key       32-byte key.
	 * @return array{v:int,p:string}
	 */
	public static function seal_v1( $plaintext, $key ) {
		$iv  = random_bytes( 12 );
		$tag = '';
		$ct  = openssl_encrypt( $plaintext, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv, $tag, '', 16 );
		return array(
			'v' => 1,
			'p' => base64_encode( $iv . $ct . $tag ), // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
		);
	}

	/**
	 * Associated data of envelope v2: every field length-prefixed.
	 *
	 * @param string $alg     A256GCM or XC20P.
	 * @param string $kid     Key id.
	 * @param string $channel Full channel name site:{site_id}:{name}.
	 * @return string
	 */
	public static function v2_aad( $alg, $kid, $channel ) {
		return self::V2_AAD . pack( 'C', strlen( $alg ) ) . $alg . pack( 'C', strlen( $kid ) ) . $kid . pack( 'n', strlen( $channel ) ) . $channel;
	}

	/**
	 * Seals an envelope v2, bound to the full channel name and key id.
	 *
	 * @param string $plaintext Plaintext JSON.
	 * @param string $key       32-byte key.
	 * @param string $kid       Key id (1–255 bytes).
	 * @param string $channel   Full channel name.
	 * @param string $alg       A256GCM (default) or XC20P.
	 * @return array{v:int,alg:string,kid:string,p:string}
	 */
	public static function seal_v2( $plaintext, $key, $kid, $channel, $alg = 'A256GCM' ) {
		$aad = self::v2_aad( $alg, $kid, $channel );
		if ( 'XC20P' === $alg ) {
			$nonce = random_bytes( SODIUM_CRYPTO_AEAD_XCHACHA20POLY1305_IETF_NPUBBYTES );
			$raw   = $nonce . sodium_crypto_aead_xchacha20poly1305_ietf_encrypt( $plaintext, $aad, $nonce, $key );
		} else {
			$alg = 'A256GCM';
			$iv  = random_bytes( 12 );
			$tag = '';
			$ct  = openssl_encrypt( $plaintext, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv, $tag, $aad, 16 );
			$raw = $iv . $ct . $tag;
		}
		return array(
			'v'   => 2,
			'alg' => $alg,
			'kid' => (string) $kid,
			'p'   => base64_encode( $raw ), // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
		);
	}

	/**
	 * Opens an envelope (v1, or v2 bound to $channel). Returns the plaintext or false.
	 *
	 * @param array  $envelope Envelope fields.
	 * @param string $key      32-byte key.
	 * @param string $channel  Full channel name (v2 only).
	 * @return string|false
	 */
	public static function open( $envelope, $key, $channel = '' ) {
		if ( ! is_array( $envelope ) || ! isset( $envelope['p'] ) || ! is_string( $envelope['p'] ) ) {
			return false;
		}
		$raw = base64_decode( $envelope['p'], true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode
		if ( false === $raw || strlen( $raw ) < 28 ) {
			return false;
		}
		$version = isset( $envelope['v'] ) ? (int) $envelope['v'] : 0;
		if ( 1 === $version ) {
			return openssl_decrypt( substr( $raw, 12, -16 ), 'aes-256-gcm', $key, OPENSSL_RAW_DATA, substr( $raw, 0, 12 ), substr( $raw, -16 ) );
		}
		if ( 2 !== $version || ! isset( $envelope['alg'], $envelope['kid'] ) ) {
			return false;
		}
		$aad = self::v2_aad( (string) $envelope['alg'], (string) $envelope['kid'], $channel );
		if ( 'A256GCM' === $envelope['alg'] ) {
			return openssl_decrypt( substr( $raw, 12, -16 ), 'aes-256-gcm', $key, OPENSSL_RAW_DATA, substr( $raw, 0, 12 ), substr( $raw, -16 ), $aad );
		}
		if ( 'XC20P' === $envelope['alg'] && strlen( $raw ) >= 40 ) {
			try {
				return sodium_crypto_aead_xchacha20poly1305_ietf_decrypt( substr( $raw, 24 ), $aad, substr( $raw, 0, 24 ), $key );
			} catch ( \SodiumException $e ) {
				return false;
			}
		}
		return false;
	}

	/**
	 * Current Unix time in milliseconds, as a string of digits.
	 *
	 * @return string
	 */
	public static function now_ms() {
		return (string) (int) round( microtime( true ) * 1000 );
	}

	/**
	 * Publish signature v1 headers: HMAC-SHA256(secret string, body . "." . ts).
	 *
	 * @param string      $body     Exact body bytes.
	 * @param string      $site_key Site key.
	 * @param string      $secret   Publish secret (string bytes, not hex-decoded).
	 * @param string|null $ts       Timestamp in ms (now when null).
	 * @return array<string,string>
	 */
	public static function sign_v1( $body, $site_key, $secret, $ts = null ) {
		$ts = null === $ts ? self::now_ms() : (string) $ts;
		return array(
			'X-WP-Signal-Key'  => $site_key,
			'X-WP-Signal-Ts'   => $ts,
			'X-WP-Signal-Sign' => hash_hmac( 'sha256', $body . '.' . $ts, $secret ),
		);
	}

	/**
	 * Canonical query of signature v2 (rawurlencode of decoded parts, sorted).
	 *
	 * @param string $query Raw query string without "?".
	 * @return string
	 */
	public static function canonical_query( $query ) {
		if ( '' === (string) $query ) {
			return '';
		}
		$pairs = array();
		foreach ( explode( '&', $query ) as $part ) {
			if ( '' === $part ) {
				continue;
			}
			$kv      = explode( '=', $part, 2 );
			$pairs[] = array( rawurlencode( rawurldecode( $kv[0] ) ), rawurlencode( rawurldecode( isset( $kv[1] ) ? $kv[1] : '' ) ) );
		}
		usort(
			$pairs,
			static function ( $a, $b ) {
				$c = strcmp( $a[0], $b[0] );
				return 0 !== $c ? $c : strcmp( $a[1], $b[1] );
			}
		);
		return implode(
			'&',
			array_map(
				static function ( $p ) {
					return $p[0] . '=' . $p[1];
				},
				$pairs
			)
		);
	}

	/**
	 * The string signature v2 covers.
	 *
	 * @param string $method   HTTP method.
	 * @param string $path     Path as sent, without query.
	 * @param string $query    Raw query.
	 * @param string $site_key Site key.
	 * @param string $kid      Publish secret key id.
	 * @param string $ts       Timestamp ms.
	 * @param string $nonce    Nonce.
	 * @param string $body     Body bytes.
	 * @return string
	 */
	public static function v2_string_to_sign( $method, $path, $query, $site_key, $kid, $ts, $nonce, $body ) {
		return implode(
			"\n",
			array( 'RELAY-HMAC-SHA256-V2', strtoupper( $method ), $path, self::canonical_query( $query ), $site_key, $kid, $ts, $nonce, hash( 'sha256', $body ) )
		);
	}

	/**
	 * Publish signature v2 headers (method, path, query, key id, nonce and body hash signed).
	 *
	 * @param string      $method   HTTP method.
	 * @param string      $path     Path without query.
	 * @param string      $query    Raw query.
	 * @param string      $body     Body bytes.
	 * @param string      $site_key Site key.
	 * @param string      $kid      Publish secret key id.
	 * @param string      $secret   Publish secret.
	 * @param string|null $ts       Timestamp ms (now when null).
	 * @param string|null $nonce    Nonce (random when null).
	 * @return array<string,string>
	 */
	public static function sign_v2( $method, $path, $query, $body, $site_key, $kid, $secret, $ts = null, $nonce = null ) {
		$ts    = null === $ts ? self::now_ms() : (string) $ts;
		$nonce = null === $nonce ? self::b64url( random_bytes( 18 ) ) : (string) $nonce;
		$sig   = hash_hmac( 'sha256', self::v2_string_to_sign( $method, $path, $query, $site_key, $kid, $ts, $nonce, $body ), $secret );
		return array(
			'X-Relay-Key'       => $site_key,
			'X-Relay-Key-Id'    => $kid,
			'X-Relay-Timestamp' => $ts,
			'X-Relay-Nonce'     => $nonce,
			'X-Relay-Signature' => 'v2=' . $sig,
		);
	}

	/**
	 * Compact JWS, HS256 with the secret string's bytes.
	 *
	 * @param array  $claims Claims.
	 * @param string $secret JWT secret.
	 * @return string
	 */
	public static function jwt_hs256( $claims, $secret ) {
		$h = self::b64url( (string) wp_json_encode( array( 'alg' => 'HS256', 'typ' => 'JWT' ) ) );
		$p = self::b64url( (string) wp_json_encode( $claims, JSON_UNESCAPED_SLASHES ) );
		return $h . '.' . $p . '.' . self::b64url( hash_hmac( 'sha256', $h . '.' . $p, $secret, true ) );
	}

	/**
	 * Compact JWS, EdDSA (Ed25519) with a 32-byte seed.
	 *
	 * @param array  $claims Claims.
	 * @param string $seed   32-byte Ed25519 seed.
	 * @return string
	 */
	public static function jwt_eddsa( $claims, $seed ) {
		$pair = sodium_crypto_sign_seed_keypair( $seed );
		$h    = self::b64url( (string) wp_json_encode( array( 'alg' => 'EdDSA', 'typ' => 'JWT' ) ) );
		$p    = self::b64url( (string) wp_json_encode( $claims, JSON_UNESCAPED_SLASHES ) );
		return $h . '.' . $p . '.' . self::b64url( sodium_crypto_sign_detached( $h . '.' . $p, sodium_crypto_sign_secretkey( $pair ) ) );
	}

	/**
	 * Public key (base64url) of an Ed25519 seed, for registering with relayd.
	 *
	 * @param string $seed 32-byte seed.
	 * @return string
	 */
	public static function ed25519_public( $seed ) {
		return self::b64url( sodium_crypto_sign_publickey( sodium_crypto_sign_seed_keypair( $seed ) ) );
	}
}
