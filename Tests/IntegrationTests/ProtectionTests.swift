// SPDX-License-Identifier: Apache-2.0
// Protection as both sides see it (docs/virtio-rdma.md §15.7): local key and range errors
// (LOC_PROT_ERR, nothing sent), remote key, range and access errors (REM_ACCESS_ERR at the
// requester; responder QP in ERR with EV_QP_ACCESS_ERR and its RQ flushed), receive-side errors
// (LOC_LEN_ERR / LOC_PROT_ERR at the responder, REM_INV_REQ_ERR / REM_OP_ERR at the requester),
// keys, PD and context boundaries, and the destroy-order rules of §7. The requester's view of a bad
// lkey and of a receive too small, which any provider must give, is in the conformance suite.
import CVRDMAABI
import Glibc
import Testing
import VRDMAConformance
import VRDMATestSupport

@Suite("Verbs: protection", .serialized)
struct ProtectionTests {
    /// Posts one send-queue WR on a fresh connected pair and returns both endpoints.
    static func pair(_ vms: VMs, accessB: Access = .all, qpAccessB: Access = .all, mrSize: Int = 64 << 10) throws -> (Endpoint, Endpoint) {
        let a = try Endpoint(vms.a, mrSize: mrSize)
        let b = try Endpoint(vms.b, mrSize: mrSize, access: accessB)
        var pb = RCParameters()
        pb.access = qpAccessB
        try a.qp.connect(to: b.qp)
        try b.qp.connect(to: a.qp, pb)
        return (a, b)
    }

