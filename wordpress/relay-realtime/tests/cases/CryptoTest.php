<?php
/**
 * The plugin's crypto against relayctl and relayd.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Config;
use RelayRealtime\Crypto;

/**
 * Envelopes open in relayctl, signatures are accepted by relayd (and tampering refused), tokens verify in relayctl.
 */
final class CryptoTest extends Relay_Test_Case {

	public function test_v1_key_matches_relayctl_derive_key() {
		$site = self::site();
		list( $rc, $out ) = self::relayctl( array( 'derive-key', '--seed', Config::seed(), '--site-key', $site['site_key'] ) );
		$this->assertSame( 0, $rc );
		$this->assertSame( trim( $out ), base64_encode( Config::v1_key() ) );
		list( $rc, $out ) = self::relayctl( array( 'derive-key', '--seed', Config::seed(), '--site-key', $site['site_key'], '--kid', 'p1' ) );
		$this->assertSame( 0, $rc );
		$this->assertSame( trim( $out ), base64_encode( Config::v2_key( 'p1' ) ) );
	}

	public function test_envelope_v1_opens_in_relayctl() {
		$key   = Config::v1_key();
		$plain = Crypto::plaintext( 'post.updated', array( 'post_id' => 7, 'title' => 'Grüße / "quotes"' ) );
		$env   = Crypto::seal_v1( $plain, $key );
		list( $rc, $out, $err ) = self::relayctl( array( 'open', '--key-base64=' . base64_encode( $key ) ), wp_json_encode( $env ) );
		$this->assertSame( 0, $rc, $err );
		$this->assertSame( json_decode( $plain, true ), json_decode( $out, true ) );
	}

	public function test_envelope_v2_opens_only_on_its_channel() {
		$key     = Config::v2_key( 'p1' );
		$channel = self::ch( 'events' );
		foreach ( array( 'A256GCM', 'XC20P' ) as $alg ) {
			$plain = Crypto::plaintext( 'x', array( 'alg' => $alg ) );
			$env   = Crypto::seal_v2( $plain, $key, 'p1', $channel, $alg );
			list( $rc, $out, $err ) = self::relayctl( array( 'open', '--key-base64=' . base64_encode( $key ), '--channel', $channel, '--kid', 'p1' ), wp_json_encode( $env ) );
			$this->assertSame( 0, $rc, $alg . ': ' . $err );
			$this->assertSame( $plain, $out );
			list( $rc ) = self::relayctl( array( 'open', '--key-base64=' . base64_encode( $key ), '--channel', self::ch( 'other' ) ), wp_json_encode( $env ) );
			$this->assertNotSame( 0, $rc, "$alg envelope must not open on another channel" );
		}
		// And the reverse: relayctl seals, the plugin opens.
		list( $rc, $out ) = self::relayctl( array( 'seal', '--key-base64=' . base64_encode( $key ), '--channel', $channel, '--kid', 'p1', '--event', 'y' ), '{"n":1}' );
		$this->assertSame( 0, $rc );
		$this->assertSame( array( 'event' => 'y', 'data' => array( 'n' => 1 ) ), json_decode( (string) Crypto::open( json_decode( $out, true ), $key, $channel ), true ) );
		$this->assertFalse( Crypto::open( json_decode( $out, true ), $key, self::ch( 'other' ) ) );
	}

	public function test_signature_v1_equals_relayctl_sign_for_the_same_timestamp() {
		$site = self::site();
		$body = '{"channel":"events","event":"ping","data":{"a":"b/c"}}';
		$file = tempnam( sys_get_temp_dir(), 'rrt' );
		file_put_contents( $file, $body );
		$ts = Crypto::now_ms();
		list( $rc, $out, $err ) = self::relayctl( array( 'sign', '--key', $site['site_key'], '--secret', $site['publish_secret'], '--body-file', $file, '--scheme', 'v1', '--timestamp', $ts, '--json' ) );
		unlink( $file );
		$this->assertSame( 0, $rc, $err );
		$theirs = json_decode( $out, true );
		$mine   = Crypto::sign_v1( $body, $site['site_key'], $site['publish_secret'], $ts );
		$this->assertNotEmpty( $theirs );
		$flat = array();
		array_walk_recursive(
			$theirs,
			static function ( $v, $k ) use ( &$flat ) {
				$flat[ strtolower( (string) $k ) ] = $v;
			}
		);
		$this->assertSame( $mine['X-WP-Signal-Sign'], $flat['x-wp-signal-sign'] ?? null, 'relayctl sign output: ' . $out );
	}

