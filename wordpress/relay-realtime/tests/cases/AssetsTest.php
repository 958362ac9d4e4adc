<?php
/**
 * The client and the Gutenberg provider: ES modules, config printed once, keys only for readers.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Assets;
use RelayRealtime\Config;

/**
 * What a page prints.
 */
final class AssetsTest extends Relay_Test_Case {

	protected function setUp(): void {
		parent::setUp();
		$GLOBALS['wp_scripts'] = null;
		wp_scripts();
		Assets::reset();
	}

	/**
	 * Enqueues like a front-end page and returns the printed footer scripts.
	 *
	 * @param string $hook Enqueue hook.
	 * @return string
	 */
	private static function page( $hook = 'wp_enqueue_scripts' ) {
		do_action( $hook );
		ob_start();
		wp_print_scripts();
		wp_print_footer_scripts();
		return (string) ob_get_clean();
	}

	/**
	 * Decodes window.RelayRealtimeConfig from printed HTML.
	 *
	 * @param string $html HTML.
	 * @return array
	 */
	private function config( $html ) {
		$this->assertSame( 1, substr_count( $html, 'window.RelayRealtimeConfig =' ), 'config printed exactly once' );
		$this->assertSame( 1, preg_match( '#window\.RelayRealtimeConfig = (\{.*?\});\s*</script>#s', $html, $m ) );
		return json_decode( $m[1], true );
	}

	public function test_logged_in_reader_gets_the_module_config_and_keys() {
		$user = self::user( 'subscriber' );
		wp_set_current_user( $user );
		$html = self::page();
		$this->assertMatchesRegularExpression( '#<script type="module"[^>]*src=[\'"][^\'"]*assets/js/boot\.js\?ver=0\.1\.0[\'"][^>]*id=[\'"]relay-realtime-client-js[\'"]#', $html );
		$this->assertStringNotContainsString( 'text/javascript', preg_replace( '#<script(?![^>]*relay-realtime-client-js[\'"])[^>]*>#', '', $html ) );
		$this->assertLessThan( strpos( $html, 'boot.js' ), strpos( $html, 'window.RelayRealtimeConfig' ), 'config before the module' );

		$c = $this->config( $html );
		$this->assertSame( array( 'url', 'siteId', 'token', 'exp', 'tokenEndpoint', 'nonce', 'channels', 'payloadKeys', 'kid', 'yjs', 'debug', 'e2e' ), array_keys( $c ) );
		$this->assertSame( getenv( 'RRT_RELAY_URL' ), $c['url'] );
		$this->assertSame( Config::site_id(), $c['siteId'] );
		$this->assertSame( rest_url( 'relay-realtime/v1/token' ), $c['tokenEndpoint'] );
		$this->assertSame( 1, wp_verify_nonce( $c['nonce'], 'wp_rest' ) );
		$this->assertSame( array( self::ch( 'events' ) ), $c['channels'] );
		$this->assertSame( array( 'p1' => base64_encode( Config::v2_key( 'p1' ) ), 'v1' => base64_encode( Config::v1_key() ) ), $c['payloadKeys'] );
		$this->assertFalse( $c['yjs']['enabled'], 'no real-time collaboration in WordPress 6.1' );
		$this->assertGreaterThan( time(), $c['exp'] );
		// The token is accepted by relayd for the auto-subscribe channels.
		$this->subscribe( $c['channels'], array( 'token' => $c['token'] ) );
		// And a key opens what WordPress publishes.
		$sub = $this->subscribe( $c['channels'], array( 'token' => $c['token'], 'payload_key' => $c['payloadKeys']['p1'] ) );
		relay_realtime_publish( 'events', 'from.config', array( 'ok' => true ) );
		\RelayRealtime\Publisher::flush();
		$this->assertNotNull( $sub->wait_message( 'from.config', 10 ) );
	}

	public function test_anonymous_visitors_get_nothing_by_default() {
		$html = self::page();
		$this->assertStringNotContainsString( 'RelayRealtimeConfig', $html );
		$this->assertStringNotContainsString( 'boot.js', $html );
	}

	public function test_anonymous_with_a_public_channel_get_no_keys() {
		$open = static fn () => array( 'live:scores' );
		add_filter( 'relay_realtime_public_channels', $open );
		$html = self::page();
		remove_filter( 'relay_realtime_public_channels', $open );
		$c = $this->config( $html );
		$this->assertSame( array(), $c['payloadKeys'] );
		$this->assertSame( array( self::ch( 'live:scores' ) ), $c['channels'] );
		$this->assertStringContainsString( '"payloadKeys":{}', $html, 'an empty object, not an array' );
	}

	public function test_provider_only_when_collaboration_is_available_and_config_still_once() {
		wp_set_current_user( 1 );
		$post = wp_insert_post( array( 'post_title' => 'Edit me', 'post_status' => 'draft' ) );
		$GLOBALS['post'] = get_post( $post );
		$html = self::page( 'enqueue_block_editor_assets' );
		$this->assertStringNotContainsString( 'boot.js', $html, 'not on WordPress 6.1 without the RTC flag' );

		$GLOBALS['wp_scripts'] = null;
		wp_scripts();
		Assets::reset();
		$on = static fn () => true;
		add_filter( 'relay_realtime_collaboration_available', $on );
		// Real order: the block editor's assets first (edit-form-blocks.php), then admin_enqueue_scripts.
		do_action( 'enqueue_block_editor_assets' );
		Assets::enqueue_client();
		$html = self::page( 'relay_rrt_nothing' );
		remove_filter( 'relay_realtime_collaboration_available', $on );
		unset( $GLOBALS['post'] );
		$this->assertMatchesRegularExpression( '#<script type="module"[^>]*boot\.js#', $html );
		$this->assertSame( 1, substr_count( $html, 'boot.js' ), 'the entry point once' );
		$this->assertLessThan( strpos( $html, 'boot.js' ), strpos( $html, 'wp-includes/js/dist/hooks' ), 'wp-hooks before the entry point (it registers the provider)' );
		$c = $this->config( $html );
		$this->assertTrue( $c['yjs']['enabled'] );
		$this->assertSame( '', $c['yjs']['roomPrefix'], 'relayd scopes the room to the site itself' );
		$claims = json_decode( \RelayRealtime\Crypto::b64url_decode( explode( '.', $c['token'] )[1] ), true );
		$this->assertContains( self::ch( "yjs:postType/post:$post" ), $claims['allowed_publish_prefixes'], 'the edited post\'s room is writable' );
	}
}
