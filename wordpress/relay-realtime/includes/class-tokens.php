<?php
/**
 * Browser connection tokens and the REST route that mints them.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Mints short-lived HS256 (or EdDSA) tokens scoped to the user's grants.
 *
 * @since 0.1.0
 */
final class Tokens {

	const REST_NAMESPACE = 'relay-realtime/v1';

	/**
	 * Mints a token for a user.
	 *
	 * @param int   $user_id  User id (0: visitor).
	 * @param int[] $post_ids Posts whose Yjs rooms the token should cover.
	 * @return array{token:string,exp:int,channels:string[],rooms:array,e2e:array}|\WP_Error
	 */
	public static function mint( $user_id, $post_ids = array() ) {
		if ( ! Config::is_connected() ) {
			return new \WP_Error( 'relay_not_connected', __( 'The site is not connected to relayd.', 'relay-realtime' ), array( 'status' => 503 ) );
		}
		$seed = Config::ed25519_seed();
		if ( '' === $seed && '' === Config::get( 'jwt_secret' ) ) {
			return new \WP_Error( 'relay_no_token_key', __( 'No JWT secret or Ed25519 key is configured.', 'relay-realtime' ), array( 'status' => 503 ) );
		}
		$grants = Channels::grants( $user_id, $post_ids );
		if ( empty( $grants['read'] ) && empty( $grants['publish'] ) ) {
			return new \WP_Error( 'relay_no_channels', __( 'No channel is open to this visitor.', 'relay-realtime' ), array( 'status' => 401 ) );
		}
		$now    = time();
		$exp    = $now + (int) Config::setting( 'token_ttl' );
		$claims = array(
			'tenant_id'                => Config::tenant_id(),
			'site_id'                  => Config::site_id(),
			'user_id'                  => (string) (int) $user_id,
			'allowed_channel_prefixes' => $grants['read'],
			'allowed_publish_prefixes' => $grants['publish'],
			'v'                        => 2,
			'iat'                      => $now,
			'exp'                      => $exp,
		);
		/**
		 * Filters the claims of a browser token before it is signed.
		 *
		 * @since 0.1.0
		 *
		 * @param array $claims  JWT claims.
		 * @param int   $user_id User id.
		 */
		$claims = apply_filters( 'relay_realtime_token_claims', $claims, $user_id );
		$token  = '' !== $seed ? Crypto::jwt_eddsa( $claims, $seed ) : Crypto::jwt_hs256( $claims, Config::get( 'jwt_secret' ) );
		return array(
			'token'    => $token,
			'exp'      => (int) $claims['exp'],
			'channels' => $grants['channels'],
			'rooms'    => $grants['rooms'],
			'e2e'      => self::room_keys( $grants['sealed'] ),
		);
	}

	/**
	 * Keys of the encrypted rooms a user may edit, as the provider reads them:
	 * `{site, keys: {room: [{kid, key}]}, objectTypes}` (key: base64url of 32 bytes).
	 * `objectTypes` are the encrypted post types: their editors without a key are told
	 * `authentication-failed` instead of opening a plain room.
	 *
	 * @param string[] $rooms Encrypted rooms the user may edit.
	 * @return array
	 */
	public static function room_keys( $rooms ) {
		$kid  = (string) Config::setting( 'payload_kid' );
		$keys = array();
		foreach ( $rooms as $room ) {
			$raw = Config::room_key( $room, $kid );
			if ( '' !== $raw ) {
				$keys[ $room ] = array(
					array(
						'kid' => $kid,
						'key' => rtrim( strtr( base64_encode( $raw ), '+/', '-_' ), '=' ), // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
					),
				);
			}
		}
		return array(
			'site'        => Config::site_id(),
			'keys'        => (object) $keys,
			'objectTypes' => array_map( static fn ( $t ) => 'postType/' . $t, (array) Config::setting( 'e2e_types' ) ),
		);
	}

