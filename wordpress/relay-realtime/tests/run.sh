#!/usr/bin/env bash
# The real-WordPress suite of the relay-realtime plugin.
#
# Installs what is missing (Debian packages; the `wordpress` package is
# downloaded and unpacked, not installed, so apache2 is not pulled in), then in
# a temporary directory: starts MariaDB on a private socket (no TCP), copies
# WordPress 6.1 with its own wp-config.php (WP_DEBUG on), installs it, activates
# the plugin, starts relayd on a free loopback port with a site created through
# its admin API (relayctl site add), serves WordPress with `php -S` on loopback,
# and runs PHPUnit. Everything is torn down on exit, even on failure.
#
# Env: RELAYD_BIN, RELAYCTL_BIN (default: .build/debug/), PHPUNIT_ARGS, KEEP_TMP=1.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PLUGIN="$(cd "$HERE/.." && pwd)"
REPO="$(cd "$PLUGIN/../.." && pwd)"
RELAYD="${RELAYD_BIN:-$REPO/.build/debug/relayd}"
RELAYCTL="${RELAYCTL_BIN:-$REPO/.build/debug/relayctl}"
started_at=$(date +%s)

log() { printf '[wordpress-tests] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -x "$RELAYD" ] || die "relayd not found at $RELAYD (run swift build, or set RELAYD_BIN)"
[ -x "$RELAYCTL" ] || die "relayctl not found at $RELAYCTL (set RELAYCTL_BIN)"

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

# --- packages -----------------------------------------------------------------
need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server-core mariadb-client-core)
command -v phpunit >/dev/null 2>&1 || need+=(phpunit)
command -v zip >/dev/null 2>&1 || need+=(zip)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v node >/dev/null 2>&1 || need+=(nodejs)
[ -d /usr/share/nodejs/y-websocket ] && [ -d /usr/share/nodejs/ws ] || need+=(node-y-websocket node-yjs node-ws node-lib0 node-y-protocols)
php -r 'exit(extension_loaded("mysqli") ? 0 : 1);' 2>/dev/null || need+=(php-mysql)
php -r 'exit(extension_loaded("curl") ? 0 : 1);' 2>/dev/null || need+=(php-curl)
php -r 'exit(extension_loaded("mbstring") ? 0 : 1);' 2>/dev/null || need+=(php-mbstring)
php -r 'exit(extension_loaded("xml") ? 0 : 1);' 2>/dev/null || need+=(php-xml)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
MARIADBD="$(command -v mariadbd || echo /usr/sbin/mariadbd)"

