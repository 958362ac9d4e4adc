<?php
/**
 * Fluent trigger builder: a WordPress action becomes a live event.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * `relay_realtime()->trigger( 'order.paid' )->on( 'woocommerce_payment_complete' )->channel( 'shop:orders' )->data( fn ( $id ) => [ 'id' => $id ] )->register();`
 *
 * @since 0.1.0
 */
final class Trigger {

	/**
	 * Event name.
	 *
	 * @var string
	 */
	private $event;

	/**
	 * Hooks: list of [hook, priority, accepted args].
	 *
	 * @var array<int,array{0:string,1:int,2:int}>
	 */
	private $hooks = array();

	/**
	 * Channel (bare or full).
	 *
	 * @var string
	 */
	private $channel = 'events';

	/**
	 * Data builder.
	 *
	 * @var callable|null
	 */
	private $data;

	/**
	 * Conditions (all must hold).
	 *
	 * @var callable[]
	 */
	private $when = array();

	/**
	 * Publish arguments (envelope).
	 *
	 * @var array
	 */
	private $args = array();

	/**
	 * Whether register() ran.
	 *
	 * @var bool
	 */
	private $registered = false;

	/**
	 * New trigger for an event name.
	 *
	 * @param string $event Event name delivered to browsers, e.g. `order.paid`.
	 */
	public function __construct( $event ) {
		$this->event = (string) $event;
	}

	/**
	 * Listens to an action (may be called more than once).
	 *
	 * @param string $hook          Action name.
	 * @param int    $priority      Priority.
	 * @param int    $accepted_args Arguments passed to data() and when().
	 * @return $this
	 */
	public function on( $hook, $priority = 10, $accepted_args = 1 ) {
		$this->hooks[] = array( (string) $hook, (int) $priority, max( 0, (int) $accepted_args ) );
		return $this;
	}

	/**
	 * Target channel.
	 *
	 * @param string|callable $name Bare (`events`) or full channel name, or callable( ...$hook_args ): string.
	 * @return $this
	 */
	public function channel( $name = 'events' ) {
		$this->channel = $name;
		return $this;
	}

	/**
	 * Data builder: receives the hook arguments, returns JSON-encodable data.
	 *
	 * @param callable $callback Callback.
	 * @return $this
	 */
	public function data( callable $callback ) {
		$this->data = $callback;
		return $this;
	}

	/**
	 * Condition: receives the hook arguments, returns whether to publish.
	 *
	 * @param callable $callback Callback.
	 * @return $this
	 */
	public function when( callable $callback ) {
		$this->when[] = $callback;
		return $this;
	}

	/**
	 * Envelope of this trigger's events: `v2` (default), `v1` or `none`.
	 *
	 * @param string $version Envelope version.
	 * @return $this
	 */
	public function envelope( $version ) {
		$this->args['envelope'] = (string) $version;
		return $this;
	}

	/**
	 * Registers the trigger on its hooks.
	 *
	 * @return $this
	 */
	public function register() {
		if ( $this->registered ) {
			return $this;
		}
		$this->registered = true;
		foreach ( $this->hooks as $hook ) {
			add_action(
				$hook[0],
				function ( ...$args ) {
					$this->fire( $args );
				},
				$hook[1],
				$hook[2]
			);
		}
		Triggers::remember( $this );
		return $this;
	}

	/**
	 * Runs the trigger for one hook call. Errors in callbacks never reach the page.
	 *
	 * @param array $args Hook arguments.
	 * @return void
	 */
	public function fire( $args ) {
		try {
			foreach ( $this->when as $condition ) {
				if ( ! call_user_func_array( $condition, $args ) ) {
					return;
				}
			}
			$data    = $this->data ? call_user_func_array( $this->data, $args ) : ( $args ? $args[0] : null );
			// A string is always a channel name (never a function name such as `key` or `date`).
			$channel = ( ! is_string( $this->channel ) && is_callable( $this->channel ) ) ? (string) call_user_func_array( $this->channel, $args ) : (string) $this->channel;
			if ( '' === $channel ) {
				return;
			}
			Publisher::publish( $channel, $this->event, $data, $this->args );
		} catch ( \Throwable $e ) {
			Status::error( 'trigger_failed', $this->event . ': ' . $e->getMessage(), 0 );
		}
	}

	/**
	 * Event name.
	 *
	 * @return string
	 */
	public function event() {
		return $this->event;
	}

	/**
	 * Hooks (for the settings page).
	 *
	 * @return array
	 */
	public function hooks() {
		return $this->hooks;
	}
}
