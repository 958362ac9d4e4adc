<?php
/**
 * Settings page (Settings → Relay Realtime), admin actions and notices.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Every action checks `manage_options` and a nonce; secrets are never printed back.
 *
 * @since 0.1.0
 */
final class Admin {

	const PAGE    = 'relay-realtime';
	const ACTIONS = array( 'connect', 'rotate', 'disconnect', 'save', 'retry', 'requeue', 'clear' );

	/**
	 * Hooks.
	 *
	 * @return void
	 */
	public static function init() {
		add_action( 'admin_menu', array( __CLASS__, 'menu' ) );
		add_action( 'admin_notices', array( __CLASS__, 'notices' ) );
		foreach ( self::ACTIONS as $action ) {
			add_action( 'admin_post_relay_realtime_' . $action, array( __CLASS__, 'handle' ) );
		}
		add_filter( 'plugin_action_links_' . plugin_basename( RELAY_REALTIME_FILE ), array( __CLASS__, 'action_links' ) );
	}

	/**
	 * REST routes of the settings page.
	 *
	 * @return void
	 */
	public static function register_routes() {
		register_rest_route(
			Tokens::REST_NAMESPACE,
			'/test',
			array(
				'methods'             => 'POST',
				'callback'            => array( __CLASS__, 'rest_test' ),
				'permission_callback' => static function () {
					return current_user_can( 'manage_options' );
				},
			)
		);
	}

	/**
	 * Publishes `relay.test` to the admin channel synchronously; the page waits for it to come back.
	 *
	 * @return \WP_REST_Response
	 */
	public static function rest_test() {
		$id     = wp_generate_uuid4();
		$result = Publisher::publish(
			'relay-admin:test',
			'relay.test',
			array(
				'id'      => $id,
				'sent_at' => (int) round( microtime( true ) * 1000 ),
			),
			array( 'sync' => true )
		);
		if ( is_wp_error( $result ) ) {
			return new \WP_REST_Response( array( 'ok' => false, 'code' => $result->get_error_code(), 'message' => $result->get_error_message() ), 503 );
		}
		$ok = 'sent' === $result['outcome'];
		return new \WP_REST_Response(
			array(
				'ok'      => $ok,
				'id'      => $id,
				'code'    => $result['code'],
				'message' => $ok ? '' : Status::explain( array( 'code' => $result['code'] ) ),
			),
			$ok ? 200 : 502
		);
	}

	/**
	 * Menu entry under Settings.
	 *
	 * @return void
	 */
	public static function menu() {
		add_options_page( __( 'Relay Realtime', 'relay-realtime' ), __( 'Relay Realtime', 'relay-realtime' ), 'manage_options', self::PAGE, array( __CLASS__, 'render' ) );
	}

	/**
	 * "Settings" link on the plugins screen.
	 *
	 * @param array $links Links.
	 * @return array
	 */
	public static function action_links( $links ) {
		array_unshift( $links, '<a href="' . esc_url( self::page_url() ) . '">' . esc_html__( 'Settings', 'relay-realtime' ) . '</a>' );
		return $links;
	}

	/**
	 * URL of the settings page.
	 *
	 * @param array $args Query arguments.
	 * @return string
	 */
	public static function page_url( $args = array() ) {
		return add_query_arg( array_merge( array( 'page' => self::PAGE ), $args ), admin_url( 'options-general.php' ) );
	}

	/**
	 * Stores a one-time message for the current admin (never reflected from the URL).
	 *
	 * @param string $type    success or error.
	 * @param string $message Text.
	 * @return void
	 */
	private static function flash( $type, $message ) {
		set_transient( 'relay_realtime_flash_' . get_current_user_id(), array( $type, $message ), 120 );
	}

