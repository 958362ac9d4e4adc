<?php
/**
 * Built-in triggers: posts published/updated/deleted, comments approved.
 *
 * @package RelayRealtime
 */

namespace RelayRealtime;

defined( 'ABSPATH' ) || exit;

/**
 * Registry of triggers and the built-in ones.
 *
 * | Event            | When                                                        |
 * |------------------|-------------------------------------------------------------|
 * | `post.published` | a post of a viewable type becomes `publish`                 |
 * | `post.updated`   | a published post is saved again                             |
 * | `post.deleted`   | a published post is trashed, unpublished or deleted         |
 * | `comment.approved` | a comment is approved (new, or moderated)                 |
 * | `comment.removed`  | an approved comment is unapproved, spammed, trashed       |
 *
 * All go to `events`, sealed. Comment events carry `approved_count`, the
 * number of approved comments of the post after the change.
 *
 * @since 0.1.0
 */
final class Triggers {

	/**
	 * Registered triggers.
	 *
	 * @var Trigger[]
	 */
	private static $all = array();

	/**
	 * Records a registered trigger.
	 *
	 * @param Trigger $trigger Trigger.
	 * @return void
	 */
	public static function remember( Trigger $trigger ) {
		self::$all[] = $trigger;
	}

	/**
	 * Registered triggers.
	 *
	 * @return Trigger[]
	 */
	public static function all() {
		return self::$all;
	}

	/**
	 * Registers the built-in triggers (each can be switched off with `relay_realtime_builtin_triggers`).
	 *
	 * @return void
	 */
	public static function register_builtins() {
		/**
		 * Filters which built-in triggers run.
		 *
		 * @since 0.1.0
		 *
		 * @param array<string,bool> $enabled `posts` and `comments`, both true by default.
		 */
		$enabled = (array) apply_filters(
			'relay_realtime_builtin_triggers',
			array(
				'posts'    => true,
				'comments' => true,
			)
		);
		if ( ! empty( $enabled['posts'] ) ) {
			add_action( 'wp_after_insert_post', array( __CLASS__, 'after_insert_post' ), 20, 4 );
			add_action( 'deleted_post', array( __CLASS__, 'deleted_post' ), 20, 2 );
		}
		if ( ! empty( $enabled['comments'] ) ) {
			add_action( 'comment_post', array( __CLASS__, 'comment_post' ), 20, 2 );
			add_action( 'transition_comment_status', array( __CLASS__, 'transition_comment_status' ), 20, 3 );
		}
	}

	/**
	 * Whether a post is one the built-ins report on.
	 *
	 * @param \WP_Post $post Post.
	 * @return bool
	 */
	public static function reports( $post ) {
		if ( ! $post instanceof \WP_Post || wp_is_post_revision( $post ) || wp_is_post_autosave( $post ) ) {
			return false;
		}
		$viewable = is_post_type_viewable( $post->post_type ) && 'attachment' !== $post->post_type;
		/**
		 * Filters whether the built-in post triggers report on a post.
		 *
		 * @since 0.1.0
		 *
		 * @param bool     $report Default: viewable post types except attachments.
		 * @param \WP_Post $post   Post.
		 */
		return (bool) apply_filters( 'relay_realtime_report_post', $viewable, $post );
	}

	/**
	 * The data of post events.
	 *
	 * @param \WP_Post $post Post.
	 * @return array
	 */
	public static function post_data( $post ) {
		$data = array(
			'post_id'    => (int) $post->ID,
			'post_type'  => $post->post_type,
			'post_title' => get_the_title( $post ),
			'permalink'  => get_permalink( $post ),
			'excerpt'    => wp_strip_all_tags( get_the_excerpt( $post ) ),
			'updated'    => mysql2date( 'c', $post->post_modified_gmt, false ),
		);
		/**
		 * Filters the data of the built-in post events.
		 *
		 * @since 0.1.0
		 *
		 * @param array    $data Data.
		 * @param \WP_Post $post Post.
		 */
		return (array) apply_filters( 'relay_realtime_post_event_data', $data, $post );
	}

