// SPDX-License-Identifier: Apache-2.0
// Errors as the requester sees them, with the IB statuses any HCA gives: a bad rkey or a missing
// remote access right (REM_ACCESS_ERR), a bad lkey (LOC_PROT_ERR, nothing sent), a peer that no
// longer answers (RETRY_EXC_ERR after retry_cnt), a receive too small (LOC_LEN_ERR at the responder,
// REM_INV_REQ_ERR at the requester). Every error moves the requester to ERR and flushes what
// follows. The responder's side of remote errors (its events, its RQ flushed) is the software
// fabric's own business and stays in IntegrationTests' ProtectionTests.
import VRDMATestSupport

let errorScenarios: [Scenario] = [
    Scenario("error: a bad rkey -> REM_ACCESS_ERR, requester in ERR, later WRs flushed, nothing written") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        b.mr.storeU64(42, at: 0)
        try a.qp.postSend(SendWR(wrId: 1, opcode: .rdmaWrite, sges: [a.mr.sge(offset: 0, length: 8)], remoteAddr: b.mr.address(0),
                                 rkey: b.mr.rkey ^ 0x77_0000))
        try a.send(wrId: 2, length: 8)
        try a.send(wrId: 3, length: 8, flags: [])
        let wcs = try a.sendCQ.wait(for: 3)
        check.expectWC(wcs[0], wrId: 1, status: .remAccessErr, qpn: a.qp.qpn)
        check.expectWC(wcs[1], wrId: 2, status: .wrFlushErr, qpn: a.qp.qpn)
        check.expectWC(wcs[2], wrId: 3, status: .wrFlushErr, qpn: a.qp.qpn)
        check.expectState(a.qp, .error, "the requester after REM_ACCESS_ERR")
        check.expectEqual(b.mr.loadU64(at: 0), 42, "the word behind the bad rkey")
        // Posted once in ERR: flushed as well.
        try a.send(wrId: 4, length: 8)
        check.expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .wrFlushErr, qpn: a.qp.qpn)
    },

    Scenario("error: a bad lkey -> LOC_PROT_ERR, nothing sent, later WRs flushed") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        try b.postRecv(wrId: 1)
        try a.qp.postSend(SendWR(wrId: 5, opcode: .send, sges: [SGE(addr: a.mr.iova, length: 16, lkey: a.mr.lkey ^ 0x5a5a00)]))
        try a.send(wrId: 6, length: 8)
        let wcs = try a.sendCQ.wait(for: 2)
        check.expectWC(wcs[0], wrId: 5, status: .locProtErr, qpn: a.qp.qpn)
        check.expectWC(wcs[1], wrId: 6, status: .wrFlushErr, qpn: a.qp.qpn)
        check.expectState(a.qp, .error, "the requester after LOC_PROT_ERR")
        let got = b.recvCQ.drain(waitingMilliseconds: 20)
        check.expect(got.isEmpty, "the responder received something: \(got)")
        check.expect(check.stateOf(b.qp) == .rts, "the responder left RTS")
    },

    Scenario("error: RDMA WRITE to an MR without REMOTE_WRITE -> REM_ACCESS_ERR, nothing written") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair(accessB: [.localWrite, .remoteRead, .remoteAtomic])
        b.mr.storeU64(5, at: 0)
        a.mr.write([UInt8](repeating: 0xab, count: 64))
        try a.qp.postSend(SendWR(wrId: 3, opcode: .rdmaWrite, sges: [a.mr.sge(offset: 0, length: 64)], remoteAddr: b.mr.address(0),
                                 rkey: b.mr.rkey))
        try a.send(wrId: 4, length: 8)
        let wcs = try a.sendCQ.wait(for: 2)
        check.expectWC(wcs[0], wrId: 3, status: .remAccessErr, qpn: a.qp.qpn)
        check.expectWC(wcs[1], wrId: 4, status: .wrFlushErr, qpn: a.qp.qpn)
        check.expectState(a.qp, .error, "the requester after REM_ACCESS_ERR")
        check.expect(!b.mr.read(Int(b.mr.length)).contains(0xab), "bytes were written without REMOTE_WRITE")
        check.expectEqual(b.mr.loadU64(at: 0), 5, "the target word")
    },

    Scenario("error: a peer QP destroyed with sends in flight, or reset -> RETRY_EXC_ERR after retry_cnt") { h in
        let check = h.checks
        var p = RCParameters()
        p.timeout = 8  // about 1 ms
        p.retryCount = 1
        // Destroyed with the requester's sends in flight: a prefix succeeds, then RETRY_EXC_ERR,
        // then flushes; every WQE completes, in order.
        let (a, b) = try h.connectedPair(p, mrSize: 1 << 20)
        for i in 0..<32 { try b.postRecv(wrId: UInt64(i), offset: i * 4096, length: 4096) }
        for i in 0..<32 { try a.send(wrId: UInt64(i), length: 4096) }
        try b.qp.destroy()
        for i in 32..<40 { try a.send(wrId: UInt64(i), length: 4096) }
        let wcs = try a.sendCQ.wait(for: 40, timeoutMilliseconds: 5000)
        check.expectEqual(wcs.map(\.wrId), (0..<40).map { UInt64($0) }, "completion order")
        let firstError = wcs.firstIndex { $0.status != .success } ?? wcs.count
        if check.expect(firstError < 40, "sends to a destroyed QP succeeded") {
            check.expectEqual(wcs[firstError].status, .retryExcErr, "the first failed send")
            let rest = wcs[(firstError + 1)...]
            check.expect(rest.allSatisfy { $0.status == .wrFlushErr }, "after RETRY_EXC_ERR: \(rest)")
        }
        check.expectState(a.qp, .error, "the requester after RETRY_EXC_ERR")
        // Reset: the peer QP exists but drops what arrives.
        let (c, d) = try h.connectedPair(p)
        try d.qp.modify(QPAttributes(state: .reset))
        try c.send(wrId: 1, length: 8)
        try c.send(wrId: 2, length: 8)
        let reset = try c.sendCQ.wait(for: 2)
        check.expectWC(reset[0], wrId: 1, status: .retryExcErr, qpn: c.qp.qpn)
        check.expectWC(reset[1], wrId: 2, status: .wrFlushErr, qpn: c.qp.qpn)
        check.expectState(c.qp, .error, "the requester of a reset peer")
    },

    Scenario("error: a receive too small -> LOC_LEN_ERR at the responder, REM_INV_REQ_ERR at the requester, both in ERR") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        try b.postRecv(wrId: 1, length: 64)
        try a.send(wrId: 2, length: 100)
        if h.softwareProvider {
            check.expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .remInvReqErr, qpn: a.qp.qpn)
            check.expectWC(try b.recvCQ.waitOne(), wrId: 1, status: .locLenErr, qpn: b.qp.qpn)
        } else {
            // rxe reports the short buffer as a malformed WQE: LOC_QP_OP_ERR and a REM_OP_ERR NAK.
            check.expectWC(try a.sendCQ.waitOne(), wrId: 2, statusIn: [.remInvReqErr, .remOpErr], qpn: a.qp.qpn)
            check.expectWC(try b.recvCQ.waitOne(), wrId: 1, statusIn: [.locLenErr, .locQPOpErr], qpn: b.qp.qpn)
        }
        check.expectState(a.qp, .error, "the requester after REM_INV_REQ_ERR")
        check.expectState(b.qp, .error, "the responder after LOC_LEN_ERR")
    },
]
