<?php
/**
 * Sealed, signed, queued publishing.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Publishes events to relayd without blocking the page.
 *
 * `publish()` seals the event at once (so the data is a snapshot of the moment
 * the hook fired) and keeps it in memory. On `shutdown`, after the response has
 * been sent where the SAPI allows it (`fastcgi_finish_request`), everything is
 * sent in one request (`/publish`, or `/publish/batch` for more than one) with
 * the configured timeout. What fails is persisted in a non-autoloaded queue and
 * retried with backoff (the next request's shutdown or WP-Cron); after
 * `max_retries` attempts, or at once for permanent refusals, it goes to the
 * dead-letter queue shown in the settings page. Every item carries an
 * idempotency key, so a retry of a publish relayd did accept is not delivered twice.
 *
 * @since 0.1.0
 */
final class Publisher {

	const OPTION_QUEUE       = 'relay_realtime_queue';
	const OPTION_DEAD        = 'relay_realtime_dead_letters';
	const OPTION_DEAD_COUNT  = 'relay_realtime_dead_letter_count';
	const OPTION_NEXT_RETRY  = 'relay_realtime_next_retry';
	const OPTION_LOCK        = 'relay_realtime_queue_lock';
	const CRON_HOOK          = 'relay_realtime_retry';
	const MAX_BATCH          = 100;
	const MAX_QUEUE          = 1000;
	const MAX_DEAD_KEPT      = 50;

	/**
	 * Publications of this request, not yet sent.
	 *
	 * @var array<int,array>
	 */
	private static $pending = array();

	/**
	 * Whether the shutdown flush is hooked.
	 *
	 * @var bool
	 */
	private static $hooked = false;

	/**
	 * Depth of the queue lock held by this request.
	 *
	 * @var int
	 */
	private static $holding = 0;

	/**
	 * Hooks the retry cron.
	 *
	 * @return void
	 */
	public static function init() {
		add_action( self::CRON_HOOK, array( __CLASS__, 'retry' ) );
		// A due retry is handled by the first request that ends after it.
		$next = (int) get_option( self::OPTION_NEXT_RETRY, 0 );
		if ( $next > 0 && $next <= time() ) {
			self::hook_shutdown();
		}
	}

	/**
	 * Queues one event for the end of the request.
	 *
	 * @param string $channel Bare (`events`) or full (`site:{id}:events`) channel name.
	 * @param string $event   Event name.
	 * @param mixed  $data    JSON-encodable data.
	 * @param array  $args    {
	 *     Optional.
	 *     @type string $envelope `v2` (default setting), `v1` or `none` (plaintext, e.g. public channels).
	 *     @type bool   $sync     Send now and return relayd's answer instead of queueing.
	 * }
	 * @return true|array|\WP_Error True when queued; the result array when sync.
	 */
	public static function publish( $channel, $event, $data, $args = array() ) {
		if ( ! Config::is_connected() ) {
			return new \WP_Error( 'relay_not_connected', __( 'The site is not connected to relayd.', 'relay-realtime' ) );
		}
		$item = self::build( (string) $channel, (string) $event, $data, $args );
		if ( is_wp_error( $item ) ) {
			return $item;
		}
		if ( ! empty( $args['sync'] ) ) {
			$results = self::send( array( $item ) );
			$result  = $results[0];
			if ( 'retry' === $result['outcome'] ) {
				self::persist( array( self::failed( $item, $result ) ) );
			} elseif ( 'dead' === $result['outcome'] ) {
				self::bury( array( self::failed( $item, $result ) ) );
			}
			return $result;
		}
		self::$pending[] = $item;
		self::hook_shutdown();
		return true;
	}

