<?php
/**
 * Bootstrap.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Wires the components to WordPress.
 *
 * @since 0.1.0
 */
final class Plugin {

	/**
	 * Whether boot() ran.
	 *
	 * @var bool
	 */
	private static $booted = false;

	/**
	 * `plugins_loaded`.
	 *
	 * @return void
	 */
	public static function boot() {
		if ( self::$booted ) {
			return;
		}
		self::$booted = true;
		load_plugin_textdomain( 'relay-realtime', false, dirname( plugin_basename( RELAY_REALTIME_FILE ) ) . '/languages' );
		Publisher::init();
		Triggers::register_builtins();
		Channels::reserve( 'relay-admin', 'manage_options', null );
		add_filter( 'relay_realtime_default_channels', array( __CLASS__, 'admin_channel' ), 5, 2 );
		add_action( 'rest_api_init', array( Tokens::class, 'register_routes' ) );
		add_action( 'rest_api_init', array( Admin::class, 'register_routes' ) );
		Assets::init();
		if ( is_admin() ) {
			Admin::init();
		}
		/**
		 * Fires once Relay Realtime is ready: register triggers, reservations and presence channels here.
		 *
		 * @since 0.1.0
		 *
		 * @param Api $api The public API (same as relay_realtime()).
		 */
		do_action( 'relay_realtime_loaded', Api::instance() );
	}

	/**
	 * Administrators also auto-subscribe to the test channel of the settings page.
	 *
	 * @param string[] $channels Channels.
	 * @param int      $user_id  User id.
	 * @return string[]
	 */
	public static function admin_channel( $channels, $user_id ) {
		if ( user_can( $user_id, 'manage_options' ) ) {
			$channels[] = 'relay-admin:test';
		}
		return $channels;
	}

	/**
	 * Activation: nothing is autoloaded but the small settings array.
	 *
	 * @return void
	 */
	public static function activate() {
		if ( false === get_option( Config::OPTION_SETTINGS, false ) ) {
			add_option( Config::OPTION_SETTINGS, Config::DEFAULTS, '', 'yes' );
		}
	}

	/**
	 * Deactivation: stops the retry cron (the queue is kept).
	 *
	 * @return void
	 */
	public static function deactivate() {
		wp_clear_scheduled_hook( Publisher::CRON_HOOK );
	}
}
