<?php
/**
 * A `relayctl subscribe` process: the browser's stand-in, speaking to relayd over WebSocket.
 *
 * @package RelayRealtime
 */

/**
 * Runs relayctl subscribe in the background and reads its JSON lines.
 */
final class Relay_Subscriber {

	/**
	 * Process.
	 *
	 * @var resource
	 */
	private $proc;

	/**
	 * Stdout pipe.
	 *
	 * @var resource
	 */
	private $out;

	/**
	 * Stderr pipe.
	 *
	 * @var resource
	 */
	private $err;

	/**
	 * Buffered partial output.
	 *
	 * @var string
	 */
	private $buffer = '';

	/**
	 * Decoded lines so far.
	 *
	 * @var array
	 */
	public $lines = array();

	/**
	 * Stderr so far.
	 *
	 * @var string
	 */
	public $stderr = '';

	/**
	 * Exit code once ended.
	 *
	 * @var int|null
	 */
	public $exit_code = null;

	/**
	 * Starts relayctl subscribe.
	 *
	 * @param string[] $channels Channels (full names).
	 * @param array    $opts     token, payload_key, timeout, site_key, jwt_secret.
	 */
	public function __construct( $channels, $opts = array() ) {
		$site = Relay_Test_Case::site();
		$cmd  = array( getenv( 'RRT_RELAYCTL' ), 'subscribe', '--url', getenv( 'RRT_RELAY_URL' ), '--site-key', isset( $opts['site_key'] ) ? $opts['site_key'] : $site['site_key'], '--no-reconnect' );
		if ( isset( $opts['token'] ) ) {
			array_push( $cmd, '--token', $opts['token'] );
		} else {
			array_push( $cmd, '--jwt-secret', isset( $opts['jwt_secret'] ) ? $opts['jwt_secret'] : $site['jwt_secret'] );
		}
		if ( isset( $opts['payload_key'] ) ) {
			$cmd[] = '--payload-key=' . $opts['payload_key'];
		}
		if ( isset( $opts['presence'] ) ) {
			array_push( $cmd, '--presence', $opts['presence'] );
		}
		if ( ! empty( $opts['reconnect'] ) ) {
			$cmd = array_values( array_diff( $cmd, array( '--no-reconnect' ) ) );
		}
		array_push( $cmd, '--timeout', (string) ( isset( $opts['timeout'] ) ? $opts['timeout'] : 30 ) );
		foreach ( $channels as $c ) {
			$cmd[] = $c;
		}
		$this->proc = proc_open( $cmd, array( 1 => array( 'pipe', 'w' ), 2 => array( 'pipe', 'w' ) ), $pipes );
		$this->out  = $pipes[1];
		$this->err  = $pipes[2];
		stream_set_blocking( $this->out, false );
		stream_set_blocking( $this->err, false );
	}

	/**
	 * Reads what is available.
	 *
	 * @param float $wait Seconds to wait for data.
	 * @return void
	 */
	private function pump( $wait ) {
		$read   = array( $this->out, $this->err );
		$write  = null;
		$except = null;
		if ( @stream_select( $read, $write, $except, 0, (int) ( $wait * 1e6 ) ) > 0 ) {
			foreach ( $read as $r ) {
				$chunk = (string) fread( $r, 65536 );
				if ( $r === $this->err ) {
					$this->stderr .= $chunk;
					continue;
				}
				$this->buffer .= $chunk;
				while ( false !== ( $nl = strpos( $this->buffer, "\n" ) ) ) {
					$line         = substr( $this->buffer, 0, $nl );
					$this->buffer = substr( $this->buffer, $nl + 1 );
					$decoded      = json_decode( $line, true );
					if ( is_array( $decoded ) ) {
						$this->lines[] = $decoded;
					}
				}
			}
		}
	}

