<?php
/**
 * Corrupt options, a wrong secret, an unreachable relay, a 429 quota, a revoked site:
 * a clear admin notice each, nothing fatal on the front end.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Admin;
use RelayRealtime\Config;
use RelayRealtime\Publisher;

/**
 * Bad input and bad relays.
 */
final class BadInputTest extends Relay_Test_Case {

	/**
	 * The admin notices as text.
	 *
	 * @return string
	 */
	private static function notices() {
		wp_set_current_user( 1 );
		ob_start();
		Admin::notices();
		return (string) ob_get_clean();
	}

	/**
	 * Requests the front page over HTTP; asserts it works and the plugin logged nothing.
	 *
	 * @return void
	 */
	private function assertFrontPageFine() {
		clearstatcache();
		$before = file_exists( WP_DEBUG_LOG ) ? filesize( WP_DEBUG_LOG ) : 0;
		$r      = wp_remote_get( getenv( 'RRT_WP_URL' ) . '/?rrt_publish=x', array( 'timeout' => 15 ) );
		$this->assertSame( 200, wp_remote_retrieve_response_code( $r ), 'front end still answers' );
		$this->assertSame( 'ok', wp_remote_retrieve_body( $r ) );
		clearstatcache();
		$log = file_exists( WP_DEBUG_LOG ) ? (string) file_get_contents( WP_DEBUG_LOG, false, null, $before ) : '';
		$this->assertStringNotContainsString( 'relay-realtime', $log, 'nothing from the plugin in the error log' );
		$this->assertStringNotContainsString( 'Fatal', $log );
	}

	public function test_corrupt_options_are_reset_with_a_notice() {
		update_option( Config::OPTION_SETTINGS, 'not-an-array', true );
		Config::put_option( Publisher::OPTION_QUEUE, 'garbage' );
		Config::put_option( Publisher::OPTION_DEAD, 42 );
		$this->assertFrontPageFine();
		$this->assertSame( 2.0, Config::setting( 'timeout' ), 'defaults used' );
		relay_realtime_publish( 'events', 'still.works', array() );
		$this->assertSame( 1, Publisher::flush()['sent'] );
		Publisher::make_due();
		Publisher::flush();
		$this->assertSame( array(), Publisher::queue() );
		$this->assertStringContainsString( 'corrupt', self::notices() );
	}

	public function test_a_wrong_secret_gets_a_notice_and_the_event_waits() {
		Config::set( 'publish_secret', str_repeat( 'ab', 32 ) );
		relay_realtime_publish( 'events', 'x', array() );
		$c = Publisher::flush();
		$this->assertSame( 1, $c['queued'], 'kept for retry once the secret is fixed' );
		$n = self::notices();
		$this->assertStringContainsString( 'refused the publish secret', $n );
		$this->assertStringContainsString( 'invalid_signature', $n );
		$this->assertStringNotContainsString( str_repeat( 'ab', 32 ), $n );
		$this->assertFrontPageFine();
	}

	public function test_an_unreachable_relay_gets_a_notice() {
		Config::set( 'url', 'http://127.0.0.1:9' );
		relay_realtime_publish( 'events', 'x', array() );
		Publisher::flush();
		$this->assertStringContainsString( 'cannot be reached', self::notices() );
		$this->assertFrontPageFine();
		$stats = relay_realtime()->stats();
		$this->assertWPError( $stats );
		wp_set_current_user( 1 );
		ob_start();
		Admin::render();
		$this->assertStringContainsString( 'cannot be reached', ob_get_clean(), 'settings page shows the state' );
	}

	public function test_quota_exceeded_goes_to_dead_letters_with_a_notice() {
		list( $rc, $out, $err ) = self::relayctl( array( 'site', 'add', '--url', getenv( 'RRT_RELAY_URL' ), '--admin-key', getenv( 'RRT_ADMIN_KEY' ), '--site-url', 'http://quota.test', '--monthly-quota', '1' ) );
		$this->assertSame( 0, $rc, $err );
		$site = json_decode( $out, true );
		Config::set( 'site_key', $site['site_key'] );
		Config::set( 'publish_secret', $site['publish_secret'] );
		Config::set( 'publish_key_id', $site['publish_key_id'] );
		$first  = relay_realtime()->publish( 'events', 'one', array(), array( 'sync' => true ) );
		$second = relay_realtime()->publish( 'events', 'two', array(), array( 'sync' => true ) );
		$this->assertSame( 'sent', $first['outcome'] );
		$this->assertSame( 'dead', $second['outcome'] );
		$this->assertSame( 429, $second['status'] );
		$this->assertSame( 'quota_exceeded', $second['code'] );
		$this->assertSame( 1, Publisher::dead_letters()['count'] );
		$this->assertSame( array(), Publisher::queue(), 'not retried in a loop' );
		$this->assertStringContainsString( 'quota', self::notices() );
		$this->assertFrontPageFine();
	}

	public function test_a_revoked_site_gets_a_notice() {
		list( $rc, $out ) = self::relayctl( array( 'site', 'add', '--url', getenv( 'RRT_RELAY_URL' ), '--admin-key', getenv( 'RRT_ADMIN_KEY' ), '--site-url', 'http://revoked.test' ) );
		$this->assertSame( 0, $rc );
		$site = json_decode( $out, true );
		Config::set( 'site_key', $site['site_key'] );
		Config::set( 'publish_secret', $site['publish_secret'] );
		Config::set( 'publish_key_id', $site['publish_key_id'] );
		Config::set( 'jwt_secret', $site['jwt_secret'] );
		$sub = new Relay_Subscriber( array( self::ch( 'events' ) ), array( 'site_key' => $site['site_key'], 'jwt_secret' => $site['jwt_secret'] ) );
		$this->subscribers[] = $sub;
		$sub->wait_answers( array( self::ch( 'events' ) ) );

		// The site is unregistered on relayd (e.g. from another install holding its secret).
		$r = wp_remote_post( getenv( 'RRT_RELAY_URL' ) . '/api/sites/unregister', array( 'body' => wp_json_encode( array( 'site_key' => $site['site_key'], 'publish_secret' => $site['publish_secret'] ) ), 'headers' => array( 'Content-Type' => 'application/json' ) ) );
		$this->assertSame( 200, wp_remote_retrieve_response_code( $r ) );
		$this->assertTrue( $sub->wait_for( fn () => ! $sub->running(), 10 ) );
		$this->assertStringContainsString( '4003', $sub->stderr );

		relay_realtime_publish( 'events', 'x', array() );
		Publisher::flush();
		$this->assertStringContainsString( 'no longer knows this site', self::notices() );
		$this->assertFrontPageFine();
	}

	public function test_bad_publish_arguments_are_errors_not_exceptions() {
		$this->assertWPError( relay_realtime_publish( '', 'x', array() ) );
		$this->assertWPError( relay_realtime_publish( 'events', 'x', array( 'bad' => NAN ) ) );
		Config::forget_credentials();
		$this->assertWPError( relay_realtime_publish( 'events', 'x', array() ) );
		$this->assertWPError( relay_realtime()->token( 1 ) );
		$this->assertFrontPageFine();
	}

	public function test_a_throwing_trigger_callback_never_reaches_the_page() {
		relay_realtime()->trigger( 'broken' )->on( 'rrt_broken' )->data(
			static function () {
				throw new RuntimeException( 'boom' );
			}
		)->register();
		do_action( 'rrt_broken', 1 );
		$this->assertSame( array(), Publisher::pending() );
		$this->assertStringContainsString( 'A trigger callback failed', self::notices() );
		$this->assertStringContainsString( 'broken: boom', self::notices() );
	}
}
