// SPDX-License-Identifier: Apache-2.0
// UD with address handles (the GRH in the receive buffer, src_qp, Q_Key rules, drops, the MTU
// limit, no RDMA) and a shared receive queue feeding several RC QPs.
import CVRDMAABI
import VRDMATestSupport

let datagramScenarios: [Scenario] = [
    Scenario("UD: address handles, 40-byte GRH, src_qp, Q_Key rules, silent drops, MTU limit, no RDMA") { h in
        let check = h.checks
        let a = try Endpoint(h.a, type: .ud)
        let b = try Endpoint(h.b, type: .ud)
        try a.qp.bringUpUD(qkey: 0x1234)
        try b.qp.bringUpUD(qkey: 0x1234)
        check.expectEqual(try a.qp.query().qkey, 0x1234, "QUERY_QP qkey")
        let ah = try a.pd.createAH(to: b.qp)
        let payload = pattern(512, seed: 4)
        a.mr.write(payload, at: 0)
        func send(_ id: UInt64, qkey: UInt32, length: Int = 512, opcode: SendOpcode = .send, imm: UInt32 = 0) throws {
            try a.qp.postSend(SendWR(wrId: id, opcode: opcode, sges: [a.mr.sge(offset: 0, length: length)], imm: imm, ah: ah.handle,
                                     remoteQPN: b.qp.qpn, remoteQKey: qkey))
        }
        try h.postDatagramReceive(b, wrId: 10, offset: 0, length: 40 + 1024)
        try send(1, qkey: 0x1234)
        check.expectWC(try a.sendCQ.waitOne(), wrId: 1, status: .success, opcode: .send)
        let r = try b.recvCQ.waitOne()
        check.expectWC(r, wrId: 10, status: .success, opcode: .recv, qpn: b.qp.qpn, byteLen: 40 + 512)
        check.expect(r.flags.contains(.grh) && r.srcQP == a.qp.qpn, "no GRH flag, or src_qp is not \(a.qp.qpn): \(r)")
        check.expect(b.mr.read(512, at: 40) == payload, "payload not after the 40-byte GRH")
        checkGRH(check, b.mr.read(40, at: 0), r, source: h.gids[0], destination: h.gids[1], checksumMayBeZero: !h.softwareProvider)

        // Q_Key with the high bit set: the sending QP's own Q_Key is used (0x1234, matching).
        try h.postDatagramReceive(b, wrId: 11, offset: 4096, length: 40 + 1024)
        try send(2, qkey: 0x8000_0000, opcode: .sendWithImm, imm: 0xabcd_0001)
        check.expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .success)
        let r2 = try b.recvCQ.waitOne()
        check.expectWC(r2, wrId: 11, status: .success, opcode: .recv, byteLen: 40 + 512)
        check.expect(r2.flags.contains(.withImm) && r2.imm == 0xabcd_0001, "immediate missing or wrong: \(r2)")

        // A wrong Q_Key: the sender completes (UD is unreliable), the datagram is dropped silently.
        try h.postDatagramReceive(b, wrId: 12, offset: 8192, length: 40 + 1024)
        try send(3, qkey: 0x4321)
        check.expectWC(try a.sendCQ.waitOne(), wrId: 3, status: .success)
        let misdelivered = b.recvCQ.drain(waitingMilliseconds: 30)
        check.expect(misdelivered.isEmpty, "a datagram with the wrong Q_Key was delivered: \(misdelivered)")
        // The receive is still there for the next good datagram.
        try send(4, qkey: 0x1234, length: 100)
        check.expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .success)
        check.expectWC(try b.recvCQ.waitOne(), wrId: 12, status: .success, byteLen: 140)

        // To a QPN that does not exist, and to a QP that exists but is not ready: the send still
        // completes (it was handed to the fabric) and the SQ goes on.
        let idle = try Endpoint(h.b, type: .ud)
        try idle.qp.modify(idle.qp.initAttributes())
        try a.qp.postSend(SendWR(wrId: 20, opcode: .send, sges: [a.mr.sge(offset: 0, length: 8)], ah: ah.handle, remoteQPN: 0x12345,
                                 remoteQKey: 0x1234))
        try a.qp.postSend(SendWR(wrId: 21, opcode: .send, sges: [a.mr.sge(offset: 0, length: 8)], ah: ah.handle, remoteQPN: idle.qp.qpn,
                                 remoteQKey: 0x1111_1111))
        try h.postDatagramReceive(b, wrId: 22, offset: 0, length: 40 + 1024)
        try send(23, qkey: 0x1234, length: 8)
        let lost = try a.sendCQ.wait(for: 3) + a.sendCQ.drain(waitingMilliseconds: 20)
        check.expect(lost.map(\.wrId) == [20, 21, 23] && lost.allSatisfy { $0.status == .success }, "sends to nowhere: \(lost)")
        let got = [try b.recvCQ.waitOne()] + b.recvCQ.drain(waitingMilliseconds: 20)
        check.expectEqual(got.map(\.wrId), [22], "receives after the sends to nowhere")

        // More than the port MTU: LOC_LEN_ERR at the sender.
        let mtu = 128 << Int(try h.a.queryPort().active_mtu)
        let big = try a.anotherQP(type: .ud)
        try big.bringUpUD(qkey: 0x1234)
        try big.postSend(SendWR(wrId: 5, opcode: .send, sges: [a.mr.sge(offset: 0, length: mtu + 1)], ah: ah.handle,
                                remoteQPN: b.qp.qpn, remoteQKey: 0x1234))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 5, status: .locLenErr)
        // RDMA on a UD QP is not an operation it has: LOC_QP_OP_ERR.
        let rdma = try a.anotherQP(type: .ud)
        try rdma.bringUpUD(qkey: 0x1234)
        try rdma.postSend(SendWR(wrId: 6, opcode: .rdmaWrite, sges: [a.mr.sge(offset: 0, length: 8)], remoteAddr: 0, rkey: 1,
                                 ah: ah.handle, remoteQPN: b.qp.qpn))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 6, status: .locQPOpErr)
    },

    Scenario("SRQ: one SRQ feeds three QPs in SRQ order; its limit event fires once and disarms") { h in
        let check = h.checks
        let bctx = try h.b.createContext()
        let bpd = try bctx.allocPD()
        let srq = try bctx.createSRQ(pd: bpd, caps: WorkQueueCaps(depth: 64, maxSGE: 1))
        // Every B QP delivers into one CQ and one MR, through the one SRQ.
        let sink = try Endpoint(h.b, ctx: bctx, pd: bpd)
        let bqps = try (0..<3).map { _ in
            try bctx.createQP(pd: bpd, sendCQ: sink.sendCQ, recvCQ: sink.recvCQ, sq: WorkQueueCaps(depth: 16), srq: srq)
        }
        let senders = try (0..<3).map { _ in try Endpoint(h.a) }
        for i in 0..<3 { try QueuePair.connect(senders[i].qp, bqps[i]) }
        try srq.postRecv((0..<12).map { RecvWR(wrId: UInt64(100 + $0), sges: [sink.mr.sge(offset: $0 * 1024, length: 1024)]) })
        for round in 0..<4 {
            for s in 0..<3 {
                let tag = UInt8(16 * s + round)
                senders[s].mr.write([UInt8](repeating: tag, count: 64), at: round * 64)
                try senders[s].send(wrId: UInt64(round), offset: round * 64, length: 64)
            }
        }
        for (s, sender) in senders.enumerated() {
            let sends = try sender.sendCQ.wait(for: 4)
            check.expect(sends.allSatisfy { $0.status == .success }, "sender \(s): \(sends)")
        }
        let recvs = try sink.recvCQ.wait(for: 12)
        check.expectEqual(recvs.map(\.wrId), (100..<112).map { UInt64($0) }, "SRQ WQEs taken")
        var perQP: [UInt32: Int] = [:]
        for r in recvs {
            check.expect(r.status == .success && r.opcode == .recv && r.byteLen == 64, "\(r)")
            perQP[r.qpNum, default: 0] += 1
            // The buffer of this WQE holds a message the CQE's QP received.
            let tag = sink.mr.read(1, at: Int(r.wrId - 100) * 1024)[0]
            let sender = Int(tag / 16)
            check.expect(bqps.firstIndex { $0.qpn == r.qpNum } == sender, "\(r) holds sender \(sender)'s data")
        }
        check.expect(perQP.count == 3 && perQP.values.allSatisfy { $0 == 4 }, "receives per QP: \(perQP)")

        // Limit: 6 posted, limit 4. Consuming 2 leaves 4 (not below): no event; one more: event.
        try srq.postRecv((0..<6).map { RecvWR(wrId: UInt64(200 + $0), sges: [sink.mr.sge(offset: $0 * 1024, length: 1024)]) })
        try srq.setLimit(4)
        check.expectEqual(try srq.query().limit, 4, "QUERY_SRQ limit")
        for i in 0..<2 { try senders[0].send(wrId: UInt64(10 + i), length: 8) }
        _ = try sink.recvCQ.wait(for: 2)
        check.expect(try h.b.waitForEvent(.srqLimitReached, handle: srq.handle, timeoutMilliseconds: 50) == nil, "limit event too early")
        try senders[0].send(wrId: 12, length: 8)
        _ = try sink.recvCQ.wait(for: 1)
        check.expect(try h.b.waitForEvent(.srqLimitReached, handle: srq.handle) != nil, "no SRQ_LIMIT_REACHED")
        check.expectEqual(try srq.query().limit, 0, "QUERY_SRQ limit after the event (it disarms)")
        try senders[0].send(wrId: 13, length: 8)
        _ = try sink.recvCQ.wait(for: 1)
        check.expect(try h.b.waitForEvent(.srqLimitReached, handle: srq.handle, timeoutMilliseconds: 50) == nil, "a second limit event")
    },
]

