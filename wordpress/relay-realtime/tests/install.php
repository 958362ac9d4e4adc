<?php
/**
 * Installs WordPress into the test database and activates the plugin (run once by run.sh).
 *
 * @package RelayRealtime
 */

define( 'WP_INSTALLING', true );
$_SERVER['HTTP_HOST']   = parse_url( getenv( 'RRT_WP_URL' ), PHP_URL_HOST ) . ':' . parse_url( getenv( 'RRT_WP_URL' ), PHP_URL_PORT );
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
require getenv( 'RRT_WP_DIR' ) . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

$result = wp_install( 'Relay Test', 'admin', 'admin@example.test', true, '', wp_generate_password( 24 ) );
if ( empty( $result['user_id'] ) ) {
	fwrite( STDERR, "wp_install failed\n" );
	exit( 1 );
}
// Plain permalinks; the log must be empty before activation so the activation test sees only what activation wrote.
@unlink( WP_DEBUG_LOG );
$activated = activate_plugin( 'relay-realtime/relay-realtime.php' );
if ( is_wp_error( $activated ) ) {
	fwrite( STDERR, 'activation failed: ' . $activated->get_error_message() . "\n" );
	exit( 1 );
}
// What activation wrote to the error log (checked by ActivationTest).
copy( file_exists( WP_DEBUG_LOG ) ? WP_DEBUG_LOG : '/dev/null', getenv( 'RRT_TMP' ) . '/activation.log' );
echo "installed\n";
