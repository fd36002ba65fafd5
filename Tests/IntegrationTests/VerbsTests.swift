// SPDX-License-Identifier: Apache-2.0
// The verbs tests that belong to this daemon rather than to any provider: bring-up commands, an
// idle device's CPU, need_kick, the GSI QP, CQ overflow and resize, SRQ commands and events, the
// kernel context's DMA MR. The data path every provider must get right (SEND/RECV, RDMA, atomics,
// UD, SRQ feeding, RNR, completion events, signaling, ring wrap, error statuses) is the
// conformance suite in VRDMAConformance, run by ConformanceTests. Expectations come from
// abi/virtio_rdma.h and the device semantics notes.
import CVRDMAABI
import Glibc
import Testing
import VRDMAConformance
import VRDMATestSupport

@Suite("Verbs: the daemon's own behaviour between two VMs", .serialized)
struct VerbsTests {
    @Test("bring-up: identity, port, P_Key table and GID table commands")
    func bringUp() throws {
        let vms = try VMs()
        let (a, b) = (vms.a, vms.b)
        #expect(a.nodeGUID != 0 && b.nodeGUID != 0 && a.nodeGUID != b.nodeGUID)
        #expect(UInt64(littleEndian: a.config.node_guid) == a.nodeGUID)
        #expect(UInt32(littleEndian: a.config.max_qp) == UInt32(littleEndian: a.attributes.max_qp))
        let port = try a.queryPort()
        #expect(port.state == UInt8(VIRTIO_RDMA_PORT_ACTIVE))
        #expect(port.link_layer == UInt8(VIRTIO_RDMA_LINK_LAYER_ETHERNET))
        #expect(try a.queryPKey(index: 0) == 0xffff)
        let pkeys = UInt32(UInt16(littleEndian: a.config.pkey_tbl_len))
        expectStatus(.invalid, "a.queryPKey(index: pkeys)") { _ = try a.queryPKey(index: pkeys) }
        expectStatus(.invalid, "a.queryPKey(index: 0, port: 2)") { _ = try a.queryPKey(index: 0, port: 2) }
        let gids = UInt32(UInt16(littleEndian: a.config.gid_tbl_len))
        expectStatus(.invalid, "a.addGID(index: gids, gid: vmGID(9))") { try a.addGID(index: gids, gid: vmGID(9)) }
        try a.addGID(index: 2, gid: vmGID(7))
        try a.delGID(index: 2)
        vms.expectAlive()
    }

