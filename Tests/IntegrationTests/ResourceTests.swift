// SPDX-License-Identifier: Apache-2.0
// Resources as the device accounts for them (docs/virtio-rdma.md §7): per-device quotas set on
// the daemon's command line (the next create is NO_RESOURCES, a destroy frees the slot), handles
// that are non-zero and not reused, destroying a context, and several devices of one daemon that
// route by GID and do not share quotas.
import CVRDMAABI
import Glibc
import Testing
import VRDMAConformance
import VRDMATestSupport

@Suite("Verbs: resources and quotas", .serialized)
struct ResourceTests {
    static let quotaArguments = ["--max-qp", "4", "--max-cq", "4", "--max-pd", "4", "--max-mr", "4", "--max-srq", "2", "--max-ah", "2"]

    @Test("byte quotas: pinned MR bytes and the host memory of QP windows; a destroy gives them back")
    func byteQuotas() throws {
        let vms = try VMs(arguments: ["--max-pinned-bytes", "\(64 << 10)", "--max-qp-memory", "200000"])
        let ctx = try vms.a.createContext()
        let pd = try ctx.allocPD()
        let mr = try pd.registerMR(length: 48 << 10)
        expectStatus(.noResources, "an MR past the pinned-bytes quota") { _ = try pd.registerMR(length: 32 << 10) }
        try mr.deregister()
        _ = try pd.registerMR(length: 32 << 10)

        let cq = try ctx.createCQ(depth: 16)
        let caps = WorkQueueCaps(depth: 64, maxSGE: 4, maxInline: 64)
        expectStatus(.noResources, "a QP whose window alone is past the quota") {
            _ = try ctx.createQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 1024, maxSGE: 16), rq: WorkQueueCaps(depth: 8))
        }
        var qps: [QueuePair] = []
        while qps.count < 64, let qp = try? ctx.createQP(pd: pd, sendCQ: cq, sq: caps, rq: WorkQueueCaps(depth: 8)) { qps.append(qp) }
        #expect(qps.count >= 1 && qps.count < 64, "\(qps.count) QPs of depth 64 fit in 200000 bytes")
        expectStatus(.noResources, "a QP past the window quota") { _ = try ctx.createQP(pd: pd, sendCQ: cq, sq: caps, rq: WorkQueueCaps(depth: 8)) }
        try qps.removeLast().destroy()
        _ = try ctx.createQP(pd: pd, sendCQ: cq, sq: caps, rq: WorkQueueCaps(depth: 8))
        vms.expectAlive()
    }

    @Test("quotas: the create after max_* is NO_RESOURCES; a destroy frees the slot; devices count apart")
    func quotas() throws {
        let vms = try VMs(arguments: Self.quotaArguments)
        let d = vms.a
        let attrs = try d.queryDevice()
        #expect(UInt32(littleEndian: attrs.max_qp) == 4 && UInt32(littleEndian: attrs.max_cq) == 4 && UInt32(littleEndian: attrs.max_pd) == 4)
        #expect(UInt32(littleEndian: attrs.max_mr) == 4 && UInt32(littleEndian: attrs.max_srq) == 2 && UInt32(littleEndian: attrs.max_ah) == 2)
        #expect(UInt32(littleEndian: d.config.max_qp) == 4, "config space and QUERY_DEVICE disagree")
        let ctx = try d.createContext()

        var pds = try (0..<4).map { _ in try ctx.allocPD() }
        expectStatus(.noResources, "5th PD") { _ = try ctx.allocPD() }
        try pds.removeLast().dealloc()
        pds.append(try ctx.allocPD())
        let pd = pds[0]

        var mrs = try (0..<4).map { _ in try pd.registerMR(length: 4096) }
        expectStatus(.noResources, "5th MR") { _ = try pd.registerMR(length: 4096) }
        try mrs.removeLast().deregister()
        mrs.append(try pd.registerMR(length: 4096))

        var cqs = try (0..<4).map { _ in try ctx.createCQ(depth: 16) }
        expectStatus(.noResources, "5th CQ") { _ = try ctx.createCQ(depth: 16) }
        try cqs.removeLast().destroy()
        cqs.append(try ctx.createCQ(depth: 16))

        var qps = try (0..<4).map { _ in try ctx.createQP(pd: pd, sendCQ: cqs[0], sq: WorkQueueCaps(depth: 8), rq: WorkQueueCaps(depth: 8)) }
        expectStatus(.noResources, "5th QP") { _ = try ctx.createQP(pd: pd, sendCQ: cqs[0], sq: WorkQueueCaps(depth: 8), rq: WorkQueueCaps(depth: 8)) }
        try qps.removeLast().destroy()
        qps.append(try ctx.createQP(pd: pd, sendCQ: cqs[0], sq: WorkQueueCaps(depth: 8), rq: WorkQueueCaps(depth: 8)))

        var srqs = try (0..<2).map { _ in try ctx.createSRQ(pd: pd, caps: WorkQueueCaps(depth: 8)) }
        expectStatus(.noResources, "3rd SRQ") { _ = try ctx.createSRQ(pd: pd, caps: WorkQueueCaps(depth: 8)) }
        try srqs.removeLast().destroy()
        srqs.append(try ctx.createSRQ(pd: pd, caps: WorkQueueCaps(depth: 8)))

        let av = AddressVector(dgid: vmGID(1), sgidIndex: 1)
        var ahs = try (0..<2).map { _ in try pd.createAH(av) }
        expectStatus(.noResources, "3rd AH") { _ = try pd.createAH(av) }
        try ahs.removeLast().destroy()
        ahs.append(try pd.createAH(av))

        // Quotas are per device: B still has all of its own.
        let bctx = try vms.b.createContext()
        let bpd = try bctx.allocPD()
        let bcq = try bctx.createCQ(depth: 16)
        let bqps = try (0..<4).map { _ in try bctx.createQP(pd: bpd, sendCQ: bcq, sq: WorkQueueCaps(depth: 8), rq: WorkQueueCaps(depth: 8)) }
        #expect(bqps.count == 4)
        // The kernel context counts against the same quotas.
        expectStatus(.noResources, "context 0 shares the device's quotas") { _ = try d.kernel.allocPD() }
        vms.expectAlive()
    }

    @Test("DESTROY_UCONTEXT frees every quota slot its objects held")
    func contextDestroyFreesQuota() throws {
        let vms = try VMs(arguments: Self.quotaArguments)
        for round in 0..<3 {
            let ctx = try vms.a.createContext()
            let pd = try ctx.allocPD()
            let cq = try ctx.createCQ(depth: 16)
            let qps = try (0..<4).map { _ in try ctx.createQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 8), rq: WorkQueueCaps(depth: 8)) }
            _ = try (0..<4).map { _ in try pd.registerMR(length: 4096) }
            _ = try (0..<2).map { _ in try ctx.createSRQ(pd: pd, caps: WorkQueueCaps(depth: 8)) }
            _ = try (0..<2).map { _ in try pd.createAH(AddressVector(dgid: vmGID(1), sgidIndex: 1)) }
            _ = try (0..<3).map { _ in try ctx.createCQ(depth: 16) }
            _ = try (0..<3).map { _ in try ctx.allocPD() }
            #expect(qps.count == 4, "round \(round)")
            try ctx.destroy()
        }
        vms.expectAlive()
    }

    @Test("handles and keys are non-zero and not reused after destroy; QPNs are 24-bit, never 0 or 1")
    func handlesNotReused() throws {
        let vms = try VMs()
        let ctx = try vms.a.createContext()
        let cq = try ctx.createCQ(depth: 16)
        var pdHandles = Set<UInt32>(), keys = Set<UInt32>(), qpns = Set<UInt32>(), cqHandles = Set<UInt32>()
        let keep = try ctx.allocPD()
        for _ in 0..<100 {
            let pd = try ctx.allocPD()
            #expect(pd.handle != 0 && pdHandles.insert(pd.handle).inserted, "PD handle \(pd.handle) reused")
            try pd.dealloc()
            let mr = try keep.registerMR(length: 4096)
            #expect(mr.lkey != 0 && keys.insert(mr.lkey).inserted, "lkey \(mr.lkey) reused")
            try mr.deregister()
            let c = try ctx.createCQ(depth: 1)
            #expect(c.handle != 0 && cqHandles.insert(c.handle).inserted, "CQ handle \(c.handle) reused")
            try c.destroy()
            let qp = try ctx.createQP(pd: keep, sendCQ: cq, sq: WorkQueueCaps(depth: 1), rq: WorkQueueCaps(depth: 1))
            #expect(qp.qpn > 1 && qp.qpn < 1 << 24 && qpns.insert(qp.qpn).inserted, "QPN \(qp.qpn) reused or out of range")
            try qp.destroy()
        }
        vms.expectAlive()
    }

    @Test("three devices on one daemon: traffic is routed by GID to the right device and QP")
    func routingByGID() throws {
        let vms = try VMs(count: 3)
        let hub = vms.devices[2]
        let hubA = try Endpoint(hub), hubB = try Endpoint(hub)
        let a = try Endpoint(vms.devices[0]), b = try Endpoint(vms.devices[1])
        try QueuePair.connect(a.qp, hubA.qp)
        try QueuePair.connect(b.qp, hubB.qp)
        try hubA.postRecv(wrId: 1)
        try hubB.postRecv(wrId: 2)
        a.mr.write(pattern(64, seed: 0xa))
        b.mr.write(pattern(64, seed: 0xb))
        try a.send(wrId: 10, length: 64)
        try b.send(wrId: 20, length: 64)
        expectWC(try hubA.recvCQ.waitOne(), wrId: 1, status: .success, qpn: hubA.qp.qpn, byteLen: 64)
        expectWC(try hubB.recvCQ.waitOne(), wrId: 2, status: .success, qpn: hubB.qp.qpn, byteLen: 64)
        #expect(hubA.mr.read(64) == pattern(64, seed: 0xa) && hubB.mr.read(64) == pattern(64, seed: 0xb))
        // Loopback: a QP of the hub to another QP of the hub, through its own GID.
        let l1 = try Endpoint(hub), l2 = try Endpoint(hub)
        try QueuePair.connect(l1.qp, l2.qp)
        try l2.postRecv(wrId: 3)
        try l1.send(wrId: 30, length: 32)
        expectWC(try l2.recvCQ.waitOne(), wrId: 3, status: .success, byteLen: 32)
        // The default GID (index 0) is fe80:: + node GUID and routes as well.
        var p = RCParameters()
        p.gidIndex = 0
        let c = try Endpoint(vms.devices[0]), d = try Endpoint(vms.devices[1])
        var rtrC = c.qp.rtrAttributes(remote: d.qp, p)
        rtrC.av = AddressVector(dgid: GID.linkLocal(guid: vms.devices[1].nodeGUID), sgidIndex: 0)
        var rtrD = d.qp.rtrAttributes(remote: c.qp, p)
        rtrD.av = AddressVector(dgid: GID.linkLocal(guid: vms.devices[0].nodeGUID), sgidIndex: 0)
        try c.qp.modify(c.qp.initAttributes())
        try c.qp.modify(rtrC)
        try c.qp.modify(c.qp.rtsAttributes(p))
        try d.qp.modify(d.qp.initAttributes())
        try d.qp.modify(rtrD)
        try d.qp.modify(d.qp.rtsAttributes(p))
        try d.postRecv(wrId: 4)
        try c.send(wrId: 40, length: 16)
        expectWC(try d.recvCQ.waitOne(), wrId: 4, status: .success, byteLen: 16)
        // A GID nobody answers to: packets are dropped, the requester retries and gives up.
        let e = try unansweredRequester(vms, timeout: 8)
        try e.send(wrId: 50, length: 8)
        expectWC(try e.sendCQ.waitOne(), wrId: 50, status: .retryExcErr)
        vms.expectAlive()
    }

    @Test("a GID in two entries (RoCE v1 and v2, as Linux adds them) routes until both are deleted")
    func gidInTwoEntries() throws {
        let vms = try VMs()
        let shared = vmGID(20)
        try vms.b.addGID(index: 3, gid: shared, type: UInt32(VIRTIO_RDMA_GID_ROCE_V1))
        try vms.b.addGID(index: 4, gid: shared)
        try vms.b.delGID(index: 3)
        // The routed attempt keeps the default ACK timeout (a loaded host may take over 1 ms to
        // answer); the unrouted one gives up after one retry of about 1 ms.
        var unrouted = RCParameters()
        unrouted.timeout = 8
        unrouted.retryCount = 1
        func attempt(_ wrId: UInt64, _ p: RCParameters) throws -> VRDMATestSupport.Completion {
            let c = try Endpoint(vms.devices[0]), d = try Endpoint(vms.devices[1])
            var rtrC = c.qp.rtrAttributes(remote: d.qp, p)
            rtrC.av = AddressVector(dgid: shared, sgidIndex: 1)
            try c.qp.modify(c.qp.initAttributes())
            try c.qp.modify(rtrC)
            try c.qp.modify(c.qp.rtsAttributes(p))
            try d.qp.modify(d.qp.initAttributes())
            try d.qp.modify(d.qp.rtrAttributes(remote: c.qp, p))
            try d.qp.modify(d.qp.rtsAttributes(p))
            try d.postRecv(wrId: wrId)
            try c.send(wrId: wrId, length: 16)
            return try c.sendCQ.waitOne()
        }
        expectWC(try attempt(1, RCParameters()), wrId: 1, status: .success)
        try vms.b.delGID(index: 4)
        expectWC(try attempt(2, unrouted), wrId: 2, status: .retryExcErr)
        vms.expectAlive()
    }

    @Test("GID table: a GID another device answers to is BUSY; an all-zero GID is INVALID; DEL_GID of an empty entry succeeds")
    func gidTable() throws {
        let vms = try VMs()
        expectStatus(.busy, "B's GID added on A") { try vms.a.addGID(index: 3, gid: vmGID(1)) }
        expectStatus(.invalid, "zero GID") { try vms.a.addGID(index: 3, gid: .zero) }
        expectStatus(.invalid, "GID type 2") { try vms.a.addGID(index: 3, gid: vmGID(5), type: 2) }
        expectStatus(.ok, "DEL_GID of an empty entry") { try vms.a.delGID(index: 7) }
        // An AH or QP path on an empty source GID entry is refused.
        let pd = try vms.a.createContext().allocPD()
        expectStatus(.invalid, "AH on an empty sgid_index") { _ = try pd.createAH(AddressVector(dgid: vmGID(1), sgidIndex: 9)) }
        vms.expectAlive()
    }
}
