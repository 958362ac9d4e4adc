<?php
/**
 * Plugin Name:       Relay Realtime
 * Plugin URI:        https://github.com/relay-realtime/relay
 * Description:       Turns WordPress action hooks into sealed, signed live events delivered through a self-hosted relayd, gives browsers short-lived tokens and loads the realtime client.
 * Version:           0.1.0
 * Requires at least: 6.1
 * Requires PHP:      8.1
 * Author:            Relay contributors
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       relay-realtime
 * Domain Path:       /languages
 *
 * @package RelayRealtime
 */

defined( 'ABSPATH' ) || exit;

define( 'RELAY_REALTIME_VERSION', '0.1.0' );
define( 'RELAY_REALTIME_FILE', __FILE__ );
define( 'RELAY_REALTIME_DIR', __DIR__ );

spl_autoload_register(
	static function ( $class ) {
		$prefix = 'RelayRealtime\\';
		if ( 0 !== strncmp( $class, $prefix, strlen( $prefix ) ) ) {
			return;
		}
		$name = strtolower( str_replace( '_', '-', substr( $class, strlen( $prefix ) ) ) );
		$file = RELAY_REALTIME_DIR . '/includes/class-' . $name . '.php';
		if ( is_readable( $file ) ) {
			require $file;
		}
	}
);

require_once RELAY_REALTIME_DIR . '/includes/functions.php';

register_activation_hook( __FILE__, array( 'RelayRealtime\\Plugin', 'activate' ) );
register_deactivation_hook( __FILE__, array( 'RelayRealtime\\Plugin', 'deactivate' ) );

add_action( 'plugins_loaded', array( 'RelayRealtime\\Plugin', 'boot' ) );