	/**
	 * `wp_after_insert_post`: runs after terms and meta are saved.
	 *
	 * @param int           $post_id     Post id.
	 * @param \WP_Post      $post        Post.
	 * @param bool          $update      Whether an update.
	 * @param \WP_Post|null $post_before Post before the update.
	 * @return void
	 */
	public static function after_insert_post( $post_id, $post, $update, $post_before ) {
		if ( ! self::reports( $post ) ) {
			return;
		}
		$was_published = $post_before instanceof \WP_Post && 'publish' === $post_before->post_status;
		if ( 'publish' === $post->post_status ) {
			Publisher::publish( 'events', $was_published ? 'post.updated' : 'post.published', self::post_data( $post ) );
		} elseif ( $was_published ) {
			$data           = self::post_data( $post );
			$data['status'] = $post->post_status;
			Publisher::publish( 'events', 'post.deleted', $data );
		}
	}

	/**
	 * `deleted_post`: a post deleted without going through the trash.
	 *
	 * @param int      $post_id Post id.
	 * @param \WP_Post $post    Post.
	 * @return void
	 */
	public static function deleted_post( $post_id, $post = null ) {
		if ( $post instanceof \WP_Post && 'publish' === $post->post_status && self::reports( $post ) ) {
			Publisher::publish(
				'events',
				'post.deleted',
				array(
					'post_id'   => (int) $post_id,
					'post_type' => $post->post_type,
					'status'    => 'deleted',
				)
			);
		}
	}

	/**
	 * Approved comments of a post, read from the database.
	 *
	 * @param int $post_id Post id.
	 * @return int
	 */
	public static function approved_count( $post_id ) {
		return (int) get_comments(
			array(
				'post_id' => (int) $post_id,
				'status'  => 'approve',
				'count'   => true,
			)
		);
	}

	/**
	 * Data of comment events.
	 *
	 * @param \WP_Comment $comment Comment.
	 * @return array
	 */
	public static function comment_data( $comment ) {
		$data = array(
			'comment_id'     => (int) $comment->comment_ID,
			'post_id'        => (int) $comment->comment_post_ID,
			'parent'         => (int) $comment->comment_parent,
			'author_name'    => $comment->comment_author,
			'approved_count' => self::approved_count( (int) $comment->comment_post_ID ),
		);
		/**
		 * Filters the data of the built-in comment events.
		 *
		 * @since 0.1.0
		 *
		 * @param array       $data    Data.
		 * @param \WP_Comment $comment Comment.
		 */
		return (array) apply_filters( 'relay_realtime_comment_event_data', $data, $comment );
	}

	/**
	 * Whether the comment's post is reported on.
	 *
	 * @param \WP_Comment|null $comment Comment.
	 * @return bool
	 */
	private static function reports_comment( $comment ) {
		if ( ! $comment instanceof \WP_Comment || ( '' !== $comment->comment_type && 'comment' !== $comment->comment_type ) ) {
			return false;
		}
		$post = get_post( (int) $comment->comment_post_ID );
		return $post && 'publish' === $post->post_status && self::reports( $post );
	}

	/**
	 * `comment_post`: a new comment; only approved ones are published.
	 *
	 * @param int        $comment_id Comment id.
	 * @param int|string $approved   1, 0 or 'spam'.
	 * @return void
	 */
	public static function comment_post( $comment_id, $approved ) {
		$comment = get_comment( $comment_id );
		if ( 1 === (int) $approved && 'spam' !== $approved && self::reports_comment( $comment ) ) {
			Publisher::publish( 'events', 'comment.approved', self::comment_data( $comment ) );
		}
	}

	/**
	 * `transition_comment_status`: moderation.
	 *
	 * @param string      $new_status New status.
	 * @param string      $old_status Old status.
	 * @param \WP_Comment $comment    Comment.
	 * @return void
	 */
	public static function transition_comment_status( $new_status, $old_status, $comment ) {
		if ( $new_status === $old_status || ! self::reports_comment( $comment ) ) {
			return;
		}
		if ( 'approved' === $new_status ) {
			Publisher::publish( 'events', 'comment.approved', self::comment_data( $comment ) );
		} elseif ( 'approved' === $old_status ) {
			$data           = self::comment_data( $comment );
			$data['status'] = $new_status;
			Publisher::publish( 'events', 'comment.removed', $data );
		}
	}
}
