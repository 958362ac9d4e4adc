<?php
/**
 * The REST token route, checked by relayd accepting and refusing subscriptions.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Config;

/**
 * Tokens carry exactly the grants of the user.
 */
final class TokenTest extends Relay_Test_Case {

	/**
	 * Requests a token as the current user.
	 *
	 * @param array $params  Parameters.
	 * @param bool  $nonce   Whether to send a valid nonce.
	 * @return WP_REST_Response
	 */
	private static function token( $params = array(), $nonce = true ) {
		return self::rest( 'POST', '/relay-realtime/v1/token', $params, $nonce ? array( 'X-WP-Nonce' => wp_create_nonce( 'wp_rest' ) ) : array() );
	}

	/**
	 * Claims of a token (verified by relayctl with the site's secret).
	 *
	 * @param string $token Token.
	 * @return array
	 */
	private function claims( $token ) {
		list( $rc, $out, $err ) = self::relayctl( array( 'token', 'verify', '--secret', self::site()['jwt_secret'], $token ) );
		$this->assertSame( 0, $rc, $err );
		return json_decode( $out, true );
	}

	public function test_anonymous_callers_are_refused() {
		$r = self::token();
		$this->assertSame( 401, $r->get_status() );
		$this->assertArrayNotHasKey( 'token', (array) $r->get_data() );
	}

	public function test_a_nonce_is_required() {
		wp_set_current_user( self::user( 'subscriber' ) );
		$this->assertSame( 403, self::token( array(), false )->get_status() );
		$r = self::rest( 'POST', '/relay-realtime/v1/token', array(), array( 'X-WP-Nonce' => 'not-a-nonce' ) );
		$this->assertSame( 403, $r->get_status() );
		$this->assertSame( 200, self::token()->get_status() );
	}

	public function test_never_cacheable_and_rate_limited() {
		wp_set_current_user( self::user( 'subscriber' ) );
		$r = self::token();
		$this->assertSame( 200, $r->get_status() );
		$this->assertStringContainsString( 'no-store', $r->get_headers()['Cache-Control'] );
		$limit = static fn () => 3;
		add_filter( 'relay_realtime_token_rate_limit', $limit );
		$statuses = array();
		for ( $i = 0; $i < 4; $i++ ) {
			$statuses[] = self::token()->get_status();
		}
		remove_filter( 'relay_realtime_token_rate_limit', $limit );
		$this->assertSame( 429, end( $statuses ), 'over the limit: ' . implode( ',', $statuses ) );
	}

	public function test_editor_gets_their_post_room_read_write_and_nothing_reserved() {
		$author  = self::user( 'author' );
		$mine    = wp_insert_post( array( 'post_title' => 'Mine', 'post_status' => 'publish', 'post_author' => $author ) );
		$theirs  = wp_insert_post( array( 'post_title' => 'Theirs', 'post_status' => 'publish', 'post_author' => 1 ) );
		$private = wp_insert_post( array( 'post_title' => 'Private', 'post_status' => 'private', 'post_author' => 1 ) );
		\RelayRealtime\Publisher::flush();
		wp_set_current_user( $author );

		$r = self::token( array( 'post_id' => array( $mine, $theirs, $private ) ) );
		$this->assertSame( 200, $r->get_status() );
		$data = $r->get_data();
		$this->assertSame( array( "postType/post:$mine" => 'rw', "postType/post:$theirs" => 'r' ), $data['rooms'] );
		$this->assertSame( array( self::ch( 'events' ) ), $data['channels'] );

		$claims    = $this->claims( $data['token'] );
		$room_mine = self::ch( "yjs:postType/post:$mine" );
		$room_them = self::ch( "yjs:postType/post:$theirs" );
		$this->assertSame( Config::site_id(), $claims['site_id'] );
		$this->assertSame( (string) $author, $claims['user_id'] );
		$this->assertEqualsCanonicalizing( array( self::ch( 'events' ), self::ch( 'presence:lobby' ), $room_mine, $room_them ), $claims['allowed_channel_prefixes'] );
		$this->assertEqualsCanonicalizing( array( self::ch( 'presence:lobby' ), $room_mine ), $claims['allowed_publish_prefixes'] );
		$this->assertSame( 300, $claims['exp'] - $claims['iat'] );

		// relayd enforces it.
		$wanted = array( self::ch( 'events' ), $room_mine, $room_them, self::ch( 'shop:orders' ), self::ch( "yjs:postType/post:$private" ), self::ch( 'other' ) );
		$sub    = $this->subscribe( $wanted, array( 'token' => $data['token'], 'allow_refusal' => true ) );
		list( $ok, $refused ) = $sub->wait_answers( $wanted );
		$this->assertEqualsCanonicalizing( array( self::ch( 'events' ), $room_mine, $room_them ), array_unique( $ok ) );
		$this->assertEqualsCanonicalizing( array( self::ch( 'shop:orders' ), self::ch( "yjs:postType/post:$private" ), self::ch( 'other' ) ), array_unique( $refused ) );
	}

