// SPDX-License-Identifier: Apache-2.0
// One-sided operations: RDMA WRITE, WRITE_WITH_IMM and READ (also scattered into two SGEs), and
// atomics (CMP_AND_SWP, FETCH_AND_ADD, a misaligned target, two QPs adding to one word at once).
import Glibc
import VRDMATestSupport

let rdmaScenarios: [Scenario] = [
    Scenario("RDMA WRITE and WRITE_WITH_IMM land in the peer's MR; READ brings its bytes back, also into two SGEs") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        // WRITE: 10000 bytes (ten packets) at an offset; no receive is consumed.
        let data = pattern(10_000, seed: 5)
        a.mr.write(data, at: 0)
        try b.postRecv(wrId: 99, offset: 60_000, length: 64)
        try a.qp.postSend(SendWR(wrId: 1, opcode: .rdmaWrite, sges: [a.mr.sge(offset: 0, length: 10_000)],
                                 remoteAddr: b.mr.address(1000), rkey: b.mr.rkey))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 1, status: .success, opcode: .rdmaWrite)
        check.expect(b.mr.read(10_000, at: 1000) == data, "WRITE data differs")
        check.expect(b.mr.read(1, at: 999) == [0] && b.mr.read(1, at: 11_000) == [0], "bytes outside the WRITE target changed")
        let consumed = b.recvCQ.drain(waitingMilliseconds: 20)
        check.expect(consumed.isEmpty, "a plain RDMA WRITE consumed a receive: \(consumed)")

        // WRITE_WITH_IMM: the data lands, and the posted receive completes with the immediate.
        let data2 = pattern(3000, seed: 6)
        a.mr.write(data2, at: 20_000)
        try a.qp.postSend(SendWR(wrId: 2, opcode: .rdmaWriteWithImm, sges: [a.mr.sge(offset: 20_000, length: 3000)], imm: 0x1234_5678,
                                 remoteAddr: b.mr.address(30_000), rkey: b.mr.rkey))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .success, opcode: .rdmaWrite)
        let r = try b.recvCQ.waitOne()
        check.expectWC(r, wrId: 99, status: .success, opcode: .recvRDMAWithImm, qpn: b.qp.qpn, byteLen: 3000)
        check.expect(r.flags.contains(.withImm) && r.imm == 0x1234_5678, "immediate missing or wrong: \(r)")
        check.expect(b.mr.read(3000, at: 30_000) == data2, "WRITE_WITH_IMM data differs")
        check.expect(b.mr.read(64, at: 60_000) == [UInt8](repeating: 0, count: 64), "WRITE_WITH_IMM wrote into the receive buffer")

        // READ: 7000 bytes of B's MR into A's.
        let data3 = pattern(7000, seed: 7)
        b.mr.write(data3, at: 40_000)
        try a.qp.postSend(SendWR(wrId: 3, opcode: .rdmaRead, sges: [a.mr.sge(offset: 50_000, length: 7000)],
                                 remoteAddr: b.mr.address(40_000), rkey: b.mr.rkey))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 3, status: .success, opcode: .rdmaRead, byteLen: 7000)
        check.expect(a.mr.read(7000, at: 50_000) == data3, "READ data differs")
        // READ scattered into two local SGEs.
        try a.qp.postSend(SendWR(wrId: 4, opcode: .rdmaRead, sges: [a.mr.sge(offset: 0, length: 1000), a.mr.sge(offset: 8192, length: 6000)],
                                 remoteAddr: b.mr.address(40_000), rkey: b.mr.rkey))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .success, opcode: .rdmaRead, byteLen: 7000)
        check.expect(a.mr.read(1000, at: 0) == Array(data3[0..<1000]) && a.mr.read(6000, at: 8192) == Array(data3[1000...]),
                     "READ into two SGEs differs")
    },

    Scenario("atomics: CMP_AND_SWP and FETCH_AND_ADD return the old value and change the remote word; misaligned -> REM_INV_REQ_ERR") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        b.mr.storeU64(100, at: 64)
        func atomic(_ id: UInt64, _ op: SendOpcode, _ compareAdd: UInt64, swap: UInt64 = 0, offset: Int = 64) throws -> Completion {
            try a.qp.postSend(SendWR(wrId: id, opcode: op, sges: [a.mr.sge(offset: Int(id) * 8, length: 8)], remoteAddr: b.mr.address(offset),
                                     rkey: b.mr.rkey, compareAdd: compareAdd, swap: swap))
            return try a.sendCQ.waitOne()
        }
        check.expectWC(try atomic(1, .fetchAndAdd, 5), wrId: 1, status: .success, opcode: .fetchAdd, byteLen: 8)
        check.expectEqual([a.mr.loadU64(at: 8), b.mr.loadU64(at: 64)], [100, 105], "FETCH_AND_ADD 5: [returned, remote]")
        check.expectWC(try atomic(2, .cmpAndSwp, 105, swap: 7), wrId: 2, status: .success, opcode: .compSwap, byteLen: 8)
        check.expectEqual([a.mr.loadU64(at: 16), b.mr.loadU64(at: 64)], [105, 7], "CMP_AND_SWP 105 -> 7: [returned, remote]")
        check.expectWC(try atomic(3, .cmpAndSwp, 999, swap: 1), wrId: 3, status: .success, opcode: .compSwap, byteLen: 8)
        check.expectEqual([a.mr.loadU64(at: 24), b.mr.loadU64(at: 64)], [7, 7], "a failed compare: [returned, remote]")
        check.expectWC(try atomic(4, .fetchAndAdd, UInt64.max), wrId: 4, status: .success, opcode: .fetchAdd)
        check.expectEqual([a.mr.loadU64(at: 32), b.mr.loadU64(at: 64)], [7, 6], "FETCH_AND_ADD wraps modulo 2^64: [returned, remote]")
        // A remote address that is not 8-aligned: the responder refuses it.
        check.expectWC(try atomic(5, .fetchAndAdd, 1, offset: 68), wrId: 5, status: .remInvReqErr)
        check.expectEqual(b.mr.loadU64(at: 64), 6, "the remote word after a misaligned atomic")
        check.expectState(a.qp, .error, "the requester after REM_INV_REQ_ERR")
    },

    Scenario("FETCH_AND_ADD from two QPs on two devices at once: no increment is lost") { h in
        let check = h.checks
        // The target word is in B's MR; one requester is on A, the other on B itself (loopback).
        let target = try Endpoint(h.b)
        let loopbackTarget = try Endpoint(h.b, ctx: target.ctx, pd: target.pd)
        let requesters = [try Endpoint(h.a), try Endpoint(h.b)]
        try QueuePair.connect(requesters[0].qp, target.qp)
        try QueuePair.connect(requesters[1].qp, loopbackTarget.qp)
        let perQP = 400
        var posted = [0, 0], done = [0, 0]
        var originals: [UInt64] = []
        let deadline = monotonicMilliseconds() + 10_000
        while done[0] < perQP || done[1] < perQP {
            try check.require(monotonicMilliseconds() < deadline, "only \(done) of \(perQP) atomics completed per QP")
            for k in 0..<2 {
                let e = requesters[k]
                while posted[k] < perQP && posted[k] - done[k] < 16 {
                    try e.qp.postSend(SendWR(wrId: UInt64(posted[k]), opcode: .fetchAndAdd, sges: [e.mr.sge(offset: posted[k] * 8, length: 8)],
                                             remoteAddr: target.mr.address(0), rkey: target.mr.rkey, compareAdd: 1))
                    posted[k] += 1
                }
                for wc in e.sendCQ.poll() {
                    try check.require(wc.status == .success, "requester \(k): \(wc)")
                    originals.append(e.mr.loadU64(at: Int(wc.wrId) * 8))
                    done[k] += 1
                }
            }
            if done[0] < perQP || done[1] < perQP {
                try check.require(h.vms.daemon.isRunning, "the daemon died")
                usleep(20)
            }
        }
        check.expectEqual(target.mr.loadU64(at: 0), UInt64(2 * perQP), "the target word")
        check.expect(originals.sorted() == (0..<UInt64(2 * perQP)).map { $0 }, "two increments saw the same old value")
    },
]
