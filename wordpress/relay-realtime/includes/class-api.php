<?php
/**
 * The public PHP API.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * `relay_realtime()` returns this object.
 *
 * @since 0.1.0
 */
final class Api {

	/**
	 * Instance.
	 *
	 * @var Api|null
	 */
	private static $instance = null;

	/**
	 * The instance.
	 *
	 * @return Api
	 */
	public static function instance() {
		if ( null === self::$instance ) {
			self::$instance = new self();
		}
		return self::$instance;
	}

	/**
	 * Publishes an event, sealed with envelope v2 by default, sent after the response.
	 *
	 * @param string $channel Bare (`events`) or full channel name.
	 * @param string $event   Event name.
	 * @param mixed  $data    JSON-encodable data.
	 * @param array  $args    `envelope` (`v2`, `v1`, `none`), `sync` (send now, return relayd's answer).
	 * @return true|array|\WP_Error
	 */
	public function publish( $channel, $event, $data = array(), $args = array() ) {
		return Publisher::publish( $channel, $event, $data, $args );
	}

	/**
	 * A fluent trigger for an event name.
	 *
	 * @param string $event Event name.
	 * @return Trigger
	 */
	public function trigger( $event ) {
		return new Trigger( $event );
	}

	/**
	 * Reserves a namespace (see Channels::reserve()).
	 *
	 * @param string               $namespace Namespace.
	 * @param string|callable      $read      Read grant.
	 * @param string|callable|null $publish   Browser publish grant.
	 * @return $this
	 */
	public function reserve( $namespace, $read, $publish = null ) {
		Channels::reserve( $namespace, $read, $publish );
		return $this;
	}

	/**
	 * Opens presence on a channel (see Channels::presence()).
	 *
	 * @param string          $channel Channel.
	 * @param string|callable $grant   Grant.
	 * @return $this
	 */
	public function presence( $channel, $grant = 'read' ) {
		Channels::presence( $channel, $grant );
		return $this;
	}

	/**
	 * Mints a browser token for a user.
	 *
	 * @param int   $user_id  User id.
	 * @param int[] $post_ids Posts whose Yjs rooms to include.
	 * @return array|\WP_Error
	 */
	public function token( $user_id, $post_ids = array() ) {
		return Tokens::mint( $user_id, $post_ids );
	}

	/**
	 * Full channel name of a bare name.
	 *
	 * @param string $name Bare name.
	 * @return string
	 */
	public function channel( $name ) {
		return Config::channel( $name );
	}

	/**
	 * Sends this request's queued events now (normally done on shutdown).
	 *
	 * @return array{sent:int,queued:int,dead:int}
	 */
	public function flush() {
		return Publisher::flush();
	}

	/**
	 * Signed `GET /site/stats`: `{active_connections, max_connections}` or WP_Error.
	 *
	 * @return array|\WP_Error
	 */
	public function stats() {
		$answer = Http::signed( 'GET', '/site/stats', '' );
		if ( '' !== $answer['code'] ) {
			Status::error( $answer['code'], $answer['message'], $answer['status'] );
			return new \WP_Error( 'relay_' . $answer['code'], $answer['message'] );
		}
		Status::ok();
		return is_array( $answer['json'] ) ? $answer['json'] : array();
	}
}
