<?php
/**
 * The connect flow against relayd's admin API: register, rotate, disconnect.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Admin;
use RelayRealtime\Config;
use RelayRealtime\Crypto;
use RelayRealtime\Publisher;

/**
 * An administrator gives the relay URL and admin key once; the plugin does the rest.
 */
final class ConnectTest extends Relay_Test_Case {

	/**
	 * Sites relayd knows, from relayctl site list.
	 *
	 * @return array
	 */
	private static function relay_sites() {
		list( $rc, $out ) = self::relayctl( array( 'site', 'list', '--url', getenv( 'RRT_RELAY_URL' ), '--admin-key', getenv( 'RRT_ADMIN_KEY' ) ) );
		$sites = array();
		foreach ( array_filter( explode( "\n", $out ) ) as $line ) {
			$sites[] = json_decode( $line, true );
		}
		return 0 === $rc ? $sites : array();
	}

	public function test_connect_registers_the_site_in_relayd_and_publishing_works() {
		Config::forget_credentials();
		delete_option( 'relay_realtime_url' );
		$this->assertFalse( Config::is_connected() );
		wp_set_current_user( 1 );

		$result = Admin::perform( 'connect', array( 'relay_url' => getenv( 'RRT_RELAY_URL' ) . '/', 'admin_key' => getenv( 'RRT_ADMIN_KEY' ) ) );
		$this->assertIsString( $result, is_wp_error( $result ) ? $result->get_error_message() : '' );
		$this->assertTrue( Config::is_connected() );
		$this->assertSame( getenv( 'RRT_RELAY_URL' ), Config::get( 'url' ) );

		$registered = array_values( array_filter( self::relay_sites(), static fn ( $s ) => ( $s['site_url'] ?? '' ) === home_url() ) );
		$this->assertCount( 1, $registered, 'relayd lists the WordPress site' );
		$this->assertSame( Config::get( 'site_key' ), $registered[0]['site_key'] );
		$this->assertSame( Config::site_id(), $registered[0]['site_id'] );
		$this->assertNotSame( self::site()['site_key'], Config::get( 'site_key' ) );

		$sub = $this->subscribe( array( self::ch( 'events' ) ), array( 'site_key' => Config::get( 'site_key' ), 'jwt_secret' => Config::get( 'jwt_secret' ), 'payload_key' => self::v2_key_b64() ) );
		relay_realtime_publish( 'events', 'hello', array( 'from' => 'connect' ) );
		$this->assertSame( 1, Publisher::flush()['sent'] );
		$this->assertNotNull( $sub->wait_message( 'hello', 10 ) );

		$stats = relay_realtime()->stats();
		$this->assertIsArray( $stats );
		$this->assertSame( 1, $stats['active_connections'], 'signed /site/stats counts the subscriber' );
	}

	public function test_a_wrong_admin_key_is_refused_and_nothing_is_stored() {
		$before = Config::get( 'site_key' );
		$result = Admin::perform( 'connect', array( 'relay_url' => getenv( 'RRT_RELAY_URL' ), 'admin_key' => 'wrong' ) );
		$this->assertWPError( $result );
		$this->assertStringContainsString( 'invalid_api_key', $result->get_error_message() );
		$this->assertSame( $before, Config::get( 'site_key' ) );
		$bad = Admin::perform( 'connect', array( 'relay_url' => 'ftp://x', 'admin_key' => 'k' ) );
		$this->assertWPError( $bad );
	}

	public function test_rotation_is_one_click_and_the_old_secret_keeps_working_during_grace() {
		$old = Config::get( 'publish_secret' );
		$this->assertIsString( Admin::perform( 'rotate', array() ) );
		$new = Config::get( 'publish_secret' );
		$this->assertNotSame( $old, $new );
		$this->assertNotSame( self::site()['publish_key_id'], Config::get( 'publish_key_id' ), 'a new key id' );
		$r = relay_realtime()->publish( 'events', 'after.rotate', array(), array( 'sync' => true ) );
		$this->assertSame( 'sent', $r['outcome'], 'new secret accepted: ' . $r['code'] );
		$body = '{"channel":"events","event":"old.secret","data":{}}';
		$resp = wp_remote_post( getenv( 'RRT_RELAY_URL' ) . '/publish', array( 'body' => $body, 'headers' => Crypto::sign_v1( $body, Config::get( 'site_key' ), $old ) + array( 'Content-Type' => 'application/json' ) ) );
		$this->assertSame( 200, wp_remote_retrieve_response_code( $resp ), 'old secret valid during grace' );
	}

