// SPDX-License-Identifier: Apache-2.0
// Flow and notification: RNR (recovered, and exhausted), completion events (arm NEXT and
// SOLICITED), unsignaled work requests and sq_sig_all, and rings that wrap many times over
// scattered, indirect and high-memory pages.
import Glibc
import VRDMATestSupport

let flowScenarios: [Scenario] = [
    Scenario("RNR: a send before its receive succeeds once the receive is posted (infinite and finite rnr_retry)") { h in
        let check = h.checks
        // rnr_retry 7: retry forever.
        let (a, b) = try h.connectedPair()
        a.mr.write(pattern(300, seed: 1), at: 0)
        try a.send(wrId: 1, length: 300)
        let early = a.sendCQ.drain(waitingMilliseconds: 30)
        check.expect(early.isEmpty, "the send completed although no receive was posted: \(early)")
        try b.postRecv(wrId: 2)
        check.expectWC(try a.sendCQ.waitOne(), wrId: 1, status: .success, opcode: .send)
        check.expectWC(try b.recvCQ.waitOne(), wrId: 2, status: .success, byteLen: 300)
        check.expect(b.mr.read(300) == pattern(300, seed: 1), "payload differs")

        // rnr_retry 6 with min_rnr_timer 28 (163.84 ms): a window of about a second, which a
        // loaded host's 5 ms sleep cannot overrun.
        var pa = RCParameters()
        pa.rnrRetry = 6
        var pb = RCParameters()
        pb.minRNRTimer = 28
        let (c, d) = try h.connectedPair(pa, pb)
        try c.send(wrId: 3, length: 64, opcode: .sendWithImm, imm: 7)
        usleep(5000)
        try d.postRecv(wrId: 4)
        check.expectWC(try c.sendCQ.waitOne(), wrId: 3, status: .success)
        check.expectWC(try d.recvCQ.waitOne(), wrId: 4, status: .success, byteLen: 64)
        check.expect(check.stateOf(c.qp) == .rts && check.stateOf(d.qp) == .rts, "a QP left RTS after RNR NAKs")
    },

    Scenario("RNR: never posted with a small rnr_retry -> RNR_RETRY_EXC_ERR, requester in ERR") { h in
        let check = h.checks
        var p = RCParameters()
        p.rnrRetry = 1
        let (a, b) = try h.connectedPair(p)
        try a.send(wrId: 1, length: 64)
        try a.send(wrId: 2, length: 64)
        let wcs = try a.sendCQ.wait(for: 2)
        check.expectWC(wcs[0], wrId: 1, status: .rnrRetryExcErr, qpn: a.qp.qpn)
        check.expectWC(wcs[1], wrId: 2, status: .wrFlushErr, qpn: a.qp.qpn)
        check.expectState(a.qp, .error, "the requester after RNR_RETRY_EXC_ERR")
        check.expect(check.stateOf(b.qp) == .rts, "the responder, which did nothing wrong, left RTS")
        // WRITE_WITH_IMM needs a receive too.
        let (c, d) = try h.connectedPair(p)
        try c.qp.postSend(SendWR(wrId: 3, opcode: .rdmaWriteWithImm, sges: [c.mr.sge(offset: 0, length: 16)], imm: 1,
                                 remoteAddr: d.mr.address(0), rkey: d.mr.rkey))
        check.expectWC(try c.sendCQ.waitOne(), wrId: 3, status: .rnrRetryExcErr)
        check.expectState(c.qp, .error, "the WRITE_WITH_IMM requester after RNR_RETRY_EXC_ERR")
    },

    Scenario("completion events: arm NEXT and SOLICITED, event on the event queue with an interrupt, one per arm") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        let dev = h.b
        _ = try dev.takeEvents()
        _ = dev.waitForEventInterrupt(milliseconds: 0)  // a stale signal from set-up
        // Not armed: no event.
        try b.postRecv(wrId: 1)
        try a.send(wrId: 1, length: 8)
        _ = try b.recvCQ.waitOne()
        check.expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle, timeoutMilliseconds: 30) == nil, "event without an arm")

        // Armed NEXT: one event, with an interrupt, and the arm is consumed.
        _ = try dev.collectEvents()
        b.recvCQ.arm(.next)
        check.expect(b.recvCQ.isArmed, "arm did not take")
        try b.postRecv(wrId: 2)
        try a.send(wrId: 2, length: 8)
        check.expect(dev.waitForEventInterrupt(milliseconds: 2000), "no interrupt on the event queue")
        check.expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle) != nil, "no CQ_COMPLETION for an armed CQ")
        check.expect(!b.recvCQ.isArmed, "notified_sequence was not brought up to arm_sequence")
        _ = try b.recvCQ.waitOne()
        try b.postRecv(wrId: 3)
        try a.send(wrId: 3, length: 8)
        _ = try b.recvCQ.waitOne()
        check.expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle, timeoutMilliseconds: 30) == nil, "two events for one arm")

        // Armed SOLICITED: an unsolicited send does not fire; a solicited one does. A host NIC's
        // completions do not say whether a message was solicited, so on the verbs provider any
        // receive may fire the arm (a spurious event, never a missed one).
        b.recvCQ.arm(.solicited)
        try b.postRecv(wrId: 4)
        try a.send(wrId: 4, length: 8)
        _ = try b.recvCQ.waitOne()
        if h.softwareProvider {
            check.expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle, timeoutMilliseconds: 30) == nil,
                         "unsolicited completion fired")
            check.expect(b.recvCQ.isArmed, "an unsolicited completion consumed a SOLICITED arm")
        } else if try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle, timeoutMilliseconds: 200) != nil {
            b.recvCQ.arm(.solicited)
        }
        try b.postRecv(wrId: 5)
        try a.send(wrId: 5, length: 8, flags: [.signaled, .solicited])
        let solicited = try b.recvCQ.waitOne()
        if h.softwareProvider {
            check.expect(solicited.flags.contains(.solicited), "SEND_SOLICITED must set WC_F_SOLICITED in the receive CQE: \(solicited)")
        }
        check.expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle) != nil, "solicited completion did not fire")
        // The requester's CQ, armed, fires for its send completion.
        check.expectEqual(try a.sendCQ.wait(for: 5).map(\.wrId), [1, 2, 3, 4, 5], "send completions")
        a.sendCQ.arm(.next)
        try b.postRecv(wrId: 6)
        try a.send(wrId: 6, length: 8)
        check.expectWC(try a.sendCQ.waitOne(), wrId: 6, status: .success)
        check.expect(try h.a.waitForEvent(.cqCompletion, handle: a.sendCQ.handle) != nil, "no event for the armed send CQ")
        _ = try b.recvCQ.wait(for: 1)
        // Interrupt-mode ping-pong: arm, poll once more, sleep on the event queue, poll.
        for i in 0..<20 {
            try b.postRecv(wrId: UInt64(100 + i))
            try a.send(wrId: UInt64(100 + i), length: 8)
            check.expectWC(try b.recvCQ.waitForCompletionEvent(), wrId: UInt64(100 + i), status: .success)
            check.expectWC(try a.sendCQ.waitForCompletionEvent(), wrId: UInt64(100 + i), status: .success)
        }
    },

    Scenario("SQD: SQ_DRAINED once the sent work is done, with en_sqd_async_notify; nothing new is taken until RTS") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        for i in 0..<6 { try b.postRecv(wrId: UInt64(i), offset: i * 64, length: 64) }
        for i in 0..<4 { try a.send(wrId: UInt64(i), length: 8) }
        check.expectEqual(try a.sendCQ.wait(for: 4).map(\.wrId), [0, 1, 2, 3], "sends before SQD")
        var sqd = QPAttributes(state: .sqd)
        sqd.enSQDAsyncNotify = true
        try a.qp.modify(sqd)
        check.expect(try h.a.waitForEvent(.sqDrained, handle: a.qp.qpn) != nil, "no SQ_DRAINED with en_sqd_async_notify")
        check.expectState(a.qp, .sqd, "after MODIFY_QP to SQD")
        try a.send(wrId: 4, length: 8)
        check.expect(a.sendCQ.drain(waitingMilliseconds: 50).isEmpty, "a WQE was taken in SQD")
        // The responder side still works in SQD.
        try a.postRecv(wrId: 9, offset: 1024, length: 64)
        try b.send(wrId: 2, length: 8)
        check.expectWC(try b.sendCQ.waitOne(), wrId: 2, status: .success)
        check.expectWC(try a.recvCQ.waitOne(), wrId: 9, status: .success, byteLen: 8)
        try a.qp.modify(QPAttributes(state: .rts))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .success)
        check.expectEqual(try b.recvCQ.wait(for: 5).map(\.wrId), [0, 1, 2, 3, 4], "receives")
    },

    Scenario("unsignaled work requests give no CQE on success; sq_sig_all gives one for each") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        for i in 0..<6 { try b.postRecv(wrId: UInt64(i), offset: i * 64, length: 64) }
        for i in 0..<5 { try a.send(wrId: UInt64(i), length: 8, flags: []) }
        try a.send(wrId: 5, length: 8)
        check.expectEqual(try a.sendCQ.wait(for: 1).map(\.wrId), [5], "send completions")
        check.expectEqual(try b.recvCQ.wait(for: 6).count, 6, "receive completions")
        let extra = a.sendCQ.drain(waitingMilliseconds: 20)
        check.expect(extra.isEmpty, "unsignaled WQEs produced CQEs: \(extra)")

        let c = try Endpoint(h.a, sqSigAll: true)
        let d = try Endpoint(h.b)
        try QueuePair.connect(c.qp, d.qp)
        for i in 0..<4 { try d.postRecv(wrId: UInt64(i), offset: i * 64, length: 64) }
        for i in 0..<4 { try c.send(wrId: UInt64(i), length: 8, flags: []) }
        check.expectEqual(try c.sendCQ.wait(for: 4).map(\.wrId), [0, 1, 2, 3], "sq_sig_all send completions")
    },

    Scenario("rings of depth 8 wrap many times over scattered, indirect and high-memory pages") { h in
        let check = h.checks
        let actx = try h.a.createContext(), bctx = try h.b.createContext()
        let apd = try actx.allocPD(), bpd = try bctx.allocPD()
        let acq = try actx.createCQ(depth: 8, layout: .scattered, indirect: true)
        let bcq = try bctx.createCQ(depth: 8, layout: .high)
        let aqp = try actx.createQP(pd: apd, sendCQ: acq, sq: WorkQueueCaps(depth: 8, maxSGE: 2), rq: WorkQueueCaps(depth: 8),
                                    layout: .scattered, indirect: true)
        let bqp = try bctx.createQP(pd: bpd, sendCQ: bcq, sq: WorkQueueCaps(depth: 8, maxSGE: 2), rq: WorkQueueCaps(depth: 8), layout: .high)
        try QueuePair.connect(aqp, bqp)
        // A 3-page MR starting 100 bytes into a page, on scattered pages named by an indirect list;
        // another in RAM above 4 GiB.
        let amr = try apd.registerMR(length: 3 * 4096, pageOffset: 100, layout: .scattered, indirect: true)
        let bmr = try bpd.registerMR(length: 3 * 4096, pageOffset: 4000, layout: .high)
        for i in 0..<40 {
            let data = pattern(9000, seed: UInt8(i))
            amr.write(data, at: 1000)
            try bqp.postRecv(RecvWR(wrId: UInt64(i), sges: [bmr.sge(offset: 100, length: 10_000)]))
            try aqp.postSend(SendWR(wrId: UInt64(i), opcode: .send, sges: [amr.sge(offset: 1000, length: 9000)]))
            var got: [Completion] = []
            let deadline = monotonicMilliseconds() + 3000
            while got.count < 2 && monotonicMilliseconds() < deadline {
                got += acq.poll() + bcq.poll()
            }
            try check.require(got.count == 2 && got.allSatisfy { $0.status == .success && $0.wrId == UInt64(i) }, "round \(i): \(got)")
            try check.require(bmr.read(9000, at: 100) == data, "round \(i): SEND payload differs")
            // And back with an RDMA WRITE into A's MR, across its page boundaries.
            try bqp.postSend(SendWR(wrId: UInt64(100 + i), opcode: .rdmaWrite, sges: [bmr.sge(offset: 100, length: 9000)],
                                    remoteAddr: amr.address(3000), rkey: amr.rkey))
            let w = try bcq.waitOne()
            try check.require(w.status == .success && w.wrId == UInt64(100 + i), "round \(i): \(w)")
            try check.require(amr.read(9000, at: 3000) == data, "round \(i): WRITE payload differs")
        }
    },
]