    /// The requester got `status` and went to ERR; the responder went to ERR with an
    /// EV_QP_ACCESS_ERR (or `event`) naming its QP, and its posted receive was flushed.
    static func expectRemoteError(_ vms: VMs, _ a: Endpoint, _ b: Endpoint, wrId: UInt64, status: WCStatus = .remAccessErr,
                                  event: EventType = .qpAccessErr, sourceLocation: SourceLocation = #_sourceLocation) throws {
        expectWC(try a.sendCQ.waitOne(), wrId: wrId, status: status, qpn: a.qp.qpn, sourceLocation: sourceLocation)
        #expect(waitForState(a.qp, .error) == .error, "requester not in ERR", sourceLocation: sourceLocation)
        #expect(waitForState(b.qp, .error) == .error, "responder not in ERR", sourceLocation: sourceLocation)
        let ev = try vms.b.waitForEvent(event, handle: b.qp.qpn)
        #expect(ev != nil, "no \(event) for the responder QP", sourceLocation: sourceLocation)
        if let ev { #expect(ev.detail == UInt32(status.rawValue), "\(ev)", sourceLocation: sourceLocation) }
        expectWC(try b.recvCQ.waitOne(), wrId: 777, status: .wrFlushErr, qpn: b.qp.qpn, sourceLocation: sourceLocation)
    }

    @Test("a range outside the MR, a foreign PD's or a deregistered MR: LOC_PROT_ERR, nothing sent")
    func localProtection() throws {
        let vms = try VMs()
        let cases: [(String, (Endpoint) throws -> SGE)] = [
            ("past the MR's end", { a in a.mr.sge(offset: Int(a.mr.length) - 8, length: 16) }),
            ("below the MR's start", { a in SGE(addr: a.mr.iova - 8, length: 16, lkey: a.mr.lkey) }),
            ("an MR of another PD", { a in
                let other = try a.ctx.allocPD().registerMR(length: 4096)
                return other.sge(offset: 0, length: 16)
            }),
            ("a deregistered MR", { a in
                let gone = try a.pd.registerMR(length: 4096)
                try gone.deregister()
                return gone.sge(offset: 0, length: 16)
            }),
        ]
        for (name, sge) in cases {
            let (a, b) = try Self.pair(vms)
            try b.postRecv(wrId: 1)
            try a.qp.postSend(SendWR(wrId: 5, opcode: .send, sges: [try sge(a)]))
            try a.send(wrId: 6, length: 8)
            let wcs = try a.sendCQ.wait(for: 2)
            expectWC(wcs[0], wrId: 5, status: .locProtErr, qpn: a.qp.qpn)
            expectWC(wcs[1], wrId: 6, status: .wrFlushErr, qpn: a.qp.qpn)
            #expect(waitForState(a.qp, .error) == .error, "\(name)")
            let got = b.recvCQ.drain(waitingMilliseconds: 20)
            #expect(got.isEmpty, "\(name): the responder saw \(got)")
            #expect(stateOf(b.qp) == .rts, "\(name): the responder was affected")
        }
        // READ into a local MR without LOCAL_WRITE, and an atomic's result likewise.
        for op in [SendOpcode.rdmaRead, .fetchAndAdd] {
            let (a, b) = try Self.pair(vms)
            let readOnly = try a.pd.registerMR(length: 4096, access: [.remoteRead])
            try a.qp.postSend(SendWR(wrId: 7, opcode: op, sges: [readOnly.sge(offset: 0, length: 8)], remoteAddr: b.mr.address(0),
                                     rkey: b.mr.rkey, compareAdd: 1))
            let wc = try a.sendCQ.waitOne()
            #expect(wc.wrId == 7 && wc.status == .locProtErr, "\(op) into an MR without LOCAL_WRITE: \(wc)")
            #expect(b.mr.loadU64(at: 0) == 0, "\(op) executed although its result could not be stored")
        }
        // The DMA MR: an address outside guest RAM.
        let k = try vms.a.kernel.allocPD()
        let dma = try k.registerDMAMR()
        let a = try Endpoint(vms.a, ctx: vms.a.kernel, pd: k)
        let b = try Endpoint(vms.b)
        try QueuePair.connect(a.qp, b.qp)
        try b.postRecv(wrId: 1)
        try a.qp.postSend(SendWR(wrId: 8, opcode: .send, sges: [SGE(addr: 0x9000_0000, length: 64, lkey: dma.lkey)]))
        expectWC(try a.sendCQ.waitOne(), wrId: 8, status: .locProtErr)
        vms.expectAlive()
    }

    @Test("a bad rkey: REM_ACCESS_ERR; responder in ERR with QP_ACCESS_ERR, its RQ flushed")
    func badRKey() throws {
        let vms = try VMs()
        for op in [SendOpcode.rdmaWrite, .rdmaRead, .fetchAndAdd] {
            let (a, b) = try Self.pair(vms)
            try b.postRecv(wrId: 777)
            b.mr.storeU64(42, at: 0)
            try a.qp.postSend(SendWR(wrId: 1, opcode: op, sges: [a.mr.sge(offset: 0, length: 8)], remoteAddr: b.mr.address(0),
                                     rkey: b.mr.rkey ^ 0x77_0000, compareAdd: 1))
            try Self.expectRemoteError(vms, a, b, wrId: 1)
            #expect(b.mr.loadU64(at: 0) == 42, "\(op) changed memory through a bad rkey")
        }
        vms.expectAlive()
    }

    @Test("a remote address outside the MR: REM_ACCESS_ERR, nothing written")
    func remoteRange() throws {
        let vms = try VMs()
        let cases: [(String, Int, Int)] = [("past the end", 64 << 10 - 8, 16), ("before the start", -8, 16), ("far away", 1 << 30, 8)]
        for (name, offset, length) in cases {
            let (a, b) = try Self.pair(vms)
            try b.postRecv(wrId: 777)
            a.mr.write([UInt8](repeating: 0xab, count: length))
            try a.qp.postSend(SendWR(wrId: 2, opcode: .rdmaWrite, sges: [a.mr.sge(offset: 0, length: length)],
                                     remoteAddr: b.mr.iova &+ UInt64(bitPattern: Int64(offset)), rkey: b.mr.rkey))
            try Self.expectRemoteError(vms, a, b, wrId: 2)
            #expect(!b.mr.read(Int(b.mr.length)).contains(0xab), "\(name): bytes were written")
        }
        vms.expectAlive()
    }

    @Test("missing REMOTE_WRITE, REMOTE_READ or REMOTE_ATOMIC on the MR or the QP: REM_ACCESS_ERR")
    func remoteAccessFlags() throws {
        let vms = try VMs()
        let cases: [(String, SendOpcode, Access, Access)] = [
            ("WRITE, MR without REMOTE_WRITE", .rdmaWrite, [.localWrite, .remoteRead, .remoteAtomic], .all),
            ("READ, MR without REMOTE_READ", .rdmaRead, [.localWrite, .remoteWrite, .remoteAtomic], .all),
            ("atomic, MR without REMOTE_ATOMIC", .fetchAndAdd, [.localWrite, .remoteWrite, .remoteRead], .all),
            ("WRITE, QP without REMOTE_WRITE", .rdmaWrite, .all, [.localWrite, .remoteRead, .remoteAtomic]),
            ("READ, QP without REMOTE_READ", .rdmaRead, .all, [.localWrite, .remoteWrite, .remoteAtomic]),
            ("atomic, QP without REMOTE_ATOMIC", .cmpAndSwp, .all, [.localWrite, .remoteWrite, .remoteRead]),
        ]
        for (name, op, mrAccess, qpAccess) in cases {
            let (a, b) = try Self.pair(vms, accessB: mrAccess, qpAccessB: qpAccess)
            #expect(b.mr.rkey == b.mr.lkey, "rkey must equal lkey when remote access is given")
            try b.postRecv(wrId: 777)
            b.mr.storeU64(5, at: 0)
            try a.qp.postSend(SendWR(wrId: 3, opcode: op, sges: [a.mr.sge(offset: 0, length: 8)], remoteAddr: b.mr.address(0),
                                     rkey: b.mr.rkey, compareAdd: 5, swap: 9))
            try Self.expectRemoteError(vms, a, b, wrId: 3)
            #expect(b.mr.loadU64(at: 0) == 5, "\(name): memory changed")
        }
        vms.expectAlive()
    }

    @Test("receive side: a bad receive lkey or access, too many receive SGEs")
    func receiveErrors() throws {
        let vms = try VMs()
        // A bad lkey in the receive WQE: responder LOC_PROT_ERR, requester REM_OP_ERR.
        do {
            let (a, b) = try Self.pair(vms)
            try b.qp.postRecv(RecvWR(wrId: 3, sges: [SGE(addr: b.mr.iova, length: 64, lkey: 0xdead)]))
            try a.send(wrId: 4, length: 16)
            expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .remOpErr)
            expectWC(try b.recvCQ.waitOne(), wrId: 3, status: .locProtErr, qpn: b.qp.qpn)
            #expect(waitForState(b.qp, .error) == .error)
        }
        // A receive MR without LOCAL_WRITE: the same.
        do {
            let (a, b) = try Self.pair(vms)
            let ro = try b.pd.registerMR(length: 4096, access: [.remoteRead])
            try b.qp.postRecv(RecvWR(wrId: 5, sges: [ro.sge(offset: 0, length: 64)]))
            try a.send(wrId: 6, length: 16)
            expectWC(try a.sendCQ.waitOne(), wrId: 6, status: .remOpErr)
            expectWC(try b.recvCQ.waitOne(), wrId: 5, status: .locProtErr)
        }
        // num_sge beyond the RQ's max_sge (the WQE still fits its slot): responder LOC_QP_OP_ERR,
        // requester REM_OP_ERR.
        do {
            let a = try Endpoint(vms.a)
            let b = try Endpoint(vms.b, rq: WorkQueueCaps(depth: 16, maxSGE: 1, wqeShift: 7))
            try QueuePair.connect(a.qp, b.qp)
            try b.qp.postRecv(RecvWR(wrId: 7, sges: (0..<4).map { b.mr.sge(offset: $0 * 64, length: 64) }))
            try a.send(wrId: 8, length: 16)
            expectWC(try a.sendCQ.waitOne(), wrId: 8, status: .remOpErr)
            expectWC(try b.recvCQ.waitOne(), wrId: 7, status: .locQPOpErr)
            #expect(waitForState(b.qp, .error) == .error)
        }
        vms.expectAlive()
    }