	/**
	 * Builds a sealed publication.
	 *
	 * @param string $channel Channel.
	 * @param string $event   Event.
	 * @param mixed  $data    Data.
	 * @param array  $args    Arguments (see publish()).
	 * @return array|\WP_Error
	 */
	public static function build( $channel, $event, $data, $args = array() ) {
		if ( '' === $channel || '' === $event || strlen( $channel ) > 200 || strlen( $event ) > 200 ) {
			return new \WP_Error( 'relay_invalid', __( 'Channel and event must be 1–200 characters.', 'relay-realtime' ) );
		}
		$full     = Config::channel( $channel );
		$envelope = isset( $args['envelope'] ) ? (string) $args['envelope'] : (string) Config::setting( 'envelope' );
		/**
		 * Filters the data of an event before it is sealed.
		 *
		 * @since 0.1.0
		 *
		 * @param mixed  $data    Event data.
		 * @param string $event   Event name.
		 * @param string $channel Full channel name.
		 */
		$data = apply_filters( 'relay_realtime_event_data', $data, $event, $full );
		if ( false === wp_json_encode( $data ) ) {
			return new \WP_Error( 'relay_invalid', __( 'Event data is not JSON-encodable.', 'relay-realtime' ) );
		}
		if ( 'none' === $envelope ) {
			$wire_event = $event;
			$wire_data  = $data;
		} else {
			$plain = Crypto::plaintext( $event, $data );
			if ( 'v1' === $envelope ) {
				$wire_data = Crypto::seal_v1( $plain, Config::v1_key() );
			} else {
				$kid       = (string) Config::setting( 'payload_kid' );
				$wire_data = Crypto::seal_v2( $plain, Config::v2_key( $kid ), $kid, $full );
			}
			$wire_event = 'encrypted';
		}
		return array(
			'channel'         => $full,
			'event'           => $wire_event,
			'data'            => $wire_data,
			'idempotency_key' => wp_generate_uuid4(),
			'label'           => $event,
			'attempts'        => 0,
		);
	}

	/**
	 * Hooks the end-of-request flush once.
	 *
	 * @return void
	 */
	private static function hook_shutdown() {
		if ( ! self::$hooked ) {
			self::$hooked = true;
			add_action( 'shutdown', array( __CLASS__, 'on_shutdown' ), 1000 );
		}
	}

	/**
	 * Sends this request's events (and due retries) after the response.
	 *
	 * @return void
	 */
	public static function on_shutdown() {
		if ( empty( self::$pending ) && (int) get_option( self::OPTION_NEXT_RETRY, 0 ) > time() ) {
			return;
		}
		if ( function_exists( 'fastcgi_finish_request' ) && ! headers_sent() ) {
			fastcgi_finish_request();
		} elseif ( function_exists( 'litespeed_finish_request' ) ) {
			litespeed_finish_request();
		}
		self::flush();
	}

	/**
	 * Sends pending events and due retries now. Returns counts for tests and WP-CLI.
	 *
	 * @param bool $include_queue Whether to retry the persisted queue (when due).
	 * @return array{sent:int,queued:int,dead:int}
	 */
	public static function flush( $include_queue = true ) {
		$items         = self::$pending;
		self::$pending = array();
		$locked        = false;
		if ( $include_queue ) {
			$next = (int) get_option( self::OPTION_NEXT_RETRY, 0 );
			if ( $next > 0 && $next <= time() && self::lock() ) {
				$locked = true;
				$items  = array_merge( self::take_queue(), $items );
			}
		}
		$counts = array(
			'sent'   => 0,
			'queued' => 0,
			'dead'   => 0,
		);
		if ( empty( $items ) ) {
			if ( $locked ) {
				self::unlock();
			}
			return $counts;
		}
		$retry = array();
		$dead  = array();
		foreach ( array_chunk( $items, self::MAX_BATCH ) as $chunk ) {
			foreach ( self::send( $chunk ) as $i => $result ) {
				if ( 'sent' === $result['outcome'] ) {
					++$counts['sent'];
				} elseif ( 'dead' === $result['outcome'] ) {
					$dead[] = self::failed( $chunk[ $i ], $result );
				} else {
					$retry[] = self::failed( $chunk[ $i ], $result );
				}
			}
		}
		foreach ( $retry as $k => $item ) {
			if ( $item['attempts'] > (int) Config::setting( 'max_retries' ) ) {
				$dead[] = $item;
				unset( $retry[ $k ] );
			}
		}
		self::persist( array_values( $retry ) );
		self::bury( $dead );
		$counts['queued'] = count( $retry );
		$counts['dead']   = count( $dead );
		if ( $locked ) {
			self::unlock();
		}
		return $counts;
	}

