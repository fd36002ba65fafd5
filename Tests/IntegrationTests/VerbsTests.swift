// SPDX-License-Identifier: Apache-2.0
// The data path between two VMs on one daemon, driven by the model guest driver exactly as a guest
// would drive it: RC SEND/RECV (with and without immediate, gather/scatter, inline), RDMA WRITE,
// WRITE_WITH_IMM and READ, atomics (also concurrent from two QPs), UD with address handles, SRQs,
// RNR retries, completion events, CQ overflow and resize, unsignaled work requests, rings that
// wrap over scattered and indirect page lists. Expectations come from abi/virtio_rdma.h and the
// device semantics notes.
import CVRDMAABI
import Glibc
import Testing
import VRDMATestSupport

@Suite("Verbs: data path between two VMs", .serialized)
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

    @Test("RC ping-pong: SEND and RECV both ways, with and without immediate, 200 round trips")
    func pingPong() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        let size = 1500  // more than the 1024-byte path MTU: two packets
        for i in 0..<200 {
            let (tx, rx) = i % 2 == 0 ? (a, b) : (b, a)
            let withImm = (i / 2) % 2 == 1
            let data = pattern(size, seed: UInt8(truncatingIfNeeded: i))
            try rx.postRecv(wrId: UInt64(10_000 + i), offset: 8192, length: 4096)
            tx.mr.write(data, at: 0)
            let imm = withImm ? UInt32(0xc0de_0000) | UInt32(i) : 0
            try tx.send(wrId: UInt64(i), length: size, opcode: withImm ? .sendWithImm : .send, imm: imm)
            let r = try rx.recvCQ.waitOne()
            try #require(r.status == .success, "round \(i): \(r)")
            expectWC(r, wrId: UInt64(10_000 + i), status: .success, opcode: .recv, qpn: rx.qp.qpn, byteLen: UInt32(size))
            #expect(r.flags.contains(.withImm) == withImm, "\(r)")
            if withImm { #expect(r.imm == imm, "\(r)") }
            let s = try tx.sendCQ.waitOne()
            expectWC(s, wrId: UInt64(i), status: .success, opcode: .send, qpn: tx.qp.qpn)
            try #require(rx.mr.read(size, at: 8192) == data, "round \(i): payload differs")
        }
        vms.expectAlive()
    }

    @Test("RC: 48 sends in flight complete in post order on both sides")
    func pipelined() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        let n = 48
        for i in 0..<n { try b.postRecv(wrId: UInt64(500 + i), offset: i * 1024, length: 1024) }
        for i in 0..<n { a.mr.write(pattern(700, seed: UInt8(i)), at: i * 1024) }
        for i in 0..<n { try a.send(wrId: UInt64(i), offset: i * 1024, length: 700) }
        let sends = try a.sendCQ.wait(for: n)
        let recvs = try b.recvCQ.wait(for: n)
        #expect(sends.map(\.wrId) == (0..<n).map { UInt64($0) })
        #expect(recvs.map(\.wrId) == (0..<n).map { UInt64(500 + $0) })
        #expect(sends.allSatisfy { $0.status == .success } && recvs.allSatisfy { $0.status == .success && $0.byteLen == 700 })
        for i in 0..<n { #expect(b.mr.read(700, at: i * 1024) == pattern(700, seed: UInt8(i))) }
        vms.expectAlive()
    }

    @Test("RC: gather from three SGEs into two, and inline sends")
    func gatherScatterInline() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        let parts = [pattern(100, seed: 1), pattern(300, seed: 2), pattern(200, seed: 3)]
        a.mr.write(parts[0], at: 0)
        a.mr.write(parts[1], at: 5000)
        a.mr.write(parts[2], at: 9000)
        try b.qp.postRecv(RecvWR(wrId: 1, sges: [b.mr.sge(offset: 0, length: 256), b.mr.sge(offset: 4096, length: 1024)]))
        try a.qp.postSend(SendWR(wrId: 2, opcode: .send, sges: [a.mr.sge(offset: 0, length: 100), a.mr.sge(offset: 5000, length: 300),
                                                               a.mr.sge(offset: 9000, length: 200)]))
        expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .success, opcode: .send)
        expectWC(try b.recvCQ.waitOne(), wrId: 1, status: .success, opcode: .recv, byteLen: 600)
        let all = parts[0] + parts[1] + parts[2]
        #expect(b.mr.read(256, at: 0) == Array(all[0..<256]))
        #expect(b.mr.read(344, at: 4096) == Array(all[256...]))

        // Inline: the data travels in the WQE; the source buffer is not read (there is none).
        let inline = pattern(60, seed: 9)
        try b.postRecv(wrId: 3, offset: 16384, length: 128)
        try a.qp.postSend(SendWR(wrId: 4, opcode: .send, flags: [.signaled, .inline], inlineData: inline))
        expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .success, opcode: .send)
        expectWC(try b.recvCQ.waitOne(), wrId: 3, status: .success, opcode: .recv, byteLen: 60)
        #expect(b.mr.read(60, at: 16384) == inline)
        // A zero-length send consumes a receive and reports 0 bytes. UD-only WQE fields on an RC
        // send are ignored: the receive CQE's src_qp stays 0 ("fields that do not apply are zero").
        try b.postRecv(wrId: 5, offset: 0, length: 64)
        try a.qp.postSend(SendWR(wrId: 6, opcode: .send, ah: 77, remoteQPN: 0x1234, remoteQKey: 9))
        expectWC(try a.sendCQ.waitOne(), wrId: 6, status: .success, opcode: .send)
        let zero = try b.recvCQ.waitOne()
        expectWC(zero, wrId: 5, status: .success, opcode: .recv, byteLen: 0)
        #expect(zero.srcQP == 0, "an RC receive CQE carries the sender's WQE remote_qpn: \(zero)")
        vms.expectAlive()
    }

    @Test("RDMA WRITE and WRITE_WITH_IMM land in the peer's MR; READ brings its bytes back")
    func rdmaWriteRead() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        // WRITE: 10000 bytes (ten packets) at an offset; no receive is consumed.
        let data = pattern(10_000, seed: 5)
        a.mr.write(data, at: 0)
        try b.postRecv(wrId: 99, offset: 60_000, length: 64)
        try a.qp.postSend(SendWR(wrId: 1, opcode: .rdmaWrite, sges: [a.mr.sge(offset: 0, length: 10_000)],
                                 remoteAddr: b.mr.address(1000), rkey: b.mr.rkey))
        expectWC(try a.sendCQ.waitOne(), wrId: 1, status: .success, opcode: .rdmaWrite)
        #expect(b.mr.read(10_000, at: 1000) == data)
        #expect(b.mr.read(1, at: 999) == [0] && b.mr.read(1, at: 11_000) == [0], "bytes outside the target changed")
        #expect(b.recvCQ.drain(waitingMilliseconds: 20).isEmpty, "a plain RDMA WRITE consumed a receive")

        // WRITE_WITH_IMM: the data lands, and the posted receive completes with the immediate.
        let data2 = pattern(3000, seed: 6)
        a.mr.write(data2, at: 20_000)
        try a.qp.postSend(SendWR(wrId: 2, opcode: .rdmaWriteWithImm, sges: [a.mr.sge(offset: 20_000, length: 3000)], imm: 0x1234_5678,
                                 remoteAddr: b.mr.address(30_000), rkey: b.mr.rkey))
        expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .success, opcode: .rdmaWrite)
        let r = try b.recvCQ.waitOne()
        expectWC(r, wrId: 99, status: .success, opcode: .recvRDMAWithImm, qpn: b.qp.qpn, byteLen: 3000)
        #expect(r.flags.contains(.withImm) && r.imm == 0x1234_5678, "\(r)")
        #expect(b.mr.read(3000, at: 30_000) == data2)
        #expect(b.mr.read(64, at: 60_000) == [UInt8](repeating: 0, count: 64), "WRITE_WITH_IMM wrote into the receive buffer")

        // READ: 7000 bytes of B's MR into A's.
        let data3 = pattern(7000, seed: 7)
        b.mr.write(data3, at: 40_000)
        try a.qp.postSend(SendWR(wrId: 3, opcode: .rdmaRead, sges: [a.mr.sge(offset: 50_000, length: 7000)],
                                 remoteAddr: b.mr.address(40_000), rkey: b.mr.rkey))
        expectWC(try a.sendCQ.waitOne(), wrId: 3, status: .success, opcode: .rdmaRead, byteLen: 7000)
        #expect(a.mr.read(7000, at: 50_000) == data3)
        // READ scattered into two local SGEs.
        try a.qp.postSend(SendWR(wrId: 4, opcode: .rdmaRead, sges: [a.mr.sge(offset: 0, length: 1000), a.mr.sge(offset: 8192, length: 6000)],
                                 remoteAddr: b.mr.address(40_000), rkey: b.mr.rkey))
        expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .success, opcode: .rdmaRead, byteLen: 7000)
        #expect(a.mr.read(1000, at: 0) == Array(data3[0..<1000]) && a.mr.read(6000, at: 8192) == Array(data3[1000...]))
        vms.expectAlive()
    }

    @Test("CMP_AND_SWP and FETCH_AND_ADD return the old value and change the remote word")
    func atomics() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        b.mr.storeU64(100, at: 64)
        func atomic(_ id: UInt64, _ op: SendOpcode, _ compareAdd: UInt64, swap: UInt64 = 0, offset: Int = 64) throws -> Completion {
            try a.qp.postSend(SendWR(wrId: id, opcode: op, sges: [a.mr.sge(offset: Int(id) * 8, length: 8)], remoteAddr: b.mr.address(offset),
                                     rkey: b.mr.rkey, compareAdd: compareAdd, swap: swap))
            return try a.sendCQ.waitOne()
        }
        expectWC(try atomic(1, .fetchAndAdd, 5), wrId: 1, status: .success, opcode: .fetchAdd, byteLen: 8)
        #expect(a.mr.loadU64(at: 8) == 100 && b.mr.loadU64(at: 64) == 105)
        expectWC(try atomic(2, .cmpAndSwp, 105, swap: 7), wrId: 2, status: .success, opcode: .compSwap, byteLen: 8)
        #expect(a.mr.loadU64(at: 16) == 105 && b.mr.loadU64(at: 64) == 7)
        expectWC(try atomic(3, .cmpAndSwp, 999, swap: 1), wrId: 3, status: .success, opcode: .compSwap, byteLen: 8)
        #expect(a.mr.loadU64(at: 24) == 7 && b.mr.loadU64(at: 64) == 7, "a failed compare swapped")
        expectWC(try atomic(4, .fetchAndAdd, UInt64.max), wrId: 4, status: .success, opcode: .fetchAdd)
        #expect(a.mr.loadU64(at: 32) == 7 && b.mr.loadU64(at: 64) == 6, "FETCH_AND_ADD wraps modulo 2^64")
        // A remote address that is not 8-aligned: the responder refuses it.
        expectWC(try atomic(5, .fetchAndAdd, 1, offset: 68), wrId: 5, status: .remInvReqErr)
        #expect(b.mr.loadU64(at: 64) == 6)
        #expect(waitForState(a.qp, .error) == .error)
        vms.expectAlive()
    }

    @Test("FETCH_AND_ADD from two QPs on two devices at once: no increment is lost")
    func concurrentFetchAdd() throws {
        let vms = try VMs(count: 3, workers: 3)
        let target = try Endpoint(vms.devices[1])
        let target2 = try Endpoint(vms.devices[1], ctx: target.ctx, pd: target.pd)
        let a = try Endpoint(vms.devices[0])
        let c = try Endpoint(vms.devices[2])
        try QueuePair.connect(a.qp, target.qp)
        try QueuePair.connect(c.qp, target2.qp)
        let perQP = 400
        var posted = [0, 0], done = [0, 0]
        var originals: [UInt64] = []
        let requesters = [a, c]
        let deadline = monotonicMilliseconds() + 10_000
        while done[0] < perQP || done[1] < perQP {
            try #require(monotonicMilliseconds() < deadline, "only \(done) of \(perQP) atomics completed per QP")
            for k in 0..<2 {
                let e = requesters[k]
                while posted[k] < perQP && posted[k] - done[k] < 16 {
                    try e.qp.postSend(SendWR(wrId: UInt64(posted[k]), opcode: .fetchAndAdd, sges: [e.mr.sge(offset: posted[k] * 8, length: 8)],
                                             remoteAddr: target.mr.address(0), rkey: target.mr.rkey, compareAdd: 1))
                    posted[k] += 1
                }
                for wc in e.sendCQ.poll() {
                    try #require(wc.status == .success, "\(wc)")
                    originals.append(e.mr.loadU64(at: Int(wc.wrId) * 8))
                    done[k] += 1
                }
            }
            if done[0] < perQP || done[1] < perQP {
                try #require(vms.daemon.isRunning)
                usleep(20)
            }
        }
        #expect(target.mr.loadU64(at: 0) == UInt64(2 * perQP))
        #expect(originals.sorted() == (0..<UInt64(2 * perQP)).map { $0 }, "two increments saw the same old value")
        vms.expectAlive()
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

    @Test("UD: address handles, 40-byte GRH, src_qp, Q_Key rules, MTU limit, no RDMA")
    func unreliableDatagram() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a, type: .ud)
        let b = try Endpoint(vms.b, type: .ud)
        try a.qp.bringUpUD(qkey: 0x1234)
        try b.qp.bringUpUD(qkey: 0x1234)
        #expect(try a.qp.query().qkey == 0x1234)
        let ah = try a.pd.createAH(to: b.qp)
        let payload = pattern(512, seed: 4)
        a.mr.write(payload, at: 0)
        func send(_ id: UInt64, qkey: UInt32, length: Int = 512, opcode: SendOpcode = .send, imm: UInt32 = 0) throws {
            try a.qp.postSend(SendWR(wrId: id, opcode: opcode, sges: [a.mr.sge(offset: 0, length: length)], imm: imm, ah: ah.handle,
                                     remoteQPN: b.qp.qpn, remoteQKey: qkey))
        }
        try b.postRecv(wrId: 10, offset: 0, length: 40 + 1024)
        try send(1, qkey: 0x1234)
        expectWC(try a.sendCQ.waitOne(), wrId: 1, status: .success, opcode: .send)
        let r = try b.recvCQ.waitOne()
        expectWC(r, wrId: 10, status: .success, opcode: .recv, qpn: b.qp.qpn, byteLen: 40 + 512)
        #expect(r.flags.contains(.grh) && r.srcQP == a.qp.qpn, "\(r)")
        #expect(b.mr.read(512, at: 40) == payload, "payload not after the 40-byte GRH")
        // The GRH of a RoCEv2 datagram between IPv4-mapped GIDs (§15.6): 20 zero bytes, then an
        // IPv4 header (IHL 5, TOS = traffic class, TTL = hop limit, UDP, the addresses, a valid
        // checksum); network_hdr_type 3; vlan_id 0xffff; smac = the source GID entry's MAC.
        let grh = b.mr.read(40, at: 0)
        #expect(grh[0..<20].allSatisfy { $0 == 0 }, "GRH bytes 0-19 must be zero for an IPv4 datagram: \(grh)")
        let ip = Array(grh[20..<40])
        #expect(ip[0] == 0x45 && ip[1] == 0 && ip[8] == 64 && ip[9] == 17, "IPv4 header: \(ip)")
        #expect(Array(ip[12..<16]) == [10, 0, 0, 1] && Array(ip[16..<20]) == [10, 0, 0, 2], "IPv4 addresses: \(ip)")
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        #expect(sum == 0xffff, "IPv4 header checksum does not verify: \(ip)")
        #expect(r.networkHdrType == 3 && r.vlanID == 0xffff && r.smac == 0 && r.sl == 0 && r.pkeyIndex == 0, "\(r)")

        // Q_Key with the high bit set: the sending QP's own Q_Key is used (0x1234, matching).
        try b.postRecv(wrId: 11, offset: 4096, length: 40 + 1024)
        try send(2, qkey: 0x8000_0000, opcode: .sendWithImm, imm: 0xabcd_0001)
        expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .success)
        let r2 = try b.recvCQ.waitOne()
        expectWC(r2, wrId: 11, status: .success, opcode: .recv, byteLen: 40 + 512)
        #expect(r2.flags.contains(.withImm) && r2.imm == 0xabcd_0001, "\(r2)")

        // A wrong Q_Key: the sender completes (UD is unreliable), the datagram is dropped silently.
        try b.postRecv(wrId: 12, offset: 8192, length: 40 + 1024)
        try send(3, qkey: 0x4321)
        expectWC(try a.sendCQ.waitOne(), wrId: 3, status: .success)
        #expect(b.recvCQ.drain(waitingMilliseconds: 30).isEmpty, "a datagram with the wrong Q_Key was delivered")
        // The receive is still there for the next good datagram.
        try send(4, qkey: 0x1234, length: 100)
        expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .success)
        expectWC(try b.recvCQ.waitOne(), wrId: 12, status: .success, byteLen: 140)

        // To a QPN that does not exist, and to a QP that exists but is not ready: the send still
        // completes (it was handed to the fabric) and the SQ goes on (§15.6).
        let idle = try Endpoint(vms.b, type: .ud)
        try idle.qp.modify(idle.qp.initAttributes())
        try a.qp.postSend(SendWR(wrId: 20, opcode: .send, sges: [a.mr.sge(offset: 0, length: 8)], ah: ah.handle, remoteQPN: 0x12345,
                                 remoteQKey: 0x1234))
        try a.qp.postSend(SendWR(wrId: 21, opcode: .send, sges: [a.mr.sge(offset: 0, length: 8)], ah: ah.handle, remoteQPN: idle.qp.qpn,
                                 remoteQKey: 0x1111_1111))
        try b.postRecv(wrId: 22, offset: 0, length: 40 + 1024)
        try send(23, qkey: 0x1234, length: 8)
        let lost = a.sendCQ.drain(waitingMilliseconds: 200)
        #expect(lost.map(\.wrId) == [20, 21, 23] && lost.allSatisfy { $0.status == .success }, "\(lost)")
        let got = b.recvCQ.drain(waitingMilliseconds: 20)
        #expect(got.map(\.wrId) == [22], "\(got)")

        // More than the port MTU (1024 at active_mtu 3): LOC_LEN_ERR at the sender.
        let mtu = 128 << Int(try vms.a.queryPort().active_mtu)
        let big = try a.anotherQP(type: .ud)
        try big.bringUpUD(qkey: 0x1234)
        try big.postSend(SendWR(wrId: 5, opcode: .send, sges: [a.mr.sge(offset: 0, length: mtu + 1)], ah: ah.handle,
                                remoteQPN: b.qp.qpn, remoteQKey: 0x1234))
        expectWC(try a.sendCQ.waitOne(), wrId: 5, status: .locLenErr)
        // RDMA on a UD QP is not an operation it has: LOC_QP_OP_ERR.
        let rdma = try a.anotherQP(type: .ud)
        try rdma.bringUpUD(qkey: 0x1234)
        try rdma.postSend(SendWR(wrId: 6, opcode: .rdmaWrite, sges: [a.mr.sge(offset: 0, length: 8)], remoteAddr: 0, rkey: 1,
                                 ah: ah.handle, remoteQPN: b.qp.qpn))
        expectWC(try a.sendCQ.waitOne(), wrId: 6, status: .locQPOpErr)
        try ah.destroy()
        expectStatus(.badHandle, "ah.destroy()") { try ah.destroy() }
        vms.expectAlive()
    }

    @Test("an SRQ feeds several QPs in order; its limit event fires once and disarms")
    func sharedReceiveQueue() throws {
        let vms = try VMs()
        let bctx = try vms.b.createContext()
        let bpd = try bctx.allocPD()
        let srq = try bctx.createSRQ(pd: bpd, caps: WorkQueueCaps(depth: 64, maxSGE: 1))
        let q = try srq.query()
        #expect(q.maxWR == 64 && q.maxSGE == 1 && q.limit == 0)
        let receivers = try (0..<3).map { _ in try Endpoint(vms.b, ctx: bctx, pd: bpd) }
        // Every B QP delivers into receiver 0's CQ and buffers, through the one SRQ.
        let sink = receivers[0]
        let bqps = try (0..<3).map { _ in
            try bctx.createQP(pd: bpd, sendCQ: sink.sendCQ, recvCQ: sink.recvCQ, sq: WorkQueueCaps(depth: 16), srq: srq)
        }
        #expect(bqps.allSatisfy { $0.rq == nil })
        let senders = try (0..<3).map { _ in try Endpoint(vms.a) }
        for i in 0..<3 { try QueuePair.connect(senders[i].qp, bqps[i]) }
        try srq.postRecv((0..<12).map { RecvWR(wrId: UInt64(100 + $0), sges: [sink.mr.sge(offset: $0 * 1024, length: 1024)]) })
        for round in 0..<4 {
            for s in 0..<3 {
                let tag = UInt8(16 * s + round)
                senders[s].mr.write([UInt8](repeating: tag, count: 64), at: round * 64)
                try senders[s].send(wrId: UInt64(round), offset: round * 64, length: 64)
            }
        }
        for s in senders { #expect(try s.sendCQ.wait(for: 4).allSatisfy { $0.status == .success }) }
        let recvs = try sink.recvCQ.wait(for: 12)
        #expect(recvs.map(\.wrId) == (100..<112).map { UInt64($0) }, "SRQ WQEs not taken in order")
        var perQP: [UInt32: Int] = [:]
        for r in recvs {
            #expect(r.status == .success && r.opcode == .recv && r.byteLen == 64, "\(r)")
            perQP[r.qpNum, default: 0] += 1
            // The buffer of this WQE holds a message the CQE's QP received.
            let tag = sink.mr.read(1, at: Int(r.wrId - 100) * 1024)[0]
            let sender = Int(tag / 16)
            #expect(bqps.firstIndex { $0.qpn == r.qpNum } == sender, "\(r) holds sender \(sender)'s data")
        }
        #expect(perQP.count == 3 && perQP.values.allSatisfy { $0 == 4 })

        // Limit: 6 posted, limit 4. Consuming 2 leaves 4 (not below): no event; one more: event.
        try srq.postRecv((0..<6).map { RecvWR(wrId: UInt64(200 + $0), sges: [sink.mr.sge(offset: $0 * 1024, length: 1024)]) })
        try srq.setLimit(4)
        #expect(try srq.query().limit == 4)
        for i in 0..<2 { try senders[0].send(wrId: UInt64(10 + i), length: 8) }
        _ = try sink.recvCQ.wait(for: 2)
        #expect(try vms.b.waitForEvent(.srqLimitReached, handle: srq.handle, timeoutMilliseconds: 50) == nil, "limit event too early")
        try senders[0].send(wrId: 12, length: 8)
        _ = try sink.recvCQ.wait(for: 1)
        #expect(try vms.b.waitForEvent(.srqLimitReached, handle: srq.handle) != nil, "no SRQ_LIMIT_REACHED")
        #expect(try srq.query().limit == 0, "the limit did not disarm")
        try senders[0].send(wrId: 13, length: 8)
        _ = try sink.recvCQ.wait(for: 1)
        #expect(try vms.b.waitForEvent(.srqLimitReached, handle: srq.handle, timeoutMilliseconds: 50) == nil, "a second limit event")

        // A QP of the SRQ moved to ERR: it takes no more SRQ WQEs, and says so.
        try bqps[2].modify(QPAttributes(state: .error))
        #expect(try vms.b.waitForEvent(.qpLastWQEReached, handle: bqps[2].qpn) != nil, "no QP_LAST_WQE_REACHED")
        // Resizing is not supported (no SRQ_RESIZE capability): EINVAL, as ibv_modify_srq reports it.
        expectStatus(.invalid, "MODIFY_SRQ with SRQ_MAX_WR") { try srq.modify(mask: UInt32(VIRTIO_RDMA_SRQ_MAX_WR), maxWR: 128) }
        // A QP with an SRQ must describe no receive queue.
        var plan = bctx.planQP(pd: bpd, sendCQ: sink.sendCQ, srq: srq)
        plan.request.rq = bctx.planWorkQueue(WorkQueueCaps(depth: 16), send: false).desc
        expectStatus(.invalid, "bctx.createQP(plan)") { _ = try bctx.createQP(plan) }
        // The SRQ is in use: BUSY until its QPs are gone.
        expectStatus(.busy, "srq.destroy()") { try srq.destroy() }
        for qp in bqps { try qp.destroy() }
        try srq.destroy()
        vms.expectAlive()
    }

    @Test("RNR: a send before its receive succeeds once the receive is posted (infinite and finite retry)")
    func rnrRecovers() throws {
        let vms = try VMs()
        // rnr_retry 7: retry forever.
        let (a, b) = try connectedPair(vms)
        a.mr.write(pattern(300, seed: 1), at: 0)
        try a.send(wrId: 1, length: 300)
        #expect(a.sendCQ.drain(waitingMilliseconds: 30).isEmpty, "the send completed although no receive was posted")
        try b.postRecv(wrId: 2)
        expectWC(try a.sendCQ.waitOne(), wrId: 1, status: .success, opcode: .send)
        expectWC(try b.recvCQ.waitOne(), wrId: 2, status: .success, byteLen: 300)
        #expect(b.mr.read(300) == pattern(300, seed: 1))

        // rnr_retry 6 with min_rnr_timer 20 (10.24 ms): a window of about 60 ms.
        var pa = RCParameters()
        pa.rnrRetry = 6
        var pb = RCParameters()
        pb.minRNRTimer = 20
        let (c, d) = try connectedPair(vms, pa, pb)
        try c.send(wrId: 3, length: 64, opcode: .sendWithImm, imm: 7)
        usleep(5000)
        try d.postRecv(wrId: 4)
        expectWC(try c.sendCQ.waitOne(), wrId: 3, status: .success)
        expectWC(try d.recvCQ.waitOne(), wrId: 4, status: .success, byteLen: 64)
        #expect(stateOf(c.qp) == .rts && stateOf(d.qp) == .rts)
        vms.expectAlive()
    }

    @Test("RNR: never posted with a small rnr_retry -> RNR_RETRY_EXC_ERR, requester in ERR")
    func rnrExceeded() throws {
        let vms = try VMs()
        var p = RCParameters()
        p.rnrRetry = 1
        let (a, b) = try connectedPair(vms, p)
        try a.send(wrId: 1, length: 64)
        try a.send(wrId: 2, length: 64)
        let wcs = try a.sendCQ.wait(for: 2)
        expectWC(wcs[0], wrId: 1, status: .rnrRetryExcErr, qpn: a.qp.qpn)
        expectWC(wcs[1], wrId: 2, status: .wrFlushErr, qpn: a.qp.qpn)
        #expect(waitForState(a.qp, .error) == .error)
        #expect(stateOf(b.qp) == .rts, "the responder did nothing wrong")
        // WRITE_WITH_IMM needs a receive too.
        let (c, d) = try connectedPair(vms, p)
        try c.qp.postSend(SendWR(wrId: 3, opcode: .rdmaWriteWithImm, sges: [c.mr.sge(offset: 0, length: 16)], imm: 1,
                                 remoteAddr: d.mr.address(0), rkey: d.mr.rkey))
        expectWC(try c.sendCQ.waitOne(), wrId: 3, status: .rnrRetryExcErr)
        #expect(waitForState(c.qp, .error) == .error)
        vms.expectAlive()
    }

    @Test("completion events: arm NEXT and SOLICITED, event on vq 1 and its call eventfd, one per arm")
    func completionEvents() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        let dev = vms.b
        _ = try dev.takeEvents()
        _ = dev.waitForEventInterrupt(milliseconds: 0)  // a stale signal from set-up
        // Not armed: no event.
        try b.postRecv(wrId: 1)
        try a.send(wrId: 1, length: 8)
        _ = try b.recvCQ.waitOne()
        #expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle, timeoutMilliseconds: 30) == nil, "event without an arm")

        // Armed NEXT: one event, with an interrupt, and the arm is consumed.
        try dev.collectEvents()
        b.recvCQ.arm(.next)
        #expect(b.recvCQ.isArmed)
        try b.postRecv(wrId: 2)
        try a.send(wrId: 2, length: 8)
        #expect(dev.waitForEventInterrupt(milliseconds: 2000), "no interrupt on the event queue")
        #expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle) != nil)
        #expect(!b.recvCQ.isArmed, "notified_sequence was not brought up to arm_sequence")
        #expect(b.recvCQ.doorbell.notifiedSequence == b.recvCQ.doorbell.armSequence)
        _ = try b.recvCQ.waitOne()
        try b.postRecv(wrId: 3)
        try a.send(wrId: 3, length: 8)
        _ = try b.recvCQ.waitOne()
        #expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle, timeoutMilliseconds: 30) == nil, "two events for one arm")

        // Armed SOLICITED: an unsolicited send does not fire; a solicited one does.
        b.recvCQ.arm(.solicited)
        try b.postRecv(wrId: 4)
        try a.send(wrId: 4, length: 8)
        _ = try b.recvCQ.waitOne()
        #expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle, timeoutMilliseconds: 30) == nil, "unsolicited completion fired")
        #expect(b.recvCQ.isArmed)
        try b.postRecv(wrId: 5)
        try a.send(wrId: 5, length: 8, flags: [.signaled, .solicited])
        let solicited = try b.recvCQ.waitOne()
        #expect(solicited.flags.contains(.solicited), "SEND_SOLICITED must set WC_F_SOLICITED in the receive CQE: \(solicited)")
        #expect(try dev.waitForEvent(.cqCompletion, handle: b.recvCQ.handle) != nil, "solicited completion did not fire")
        // The requester's CQ, armed, fires for its send completion.
        #expect(try a.sendCQ.wait(for: 5).map(\.wrId) == [1, 2, 3, 4, 5])
        a.sendCQ.arm(.next)
        try b.postRecv(wrId: 6)
        try a.send(wrId: 6, length: 8)
        expectWC(try a.sendCQ.waitOne(), wrId: 6, status: .success)
        #expect(try vms.a.waitForEvent(.cqCompletion, handle: a.sendCQ.handle) != nil)
        _ = try b.recvCQ.wait(for: 1)
        // Interrupt-mode ping-pong: arm, poll once more, sleep on the event queue, poll.
        for i in 0..<20 {
            try b.postRecv(wrId: UInt64(100 + i))
            try a.send(wrId: UInt64(100 + i), length: 8)
            expectWC(try b.recvCQ.waitForCompletionEvent(), wrId: UInt64(100 + i), status: .success)
            expectWC(try a.sendCQ.waitForCompletionEvent(), wrId: UInt64(100 + i), status: .success)
        }
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

    @Test("unsignaled work requests give no CQE on success; sq_sig_all gives one for each")
    func signaling() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        for i in 0..<6 { try b.postRecv(wrId: UInt64(i), offset: i * 64, length: 64) }
        for i in 0..<5 { try a.send(wrId: UInt64(i), length: 8, flags: []) }
        try a.send(wrId: 5, length: 8)
        let wcs = try a.sendCQ.wait(for: 1)
        #expect(wcs[0].wrId == 5)
        #expect(try b.recvCQ.wait(for: 6).count == 6)
        #expect(a.sendCQ.drain(waitingMilliseconds: 20).isEmpty, "unsignaled WQEs produced CQEs")

        let c = try Endpoint(vms.a, sqSigAll: true)
        let d = try Endpoint(vms.b)
        try QueuePair.connect(c.qp, d.qp)
        for i in 0..<4 { try d.postRecv(wrId: UInt64(i), offset: i * 64, length: 64) }
        for i in 0..<4 { try c.send(wrId: UInt64(i), length: 8, flags: []) }
        #expect(try c.sendCQ.wait(for: 4).map(\.wrId) == [0, 1, 2, 3])
        vms.expectAlive()
    }

    @Test("rings wrap many times over scattered, indirect and high-memory pages")
    func ringsAndLayouts() throws {
        let vms = try VMs()
        let actx = try vms.a.createContext(), bctx = try vms.b.createContext()
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
            try #require(got.count == 2 && got.allSatisfy { $0.status == .success && $0.wrId == UInt64(i) }, "round \(i): \(got)")
            try #require(bmr.read(9000, at: 100) == data, "round \(i)")
            // And back with an RDMA WRITE into A's MR, across its page boundaries.
            try bqp.postSend(SendWR(wrId: UInt64(100 + i), opcode: .rdmaWrite, sges: [bmr.sge(offset: 100, length: 9000)],
                                    remoteAddr: amr.address(3000), rkey: amr.rkey))
            let w = try bcq.waitOne()
            try #require(w.status == .success && w.wrId == UInt64(100 + i), "\(w)")
            try #require(amr.read(9000, at: 3000) == data)
        }
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
