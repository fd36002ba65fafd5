// SPDX-License-Identifier: Apache-2.0
// A hostile guest, one test per class of the eleven QEMU pvrdma CVEs (shared/reference/prior-art.md
// §1.3), against docs/virtio-rdma.md §8-§16: every count, size, index, address and handle the
// guest controls is checked, bad commands get the status the spec names and change nothing, bad
// WQEs and indices fail only their own QP, and the daemon stays alive and answering QUERY_DEVICE.
import CVRDMAABI
import Glibc
import Testing
import VRDMAConformance
import VRDMATestSupport
import VhostUser

/// A send WQE header as raw bytes (fields the SendWR API would not let a driver get wrong).
func rawSendWQE(wrId: UInt64, opcode: UInt8, flags: SendFlags = .signaled, numSGE: UInt32 = 0, inlineLength: UInt32 = 0,
                remoteQPN: UInt32 = 0, ah: UInt32 = 0) -> [UInt8] {
    var w = virtio_rdma_send_wqe()
    w.wr_id = wrId.littleEndian
    w.opcode = opcode
    w.send_flags = flags.rawValue.littleEndian
    w.num_sge = numSGE.littleEndian
    w.inline_length = inlineLength.littleEndian
    w.remote_qpn = remoteQPN.littleEndian
    w.ah = ah.littleEndian
    return bytes(of: w)
}

/// Writes one raw WQE at the producer's slot and publishes it.
func postRaw(_ wq: WorkQueue, _ bytes: [UInt8]) {
    wq.writeSlot(wq.producer, bytes: bytes)
    wq.advance(by: 1)
}

@Suite("Hostile guest: the pvrdma CVE classes", .serialized)
struct HostileGuestTests {
    /// An address in the hole between low RAM and the 4 GiB region.
    static let hole: UInt64 = 0x8000_0000