	/**
	 * WP-Cron retry.
	 *
	 * @return void
	 */
	public static function retry() {
		self::flush( true );
	}

	/**
	 * Sends items in one request; returns one result per item.
	 *
	 * @param array $items Publications.
	 * @return array<int,array{outcome:string,code:string,message:string,status:int}>
	 */
	private static function send( $items ) {
		$wire = array_map(
			static function ( $item ) {
				return array(
					'channel'         => $item['channel'],
					'event'           => $item['event'],
					'data'            => $item['data'],
					'idempotency_key' => $item['idempotency_key'],
				);
			},
			$items
		);
		if ( 1 === count( $wire ) ) {
			$answer = Http::signed( 'POST', '/publish', (string) wp_json_encode( $wire[0], JSON_UNESCAPED_SLASHES ) );
			return array( self::classify( $answer ) );
		}
		$answer = Http::signed( 'POST', '/publish/batch', (string) wp_json_encode( array( 'publications' => $wire ), JSON_UNESCAPED_SLASHES ) );
		$whole  = self::classify( $answer );
		if ( 'sent' !== $whole['outcome'] || ! is_array( $answer['json'] ) || ! isset( $answer['json']['results'] ) || ! is_array( $answer['json']['results'] ) ) {
			if ( 'sent' === $whole['outcome'] ) {
				$whole = self::outcome( 'retry', 'invalid_response', 'batch answer without results', $answer['status'] );
				Status::error( 'invalid_response', 'batch answer without results', $answer['status'] );
			}
			return array_fill( 0, count( $items ), $whole );
		}
		$out = array();
		foreach ( array_keys( $items ) as $i ) {
			$r = isset( $answer['json']['results'][ $i ] ) ? $answer['json']['results'][ $i ] : null;
			if ( is_array( $r ) && ! empty( $r['ok'] ) ) {
				$out[] = self::outcome( 'sent', '', '', 200 );
			} else {
				$code  = is_array( $r ) && isset( $r['error'] ) ? (string) $r['error'] : 'invalid_response';
				$out[] = self::outcome( self::permanent( $code ) ? 'dead' : 'retry', $code, is_array( $r ) && isset( $r['message'] ) ? (string) $r['message'] : '', 200 );
				Status::error( $code, is_array( $r ) && isset( $r['message'] ) ? (string) $r['message'] : '', 200 );
			}
		}
		return $out;
	}

	/**
	 * Whether an error code will not get better by retrying.
	 *
	 * @param string $code Error code.
	 * @return bool
	 */
	private static function permanent( $code ) {
		return in_array( $code, array( 'quota_exceeded', 'invalid_body', 'invalid_channel', 'invalid_data', 'payload_too_large', 'message_too_large', 'batch_too_large', 'forbidden', 'malformed_request' ), true );
	}

	/**
	 * Maps one relayd answer to an outcome and records the connection state.
	 *
	 * @param array $answer Http result.
	 * @return array
	 */
	private static function classify( $answer ) {
		if ( '' === $answer['code'] ) {
			Status::ok();
			return self::outcome( 'sent', '', '', $answer['status'] );
		}
		Status::error( $answer['code'], $answer['message'], $answer['status'] );
		return self::outcome( self::permanent( $answer['code'] ) ? 'dead' : 'retry', $answer['code'], $answer['message'], $answer['status'] );
	}

	/**
	 * Outcome array.
	 *
	 * @param string $outcome sent, retry or dead.
	 * @param string $code    Error code.
	 * @param string $message Detail.
	 * @param int    $status  HTTP status.
	 * @return array
	 */
	private static function outcome( $outcome, $code, $message, $status ) {
		return array(
			'outcome' => $outcome,
			'code'    => $code,
			'message' => $message,
			'status'  => (int) $status,
		);
	}