	public function test_read_only_room_refuses_writes_at_relayd() {
		$author = self::user( 'author' );
		$mine   = wp_insert_post( array( 'post_title' => 'Mine', 'post_status' => 'publish', 'post_author' => $author ) );
		$theirs = wp_insert_post( array( 'post_title' => 'Theirs', 'post_status' => 'publish', 'post_author' => 1 ) );
		\RelayRealtime\Publisher::flush();
		wp_set_current_user( $author );
		$token = self::token( array( 'post_id' => "$mine,$theirs" ) )->get_data()['token'];

		// Presence is a publish: relayd allows it only under allowed_publish_prefixes.
		$rw = $this->subscribe( array( self::ch( "yjs:postType/post:$mine" ) ), array( 'token' => $token, 'presence' => '{"name":"a"}' ) );
		$ro = $this->subscribe( array( self::ch( "yjs:postType/post:$theirs" ) ), array( 'token' => $token, 'presence' => '{"name":"a"}' ) );
		$this->assertTrue( $rw->wait_for( static fn ( $lines ) => (bool) array_filter( $lines, static fn ( $l ) => 'wps.presence' === ( $l['event'] ?? '' ) && 'join' === ( $l['data']['action'] ?? '' ) ), 10 ), 'writer may announce: ' . wp_json_encode( $rw->lines ) );
		$this->assertTrue( $ro->wait_for( static fn ( $lines ) => (bool) array_filter( $lines, static fn ( $l ) => 'error' === ( $l['type'] ?? '' ) ), 10 ), 'reader may not: ' . wp_json_encode( $ro->lines ) );
		$this->assertEmpty( array_filter( $ro->lines, static fn ( $l ) => 'join' === ( $l['data']['action'] ?? '' ) ) );
	}

	public function test_subscriber_and_administrator_grants() {
		$post = wp_insert_post( array( 'post_title' => 'P', 'post_status' => 'publish', 'post_author' => 1 ) );
		\RelayRealtime\Publisher::flush();
		wp_set_current_user( self::user( 'subscriber' ) );
		$sub_claims = $this->claims( self::token( array( 'post_id' => $post ) )->get_data()['token'] );
		$this->assertNotContains( self::ch( "yjs:postType/post:$post" ), $sub_claims['allowed_publish_prefixes'] );
		$this->assertContains( self::ch( "yjs:postType/post:$post" ), $sub_claims['allowed_channel_prefixes'] );
		$this->assertNotContains( self::ch( 'shop:' ), $sub_claims['allowed_channel_prefixes'] );

		wp_set_current_user( 1 );
		$admin = self::token()->get_data();
		$this->assertContains( self::ch( 'relay-admin:test' ), $admin['channels'] );
		$claims = $this->claims( $admin['token'] );
		$this->assertContains( self::ch( 'shop:' ), $claims['allowed_channel_prefixes'] );
		$this->assertContains( self::ch( 'shop:' ), $claims['allowed_publish_prefixes'] );
		$sub = $this->subscribe( array( self::ch( 'shop:orders' ), self::ch( 'relay-admin:test' ) ), array( 'token' => $admin['token'] ) );
		$this->assertTrue( $sub->running() );
	}

