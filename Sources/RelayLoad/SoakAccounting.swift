import Foundation

/// What one subscriber received on one channel: the distinct sequence numbers as sorted,
/// disjoint runs (one run when everything arrives in order), plus duplicates and
/// arrivals below the highest number already seen.
public struct ReceiptLog: Sendable, Equatable {
    /// Sorted, disjoint, non-adjacent closed ranges of received sequence numbers.
    public private(set) var runs: [ClosedRange<UInt64>] = []
    public private(set) var unique: UInt64 = 0
    /// A sequence number received again.
    public private(set) var duplicates: UInt64 = 0
    /// A new sequence number below the highest one seen (arrived out of order).
    public private(set) var outOfOrder: UInt64 = 0

    public init() {}

    public enum Outcome: Sendable, Equatable { case new, duplicate, outOfOrder }

    public var maxSeen: UInt64 { runs.last?.upperBound ?? 0 }

    @discardableResult
    public mutating func observe(_ seq: UInt64) -> Outcome {
        // Fast path: the next number of the last run, or a new run above it.
        if let last = runs.last {
            if seq == last.upperBound &+ 1 {
                runs[runs.count - 1] = last.lowerBound...seq
                unique += 1
                return .new
            }
            if seq > last.upperBound {
                runs.append(seq...seq)
                unique += 1
                return .new
            }
        } else {
            runs.append(seq...seq)
            unique += 1
            return .new
        }
        if contains(seq) { duplicates += 1; return .duplicate }
        // A number below the highest seen that fills (part of) a gap.
        var i = runs.firstIndex { $0.lowerBound > seq } ?? runs.count
        runs.insert(seq...seq, at: i)
        // Merge with neighbours.
        if i + 1 < runs.count, runs[i].upperBound &+ 1 == runs[i + 1].lowerBound {
            runs[i] = runs[i].lowerBound...runs[i + 1].upperBound
            runs.remove(at: i + 1)
        }
        if i > 0, runs[i - 1].upperBound &+ 1 == runs[i].lowerBound {
            runs[i - 1] = runs[i - 1].lowerBound...runs[i].upperBound
            runs.remove(at: i)
            i -= 1
        }
        unique += 1
        outOfOrder += 1
        return .outOfOrder
    }

    public func contains(_ seq: UInt64) -> Bool {
        var lo = 0, hi = runs.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            let r = runs[mid]
            if seq < r.lowerBound { hi = mid - 1 } else if seq > r.upperBound { lo = mid + 1 } else { return true }
        }
        return false
    }
}

/// The publications of one channel as the publisher saw them: sequence number s (1-based) was
/// sent at `sent[s-1]` and acknowledged at `acked[s-1]` (0: never acknowledged). A channel has
/// one publisher stream, so both arrays are non-decreasing where set (one ordered connection;
/// HTTP/1.1 answers in order; a client publisher's echo arrives in order).
///
/// Acknowledged means: HTTP 2xx for `POST /publish`; for a client publish, the publisher's own
/// copy arrived (relayd fans a publication out to every subscriber under the channel's lock,
/// so once any subscriber has it, every subscriber's queue has it).
public struct ChannelLog: Sendable, Equatable {
    public var sent: [UInt64] = []
    public var acked: [UInt64] = []
    public init() {}
    public init(sent: [UInt64], acked: [UInt64]) { self.sent = sent; self.acked = acked }

    public var count: Int { sent.count }

    /// Records the send of `seq` (must be the next number).
    public mutating func recordSent(_ seq: UInt64, at t: UInt64) {
        let i = Int(seq) - 1
        while sent.count <= i { sent.append(0); acked.append(0) }
        sent[i] = t
    }

    public mutating func recordAck(_ seq: UInt64, at t: UInt64) {
        let i = Int(seq) - 1
        guard i >= 0 else { return }
        while sent.count <= i { sent.append(0); acked.append(0) }
        if acked[i] == 0 { acked[i] = t }
    }

    public var acknowledged: Int { acked.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }
    public var unacknowledged: Int { count - acknowledged }
}

/// One subscriber's time on one channel.
public struct SubscriptionWindow: Sendable, Equatable {
    public var channel: Int
    /// When the subscriber had its `subscribed` (mono ns). A publication sent after this reached
    /// relayd after the subscription existed.
    public var readyAt: UInt64
    /// When the subscriber asked to leave (sent `unsubscribe`, and waited for `unsubscribed`), or
    /// `UInt64.max` for a subscriber still there after the drain. 0 when it left without asking
    /// (close frame, dropped TCP, closed by the server): then only the gap rule applies.
    public var endAt: UInt64
    public var receipts: ReceiptLog

    public init(channel: Int, readyAt: UInt64, endAt: UInt64, receipts: ReceiptLog) {
        self.channel = channel
        self.readyAt = readyAt
        self.endAt = endAt
        self.receipts = receipts
    }
}

/// Exactly-once, in-order accounting of subscribers against the publishers' logs.
public struct DeliveryTally: Sendable, Equatable {
    /// Publications a subscriber had to get (see `evaluate`).
    public var expected: UInt64 = 0
    /// Of those, received.
    public var deliveredExpected: UInt64 = 0
    /// Of those, missing.
    public var lost: UInt64 = 0
    /// Distinct deliveries outside the required window (in flight around subscribe or leave).
    public var boundary: UInt64 = 0
    /// Deliveries of a sequence number the publisher never sent.
    public var phantom: UInt64 = 0
    public var duplicates: UInt64 = 0
    public var outOfOrder: UInt64 = 0
    public var delivered: UInt64 = 0
    public var windows: UInt64 = 0
    public var windowsWithLoss: UInt64 = 0