	/**
	 * The item after a failed attempt.
	 *
	 * @param array $item   Publication.
	 * @param array $result Outcome.
	 * @return array
	 */
	private static function failed( $item, $result ) {
		$item['attempts']   = (int) $item['attempts'] + 1;
		$item['last_error'] = $result['code'];
		$item['failed_at']  = time();
		return $item;
	}

	/**
	 * Reads a list option, resetting it (with a notice) when it is corrupt.
	 *
	 * @param string $option Option name.
	 * @return array
	 */
	private static function read_list( $option ) {
		$value = get_option( $option, array() );
		if ( ! is_array( $value ) ) {
			Config::put_option( $option, array() );
			Status::error( 'corrupt_option', $option, 0 );
			return array();
		}
		return array_values(
			array_filter(
				$value,
				static function ( $item ) {
					return is_array( $item ) && isset( $item['channel'], $item['event'], $item['idempotency_key'] ) && array_key_exists( 'data', $item );
				}
			)
		);
	}

	/**
	 * Takes the persisted queue (emptying it).
	 *
	 * @return array
	 */
	private static function take_queue() {
		wp_cache_delete( self::OPTION_QUEUE, 'options' );
		$queue = self::read_list( self::OPTION_QUEUE );
		Config::put_option( self::OPTION_QUEUE, array() );
		update_option( self::OPTION_NEXT_RETRY, 0, true );
		return $queue;
	}

	/**
	 * Adds items to the persisted retry queue and schedules the next attempt.
	 *
	 * @param array $items Failed publications.
	 * @return void
	 */
	private static function persist( $items ) {
		if ( empty( $items ) ) {
			return;
		}
		$locked = self::lock_wait( 1.0 );
		wp_cache_delete( self::OPTION_QUEUE, 'options' );
		$queue = array_merge( self::read_list( self::OPTION_QUEUE ), $items );
		$over  = count( $queue ) - self::MAX_QUEUE;
		if ( $over > 0 ) {
			self::bury( array_slice( $queue, 0, $over ) );
			$queue = array_slice( $queue, $over );
		}
		Config::put_option( self::OPTION_QUEUE, $queue );
		$attempts = min( array_map( 'intval', wp_list_pluck( $items, 'attempts' ) ) );
		/**
		 * Filters the delay before the next retry of failed publishes.
		 *
		 * @since 0.1.0
		 *
		 * @param int $delay    Seconds (10, 20, 40, … up to 600).
		 * @param int $attempts Attempts made so far.
		 */
		$delay = (int) apply_filters( 'relay_realtime_retry_delay', min( 600, 10 * ( 2 ** max( 0, $attempts - 1 ) ) ), $attempts );
		$at    = time() + max( 0, $delay );
		update_option( self::OPTION_NEXT_RETRY, $at, true );
		if ( ! wp_next_scheduled( self::CRON_HOOK ) ) {
			wp_schedule_single_event( $at, self::CRON_HOOK );
		}
		if ( $locked ) {
			self::unlock();
		}
	}

	/**
	 * Moves items to the dead-letter queue.
	 *
	 * @param array $items Publications that will not be retried.
	 * @return void
	 */
	private static function bury( $items ) {
		if ( empty( $items ) ) {
			return;
		}
		$locked = self::lock_wait( 1.0 );
		wp_cache_delete( self::OPTION_DEAD, 'options' );
		wp_cache_delete( self::OPTION_DEAD_COUNT, 'options' );
		$dead = array_merge( self::read_list( self::OPTION_DEAD ), $items );
		Config::put_option( self::OPTION_DEAD, array_slice( $dead, -self::MAX_DEAD_KEPT ) );
		Config::put_option( self::OPTION_DEAD_COUNT, (int) get_option( self::OPTION_DEAD_COUNT, 0 ) + count( $items ) );
		if ( $locked ) {
			self::unlock();
		}
		/**
		 * Fires when publications are given up on.
		 *
		 * @since 0.1.0
		 *
		 * @param array $items Publications (sealed; `label` holds the event name).
		 */
		do_action( 'relay_realtime_dead_letters', $items );
	}