	/**
	 * Handles every admin-post action.
	 *
	 * @return void
	 */
	public static function handle() {
		$action = isset( $_REQUEST['action'] ) ? substr( sanitize_key( wp_unslash( $_REQUEST['action'] ) ), strlen( 'relay_realtime_' ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- verified below.
		if ( ! in_array( $action, self::ACTIONS, true ) ) {
			wp_die( esc_html__( 'Unknown action.', 'relay-realtime' ), 400 );
		}
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_die( esc_html__( 'You are not allowed to do this.', 'relay-realtime' ), 403 );
		}
		check_admin_referer( 'relay_realtime_' . $action );
		$result = self::perform( $action, wp_unslash( $_POST ) );
		if ( is_wp_error( $result ) ) {
			self::flash( 'error', $result->get_error_message() );
		} else {
			self::flash( 'success', $result );
		}
		wp_safe_redirect( self::page_url() );
		exit;
	}

	/**
	 * Performs an action (capability and nonce already checked). Public for tests.
	 *
	 * @param string $action Action.
	 * @param array  $input  Unslashed POST data.
	 * @return string|\WP_Error Success message.
	 */
	public static function perform( $action, $input ) {
		switch ( $action ) {
			case 'connect':
				$url = isset( $input['relay_url'] ) ? (string) $input['relay_url'] : Config::get( 'url' );
				$key = isset( $input['admin_key'] ) ? (string) $input['admin_key'] : '';
				$r   = Connect::register( $url, $key );
				return is_wp_error( $r ) ? $r : __( 'Connected: relayd registered this site.', 'relay-realtime' );
			case 'rotate':
				$r = Connect::rotate();
				return is_wp_error( $r ) ? $r : __( 'Publish secret rotated. The previous one stays valid during relayd\'s grace period.', 'relay-realtime' );
			case 'disconnect':
				$r = Connect::disconnect();
				return is_wp_error( $r ) ? $r : __( 'Disconnected.', 'relay-realtime' );
			case 'save':
				$s = Config::settings();
				if ( isset( $input['timeout'] ) ) {
					$s['timeout'] = (float) $input['timeout'];
				}
				foreach ( array( 'envelope', 'signature' ) as $k ) {
					if ( isset( $input[ $k ] ) ) {
						$s[ $k ] = sanitize_key( $input[ $k ] );
					}
				}
				$s['yjs']       = ! empty( $input['yjs'] );
				$s['debug']     = ! empty( $input['debug'] );
				$s['e2e_types'] = array_values( array_intersect( array_map( 'sanitize_key', (array) ( $input['e2e_types'] ?? array() ) ), array_keys( get_post_types( array( 'show_ui' => true ) ) ) ) );
				update_option( Config::OPTION_SETTINGS, $s, true );
				return __( 'Settings saved.', 'relay-realtime' );
			case 'retry':
				Publisher::make_due();
				$c = Publisher::flush();
				/* translators: 1: sent, 2: still queued, 3: dead letters. */
				return sprintf( __( 'Retried: %1$d sent, %2$d still queued, %3$d moved to dead letters.', 'relay-realtime' ), $c['sent'], $c['queued'], $c['dead'] );
			case 'requeue':
				$n = Publisher::requeue_dead_letters();
				$c = Publisher::flush();
				/* translators: 1: requeued, 2: sent. */
				return sprintf( __( '%1$d dead letters requeued, %2$d sent.', 'relay-realtime' ), $n, $c['sent'] );
			case 'clear':
				Publisher::clear_dead_letters();
				return __( 'Dead letters cleared.', 'relay-realtime' );
		}
		return new \WP_Error( 'relay_unknown', __( 'Unknown action.', 'relay-realtime' ) );
	}

	/**
	 * Admin notices for administrators: relayd errors, corrupt options, not connected.
	 *
	 * @return void
	 */
	public static function notices() {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		foreach ( self::notice_texts() as $n ) {
			printf(
				'<div class="notice notice-%1$s"><p><strong>%2$s</strong> %3$s</p></div>',
				esc_attr( $n[0] ),
				esc_html__( 'Relay Realtime:', 'relay-realtime' ),
				esc_html( $n[1] )
			);
		}
	}

	/**
	 * The notices to show, as [type, text]. Public for tests.
	 *
	 * @return array<int,array{0:string,1:string}>
	 */
	public static function notice_texts() {
		$out = array();
		Config::settings();
		if ( Config::$settings_corrupt ) {
			$out[] = array( 'warning', Status::explain( array( 'code' => 'corrupt_option' ) ) );
		}
		if ( ! Config::is_connected() ) {
			$screen = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
			if ( ! $screen || in_array( $screen->id, array( 'plugins', 'settings_page_' . self::PAGE ), true ) ) {
				$out[] = array( 'info', __( 'Not connected to relayd yet. Open Settings → Relay Realtime.', 'relay-realtime' ) );
			}
			return $out;
		}
		$status = Status::get();
		if ( $status['error'] ) {
			$code = (string) $status['error']['code'];
			/* translators: 1: explanation, 2: error code, 3: HTTP status. */
			$out[] = array( 'error', sprintf( __( '%1$s [%2$s, HTTP %3$d]', 'relay-realtime' ), Status::explain( $status['error'] ), $code, (int) $status['error']['http'] ) );
		}
		$dead = Publisher::dead_letters();
		if ( $dead['count'] > 0 ) {
			/* translators: %d: number of events. */
			$out[] = array( 'warning', sprintf( _n( '%d event could not be delivered (dead-letter queue).', '%d events could not be delivered (dead-letter queue).', $dead['count'], 'relay-realtime' ), $dead['count'] ) );
		}
		return $out;
	}

	/**
	 * A form posting to admin-post.php with a nonce.
	 *
	 * @param string $action Action.
	 * @param string $label  Button label.
	 * @param string $fields Extra (already escaped) HTML fields.
	 * @param string $class  Button class.
	 * @return void
	 */
	private static function form( $action, $label, $fields = '', $class = 'button' ) {
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline-block;margin-right:8px">';
		echo '<input type="hidden" name="action" value="' . esc_attr( 'relay_realtime_' . $action ) . '">';
		wp_nonce_field( 'relay_realtime_' . $action );
		echo $fields; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- built from escaped parts by the caller.
		$classes = 'primary' === $class ? 'button button-primary' : ( 'delete' === $class ? 'button button-link-delete' : 'button' );
		echo ' <button type="submit" class="' . esc_attr( $classes ) . '">' . esc_html( $label ) . '</button>';
		echo '</form>';
	}

	/**
	 * Renders the settings page.
	 *
	 * @return void
	 */
	public static function render() {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		$flash = get_transient( 'relay_realtime_flash_' . get_current_user_id() );
		delete_transient( 'relay_realtime_flash_' . get_current_user_id() );
		$s         = Config::settings();
		$connected = Config::is_connected();
		$constants = Config::from_constant( 'site_key' );
		echo '<div class="wrap"><h1>' . esc_html__( 'Relay Realtime', 'relay-realtime' ) . '</h1>';
		if ( is_array( $flash ) && 2 === count( $flash ) ) {
			printf( '<div class="notice notice-%1$s"><p>%2$s</p></div>', esc_attr( 'error' === $flash[0] ? 'error' : 'success' ), esc_html( (string) $flash[1] ) );
		}

		echo '<h2>' . esc_html__( 'Connection', 'relay-realtime' ) . '</h2><table class="form-table" role="presentation">';
		self::row( __( 'Relay URL', 'relay-realtime' ), '' !== Config::get( 'url' ) ? Config::get( 'url' ) : __( '(none)', 'relay-realtime' ) );
		self::row( __( 'Credentials', 'relay-realtime' ), $constants ? __( 'from wp-config.php constants', 'relay-realtime' ) : ( $connected ? __( 'stored in the database (not autoloaded)', 'relay-realtime' ) : __( 'none', 'relay-realtime' ) ) );
		if ( $connected ) {
			self::row( __( 'Site id', 'relay-realtime' ), Config::site_id() );
			$stats = Api::instance()->stats();
			if ( is_wp_error( $stats ) ) {
				$status = Status::get();
				self::row( __( 'State', 'relay-realtime' ), __( 'error', 'relay-realtime' ) . ': ' . Status::explain( (array) $status['error'] ) );
			} else {
				self::row( __( 'State', 'relay-realtime' ), __( 'connected', 'relay-realtime' ) );
				/* translators: 1: active connections, 2: maximum. */
				self::row( __( 'Active connections', 'relay-realtime' ), sprintf( __( '%1$d of %2$d', 'relay-realtime' ), isset( $stats['active_connections'] ) ? (int) $stats['active_connections'] : 0, isset( $stats['max_connections'] ) ? (int) $stats['max_connections'] : 0 ) );
			}
			self::row( __( 'Tokens', 'relay-realtime' ), '' !== Config::ed25519_seed() ? 'EdDSA' : 'HS256' );
		}
		echo '</table>';

		if ( ! $constants ) {
			echo '<h3>' . esc_html( $connected ? __( 'Reconnect', 'relay-realtime' ) : __( 'Connect', 'relay-realtime' ) ) . '</h3>';
			echo '<p>' . esc_html__( 'Enter relayd\'s URL and its admin key (relay-data/admin.key). The plugin registers this site and stores the credentials relayd returns. The admin key is kept (never shown again) so that rotating the publish secret takes one click.', 'relay-realtime' ) . '</p>';
			$fields  = '<p><label>' . esc_html__( 'Relay URL', 'relay-realtime' ) . ' <input type="url" class="regular-text" name="relay_url" required value="' . esc_attr( Config::get( 'url' ) ) . '" placeholder="https://relay.example.com"></label></p>';
			$fields .= '<p><label>' . esc_html__( 'Admin key', 'relay-realtime' ) . ' <input type="password" class="regular-text" name="admin_key" required autocomplete="off" value=""></label></p>';
			self::form( 'connect', __( 'Connect', 'relay-realtime' ), $fields, 'primary' );
			if ( $connected ) {
				echo '<p>';
				self::form( 'rotate', __( 'Rotate publish secret', 'relay-realtime' ) );
				self::form( 'disconnect', __( 'Disconnect', 'relay-realtime' ), '', 'delete' );
				echo '</p>';
			}
		}

		if ( $connected ) {
			echo '<h2>' . esc_html__( 'Test', 'relay-realtime' ) . '</h2>';
			echo '<p><button type="button" class="button" id="relay-realtime-test">' . esc_html__( 'Send test event', 'relay-realtime' ) . '</button> <span id="relay-realtime-test-result" aria-live="polite"></span></p>';
			self::test_script();
		}

		$queue = Publisher::queue();
		$dead  = Publisher::dead_letters();
		echo '<h2>' . esc_html__( 'Delivery', 'relay-realtime' ) . '</h2><table class="form-table" role="presentation">';
		self::row( __( 'Waiting for retry', 'relay-realtime' ), (string) count( $queue ) );
		self::row( __( 'Dead letters', 'relay-realtime' ), (string) $dead['count'] );
		echo '</table>';
		if ( ! empty( $dead['items'] ) ) {
			echo '<table class="widefat striped"><thead><tr><th>' . esc_html__( 'Event', 'relay-realtime' ) . '</th><th>' . esc_html__( 'Channel', 'relay-realtime' ) . '</th><th>' . esc_html__( 'Error', 'relay-realtime' ) . '</th><th>' . esc_html__( 'Attempts', 'relay-realtime' ) . '</th><th>' . esc_html__( 'Failed', 'relay-realtime' ) . '</th></tr></thead><tbody>';
			foreach ( array_reverse( $dead['items'] ) as $item ) {
				printf(
					'<tr><td>%1$s</td><td><code>%2$s</code></td><td>%3$s</td><td>%4$d</td><td>%5$s</td></tr>',
					esc_html( isset( $item['label'] ) ? (string) $item['label'] : (string) $item['event'] ),
					esc_html( (string) $item['channel'] ),
					esc_html( isset( $item['last_error'] ) ? (string) $item['last_error'] : '' ),
					isset( $item['attempts'] ) ? (int) $item['attempts'] : 0,
					esc_html( isset( $item['failed_at'] ) ? wp_date( 'Y-m-d H:i:s', (int) $item['failed_at'] ) : '' )
				);
			}
			echo '</tbody></table>';
		}
		echo '<p>';
		self::form( 'retry', __( 'Retry now', 'relay-realtime' ) );
		if ( $dead['count'] > 0 ) {
			self::form( 'requeue', __( 'Requeue dead letters', 'relay-realtime' ) );
			self::form( 'clear', __( 'Clear dead letters', 'relay-realtime' ), '', 'delete' );
		}
		echo '</p>';

		echo '<h2>' . esc_html__( 'Settings', 'relay-realtime' ) . '</h2>';
		$fields  = '<table class="form-table" role="presentation">';
		$fields .= '<tr><th>' . esc_html__( 'Publish timeout (s)', 'relay-realtime' ) . '</th><td><input type="number" step="0.1" min="0.2" max="30" name="timeout" value="' . esc_attr( (string) $s['timeout'] ) . '"></td></tr>';
		$fields .= '<tr><th>' . esc_html__( 'Default envelope', 'relay-realtime' ) . '</th><td>' . self::select( 'envelope', array( 'v2' => 'v2 (channel-bound)', 'v1' => 'v1 (wordsocket)', 'none' => __( 'none (plaintext)', 'relay-realtime' ) ), $s['envelope'] ) . '</td></tr>';
		$fields .= '<tr><th>' . esc_html__( 'Publish signature', 'relay-realtime' ) . '</th><td>' . self::select( 'signature', array( 'v2' => 'v2 (nonce, method, path)', 'v1' => 'v1 (wordsocket)' ), $s['signature'] ) . '</td></tr>';
		$fields .= '<tr><th>' . esc_html__( 'Collaboration', 'relay-realtime' ) . '</th><td><label><input type="checkbox" name="yjs" value="1"' . checked( $s['yjs'], true, false ) . '> ' . esc_html__( 'Use relayd for real-time collaboration when the editor supports it', 'relay-realtime' ) . '</label></td></tr>';
		$types   = '';
		foreach ( get_post_types( array( 'show_ui' => true ), 'objects' ) as $type ) {
			if ( post_type_supports( $type->name, 'editor' ) ) {
				$types .= '<label style="margin-right:1em"><input type="checkbox" name="e2e_types[]" value="' . esc_attr( $type->name ) . '"' . checked( in_array( $type->name, (array) $s['e2e_types'], true ), true, false ) . '> ' . esc_html( $type->labels->singular_name ) . '</label>';
			}
		}
		$fields .= '<tr><th>' . esc_html__( 'End-to-end encrypted co-editing', 'relay-realtime' ) . '</th><td>' . $types . '<p class="description">' . esc_html__( 'Documents of these types are co-edited in encrypted rooms: relayd stores and relays only ciphertext, and only users who may edit a post receive its key.', 'relay-realtime' ) . '</p></td></tr>';
		$fields .= '<tr><th>' . esc_html__( 'Debug', 'relay-realtime' ) . '</th><td><label><input type="checkbox" name="debug" value="1"' . checked( $s['debug'], true, false ) . '> ' . esc_html__( 'Browser client logs to the console', 'relay-realtime' ) . '</label></td></tr>';
		$fields .= '</table>';
		self::form( 'save', __( 'Save settings', 'relay-realtime' ), $fields, 'primary' );
		echo '</div>';
	}

	/**
	 * A select element (escaped).
	 *
	 * @param string $name    Name.
	 * @param array  $options Value => label.
	 * @param string $current Current value.
	 * @return string
	 */
	private static function select( $name, $options, $current ) {
		$html = '<select name="' . esc_attr( $name ) . '">';
		foreach ( $options as $value => $label ) {
			$html .= '<option value="' . esc_attr( $value ) . '"' . selected( $current, $value, false ) . '>' . esc_html( $label ) . '</option>';
		}
		return $html . '</select>';
	}

	/**
	 * A form-table row with escaped text.
	 *
	 * @param string $label Label.
	 * @param string $value Value.
	 * @return void
	 */
	private static function row( $label, $value ) {
		printf( '<tr><th scope="row">%1$s</th><td>%2$s</td></tr>', esc_html( $label ), esc_html( $value ) );
	}

	/**
	 * The "send test event" script: publish through WordPress, wait for the event to come back through relayd.
	 *
	 * @return void
	 */
	private static function test_script() {
		$config = array(
			'endpoint' => rest_url( Tokens::REST_NAMESPACE . '/test' ),
			'nonce'    => wp_create_nonce( 'wp_rest' ),
			'text'     => array(
				'sending'  => __( 'Sending…', 'relay-realtime' ),
				'received' => __( 'Round trip through relayd and back to this browser: %d ms.', 'relay-realtime' ),
				'accepted' => __( 'relayd accepted the event, but this browser did not receive it within 10 s (is the client connected?).', 'relay-realtime' ),
				'failed'   => __( 'Publishing failed:', 'relay-realtime' ),
			),
		);
		$js = <<<'JS'
(function (c) {
	var button = document.getElementById('relay-realtime-test');
	var out = document.getElementById('relay-realtime-test-result');
	if (!button) { return; }
	button.addEventListener('click', function () {
		var started = Date.now(), id = null, done = false, seen = {};
		out.textContent = c.text.sending;
		function finish() {
			done = true;
			document.removeEventListener('relay:relay.test', onEvent);
			out.textContent = c.text.received.replace('%d', String(seen[id] - started));
		}
		function onEvent(e) {
			var d = e.detail && e.detail.data;
			if (done || !d || !d.id) { return; }
			seen[d.id] = Date.now();
			if (d.id === id) { finish(); }
		}
		document.addEventListener('relay:relay.test', onEvent);
		fetch(c.endpoint, { method: 'POST', credentials: 'same-origin', headers: { 'X-WP-Nonce': c.nonce } })
			.then(function (r) { return r.json(); })
			.then(function (r) {
				if (!r.ok) { done = true; out.textContent = c.text.failed + ' ' + (r.message || r.code || ''); return; }
				id = r.id;
				if (seen[id]) { finish(); return; }
				setTimeout(function () { if (!done) { done = true; out.textContent = c.text.accepted; } }, 10000);
			})
			.catch(function (e) { done = true; out.textContent = c.text.failed + ' ' + e; });
	});
})
JS;
		wp_print_inline_script_tag( $js . '(' . wp_json_encode( $config ) . ');' );
	}
}
