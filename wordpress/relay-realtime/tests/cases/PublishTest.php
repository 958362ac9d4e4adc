<?php
/**
 * Built-in triggers, custom triggers, batching: delivered through relayd to a subscriber.
 *
 * @package RelayRealtime
 */

use RelayRealtime\Publisher;

/**
 * What WordPress does becomes sealed events a subscriber opens.
 */
final class PublishTest extends Relay_Test_Case {

	public function test_inserting_a_published_post_delivers_a_sealed_event() {
		$events = self::ch( 'events' );
		$sub    = $this->subscribe( array( $events ), array( 'payload_key' => self::v2_key_b64() ) );
		$raw    = $this->subscribe( array( $events ) ); // Without the key: what relayd and anyone else sees.

		$post_id = wp_insert_post(
			array(
				'post_title'   => 'Live from WordPress',
				'post_content' => 'Body',
				'post_status'  => 'publish',
			)
		);
		$this->assertGreaterThan( 0, $post_id );
		$this->assertCount( 1, Publisher::pending(), 'queued, not sent inside the request' );
		$counts = Publisher::flush();
		$this->assertSame( 1, $counts['sent'] );

		$m = $sub->wait_message(
			'post.published',
			10,
			static function ( $d ) use ( $post_id ) {
				return ( $d['post_id'] ?? 0 ) === $post_id;
			}
		);
		$this->assertNotNull( $m, 'subscriber received post.published: ' . wp_json_encode( $sub->lines ) );
		$this->assertTrue( $m['sealed'], 'it arrived sealed and relayctl opened it' );
		$this->assertSame( 'Live from WordPress', $m['data']['post_title'] );
		$this->assertSame( get_permalink( $post_id ), $m['data']['permalink'] );

		$seen = $raw->wait_message( 'encrypted', 10 );
		$this->assertNotNull( $seen );
		$this->assertSame( 2, $seen['data']['v'] );
		$this->assertSame( 'A256GCM', $seen['data']['alg'] );
		$this->assertStringNotContainsString( 'Live from WordPress', wp_json_encode( $raw->lines ), 'the relay path carries no plaintext' );

		// Updating it is post.updated; an autosave/revision is not published.
		wp_update_post( array( 'ID' => $post_id, 'post_title' => 'Edited' ) );
		$labels = wp_list_pluck( Publisher::pending(), 'label' );
		$this->assertSame( array( 'post.updated' ), $labels, 'one event for the post, none for its revision' );
		Publisher::flush();
		$this->assertNotNull( $sub->wait_message( 'post.updated', 10, static fn ( $d ) => 'Edited' === ( $d['post_title'] ?? '' ) ) );

		wp_trash_post( $post_id );
		Publisher::flush();
		$deleted = $sub->wait_message( 'post.deleted', 10, static fn ( $d ) => ( $d['post_id'] ?? 0 ) === $post_id );
		$this->assertNotNull( $deleted );
		$this->assertSame( 'trash', $deleted['data']['status'] );
	}

	public function test_drafts_are_not_published() {
		wp_insert_post( array( 'post_title' => 'Draft', 'post_status' => 'draft' ) );
		$this->assertSame( array(), Publisher::pending() );
	}

	public function test_envelope_v1_on_request() {
		$sub = $this->subscribe( array( self::ch( 'events' ) ), array( 'payload_key' => base64_encode( \RelayRealtime\Config::v1_key() ) ) );
		relay_realtime()->publish( 'events', 'legacy.event', array( 'x' => 1 ), array( 'envelope' => 'v1' ) );
		Publisher::flush();
		$m = $sub->wait_message( 'legacy.event', 10 );
		$this->assertNotNull( $m, wp_json_encode( $sub->lines ) );
		$this->assertTrue( $m['sealed'] );
		$this->assertSame( array( 'x' => 1 ), $m['data'] );
	}

