import Testing
@testable import YjsSync
