<?php
/**
 * Credentials and settings: wp-config.php constants win over options.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Reads the relay URL, the three site credentials and the plugin settings.
 *
 * Secrets live in options that are never autoloaded (`add_option( …, 'no' )`),
 * or in constants defined in wp-config.php:
 * RELAY_REALTIME_URL, RELAY_REALTIME_SITE_KEY, RELAY_REALTIME_PUBLISH_SECRET,
 * RELAY_REALTIME_PUBLISH_KEY_ID, RELAY_REALTIME_JWT_SECRET and, for EdDSA tokens,
 * RELAY_REALTIME_ED25519_SEED (base64url 32-byte seed).
 *
 * @since 0.1.0
 */
final class Config {

	const OPTION_SETTINGS = 'relay_realtime_settings';

	/**
	 * Credential name => [option, constant].
	 *
	 * @var array<string,array{0:string,1:string}>
	 */
	const CREDENTIALS = array(
		'url'            => array( 'relay_realtime_url', 'RELAY_REALTIME_URL' ),
		'site_key'       => array( 'relay_realtime_site_key', 'RELAY_REALTIME_SITE_KEY' ),
		'publish_secret' => array( 'relay_realtime_publish_secret', 'RELAY_REALTIME_PUBLISH_SECRET' ),
		'publish_key_id' => array( 'relay_realtime_publish_key_id', 'RELAY_REALTIME_PUBLISH_KEY_ID' ),
		'jwt_secret'     => array( 'relay_realtime_jwt_secret', 'RELAY_REALTIME_JWT_SECRET' ),
		'ed25519_seed'   => array( 'relay_realtime_ed25519_seed', 'RELAY_REALTIME_ED25519_SEED' ),
		'admin_key'      => array( 'relay_realtime_admin_key', 'RELAY_REALTIME_ADMIN_KEY' ),
	);

	/**
	 * Default settings.
	 *
	 * @var array<string,mixed>
	 */
	const DEFAULTS = array(
		'timeout'     => 2.0,
		'envelope'    => 'v2',
		'signature'   => 'v2',
		'payload_kid' => 'p1',
		'yjs'         => true,
		'debug'       => false,
		'token_ttl'   => 300,
		'max_retries' => 6,
		'e2e_types'   => array(),
	);

	/**
	 * Whether the stored settings option was not an array (corrupt).
	 *
	 * @var bool
	 */
	public static $settings_corrupt = false;

	/**
	 * One credential; the constant wins over the option.
	 *
	 * @param string $name Credential name (see CREDENTIALS).
	 * @return string Empty when unset.
	 */
	public static function get( $name ) {
		if ( ! isset( self::CREDENTIALS[ $name ] ) ) {
			return '';
		}
		list( $option, $constant ) = self::CREDENTIALS[ $name ];
		if ( defined( $constant ) && is_string( constant( $constant ) ) && '' !== constant( $constant ) ) {
			return (string) constant( $constant );
		}
		$value = get_option( $option, '' );
		if ( 'url' === $name ) {
			$value = is_string( $value ) ? untrailingslashit( $value ) : '';
		}
		if ( 'publish_key_id' === $name && ( ! is_string( $value ) || '' === $value ) ) {
			$value = 'k1';
		}
		return is_string( $value ) ? $value : '';
	}

	/**
	 * Whether a credential comes from a wp-config.php constant.
	 *
	 * @param string $name Credential name.
	 * @return bool
	 */
	public static function from_constant( $name ) {
		return isset( self::CREDENTIALS[ $name ] ) && defined( self::CREDENTIALS[ $name ][1] ) && '' !== (string) constant( self::CREDENTIALS[ $name ][1] );
	}

	/**
	 * Stores a credential in its non-autoloaded option.
	 *
	 * @param string $name  Credential name.
	 * @param string $value Value.
	 * @return void
	 */
	public static function set( $name, $value ) {
		if ( ! isset( self::CREDENTIALS[ $name ] ) ) {
			return;
		}
		self::put_option( self::CREDENTIALS[ $name ][0], (string) $value );
	}

	/**
	 * Writes an option that is never autoloaded, whether it exists or not.
	 *
	 * @param string $option Option name.
	 * @param mixed  $value  Value.
	 * @return void
	 */
	public static function put_option( $option, $value ) {
		if ( false === get_option( $option, false ) ) {
			if ( ! add_option( $option, $value, '', 'no' ) ) {
				update_option( $option, $value, false );
			}
			return;
		}
		update_option( $option, $value, false );
	}

	/**
	 * Whether the site has what it needs to publish.
	 *
	 * @return bool
	 */
	public static function is_connected() {
		return '' !== self::get( 'url' ) && '' !== self::get( 'site_key' ) && '' !== self::get( 'publish_secret' );
	}

	/**
	 * The site id: sha256_hex("site:" . site_key).
	 *
	 * @return string
	 */
	public static function site_id() {
		$key = self::get( 'site_key' );
		return '' === $key ? '' : hash( 'sha256', 'site:' . $key );
	}

	/**
	 * The tenant id: sha256_hex("tenant:" . site_key).
	 *
	 * @return string
	 */
	public static function tenant_id() {
		$key = self::get( 'site_key' );
		return '' === $key ? '' : hash( 'sha256', 'tenant:' . $key );
	}