	public function test_approved_comment_carries_the_live_count() {
		$post_id = wp_insert_post( array( 'post_title' => 'Commented', 'post_status' => 'publish' ) );
		Publisher::flush();
		$sub = $this->subscribe( array( self::ch( 'events' ) ), array( 'payload_key' => self::v2_key_b64() ) );

		$first = wp_insert_comment( array( 'comment_post_ID' => $post_id, 'comment_content' => 'one', 'comment_approved' => 1, 'comment_author' => 'A' ) );
		do_action( 'comment_post', $first, 1, array() );
		$pending = wp_insert_comment( array( 'comment_post_ID' => $post_id, 'comment_content' => 'two', 'comment_approved' => 0, 'comment_author' => 'B' ) );
		do_action( 'comment_post', $pending, 0, array() );
		$this->assertCount( 1, Publisher::pending(), 'the unapproved comment is not published' );
		wp_set_comment_status( $pending, 'approve' );
		Publisher::flush();

		$one = $sub->wait_message( 'comment.approved', 10, static fn ( $d ) => ( $d['comment_id'] ?? 0 ) === $first );
		$two = $sub->wait_message( 'comment.approved', 10, static fn ( $d ) => ( $d['comment_id'] ?? 0 ) === $pending );
		$this->assertNotNull( $one );
		$this->assertNotNull( $two );
		$this->assertSame( 1, $one['data']['approved_count'] );
		$this->assertSame( 2, $two['data']['approved_count'] );
		$this->assertSame( $post_id, $two['data']['post_id'] );
	}

	public function test_custom_trigger_from_a_mu_plugin_fires() {
		$sub = $this->subscribe( array( self::ch( 'shop:orders' ) ), array( 'payload_key' => self::v2_key_b64() ) );
		do_action( 'rrt_order_paid', 41, 0 ); // when() refuses a zero total.
		$this->assertSame( array(), Publisher::pending() );
		do_action( 'rrt_order_paid', 42, 19.5 );
		Publisher::flush();
		$m = $sub->wait_message( 'order.paid', 10 );
		$this->assertNotNull( $m, wp_json_encode( $sub->lines ) );
		$this->assertSame( array( 'order_id' => 42, 'total' => 19.5 ), $m['data'] );
		$this->assertSame( self::ch( 'shop:orders' ), $m['channel'] );
	}

	public function test_several_publishes_go_as_one_batch() {
		$sub      = $this->subscribe( array( self::ch( 'events' ) ), array( 'payload_key' => self::v2_key_b64() ) );
		$requests = array();
		$spy      = static function ( $pre, $args, $url ) use ( &$requests ) {
			$requests[] = wp_parse_url( $url, PHP_URL_PATH );
			return $pre;
		};
		add_filter( 'pre_http_request', $spy, 10, 3 );
		for ( $i = 1; $i <= 5; $i++ ) {
			relay_realtime_publish( 'events', 'batch.item', array( 'i' => $i ) );
		}
		$counts = Publisher::flush();
		remove_filter( 'pre_http_request', $spy, 10 );
		$this->assertSame( 5, $counts['sent'] );
		$this->assertSame( array( '/publish/batch' ), $requests );
		$sub->wait_for( fn () => count( $sub->messages( 'batch.item' ) ) >= 5, 10 );
		$this->assertSame( array( 1, 2, 3, 4, 5 ), array_map( static fn ( $m ) => $m['data']['i'], $sub->messages( 'batch.item' ) ), 'in order' );
	}

	public function test_force_deleting_a_published_post_is_post_deleted() {
		$post_id = wp_insert_post( array( 'post_title' => 'Gone', 'post_status' => 'publish' ) );
		Publisher::flush();
		wp_delete_post( $post_id, true );
		$pending = Publisher::pending();
		$this->assertSame( array( 'post.deleted' ), wp_list_pluck( $pending, 'label' ) );
		$this->assertSame( 'deleted', json_decode( \RelayRealtime\Crypto::open( $pending[0]['data'], \RelayRealtime\Config::v2_key(), $pending[0]['channel'] ), true )['data']['status'] );
		Publisher::flush();
	}

	public function test_strings_are_names_never_functions() {
		$sub = $this->subscribe( array( self::ch( 'key' ) ), array( 'payload_key' => self::v2_key_b64() ) );
		relay_realtime()->trigger( 'named' )->on( 'rrt_named_channel' )->channel( 'key' )->register(); // key() is a PHP function.
		do_action( 'rrt_named_channel', array( 'a' => 1 ) );
		Publisher::flush();
		$this->assertNotNull( $sub->wait_message( 'named', 10 ) );
		$this->assertFalse( \RelayRealtime\Channels::passes( 'date', 1 ), 'a capability named like a function is a capability' );
		$this->assertTrue( \RelayRealtime\Channels::passes( static fn ( $id ) => 1 === $id, 1 ) );
	}
}
