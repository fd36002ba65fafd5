// SPDX-License-Identifier: Apache-2.0
// The QP state machine as the guest sees it through MODIFY_QP and QUERY_QP: every (from, to) pair,
// legal and illegal, with the statuses of docs/virtio-rdma.md §10.5/§14.2 and the state unchanged
// after a refusal; missing and disallowed attributes; flushing on ERR (in order, even unsignaled);
// RESET emptying rings without CQEs; WQEs waiting before RTS; destroy with work in flight. A peer
// that stops answering (RETRY_EXC_ERR) is in the conformance suite.
import CVRDMAABI
import Glibc
import Testing
import VRDMAConformance
import VRDMATestSupport

@Suite("Verbs: QP states", .serialized)
struct QPStateTests {
    /// The transitions §14.2 lists (any -> RESET and any -> ERR included).
    static func isLegal(_ from: QPState, _ to: QPState) -> Bool {
        if to == .reset || to == .error { return true }
        switch (from, to) {
        case (.reset, .initialized), (.initialized, .initialized), (.initialized, .rtr), (.rtr, .rts), (.rts, .rts),
             (.sqd, .rts), (.rts, .sqd), (.sqd, .sqd):
            return true
        default:
            return false
        }
    }

    /// The attributes a test passes for `from` -> `to`: exactly the required ones for a legal
    /// transition; for an illegal one, what the target state's usual entry needs, so that only the
    /// pair is wrong.
    static func attributes(_ qp: QueuePair, peer: QueuePair, from: QPState, to: QPState) -> QPAttributes {
        switch to {
        case .initialized: from == .initialized ? QPAttributes(state: .initialized) : qp.initAttributes()
        case .rtr: qp.rtrAttributes(remote: peer)
        case .rts: (from == .rts || from == .sqd) ? QPAttributes(state: .rts) : qp.rtsAttributes()
        default: QPAttributes(state: to)
        }
    }

    /// Drives a fresh QP to `state` along legal transitions.
    static func drive(_ qp: QueuePair, peer: QueuePair, to state: QPState) throws {
        let path: [QPState] = switch state {
        case .reset: []
        case .initialized: [.initialized]
        case .rtr: [.initialized, .rtr]
        case .rts: [.initialized, .rtr, .rts]
        case .sqd: [.initialized, .rtr, .rts, .sqd]
        case .error: [.initialized, .error]
        default: []
        }
        var current = QPState.reset
        for next in path {
            try qp.modify(attributes(qp, peer: peer, from: current, to: next))
            current = next
        }
    }

