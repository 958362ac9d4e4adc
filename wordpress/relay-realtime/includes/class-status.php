<?php
/**
 * Connection state as seen by the publisher: last error, last success.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Records what relayd answered, and turns it into admin notices.
 *
 * @since 0.1.0
 */
final class Status {

	const OPTION = 'relay_realtime_status';

	/**
	 * Error codes meaning the stored credentials are wrong or the site is gone.
	 *
	 * @var string[]
	 */
	const REVOKED = array( 'unknown_site_key', 'site_not_found', 'not_found' );

	/**
	 * The stored state.
	 *
	 * @return array{error:?array,ok:int}
	 */
	public static function get() {
		$s = get_option( self::OPTION, array() );
		if ( ! is_array( $s ) ) {
			$s = array();
		}
		return array(
			'error' => isset( $s['error'] ) && is_array( $s['error'] ) ? $s['error'] : null,
			'ok'    => isset( $s['ok'] ) ? (int) $s['ok'] : 0,
		);
	}

	/**
	 * Records a failure.
	 *
	 * @param string $code    Error code (relayd's, or `unreachable`, `invalid_response`, …).
	 * @param string $message Human-readable detail (never contains secrets).
	 * @param int    $http    HTTP status, 0 for transport errors.
	 * @return void
	 */
	public static function error( $code, $message, $http = 0 ) {
		$s          = self::get();
		$s['error'] = array(
			'code'    => (string) $code,
			'message' => (string) $message,
			'http'    => (int) $http,
			'time'    => time(),
		);
		Config::put_option( self::OPTION, $s );
		/**
		 * Fires when relayd refuses a request or cannot be reached.
		 *
		 * @since 0.1.0
		 *
		 * @param string $code    Error code.
		 * @param string $message Detail.
		 * @param int    $http    HTTP status (0: transport error).
		 */
		do_action( 'relay_realtime_error', $code, $message, $http );
	}

	/**
	 * Records a success; clears the last error.
	 *
	 * @return void
	 */
	public static function ok() {
		$s = self::get();
		if ( null === $s['error'] && $s['ok'] > time() - 60 ) {
			return; // Avoid a database write per publish.
		}
		Config::put_option(
			self::OPTION,
			array(
				'error' => null,
				'ok'    => time(),
			)
		);
	}

	/**
	 * Clears the state (after connect or rotate).
	 *
	 * @return void
	 */
	public static function reset() {
		delete_option( self::OPTION );
	}

	/**
	 * Admin text explaining an error code.
	 *
	 * @param array $error Stored error.
	 * @return string Plain text (escape at output).
	 */
	public static function explain( $error ) {
		$code = isset( $error['code'] ) ? (string) $error['code'] : '';
		switch ( $code ) {
			case 'unreachable':
				return __( 'relayd cannot be reached. Events are queued and retried; check that relayd runs and that the relay URL is right.', 'relay-realtime' );
			case 'invalid_signature':
			case 'stale_timestamp':
			case 'future_timestamp':
				return __( 'relayd refused the publish secret (wrong secret, or the server clock is off). Reconnect the site or fix RELAY_REALTIME_PUBLISH_SECRET.', 'relay-realtime' );
			case 'unknown_site_key':
			case 'site_not_found':
			case 'not_found':
			case 'revoked':
				return __( 'relayd no longer knows this site: it was removed or unregistered (browsers are closed with code 4003). Connect the site again.', 'relay-realtime' );
			case 'quota_exceeded':
				return __( 'The monthly message quota of this site on relayd is used up (HTTP 429). Events are kept in the dead-letter queue; raise the quota or wait for the next month.', 'relay-realtime' );
			case 'invalid_api_key':
				return __( 'relayd refused the admin key.', 'relay-realtime' );
			case 'corrupt_option':
				return __( 'A stored Relay Realtime option was corrupt and has been reset to its default.', 'relay-realtime' );
			case 'trigger_failed':
				/* translators: %s: event name and the callback's error. */
				return sprintf( __( 'A trigger callback failed, nothing was published: %s', 'relay-realtime' ), isset( $error['message'] ) ? (string) $error['message'] : '' );
			case 'not_connected':
				return __( 'The site is not connected to relayd.', 'relay-realtime' );
			case 'invalid_response':
				return __( 'relayd answered with something that is not JSON. Is the relay URL pointing at relayd?', 'relay-realtime' );
			default:
				return __( 'relayd refused a request.', 'relay-realtime' );
		}
	}
}