# Debian's WordPress: the installed package when present, else its .deb unpacked into a cache.
WP_SRC=/usr/share/wordpress
if [ ! -f "$WP_SRC/wp-settings.php" ]; then
  cache="$REPO/.build-wordpress"
  WP_SRC="$cache/root/usr/share/wordpress"
  if [ ! -f "$WP_SRC/wp-settings.php" ]; then
    log "downloading Debian's wordpress package"
    mkdir -p "$cache" && rm -rf "$cache/root" "$cache"/*.deb
    ( cd "$cache" && { apt-get download -q wordpress >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && apt-get download -q wordpress >/dev/null 2>&1; }; } ) \
      || die "apt-get download wordpress failed"
    dpkg -x "$cache"/wordpress_*.deb "$cache/root"
  fi
fi
WP_VERSION=$(php -r 'include $argv[1]; echo $wp_version;' "$WP_SRC/wp-includes/version.php")
log "WordPress $WP_VERSION from $WP_SRC, PHP $(php -r 'echo PHP_VERSION;')"

# --- temp tree and teardown ---------------------------------------------------
TMP="$(mktemp -d /tmp/relay-wp.XXXXXX)"
PIDS=()
cleanup() {
  rc=$?
  # php -S forks workers (PHP_CLI_SERVER_WORKERS): end the children of each process we started, then it.
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  [ -f "$TMP/relayd.pid" ] && { kill -CONT "$(cat "$TMP/relayd.pid")" 2>/dev/null; kill "$(cat "$TMP/relayd.pid")" 2>/dev/null; } || true
  [ -f "$TMP/mariadb.pid" ] && kill "$(cat "$TMP/mariadb.pid")" 2>/dev/null || true
  sleep 0.3
  if [ "$rc" -ne 0 ]; then
    for f in debug.log mariadb.err relayd.log php-server.log; do
      [ -s "$TMP/$f" ] && { log "--- $f (tail)"; tail -n 40 "$TMP/$f" >&2; }
    done
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  log "finished in $(( $(date +%s) - started_at )) s (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# --- MariaDB on a private socket ----------------------------------------------
mkdir -p "$TMP/db"
DBUSER=$(id -un)
mariadb-install-db --no-defaults --datadir="$TMP/db" --user="$DBUSER" \
  --auth-root-authentication-method=normal --skip-test-db >"$TMP/mariadb-install.log" 2>&1 \
  || { cat "$TMP/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
"$MARIADBD" --no-defaults --datadir="$TMP/db" --socket="$TMP/m.sock" --skip-networking \
  --pid-file="$TMP/mariadb.pid" --log-error="$TMP/mariadb.err" --user="$DBUSER" \
  --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --skip-log-bin &
PIDS+=($!)
for _ in $(seq 1 100); do mariadb --no-defaults -S "$TMP/m.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
mariadb --no-defaults -S "$TMP/m.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 || die "MariaDB did not start"
mariadb --no-defaults -S "$TMP/m.sock" -uroot -e 'CREATE DATABASE wordpress'
log "MariaDB up on $TMP/m.sock"

# --- relayd ---------------------------------------------------------------------
RELAY_PORT_FREE=$(free_port)
ADMIN_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$TMP/relay"
cat >"$TMP/relayd.sh" <<EOF
#!/usr/bin/env bash
# start | stop | pause | resume — used by run.sh and by the outage test.
cd "$TMP"
case "\$1" in
  start)
    "$RELAYD" --host 127.0.0.1 --port $RELAY_PORT_FREE --data-dir "$TMP/relay" --admin-key "$ADMIN_KEY" \\
      --dev-site false --log-level warning >>"$TMP/relayd.log" 2>&1 &
    echo \$! >"$TMP/relayd.pid"
    for _ in \$(seq 1 100); do
      curl -fsS "http://127.0.0.1:$RELAY_PORT_FREE/healthz" >/dev/null 2>&1 && exit 0
      sleep 0.1
    done
    echo "relayd did not start" >&2; exit 1 ;;
  stop)
    pid=\$(cat "$TMP/relayd.pid" 2>/dev/null) || exit 0
    kill -CONT "\$pid" 2>/dev/null; kill "\$pid" 2>/dev/null
    for _ in \$(seq 1 100); do kill -0 "\$pid" 2>/dev/null || { rm -f "$TMP/relayd.pid"; exit 0; }; sleep 0.1; done
    kill -9 "\$pid" 2>/dev/null; rm -f "$TMP/relayd.pid" ;;
  pause)  kill -STOP "\$(cat "$TMP/relayd.pid")" ;;
  resume) kill -CONT "\$(cat "$TMP/relayd.pid")" ;;
esac
EOF
chmod +x "$TMP/relayd.sh"
command -v curl >/dev/null || die "curl is needed"
"$TMP/relayd.sh" start || die "relayd did not start"
RELAY_URL_T="http://127.0.0.1:$RELAY_PORT_FREE"
# The fixture site (its URL differs from the WordPress home, so the connect-flow test registers a second site).
SITE_JSON=$(env -u RELAY_URL -u RELAY_ADMIN_KEY "$RELAYCTL" site add --url "$RELAY_URL_T" --admin-key "$ADMIN_KEY" \
  --site-url "http://fixture.test" --name "fixture")
log "relayd up on $RELAY_URL_T"

# --- WordPress -------------------------------------------------------------------
WP_PORT=$(free_port)
WP="$TMP/wp"
cp -a "$WP_SRC" "$WP"
rm -rf "$WP/wp-config.php" "$WP/wp-content" "$WP/.htaccess"
mkdir -p "$WP/wp-content/plugins" "$WP/wp-content/mu-plugins" "$WP/wp-content/uploads" "$WP/wp-content/themes"
cp -a "$WP_SRC/wp-content/themes/." "$WP/wp-content/themes/" 2>/dev/null || true
# The plugin is installed from the zip `make plugin-zip` builds (so the zip is what gets tested).
make -s -C "$REPO" plugin-zip >/dev/null
python3 -m zipfile -e "$REPO/.build-dist/relay-realtime.zip" "$WP/wp-content/plugins/"
[ -f "$WP/wp-content/plugins/relay-realtime/relay-realtime.php" ] || die "the plugin zip does not unpack to relay-realtime/"
[ ! -e "$WP/wp-content/plugins/relay-realtime/tests" ] || die "the plugin zip contains its tests"
cp "$HERE/fixtures/"*.php "$WP/wp-content/mu-plugins/"
salt() { head -c 48 /dev/urandom | base64 | tr -d '\n/+='; }
cat >"$WP/wp-config.php" <<EOF
<?php
define( 'DB_NAME', 'wordpress' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', 'localhost:$TMP/m.sock' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
define( 'AUTH_KEY', '$(salt)' );
define( 'SECURE_AUTH_KEY', '$(salt)' );
define( 'LOGGED_IN_KEY', '$(salt)' );
define( 'NONCE_KEY', '$(salt)' );
define( 'AUTH_SALT', '$(salt)' );
define( 'SECURE_AUTH_SALT', '$(salt)' );
define( 'LOGGED_IN_SALT', '$(salt)' );
define( 'NONCE_SALT', '$(salt)' );
\$table_prefix = 'wp_';
define( 'WP_HOME', 'http://127.0.0.1:$WP_PORT' );
define( 'WP_SITEURL', 'http://127.0.0.1:$WP_PORT' );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_LOG', '$TMP/debug.log' );
define( 'WP_DEBUG_DISPLAY', false );
define( 'DISABLE_WP_CRON', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'WP_CONTENT_DIR', '$WP/wp-content' );
define( 'WP_CONTENT_URL', 'http://127.0.0.1:$WP_PORT/wp-content' );
define( 'FS_METHOD', 'direct' );
if ( ! defined( 'ABSPATH' ) ) { define( 'ABSPATH', __DIR__ . '/' ); }
require_once ABSPATH . 'wp-settings.php';
EOF

export RRT_TMP="$TMP" RRT_WP_DIR="$WP" RRT_WP_URL="http://127.0.0.1:$WP_PORT" RRT_RELAY_URL="$RELAY_URL_T" \
  RRT_ADMIN_KEY="$ADMIN_KEY" RRT_RELAYCTL="$RELAYCTL" RRT_RELAYD_CTL="$TMP/relayd.sh" RRT_SITE_JSON="$SITE_JSON" \
  RRT_WP_VERSION="$WP_VERSION"
unset RELAY_URL RELAY_SITE_KEY RELAY_PUBLISH_SECRET RELAY_KEY_ID RELAY_JWT_SECRET RELAY_ADMIN_KEY RELAY_PAYLOAD_KEY RELAY_PROFILE || true

php "$HERE/install.php" || die "WordPress install/activation failed"
log "WordPress installed, plugin activated"

# WordPress over HTTP (for the page-timing test), loopback only.
( cd "$WP" && PHP_CLI_SERVER_WORKERS=4 exec php -S "127.0.0.1:$WP_PORT" -t "$WP" >"$TMP/php-server.log" 2>&1 ) &
PIDS+=($!)
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$WP_PORT/?rrt_noop=1" 2>/dev/null && break; sleep 0.1; done

# --- PHPUnit -----------------------------------------------------------------------
phpunit --configuration "$HERE/phpunit.xml" ${PHPUNIT_ARGS:-}

# Whatever the cases did (pages, REST, cron, admin), the plugin wrote nothing to the PHP error log.
if grep -n 'plugins/relay-realtime/' "$TMP/debug.log" 2>/dev/null | grep -v '^\s*#' >&2; then
  die "the plugin wrote to the PHP error log (WP_DEBUG on)"
fi
log "PHP error log: nothing from the plugin ($(grep -c . "$TMP/debug.log" 2>/dev/null || echo 0) lines from WordPress core on PHP $(php -r 'echo PHP_VERSION;'))"
