<?php
/**
 * Removes every option, transient and cron event of Relay Realtime.
 *
 * @package RelayRealtime
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

$relay_realtime_options = array(
	'relay_realtime_settings',
	'relay_realtime_url',
	'relay_realtime_site_key',
	'relay_realtime_publish_secret',
	'relay_realtime_publish_key_id',
	'relay_realtime_jwt_secret',
	'relay_realtime_ed25519_seed',
	'relay_realtime_admin_key',
	'relay_realtime_status',
	'relay_realtime_queue',
	'relay_realtime_dead_letters',
	'relay_realtime_dead_letter_count',
	'relay_realtime_next_retry',
	'relay_realtime_queue_lock',
);
foreach ( $relay_realtime_options as $relay_realtime_option ) {
	delete_option( $relay_realtime_option );
}
wp_clear_scheduled_hook( 'relay_realtime_retry' );

global $wpdb;
// Rate-limit and flash transients carry generated names.
$wpdb->query( // phpcs:ignore WordPress.DB.DirectDatabaseQuery
	$wpdb->prepare(
		"DELETE FROM {$wpdb->options} WHERE option_name LIKE %s OR option_name LIKE %s OR option_name LIKE %s OR option_name LIKE %s",
		$wpdb->esc_like( '_transient_relay_rt_rl_' ) . '%',
		$wpdb->esc_like( '_transient_timeout_relay_rt_rl_' ) . '%',
		$wpdb->esc_like( '_transient_relay_realtime_' ) . '%',
		$wpdb->esc_like( '_transient_timeout_relay_realtime_' ) . '%'
	)
);
