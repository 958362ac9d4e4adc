import Hummingbird
import HummingbirdWebSocket

extension RelayService {
    /// `GET /yjs/{room}`: y-websocket rooms (issue 6). Registered by `makeApplication`.
    func addYjsRoutes(to router: Router<BasicWebSocketRequestContext>) {
    }
}