    @Test("every RC transition: legal ones succeed, illegal ones are BAD_STATE and change nothing")
    func transitionTable() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a)
        let peer = try Endpoint(vms.b)
        // SQE cannot be reached on this device (§14.1), so it appears only as a target.
        let froms: [QPState] = [.reset, .initialized, .rtr, .rts, .sqd, .error]
        var failures: [String] = []
        for from in froms {
            for to in QPState.allCases {
                let qp = try a.anotherQP()
                try Self.drive(qp, peer: peer.qp, to: from)
                guard try qp.state() == from else {
                    failures.append("\(from) not reached: QUERY_QP says \(try qp.state())")
                    continue
                }
                let status = try statusOf { try qp.modify(Self.attributes(qp, peer: peer.qp, from: from, to: to)) }
                let expected: CommandStatus = Self.isLegal(from, to) ? .ok : .badState
                if status != expected { failures.append("\(from) -> \(to): \(status), expected \(expected)") }
                let after = try qp.state()
                let expectedState = status == .ok ? to : from
                if after != expectedState { failures.append("\(from) -> \(to): state \(after) afterwards, expected \(expectedState)") }
                // Destroy works in every state.
                try qp.destroy()
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        vms.expectAlive()
    }

    @Test("a missing required attribute, or one not allowed, is INVALID and leaves the QP as it was")
    func requiredAttributes() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a)
        let peer = try Endpoint(vms.b)
        typealias Drop = WritableKeyPath<QPAttributes, UInt8?>
        var failures: [String] = []
        func check(_ name: String, from: QPState, _ edit: (inout QPAttributes) -> Void, expected: CommandStatus = .invalid) throws {
            let qp = try a.anotherQP()
            try Self.drive(qp, peer: peer.qp, to: from)
            let to: QPState = from == .reset ? .initialized : from == .initialized ? .rtr : .rts
            var attrs = Self.attributes(qp, peer: peer.qp, from: from, to: to)
            edit(&attrs)
            let status = try statusOf { try qp.modify(attrs) }
            if status != expected { failures.append("\(name): \(status), expected \(expected)") }
            let after = try qp.state()
            if after != from { failures.append("\(name): state \(after), expected \(from) unchanged") }
            try qp.destroy()
        }
        // RESET -> INIT (RC): PKEY_INDEX PORT ACCESS_FLAGS.
        try check("INIT without PKEY_INDEX", from: .reset) { $0.pkeyIndex = nil }
        try check("INIT without PORT", from: .reset) { $0.port = nil }
        try check("INIT without ACCESS_FLAGS", from: .reset) { $0.accessFlags = nil }
        try check("INIT with QKEY (not allowed for RC)", from: .reset) { $0.qkey = 7 }
        // INIT -> RTR (RC).
        try check("RTR without AV", from: .initialized) { $0.av = nil }
        try check("RTR without PATH_MTU", from: .initialized) { $0.pathMTU = nil }
        try check("RTR without DEST_QPN", from: .initialized) { $0.destQPN = nil }
        try check("RTR without RQ_PSN", from: .initialized) { $0.rqPSN = nil }
        try check("RTR without MAX_DEST_RD_ATOMIC", from: .initialized) { $0.maxDestRdAtomic = nil }
        try check("RTR without MIN_RNR_TIMER", from: .initialized) { $0.minRNRTimer = nil }
        try check("RTR with SQ_PSN (not allowed)", from: .initialized) { $0.sqPSN = 1 }
        try check("RTR with ALT_PATH (removed in this ABI)", from: .initialized) { $0.extraMask = .altPath }
        // RTR -> RTS (RC).
        try check("RTS without SQ_PSN", from: .rtr) { $0.sqPSN = nil }
        try check("RTS without TIMEOUT", from: .rtr) { $0.timeout = nil }
        try check("RTS without RETRY_CNT", from: .rtr) { $0.retryCount = nil }
        try check("RTS without RNR_RETRY", from: .rtr) { $0.rnrRetry = nil }
        try check("RTS without MAX_QP_RD_ATOMIC", from: .rtr) { $0.maxRdAtomic = nil }
        try check("RTS with CAP (QPs cannot be resized)", from: .rtr) { $0.extraMask = .cap }
        // Values out of range (§14.3).
        try check("path_mtu 6", from: .initialized) { $0.pathMTU = 6 }
        try check("dest_qp_num >= 2^24", from: .initialized) { $0.destQPN = 1 << 24 }
        try check("retry_cnt 8", from: .rtr) { $0.retryCount = 8 }
        try check("port 2", from: .reset) { $0.port = 2 }
        try check("pkey_index beyond the table", from: .reset) { $0.pkeyIndex = 1 }
        try check("AV naming an empty GID entry", from: .initialized) { $0.av?.sgidIndex = 9 }
        try check("undefined mask bit", from: .reset) { $0.extraMask = QPAttrMask(rawValue: 1 << 30) }
        // CUR_STATE that does not match: BAD_STATE.
        try check("CUR_STATE mismatch", from: .rtr, { $0.currentState = .initialized }, expected: .badState)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        // A modify of a QPN that does not exist.
        expectStatus(.badHandle, "MODIFY_QP of an unknown QPN") { try vms.a.modifyQP(qpn: 0xabcdef, QPAttributes(state: .error)) }
        vms.expectAlive()
    }

    @Test("UD transitions: QKEY required for INIT, nothing for RTR, SQ_PSN for RTS")
    func udTransitions() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a, type: .ud)
        var noQKey = a.qp.initAttributes()
        noQKey.qkey = nil
        expectStatus(.invalid, "a.qp.modify(noQKey)") { try a.qp.modify(noQKey) }
        var withAccess = a.qp.initAttributes()
        withAccess.accessFlags = .all
        expectStatus(.invalid, "ACCESS_FLAGS is not a UD attribute") { try a.qp.modify(withAccess) }
        #expect(stateOf(a.qp) == .reset)
        try a.qp.modify(a.qp.initAttributes(qkey: 0x42))
        try a.qp.modify(QPAttributes(state: .rtr))
        expectStatus(.invalid, "RTS without SQ_PSN") { try a.qp.modify(QPAttributes(state: .rts)) }
        #expect(stateOf(a.qp) == .rtr)
        try a.qp.modify(a.qp.rtsAttributes())
        let info = try a.qp.query()
        #expect(info.state == .rts && info.qkey == 0x42 && info.sqPSN == a.qp.initialPSN)
        vms.expectAlive()
    }

    @Test("QUERY_QP reports what MODIFY_QP set, and the ring capabilities")
    func queryReportsAttributes() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        let info = try a.qp.query()
        #expect(info.state == .rts && info.qpn == a.qp.qpn)
        #expect(info.destQPN == b.qp.qpn)
        #expect(info.rqPSN == b.qp.initialPSN && info.sqPSN == a.qp.initialPSN)
        #expect(info.pathMTU == 3 && info.timeout == 14 && info.retryCount == 7 && info.rnrRetry == 7 && info.minRNRTimer == 1)
        #expect(info.accessFlags == .all && info.port == 1)
        #expect(info.av.dgid == vmGID(1) && info.av.sgidIndex == 1)
        #expect(info.maxSendWR == 64 && info.maxRecvWR == 64 && info.maxSendSGE == 4 && info.maxRecvSGE == 4 && info.maxInlineData == 64)
        // PSNs advance one per MTU-sized packet: a 2500-byte SEND is three packets at MTU 1024.
        try b.postRecv(wrId: 1)
        try a.send(wrId: 1, length: 2500)
        _ = try a.sendCQ.waitOne()
        let sqPSN = try a.qp.query().sqPSN, rqPSN = try b.qp.query().rqPSN
        #expect(sqPSN == (a.qp.initialPSN + 3) & 0xff_ffff, "sq_psn \(sqPSN) after 3 packets from \(a.qp.initialPSN)")
        #expect(rqPSN == (a.qp.initialPSN + 3) & 0xff_ffff, "rq_psn \(rqPSN) after 3 packets from \(a.qp.initialPSN)")
        vms.expectAlive()
    }

    @Test("to ERR: every posted WQE completes WR_FLUSH_ERR in order, unsignaled ones too, and later posts as well")
    func flushOnError() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a)
        let b = try Endpoint(vms.b)
        // RTR: send WQEs wait, receive WQEs are accepted.
        try a.qp.modify(a.qp.initAttributes())
        try a.qp.modify(a.qp.rtrAttributes(remote: b.qp))
        for i in 0..<5 { try a.send(wrId: UInt64(10 + i), length: 8, flags: i % 2 == 0 ? .signaled : []) }
        for i in 0..<5 { try a.postRecv(wrId: UInt64(20 + i)) }
        #expect(a.sendCQ.drain(waitingMilliseconds: 30).isEmpty, "send WQEs ran before RTS")
        #expect(a.recvCQ.poll().isEmpty)
        try a.qp.modify(QPAttributes(state: .error))
        let sends = try a.sendCQ.wait(for: 5)
        let recvs = try a.recvCQ.wait(for: 5)
        #expect(sends.map(\.wrId) == [10, 11, 12, 13, 14], "\(sends)")
        #expect(recvs.map(\.wrId) == [20, 21, 22, 23, 24], "\(recvs)")
        #expect((sends + recvs).allSatisfy { $0.status == .wrFlushErr && $0.qpNum == a.qp.qpn }, "\(sends + recvs)")
        // Posted in ERR: flushed as well.
        try a.send(wrId: 30, length: 8, flags: [])
        try a.postRecv(wrId: 31)
        expectWC(try a.sendCQ.waitOne(), wrId: 30, status: .wrFlushErr, qpn: a.qp.qpn)
        expectWC(try a.recvCQ.waitOne(), wrId: 31, status: .wrFlushErr, qpn: a.qp.qpn)
        #expect(stateOf(a.qp) == .error)
        vms.expectAlive()
    }

    @Test("to RESET: rings emptied without CQEs; the QP can be connected again and carries traffic")
    func resetAndReuse() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms)
        try b.postRecv(wrId: 1)
        try a.send(wrId: 1, length: 16)
        _ = try a.sendCQ.waitOne()
        _ = try b.recvCQ.waitOne()
        // Back through RESET: WQEs waiting in INIT vanish without CQEs.
        try a.qp.modify(QPAttributes(state: .reset))
        try a.qp.modify(a.qp.initAttributes())
        for i in 0..<3 { try a.send(wrId: UInt64(100 + i), length: 8) }
        try a.postRecv(wrId: 200)
        try a.qp.modify(QPAttributes(state: .reset))
        #expect(a.sendCQ.drain(waitingMilliseconds: 30).isEmpty && a.recvCQ.poll().isEmpty, "RESET produced CQEs")
        #expect(a.qp.sq.doorbell.deviceIndex == a.qp.sq.doorbell.driverIndex, "SQ device_index not brought to driver_index")
        #expect(a.qp.rq!.doorbell.deviceIndex == a.qp.rq!.doorbell.driverIndex, "RQ device_index not brought to driver_index")
        let info = try a.qp.query()
        #expect(info.state == .reset && info.destQPN == 0 && info.sqPSN == 0 && info.rqPSN == 0 && info.timeout == 0,
                "attributes not cleared by RESET: state \(info.state) dest_qp \(info.destQPN) sq_psn \(info.sqPSN) rq_psn \(info.rqPSN) timeout \(info.timeout) mask 0x\(String(UInt32(littleEndian: info.raw.attr_mask), radix: 16))")
        // Reconnect to a fresh peer QP (the old one still expects the old PSNs).
        let b2 = try Endpoint(vms.b)
        try QueuePair.connect(a.qp, b2.qp)
        try b2.postRecv(wrId: 7)
        b2.mr.fill(0)
        a.mr.write(pattern(100, seed: 3))
        try a.send(wrId: 8, length: 100)
        expectWC(try a.sendCQ.waitOne(), wrId: 8, status: .success)
        expectWC(try b2.recvCQ.waitOne(), wrId: 7, status: .success, byteLen: 100)
        #expect(b2.mr.read(100) == pattern(100, seed: 3))
        #expect(b2.recvCQ.drain(waitingMilliseconds: 20).isEmpty, "WQEs dropped by RESET were executed")
        vms.expectAlive()
    }

    @Test("a QP in RTR receives; the first packet raises COMM_EST")
    func receiveInRTR() throws {
        let vms = try VMs()
        let a = try Endpoint(vms.a)
        let b = try Endpoint(vms.b)
        try a.qp.connect(to: b.qp)
        try b.qp.modify(b.qp.initAttributes())
        try b.qp.modify(b.qp.rtrAttributes(remote: a.qp))
        try b.postRecv(wrId: 1)
        try a.send(wrId: 2, length: 32)
        expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .success)
        expectWC(try b.recvCQ.waitOne(), wrId: 1, status: .success, byteLen: 32)
        #expect(try vms.b.waitForEvent(.commEst, handle: b.qp.qpn) != nil, "no COMM_EST")
        vms.expectAlive()
    }

    @Test("destroy with work in flight: the daemon survives, no CQE after the destroy, the peer undisturbed")
    func destroyInFlight() throws {
        let vms = try VMs()
        let (a, b) = try connectedPair(vms, mrSize: 1 << 20)
        // Requester destroyed mid-stream.
        for i in 0..<48 {
            try a.qp.postSend(SendWR(wrId: UInt64(i), opcode: .rdmaWrite, sges: [a.mr.sge(offset: 0, length: 256 << 10)],
                                     remoteAddr: b.mr.address(0), rkey: b.mr.rkey))
        }
        try a.qp.destroy()
        let produced = a.sendCQ.doorbell.deviceIndex
        usleep(50_000)
        #expect(a.sendCQ.doorbell.deviceIndex == produced, "CQEs written after DESTROY_QP returned")
        expectStatus(.badHandle, "a.qp.query()") { _ = try a.qp.query() }
        #expect(stateOf(b.qp) == .rts, "the responder was disturbed")
        vms.expectAlive()
    }
}
