// SPDX-License-Identifier: Apache-2.0
// What only a provider with a host NIC shows. Zero copy: the NIC reads and writes guest memory
// itself, through the daemon's registration of the guest's pages; shown by stopping the daemon
// (SIGSTOP) and watching bytes arrive in guest memory anyway, which a copying daemon could not
// do. And the commands the verbs provider refuses (docs/virtio-rdma.md §15.8).
import Glibc
import VRDMATestSupport

let hostNICScenarios: [Scenario] = [
    Scenario("zero copy: with the daemon stopped, the NIC lands a SEND in guest memory and READs bytes the guest just wrote") { h in
        let check = h.checks
        // B answers a SEND that finds no receive with the longest RNR timer (code 0: 655 ms), so
        // the NIC's retry comes well after the daemon is stopped.
        var pb = RCParameters()
        pb.minRNRTimer = 0
        let (a, b) = try h.connectedPair(RCParameters(), pb)
        let pid = h.vms.daemon.pid
        let data = pattern(4096, seed: 42)
        a.mr.write(data, at: 0)
        try a.send(wrId: 1, length: 4096)
        usleep(100_000)  // the first attempt has met no receive: RNR NAK, retry in 655 ms
        try b.postRecvTaken(wrId: 2, offset: 8192, length: 4096)  // the daemon gave it to the NIC
        kill(pid, SIGSTOP)
        let early = b.mr.read(4096, at: 8192) == data
        var landed = false
        let deadline = monotonicMilliseconds() + 3000
        while !landed && monotonicMilliseconds() < deadline {
            usleep(10_000)
            landed = b.mr.read(4096, at: 8192) == data
        }
        // READ: B's guest writes its memory directly (no command), A reads it back.
        let fresh = pattern(2048, seed: 43)
        b.mr.write(fresh, at: 20_000)
        kill(pid, SIGCONT)
        check.expect(!early, "the SEND landed before the daemon was stopped: the test proves nothing; rerun")
        check.expect(landed, "the SEND's bytes did not reach guest memory while the daemon was stopped")
        check.expectWC(try a.sendCQ.waitOne(), wrId: 1, status: .success, opcode: .send)
        check.expectWC(try b.recvCQ.waitOne(), wrId: 2, status: .success, opcode: .recv, byteLen: 4096)
        try a.qp.postSend(SendWR(wrId: 3, opcode: .rdmaRead, sges: [a.mr.sge(offset: 30_000, length: 2048)],
                                 remoteAddr: b.mr.address(20_000), rkey: b.mr.rkey))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 3, status: .success, opcode: .rdmaRead, byteLen: 2048)
        check.expect(a.mr.read(2048, at: 30_000) == fresh, "READ did not return what B's guest wrote after registration")
    },

    Scenario("verbs provider: ADD_GID of a GID the host port lacks, the GSI QP, the DMA MR and a growing RESIZE_CQ are refused") { h in
        let check = h.checks
        let a = h.a
        func expectStatus(_ expected: CommandStatus, _ what: String, _ body: () throws -> Void) {
            do {
                let status = try statusOf(body)
                check.expect(status == expected, "\(what): got \(status), expected \(expected)")
            } catch {
                check.expect(false, "\(what): \(error)")
            }
        }
        // 198.51.100.7 (TEST-NET-2) is on no interface of the host.
        expectStatus(.invalid, "ADD_GID of a GID the host port lacks") { try a.addGID(index: 3, gid: GID.ipv4Mapped(198, 51, 100, 7)) }
        let kernel = a.context(handle: 0)
        let pd = try kernel.allocPD(), cq = try kernel.createCQ(depth: 16)
        let caps = WorkQueueCaps(depth: 16, maxSGE: 1)
        expectStatus(.unsupported, "a GSI QP") {
            _ = try kernel.createQP(pd: pd, sendCQ: cq, recvCQ: cq, type: .gsi, sq: caps, rq: caps, srq: nil, sqSigAll: false)
        }
        expectStatus(.unsupported, "the DMA MR") { _ = try pd.registerDMAMR() }
        expectStatus(.unsupported, "RESIZE_CQ to a larger depth") { try cq.resize(depth: 32) }
        expectStatus(.ok, "RESIZE_CQ to a smaller depth") { try cq.resize(depth: 8) }
    },
]
