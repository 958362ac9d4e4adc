<?php
/**
 * Base test case: the real WordPress and the real relayd started by run.sh.
 *
 * @package RelayRealtime
 */

use PHPUnit\Framework\TestCase;
use RelayRealtime\Config;
use RelayRealtime\Publisher;
use RelayRealtime\Status;

/**
 * Helpers shared by the cases.
 */
abstract class Relay_Test_Case extends TestCase {

	/**
	 * Subscribers to stop after the test.
	 *
	 * @var Relay_Subscriber[]
	 */
	protected $subscribers = array();

	/**
	 * The fixture site relayctl created: site_key, site_id, publish_secret, publish_key_id, jwt_secret.
	 *
	 * @return array
	 */
	public static function site() {
		return json_decode( getenv( 'RRT_SITE_JSON' ), true );
	}

	/**
	 * Stores the fixture credentials in the plugin's options and empties its queues.
	 *
	 * @return void
	 */
	public static function connect_fixture() {
		$site = self::site();
		Config::set( 'url', getenv( 'RRT_RELAY_URL' ) );
		Config::set( 'site_key', $site['site_key'] );
		Config::set( 'publish_secret', $site['publish_secret'] );
		Config::set( 'publish_key_id', $site['publish_key_id'] ?? 'k1' );
		Config::set( 'jwt_secret', $site['jwt_secret'] );
		Config::set( 'admin_key', getenv( 'RRT_ADMIN_KEY' ) );
		update_option( Config::OPTION_SETTINGS, Config::DEFAULTS, true );
		Status::reset();
		Config::put_option( Publisher::OPTION_QUEUE, array() );
		Publisher::clear_dead_letters();
		update_option( Publisher::OPTION_NEXT_RETRY, 0, true );
		delete_option( Publisher::OPTION_LOCK );
	}

	/**
	 * Fresh state per test.
	 *
	 * @return void
	 */
	protected function setUp(): void {
		parent::setUp();
		self::connect_fixture();
		Publisher::flush( false ); // Drop anything a previous test left pending.
		wp_set_current_user( 0 );
	}

	/**
	 * Stops subscribers.
	 *
	 * @return void
	 */
	protected function tearDown(): void {
		foreach ( $this->subscribers as $s ) {
			$s->stop();
		}
		$this->subscribers = array();
		parent::tearDown();
	}

	/**
	 * Starts a subscriber and waits until relayd answered every channel.
	 *
	 * @param string[] $channels Full channel names.
	 * @param array    $opts     See Relay_Subscriber.
	 * @return Relay_Subscriber
	 */
	protected function subscribe( $channels, $opts = array() ) {
		$s                   = new Relay_Subscriber( $channels, $opts );
		$this->subscribers[] = $s;
		list( $ok, $refused ) = $s->wait_answers( $channels, 10 );
		if ( empty( $opts['allow_refusal'] ) ) {
			$this->assertEqualsCanonicalizing( $channels, array_unique( $ok ), 'relayd subscribed every channel: ' . $s->stderr );
		}
		return $s;
	}

	/**
	 * Runs relayctl.
	 *
	 * @param string[]    $args  Arguments.
	 * @param string|null $stdin Standard input.
	 * @return array{0:int,1:string,2:string} exit code, stdout, stderr.
	 */
	protected static function relayctl( $args, $stdin = null ) {
		$proc = proc_open( array_merge( array( getenv( 'RRT_RELAYCTL' ) ), $args ), array( 0 => array( 'pipe', 'r' ), 1 => array( 'pipe', 'w' ), 2 => array( 'pipe', 'w' ) ), $pipes );
		fwrite( $pipes[0], (string) $stdin );
		fclose( $pipes[0] );
		$out = stream_get_contents( $pipes[1] );
		$err = stream_get_contents( $pipes[2] );
		fclose( $pipes[1] );
		fclose( $pipes[2] );
		return array( proc_close( $proc ), $out, $err );
	}

	/**
	 * Controls relayd (start, stop, pause, resume).
	 *
	 * @param string $what Command.
	 * @return void
	 */
	protected static function relayd( $what ) {
		exec( escapeshellarg( getenv( 'RRT_RELAYD_CTL' ) ) . ' ' . escapeshellarg( $what ) . ' 2>&1', $out, $rc );
		if ( 0 !== $rc ) {
			throw new RuntimeException( "relayd $what failed: " . implode( "\n", $out ) );
		}
	}

	/**
	 * Base64 of the site's envelope v2 key.
	 *
	 * @return string
	 */
	protected static function v2_key_b64() {
		return base64_encode( Config::v2_key() );
	}

	/**
	 * A user with a role.
	 *
	 * @param string $role Role.
	 * @return int
	 */
	protected static function user( $role ) {
		$login = 'rrt_' . $role . '_' . wp_generate_password( 6, false );
		return (int) wp_insert_user(
			array(
				'user_login' => $login,
				'user_pass'  => wp_generate_password( 20 ),
				'user_email' => $login . '@example.test',
				'role'       => $role,
			)
		);
	}

	/**
	 * Dispatches a REST request in-process.
	 *
	 * @param string $method  Method.
	 * @param string $route   Route.
	 * @param array  $params  Parameters.
	 * @param array  $headers Headers.
	 * @return WP_REST_Response
	 */
	protected static function rest( $method, $route, $params = array(), $headers = array() ) {
		$request = new WP_REST_Request( $method, $route );
		foreach ( $params as $k => $v ) {
			$request->set_param( $k, $v );
		}
		foreach ( $headers as $k => $v ) {
			$request->set_header( $k, $v );
		}
		return rest_do_request( $request );
	}

	/**
	 * Asserts a WP_Error.
	 *
	 * @param mixed  $value   Value.
	 * @param string $message Message.
	 * @return void
	 */
	protected function assertWPError( $value, $message = '' ) {
		$this->assertInstanceOf( WP_Error::class, $value, $message );
	}

	/**
	 * Reads an option from the database, bypassing this process's cache (another process may have written it).
	 *
	 * @param string $name    Option.
	 * @param mixed  $default Default.
	 * @return mixed
	 */
	protected static function fresh_option( $name, $default = false ) {
		wp_cache_delete( $name, 'options' );
		wp_cache_delete( 'alloptions', 'options' );
		wp_cache_delete( 'notoptions', 'options' );
		return get_option( $name, $default );
	}

	/**
	 * Full channel name.
	 *
	 * @param string $name Bare name.
	 * @return string
	 */
	protected static function ch( $name ) {
		return Config::channel( $name );
	}
}