/// The 40 bytes before a UD payload. Between IPv4-mapped GIDs (RoCEv2 over IPv4): 20 zero bytes,
/// then an IPv4 header (IHL 5, TOS = traffic class, TTL = hop limit, UDP, the addresses, a valid
/// checksum); otherwise an IPv6 header. The CQE names which, and carries no VLAN, SL or P_Key index.
private func checkGRH(_ check: Checks, _ grh: [UInt8], _ wc: Completion, source: GID, destination: GID, checksumMayBeZero: Bool) {
    let isIPv4Mapped = { (gid: GID) in gid.bytes[0..<10].allSatisfy { $0 == 0 } && gid.bytes[10] == 0xff && gid.bytes[11] == 0xff }
    if isIPv4Mapped(source) && isIPv4Mapped(destination) {
        check.expect(grh[0..<20].allSatisfy { $0 == 0 }, "GRH bytes 0-19 must be zero for an IPv4 datagram: \(grh)")
        let ip = Array(grh[20..<40])
        check.expect(ip[0] == 0x45 && ip[1] == 0 && ip[8] == 64 && ip[9] == 17, "IPv4 header: \(ip)")
        check.expect(Array(ip[12..<16]) == Array(source.bytes[12...]) && Array(ip[16..<20]) == Array(destination.bytes[12...]),
                     "IPv4 addresses: \(ip)")
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        // A NIC may hand over the header without its checksum (rxe's loopback does).
        check.expect(sum == 0xffff || (checksumMayBeZero && ip[10] == 0 && ip[11] == 0), "IPv4 header checksum does not verify: \(ip)")
        check.expectEqual(wc.networkHdrType, UInt8(VIRTIO_RDMA_NETWORK_IPV4), "network_hdr_type")
    } else {
        // Version 6, traffic class 0, next header UDP, hop limit 64, then the two GIDs.
        check.expect(grh[0] == 0x60 && grh[6] == 17 && grh[7] == 64, "IPv6 header: \(grh)")
        check.expect(Array(grh[8..<24]) == source.bytes && Array(grh[24..<40]) == destination.bytes, "IPv6 addresses: \(grh)")
        check.expectEqual(wc.networkHdrType, UInt8(VIRTIO_RDMA_NETWORK_IPV6), "network_hdr_type")
    }
    check.expect(wc.vlanID == 0xffff && wc.sl == 0 && wc.pkeyIndex == 0, "vlan_id, sl, pkey_index: \(wc)")
}
