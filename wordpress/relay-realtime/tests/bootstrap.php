<?php
/**
 * PHPUnit bootstrap: loads the WordPress that run.sh installed (no wp-phpunit), connects the plugin to the fixture site.
 *
 * @package RelayRealtime
 */

foreach ( array( 'RRT_WP_DIR', 'RRT_RELAY_URL', 'RRT_SITE_JSON', 'RRT_RELAYCTL' ) as $rrt_var ) {
	if ( false === getenv( $rrt_var ) ) {
		fwrite( STDERR, "$rrt_var is not set: run tests/run.sh\n" );
		exit( 1 );
	}
}
$_SERVER['HTTP_HOST']   = parse_url( getenv( 'RRT_WP_URL' ), PHP_URL_HOST ) . ':' . parse_url( getenv( 'RRT_WP_URL' ), PHP_URL_PORT );
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REMOTE_ADDR'] = '127.0.0.1';
require getenv( 'RRT_WP_DIR' ) . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
require __DIR__ . '/includes/class-relay-test-case.php';
require __DIR__ . '/includes/class-subscriber.php';

Relay_Test_Case::connect_fixture();