    @Test("CVE-2018-20124 class: num_sge beyond max_sge, in create caps and in WQEs (0xffffffff included)")
    func numSGE() throws {
        let vms = try VMs()
        let maxSGE = UInt32(littleEndian: vms.a.attributes.max_send_sge)
        let ctx = try vms.a.createContext()
        let pd = try ctx.allocPD()
        let cq = try ctx.createCQ(depth: 64)
        expectStatus(.invalid, "SQ max_sge beyond the device's") { _ = try ctx.createQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 4, maxSGE: maxSGE + 1)) }
        expectStatus(.invalid, "RQ max_sge beyond the device's") { _ = try ctx.createQP(pd: pd, sendCQ: cq, rq: WorkQueueCaps(depth: 4, maxSGE: maxSGE + 1)) }
        expectStatus(.invalid, "SRQ max_sge beyond the device's") { _ = try ctx.createSRQ(pd: pd, caps: WorkQueueCaps(depth: 4, maxSGE: maxSGE + 1)) }
        expectStatus(.invalid, "max_sge 0xffffffff") {
            var plan = ctx.planQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 4))
            plan.request.sq.max_sge = UInt32.max.littleEndian
            _ = try ctx.createQP(plan)
        }

        // WQEs: the SQ allows 1 SGE, its 256-byte slots have room for 12.
        for (name, override) in [("4 SGEs", UInt32?.none), ("num_sge 0xffffffff", UInt32.max)] {
            let a = try Endpoint(vms.a, sq: WorkQueueCaps(depth: 16, maxSGE: 1, wqeShift: 8))
            let b = try Endpoint(vms.b)
            try QueuePair.connect(a.qp, b.qp)
            try b.postRecv(wrId: 1)
            var wr = SendWR(wrId: 9, opcode: .send, sges: (0..<4).map { a.mr.sge(offset: $0 * 16, length: 16) })
            wr.numSGEOverride = override
            try a.qp.postSend(wr)
            expectWC(try a.sendCQ.waitOne(), wrId: 9, status: .locQPOpErr, qpn: a.qp.qpn)
            #expect(waitForState(a.qp, .error) == .error, "\(name)")
            #expect(b.recvCQ.drain(waitingMilliseconds: 20).isEmpty, "\(name): something was sent")
        }
        // A receive WQE with num_sge 0xffffffff: responder LOC_QP_OP_ERR, requester REM_OP_ERR.
        let a = try Endpoint(vms.a)
        let b = try Endpoint(vms.b, rq: WorkQueueCaps(depth: 16, maxSGE: 1))
        try QueuePair.connect(a.qp, b.qp)
        var r = RecvWR(wrId: 2, sges: [b.mr.sge(offset: 0, length: 64)])
        r.numSGEOverride = UInt32.max
        try b.qp.postRecv(r)
        try a.send(wrId: 3, length: 16)
        expectWC(try a.sendCQ.waitOne(), wrId: 3, status: .remOpErr)
        expectWC(try b.recvCQ.waitOne(), wrId: 2, status: .locQPOpErr)
        // INLINE with inline_length beyond max_inline (0xffffffff), INLINE with SGEs, and an
        // undefined opcode: LOC_QP_OP_ERR (§15.7).
        let cases: [(String, [UInt8])] = [
            ("inline_length 0xffffffff", rawSendWQE(wrId: 4, opcode: UInt8(VIRTIO_RDMA_WR_SEND), flags: [.signaled, .inline], inlineLength: .max)),
            ("INLINE with num_sge 1", rawSendWQE(wrId: 4, opcode: UInt8(VIRTIO_RDMA_WR_SEND), flags: [.signaled, .inline], numSGE: 1, inlineLength: 8)),
            ("opcode 0x7f", rawSendWQE(wrId: 4, opcode: 0x7f)),
            ("opcode 0xff", rawSendWQE(wrId: 4, opcode: 0xff)),
        ]
        for (name, wqe) in cases {
            let a = try Endpoint(vms.a)
            let b = try Endpoint(vms.b)
            try QueuePair.connect(a.qp, b.qp)
            try b.postRecv(wrId: 1)
            postRaw(a.qp.sq, wqe)
            let wc = try? a.sendCQ.waitOne(timeoutMilliseconds: 1000)
            #expect(wc?.wrId == 4 && wc?.status == .locQPOpErr, "\(name): \(String(describing: wc))")
            #expect(waitForState(a.qp, .error) == .error, "\(name)")
        }
        // UD: remote_qpn beyond 24 bits, and an AH that does not exist.
        let u = try Endpoint(vms.a, type: .ud)
        try u.qp.bringUpUD()
        let ah = try u.pd.createAH(AddressVector(dgid: vmGID(1), sgidIndex: 1))
        try u.qp.postSend(SendWR(wrId: 5, opcode: .send, sges: [u.mr.sge(offset: 0, length: 8)], ah: ah.handle, remoteQPN: 1 << 24))
        let wc5 = try? u.sendCQ.waitOne(timeoutMilliseconds: 1000)
        #expect(wc5?.wrId == 5 && wc5?.status == .locQPOpErr, "UD remote_qpn 2^24: \(String(describing: wc5))")
        let u2 = try Endpoint(vms.a, type: .ud)
        try u2.qp.bringUpUD()
        try u2.qp.postSend(SendWR(wrId: 6, opcode: .send, sges: [u2.mr.sge(offset: 0, length: 8)], ah: 0xdead, remoteQPN: 2))
        let wc6 = try? u2.sendCQ.waitOne(timeoutMilliseconds: 1000)
        #expect(wc6?.wrId == 6 && wc6?.status == .locQPOpErr, "UD with an unknown AH: \(String(describing: wc6))")
        // An AH of another PD.
        let u3 = try Endpoint(vms.a, type: .ud)
        try u3.qp.bringUpUD()
        try u3.qp.postSend(SendWR(wrId: 7, opcode: .send, sges: [u3.mr.sge(offset: 0, length: 8)], ah: ah.handle, remoteQPN: 2))
        let wc7 = try? u3.sendCQ.waitOne(timeoutMilliseconds: 1000)
        #expect(wc7?.wrId == 7 && wc7?.status == .locQPOpErr, "UD with another PD's AH: \(String(describing: wc7))")
        vms.expectAlive()
    }

    @Test("CVE-2018-20125 / CVE-2021-3607 class: zero, huge, overflowing and mismatched counts and sizes")
    func countsAndSizes() throws {
        let vms = try VMs()
        let d = vms.a
        let ctx = try d.createContext()
        let pd = try ctx.allocPD()
        let cq = try ctx.createCQ(depth: 64)
        let maxCQE = UInt32(littleEndian: d.attributes.max_cqe)
        let maxWR = UInt32(littleEndian: d.attributes.max_qp_wr)
        let maxInline = UInt32(littleEndian: d.attributes.max_inline_data)
        func cqCase(_ name: String, _ edit: (inout CQPlan) -> Void) {
            var plan = ctx.planCQ(depth: 64)
            edit(&plan)
            expectStatus(.invalid, "CREATE_CQ \(name)") { _ = try ctx.createCQ(plan) }
        }
        cqCase("depth 0") { $0.request.depth = 0 }
        cqCase("depth 3") { $0.request.depth = 3 }
        cqCase("depth 2 * max_cqe") { $0.request.depth = (maxCQE * 2).littleEndian }
        cqCase("depth 2^31") { $0.request.depth = UInt32(1 << 31).littleEndian }
        cqCase("depth 2^32-1") { $0.request.depth = UInt32.max }
        cqCase("npages 0") { $0.request.ring.npages = 0 }
        cqCase("npages 0xffffffff") { $0.request.ring.npages = UInt32.max }
        cqCase("npages 2 for one page of CQEs") { $0.request.ring.npages = UInt32(2).littleEndian }
        cqCase("unknown page-list flag") { $0.request.ring.flags = UInt32(2).littleEndian }
        expectStatus(.invalid, "RESIZE_CQ to depth 2^31") {
            var r = virtio_rdma_cmd_resize_cq()
            let plan = ctx.planCQ(depth: 64)
            r.cq_handle = cq.handle.littleEndian
            r.depth = UInt32(1 << 31).littleEndian
            r.doorbell_gpa = plan.doorbell.gpa.littleEndian
            r.ring = plan.request.ring
            try d.execute(.resizeCQ, request: bytes(of: r), responseSize: 8)
        }

        func qpCase(_ name: String, sq: WorkQueueCaps = WorkQueueCaps(depth: 16), rq: WorkQueueCaps = WorkQueueCaps(depth: 16),
                    _ edit: (inout QPPlan) -> Void) {
            var plan = ctx.planQP(pd: pd, sendCQ: cq, sq: sq, rq: rq)
            edit(&plan)
            expectStatus(.invalid, "CREATE_QP \(name)") { _ = try ctx.createQP(plan) }
        }
        qpCase("SQ depth 0") { $0.request.sq.depth = 0 }
        qpCase("SQ depth 2^31 with wqe_shift 12 (depth << shift wraps)") {
            $0.request.sq.depth = UInt32(1 << 31).littleEndian
            $0.request.sq.wqe_shift = UInt32(12).littleEndian
        }
        qpCase("SQ depth beyond max_qp_wr") { $0.request.sq.depth = (maxWR * 2).littleEndian }
        qpCase("RQ depth 5") { $0.request.rq.depth = UInt32(5).littleEndian }
        qpCase("wqe_shift 5") { $0.request.sq.wqe_shift = UInt32(5).littleEndian }
        qpCase("wqe_shift 13") { $0.request.sq.wqe_shift = UInt32(13).littleEndian }
        qpCase("wqe_shift 0xffffffff") { $0.request.sq.wqe_shift = UInt32.max }
        qpCase("wqe_shift 6 for 4 SGEs", sq: WorkQueueCaps(depth: 16, maxSGE: 4)) { $0.request.sq.wqe_shift = UInt32(6).littleEndian }
        qpCase("RQ wqe_shift 4") { $0.request.rq.wqe_shift = UInt32(4).littleEndian }
        qpCase("max_inline beyond the device's", sq: WorkQueueCaps(depth: 16, maxInline: maxInline + 64)) { _ in }
        qpCase("RQ max_inline non-zero") { $0.request.rq.max_inline = UInt32(16).littleEndian }
        qpCase("SQ npages 0xffffffff") { $0.request.sq.ring.npages = UInt32.max }
        qpCase("RQ npages 0") { $0.request.rq.ring.npages = 0 }
        qpCase("SQ npages one too many") { $0.request.sq.ring.npages = UInt32(2).littleEndian }
        qpCase("qp_type 3 (UC)") { $0.request.qp_type = 3 }
        qpCase("sq_sig_all 2") { $0.request.sq_sig_all = 2 }

        func mrCase(_ name: String, _ edit: (inout virtio_rdma_cmd_reg_mr) -> Void) {
            var r = virtio_rdma_cmd_reg_mr()
            r.pd_handle = pd.handle.littleEndian
            r.access = Access.localWrite.rawValue.littleEndian
            r.iova = UInt64(0x10_0000).littleEndian
            r.length = UInt64(4096).littleEndian
            r.pages = d.writePageList(d.allocatePages(1))
            edit(&r)
            expectStatus(.invalid, "REG_MR \(name)") { _ = try pd.registerMR(r) }
        }
        mrCase("length 0") { $0.length = 0; $0.pages.npages = 0 }
        mrCase("length beyond max_mr_size") { $0.length = (UInt64(littleEndian: d.attributes.max_mr_size) + 1).littleEndian }
        mrCase("iova + length wraps") {
            $0.iova = UInt64(0xffff_ffff_ffff_f000).littleEndian
            $0.length = UInt64(0x2000).littleEndian
            $0.pages = d.writePageList(d.allocatePages(2))
        }
        mrCase("npages 0xffffffff") { $0.pages.npages = UInt32.max }
        mrCase("unknown flag") { $0.flags = UInt32(1 << 5).littleEndian }
        mrCase("reserved non-zero") { $0.reserved = 1 }
        let kpd = try d.kernel.allocPD()
        expectStatus(.invalid, "DMA MR with a length") {
            var r = virtio_rdma_cmd_reg_mr()
            r.pd_handle = kpd.handle.littleEndian
            r.flags = UInt32(VIRTIO_RDMA_MR_DMA).littleEndian
            r.length = UInt64(4096).littleEndian
            _ = try kpd.registerMR(r)
        }

        func srqCase(_ name: String, limit: UInt32 = 0, _ edit: (inout SRQPlan) -> Void) {
            var plan = ctx.planSRQ(pd: pd, caps: WorkQueueCaps(depth: 16), limit: limit)
            edit(&plan)
            expectStatus(.invalid, "CREATE_SRQ \(name)") { _ = try ctx.createSRQ(plan) }
        }
        srqCase("depth 0") { $0.request.rq.depth = 0 }
        srqCase("max_inline non-zero") { $0.request.rq.max_inline = UInt32(8).littleEndian }
        srqCase("srq_limit beyond depth", limit: 17) { _ in }
        srqCase("npages 0xffffffff") { $0.request.rq.ring.npages = UInt32.max }
        let srq = try ctx.createSRQ(pd: pd, caps: WorkQueueCaps(depth: 16))
        expectStatus(.invalid, "MODIFY_SRQ limit beyond depth") { try srq.setLimit(17) }
        expectStatus(.invalid, "MODIFY_SRQ undefined mask bit") { try srq.modify(mask: 1 << 7) }
        // Nothing above was created: the next good creates work and count from where they were.
        _ = try ctx.createQP(pd: pd, sendCQ: cq)
        vms.expectAlive()
    }

    @Test("CVE-2018-20125 class: an MR larger than guest RAM, its pages repeated through an indirect list, is refused before the list is read")
    func mrLargerThanRAM() throws {
        let vms = try VMs()
        let d = vms.a
        let pd = try d.createContext().allocPD()
        // One valid page, a second-level page naming it 512 times, and a first level naming that
        // page 4096 times: 2^21 "pages" (8 GiB) from 36 KiB of a 52 MiB guest.
        let page = d.allocatePages(1)[0]
        let second = d.allocatePages(1)[0]
        for i in 0..<512 { _ = d.frontend.memory.store(page, at: second + UInt64(i * 8)) }
        let first = d.frontend.allocate(4096 * 8, alignment: 4096)
        for i in 0..<4096 { _ = d.frontend.memory.store(second, at: first + UInt64(i * 8)) }
        var r = virtio_rdma_cmd_reg_mr()
        r.pd_handle = pd.handle.littleEndian
        r.access = Access.localWrite.rawValue.littleEndian
        r.iova = UInt64(0x1000_0000).littleEndian
        r.length = UInt64(1 << 33).littleEndian
        r.pages.gpa = first.littleEndian
        r.pages.npages = UInt32(1 << 21).littleEndian
        r.pages.flags = UInt32(VIRTIO_RDMA_PL_INDIRECT).littleEndian
        expectStatus(.invalid, "REG_MR of 8 GiB in a 52 MiB guest") { _ = try pd.registerMR(r) }
        vms.expectAlive()
    }

    @Test("page lists and doorbell records outside guest RAM (FAULT) or misaligned (INVALID)")
    func addresses() throws {
        let vms = try VMs()
        let d = vms.a
        let ctx = try d.createContext()
        let pd = try ctx.allocPD()
        let cq = try ctx.createCQ(depth: 64)
        let lowEnd = d.frontend.regions[0].size
        let high = d.frontend.regions[1]
        func mr(_ name: String, _ expected: CommandStatus, _ edit: (inout virtio_rdma_cmd_reg_mr) -> Void) {
            var r = virtio_rdma_cmd_reg_mr()
            r.pd_handle = pd.handle.littleEndian
            r.access = Access.localWrite.rawValue.littleEndian
            r.iova = UInt64(0x20_0000).littleEndian
            r.length = UInt64(3 * 4096).littleEndian
            r.pages = d.writePageList(d.allocatePages(3))
            edit(&r)
            expectStatus(expected, "REG_MR \(name)") { _ = try pd.registerMR(r) }
        }
        let page = d.allocatePages(1)[0]
        mr("list in the hole below 4 GiB", .fault) { $0.pages.gpa = Self.hole.littleEndian }
        mr("list at 2^64 - 8", .fault) { $0.pages.gpa = UInt64(0xffff_ffff_ffff_fff8).littleEndian }
        mr("list straddling the end of low RAM", .fault) { $0.pages.gpa = (lowEnd - 8).littleEndian }
        mr("list straddling the end of high RAM", .fault) { $0.pages.gpa = (high.guestPhysicalAddress + high.size - 16).littleEndian }
        mr("list not 8-aligned", .invalid) { $0.pages.gpa = (UInt64(littleEndian: $0.pages.gpa) + 4).littleEndian }
        mr("entry in the hole", .fault) { $0.pages = d.writePageList([page, Self.hole, page + 0]) }
        mr("entry beyond low RAM", .fault) { $0.pages = d.writePageList([page, lowEnd, page]) }
        mr("entry beyond high RAM", .fault) { $0.pages = d.writePageList([page, high.guestPhysicalAddress + high.size, page]) }
        mr("entry at 2^64 - 4096", .fault) { $0.pages = d.writePageList([page, 0xffff_ffff_ffff_f000, page]) }
        mr("entry not page-aligned", .invalid) { $0.pages = d.writePageList([page, page + 8, page]) }
        mr("indirect: first-level entry in the hole", .fault) {
            var list = d.writePageList([page, page, page], indirect: true)
            _ = d.frontend.memory.store(Self.hole, at: UInt64(littleEndian: list.gpa))
            list.flags = UInt32(VIRTIO_RDMA_PL_INDIRECT).littleEndian
            $0.pages = list
        }
        mr("indirect: first-level entry not page-aligned", .invalid) {
            let list = d.writePageList([page, page, page], indirect: true)
            let first = d.frontend.memory.load(UInt64.self, at: UInt64(littleEndian: list.gpa))!
            _ = d.frontend.memory.store(first + 8, at: UInt64(littleEndian: list.gpa))
            $0.pages = list
        }
        mr("indirect: second-level entry in the hole", .fault) { $0.pages = d.writePageList([page, Self.hole, page], indirect: true) }
        mr("indirect: second-level entry misaligned", .invalid) { $0.pages = d.writePageList([page, page + 1, page], indirect: true) }

        func cqCase(_ name: String, _ expected: CommandStatus, _ edit: (inout CQPlan) -> Void) {
            var plan = ctx.planCQ(depth: 64)
            edit(&plan)
            expectStatus(expected, "CREATE_CQ \(name)") { _ = try ctx.createCQ(plan) }
        }
        cqCase("doorbell in the hole", .fault) { $0.request.doorbell_gpa = Self.hole.littleEndian }
        cqCase("doorbell beyond low RAM", .fault) { $0.request.doorbell_gpa = (lowEnd - 64).littleEndian }
        cqCase("doorbell not 64-aligned", .invalid) { $0.request.doorbell_gpa = ($0.doorbell.gpa + 8).littleEndian }
        cqCase("doorbell crossing a page", .invalid) { $0.request.doorbell_gpa = (page + 4096 - 64).littleEndian }
        cqCase("ring page in the hole", .fault) { $0.request.ring = d.writePageList([Self.hole]) }
        cqCase("ring page misaligned", .invalid) { $0.request.ring = d.writePageList([page + 64]) }
        func qpCase(_ name: String, _ expected: CommandStatus, _ edit: (inout QPPlan) -> Void) {
            var plan = ctx.planQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 16), rq: WorkQueueCaps(depth: 16))
            edit(&plan)
            expectStatus(expected, "CREATE_QP \(name)") { _ = try ctx.createQP(plan) }
        }
        qpCase("SQ doorbell in the hole", .fault) { $0.request.sq.doorbell_gpa = Self.hole.littleEndian }
        qpCase("RQ doorbell misaligned", .invalid) { $0.request.rq.doorbell_gpa = ($0.rq!.doorbell.gpa + 32).littleEndian }
        qpCase("SQ ring page at 2^64 - 4096", .fault) { $0.request.sq.ring = d.writePageList([0xffff_ffff_ffff_f000]) }
        qpCase("RQ ring list in the hole", .fault) { $0.request.rq.ring.gpa = Self.hole.littleEndian }
        expectStatus(.fault, "CREATE_SRQ doorbell beyond RAM") {
            var plan = ctx.planSRQ(pd: pd, caps: WorkQueueCaps(depth: 16))
            plan.request.rq.doorbell_gpa = UInt64(0xffff_ffff_ffff_ff80).littleEndian
            _ = try ctx.createSRQ(plan)
        }
        vms.expectAlive()
    }

    @Test("CVE-2021-3582 class: REG_MR whose page count does not match iova and length")
    func pageCountMismatch() throws {
        let vms = try VMs()
        let d = vms.a
        let pd = try d.createContext().allocPD()
        func reg(iova: UInt64, length: UInt64, npages: Int) -> CommandStatus {
            var r = virtio_rdma_cmd_reg_mr()
            r.pd_handle = pd.handle.littleEndian
            r.access = Access.localWrite.rawValue.littleEndian
            r.iova = iova.littleEndian
            r.length = length.littleEndian
            r.pages = d.writePageList(d.allocatePages(npages))
            return (try? statusOf { _ = try pd.registerMR(r) }) ?? .provider
        }
        let cases: [(UInt64, UInt64, Int, CommandStatus)] = [
            (0x40_0000, 8192, 2, .ok), (0x40_0000, 8192, 1, .invalid), (0x40_0000, 8192, 3, .invalid),
            (0x40_0064, 8192, 3, .ok), (0x40_0064, 8192, 2, .invalid), (0x40_0064, 8192, 4, .invalid),
            (0x40_0fff, 2, 2, .ok), (0x40_0fff, 2, 1, .invalid), (0x40_0fff, 1, 1, .ok),
            (0x40_0000, 1 << 20, 255, .invalid), (0x40_0000, 1 << 20, 257, .invalid),
        ]
        for (iova, length, npages, expected) in cases {
            let got = reg(iova: iova, length: length, npages: npages)
            #expect(got == expected, "iova 0x\(String(iova, radix: 16)) length \(length) npages \(npages): \(got), expected \(expected)")
        }
        vms.expectAlive()
    }

    @Test("CVE-2018-20216 class: indices beyond depth, racing indices, CQ depth 1, consumer ahead: no loops")
    func ringIndices() throws {
        let vms = try VMs()
        // SQ producer far ahead of the consumer: QP ERR with QP_FATAL, nothing taken.
        do {
            let (a, b) = try connectedPair(vms)
            a.qp.sq.setDriverIndex(a.qp.sq.depth + 5, forceKick: true)
            #expect(waitForState(a.qp, .error) == .error)
            let ev = try vms.a.waitForEvent(.qpFatal, handle: a.qp.qpn)
            #expect(ev?.detail == UInt32(WCStatus.locQPOpErr.rawValue), "QP_FATAL: \(String(describing: ev))")
            #expect(a.qp.sq.doorbell.deviceIndex == 0, "the device took WQEs from an SQ whose index is out of range")
            #expect(stateOf(b.qp) == .rts)
        }
        // RQ producer behind the consumer (2^32 - 16 ahead): the responder's QP fails when a message
        // arrives; the requester gets an error completion, not success.
        do {
            let (a, b) = try connectedPair(vms)
            b.qp.rq!.setDriverIndex(0xffff_fff0, forceKick: true)
            try a.send(wrId: 1, length: 8)
            let wc = try a.sendCQ.waitOne()
            #expect(wc.status != .success, "\(wc)")
            #expect(waitForState(b.qp, .error) == .error)
            #expect(try vms.b.waitForEvent(.qpFatal, handle: b.qp.qpn) != nil)
        }
        // SRQ producer out of range: the SRQ counts as empty (RNR), no QP fails on the SRQ's side.
        do {
            let bctx = try vms.b.createContext()
            let bpd = try bctx.allocPD()
            let srq = try bctx.createSRQ(pd: bpd, caps: WorkQueueCaps(depth: 16))
            let b = try Endpoint(vms.b, srq: srq, ctx: bctx, pd: bpd)
            let a = try Endpoint(vms.a)
            var p = RCParameters()
            p.rnrRetry = 1
            try QueuePair.connect(a.qp, b.qp, p)
            srq.wq.setDriverIndex(1000, forceKick: true)
            try a.send(wrId: 2, length: 8)
            expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .rnrRetryExcErr)
            #expect(stateOf(b.qp) == .rts)
        }
        // Racing: the producer index jumps around while the device works.
        do {
            let (a, b) = try connectedPair(vms)
            var seed: UInt32 = 12345
            let deadline = monotonicMilliseconds() + 150
            while monotonicMilliseconds() < deadline {
                seed = seed &* 1_103_515_245 &+ 12345
                let v: UInt32 = seed % 3 == 0 ? seed : seed % (2 * a.qp.sq.depth)
                a.qp.sq.setDriverIndex(v, forceKick: seed % 2 == 0)
                _ = a.sendCQ.poll()
            }
            _ = a.sendCQ.drain(waitingMilliseconds: 20)
            #expect(!a.sendCQ.sawIndexBeyondDepth, "the device published more CQEs than the CQ holds")
            let s = stateOf(a.qp)
            #expect(s == .error || s == .rts, "\(String(describing: s))")
            #expect(stateOf(b.qp) != nil)
        }
        // A CQ of depth 1 gets three flushes: one lands, the CQ overflows, no loop.
        do {
            let a = try Endpoint(vms.a, cqDepth: 1)
            try a.qp.modify(a.qp.initAttributes())
            for i in 0..<3 { try a.postRecv(wrId: UInt64(i)) }
            try a.qp.modify(QPAttributes(state: .error))
            let ev = try vms.a.waitForEvent(.cqErr, handle: a.recvCQ.handle)
            #expect(ev != nil, "no CQ_ERR for CQ \(a.recvCQ.handle); events: \(vms.a.pendingEvents)")
            #expect(ev == nil || ev?.detail == UInt32(VIRTIO_RDMA_CQ_OVERFLOW), "CQ_ERR detail must be cq_status: \(String(describing: ev))")
            #expect(a.recvCQ.overflowed)
            #expect(a.recvCQ.poll().map(\.wrId) == [0])
        }
        // The consumer index ahead of the producer: device_index - driver_index > depth is an
        // overflow (§16): the next CQE is dropped and the CQ is in error.
        do {
            let (a, b) = try connectedPair(vms)
            b.recvCQ.setDriverIndex(1000)
            try b.postRecv(wrId: 1)
            try a.send(wrId: 1, length: 8)
            _ = try a.sendCQ.waitOne()
            let ev = try vms.b.waitForEvent(.cqErr, handle: b.recvCQ.handle)
            #expect(ev != nil, "no CQ_ERR for CQ \(b.recvCQ.handle); events: \(vms.b.pendingEvents)")
            #expect(b.recvCQ.overflowed)
            #expect(b.recvCQ.doorbell.deviceIndex == 0)
        }
        vms.expectAlive()
    }

    @Test("CVE-2022-1050 class: commands before any set-up, unknown and double-destroyed handles, short requests")
    func commandsBeforeSetup() throws {
        let vms = try VMs()
        let d = vms.b  // nothing created on it yet (besides its GID)
        func handle(_ op: Opcode, _ h: UInt32, responseSize: Int = 0) -> CommandStatus {
            var r = virtio_rdma_cmd_handle()
            r.handle = h.littleEndian
            return (try? d.status(of: op, request: bytes(of: r), responseSize: responseSize)) ?? .provider
        }
        let named: [(Opcode, Int)] = [(.deallocPD, 0), (.deregMR, 0), (.destroyCQ, 0), (.queryQP, 160), (.destroyQP, 0),
                                      (.querySRQ, 24), (.destroySRQ, 0), (.destroyAH, 0)]
        for (op, size) in named {
            for h in [UInt32(0), 1, 2, 0xffff_ffff] {
                #expect(handle(op, h, responseSize: size) == .badHandle, "\(op) of never-created handle \(h)")
            }
        }
        #expect(handle(.destroyUContext, 1) == .badHandle)
        #expect(handle(.destroyUContext, 0) == .invalid)
        expectStatus(.badHandle, "MODIFY_QP of QPN 2") { try d.modifyQP(qpn: 2, QPAttributes(state: .initialized)) }
        expectStatus(.badHandle, "MODIFY_SRQ of handle 1") {
            var a = virtio_rdma_srq_attr()
            a.srq_handle = 1
            a.attr_mask = UInt32(VIRTIO_RDMA_SRQ_LIMIT).littleEndian
            try d.execute(.modifySRQ, request: bytes(of: a), responseSize: 0)
        }
        expectStatus(.badHandle, "ALLOC_PD for context 77") {
            var r = virtio_rdma_cmd_alloc_pd()
            r.ctx_handle = UInt32(77).littleEndian
            try d.execute(.allocPD, request: bytes(of: r), responseSize: 8)
        }
        let ghost = d.context(handle: 77)
        expectStatus(.badHandle, "CREATE_CQ for context 77") { _ = try ghost.createCQ(depth: 16) }
        expectStatus(.badHandle, "REG_MR on PD 0") {
            var r = virtio_rdma_cmd_reg_mr()
            r.access = Access.localWrite.rawValue.littleEndian
            r.iova = 0x1000
            r.length = UInt64(4096).littleEndian
            r.pages = d.writePageList(d.allocatePages(1))
            try d.execute(.regMR, request: bytes(of: r), responseSize: 8)
        }
        expectStatus(.badHandle, "CREATE_QP with every handle zero") {
            var plan = d.kernel.planQP(pd: try d.kernel.allocPD(), sendCQ: try d.kernel.createCQ(depth: 4))
            plan.request.pd_handle = 0
            plan.request.send_cq = 0
            plan.request.recv_cq = 0
            _ = try d.kernel.createQP(plan)
        }
        expectStatus(.badHandle, "CREATE_AH on PD 0") {
            var r = virtio_rdma_cmd_create_ah()
            r.av = AddressVector(dgid: vmGID(0), sgidIndex: 1).raw
            try d.execute(.createAH, request: bytes(of: r), responseSize: 8)
        }
        expectStatus(.badHandle, "RESIZE_CQ of handle 99") {
            var r = virtio_rdma_cmd_resize_cq()
            r.cq_handle = UInt32(99).littleEndian
            r.depth = UInt32(16).littleEndian
            try d.execute(.resizeCQ, request: bytes(of: r), responseSize: 8)
        }

        // Requests shorter than their opcode's: INVALID (the opcodes without a body answer OK).
        let requestSizes: [Opcode: Int] = [
            .queryPort: 8, .queryPKey: 8, .addGID: 36, .delGID: 36, .destroyUContext: 8, .allocPD: 8, .deallocPD: 8, .regMR: 48,
            .deregMR: 8, .createCQ: 32, .resizeCQ: 32, .destroyCQ: 8, .createQP: 104, .modifyQP: 160, .queryQP: 8, .destroyQP: 8,
            .createSRQ: 56, .modifySRQ: 24, .querySRQ: 8, .destroySRQ: 8, .createAH: 48, .destroyAH: 8,
        ]
        for op in Opcode.all {
            guard let size = requestSizes[op] else {
                #expect(try d.status(of: op, request: [], responseSize: 136) == .ok, "\(op) takes no request")
                continue
            }
            #expect(try d.status(of: op, request: [], responseSize: 200) == .invalid, "\(op) without its request")
            #expect(try d.status(of: op, request: [UInt8](repeating: 0, count: size - 1), responseSize: 200) == .invalid,
                    "\(op) one byte short")
        }
        // Non-zero reserved fields in the header and in a request (§9 rule 5).
        let pdRequest = bytes(of: virtio_rdma_cmd_alloc_pd())
        #expect(CommandStatus(rawValue: try d.rawCommand(Opcode.allocPD.rawValue, request: pdRequest, responseSize: 8, headerReserved: 1).status)
                == .invalid, "cmd_hdr.reserved = 1")
        var reserved = virtio_rdma_cmd_alloc_pd()
        reserved.reserved = 1
        #expect(try d.status(of: .allocPD, request: bytes(of: reserved), responseSize: 8) == .invalid, "alloc_pd.reserved = 1")
        // Double destroy of every kind of object.
        let ctx = try d.createContext()
        let pd = try ctx.allocPD()
        let cq = try ctx.createCQ(depth: 4)
        let qp = try ctx.createQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 4), rq: WorkQueueCaps(depth: 4))
        let srq = try ctx.createSRQ(pd: pd, caps: WorkQueueCaps(depth: 4))
        let mr = try pd.registerMR(length: 4096)
        let ah = try pd.createAH(AddressVector(dgid: vmGID(0), sgidIndex: 1))
        try qp.destroy(); expectStatus(.badHandle, "second DESTROY_QP") { try qp.destroy() }
        try srq.destroy(); expectStatus(.badHandle, "second DESTROY_SRQ") { try srq.destroy() }
        try cq.destroy(); expectStatus(.badHandle, "second DESTROY_CQ") { try cq.destroy() }
        try mr.deregister(); expectStatus(.badHandle, "second DEREG_MR") { try mr.deregister() }
        try ah.destroy(); expectStatus(.badHandle, "second DESTROY_AH") { try ah.destroy() }
        try pd.dealloc(); expectStatus(.badHandle, "second DEALLOC_PD") { try pd.dealloc() }
        try ctx.destroy(); expectStatus(.badHandle, "second DESTROY_UCONTEXT") { try ctx.destroy() }
        vms.expectAlive()
    }

    @Test("CVE-2018-20126 / CVE-2021-3608 class: creates that fail midway leave no leak: full quotas afterwards")
    func errorPathsLeaveNothing() throws {
        let vms = try VMs(arguments: ResourceTests.quotaArguments)
        let d = vms.a
        let ctx = try d.createContext()
        let pd = try ctx.allocPD()
        let cq = try ctx.createCQ(depth: 16)
        for _ in 0..<10 {
            expectStatus(.fault, "CREATE_QP with a bad RQ ring page") {
                var plan = ctx.planQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 16), rq: WorkQueueCaps(depth: 128))  // 2 pages
                plan.request.rq.ring = d.writePageList([d.allocatePages(1)[0], Self.hole])
                _ = try ctx.createQP(plan)
            }
            expectStatus(.badHandle, "CREATE_QP with a bad recv CQ") {
                var plan = ctx.planQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 16), rq: WorkQueueCaps(depth: 16))
                plan.request.recv_cq = 0xbad
                _ = try ctx.createQP(plan)
            }
            expectStatus(.badHandle, "CREATE_QP with a bad SRQ") {
                var plan = ctx.planQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 16), rq: WorkQueueCaps(depth: 16))
                plan.request.srq_handle = 0xbad
                plan.request.rq = virtio_rdma_wq_desc()
                _ = try ctx.createQP(plan)
            }
            expectStatus(.fault, "CREATE_CQ with a bad second ring page") {
                var plan = ctx.planCQ(depth: 128)
                plan.request.ring = d.writePageList([d.allocatePages(1)[0], Self.hole])
                _ = try ctx.createCQ(plan)
            }
            expectStatus(.fault, "REG_MR with a bad last page") {
                var r = virtio_rdma_cmd_reg_mr()
                r.pd_handle = pd.handle.littleEndian
                r.access = Access.localWrite.rawValue.littleEndian
                r.iova = UInt64(0x1000).littleEndian
                r.length = UInt64(3 * 4096).littleEndian
                r.pages = d.writePageList(d.allocatePages(2) + [Self.hole])
                _ = try pd.registerMR(r)
            }
            expectStatus(.fault, "CREATE_SRQ with a bad doorbell") {
                var plan = ctx.planSRQ(pd: pd, caps: WorkQueueCaps(depth: 16))
                plan.request.rq.doorbell_gpa = Self.hole.littleEndian
                _ = try ctx.createSRQ(plan)
            }
            // No room for the response: INVALID, and nothing is created.
            var r = virtio_rdma_cmd_alloc_pd()
            r.ctx_handle = ctx.handle.littleEndian
            #expect(try d.status(of: .allocPD, request: bytes(of: r), responseSize: 4) == .invalid)
            #expect(try d.status(of: .createUContext, request: [], responseSize: 0) == .invalid)
        }
        // Every quota is still whole.
        _ = try (0..<3).map { _ in try ctx.allocPD() }
        expectStatus(.noResources, "5th PD") { _ = try ctx.allocPD() }
        let cqs = try (0..<3).map { _ in try ctx.createCQ(depth: 16) }
        expectStatus(.noResources, "5th CQ") { _ = try ctx.createCQ(depth: 16) }
        _ = try (0..<4).map { _ in try ctx.createQP(pd: pd, sendCQ: cqs[0], sq: WorkQueueCaps(depth: 8), rq: WorkQueueCaps(depth: 8)) }
        _ = try (0..<4).map { _ in try pd.registerMR(length: 4096) }
        _ = try (0..<2).map { _ in try ctx.createSRQ(pd: pd, caps: WorkQueueCaps(depth: 8)) }
        vms.expectAlive()
    }

    @Test("CVE-2018-20191 class: requests nothing handles: stray doorbell kicks, buffers on doorbell queues, unknown opcodes, config writes, short event buffers")
    func unhandledRequests() throws {
        let vms = try VMs()
        let d = vms.a
        for _ in 0..<100 {
            for q in 2..<d.driver.queueCount { d.kickDoorbellQueue(q) }
            d.eventQueue?.kick.signal()
        }
        for op: UInt32 in [0, 25, 26, 1000, 0x8000_0000, 0xffff_ffff] {
            #expect(try d.rawCommand(op, request: [UInt8](repeating: 0, count: 64), responseSize: 64).status == CommandStatus.unsupported.rawValue,
                    "opcode \(op)")
        }
        // Buffers made available on a doorbell queue (the driver must not): no harm.
        let doorbell = d.frontend.queues[2]!
        doorbell.ring.add([SplitRingDriver.Buffer(address: d.frontend.allocate(64), length: 64, writable: true)])
        doorbell.kick.signal()
        // Config space writes are ignored. QEMU sends SET_CONFIG with NEED_REPLY when REPLY_ACK is
        // negotiated; the ack may say no, but the config stays and the session goes on.
        let before = try d.frontend.getConfig(size: 128)
        _ = try? d.frontend.request(.setConfig, payload: ConfigAccess(offset: 0, size: 8, flags: 0, payload: [UInt8](repeating: 0xff, count: 8)).encoded,
                                    needReply: true)
        #expect(try d.frontend.getConfig(size: 128) == before, "config space changed by a driver write")
        #expect(vms.daemonCPUWhileIdle() < 100, "the daemon keeps spinning after stray kicks and buffers")
        // An event buffer too short for an event is used with length 0 (§13). (A device of its
        // own: the daemon serves one front-end per socket at a time.)
        let lone = try DaemonProcess(devices: 1)
        let e = try VerbsDevice(socketPath: lone.socketPaths[0], eventBuffers: 0, roceGID: vmGID(0))
        let eq = e.eventQueue!
        eq.ring.setUsedEvent(eq.ring.usedIndex)
        eq.ring.add([SplitRingDriver.Buffer(address: e.frontend.allocate(64), length: 8, writable: true)])
        eq.kickIfNeeded()
        let ep = try Endpoint(e)
        try ep.qp.modify(ep.qp.initAttributes())
        ep.recvCQ.arm(.next)
        try ep.postRecv(wrId: 1)
        try ep.qp.modify(QPAttributes(state: .error))
        _ = try ep.recvCQ.waitOne()
        var used: [(id: UInt16, length: UInt32)] = []
        let deadline = monotonicMilliseconds() + 2000
        while used.isEmpty && monotonicMilliseconds() < deadline {
            used = eq.ring.takeUsed()
            usleep(200)
        }
        #expect(used.count == 1 && used.first?.length == 0, "a short event buffer: \(used)")
        #expect(try e.queryDevice().max_qp != 0)
        #expect(lone.terminate() == 0)
        vms.expectAlive()
    }

    @Test("CVE-2023-1544 class: page-list entry counts larger or smaller than the ring needs, and broken indirect lists")
    func ringPageTables() throws {
        let vms = try VMs()
        let d = vms.a
        let ctx = try d.createContext()
        let pd = try ctx.allocPD()
        let cq = try ctx.createCQ(depth: 64)
        expectStatus(.invalid, "CQ of depth 4096 (64 pages) described by 63") {
            var plan = ctx.planCQ(depth: 4096)
            plan.request.ring.npages = UInt32(63).littleEndian
            _ = try ctx.createCQ(plan)
        }
        expectStatus(.invalid, "CQ of depth 64 described by 1000 pages") {
            var plan = ctx.planCQ(depth: 64)
            plan.request.ring = d.writePageList(d.allocatePages(1000))
            _ = try ctx.createCQ(plan)
        }
        expectStatus(.invalid, "SQ of 128 x 4096 bytes described by 129 pages") {
            var plan = ctx.planQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 128, wqeShift: 12))
            plan.request.sq.ring = d.writePageList(d.allocatePages(129))
            _ = try ctx.createQP(plan)
        }
        // Indirect lists: a 600-page MR needs two first-level entries; the second points outside RAM.
        expectStatus(.fault, "indirect MR list with a first-level entry outside RAM") {
            var r = virtio_rdma_cmd_reg_mr()
            r.pd_handle = pd.handle.littleEndian
            r.access = Access.localWrite.rawValue.littleEndian
            r.iova = UInt64(0x100_0000).littleEndian
            r.length = UInt64(600 * 4096).littleEndian
            r.pages = d.writePageList(d.allocatePages(600), indirect: true)
            _ = d.frontend.memory.store(UInt64(0xdead_0000_0000), at: UInt64(littleEndian: r.pages.gpa) + 8)
            _ = try pd.registerMR(r)
        }
        expectStatus(.invalid, "indirect list of 513 entries where the ring needs 512") {
            var plan = ctx.planQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 512, wqeShift: 12), indirect: true)
            plan.request.sq.ring = d.writePageList(d.allocatePages(513), indirect: true)
            _ = try ctx.createQP(plan)
        }
        // The same, well formed, works (and the ring pages are used as described).
        let big = try ctx.createQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 512, wqeShift: 12), indirect: true)
        #expect(big.qpn > 1)
        vms.expectAlive()
    }

    @Test("CVE-2018-20123 class: front-ends that vanish with objects and traffic alive leak nothing")
    func vanishingFrontends() throws {
        let daemon = try DaemonProcess(devices: 1, extraArguments: ["--workers", "2"] + ResourceTests.quotaArguments)
        let idle = settledDescriptorCount(daemon)
        for round in 0..<3 {
            let d = try VerbsDevice(socketPath: daemon.socketPaths[0], roceGID: vmGID(0))
            let a = try Endpoint(d), b = try Endpoint(d, ctx: a.ctx, pd: a.pd)
            try QueuePair.connect(a.qp, b.qp)
            let more = try (0..<2).map { _ in try a.anotherQP() }
            #expect(more.count == 2, "round \(round): the previous front-end's QPs are still counted")
            _ = try (0..<2).map { _ in try a.ctx.createSRQ(pd: a.pd, caps: WorkQueueCaps(depth: 8)) }
            _ = try (0..<2).map { _ in try a.pd.createAH(AddressVector(dgid: vmGID(0), sgidIndex: 1)) }
            for i in 0..<32 { try b.postRecv(wrId: UInt64(i), offset: i * 1024, length: 1024) }
            for i in 0..<32 { try a.send(wrId: UInt64(i), offset: 0, length: 1024) }
            // Gone without a destroy, with sends in flight.
        }
        #expect(daemon.isRunning, "daemon died: \(daemon.log.suffix(2000))")
        #expect(daemon.waitForDescriptorCount(idle) == idle, "descriptors leaked")
        let d = try VerbsDevice(socketPath: daemon.socketPaths[0], roceGID: vmGID(0))
        let ctx = try d.createContext()
        let pd = try ctx.allocPD()
        let cq = try ctx.createCQ(depth: 4)
        _ = try (0..<4).map { _ in try ctx.createQP(pd: pd, sendCQ: cq, sq: WorkQueueCaps(depth: 4), rq: WorkQueueCaps(depth: 4)) }
        #expect(daemon.terminate() == 0)
    }
    @Test("a requester reset while the peer copies its READs: the slots are refilled only after the copy; nothing lands in the new WQEs' buffers")
    func resetUnderCrossWorkerReader() throws {
        // Device B's responder (worker 1) copies 4 MiB READ responses into the segments of A's
        // in-flight slots, while A (worker 0) resets its QP, reconnects it and posts SENDs from
        // buffer Y into the same slots (SQ depth 4). Before the slot guards the refill rewrote
        // the segments under the reader, which went on copying B's bytes into Y (and released
        // memory-region references it was using).
        let vms = try VMs()
        let size = 4 << 20
        let a = try Endpoint(vms.a, mrSize: 4096, sq: WorkQueueCaps(depth: 4, maxSGE: 2, maxInline: 0), ctx: vms.a.kernel)
        let b = try Endpoint(vms.b, mrSize: size)
        b.mr.write(pattern(size, seed: 9))
        let x = vms.a.pages(size / GuestPages.pageSize), y = vms.a.pages(size / GuestPages.pageSize)
        let dma = try a.pd.registerDMAMR()
        func sge(_ buffer: GuestPages) -> [SGE] { [SGE(addr: buffer.gpa(at: 0), length: UInt32(size), lkey: dma.lkey)] }
        let untouched = [UInt8](repeating: 0xee, count: size)
        y.write(untouched)
        var corrupted = 0
        for round in 0..<30 {
            try a.qp.modify(QPAttributes(state: .reset))
            try b.qp.modify(QPAttributes(state: .reset))
            try QueuePair.connect(a.qp, b.qp)
            for i in 0..<4 {
                try a.qp.postSend(SendWR(wrId: UInt64(round * 8 + i), opcode: .rdmaRead, sges: sge(x), remoteAddr: b.mr.address(0),
                                         rkey: b.mr.rkey))
            }
            usleep(UInt32(round % 6) * 200)
            try a.qp.modify(QPAttributes(state: .reset))
            try a.qp.connect(to: b.qp)
            // B has no receive: the SENDs meet RNR and retry; they only have to take the slots.
            for i in 4..<8 { try a.qp.postSend(SendWR(wrId: UInt64(round * 8 + i), opcode: .send, sges: sge(y))) }
            usleep(20_000)
            if y.read(size) != untouched {
                corrupted += 1
                y.write(untouched)
            }
        }
        #expect(corrupted == 0, "READ responses landed in the buffers of later WQEs in \(corrupted) of 30 rounds")
        // The same QPs still work afterwards: a READ lands the peer's bytes.
        try a.qp.modify(QPAttributes(state: .reset))
        try b.qp.modify(QPAttributes(state: .reset))
        _ = a.sendCQ.drain(waitingMilliseconds: 20)
        x.fill(0)
        try QueuePair.connect(a.qp, b.qp)
        try a.qp.postSend(SendWR(wrId: 999, opcode: .rdmaRead, sges: sge(x), remoteAddr: b.mr.address(0), rkey: b.mr.rkey))
        expectWC(try a.sendCQ.waitOne(timeoutMilliseconds: 5000), wrId: 999, status: .success)
        #expect(x.read(size) == pattern(size, seed: 9), "the READ after the resets landed other bytes")
        vms.expectAlive()
    }
}
