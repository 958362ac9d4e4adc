<?php
/**
 * Global helpers.
 *
 * @package RelayRealtime
 */

defined( 'ABSPATH' ) || exit;

if ( ! function_exists( 'relay_realtime' ) ) {
	/**
	 * The Relay Realtime API.
	 *
	 * @since 0.1.0
	 *
	 * @return RelayRealtime\Api
	 */
	function relay_realtime() {
		return RelayRealtime\Api::instance();
	}
}

if ( ! function_exists( 'relay_realtime_publish' ) ) {
	/**
	 * Publishes an event (sealed v2 by default, sent after the response).
	 *
	 * @since 0.1.0
	 *
	 * @param string $channel Channel (bare or full).
	 * @param string $event   Event name.
	 * @param mixed  $data    JSON-encodable data.
	 * @param array  $args    `envelope`, `sync`.
	 * @return true|array|WP_Error
	 */
	function relay_realtime_publish( $channel, $event, $data = array(), $args = array() ) {
		return RelayRealtime\Publisher::publish( $channel, $event, $data, $args );
	}
}
