// SPDX-License-Identifier: Apache-2.0
// One host verbs object per guest object. Each holds what it was created from (so it is destroyed
// after everything that uses it: a QP keeps its CQs and PD alive) and destroys itself in deinit.
// Posting and polling take caller-built structs: the data path allocates nothing here.
import CIBVerbs
import CLinuxShims
import Glibc

public final class HostProtectionDomain: @unchecked Sendable {
    let host: HostContext
    let pd: UnsafeMutablePointer<ibv_pd>

    public init(_ host: HostContext) throws(HostVerbsError) {
        guard let pd = ibv_alloc_pd(host.context) else { throw .last("ibv_alloc_pd") }
        self.host = host
        self.pd = pd
    }

    deinit { ibv_dealloc_pd(pd) }
}

/// A guest MR registered for the NIC without copying: the guest pages, scattered in the daemon's
/// mappings of guest RAM, are mapped again side by side into one window, and the window is
/// registered with the guest's IOVA, so guest SGEs and remote addresses pass through unchanged.
public final class HostMemoryRegion: @unchecked Sendable {
    let pd: HostProtectionDomain
    let mr: UnsafeMutablePointer<ibv_mr>
    let window: UnsafeMutableRawPointer
    let windowLength: Int
    /// Where each run of the window came from (host addresses of guest RAM), to notice when a
    /// memory-table change moved the guest's pages.
    public let sources: [UnsafeMutableRawPointer]
    public var lkey: UInt32 { mr.pointee.lkey }
    public var rkey: UInt32 { mr.pointee.rkey }

    /// `runs` are page-aligned host ranges of guest RAM in MR order; the MR starts `offset` bytes
    /// into the first and is `length` bytes long.
    public init(pd: HostProtectionDomain, runs: [(UnsafeMutableRawPointer, Int)], offset: Int, length: Int, iova: UInt64,
                access: Int32) throws(HostVerbsError) {
        let total = runs.reduce(0) { $0 + $1.1 }
        precondition(total > 0 && offset + length <= total, "MR runs do not cover the MR")
        guard let w = mmap(nil, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), w != MAP_FAILED else {
            throw .last("mmap(\(total) bytes of address space for an MR window)")
        }
        var at = 0
        for (source, count) in runs {
            let p = CLinuxShims_duplicate_mapping(source, count, w + at)
            guard p == w + at else {
                let e = HostVerbsError.last("mremap(duplicate \(count) bytes of guest RAM into an MR window)")
                munmap(w, total)
                throw e
            }
            at += count
        }
        guard let mr = ibv_reg_mr_iova2(pd.pd, w + offset, length, iova, UInt32(bitPattern: access)) else {
            let e = HostVerbsError.last("ibv_reg_mr_iova2(\(length) bytes at IOVA 0x\(String(iova, radix: 16)))")
            munmap(w, total)
            throw e
        }
        self.pd = pd
        self.mr = mr
        window = w
        windowLength = total
        sources = runs.map(\.0)
    }

    deinit {
        ibv_dereg_mr(mr)
        munmap(window, windowLength)
    }
}

public final class HostCompletionQueue: @unchecked Sendable {
    let host: HostContext
    let cq: UnsafeMutablePointer<ibv_cq>
    /// Names the CQ in an async event.
    public struct ID: Hashable, Sendable {
        let raw: UInt
        init(_ cq: UnsafeMutablePointer<ibv_cq>?) { raw = UInt(bitPattern: cq) }
    }
    public var id: ID { ID(cq) }

    public init(_ host: HostContext, depth: Int32) throws(HostVerbsError) {
        guard let cq = ibv_create_cq(host.context, depth, nil, host.channel, 0) else { throw .last("ibv_create_cq(\(depth))") }
        self.host = host
        self.cq = cq
    }

    deinit { ibv_destroy_cq(cq) }

    /// Up to `count` completions into `into`; a negative value is a host error.
    @inline(__always)
    public func poll(_ into: UnsafeMutablePointer<ibv_wc>, count: Int32) -> Int32 { ibv_poll_cq(cq, count, into) }

    /// The next completion raises an event on the context's channel.
    public func arm() { _ = ibv_req_notify_cq(cq, 0) }
}

