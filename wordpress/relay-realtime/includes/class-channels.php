<?php
/**
 * Who may read and publish which channels: reservations, presence, public channels, Yjs rooms.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Computes a user's channel grants for the token.
 *
 * Tokens always list channels explicitly (no site-wide wildcard):
 * - `events` for logged-in users (filter `relay_realtime_default_channels`);
 * - public channels opened by `relay_realtime_public_channels`, for everyone;
 * - reserved namespaces (`ns:`) for users passing their read / publish grant;
 * - presence channels (read and announce) for users passing their grant;
 * - Yjs rooms of the posts asked for: read-write for users who can edit the
 *   post, read-only for users who can read it.
 *
 * relayd reads a grant ending in `:` as a namespace and any other grant as one
 * channel (and the channels under it, after a `:`): a reserved namespace `shop`
 * is granted as `site:{id}:shop:`, so it covers `shop:orders` but never
 * `shopping`, and post 12's room never reaches post 123's.
 *
 * @since 0.1.0
 */
final class Channels {

	/**
	 * Reserved namespaces: name => [read grant, publish grant|null].
	 *
	 * @var array<string,array{0:string|callable,1:string|callable|null}>
	 */
	private static $reserved = array();

	/**
	 * Presence channels: name => grant.
	 *
	 * @var array<string,string|callable>
	 */
	private static $presence = array();

	/**
	 * Reserves a namespace: only users passing `$read` may subscribe to `ns:…`,
	 * only users passing `$publish` may publish there from the browser (none when null).
	 *
	 * @param string               $namespace Namespace without the site prefix, e.g. `shop`.
	 * @param string|callable      $read      Capability, or callable( int $user_id ): bool.
	 * @param string|callable|null $publish   Capability or callable; null: no browser publish.
	 * @return void
	 */
	public static function reserve( $namespace, $read, $publish = null ) {
		$namespace = trim( (string) $namespace, ':' );
		if ( '' === $namespace || 'events' === $namespace || 'wps' === $namespace ) {
			return;
		}
		self::$reserved[ $namespace ] = array( $read, $publish );
	}

	/**
	 * Opens presence on a channel for users passing `$grant` (they may read it and announce themselves).
	 *
	 * @param string          $channel Bare channel name, e.g. `presence:post:12`.
	 * @param string|callable $grant   Capability or callable( int $user_id ): bool.
	 * @return void
	 */
	public static function presence( $channel, $grant = 'read' ) {
		$channel = (string) $channel;
		if ( '' !== $channel ) {
			self::$presence[ $channel ] = $grant;
		}
	}

	/**
	 * Reserved namespaces (for the settings page).
	 *
	 * @return array
	 */
	public static function reserved() {
		return self::$reserved;
	}

	/**
	 * Forgets reservations and presence channels (tests).
	 *
	 * @return void
	 */
	public static function reset() {
		self::$reserved = array();
		self::$presence = array();
	}

	/**
	 * Whether a user passes a grant.
	 *
	 * @param string|callable|null $grant   Capability or callable.
	 * @param int                  $user_id User id (0: visitor).
	 * @return bool
	 */
	public static function passes( $grant, $user_id ) {
		if ( null === $grant ) {
			return false;
		}
		// A string is always a capability, even when a function of that name exists (e.g. edit_post()).
		if ( ! is_string( $grant ) && is_callable( $grant ) ) {
			return (bool) call_user_func( $grant, $user_id );
		}
		return $user_id > 0 && user_can( $user_id, (string) $grant );
	}

	/**
	 * The Yjs room of a post (Gutenberg's naming: `postType/{type}:{id}`).
	 *
	 * @param int $post_id Post id.
	 * @return string Room name, '' when the post does not exist.
	 */
	public static function room_for_post( $post_id ) {
		$post = get_post( (int) $post_id );
		return $post ? 'postType/' . $post->post_type . ':' . $post->ID : '';
	}

	/**
	 * Whether a post's Yjs room is end-to-end encrypted (relayd channel `yjs-e2e:{room}`).
	 *
	 * @param int $post_id Post id.
	 * @return bool
	 */
	public static function is_encrypted( $post_id ) {
		$type = get_post_type( (int) $post_id );
		/**
		 * Filters whether a post is co-edited in an end-to-end encrypted room: relayd then stores
		 * and relays only ciphertext, and only users who may edit the post receive its key.
		 *
		 * @since 0.2.0
		 *
		 * @param bool $encrypted Default: the post type is in the `e2e_types` setting.
		 * @param int  $post_id   Post id.
		 */
		return (bool) apply_filters( 'relay_realtime_encrypted_room', false !== $type && in_array( $type, (array) Config::setting( 'e2e_types' ), true ), (int) $post_id );
	}

