<?php
/**
 * The settings page and its actions over real HTTP, logged in with a real session cookie.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Config;

/**
 * wp-admin as a browser sees it.
 */
final class AdminHttpTest extends Relay_Test_Case {

	/**
	 * Auth cookies for a user.
	 *
	 * @param int $user_id User.
	 * @return array<string,string>
	 */
	private static function cookies( $user_id ) {
		$exp   = time() + 3600;
		$token = WP_Session_Tokens::get_instance( $user_id )->create( $exp );
		return array(
			AUTH_COOKIE      => wp_generate_auth_cookie( $user_id, $exp, 'auth', $token ),
			LOGGED_IN_COOKIE => wp_generate_auth_cookie( $user_id, $exp, 'logged_in', $token ),
		);
	}

	/**
	 * A request to the test WordPress.
	 *
	 * @param string $method  Method.
	 * @param string $path    Path.
	 * @param array  $cookies Cookies.
	 * @param array  $body    Form body.
	 * @return array
	 */
	private static function http( $method, $path, $cookies, $body = null ) {
		$r = wp_remote_request(
			getenv( 'RRT_WP_URL' ) . $path,
			array(
				'method'      => $method,
				'cookies'     => $cookies,
				'body'        => $body,
				'redirection' => 0,
				'timeout'     => 20,
			)
		);
		return $r;
	}

	public function test_settings_page_and_rotate_over_http() {
		$cookies = self::cookies( 1 );
		$r       = self::http( 'GET', '/wp-admin/options-general.php?page=relay-realtime', $cookies );
		$this->assertSame( 200, wp_remote_retrieve_response_code( $r ) );
		$html = wp_remote_retrieve_body( $r );
		$this->assertStringContainsString( 'Send test event', $html );
		$this->assertStringContainsString( 'Active connections', $html );
		$this->assertSame( 1, substr_count( $html, 'window.RelayRealtimeConfig =' ), 'config once in wp-admin too' );
		$this->assertMatchesRegularExpression( '#<script type="module"[^>]*boot\.js#', $html );
		foreach ( array( 'publish_secret', 'jwt_secret', 'admin_key' ) as $secret ) {
			$this->assertStringNotContainsString( Config::get( $secret ), $html );
		}

		$this->assertSame( 1, preg_match( '#name="action" value="relay_realtime_rotate">.*?name="_wpnonce" value="([0-9a-f]+)"#s', $html, $m ) );
		$old = Config::get( 'publish_secret' );

		$bad = self::http( 'POST', '/wp-admin/admin-post.php', $cookies, array( 'action' => 'relay_realtime_rotate', '_wpnonce' => 'nope' ) );
		$this->assertSame( 403, wp_remote_retrieve_response_code( $bad ), 'bad nonce refused' );
		$this->assertSame( $old, self::fresh_option( 'relay_realtime_publish_secret' ) );

		$editor = self::cookies( self::user( 'editor' ) );
		$denied = self::http( 'POST', '/wp-admin/admin-post.php', $editor, array( 'action' => 'relay_realtime_rotate', '_wpnonce' => $m[1] ) );
		$this->assertSame( 403, wp_remote_retrieve_response_code( $denied ), 'editors may not' );
		$this->assertSame( $old, self::fresh_option( 'relay_realtime_publish_secret' ) );
		$page = self::http( 'GET', '/wp-admin/options-general.php?page=relay-realtime', $editor );
		$this->assertNotSame( 200, wp_remote_retrieve_response_code( $page ) );

		$ok = self::http( 'POST', '/wp-admin/admin-post.php', $cookies, array( 'action' => 'relay_realtime_rotate', '_wpnonce' => $m[1], '_wp_http_referer' => '/wp-admin/options-general.php?page=relay-realtime' ) );
		$this->assertSame( 302, wp_remote_retrieve_response_code( $ok ) );
		$this->assertStringContainsString( 'page=relay-realtime', wp_remote_retrieve_header( $ok, 'location' ) );
		$new = self::fresh_option( 'relay_realtime_publish_secret' );
		$this->assertNotSame( $old, $new, 'one click rotated the secret' );

		$after = wp_remote_retrieve_body( self::http( 'GET', '/wp-admin/options-general.php?page=relay-realtime', $cookies ) );
		$this->assertStringContainsString( 'Publish secret rotated', $after );
		$this->assertStringNotContainsString( $new, $after );
	}
}