    public init() {}

    public static func + (a: DeliveryTally, b: DeliveryTally) -> DeliveryTally {
        var t = a
        t.expected += b.expected; t.deliveredExpected += b.deliveredExpected; t.lost += b.lost
        t.boundary += b.boundary; t.phantom += b.phantom; t.duplicates += b.duplicates
        t.outOfOrder += b.outOfOrder; t.delivered += b.delivered; t.windows += b.windows
        t.windowsWithLoss += b.windowsWithLoss
        return t
    }

    /// The rule. Publication s of the window's channel is **required** when
    /// - it was acknowledged (a refused or unanswered publish is never required), and
    /// - it was sent after the subscriber was ready (`sent > readyAt`), and
    /// - it was acknowledged before the subscriber asked to leave (`acked ≤ endAt`), or the
    ///   subscriber received a later number of the channel (`s ≤ maxSeen`: a channel's
    ///   publications arrive in order, so a gap below a received number is a loss whatever
    ///   the window).
    /// A required publication not received is lost. Anything received twice is a duplicate;
    /// a new number below the highest already received is out of order.
    public static func evaluate(_ w: SubscriptionWindow, log: ChannelLog) -> DeliveryTally {
        var t = DeliveryTally()
        t.windows = 1
        t.duplicates = w.receipts.duplicates
        t.outOfOrder = w.receipts.outOfOrder
        t.delivered = w.receipts.unique
        let maxSeen = w.receipts.maxSeen
        // First index sent after readyAt (sent is non-decreasing where set).
        var lo = 0, hi = log.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if log.sent[mid] > w.readyAt { hi = mid } else { lo = mid + 1 }
        }
        var i = lo
        while i < log.count {
            let seq = UInt64(i + 1)
            let ack = log.acked[i]
            if ack != 0 && log.sent[i] > w.readyAt {
                if ack <= w.endAt || seq <= maxSeen {
                    t.expected += 1
                    if w.receipts.contains(seq) { t.deliveredExpected += 1 } else { t.lost += 1 }
                } else if ack > w.endAt && seq > maxSeen {
                    break  // acknowledged after the window and above anything received: later ones too
                }
            }
            i += 1
        }
        if t.deliveredExpected <= w.receipts.unique { t.boundary = w.receipts.unique - t.deliveredExpected }
        // Numbers never sent on this channel.
        if maxSeen > UInt64(log.count) {
            for r in w.receipts.runs where r.upperBound > UInt64(log.count) {
                t.phantom += r.upperBound - max(r.lowerBound, UInt64(log.count) + 1) + 1
            }
            t.boundary -= min(t.boundary, t.phantom)
        }
        if t.lost > 0 { t.windowsWithLoss = 1 }
        return t
    }
}

/// Publisher logs of every channel, written by the publishers' event loops, read at the end.
public final class PublicationLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var logs: [ChannelLog]

    public init(channels: Int) { logs = Array(repeating: ChannelLog(), count: channels) }

    public func sent(channel: Int, seq: UInt64, at t: UInt64) { lock.withLock { logs[channel].recordSent(seq, at: t) } }
    public func acked(channel: Int, seq: UInt64, at t: UInt64) {
        lock.withLock {
            let i = Int(seq) - 1
            if i >= logs[channel].count || logs[channel].acked[i] == 0 { ackTotal += 1 }
            logs[channel].recordAck(seq, at: t)
        }
    }
    private var ackTotal: UInt64 = 0
    private var ackTaken: UInt64 = 0
    /// Acknowledgements since the last call (for the per-second samples).
    public func takeAckedWindow() -> UInt64 {
        lock.withLock {
            defer { ackTaken = ackTotal }
            return ackTotal - ackTaken
        }
    }
    public func snapshot() -> [ChannelLog] { lock.withLock { logs } }
    public func lastAckedSeq(channel: Int) -> UInt64 {
        lock.withLock {
            let a = logs[channel].acked
            var i = a.count - 1
            while i >= 0 && a[i] == 0 { i -= 1 }
            return UInt64(i + 1)
        }
    }
}

/// Presence accounting of one watcher (a connection subscribed to a presence channel for the
/// whole load): members by relay id, and which churners' joins and leaves it saw.
public struct PresenceWatch: Sendable, Equatable {
    public var members: [String: Int] = [:]
    public var joined: Set<Int> = []
    public var left: Set<Int> = []
    /// A leave for an id it had no join for, or a join after that member's leave.
    public var orderErrors: UInt64 = 0
    public var events: UInt64 = 0

    public init() {}

    /// `m` is the churner number carried in the member's state (nil for a state without it).
    public mutating func join(id: String, m: Int?) {
        events += 1
        if let m {
            if left.contains(m) { orderErrors += 1 }
            members[id] = m
            joined.insert(m)
        } else {
            members[id] = -1
        }
    }

    public mutating func leave(id: String) {
        events += 1
        guard let m = members.removeValue(forKey: id) else { orderErrors += 1; return }
        if m >= 0 { left.insert(m) }
    }

    public mutating func sync(_ list: [(id: String, m: Int?)]) {
        events += 1
        for (id, m) in list {
            members[id] = m ?? -1
            if let m { joined.insert(m) }
        }
    }

    /// Against the churners that saw their own join on this channel (and have all left since):
    /// joins and leaves this watcher missed.
    public func missing(acknowledged: [Int]) -> (joins: UInt64, leaves: UInt64) {
        var j: UInt64 = 0, l: UInt64 = 0
        for m in acknowledged {
            if !joined.contains(m) { j += 1 }
            if !left.contains(m) { l += 1 }
        }
        return (j, l)
    }
}
