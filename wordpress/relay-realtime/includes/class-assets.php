<?php
/**
 * Enqueues the browser client and the Gutenberg provider with their config.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Both scripts are ES modules. WordPress 6.1 has no script-module API, so they
 * are registered as ordinary handles and printed with `type="module"` through
 * `script_loader_tag`. `window.RelayRealtimeConfig` is printed once, inline,
 * before the client.
 *
 * @since 0.1.0
 */
final class Assets {

	const CLIENT = 'relay-realtime-client';
	const YJS    = 'relay-realtime-yjs';

	/**
	 * Whether the config was printed.
	 *
	 * @var bool
	 */
	private static $localized = false;

	/**
	 * Post ids whose rooms the page token covers.
	 *
	 * @var int[]
	 */
	private static $post_ids = array();

	/**
	 * Hooks.
	 *
	 * @return void
	 */
	public static function init() {
		add_action( 'wp_enqueue_scripts', array( __CLASS__, 'enqueue_client' ) );
		add_action( 'admin_enqueue_scripts', array( __CLASS__, 'enqueue_client' ) );
		add_action( 'enqueue_block_editor_assets', array( __CLASS__, 'enqueue_provider' ) );
		add_filter( 'script_loader_tag', array( __CLASS__, 'module_tag' ), 10, 3 );
	}

	/**
	 * Whether the client loads for the current visitor.
	 *
	 * @return bool
	 */
	public static function should_enqueue() {
		$user_id = get_current_user_id();
		$default = Config::is_connected() && ( $user_id > 0 || ! empty( apply_filters( 'relay_realtime_public_channels', array(), 0 ) ) );
		/**
		 * Filters whether the browser client is loaded on this page.
		 *
		 * @since 0.1.0
		 *
		 * @param bool $enqueue Default: connected, and the user is logged in or a public channel is open.
		 */
		return (bool) apply_filters( 'relay_realtime_enqueue_client', $default );
	}

	/**
	 * Registers the handles.
	 *
	 * @return void
	 */
	private static function register() {
		$base = plugins_url( 'assets/js/', RELAY_REALTIME_FILE );
		if ( ! wp_script_is( self::CLIENT, 'registered' ) ) {
			// The page entry point: imports client.js and yjs-provider.js, creates window.RelayRealtime.
			wp_register_script( self::CLIENT, $base . 'boot.js', array(), RELAY_REALTIME_VERSION, true );
		}
		if ( ! wp_script_is( self::YJS, 'registered' ) ) {
			// No file of its own: boot.js adds the provider to `sync.providers` when wp.hooks is on the page,
			// so this handle only puts wp-hooks before it (module scripts run after classic ones).
			wp_register_script( self::YJS, false, array( 'wp-hooks', self::CLIENT ), RELAY_REALTIME_VERSION, true );
		}
	}

	/**
	 * `wp_enqueue_scripts` / `admin_enqueue_scripts`.
	 *
	 * @return void
	 */
	public static function enqueue_client() {
		if ( ! self::should_enqueue() ) {
			return;
		}
		self::register();
		wp_enqueue_script( self::CLIENT );
		self::localize();
	}

	/**
	 * Whether real-time collaboration is available (wp-rtc-provider.md §2).
	 *
	 * @return bool
	 */
	public static function collaboration_available() {
		$available = function_exists( 'wp_is_collaboration_enabled' ) && wp_is_collaboration_enabled();
		/**
		 * Filters whether the Gutenberg Yjs provider is loaded.
		 *
		 * Default: `wp_is_collaboration_enabled()` exists and is true (Gutenberg ≥ 23.8 or WordPress ≥ 7.0),
		 * the `yjs` setting is on and the site is connected.
		 *
		 * @since 0.1.0
		 *
		 * @param bool $available Whether to load the provider.
		 */
		return (bool) apply_filters( 'relay_realtime_collaboration_available', $available && (bool) Config::setting( 'yjs' ) && Config::is_connected() );
	}

	/**
	 * `enqueue_block_editor_assets`.
	 *
	 * @return void
	 */
	public static function enqueue_provider() {
		$post = get_post();
		if ( $post ) {
			self::$post_ids[] = (int) $post->ID;
		}
		if ( ! self::collaboration_available() || ! self::should_enqueue() ) {
			return;
		}
		self::register();
		wp_enqueue_script( self::YJS );
		self::localize();
	}