	/**
	 * Full channel name for a bare or full name.
	 *
	 * @param string $name Bare name (`events`) or full (`site:{id}:events`).
	 * @return string
	 */
	public static function channel( $name ) {
		$name = (string) $name;
		if ( 0 === strpos( $name, 'site:' ) ) {
			return $name;
		}
		return 'site:' . self::site_id() . ':' . $name;
	}

	/**
	 * All settings, with defaults for missing or malformed values.
	 *
	 * @return array<string,mixed>
	 */
	public static function settings() {
		$stored = get_option( self::OPTION_SETTINGS, array() );
		if ( ! is_array( $stored ) ) {
			self::$settings_corrupt = true;
			$stored                 = array();
		}
		$s             = array_merge( self::DEFAULTS, array_intersect_key( $stored, self::DEFAULTS ) );
		$s['timeout']  = max( 0.2, min( 30.0, (float) $s['timeout'] ) );
		$s['envelope'] = in_array( $s['envelope'], array( 'v1', 'v2', 'none' ), true ) ? $s['envelope'] : 'v2';
		$s['signature'] = in_array( $s['signature'], array( 'v1', 'v2' ), true ) ? $s['signature'] : 'v2';
		$s['payload_kid'] = is_string( $s['payload_kid'] ) && preg_match( '/^[A-Za-z0-9._-]{1,64}$/', $s['payload_kid'] ) ? $s['payload_kid'] : 'p1';
		$s['yjs']         = (bool) $s['yjs'];
		$s['debug']       = (bool) $s['debug'];
		$s['token_ttl']   = max( 30, min( 3600, (int) $s['token_ttl'] ) );
		$s['max_retries'] = max( 0, min( 20, (int) $s['max_retries'] ) );
		$s['e2e_types']   = array_values( array_filter( array_map( 'strval', (array) $s['e2e_types'] ), static fn ( $t ) => (bool) preg_match( '/^[a-z0-9_-]{1,20}$/', $t ) ) );
		return $s;
	}

	/**
	 * One setting.
	 *
	 * @param string $name Setting name.
	 * @return mixed
	 */
	public static function setting( $name ) {
		$s = self::settings();
		return isset( $s[ $name ] ) ? $s[ $name ] : null;
	}

	/**
	 * Input keying material of the payload keys (never sent to relayd).
	 *
	 * @return string
	 */
	public static function seed() {
		$seed = ( defined( 'AUTH_KEY' ) ? AUTH_KEY : '' ) . ( defined( 'SECURE_AUTH_KEY' ) ? SECURE_AUTH_KEY : '' );
		/**
		 * Filters the input keying material of the payload encryption keys.
		 *
		 * Defaults to AUTH_KEY . SECURE_AUTH_KEY, as the wordsocket plugin.
		 * Changing it changes every key: browsers holding the old keys stop
		 * opening new events until they reload.
		 *
		 * @since 0.1.0
		 *
		 * @param string $seed The salts.
		 */
		return (string) apply_filters( 'relay_realtime_encryption_seed', $seed );
	}

	/**
	 * Envelope v1 key (raw), or '' when the site is not connected.
	 *
	 * @return string
	 */
	public static function v1_key() {
		$site_key = self::get( 'site_key' );
		$seed     = self::seed();
		return ( '' === $site_key || '' === $seed ) ? '' : Crypto::v1_key( $seed, $site_key );
	}

	/**
	 * Envelope v2 key (raw) for the configured payload key id, or ''.
	 *
	 * @param string|null $kid Key id (the configured one when null).
	 * @return string
	 */
	public static function v2_key( $kid = null ) {
		$site_key = self::get( 'site_key' );
		$seed     = self::seed();
		$kid      = null === $kid ? self::setting( 'payload_kid' ) : $kid;
		return ( '' === $site_key || '' === $seed ) ? '' : Crypto::v2_key( $seed, $site_key, $kid );
	}

	/**
	 * Key of an encrypted Yjs room (raw 32 bytes) for the configured payload key id, or ''.
	 * Derived from the payload key material, never sent to relayd; handed to the post's editors.
	 *
	 * @param string      $room Room name (`postType/{type}:{id}`).
	 * @param string|null $kid  Key id (the configured one when null).
	 * @return string
	 */
	public static function room_key( $room, $kid = null ) {
		$site_key = self::get( 'site_key' );
		$seed     = self::seed();
		$kid      = null === $kid ? self::setting( 'payload_kid' ) : $kid;
		return ( '' === $site_key || '' === $seed ) ? '' : Crypto::room_key( $seed, $site_key, $kid, $room );
	}

	/**
	 * Ed25519 seed (raw 32 bytes) when the site signs tokens with EdDSA, else ''.
	 *
	 * @return string
	 */
	public static function ed25519_seed() {
		$seed = Crypto::b64url_decode( self::get( 'ed25519_seed' ) );
		return ( is_string( $seed ) && 32 === strlen( $seed ) ) ? $seed : '';
	}

	/**
	 * Removes every stored credential (not constants).
	 *
	 * @return void
	 */
	public static function forget_credentials() {
		foreach ( self::CREDENTIALS as $name => $pair ) {
			if ( 'url' !== $name ) {
				delete_option( $pair[0] );
			}
		}
	}
}
