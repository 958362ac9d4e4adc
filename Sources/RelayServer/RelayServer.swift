// RelayServer: HTTP, WebSocket and SSE transport.