	/**
	 * The config object for the current user.
	 *
	 * @return array
	 */
	public static function config() {
		$user_id  = get_current_user_id();
		$post_ids = self::$post_ids;
		$screen   = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
		if ( $screen && 'post' === $screen->base && isset( $_GET['post'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- read-only.
			$post_ids[] = absint( $_GET['post'] ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended
		}
		$minted = Tokens::mint( $user_id, array_unique( array_filter( $post_ids ) ) );
		$kid    = (string) Config::setting( 'payload_kid' );
		$keys   = array();
		/**
		 * Filters whether the current user receives the payload keys (can read sealed events).
		 *
		 * @since 0.1.0
		 *
		 * @param bool $can     Default: logged-in users with the `read` capability.
		 * @param int  $user_id User id.
		 */
		if ( apply_filters( 'relay_realtime_can_read_sealed', $user_id > 0 && user_can( $user_id, 'read' ), $user_id ) ) {
			$keys[ $kid ] = base64_encode( Config::v2_key( $kid ) ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
			$keys['v1']   = base64_encode( Config::v1_key() ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
		}
		$config = array(
			'url'           => Config::get( 'url' ),
			'siteId'        => Config::site_id(),
			'token'         => is_wp_error( $minted ) ? '' : $minted['token'],
			'exp'           => is_wp_error( $minted ) ? 0 : $minted['exp'],
			// A refreshed token keeps the rooms of the posts on this page (and their keys).
			'tokenEndpoint' => empty( array_filter( $post_ids ) ) ? rest_url( Tokens::REST_NAMESPACE . '/token' ) : add_query_arg( 'post_id', implode( ',', array_unique( array_filter( array_map( 'absint', $post_ids ) ) ) ), rest_url( Tokens::REST_NAMESPACE . '/token' ) ),
			'nonce'         => wp_create_nonce( 'wp_rest' ),
			'channels'      => is_wp_error( $minted ) ? array() : $minted['channels'],
			'payloadKeys'   => (object) $keys,
			'kid'           => $kid,
			'yjs'           => array(
				'enabled'    => self::collaboration_available(),
				// relayd scopes `/yjs/{room}` to `site:{site_id}:yjs:{room}` itself: the room is the bare Gutenberg name.
				'roomPrefix' => '',
			),
			'debug'         => (bool) Config::setting( 'debug' ),
			'e2e'           => is_wp_error( $minted ) ? Tokens::room_keys( array() ) : $minted['e2e'],
		);
		/**
		 * Filters window.RelayRealtimeConfig.
		 *
		 * @since 0.1.0
		 *
		 * @param array $config  Config.
		 * @param int   $user_id User id.
		 */
		return (array) apply_filters( 'relay_realtime_client_config', $config, $user_id );
	}

	/**
	 * Prints the config once, before the client module.
	 *
	 * @return void
	 */
	private static function localize() {
		if ( self::$localized ) {
			return;
		}
		self::$localized = true;
		wp_add_inline_script( self::CLIENT, 'window.RelayRealtimeConfig = ' . wp_json_encode( self::config(), JSON_UNESCAPED_SLASHES | JSON_HEX_TAG | JSON_HEX_AMP ) . ';', 'before' );
	}

	/**
	 * Prints our handles as ES modules.
	 *
	 * @param string $tag    Script tag.
	 * @param string $handle Handle.
	 * @param string $src    Source.
	 * @return string
	 */
	public static function module_tag( $tag, $handle, $src ) {
		if ( self::CLIENT !== $handle && self::YJS !== $handle ) {
			return $tag;
		}
		$id = preg_quote( $handle . '-js', '#' );
		return (string) preg_replace_callback(
			'#<script(?P<attrs>[^>]*\sid=([\'"])' . $id . '\2[^>]*)>#',
			static function ( $m ) {
				$attrs = preg_replace( '#\stype=([\'"])[^\'"]*\1#', '', $m['attrs'] );
				return '<script type="module"' . $attrs . '>';
			},
			$tag,
			1
		);
	}

	/**
	 * Forgets the printed state (tests).
	 *
	 * @return void
	 */
	public static function reset() {
		self::$localized = false;
		self::$post_ids  = array();
	}
}
