<?php
/**
 * Activation on a real WordPress with WP_DEBUG on.
 *
 * @package RelayRealtime
 */

/**
 * Activation writes nothing to the error log, and nothing secret is autoloaded.
 */
final class ActivationTest extends Relay_Test_Case {

	public function test_plugin_is_active_on_debian_wordpress() {
		$this->assertTrue( is_plugin_active( 'relay-realtime/relay-realtime.php' ) );
		$this->assertTrue( WP_DEBUG );
		$this->assertSame( '6.1', substr( get_bloginfo( 'version' ), 0, 3 ), 'Debian bookworm ships WordPress 6.1' );
	}

	public function test_activation_left_the_error_log_empty() {
		$log = (string) file_get_contents( getenv( 'RRT_TMP' ) . '/activation.log' );
		$this->assertSame( '', trim( $log ), 'activation wrote to the error log' );
	}

	public function test_secrets_are_never_autoloaded() {
		global $wpdb;
		\RelayRealtime\Status::error( 'unreachable', 'test', 0 );
		$rows = $wpdb->get_results( "SELECT option_name, autoload FROM {$wpdb->options} WHERE option_name LIKE 'relay\\_realtime\\_%'", ARRAY_A ); // phpcs:ignore WordPress.DB
		$by   = array_column( $rows, 'autoload', 'option_name' );
		foreach ( array( 'relay_realtime_site_key', 'relay_realtime_publish_secret', 'relay_realtime_jwt_secret', 'relay_realtime_admin_key', 'relay_realtime_queue', 'relay_realtime_status' ) as $secret ) {
			$this->assertArrayHasKey( $secret, $by, "$secret stored" );
			$this->assertSame( 'no', $by[ $secret ], "$secret must not be autoloaded" );
		}
		$autoloaded = wp_load_alloptions();
		$this->assertArrayNotHasKey( 'relay_realtime_publish_secret', $autoloaded );
		$site = self::site();
		$this->assertStringNotContainsString( $site['publish_secret'], serialize( $autoloaded ) );
	}

	public function test_front_page_request_logs_nothing() {
		$before = file_exists( WP_DEBUG_LOG ) ? filesize( WP_DEBUG_LOG ) : 0;
		$r      = wp_remote_get( getenv( 'RRT_WP_URL' ) . '/?rrt_noop=1', array( 'timeout' => 10 ) );
		$this->assertSame( 200, wp_remote_retrieve_response_code( $r ) );
		clearstatcache();
		$log = file_exists( WP_DEBUG_LOG ) ? (string) file_get_contents( WP_DEBUG_LOG, false, null, $before ) : '';
		$this->assertStringNotContainsString( 'relay-realtime', $log );
	}
}