	/**
	 * Grants of a user.
	 *
	 * @param int   $user_id  User id (0: visitor).
	 * @param int[] $post_ids Posts whose Yjs rooms are asked for.
	 * @return array{read:string[],publish:string[],channels:string[],rooms:array<string,string>,sealed:string[]}
	 *   `sealed`: encrypted rooms the user may edit (they get the room's key).
	 */
	public static function grants( $user_id, $post_ids = array() ) {
		$user_id = (int) $user_id;
		$read    = array();
		$publish = array();
		$auto    = array();
		$rooms   = array();
		$sealed  = array();

		/**
		 * Filters the channels every visitor (logged in or not) may read.
		 * Events published there should use `'envelope' => 'none'`: visitors get no payload keys.
		 *
		 * @since 0.1.0
		 *
		 * @param string[] $channels Bare or full channel names.
		 * @param int      $user_id  User id.
		 */
		$public = (array) apply_filters( 'relay_realtime_public_channels', array(), $user_id );
		foreach ( $public as $c ) {
			$read[] = Config::channel( (string) $c );
			$auto[] = Config::channel( (string) $c );
		}

		if ( $user_id > 0 ) {
			/**
			 * Filters the channels a logged-in user reads and auto-subscribes to.
			 *
			 * @since 0.1.0
			 *
			 * @param string[] $channels Bare or full channel names. Default `events`.
			 * @param int      $user_id  User id.
			 */
			$defaults = (array) apply_filters( 'relay_realtime_default_channels', array( 'events' ), $user_id );
			foreach ( $defaults as $c ) {
				$read[] = Config::channel( (string) $c );
				$auto[] = Config::channel( (string) $c );
			}
		}

		foreach ( self::$reserved as $ns => $grant ) {
			if ( self::passes( $grant[0], $user_id ) ) {
				$read[] = Config::channel( $ns . ':' );
			}
			if ( self::passes( $grant[1], $user_id ) ) {
				$publish[] = Config::channel( $ns . ':' );
			}
		}

		foreach ( self::$presence as $channel => $grant ) {
			if ( self::passes( $grant, $user_id ) ) {
				$read[]    = Config::channel( $channel );
				$publish[] = Config::channel( $channel );
			}
		}

		foreach ( array_unique( array_map( 'intval', (array) $post_ids ) ) as $post_id ) {
			$room = self::room_for_post( $post_id );
			if ( '' === $room || $user_id <= 0 ) {
				continue;
			}
			$encrypted = self::is_encrypted( $post_id );
			$channel   = Config::channel( ( $encrypted ? 'yjs-e2e:' : 'yjs:' ) . $room );
			if ( user_can( $user_id, 'edit_post', $post_id ) ) {
				$read[]         = $channel;
				$publish[]      = $channel;
				$rooms[ $room ] = 'rw';
				if ( $encrypted ) {
					$sealed[] = $room;
				}
			} elseif ( user_can( $user_id, 'read_post', $post_id ) ) {
				$read[]         = $channel;
				$rooms[ $room ] = 'r';
			}
		}

		/**
		 * Filters the read prefixes of a token.
		 *
		 * @since 0.1.0
		 *
		 * @param string[] $read    Full channel names or prefixes.
		 * @param int      $user_id User id.
		 */
		$read = (array) apply_filters( 'relay_realtime_token_read', array_values( array_unique( $read ) ), $user_id );
		/**
		 * Filters the publish prefixes of a token (browser publish, presence, Yjs writes).
		 *
		 * @since 0.1.0
		 *
		 * @param string[] $publish Full channel names or prefixes.
		 * @param int      $user_id User id.
		 */
		$publish = (array) apply_filters( 'relay_realtime_token_publish', array_values( array_unique( $publish ) ), $user_id );

		return array(
			'read'     => array_values( array_map( 'strval', $read ) ),
			'publish'  => array_values( array_map( 'strval', $publish ) ),
			'channels' => array_values( array_unique( $auto ) ),
			'rooms'    => $rooms,
			'sealed'   => $sealed,
		);
	}
}
