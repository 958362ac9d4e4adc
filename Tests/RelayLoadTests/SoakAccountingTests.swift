import Foundation
import Testing
@testable import RelayLoad

@Suite struct ReceiptLogTests {
    @Test func inOrderIsOneRun() {
        var r = ReceiptLog()
        for s: UInt64 in 5...20 { #expect(r.observe(s) == .new) }
        #expect(r.runs == [5...20])
        #expect(r.unique == 16 && r.duplicates == 0 && r.outOfOrder == 0 && r.maxSeen == 20)
    }

    @Test func duplicatesAndLateArrivals() {
        var r = ReceiptLog()
        for s: UInt64 in [1, 2, 4, 5] { r.observe(s) }
        #expect(r.runs == [1...2, 4...5])
        #expect(r.observe(2) == .duplicate)
        #expect(r.observe(3) == .outOfOrder)   // fills the gap: the runs merge
        #expect(r.runs == [1...5])
        #expect(r.observe(3) == .duplicate)
        #expect(r.observe(9) == .new)
        #expect(r.observe(7) == .outOfOrder)
        #expect(r.runs == [1...5, 7...7, 9...9])
        #expect(r.unique == 7 && r.duplicates == 2 && r.outOfOrder == 2)
        #expect(r.contains(7) && !r.contains(8) && !r.contains(6) && r.contains(1))
    }
}

@Suite struct DeliveryTallyTests {
    /// Channel with publications 1…n sent at 10·s and acknowledged at 10·s + 5, except `refused`.
    func log(_ n: Int, refused: Set<UInt64> = []) -> ChannelLog {
        var l = ChannelLog()
        for s in 1...UInt64(n) {
            l.recordSent(s, at: s * 10)
            if !refused.contains(s) { l.recordAck(s, at: s * 10 + 5) }
        }
        return l
    }

    func receipts(_ seqs: [UInt64]) -> ReceiptLog {
        var r = ReceiptLog()
        for s in seqs { r.observe(s) }
        return r
    }

    @Test func heldSubscriberMustGetEveryAcknowledgedPublication() {
        let l = log(10, refused: [4])
        let all = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: .max, receipts: receipts([1, 2, 3, 5, 6, 7, 8, 9, 10])), log: l)
        #expect(all.expected == 9 && all.lost == 0 && all.deliveredExpected == 9 && all.boundary == 0)
        let missing = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: .max, receipts: receipts([1, 2, 3, 5, 6, 8, 9])), log: l)
        #expect(missing.expected == 9 && missing.lost == 2 && missing.windowsWithLoss == 1)   // 7 and 10
        // A refused publish that arrives anyway is not required (a boundary delivery).
        let refusedDelivered = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: .max, receipts: receipts(Array(1...10))), log: l)
        #expect(refusedDelivered.lost == 0 && refusedDelivered.boundary == 1)
    }

    @Test func joinedMidStreamOwesOnlyWhatWasSentAfterItWasReady() {
        let l = log(10)
        // Ready at 45: publications sent at 50… (5…10) are required; 4 (sent at 40) arrived too: allowed.
        let t = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 45, endAt: .max, receipts: receipts([4, 5, 6, 7, 8, 9, 10])), log: l)
        #expect(t.expected == 6 && t.lost == 0 && t.boundary == 1)
        let late = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 45, endAt: .max, receipts: receipts([6, 7, 8, 9, 10])), log: l)
        #expect(late.lost == 1)   // 5 was sent after it was ready
    }

    @Test func unsubscribedWindowEndsAtTheRequest() {
        let l = log(10)
        // Asked to leave at 72: publications acknowledged by then (1…6, acked at 65) are required.
        let ok = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: 72, receipts: receipts([1, 2, 3, 4, 5, 6])), log: l)
        #expect(ok.expected == 6 && ok.lost == 0)
        let short = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: 72, receipts: receipts([1, 2, 3, 4, 5])), log: l)
        #expect(short.lost == 1)
        // A later one that still arrived raises the bar: everything below it is owed.
        let gap = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: 72, receipts: receipts([1, 2, 3, 4, 5, 6, 9])), log: l)
        #expect(gap.expected == 9 && gap.lost == 2)
    }

    @Test func droppedConnectionOnlyOwesTheGaps() {
        let l = log(10)
        let t = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: 0, receipts: receipts([1, 2, 3])), log: l)
        #expect(t.expected == 3 && t.lost == 0)
        let g = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: 0, receipts: receipts([1, 3, 5])), log: l)
        #expect(g.expected == 5 && g.lost == 2)
        let none = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: 0, receipts: ReceiptLog()), log: l)
        #expect(none.expected == 0 && none.lost == 0)
    }

    @Test func duplicatesOutOfOrderAndPhantomsAreCounted() {
        let l = log(5)
        let t = DeliveryTally.evaluate(SubscriptionWindow(channel: 0, readyAt: 0, endAt: .max, receipts: receipts([1, 2, 2, 4, 3, 5, 7])), log: l)
        #expect(t.duplicates == 1 && t.outOfOrder == 1 && t.phantom == 1 && t.lost == 0)
        let sum = t + t
        #expect(sum.duplicates == 2 && sum.windows == 2 && sum.phantom == 2)
    }

    @Test func publicationLogsCountAcknowledgementsOnce() {
        let logs = PublicationLogs(channels: 2)
        logs.sent(channel: 1, seq: 1, at: 10)
        logs.sent(channel: 1, seq: 2, at: 20)
        logs.acked(channel: 1, seq: 1, at: 15)
        logs.acked(channel: 1, seq: 1, at: 16)   // a second echo does not count
        #expect(logs.takeAckedWindow() == 1)
        #expect(logs.lastAckedSeq(channel: 1) == 1 && logs.lastAckedSeq(channel: 0) == 0)
        logs.acked(channel: 1, seq: 2, at: 25)
        #expect(logs.takeAckedWindow() == 1)
        let s = logs.snapshot()[1]
        #expect(s.acked == [15, 25] && s.unacknowledged == 0)
    }
}

