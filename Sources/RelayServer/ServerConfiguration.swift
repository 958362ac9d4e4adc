import RelaySites
import RelayWebSocket
import RelayCore
import YjsRooms

/// Everything relayd can be told. Every limit is here, with its default;
/// `relayd --help` and `Docs/self-hosting.md` document them.
public struct ServerConfiguration: Sendable {
    /// Listen address. Default: loopback only.
    public var host = "127.0.0.1"
    public var port = 8080
    /// Where the site registry (SQLite) and admin key live.
    public var dataDirectory = "./relay-data"
    /// Bearer key for `/api/sites/*`. When nil, one is generated on first start and kept in `<data>/admin.key`.
    public var adminAPIKey: String?
    /// PEM certificate chain and private key; when both are set relayd serves HTTPS/WSS directly.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Create a dev site on first start when the registry is empty.
    public var createDevSite = true

    /// Largest WebSocket frame (and message) accepted or sent. The wordsocket client stays under 2 MiB.
    public var maxFrameBytes = 2 << 20
    /// Time from accept until the first request head (HTTP request or WebSocket upgrade) is complete, seconds.
    public var handshakeTimeout: Double = 10
    /// Largest HTTP request header block, bytes; larger requests get 400 and the connection is closed.
    public var maxHeaderBytes = 32 * 1024
    /// Close a keep-alive HTTP connection idle (or stalled mid-request) for this long, seconds.
    public var httpIdleTimeout: Double = 60
    /// After relayd sends a close frame, wait this long for the client's before dropping the TCP connection, seconds.
    public var closeHandshakeTimeout: Double = 5
    /// Largest `POST /publish` body.
    public var maxPublishBodyBytes = 4 << 20
    /// Most publications in one `POST /publish/batch`.
    public var maxBatchSize = 100
    /// Process-wide cap on open WebSocket + SSE connections (the machine allows ~20,000 files per process).
    public var maxConnections = 18_000
    /// Open WebSocket + SSE connections from one IP address (close 1013 / HTTP 429 beyond it).
    public var maxConnectionsPerIP = 2_000
    /// JSON `{"type":"ping"}` interval (contract: 20 s).
    public var pingInterval: Double = 20
    /// Close a WebSocket that sent nothing (not even `pong`) for this long.
    public var idleTimeout: Double = 65
    /// SSE comment heartbeat interval.
    public var sseHeartbeatInterval: Double = 15
    /// How often the engine's maintenance runs (coalesced events, expiry, history ageing).
    public var maintenanceInterval: Double = 0.5
    /// Accepted JWT clock skew, seconds.
    public var tokenLeeway: Int64 = 5
    /// Largest token accepted, bytes.
    public var maxTokenBytes = 8192
    /// Publish signature window (both directions), seconds.
    public var signatureWindow: Int64 = 60
    /// Nonces remembered for v2 signatures.
    public var replayCacheCapacity = 1_000_000
    /// Grace for the previous publish secret after `site rotate`, seconds.
    public var rotationGraceSeconds: Int64 = 3600
    /// How long a WebSocket client's publishes may be held back by its site's
    /// client publish rate, continuously, before it is closed with 4013 (seconds).
    public var clientPublishMaxWait: Double = 10
    /// Reverse proxies whose `Forwarded`/`X-Forwarded-For` headers name the client
    /// (for per-IP limits and logs). Empty: the TCP peer is the client, headers are ignored.
    public var trustedProxies = TrustedProxies.none
    /// `Access-Control-Allow-Origin` for the browser-facing endpoints (`*` or one origin).
    public var corsAllowOrigin = "*"
    /// Reconnect hint range sent with the shutdown close (4500), milliseconds.
    public var shutdownRetryAfterMs: ClosedRange<Int> = 1000...10_000
    /// How long shutdown waits for queued frames to flush, seconds.
    public var shutdownFlushTimeout: Double = 5
    /// Limits given to sites created by registration or `site add` without explicit limits.
    /// (2 MiB payloads, the frame cap: the wordsocket Yjs provider sends a 1-byte tag plus updates up to 1 MiB.)
    public var defaultSiteLimits = SiteLimits(maxMessageBytes: 2 << 20)
    /// The y-websocket endpoint (`/yjs/{room}`).
    public var yjs = YjsConfiguration()
    /// Durable storage of Yjs rooms shared by every node of a cluster (relayd `--database`:
    /// PostgreSQL). With it and a multi-node broker, a room's updates and awareness cross nodes.
    /// `nil` (default): `yjs.sqlite` in the data directory (or memory), this node's alone.
    public var sharedYjsPersistence: (any YjsPersistence)? = nil
    /// The site registry every node of a cluster shares (relayd `--database`: PostgreSQL,
    /// `SiteStore.open(PostgresSiteBackend)`), already loaded. `nil` (default): `sites.sqlite`
    /// in the data directory (or memory).
    public var sharedSites: SiteStore? = nil
    /// The engine's own settings (outbox bytes/frames, history, presence, idempotency).
    public var engine = EngineConfiguration()

    public init() {}
}
