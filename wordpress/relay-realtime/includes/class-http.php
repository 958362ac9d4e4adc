<?php
/**
 * Signed and admin requests to relayd.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Thin wrapper over wp_remote_request that signs, bounds the time and
 * normalises relayd's answers to `{status, json, code, message}`.
 *
 * @since 0.1.0
 */
final class Http {

	/**
	 * A request signed with the publish secret (v2 by default, v1 on request).
	 *
	 * @param string     $method  GET or POST.
	 * @param string     $path    Path such as /publish.
	 * @param string     $body    Exact body bytes ('' for GET).
	 * @param float|null $timeout Seconds (the configured timeout when null).
	 * @return array{status:int,json:mixed,code:string,message:string}
	 */
	public static function signed( $method, $path, $body = '', $timeout = null ) {
		$url      = Config::get( 'url' );
		$site_key = Config::get( 'site_key' );
		$secret   = Config::get( 'publish_secret' );
		if ( '' === $url || '' === $site_key || '' === $secret ) {
			return self::result( 0, null, 'not_connected', __( 'The site is not connected to relayd.', 'relay-realtime' ) );
		}
		$base_path = (string) wp_parse_url( $url, PHP_URL_PATH );
		$full_path = rtrim( $base_path, '/' ) . $path;
		if ( 'v1' === Config::setting( 'signature' ) ) {
			$headers = Crypto::sign_v1( $body, $site_key, $secret );
		} else {
			$headers = Crypto::sign_v2( $method, $full_path, '', $body, $site_key, Config::get( 'publish_key_id' ), $secret );
		}
		$headers['Content-Type'] = 'application/json';
		return self::send( $method, $url . $path, $headers, $body, $timeout );
	}

	/**
	 * A request to relayd's admin API with a Bearer admin key.
	 *
	 * @param string $url       relayd base URL.
	 * @param string $admin_key Admin key.
	 * @param string $path      Path such as /api/sites/register.
	 * @param array  $payload   JSON body.
	 * @return array{status:int,json:mixed,code:string,message:string}
	 */
	public static function admin( $url, $admin_key, $path, $payload ) {
		return self::send(
			'POST',
			untrailingslashit( $url ) . $path,
			array(
				'Authorization' => 'Bearer ' . $admin_key,
				'Content-Type'  => 'application/json',
			),
			(string) wp_json_encode( $payload ),
			max( 5.0, (float) Config::setting( 'timeout' ) )
		);
	}

	/**
	 * Sends and normalises.
	 *
	 * @param string     $method  Method.
	 * @param string     $url     Full URL.
	 * @param array      $headers Headers.
	 * @param string     $body    Body.
	 * @param float|null $timeout Seconds.
	 * @return array{status:int,json:mixed,code:string,message:string}
	 */
	private static function send( $method, $url, $headers, $body, $timeout ) {
		$timeout = null === $timeout ? (float) Config::setting( 'timeout' ) : (float) $timeout;
		$args    = array(
			'method'      => $method,
			'timeout'     => $timeout,
			'redirection' => 0,
			'headers'     => $headers,
			'user-agent'  => 'relay-realtime/' . RELAY_REALTIME_VERSION . '; ' . home_url( '/' ),
		);
		if ( 'GET' !== $method ) {
			$args['body'] = $body;
		}
		/**
		 * Filters the arguments of every request to relayd (e.g. `sslverify` for a private CA).
		 *
		 * @since 0.1.0
		 *
		 * @param array  $args wp_remote_request() arguments.
		 * @param string $url  Request URL.
		 */
		$args     = apply_filters( 'relay_realtime_http_args', $args, $url );
		$response = wp_remote_request( $url, $args );
		if ( is_wp_error( $response ) ) {
			return self::result( 0, null, 'unreachable', $response->get_error_message() );
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		$json   = json_decode( (string) wp_remote_retrieve_body( $response ), true );
		if ( null === $json && '' !== trim( (string) wp_remote_retrieve_body( $response ) ) ) {
			return self::result( $status, null, 'invalid_response', sprintf( 'HTTP %d', $status ) );
		}
		if ( $status >= 200 && $status < 300 ) {
			return self::result( $status, $json, '', '' );
		}
		$code    = is_array( $json ) && isset( $json['error'] ) ? (string) $json['error'] : 'http_' . $status;
		$message = is_array( $json ) && isset( $json['message'] ) ? (string) $json['message'] : '';
		return self::result( $status, $json, $code, $message );
	}

	/**
	 * Result array.
	 *
	 * @param int    $status  HTTP status.
	 * @param mixed  $json    Decoded body.
	 * @param string $code    Error code ('' on success).
	 * @param string $message Detail.
	 * @return array{status:int,json:mixed,code:string,message:string}
	 */
	private static function result( $status, $json, $code, $message ) {
		return array(
			'status'  => $status,
			'json'    => $json,
			'code'    => $code,
			'message' => $message,
		);
	}
}
