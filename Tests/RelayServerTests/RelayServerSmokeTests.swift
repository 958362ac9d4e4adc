import Testing
@testable import RelayServer
@testable import RelayWebSocket