	public function test_disconnect_archives_the_site_and_forgets_credentials() {
		$this->assertIsString( Admin::perform( 'connect', array( 'relay_url' => getenv( 'RRT_RELAY_URL' ), 'admin_key' => getenv( 'RRT_ADMIN_KEY' ) ) ) );
		$key = Config::get( 'site_key' );
		$sub = new Relay_Subscriber( array( self::ch( 'events' ) ), array( 'site_key' => $key, 'jwt_secret' => Config::get( 'jwt_secret' ) ) );
		$this->subscribers[] = $sub;
		$sub->wait_answers( array( self::ch( 'events' ) ) );
		$this->assertIsString( Admin::perform( 'disconnect', array() ) );
		$this->assertFalse( Config::is_connected() );
		$this->assertSame( '', (string) get_option( 'relay_realtime_publish_secret', '' ) );
		$this->assertTrue( $sub->wait_for( fn () => ! $sub->running(), 10 ) );
		$this->assertStringContainsString( '4003', $sub->stderr, 'relayd closed the site\'s browsers with 4003: ' . wp_json_encode( $sub->lines ) . ' exit ' . $sub->exit_code );
		$archived = array_values( array_filter( self::relay_sites(), static fn ( $s ) => $s['site_key'] === $key ) );
		$this->assertTrue( $archived[0]['archived'] );
	}

	public function test_admin_actions_need_the_capability_and_a_nonce() {
		$die = static fn () => static function ( $message ) {
			throw new RuntimeException( is_string( $message ) ? $message : 'died' );
		};
		add_filter( 'wp_die_handler', $die );
		add_filter( 'wp_die_ajax_handler', $die );
		$_REQUEST['action'] = 'relay_realtime_rotate';
		$secret             = Config::get( 'publish_secret' );
		try {
			wp_set_current_user( self::user( 'editor' ) );
			try {
				Admin::handle();
				$this->fail( 'an editor may not rotate' );
			} catch ( RuntimeException $e ) {
				$this->assertStringContainsString( 'not allowed', $e->getMessage() );
			}
			wp_set_current_user( 1 );
			$_REQUEST['_wpnonce'] = 'bad';
			try {
				Admin::handle();
				$this->fail( 'a bad nonce is refused' );
			} catch ( RuntimeException $e ) {
				$this->assertSame( $secret, Config::get( 'publish_secret' ) );
			}
		} finally {
			unset( $_REQUEST['action'], $_REQUEST['_wpnonce'] );
			remove_filter( 'wp_die_handler', $die );
			remove_filter( 'wp_die_ajax_handler', $die );
		}
	}

	public function test_settings_page_never_prints_secrets() {
		wp_set_current_user( 1 );
		\RelayRealtime\Status::reset();
		ob_start();
		Admin::render();
		$html = ob_get_clean();
		$this->assertStringContainsString( 'Active connections', $html );
		$this->assertStringContainsString( 'Send test event', $html );
		foreach ( array( 'publish_secret', 'jwt_secret', 'admin_key' ) as $name ) {
			$this->assertStringNotContainsString( Config::get( $name ), $html, "$name is never printed" );
		}
		$this->assertStringNotContainsString( base64_encode( Config::v2_key() ), $html );
	}

	public function test_send_test_event_round_trips_through_relayd() {
		wp_set_current_user( 1 );
		$token = relay_realtime()->token( 1 );
		$sub   = $this->subscribe( array( self::ch( 'relay-admin:test' ) ), array( 'token' => $token['token'], 'payload_key' => self::v2_key_b64() ) );
		$r     = self::rest( 'POST', '/relay-realtime/v1/test' );
		$this->assertSame( 200, $r->get_status(), wp_json_encode( $r->get_data() ) );
		$id = $r->get_data()['id'];
		$this->assertNotNull( $sub->wait_message( 'relay.test', 10, static fn ( $d ) => ( $d['id'] ?? '' ) === $id ) );
		wp_set_current_user( self::user( 'editor' ) );
		$this->assertSame( 403, self::rest( 'POST', '/relay-realtime/v1/test' )->get_status() );
	}
}