    @Test("keys: rkey 0 without remote access, rkey = lkey with it; REG_MR access rules")
    func keys() throws {
        let vms = try VMs()
        let ctx = try vms.a.createContext()
        let pd = try ctx.allocPD()
        let local = try pd.registerMR(length: 4096, access: .localWrite)
        #expect(local.lkey != 0 && local.rkey == 0)
        let remote = try pd.registerMR(length: 4096, access: .all)
        #expect(remote.rkey == remote.lkey && remote.lkey != local.lkey)
        expectStatus(.invalid, "REMOTE_WRITE without LOCAL_WRITE") { _ = try pd.registerMR(length: 4096, access: [.remoteWrite]) }
        expectStatus(.invalid, "REMOTE_ATOMIC without LOCAL_WRITE") { _ = try pd.registerMR(length: 4096, access: [.remoteAtomic]) }
        expectStatus(.invalid, "unknown access bit") { _ = try pd.registerMR(length: 4096, access: Access(rawValue: 1 << 7)) }
        expectStatus(.access, "DMA MR on a user context's PD") { _ = try pd.registerDMAMR() }
        try local.deregister()
        expectStatus(.badHandle, "local.deregister()") { try local.deregister() }
        vms.expectAlive()
    }

    @Test("objects of one context cannot be used from another: BAD_HANDLE")
    func contextIsolation() throws {
        let vms = try VMs()
        let c1 = try vms.a.createContext(), c2 = try vms.a.createContext()
        let pd1 = try c1.allocPD(), pd2 = try c2.allocPD()
        let cq1 = try c1.createCQ(depth: 16), cq2 = try c2.createCQ(depth: 16)
        expectStatus(.badHandle, "foreign PD") { _ = try c2.createQP(pd: pd1, sendCQ: cq2) }
        expectStatus(.badHandle, "foreign send CQ") { _ = try c2.createQP(pd: pd2, sendCQ: cq1) }
        expectStatus(.badHandle, "foreign recv CQ") { _ = try c2.createQP(pd: pd2, sendCQ: cq2, recvCQ: cq1) }
        expectStatus(.badHandle, "foreign PD for an SRQ") { _ = try c2.createSRQ(pd: pd1) }
        let srq1 = try c1.createSRQ(pd: pd1)
        expectStatus(.badHandle, "foreign SRQ") { _ = try c2.createQP(pd: pd2, sendCQ: cq2, srq: srq1) }
        _ = try c2.createQP(pd: pd2, sendCQ: cq2)
        vms.expectAlive()
    }

