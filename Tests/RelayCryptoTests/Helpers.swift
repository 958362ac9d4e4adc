import Foundation
@testable import RelayCrypto

func hex(_ s: String) -> [UInt8] { Hex.decode(s.filter { !$0.isWhitespace })! }
func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