@Suite struct PresenceWatchTests {
    @Test func joinsLeavesAndLeftovers() {
        var w = PresenceWatch()
        w.sync([(id: "n1-1", m: 7)])
        w.join(id: "n1-2", m: 8)
        w.join(id: "n1-2", m: 8)             // a state update is a join again
        w.leave(id: "n1-1")
        #expect(w.members == ["n1-2": 8])
        #expect(w.missing(acknowledged: [7, 8, 9]) == (joins: 1, leaves: 2))   // 9 never seen; 8 and 9 never left
        w.leave(id: "n1-2")
        w.leave(id: "n1-3")                  // a leave without a join
        #expect(w.members.isEmpty && w.orderErrors == 1)
        w.join(id: "n1-9", m: 8)             // a join after that member's leave
        #expect(w.orderErrors == 2)
    }
}

@Suite struct SoakWireTests {
    @Test func payloadCarriesTheChannel() throws {
        let p = SoakPayload.make(ts: 123, seq: 45, ch: 678, size: 200)
        #expect(p.count == 200)
        let v = try #require(SoakPayload.parse(p))
        #expect(v.ts == 123 && v.seq == 45 && v.ch == 678)
        let frame = Array(#"{"type":"message","channel":"site:x:c","event":"soak","data":"#.utf8) + p + Array(#","offset":3,"epoch":"e"}"#.utf8)
        #expect(SoakPayload.parse(frame)?.ch == 678)
        #expect(SoakPayload.parse(Array(#"{"type":"message","data":{"action":"join","id":"n1-1","state":{"m":3}}}"#.utf8)) == nil)
    }

    @Test func yjsUpdatesRoundTrip() throws {
        let text = YjsWire.text(seq: 12, ts: 987_654_321)
        #expect(YjsWire.parseText(text)! == (seq: 12, ts: 987_654_321))
        // First item: no origin, parent is the root type "t". Bytes as Yjs encodes them.
        let first = YjsWire.update(client: 300, clock: 0, text: "ab")
        #expect(first == [1, 1, 0xAC, 0x02, 0, 4, 1, 1, 0x74, 2, 0x61, 0x62, 0])
        let later = YjsWire.update(client: 300, clock: 2, text: text)
        let msg = YjsWire.syncUpdate(later)
        #expect(YjsWire.parse(msg) == .update(client: 300, clock: 2, text: text))
        #expect(YjsWire.parse(YjsWire.syncUpdate(first)) == .update(client: 300, clock: 0, text: "ab"))
        #expect(YjsWire.parse(YjsWire.syncStep1Empty) == .step1)
        #expect(YjsWire.parse(YjsWire.syncStep2Empty) == .step2(updateBytes: 2))
        #expect(YjsWire.parse(YjsWire.awareness(client: 1, clock: 1, stateJSON: "{}")) == .awareness)
        #expect(YjsWire.parse([0, 2, 5, 1]) == .other)   // truncated
    }
}

@Suite struct SoakResourceRuleTests {
    let rule = SoakResourceRule(rssTolerancePercent: 20, rssToleranceMiB: 32, fdTolerance: 10, threadTolerance: 0)
    let baseline = SoakResources(rssMiB: 200, fds: 30, threads: 9, connections: 0, channels: 0)

    @Test func withinTheRulePasses() {
        #expect(rule.rssAllowance(baselineMiB: 200) == 40)
        #expect(rule.rssAllowance(baselineMiB: 50) == 32)
        #expect(rule.check(baseline: baseline, after: SoakResources(rssMiB: 239, fds: 38, threads: 9, connections: 0, channels: 0)).isEmpty)
    }

    @Test func eachBreachFails() {
        #expect(rule.check(baseline: baseline, after: SoakResources(rssMiB: 241, fds: 30, threads: 9, connections: 0, channels: 0)).count == 1)
        #expect(rule.check(baseline: baseline, after: SoakResources(rssMiB: 200, fds: 41, threads: 9, connections: 0, channels: 0)).count == 1)
        #expect(rule.check(baseline: baseline, after: SoakResources(rssMiB: 200, fds: 30, threads: 10, connections: 0, channels: 0)).count == 1)
        #expect(rule.check(baseline: baseline, after: SoakResources(rssMiB: 200, fds: 30, threads: 9, connections: 3, channels: 0)).count == 1)
        #expect(rule.check(baseline: baseline, after: SoakResources(rssMiB: 200, fds: 30, threads: 9, connections: 0, channels: 5)).count == 1)
        #expect(rule.check(baseline: baseline, after: SoakResources(rssMiB: nil, fds: nil, threads: nil, connections: nil, channels: nil)).count == 4)
    }
}
