import NIOCore
import ServiceLifecycle

/// Serves the connections that stay HTTP/1 after their first request (no WebSocket upgrade),
/// each in a child task of one discarding task group. WebSocket connections never come here:
/// they are decided and served on their event loop, without a task or a thread hop.
///
/// Listed among the application's services, before the HTTP server: graceful shutdown reaches
/// it after the server has stopped accepting and its connections are closed; it then takes no
/// more work and returns when the tasks still serving have ended.
public final class HTTPConnections: Service, Sendable {
    typealias Job = @Sendable () async -> Void
    private let jobs: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation

    public init() {
        // One element per connection waiting for its task: bounded by the connection limit.
        (jobs, continuation) = AsyncStream.makeStream(of: Job.self)
    }

    /// Runs `job` in a task of the group; after shutdown the connection is closed instead.
    func serve(_ channel: any Channel, _ job: @escaping Job) {
        if case .terminated = continuation.yield(job) {
            channel.close(promise: nil)
        }
    }

    public func run() async {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await job in jobs {
                    group.addTask { await job() }
                }
            }
        } onGracefulShutdown: { [continuation] in
            continuation.finish()
        }
    }
}