	public function test_anonymous_visitors_get_only_public_channels() {
		$open = static fn () => array( 'live:scores' );
		add_filter( 'relay_realtime_public_channels', $open );
		$r = self::token();
		remove_filter( 'relay_realtime_public_channels', $open );
		$this->assertSame( 200, $r->get_status() );
		$data   = $r->get_data();
		$claims = $this->claims( $data['token'] );
		$this->assertSame( '0', $claims['user_id'] );
		$this->assertSame( array( self::ch( 'live:scores' ) ), $claims['allowed_channel_prefixes'] );
		$this->assertSame( array(), $claims['allowed_publish_prefixes'] );
		$wanted = array( self::ch( 'live:scores' ), self::ch( 'events' ) );
		$sub    = $this->subscribe( $wanted, array( 'token' => $data['token'], 'allow_refusal' => true ) );
		list( $ok, $refused ) = $sub->wait_answers( $wanted );
		$this->assertSame( array( self::ch( 'live:scores' ) ), array_values( array_unique( $ok ) ) );
		$this->assertSame( array( self::ch( 'events' ) ), array_values( array_unique( $refused ) ) );
	}

	public function test_eddsa_when_the_site_has_a_key_pair() {
		$seed = random_bytes( 32 );
		list( $rc, $out, $err ) = self::relayctl( array( 'site', 'add', '--url', getenv( 'RRT_RELAY_URL' ), '--admin-key', getenv( 'RRT_ADMIN_KEY' ), '--site-url', 'http://eddsa.test', '--ed25519-public-key=' . \RelayRealtime\Crypto::ed25519_public( $seed ) ) );
		$this->assertSame( 0, $rc, $err );
		$site = json_decode( $out, true );
		Config::set( 'site_key', $site['site_key'] );
		Config::set( 'publish_secret', $site['publish_secret'] );
		Config::set( 'jwt_secret', '' );
		Config::set( 'ed25519_seed', \RelayRealtime\Crypto::b64url( $seed ) );
		wp_set_current_user( self::user( 'subscriber' ) );
		$token = self::token()->get_data()['token'];
		Config::set( 'ed25519_seed', '' );
		$this->assertSame( 'EdDSA', json_decode( \RelayRealtime\Crypto::b64url_decode( explode( '.', $token )[0] ), true )['alg'] );
		$sub = $this->subscribe( array( self::ch( 'events' ) ), array( 'token' => $token, 'site_key' => $site['site_key'] ) );
		$this->assertTrue( $sub->running(), 'relayd accepted the EdDSA token' );
	}

	public function test_yjs_room_read_write_and_read_only_with_real_y_websocket_clients() {
		$post = wp_insert_post( array( 'post_title' => 'Collab', 'post_status' => 'publish', 'post_author' => 1 ) );
		\RelayRealtime\Publisher::flush();
		wp_set_current_user( 1 );
		$writer = self::token( array( 'post_id' => $post ) )->get_data()['token'];
		wp_set_current_user( self::user( 'subscriber' ) );
		$reader   = self::token( array( 'post_id' => $post ) )->get_data()['token'];
		$outsider = self::token()->get_data()['token']; // No post asked for: no room.
		$cfg      = array(
			'url'            => getenv( 'RRT_RELAY_URL' ),
			'room'           => "postType/post:$post",
			'neighbour_room' => "postType/post:{$post}0",
			'writer'         => $writer,
			'reader'         => $reader,
			'outsider'       => $outsider,
		);
		$node = getenv( 'RRT_NODE' ) ? getenv( 'RRT_NODE' ) : 'node';
		$out  = shell_exec( 'NODE_PATH=' . escapeshellarg( getenv( 'NODE_PATH' ) ? getenv( 'NODE_PATH' ) : '/usr/share/nodejs' ) . ' timeout 30 ' . escapeshellarg( $node ) . ' ' . escapeshellarg( dirname( __DIR__ ) . '/yjs-session.cjs' ) . ' ' . escapeshellarg( wp_json_encode( $cfg ) ) . ' 2>&1' );
		$res  = json_decode( (string) $out, true );
		$this->assertIsArray( $res, (string) $out );
		$this->assertTrue( $res['writer_synced'], 'editor joins the room' );
		$this->assertTrue( $res['reader_synced'], 'reader joins the room' );
		$this->assertTrue( $res['reader_saw_writer'], 'reader receives the editor\'s edits' );
		$this->assertFalse( $res['writer_saw_reader'], 'relayd drops the reader\'s edits' );
		$this->assertTrue( $res['reader_denied'], 'reader told permission-denied: ' . $out );
		$this->assertSame( array( 4004 ), $res['outsider_closes'], 'a token without the room is refused' );
		$this->assertSame( array( 4004 ), $res['neighbour_closes'], "the editor of post $post cannot open post {$post}0's room: grants are not string prefixes" );
	}

