<?php
/**
 * Connect flow: registers the site through relayd's admin API, rotates, disconnects.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Talks to relayd's `/api/sites/*` with the admin key.
 *
 * @since 0.1.0
 */
final class Connect {

	/**
	 * Validates a relayd base URL.
	 *
	 * @param string $url URL.
	 * @return string|\WP_Error Normalised URL.
	 */
	public static function normalise_url( $url ) {
		$url    = untrailingslashit( esc_url_raw( trim( (string) $url ), array( 'http', 'https' ) ) );
		$scheme = wp_parse_url( $url, PHP_URL_SCHEME );
		if ( '' === $url || ! in_array( $scheme, array( 'http', 'https' ), true ) || ! wp_parse_url( $url, PHP_URL_HOST ) ) {
			return new \WP_Error( 'relay_bad_url', __( 'The relay URL must be an http:// or https:// URL.', 'relay-realtime' ) );
		}
		return $url;
	}

	/**
	 * Registers this site with relayd and stores the three credentials.
	 *
	 * @param string $url       relayd base URL.
	 * @param string $admin_key relayd's admin key (stored, never shown again, for one-click rotation).
	 * @return true|\WP_Error
	 */
	public static function register( $url, $admin_key ) {
		if ( Config::from_constant( 'site_key' ) ) {
			return new \WP_Error( 'relay_constants', __( 'The credentials are set in wp-config.php; remove the constants to connect from here.', 'relay-realtime' ) );
		}
		$url = self::normalise_url( $url );
		if ( is_wp_error( $url ) ) {
			return $url;
		}
		$admin_key = trim( (string) $admin_key );
		if ( '' === $admin_key ) {
			return new \WP_Error( 'relay_no_admin_key', __( 'Enter relayd\'s admin key.', 'relay-realtime' ) );
		}
		$answer = Http::admin(
			$url,
			$admin_key,
			'/api/sites/register',
			array(
				'site_url'  => home_url(),
				'site_name' => get_bloginfo( 'name' ),
			)
		);
		if ( '' !== $answer['code'] ) {
			return self::error( $answer );
		}
		$c = $answer['json'];
		if ( ! is_array( $c ) || empty( $c['site_key'] ) || empty( $c['publish_secret'] ) || ! is_string( $c['site_key'] ) || ! is_string( $c['publish_secret'] ) ) {
			return new \WP_Error( 'relay_invalid_response', __( 'relayd answered without credentials.', 'relay-realtime' ) );
		}
		if ( ! Config::from_constant( 'url' ) ) {
			Config::set( 'url', $url );
		}
		Config::set( 'admin_key', $admin_key );
		Config::set( 'site_key', $c['site_key'] );
		Config::set( 'publish_secret', $c['publish_secret'] );
		Config::set( 'publish_key_id', isset( $c['publish_key_id'] ) && is_string( $c['publish_key_id'] ) ? $c['publish_key_id'] : 'k1' );
		Config::set( 'jwt_secret', isset( $c['jwt_secret'] ) && is_string( $c['jwt_secret'] ) ? $c['jwt_secret'] : '' );
		Status::reset();
		/**
		 * Fires after the site registered with relayd.
		 *
		 * @since 0.1.0
		 *
		 * @param string $site_id Site id.
		 */
		do_action( 'relay_realtime_connected', Config::site_id() );
		return true;
	}

	/**
	 * Rotates the publish secret (relayd keeps the old one valid for its grace period).
	 *
	 * @return true|\WP_Error
	 */
	public static function rotate() {
		if ( Config::from_constant( 'publish_secret' ) ) {
			return new \WP_Error( 'relay_constants', __( 'The publish secret is set in wp-config.php; rotate it with relayctl site rotate and update the constant.', 'relay-realtime' ) );
		}
		$admin_key = Config::get( 'admin_key' );
		if ( '' === $admin_key || ! Config::is_connected() ) {
			return new \WP_Error( 'relay_no_admin_key', __( 'Connect the site with relayd\'s admin key first.', 'relay-realtime' ) );
		}
		$answer = Http::admin( Config::get( 'url' ), $admin_key, '/api/sites/rotate', array( 'site_key' => Config::get( 'site_key' ) ) );
		if ( '' !== $answer['code'] ) {
			return self::error( $answer );
		}
		$c = $answer['json'];
		if ( ! is_array( $c ) || empty( $c['publish_secret'] ) || ! is_string( $c['publish_secret'] ) ) {
			return new \WP_Error( 'relay_invalid_response', __( 'relayd answered without a new secret.', 'relay-realtime' ) );
		}
		Config::set( 'publish_secret', $c['publish_secret'] );
		Config::set( 'publish_key_id', isset( $c['publish_key_id'] ) && is_string( $c['publish_key_id'] ) ? $c['publish_key_id'] : 'k1' );
		Status::reset();
		return true;
	}

	/**
	 * Unregisters the site (relayd archives it and closes its browsers with 4003) and forgets the credentials.
	 *
	 * @return true|\WP_Error
	 */
	public static function disconnect() {
		if ( Config::from_constant( 'site_key' ) ) {
			return new \WP_Error( 'relay_constants', __( 'The credentials are set in wp-config.php.', 'relay-realtime' ) );
		}
		if ( Config::is_connected() ) {
			$answer = Http::admin(
				Config::get( 'url' ),
				Config::get( 'admin_key' ),
				'/api/sites/unregister',
				array(
					'site_key'       => Config::get( 'site_key' ),
					'publish_secret' => Config::get( 'publish_secret' ),
				)
			);
			if ( '' !== $answer['code'] && 'not_found' !== $answer['code'] ) {
				return self::error( $answer );
			}
		}
		Config::forget_credentials();
		Status::reset();
		return true;
	}

	/**
	 * WP_Error of a refused admin request.
	 *
	 * @param array $answer Http result.
	 * @return \WP_Error
	 */
	private static function error( $answer ) {
		$text = Status::explain( array( 'code' => $answer['code'] ) );
		/* translators: 1: explanation, 2: relayd's error code. */
		return new \WP_Error( 'relay_' . $answer['code'], sprintf( __( '%1$s (%2$s)', 'relay-realtime' ), $text, $answer['code'] ) );
	}
}