    @Test("destroy order: PD, CQ and SRQ in use are BUSY; DESTROY_UCONTEXT takes everything")
    func destroyOrder() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a)
        let srq = try a.ctx.createSRQ(pd: a.pd)
        let sqp = try a.anotherQP(srq: srq)
        let ah = try a.pd.createAH(AddressVector(dgid: vmGID(1), sgidIndex: 1))
        expectStatus(.busy, "a.pd.dealloc()") { try a.pd.dealloc() }
        expectStatus(.busy, "a.sendCQ.destroy()") { try a.sendCQ.destroy() }
        expectStatus(.busy, "a.recvCQ.destroy()") { try a.recvCQ.destroy() }
        expectStatus(.busy, "srq.destroy()") { try srq.destroy() }
        try sqp.destroy()
        try srq.destroy()
        try a.qp.destroy()
        try a.sendCQ.destroy()
        try a.recvCQ.destroy()
        expectStatus(.busy, "MR and AH still on the PD") { try a.pd.dealloc() }
        try a.mr.deregister()
        expectStatus(.busy, "AH still on the PD") { try a.pd.dealloc() }
        try ah.destroy()
        try a.pd.dealloc()

        // Everything of a context goes with it.
        let b = try Endpoint(vms.a)
        let srq2 = try b.ctx.createSRQ(pd: b.pd)
        let ah2 = try b.pd.createAH(AddressVector(dgid: vmGID(1), sgidIndex: 1))
        try b.ctx.destroy()
        expectStatus(.badHandle, "b.qp.query()") { _ = try b.qp.query() }
        expectStatus(.badHandle, "srq2.query()") { _ = try srq2.query() }
        expectStatus(.badHandle, "b.mr.deregister()") { try b.mr.deregister() }
        expectStatus(.badHandle, "b.sendCQ.destroy()") { try b.sendCQ.destroy() }
        expectStatus(.badHandle, "ah2.destroy()") { try ah2.destroy() }
        expectStatus(.badHandle, "b.pd.dealloc()") { try b.pd.dealloc() }
        expectStatus(.badHandle, "b.ctx.destroy()") { try b.ctx.destroy() }
        expectStatus(.invalid, "context 0 cannot be destroyed") { try vms.a.kernel.destroy() }
        _ = try vms.a.kernel.allocPD()
        vms.expectAlive()
    }
}