	/**
	 * Registers the REST route.
	 *
	 * @return void
	 */
	public static function register_routes() {
		register_rest_route(
			self::REST_NAMESPACE,
			'/token',
			array(
				'methods'             => array( 'GET', 'POST' ),
				'callback'            => array( __CLASS__, 'rest_token' ),
				'permission_callback' => array( __CLASS__, 'rest_permission' ),
				'args'                => array(
					'post_id' => array(
						'description' => __( 'Post ids whose Yjs rooms the token should cover.', 'relay-realtime' ),
						'required'    => false,
					),
				),
			)
		);
	}

	/**
	 * Permission: a valid `wp_rest` nonce, a rate limit, and (for visitors) an open public channel.
	 *
	 * @param \WP_REST_Request $request Request.
	 * @return true|\WP_Error
	 */
	public static function rest_permission( $request ) {
		$user_id = get_current_user_id();
		/**
		 * Filters whether the current visitor may get a token at all.
		 *
		 * Default: logged-in users, and visitors when a public channel is open.
		 *
		 * @since 0.1.0
		 *
		 * @param bool $allow   Whether to allow.
		 * @param int  $user_id User id.
		 */
		$allow = apply_filters( 'relay_realtime_allow_client', $user_id > 0 || ! empty( apply_filters( 'relay_realtime_public_channels', array(), 0 ) ), $user_id );
		if ( ! $allow ) {
			return new \WP_Error( 'rest_not_logged_in', __( 'Log in to receive live events.', 'relay-realtime' ), array( 'status' => 401 ) );
		}
		$nonce = (string) $request->get_header( 'X-WP-Nonce' );
		if ( '' === $nonce || ! wp_verify_nonce( $nonce, 'wp_rest' ) ) {
			return new \WP_Error( 'rest_cookie_invalid_nonce', __( 'Missing or invalid nonce.', 'relay-realtime' ), array( 'status' => 403 ) );
		}
		if ( ! self::within_rate_limit() ) {
			return new \WP_Error( 'relay_rate_limited', __( 'Too many token requests; retry in a minute.', 'relay-realtime' ), array( 'status' => 429 ) );
		}
		return true;
	}

	/**
	 * Counts token requests per user (or per IP for visitors) in a one-minute window.
	 *
	 * @return bool
	 */
	private static function within_rate_limit() {
		$user_id = get_current_user_id();
		$who     = $user_id > 0 ? 'u' . $user_id : 'ip' . ( isset( $_SERVER['REMOTE_ADDR'] ) ? sanitize_text_field( wp_unslash( $_SERVER['REMOTE_ADDR'] ) ) : '' );
		$key     = 'relay_rt_rl_' . md5( $who . '|' . (int) floor( time() / 60 ) );
		/**
		 * Filters how many tokens one user (or visitor IP) may request per minute.
		 *
		 * @since 0.1.0
		 *
		 * @param int $limit Requests per minute. Default 30.
		 */
		$limit = (int) apply_filters( 'relay_realtime_token_rate_limit', 30 );
		$count = (int) get_transient( $key );
		if ( $count >= $limit ) {
			return false;
		}
		set_transient( $key, $count + 1, 120 );
		return true;
	}

	/**
	 * The token route: `{token, exp, channels, rooms}`, never cacheable.
	 *
	 * @param \WP_REST_Request $request Request.
	 * @return \WP_REST_Response|\WP_Error
	 */
	public static function rest_token( $request ) {
		$post_ids = $request->get_param( 'post_id' );
		$post_ids = is_array( $post_ids ) ? $post_ids : ( null === $post_ids ? array() : explode( ',', (string) $post_ids ) );
		$post_ids = array_slice( array_filter( array_map( 'absint', $post_ids ) ), 0, 20 );
		$minted   = self::mint( get_current_user_id(), $post_ids );
		if ( is_wp_error( $minted ) ) {
			return $minted;
		}
		$response = new \WP_REST_Response( $minted, 200 );
		$response->header( 'Cache-Control', 'no-store, no-cache, must-revalidate, private, max-age=0' );
		$response->header( 'Pragma', 'no-cache' );
		$response->header( 'Expires', '0' );
		return $response;
	}
}