	/**
	 * Sends a raw signed publish with given headers.
	 *
	 * @param string $body    Body.
	 * @param array  $headers Headers.
	 * @return array{0:int,1:array}
	 */
	private static function post( $body, $headers ) {
		$r = wp_remote_post(
			getenv( 'RRT_RELAY_URL' ) . '/publish',
			array(
				'body'    => $body,
				'headers' => $headers + array( 'Content-Type' => 'application/json' ),
				'timeout' => 5,
			)
		);
		return array( (int) wp_remote_retrieve_response_code( $r ), (array) json_decode( wp_remote_retrieve_body( $r ), true ) );
	}

	public function test_relayd_accepts_both_signatures_and_refuses_tampering() {
		$site = self::site();
		$body = (string) wp_json_encode( array( 'channel' => self::ch( 'events' ), 'event' => 'sig.test', 'data' => array( 'n' => 1 ) ) );

		list( $status ) = self::post( $body, Crypto::sign_v1( $body, $site['site_key'], $site['publish_secret'] ) );
		$this->assertSame( 200, $status, 'v1 accepted' );

		$v2 = Crypto::sign_v2( 'POST', '/publish', '', $body, $site['site_key'], $site['publish_key_id'], $site['publish_secret'] );
		list( $status ) = self::post( $body, $v2 );
		$this->assertSame( 200, $status, 'v2 accepted' );
		list( $status, $json ) = self::post( $body, $v2 );
		$this->assertSame( 401, $status, 'v2 nonce replay refused' );
		$this->assertSame( 'replayed_request', $json['error'] );

		$v2 = Crypto::sign_v2( 'POST', '/publish', '', $body, $site['site_key'], $site['publish_key_id'], $site['publish_secret'] );
		list( $status, $json ) = self::post( $body . ' ', $v2 );
		$this->assertSame( 401, $status );
		$this->assertSame( 'invalid_signature', $json['error'] );

		list( $status, $json ) = self::post( $body, Crypto::sign_v1( $body, $site['site_key'], str_repeat( '0', 64 ) ) );
		$this->assertSame( 'invalid_signature', $json['error'] );
	}

	public function test_tokens_verify_in_relayctl() {
		$site   = self::site();
		$claims = array( 'site_id' => Config::site_id(), 'user_id' => '5', 'v' => 2, 'iat' => time(), 'exp' => time() + 60, 'allowed_channel_prefixes' => array( self::ch( 'events' ) ) );
		list( $rc, $out, $err ) = self::relayctl( array( 'token', 'verify', '--secret', $site['jwt_secret'], Crypto::jwt_hs256( $claims, $site['jwt_secret'] ) ) );
		$this->assertSame( 0, $rc, $err );
		$this->assertSame( '5', json_decode( $out, true )['user_id'] );
		list( $rc ) = self::relayctl( array( 'token', 'verify', '--secret', $site['jwt_secret'] . 'x', Crypto::jwt_hs256( $claims, $site['jwt_secret'] ) ) );
		$this->assertNotSame( 0, $rc, 'wrong secret refused' );

		$seed = random_bytes( 32 );
		list( $rc, $out, $err ) = self::relayctl( array( 'token', 'verify', '--ed25519-public-key=' . Crypto::ed25519_public( $seed ), Crypto::jwt_eddsa( $claims, $seed ) ) );
		$this->assertSame( 0, $rc, $err );
		$this->assertSame( Config::site_id(), json_decode( $out, true )['site_id'] );
	}

	public function test_room_key_matches_the_protocol_vector_and_opens_its_sealed_payloads() {
		$v  = json_decode( (string) file_get_contents( dirname( __DIR__, 4 ) . '/protocol/vectors/yjs-e2e.json' ), true );
		$rk = $v['room_key'];
		$k  = \RelayRealtime\Crypto::room_key( $rk['seed'], $rk['site_key'], $rk['kid'], $rk['room'] );
		$this->assertSame( $rk['key_b64url'], rtrim( strtr( base64_encode( $k ), '+/', '-_' ), '=' ) );
		$other = \RelayRealtime\Crypto::room_key( $rk['seed'], $rk['site_key'], $rk['kid'], $v['sealing']['moved_room'] );
		$this->assertNotSame( $k, $other, 'one key per document' );
	}
}
