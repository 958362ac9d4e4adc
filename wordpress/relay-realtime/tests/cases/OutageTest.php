<?php
/**
 * relayd down or stalled: the page is not held past the timeout, and the event is delivered later.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Config;
use RelayRealtime\Publisher;

/**
 * Real page requests (php -S) against a stopped relayd and a relay that never answers.
 */
final class OutageTest extends Relay_Test_Case {

	/**
	 * Requests the fixture page that publishes `page.hit` with an id; returns [seconds, body].
	 *
	 * @param string $id Id.
	 * @return array{0:float,1:string}
	 */
	private static function hit( $id ) {
		$t = microtime( true );
		$r = wp_remote_get( getenv( 'RRT_WP_URL' ) . '/?rrt_publish=' . rawurlencode( $id ), array( 'timeout' => 30 ) );
		return array( microtime( true ) - $t, is_wp_error( $r ) ? $r->get_error_message() : wp_remote_retrieve_body( $r ) );
	}

	/**
	 * Ids of the queued page.hit events (the queue is sealed; the label and our own key tell which is which).
	 *
	 * @return int
	 */
	private static function queued() {
		$q = self::fresh_option( Publisher::OPTION_QUEUE, array() );
		return is_array( $q ) ? count( $q ) : -1;
	}

	public function test_relay_down_then_stalled_then_back() {
		$settings            = Config::DEFAULTS;
		$settings['timeout'] = 1.0;
		update_option( Config::OPTION_SETTINGS, $settings, true );
		$id_down    = 'down-' . wp_generate_password( 6, false );
		$id_stalled = 'stalled-' . wp_generate_password( 6, false );

		// 1. relayd stopped: connection refused, the page is fast, the event is queued.
		self::relayd( 'stop' );
		try {
			list( $secs, $body ) = self::hit( $id_down );
			$this->assertSame( 'ok', $body );
			$this->assertLessThan( 2.0, $secs, 'page not held by a dead relay' );
			$this->assertSame( 1, self::queued() );
			$this->assertSame( 'unreachable', self::fresh_option( 'relay_realtime_status' )['error']['code'] );

			// 2. A relay that accepts TCP but never answers: the page waits at most the timeout.
			$blackhole = stream_socket_server( 'tcp://127.0.0.1:0', $errno, $errstr );
			$this->assertNotFalse( $blackhole, $errstr );
			$port = (int) substr( strrchr( stream_socket_get_name( $blackhole, false ), ':' ), 1 );
			Config::set( 'url', 'http://127.0.0.1:' . $port );
			list( $secs, $body ) = self::hit( $id_stalled );
			fclose( $blackhole );
			Config::set( 'url', getenv( 'RRT_RELAY_URL' ) );
			$this->assertSame( 'ok', $body );
			$this->assertGreaterThanOrEqual( 0.9, $secs, 'the stalled relay was really waited for' );
			$this->assertLessThan( 1.0 + 1.5, $secs, 'page held at most the 1 s timeout (+ WordPress itself)' );
			$this->assertSame( 2, self::queued() );
		} finally {
			self::relayd( 'start' );
		}

		// 3. relayd back: the next request after the retry time delivers both, once each.
		$sub = $this->subscribe( array( self::ch( 'events' ) ), array( 'payload_key' => self::v2_key_b64() ) );
		update_option( Publisher::OPTION_NEXT_RETRY, time() - 1, true ); // The backoff has passed.
		$r = wp_remote_get( getenv( 'RRT_WP_URL' ) . '/?rrt_noop=1', array( 'timeout' => 10 ) );
		$this->assertSame( 200, wp_remote_retrieve_response_code( $r ) );
		$this->assertTrue( $sub->wait_for( fn () => count( $sub->messages( 'page.hit' ) ) >= 2, 10 ), wp_json_encode( $sub->lines ) );
		$ids = array_map( static fn ( $m ) => $m['data']['id'], $sub->messages( 'page.hit' ) );
		$this->assertSame( array( $id_down, $id_stalled ), $ids );
		$this->assertSame( 0, self::queued() );
		$this->assertNull( self::fresh_option( 'relay_realtime_status', array( 'error' => null ) )['error'] ?? null );
		usleep( 500000 );
		$this->assertCount( 2, $sub->messages( 'page.hit' ), 'no duplicates' );
	}

	public function test_concurrent_failing_requests_lose_nothing() {
		$ids = array();
		for ( $i = 0; $i < 8; $i++ ) {
			$ids[] = 'c' . $i . '-' . wp_generate_password( 4, false );
		}
		self::relayd( 'stop' );
		try {
			$requests = array_map( static fn ( $id ) => array( 'url' => getenv( 'RRT_WP_URL' ) . '/?rrt_publish=' . $id ), $ids );
			$answers  = Requests::request_multiple( $requests, array( 'timeout' => 30 ) );
			foreach ( $answers as $a ) {
				$this->assertSame( 'ok', $a->body );
			}
			$this->assertSame( 8, self::queued(), 'every failed publish was persisted' );
		} finally {
			self::relayd( 'start' );
		}
		$sub = $this->subscribe( array( self::ch( 'events' ) ), array( 'payload_key' => self::v2_key_b64() ) );
		Publisher::make_due();
		$this->assertSame( 8, Publisher::flush()['sent'] );
		$sub->wait_for( fn () => count( $sub->messages( 'page.hit' ) ) >= 8, 10 );
		$got = array_map( static fn ( $m ) => $m['data']['id'], $sub->messages( 'page.hit' ) );
		$this->assertEqualsCanonicalizing( $ids, $got );
	}

	public function test_retries_end_in_the_dead_letter_queue() {
		Config::set( 'url', 'http://127.0.0.1:9' ); // Nothing listens on discard.
		$settings                = Config::DEFAULTS;
		$settings['max_retries'] = 2;
		update_option( Config::OPTION_SETTINGS, $settings, true );
		relay_realtime_publish( 'events', 'doomed', array() );
		$this->assertSame( 1, Publisher::flush()['queued'] );
		Publisher::make_due();
		$this->assertSame( 1, Publisher::flush()['queued'] );
		Publisher::make_due();
		$c = Publisher::flush();
		$this->assertSame( 1, $c['dead'] );
		$this->assertSame( 0, count( Publisher::queue() ) );
		$dead = Publisher::dead_letters();
		$this->assertSame( 1, $dead['count'] );
		$this->assertSame( 'doomed', $dead['items'][0]['label'] );
		$this->assertSame( 'unreachable', $dead['items'][0]['last_error'] );
		$this->assertNotFalse( wp_next_scheduled( Publisher::CRON_HOOK ), 'a WP-Cron retry was scheduled' );

		// Requeue once relayd is reachable again: delivered.
		Config::set( 'url', getenv( 'RRT_RELAY_URL' ) );
		$sub = $this->subscribe( array( self::ch( 'events' ) ), array( 'payload_key' => self::v2_key_b64() ) );
		wp_set_current_user( 1 );
		\RelayRealtime\Admin::perform( 'requeue', array() );
		$this->assertNotNull( $sub->wait_message( 'doomed', 10 ) );
		$this->assertSame( 0, Publisher::dead_letters()['count'] );
	}
}
