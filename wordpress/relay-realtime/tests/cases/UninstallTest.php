<?php
/**
 * uninstall.php removes everything the plugin stored.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Publisher;

/**
 * Uninstall.
 */
final class UninstallTest extends Relay_Test_Case {

	public function test_uninstall_removes_every_option_transient_and_cron_event() {
		global $wpdb;
		// Leave some of everything behind first.
		wp_set_current_user( self::user( 'subscriber' ) );
		self::rest( 'POST', '/relay-realtime/v1/token', array(), array( 'X-WP-Nonce' => wp_create_nonce( 'wp_rest' ) ) );
		\RelayRealtime\Config::set( 'url', 'http://127.0.0.1:9' );
		relay_realtime_publish( 'events', 'x', array() );
		Publisher::flush();
		\RelayRealtime\Status::error( 'unreachable', 'x', 0 );
		$this->assertNotFalse( wp_next_scheduled( Publisher::CRON_HOOK ) );
		$like = "option_name LIKE '%relay\\_realtime%' OR option_name LIKE '%relay\\_rt\\_%'";
		$this->assertGreaterThan( 5, (int) $wpdb->get_var( "SELECT COUNT(*) FROM {$wpdb->options} WHERE $like" ) ); // phpcs:ignore WordPress.DB

		uninstall_plugin( 'relay-realtime/relay-realtime.php' );

		$left = $wpdb->get_col( "SELECT option_name FROM {$wpdb->options} WHERE $like" ); // phpcs:ignore WordPress.DB
		$this->assertSame( array(), $left );
		$this->assertFalse( wp_next_scheduled( Publisher::CRON_HOOK ) );
	}
}