    @Test("an idle device does not burn CPU: event buffers posted, nothing to do")
    func idleDevice() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        try b.postRecv(wrId: 1)
        try a.send(wrId: 1, length: 8)
        _ = try a.sendCQ.waitOne()
        // Pollers stop after --poll-us (50 us by default); 300 ms of idleness may cost a little.
        let used = vms.daemonCPUWhileIdle()
        #expect(used < 60, "the idle daemon used \(used) ms of CPU in 300 ms")
        vms.expectAlive()
    }

    @Test("a QP waiting on a timer does not burn CPU: the worker sleeps until the RNR back-off or ACK timeout is due, then wakes by itself")
    func timersSleep() throws {
        let vms = try VMs()
        // RNR: B answers with its 655 ms timer (enum 0); A retries forever.
        var pb = RCParameters()
        pb.minRNRTimer = 0
        let (a, b) = try connectedPair(vms, RCParameters(), pb)
        try a.send(wrId: 1, length: 8)
        usleep(20_000)
        let rnrWait = vms.daemonCPUWhileIdle()
        #expect(rnrWait < 60, "waiting out an RNR back-off used \(rnrWait) ms of CPU in 300 ms")
        // Nothing kicks A's worker: its timer must wake it to resend.
        try b.postRecv(wrId: 1)
        expectWC(try a.sendCQ.waitOne(timeoutMilliseconds: 3000), wrId: 1, status: .success)
        // ACK timeout: a GID nobody answers, 4.096 us * 2^17 = 537 ms per try, one retry.
        let c = try unansweredRequester(vms, timeout: 17)
        try c.send(wrId: 2, length: 8)
        usleep(20_000)
        let ackWait = vms.daemonCPUWhileIdle()
        #expect(ackWait < 60, "waiting for an ACK used \(ackWait) ms of CPU in 300 ms")
        expectWC(try c.sendCQ.waitOne(timeoutMilliseconds: 5000), wrId: 2, status: .retryExcErr)
        vms.expectAlive()
    }

    @Test("need_kick: a polling device is not kicked for every post; an idle one asks for the first kick")
    func kickSuppression() throws {
        // The device polls for 200 ms after work: a stream of posts costs (almost) no kicks.
        let busy = try VMs(arguments: ["--poll-us", "200000"])
        let (a, b) = try connectedPair(busy)
        #expect(a.qp.sq.doorbell.needKick != 0, "a new QP's need_kick must be 1 (§10.5)")
        for i in 0..<100 {
            try b.postRecv(wrId: UInt64(i))
            try a.send(wrId: UInt64(i), length: 8)
            _ = try b.recvCQ.waitOne()
            _ = try a.sendCQ.waitOne()
        }
        #expect(a.qp.sq.kicks <= 3, "\(a.qp.sq.kicks) SQ kicks for 100 posts to a polling device")
        // The device sleeps at once (--poll-us 0): every post after a pause must kick, and
        // nothing waits for a kick that was never sent.
        let idle = try VMs(arguments: ["--poll-us", "0"])
        let (c, d) = try connectedPair(idle)
        for i in 0..<10 {
            usleep(5000)
            try d.postRecv(wrId: UInt64(i))
            try c.send(wrId: UInt64(i), length: 8)
            expectWC(try c.sendCQ.waitOne(), wrId: UInt64(i), status: .success)
            _ = try d.recvCQ.waitOne()
        }
        #expect(c.qp.sq.kicks == 10, "\(c.qp.sq.kicks) SQ kicks for 10 posts after pauses to an idle device")
        busy.expectAlive()
        idle.expectAlive()
    }

    @Test("GSI (QP1): the kernel's, one per device, always QPN 1; datagrams to QPN 1 reach it")
    func generalServicesQP() throws {
        let vms = try VMs()
        let kernelB = vms.b.context(handle: 0)
        let gsi = try Endpoint(vms.b, type: .gsi, ctx: kernelB)
        #expect(gsi.qp.qpn == UInt32(VIRTIO_RDMA_GSI_QPN))
        let pd = try kernelB.allocPD(), cq = try kernelB.createCQ(depth: 16)
        let caps = WorkQueueCaps(depth: 16, maxSGE: 1)
        expectStatus(.busy, "a second GSI QP") {
            _ = try kernelB.createQP(pd: pd, sendCQ: cq, recvCQ: cq, type: .gsi, sq: caps, rq: caps, srq: nil, sqSigAll: false)
        }
        let user = try vms.b.createContext()
        let userPD = try user.allocPD(), userCQ = try user.createCQ(depth: 16)
        expectStatus(.invalid, "a GSI QP in a user context") {
            _ = try user.createQP(pd: userPD, sendCQ: userCQ, recvCQ: userCQ, type: .gsi, sq: caps, rq: caps, srq: nil, sqSigAll: false)
        }
        try gsi.qp.bringUpUD(qkey: VIRTIO_RDMA_GSI_QKEY)
        // As Linux's MAD layer sends: from A's QP1, Q_Key "use the QP's own" (a controlled Q_Key
        // with the high bit set cannot be named in a work request).
        let a = try Endpoint(vms.a, type: .gsi, ctx: vms.a.context(handle: 0))
        try a.qp.bringUpUD(qkey: VIRTIO_RDMA_GSI_QKEY)
        let ah = try a.pd.createAH(to: gsi.qp)
        let payload = pattern(256, seed: 9)
        a.mr.write(payload, at: 0)
        try gsi.postRecv(wrId: 7, offset: 0, length: 40 + 256)
        try a.qp.postSend(SendWR(wrId: 1, opcode: .send, sges: [a.mr.sge(offset: 0, length: 256)], ah: ah.handle,
                                 remoteQPN: UInt32(VIRTIO_RDMA_GSI_QPN), remoteQKey: 0x8000_0000))
        expectWC(try a.sendCQ.waitOne(), wrId: 1, status: .success)
        let r = try gsi.recvCQ.waitOne()
        expectWC(r, wrId: 7, status: .success, opcode: .recv, qpn: UInt32(VIRTIO_RDMA_GSI_QPN), byteLen: 40 + 256)
        #expect(r.srcQP == a.qp.qpn && r.flags.contains(.grh), "\(r)")
        #expect(gsi.mr.read(256, at: 40) == payload)
        vms.expectAlive()
    }

    @Test("SRQ commands: QUERY_SRQ, no resize, no RQ beside it, BUSY while in use; a QP of it moved to ERR raises QP_LAST_WQE_REACHED")
    func sharedReceiveQueueCommands() throws {
        let vms = try VMs()
        let bctx = try vms.b.createContext()
        let bpd = try bctx.allocPD()
        let srq = try bctx.createSRQ(pd: bpd, caps: WorkQueueCaps(depth: 64, maxSGE: 1))
        let q = try srq.query()
        #expect(q.maxWR == 64 && q.maxSGE == 1 && q.limit == 0)
        let sink = try Endpoint(vms.b, ctx: bctx, pd: bpd)
        let qp = try bctx.createQP(pd: bpd, sendCQ: sink.sendCQ, recvCQ: sink.recvCQ, sq: WorkQueueCaps(depth: 16), srq: srq)
        let sender = try Endpoint(vms.a)
        try QueuePair.connect(sender.qp, qp)
        // A QP of the SRQ moved to ERR: it takes no more SRQ WQEs, and says so.
        try qp.modify(QPAttributes(state: .error))
        #expect(try vms.b.waitForEvent(.qpLastWQEReached, handle: qp.qpn) != nil, "no QP_LAST_WQE_REACHED")
        // Resizing is not supported (no SRQ_RESIZE capability): EINVAL, as ibv_modify_srq reports it.
        expectStatus(.invalid, "MODIFY_SRQ with SRQ_MAX_WR") { try srq.modify(mask: UInt32(VIRTIO_RDMA_SRQ_MAX_WR), maxWR: 128) }
        // A QP with an SRQ must describe no receive queue.
        var plan = bctx.planQP(pd: bpd, sendCQ: sink.sendCQ, srq: srq)
        plan.request.rq = bctx.planWorkQueue(WorkQueueCaps(depth: 16), send: false).desc
        expectStatus(.invalid, "bctx.createQP(plan)") { _ = try bctx.createQP(plan) }
        // The SRQ is in use: BUSY until its QPs are gone.
        expectStatus(.busy, "srq.destroy()") { try srq.destroy() }
        try qp.destroy()
        try srq.destroy()
        vms.expectAlive()
    }

    @Test("CQ overflow: the extra CQE is dropped, cq_status OVERFLOW, CQ_ERR event")
    func cqOverflow() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a, cqDepth: 4)
        try a.qp.modify(a.qp.initAttributes())
        for i in 0..<8 { try a.postRecv(wrId: UInt64(i)) }
        try a.qp.modify(QPAttributes(state: .error))
        #expect(try vms.a.waitForEvent(.cqErr, handle: a.recvCQ.handle) != nil, "no CQ_ERR event")
        #expect(a.recvCQ.overflowed, "cq_status lacks OVERFLOW")
        let wcs = a.recvCQ.poll()
        #expect(wcs.count == 4 && wcs.map(\.wrId) == [0, 1, 2, 3], "\(wcs)")
        #expect(wcs.allSatisfy { $0.status == .wrFlushErr })
        #expect(!a.recvCQ.sawIndexBeyondDepth)
        // A CQ in error cannot be resized.
        expectStatus(.badState, "RESIZE_CQ of an overflowed CQ") { try a.recvCQ.resize(depth: 16) }
        vms.expectAlive()
    }

    @Test("RESIZE_CQ moves unpolled CQEs to the new ring's start")
    func resizeCQ() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a)
        let b = try Endpoint(vms.b, cqDepth: 4)
        try QueuePair.connect(a.qp, b.qp)
        for i in 0..<3 { try b.postRecv(wrId: UInt64(i), offset: i * 64, length: 64) }
        for i in 0..<3 { try a.send(wrId: UInt64(i), length: 8) }
        _ = try a.sendCQ.wait(for: 3)
        let deadline = monotonicMilliseconds() + 2000
        while b.recvCQ.available < 3 && monotonicMilliseconds() < deadline { usleep(100) }
        try b.recvCQ.resize(depth: 16)
        #expect(b.recvCQ.doorbell.deviceIndex == 3, "device_index must count the copied CQEs")
        #expect(try b.recvCQ.wait(for: 3).map(\.wrId) == [0, 1, 2])
        for i in 0..<10 { try b.postRecv(wrId: UInt64(10 + i), offset: i * 64, length: 64) }
        for i in 0..<10 { try a.send(wrId: UInt64(10 + i), length: 8) }
        #expect(try b.recvCQ.wait(for: 10).map(\.wrId) == (10..<20).map { UInt64($0) })
        // Smaller than the unpolled CQEs: refused.
        for i in 0..<5 { try b.postRecv(wrId: UInt64(30 + i), offset: i * 64, length: 64) }
        for i in 0..<5 { try a.send(wrId: UInt64(30 + i), length: 8) }
        _ = try a.sendCQ.wait(for: 15)
        let until = monotonicMilliseconds() + 2000
        while b.recvCQ.available < 5 && monotonicMilliseconds() < until { usleep(100) }
        expectStatus(.invalid, "b.recvCQ.resize(depth: 4)") { try b.recvCQ.resize(depth: 4) }
        vms.expectAlive()
    }

    @Test("the kernel context: a DMA MR addresses guest RAM by guest-physical address")
    func kernelDMAMR() throws {
        let vms = try VMs()
        let k = vms.a.kernel, kb = vms.b.kernel
        let pd = try k.allocPD(), pdb = try kb.allocPD()
        let dma = try pd.registerDMAMR()
        #expect(dma.rkey == 0, "a DMA MR without remote access has rkey 0")
        let a = try Endpoint(vms.a, ctx: k, pd: pd)
        let b = try Endpoint(vms.b, ctx: kb, pd: pdb)
        try QueuePair.connect(a.qp, b.qp)
        let buffer = vms.a.frontend.allocate(8192)
        let data = pattern(5000, seed: 8)
        _ = data.withUnsafeBytes { vms.a.frontend.memory.write(at: buffer + 1000, from: $0) }
        try b.postRecv(wrId: 1, offset: 0, length: 8192)
        try a.qp.postSend(SendWR(wrId: 2, opcode: .send, sges: [SGE(addr: buffer + 1000, length: 5000, lkey: dma.lkey)]))
        expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .success)
        expectWC(try b.recvCQ.waitOne(), wrId: 1, status: .success, byteLen: 5000)
        #expect(b.mr.read(5000) == data)
        vms.expectAlive()
    }
}