public final class HostSharedReceiveQueue: @unchecked Sendable {
    let pd: HostProtectionDomain
    let srq: UnsafeMutablePointer<ibv_srq>

    public init(pd: HostProtectionDomain, depth: UInt32, maxSGE: UInt32) throws(HostVerbsError) {
        var attr = ibv_srq_init_attr()
        attr.attr.max_wr = depth
        attr.attr.max_sge = max(1, maxSGE)
        guard let srq = ibv_create_srq(pd.pd, &attr) else { throw .last("ibv_create_srq(\(depth) WRs, \(maxSGE) SGEs)") }
        self.pd = pd
        self.srq = srq
    }

    deinit { ibv_destroy_srq(srq) }

    @inline(__always)
    public func post(_ wr: inout ibv_recv_wr) -> Int32 {
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        return ibv_post_srq_recv(srq, &wr, &bad)
    }
}

public final class HostQueuePair: @unchecked Sendable {
    let pd: HostProtectionDomain
    let sendCQ: HostCompletionQueue
    let recvCQ: HostCompletionQueue
    let srq: HostSharedReceiveQueue?
    let qp: UnsafeMutablePointer<ibv_qp>
    public var qpn: UInt32 { qp.pointee.qp_num }

    public init(pd: HostProtectionDomain, sendCQ: HostCompletionQueue, recvCQ: HostCompletionQueue, srq: HostSharedReceiveQueue?,
                type: ibv_qp_type, capabilities: ibv_qp_cap) throws(HostVerbsError) {
        var attr = ibv_qp_init_attr()
        attr.send_cq = sendCQ.cq
        attr.recv_cq = recvCQ.cq
        attr.srq = srq?.srq
        attr.cap = capabilities
        attr.qp_type = type
        // Every WR is signaled on the host: the device decides which CQEs the guest sees.
        attr.sq_sig_all = 1
        guard let qp = ibv_create_qp(pd.pd, &attr) else {
            throw .last("ibv_create_qp(\(capabilities.max_send_wr)/\(capabilities.max_recv_wr) WRs, \(capabilities.max_send_sge)/\(capabilities.max_recv_sge) SGEs, \(capabilities.max_inline_data) inline)")
        }
        self.pd = pd; self.sendCQ = sendCQ; self.recvCQ = recvCQ; self.srq = srq
        self.qp = qp
    }

    deinit { ibv_destroy_qp(qp) }

    public func modify(_ attr: inout ibv_qp_attr, mask: Int32) throws(HostVerbsError) {
        let rc = ibv_modify_qp(qp, &attr, mask)
        guard rc == 0 else { throw .last("ibv_modify_qp(QPN \(qpn), mask 0x\(String(mask, radix: 16)))", rc) }
    }

    /// The host's PSNs now (what QUERY_QP reports once the QP runs).
    public func currentPSNs() -> (sq: UInt32, rq: UInt32)? {
        var attr = ibv_qp_attr()
        var initAttr = ibv_qp_init_attr()
        guard ibv_query_qp(qp, &attr, Int32(IBV_QP_SQ_PSN.rawValue | IBV_QP_RQ_PSN.rawValue), &initAttr) == 0 else { return nil }
        return (attr.sq_psn, attr.rq_psn)
    }

    @inline(__always)
    public func post(_ wr: inout ibv_send_wr) -> Int32 {
        var bad: UnsafeMutablePointer<ibv_send_wr>?
        return ibv_post_send(qp, &wr, &bad)
    }

    @inline(__always)
    public func post(_ wr: inout ibv_recv_wr) -> Int32 {
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        return ibv_post_recv(qp, &wr, &bad)
    }
}

public final class HostAddressHandle: @unchecked Sendable {
    let pd: HostProtectionDomain
    public let ah: UnsafeMutablePointer<ibv_ah>

    public init(pd: HostProtectionDomain, attributes: inout ibv_ah_attr) throws(HostVerbsError) {
        guard let ah = ibv_create_ah(pd.pd, &attributes) else { throw .last("ibv_create_ah") }
        self.pd = pd
        self.ah = ah
    }

    deinit { ibv_destroy_ah(ah) }
}