	public function test_encrypted_post_type_gives_editors_the_room_key_and_relayd_the_e2e_room_only() {
		$settings              = Config::settings();
		$settings['e2e_types'] = array( 'post' );
		update_option( Config::OPTION_SETTINGS, $settings );
		$author = self::user( 'author' );
		$editor = self::user( 'editor' );
		$post   = wp_insert_post( array( 'post_title' => 'Sealed', 'post_status' => 'publish', 'post_author' => $author ) );
		\RelayRealtime\Publisher::flush();
		$room   = "postType/post:$post";
		$grants = array();
		foreach ( array( $author, $editor, self::user( 'subscriber' ) ) as $user ) {
			wp_set_current_user( $user );
			$r = self::token( array( 'post_id' => $post ) );
			$this->assertSame( 200, $r->get_status() );
			$grants[] = $r->get_data();
		}
		update_option( Config::OPTION_SETTINGS, array_merge( $settings, array( 'e2e_types' => array() ) ) );
		list( $a, $e, $s ) = $grants;
		// Editors of the post get its key (the same one), the reader none; nobody gets the plain room.
		$keys = (array) $a['e2e']['keys'];
		$this->assertArrayHasKey( $room, $keys );
		$this->assertSame( (array) $e['e2e']['keys'], $keys, 'one key per document' );
		$this->assertSame( array(), (array) $s['e2e']['keys'], 'a reader gets no key' );
		$this->assertSame( 'r', $s['rooms'][ $room ] );
		$this->assertSame( 32, strlen( \RelayRealtime\Crypto::b64url_decode( $keys[ $room ][0]['key'] ) ) );
		$this->assertSame( array( 'postType/post' ), $a['e2e']['objectTypes'] );
		$claims = $this->claims( $a['token'] );
		$this->assertContains( self::ch( "yjs-e2e:$room" ), $claims['allowed_publish_prefixes'] );
		$this->assertNotContains( self::ch( "yjs:$room" ), $claims['allowed_channel_prefixes'] );
		// The key never reaches relayd: it is not in the token.
		$this->assertStringNotContainsString( $keys[ $room ][0]['key'], wp_json_encode( $claims ) );

		// The plugin's provider with these grants, through relayd.
		$cfg  = array(
			'url'     => getenv( 'RRT_RELAY_URL' ),
			'siteId'  => Config::site_id(),
			'postId'  => $post,
			'editors' => array( $a, $e ),
			'reader'  => $s,
		);
		$node = getenv( 'RRT_NODE' ) ? getenv( 'RRT_NODE' ) : 'node';
		$out  = shell_exec( 'NODE_PATH=' . escapeshellarg( getenv( 'NODE_PATH' ) ? getenv( 'NODE_PATH' ) : '/usr/share/nodejs' ) . ' timeout 40 ' . escapeshellarg( $node ) . ' ' . escapeshellarg( dirname( __DIR__ ) . '/sealed-session.mjs' ) . ' ' . escapeshellarg( wp_json_encode( $cfg ) ) . ' 2>&1' );
		$res  = json_decode( (string) $out, true );
		$this->assertIsArray( $res, (string) $out );
		$this->assertArrayNotHasKey( 'error', $res, (string) $out );
		$this->assertTrue( $res['encrypted'], 'the provider chose the encrypted mode' );
		$this->assertSame( array( 'connected', 'connected' ), $res['statuses'] );
		$this->assertTrue( $res['b_saw_a'] && $res['converged'], 'the editors converge: ' . $out );
		$this->assertSame( 'disconnected', $res['reader_status'] );
		$this->assertSame( 'authentication-failed', $res['reader_error'] );
		$this->assertSame( 0, $res['reader_connects'] );
	}
}
