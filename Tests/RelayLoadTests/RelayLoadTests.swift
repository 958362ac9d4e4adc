import RelayJSON
import Foundation
import Histogram
import RelayCrypto
import Testing
@testable import RelayLoad

@Suite struct PayloadTests {
    @Test func paddedToExactSizeAndParsedBack() throws {
        for size in [64, 256, 1024, 16384] {
            let p = Payload.make(ts: 123_456_789_012, seq: 42, size: size)
            #expect(p.count == size)
            let v = try #require(Payload.parse(p))
            #expect(v.ts == 123_456_789_012 && v.seq == 42)
            #expect(try JSONParser.parse(p)["seq"]?.int64Value == 42)
        }
    }

    @Test func tooSmallSizeStillValid() throws {
        let p = Payload.make(ts: 1, seq: 2, size: 0)
        #expect(try JSONParser.parse(p)["ts"]?.int64Value == 1)
    }

    @Test func parsedInsideARelaydFrame() throws {
        let data = Payload.make(ts: 99, seq: 7, size: 100)
        let frame = Array(#"{"type":"message","channel":"site:abc:bench-1-0","event":"bench","data":"#.utf8) + data + Array(#","offset":7,"epoch":"e"}"#.utf8)
        let v = try #require(Payload.parse(frame))
        #expect(v.ts == 99 && v.seq == 7)
    }

    @Test func otherFramesAreNotMessages() {
        #expect(Payload.parse(Array(#"{"type":"ping"}"#.utf8)) == nil)
        #expect(Payload.parse(Array(#"{"type":"subscribed","channels":["x"],"offset":0,"epoch":"e"}"#.utf8)) == nil)
        #expect(Payload.parse(Array(#"{"ts":}"#.utf8)) == nil)
    }
}

@Suite struct SequenceTrackerTests {
    @Test func inOrderNothingLost() {
        var t = SequenceTracker()
        for s in 1...100 { let new = t.observe(UInt64(s)); #expect(new) }
        #expect(t.unique == 100 && t.duplicates == 0 && t.skipped == 0)
        #expect(t.lost(accepted: 100) == 0)
    }

    @Test func gapsAndDuplicates() {
        var t = SequenceTracker()
        for s: UInt64 in [1, 2, 2, 4, 5, 5, 5, 3, 8] { t.observe(s) }
        #expect(t.unique == 5)        // 1 2 4 5 8
        #expect(t.duplicates == 4)    // 2 5 5 and the late 3
        #expect(t.skipped == 3)       // 3, 6, 7
        #expect(t.lost(accepted: 8) == 3)
    }

    /// A publish the relay refused consumes a sequence number but is not a loss.
    @Test func refusedPublishIsNotALoss() {
        var t = SequenceTracker()
        for s: UInt64 in [1, 2, 4, 5] { t.observe(s) }  // 3 was refused (HTTP 4xx): accepted = 4
        #expect(t.skipped == 1)
        #expect(t.lost(accepted: 4) == 0)
    }

    @Test func tailLossCounted() {
        var t = SequenceTracker()
        for s: UInt64 in [1, 2, 3] { t.observe(s) }
        #expect(t.lost(accepted: 5) == 2)
    }
}

@Suite struct ProcTests {
    @Test func statLineWithSpacesInName() {
        let line = "1234 (relay d (x)) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 4 0 100 1000 200 18446744073709551615"
        #expect(ProcSampler.cpuTicks(statLine: line) == 325)
    }

    @Test func rssFromStatus() {
        let status = "Name:\trelayd\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n"
        let rss: Int64? = ProcSampler.rssBytes(status: status)
        #expect(rss == Int64(20480) * 1024)
    }

    @Test func samplesThisProcess() throws {
        let s = try #require(ProcSampler.sample([getpid()]))
        #expect(s.rssBytes > 1_000_000)
        #expect(s.cpuSeconds >= 0)
    }
}

@Suite struct TargetTests {
    @Test func relaydTokenAndFrames() throws {
        let t = LoadTarget(kind: .relayd, port: 8080, siteKey: "0123456789abcdef0123456789abcdef", publishSecret: "s3cret", jwtSecret: "jwt")
        let siteID = SHA256.hexDigest("site:0123456789abcdef0123456789abcdef")
        let name = t.channelName(run: "r", index: 3)
        #expect(name == "site:\(siteID):bench-r-3")
        let claims = try JWTVerifier.hs256(secret: "jwt").verify(t.token, now: Int64(Date().timeIntervalSince1970))
        #expect(claims.siteID == siteID)
        #expect(claims.allowedChannelPrefixes == ["site:\(siteID):"])
        #expect(claims.version == 2)
        let frame = try JSONParser.parse(try #require(t.subscribeFrame(channel: name)))
        #expect(frame["type"]?.stringValue == "subscribe")
        #expect(frame["channels"]?.arrayValue?.first?.stringValue == name)
    }

    @Test func relaydPublishIsSignedV1() throws {
        let t = LoadTarget(kind: .relayd, port: 8080, siteKey: "k", publishSecret: "s3cret", jwtSecret: "jwt")
        let payload = Payload.make(ts: 5, seq: 1, size: 200)
        let r = t.publishRequest(channel: "site:x:c", payload: payload)
        #expect(r.uri == "/publish")
        let body = try JSONParser.parse(r.body)
        #expect(body["data"] == (try JSONParser.parse(payload)))
        let verifier = PublishVerifier { $0 == "k" ? [PublishSecret(keyID: "k1", secret: "s3cret")] : nil }
        let ts = Int64(try #require(r.headers.first { $0.0 == PublishSignatureV1.timestampHeader }?.1))!
        _ = try verifier.verify(SignedRequest(method: "POST", path: "/publish", headers: r.headers, body: r.body), nowMs: ts)
    }

    @Test func nchanPublishIsThePayload() {
        let t = LoadTarget(kind: .nchan, port: 18490)
        let payload = Payload.make(ts: 5, seq: 1, size: 100)
        let r = t.publishRequest(channel: "bench-r-0", payload: payload)
        #expect(r.uri == "/pub?id=bench-r-0")
        #expect(r.body == payload)
        #expect(t.webSocketURI(channel: "bench-r-0") == "/sub?id=bench-r-0")
        #expect(t.subscribeFrame(channel: "x") == nil)
    }
}