	/**
	 * The persisted retry queue.
	 *
	 * @return array
	 */
	public static function queue() {
		return self::read_list( self::OPTION_QUEUE );
	}

	/**
	 * The kept dead letters (newest last) and their total count.
	 *
	 * @return array{count:int,items:array}
	 */
	public static function dead_letters() {
		return array(
			'count' => (int) get_option( self::OPTION_DEAD_COUNT, 0 ),
			'items' => self::read_list( self::OPTION_DEAD ),
		);
	}

	/**
	 * Moves the kept dead letters back into the retry queue, due now.
	 *
	 * @return int How many.
	 */
	public static function requeue_dead_letters() {
		$dead = self::read_list( self::OPTION_DEAD );
		foreach ( $dead as &$item ) {
			$item['attempts'] = 0;
		}
		unset( $item );
		Config::put_option( self::OPTION_DEAD, array() );
		Config::put_option( self::OPTION_DEAD_COUNT, 0 );
		if ( ! empty( $dead ) ) {
			Config::put_option( self::OPTION_QUEUE, array_merge( self::read_list( self::OPTION_QUEUE ), $dead ) );
			update_option( self::OPTION_NEXT_RETRY, time(), true );
		}
		return count( $dead );
	}

	/**
	 * Empties the dead-letter queue.
	 *
	 * @return void
	 */
	public static function clear_dead_letters() {
		Config::put_option( self::OPTION_DEAD, array() );
		Config::put_option( self::OPTION_DEAD_COUNT, 0 );
	}

	/**
	 * Makes the persisted queue due now (tests, "retry now" button).
	 *
	 * @return void
	 */
	public static function make_due() {
		if ( ! empty( self::queue() ) ) {
			update_option( self::OPTION_NEXT_RETRY, time(), true );
		}
	}

	/**
	 * Events of this request not sent yet.
	 *
	 * @return array
	 */
	public static function pending() {
		return self::$pending;
	}

	/**
	 * Takes the queue lock (an option insert is atomic). Stale locks expire after 60 s.
	 *
	 * @return bool
	 */
	private static function lock() {
		if ( self::$holding > 0 ) {
			++self::$holding;
			return true;
		}
		global $wpdb;
		// INSERT IGNORE is the mutex (add_option() upserts, so it is not one).
		$insert = "INSERT IGNORE INTO {$wpdb->options} (option_name, option_value, autoload) VALUES (%s, %s, 'no')";
		$got    = 1 === $wpdb->query( $wpdb->prepare( $insert, self::OPTION_LOCK, (string) ( time() + 60 ) ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
		if ( ! $got ) {
			$until = $wpdb->get_var( $wpdb->prepare( "SELECT option_value FROM {$wpdb->options} WHERE option_name = %s", self::OPTION_LOCK ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
			if ( null !== $until && (int) $until < time() ) {
				$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name = %s AND option_value = %s", self::OPTION_LOCK, $until ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
				$got = 1 === $wpdb->query( $wpdb->prepare( $insert, self::OPTION_LOCK, (string) ( time() + 60 ) ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
			}
		}
		if ( $got ) {
			self::$holding = 1;
		}
		return $got;
	}

	/**
	 * Takes the lock, waiting up to $seconds for another request to release it.
	 *
	 * @param float $seconds Wait.
	 * @return bool
	 */
	private static function lock_wait( $seconds ) {
		$deadline = microtime( true ) + $seconds;
		while ( ! self::lock() ) {
			if ( microtime( true ) > $deadline ) {
				return false;
			}
			usleep( 20000 );
		}
		return true;
	}

	/**
	 * Releases the queue lock.
	 *
	 * @return void
	 */
	private static function unlock() {
		if ( self::$holding > 1 ) {
			--self::$holding;
			return;
		}
		global $wpdb;
		self::$holding = 0;
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name = %s", self::OPTION_LOCK ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
		wp_cache_delete( self::OPTION_LOCK, 'options' );
	}
}