	/**
	 * Waits until a predicate over the lines holds.
	 *
	 * @param callable $pred    fn( array $lines ): bool.
	 * @param float    $timeout Seconds.
	 * @return bool
	 */
	public function wait_for( $pred, $timeout = 10.0 ) {
		$deadline = microtime( true ) + $timeout;
		do {
			if ( $pred( $this->lines ) ) {
				$this->drain_if_ended();
				return true;
			}
			$this->pump( 0.05 );
		} while ( microtime( true ) < $deadline && $this->running() );
		$this->drain_if_ended();
		return (bool) $pred( $this->lines );
	}

	/**
	 * Reads everything left once the process ended.
	 *
	 * @return void
	 */
	private function drain_if_ended() {
		if ( $this->running() ) {
			return;
		}
		for ( $i = 0; $i < 50 && ! ( feof( $this->err ) && feof( $this->out ) ); $i++ ) {
			$this->pump( 0.02 );
		}
	}

	/**
	 * Waits until every channel answered (subscribed or error). Returns [subscribed channels, refused channels].
	 *
	 * @param string[] $channels Channels.
	 * @param float    $timeout  Seconds.
	 * @return array{0:string[],1:string[]}
	 */
	public function wait_answers( $channels, $timeout = 10.0 ) {
		$this->wait_for(
			function ( $lines ) use ( $channels ) {
				list( $ok, $refused ) = self::answers( $lines );
				return count( array_unique( array_merge( $ok, $refused ) ) ) >= count( $channels );
			},
			$timeout
		);
		return self::answers( $this->lines );
	}

	/**
	 * Subscribed and refused channels in the lines.
	 *
	 * @param array $lines Lines.
	 * @return array{0:string[],1:string[]}
	 */
	private static function answers( $lines ) {
		$ok      = array();
		$refused = array();
		foreach ( $lines as $l ) {
			if ( 'subscribed' === ( $l['type'] ?? '' ) ) {
				$ok = array_merge( $ok, (array) ( $l['channels'] ?? array() ) );
			} elseif ( 'error' === ( $l['type'] ?? '' ) && isset( $l['channel'] ) ) {
				$refused[] = $l['channel'];
			}
		}
		return array( $ok, $refused );
	}

	/**
	 * Message lines (sealed ones opened by relayctl when given the key).
	 *
	 * @param string|null $event Only this event.
	 * @return array
	 */
	public function messages( $event = null ) {
		return array_values(
			array_filter(
				$this->lines,
				static function ( $l ) use ( $event ) {
					return 'message' === ( $l['type'] ?? '' ) && ( null === $event || ( $l['event'] ?? '' ) === $event );
				}
			)
		);
	}

	/**
	 * Waits for a message of an event.
	 *
	 * @param string   $event   Event.
	 * @param float    $timeout Seconds.
	 * @param callable $match   Optional fn( array $data ): bool.
	 * @return array|null The message line.
	 */
	public function wait_message( $event, $timeout = 10.0, $match = null ) {
		$found = null;
		$this->wait_for(
			function () use ( $event, $match, &$found ) {
				foreach ( $this->messages( $event ) as $m ) {
					if ( null === $match || $match( $m['data'] ?? null ) ) {
						$found = $m;
						return true;
					}
				}
				return false;
			},
			$timeout
		);
		return $found;
	}

	/**
	 * Whether the process runs.
	 *
	 * @return bool
	 */
	public function running() {
		if ( ! is_resource( $this->proc ) ) {
			return false;
		}
		$s = proc_get_status( $this->proc );
		if ( ! $s['running'] && null === $this->exit_code ) {
			$this->exit_code = $s['exitcode'];
		}
		return $s['running'];
	}

	/**
	 * Stops the process.
	 *
	 * @return void
	 */
	public function stop() {
		if ( is_resource( $this->proc ) ) {
			proc_terminate( $this->proc );
			fclose( $this->out );
			fclose( $this->err );
			proc_close( $this->proc );
		}
	}

	/**
	 * Stops on destruction.
	 */
	public function __destruct() {
		$this->stop();
	}
}
