// SPDX-License-Identifier: Apache-2.0
// The resource commands: each decodes its request, checks every field against the device's
// limits, guest RAM and the tables (nothing changes until all checks pass), then acts.
import CVRDMAABI
import VirtQueue

/// A request body as bytes, read as the ABI struct it must be at least as long as.
struct RequestBody {
    let bytes: UnsafeRawBufferPointer

    func decode<T>(_: T.Type) throws(CommandError) -> T {
        guard bytes.count >= MemoryLayout<T>.size else {
            throw .invalid("request of \(bytes.count) bytes, \(T.self) needs \(MemoryLayout<T>.size)")
        }
        return bytes.loadUnaligned(as: T.self)
    }
}

/// Reserved request fields must be zero, so that a later ABI can give them meaning.
func requireZeroReserved(_ values: UInt64...) throws(CommandError) {
    guard values.allSatisfy({ $0 == 0 }) else { throw .invalid("a reserved field is not zero") }
}

func encode<T>(_ value: T) -> [UInt8] {
    var v = value
    return withUnsafeBytes(of: &v) { Array($0) }
}

extension Engine {
    // MARK: contexts and PDs

    func createContext() throws(CommandError) -> [UInt8] {
        let id = try contexts.reserve()
        contexts.insert(id, UserContext(handle: id))
        var r = virtio_rdma_rsp_create_ucontext()
        r.ctx_handle = id.littleEndian
        return encode(r)
    }

    /// Context 0 is the kernel's and always exists.
    func checkContext(_ handle: UInt32) throws(CommandError) {
        guard handle == 0 || contexts.get(handle) != nil else { throw .badHandle("no context \(handle)") }
    }

    /// An object a command names must belong to the command's context: another context's
    /// handle is as unknown as one never minted.
    func checkOwner(_ owner: UInt32, context: UInt32, _ what: String, _ handle: UInt32) throws(CommandError) {
        guard owner == context else { throw .badHandle("no \(what) \(handle) in context \(context)") }
    }

    /// The handle of a request that names one object (struct virtio_rdma_cmd_handle).
    func handle(_ body: RequestBody) throws(CommandError) -> UInt32 {
        let c = try body.decode(virtio_rdma_cmd_handle.self)
        try requireZeroReserved(UInt64(c.reserved))
        return UInt32(littleEndian: c.handle)
    }

    func destroyContext(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let handle = try handle(body)
        guard handle != 0 else { throw .invalid("context 0 belongs to the kernel") }
        _ = try contexts.lookup(handle)
        // What the context owns goes, users before what they use.
        for qp in qps.objects.values where qp.context == handle { destroy(qp) }
        for srq in srqs.objects.values where srq.context == handle { destroy(srq) }
        for cq in cqs.objects.values where cq.context == handle { cqs.remove(cq.handle) }
        for mr in mrs.objects.values where mr.context == handle { destroy(mr) }
        for ah in ahs.objects.values where ah.context == handle { ah.pd.users -= 1; ahs.remove(ah.handle) }
        for pd in pds.objects.values where pd.context == handle { pds.remove(pd.handle) }
        contexts.remove(handle)
        return []
    }

    func allocPD(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_alloc_pd.self)
        try requireZeroReserved(UInt64(c.reserved))
        let context = UInt32(littleEndian: c.ctx_handle)
        try checkContext(context)
        let handle = try pds.reserve()
        let pd = ProtectionDomain(handle: handle, context: context)
        if let host { try hostAllocPD(pd, host) }
        pds.insert(handle, pd)
        var r = virtio_rdma_rsp_alloc_pd()
        r.pd_handle = handle.littleEndian
        return encode(r)
    }

    func deallocPD(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let handle = try handle(body)
        let pd = try pds.lookup(handle)
        guard pd.users == 0 else { throw .busy("PD \(handle) still has \(pd.users) objects") }
        pds.remove(handle)
        return []
    }

    // MARK: memory regions

    func registerMR(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_reg_mr.self)
        let pd = try pds.lookup(UInt32(littleEndian: c.pd_handle))
        let access = UInt32(littleEndian: c.access)
        let flags = UInt32(littleEndian: c.flags)
        let iova = UInt64(littleEndian: c.iova)
        var length = UInt64(littleEndian: c.length)
        let allAccess = UInt32(VIRTIO_RDMA_ACCESS_LOCAL_WRITE | VIRTIO_RDMA_ACCESS_REMOTE_WRITE
                               | VIRTIO_RDMA_ACCESS_REMOTE_READ | VIRTIO_RDMA_ACCESS_REMOTE_ATOMIC)
        guard access & ~allAccess == 0 else { throw .invalid("access flags 0x\(String(access, radix: 16))") }
        // IB rule: remote write or atomic needs local write.
        if access & UInt32(VIRTIO_RDMA_ACCESS_REMOTE_WRITE | VIRTIO_RDMA_ACCESS_REMOTE_ATOMIC) != 0 {
            guard access & UInt32(VIRTIO_RDMA_ACCESS_LOCAL_WRITE) != 0 else { throw .invalid("remote write/atomic without local write") }
        }
        try requireZeroReserved(UInt64(c.reserved))
        guard flags & ~VIRTIO_RDMA_MR_DMA == 0 else { throw .invalid("REG_MR flags 0x\(String(flags, radix: 16))") }
        let dma = flags & VIRTIO_RDMA_MR_DMA != 0
        var pages: [UInt64] = []
        if dma {
            guard iova == 0, length == 0, UInt32(littleEndian: c.pages.npages) == 0, c.pages.gpa == 0 else {
                throw .invalid("the DMA MR takes no IOVA, length or page list")
            }
            // All of guest RAM is the kernel's to hand out, never a process's.
            guard pd.context == 0 else { throw .access("a DMA MR needs a kernel PD") }
            length = memory.regions.last.map { $0.region.guestPhysicalAddress + $0.region.size } ?? 0
            guard length > 0 else { throw .invalid("no guest RAM yet") }
        } else {
            guard length > 0 else { throw .invalid("MR of length 0") }
            guard length <= configuration.maxMRSize else { throw .invalid("MR of \(length) bytes, at most \(configuration.maxMRSize)") }
            let (end, overflow) = iova.addingReportingOverflow(length)
            guard !overflow else { throw .invalid("IOVA range wraps") }
            let first = iova & ~(pageSize - 1)
            let spanned = (end - first + pageSize - 1) / pageSize
            guard UInt64(UInt32(littleEndian: c.pages.npages)) == spanned else {
                throw .invalid("\(UInt32(littleEndian: c.pages.npages)) pages given, the range spans \(spanned)")
            }
            // More pages than the guest has would only repeat pages; refusing it also bounds the
            // host memory a page list can make the device allocate.
            let ram = memory.regions.reduce(UInt64(0)) { $0 + $1.region.size }
            guard spanned * pageSize <= ram else { throw .invalid("MR of \(spanned) pages, guest RAM has \(ram / pageSize)") }
            guard pinnedBytes + spanned * pageSize <= configuration.maxPinnedBytes else {
                throw .noResources("pinned-memory quota of \(configuration.maxPinnedBytes) bytes")
            }
            pages = try PageList.read(c.pages, memory: memory, maxPages: Int(spanned))
        }
        let key = try mrs.reserve()
        let remote = access & UInt32(VIRTIO_RDMA_ACCESS_REMOTE_WRITE | VIRTIO_RDMA_ACCESS_REMOTE_READ | VIRTIO_RDMA_ACCESS_REMOTE_ATOMIC) != 0
        let mr = MemoryRegion(lkey: key, rkey: remote ? key : 0, pd: pd, context: pd.context, access: access,
                              iova: iova, length: length, pages: pages, dma: dma)
        if let host { try hostRegister(mr, host) }
        mrs.insert(key, mr)
        pd.users += 1
        pinnedBytes += UInt64(pages.count) * pageSize
        var r = virtio_rdma_rsp_reg_mr()
        r.lkey = mr.lkey.littleEndian
        r.rkey = mr.rkey.littleEndian
        return encode(r)
    }

    func deregisterMR(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let key = try handle(body)
        destroy(try mrs.lookup(key))
        return []
    }

    private func destroy(_ mr: MemoryRegion) {
        if let host { hostDeregister(mr, host) }
        mrs.remove(mr.lkey)
        mr.pd.users -= 1
        pinnedBytes -= UInt64(mr.pages.count) * pageSize
    }

    // MARK: completion queues

    private func makeCQRing(depth: UInt32, doorbell: UInt64, ring: virtio_rdma_page_list) throws(CommandError) -> (GuestRing, DoorbellRecord) {
        guard depth >= 1, depth <= configuration.maxCQE, depth.nonzeroBitCount == 1 else {
            throw .invalid("CQ depth \(depth) must be a power of two in 1...\(configuration.maxCQE)")
        }
        let record = try DoorbellRecord(gpa: doorbell, memory: memory)
        return (try GuestRing(depth: depth, shift: 6, pageList: ring, memory: memory), record)
    }

    func createCQ(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_create_cq.self)
        let context = UInt32(littleEndian: c.ctx_handle)
        try checkContext(context)
        let depth = UInt32(littleEndian: c.depth)
        let handle = try cqs.reserve()
        let (ring, doorbell) = try makeCQRing(depth: depth, doorbell: UInt64(littleEndian: c.doorbell_gpa), ring: c.ring)
        let cq = CompletionQueue(handle: handle, context: context, ring: ring, doorbell: doorbell)
        if let host { try hostCreateCQ(cq, host) }
        cqs.insert(handle, cq)
        var r = virtio_rdma_rsp_create_cq()
        r.cq_handle = handle.littleEndian
        r.depth = depth.littleEndian
        return encode(r)
    }

    func resizeCQ(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_resize_cq.self)
        let cq = try cqs.lookup(UInt32(littleEndian: c.cq_handle))
        let depth = UInt32(littleEndian: c.depth)
        // The host CQ was made for the old depth; more completions than it holds would be lost.
        guard host == nil || depth <= cq.depth else { throw .unsupported }
        let (ring, doorbell) = try makeCQRing(depth: depth, doorbell: UInt64(littleEndian: c.doorbell_gpa), ring: c.ring)
        try cq.resize(ring: ring, doorbell: doorbell)
        var r = virtio_rdma_rsp_create_cq()
        r.cq_handle = cq.handle.littleEndian
        r.depth = depth.littleEndian
        return encode(r)
    }

    func destroyCQ(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let handle = try handle(body)
        let cq = try cqs.lookup(handle)
        guard cq.users == 0 else { throw .busy("CQ \(handle) is used by \(cq.users) QPs") }
        cqs.remove(handle)
        return []
    }

    // MARK: work queue rings

    /// Checks a work queue description; `header` is the WQE header size (64 send, 16 receive).
    private func makeWorkQueue(_ d: virtio_rdma_wq_desc, maxDepth: UInt32, header: Int, inlineAllowed: Bool) throws(CommandError)
        -> (GuestRing, DoorbellRecord, UInt32, UInt32)
    {
        let depth = UInt32(littleEndian: d.depth)
        let maxSGE = UInt32(littleEndian: d.max_sge)
        let maxInline = UInt32(littleEndian: d.max_inline)
        let shift = UInt32(littleEndian: d.wqe_shift)
        guard depth >= 1, depth <= maxDepth, depth.nonzeroBitCount == 1 else {
            throw .invalid("queue depth \(depth) must be a power of two in 1...\(maxDepth)")
        }
        guard maxSGE <= configuration.maxSGE else { throw .invalid("max_sge \(maxSGE) above \(configuration.maxSGE)") }
        guard inlineAllowed || maxInline == 0 else { throw .invalid("inline data on a receive queue") }
        guard maxInline <= configuration.maxInlineData else { throw .invalid("max_inline \(maxInline) above \(configuration.maxInlineData)") }
        guard (6...12).contains(shift) else { throw .invalid("wqe_shift \(shift) outside 6...12") }
        let needed = header + max(Int(maxSGE) * 16, Int(maxInline))
        guard needed <= 1 << Int(shift) else { throw .invalid("a WQE of \(needed) bytes does not fit slots of \(1 << shift)") }
        let doorbell = try DoorbellRecord(gpa: UInt64(littleEndian: d.doorbell_gpa), memory: memory)
        let ring = try GuestRing(depth: depth, shift: shift, pageList: d.ring, memory: memory)
        return (ring, doorbell, maxSGE, maxInline)
    }

    private func isZero<T>(_ value: T) -> Bool {
        var v = value
        return withUnsafeBytes(of: &v) { $0.allSatisfy { $0 == 0 } }
    }

    // MARK: queue pairs

    func createQP(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_create_qp.self)
        let context = UInt32(littleEndian: c.ctx_handle)
        try checkContext(context)
        guard let type = QPType(rawValue: c.qp_type) else { throw .invalid("QP type \(c.qp_type)") }
        guard c.sq_sig_all <= 1 else { throw .invalid("sq_sig_all \(c.sq_sig_all)") }
        let pd = try pds.lookup(UInt32(littleEndian: c.pd_handle))
        let sendCQ = try cqs.lookup(UInt32(littleEndian: c.send_cq))
        let recvCQ = try cqs.lookup(UInt32(littleEndian: c.recv_cq))
        let srqHandle = UInt32(littleEndian: c.srq_handle)
        let srq: SharedReceiveQueue? = srqHandle == 0 ? nil : try srqs.lookup(srqHandle)
        try requireZeroReserved(UInt64(c.reserved))
        try checkOwner(pd.context, context: context, "PD", pd.handle)
        try checkOwner(sendCQ.context, context: context, "CQ", sendCQ.handle)
        try checkOwner(recvCQ.context, context: context, "CQ", recvCQ.handle)
        if let srq { try checkOwner(srq.context, context: context, "SRQ", srqHandle) }
        let qpn: UInt32
        if type == .generalServices {
            // QP1 belongs to the guest kernel's management layer, never to a process.
            guard context == 0 else { throw .invalid("a GSI QP belongs to the kernel context") }
            qpn = UInt32(VIRTIO_RDMA_GSI_QPN)
            try qps.reserveFixed(qpn)
        } else {
            qpn = try qps.reserve()
        }
        let (sq, sqDoorbell, sqSGE, sqInline) = try makeWorkQueue(c.sq, maxDepth: configuration.maxQPWorkRequests,
                                                                 header: Engine.wqeHeaderSize, inlineAllowed: true)
        let window = QueuePair.windowBytes(depth: sq.depth, maxSGE: sqSGE, maxInline: sqInline)
        guard windowBytes + window <= configuration.maxWindowBytes else {
            throw .noResources("QP window of \(window) bytes: the device's \(configuration.maxWindowBytes) are used up")
        }
        var receive: ReceiveQueue?
        if srq != nil {
            guard isZero(c.rq) else { throw .invalid("a QP with an SRQ has no receive queue of its own") }
        } else {
            let (ring, doorbell, sge, _) = try makeWorkQueue(c.rq, maxDepth: configuration.maxQPWorkRequests,
                                                             header: Engine.recvHeaderSize, inlineAllowed: false)
            receive = ReceiveQueue(ring: ring, doorbell: doorbell, maxSGE: sge, hostShadow: host != nil)
        }
        let hostQP = try host.map { _ throws(CommandError) in
            try hostCreateQP(type: type, pd: pd, sendCQ: sendCQ, recvCQ: recvCQ, srq: srq, sq: sq, sqMaxSGE: sqSGE,
                             sqMaxInline: sqInline, receive: receive)
        }
        let qp = QueuePair(qpn: qpn, type: type, context: context, pd: pd, sendCQ: sendCQ, recvCQ: recvCQ, srq: srq,
                           ownReceive: receive, sq: sq, sqDoorbell: sqDoorbell, sqMaxSGE: sqSGE, sqMaxInline: sqInline,
                           signalAll: c.sq_sig_all == 1, engine: self)
        qp.host = hostQP
        windowBytes += window
        if type == .generalServices { qps.insertFixed(qpn, qp) } else { qps.insert(qpn, qp) }
        if let host { hostAdopt(qp, host) }
        activeQPs.append(qp)
        pd.users += 1
        sendCQ.users += 1
        recvCQ.users += 1
        srq?.users += 1
        var r = virtio_rdma_rsp_create_qp()
        r.qpn = qpn.littleEndian
        r.doorbell_queue = UInt32(VIRTIO_RDMA_VQ_DOORBELL_BASE).littleEndian
        return encode(r)
    }

    func destroyQP(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let qpn = try handle(body)
        destroy(try qps.lookup(qpn))
        return []
    }

    /// No CQE is written for a destroyed QP's outstanding work; packets of it in flight are
    /// dropped (its incarnation changes), and its peers time out as on a real fabric.
    private func destroy(_ qp: QueuePair) {
        qp.incarnation.add(1, ordering: .releasing)
        if let host { hostForget(qp, host) }
        qps.remove(qp.qpn)
        activeQPs.removeAll { $0 === qp }
        qp.pd.users -= 1
        qp.sendCQ.users -= 1
        qp.recvCQ.users -= 1
        qp.srq?.users -= 1
        windowBytes -= qp.windowBytes
    }

    func modifyQP(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let a = try body.decode(virtio_rdma_qp_attr.self)
        let qp = try qps.lookup(UInt32(littleEndian: a.qpn))
        let mask = UInt32(littleEndian: a.attr_mask)
        typealias T = QPTransitions
        let current = qp.state
        if mask & T.curState != 0 {
            guard let claimed = QPState(rawValue: a.cur_qp_state), claimed == current else {
                throw .badState("QP \(qp.qpn) is \(current), not state \(a.cur_qp_state)")
            }
        }
        var target = current
        if mask & T.state != 0 {
            guard let s = QPState(rawValue: a.qp_state) else { throw .invalid("QP state \(a.qp_state)") }
            target = s
        }
        guard let rule = T.rule(from: current, to: target, type: qp.type) else {
            throw .badState("QP \(qp.qpn): \(current) -> \(target) is not a legal transition")
        }
        let given = mask & ~(T.state | T.curState)
        guard given & rule.required == rule.required else {
            throw .invalid("QP \(qp.qpn): \(current) -> \(target) needs attributes 0x\(String(rule.required & ~given, radix: 16))")
        }
        guard given & ~(rule.required | rule.optional) == 0 else {
            throw .invalid("QP \(qp.qpn): attributes 0x\(String(given & ~(rule.required | rule.optional), radix: 16)) not allowed in \(current) -> \(target)")
        }
        var attributes = qp.attributes
        try apply(a, mask: given, to: &attributes)
        if let host { try hostModify(qp, a, mask: given, target: target, host) }
        qp.attributes = attributes
        qp.attributesSet |= given
        if target == .error {
            moveToError(qp)
        } else if target != current || target == .reset {
            qp.enter(target)
        }
        return []
    }

    /// Checks each given attribute's value and copies it; throws before changing anything.
    private func apply(_ a: virtio_rdma_qp_attr, mask: UInt32, to t: inout QPAttributes) throws(CommandError) {
        typealias T = QPTransitions
        if mask & T.access != 0 {
            let flags = UInt32(littleEndian: a.qp_access_flags)
            guard flags & ~0xf == 0 else { throw .invalid("QP access flags 0x\(String(flags, radix: 16))") }
            t.accessFlags = flags
        }
        if mask & T.pkey != 0 {
            guard UInt16(littleEndian: a.pkey_index) == 0 else { throw .invalid("P_Key index \(a.pkey_index) (table of 1)") }
            t.pkeyIndex = 0
        }
        if mask & T.port != 0 {
            guard a.port_num == 1 else { throw .invalid("port \(a.port_num)") }
            t.port = 1
        }
        if mask & T.qkey != 0 { t.qkey = UInt32(littleEndian: a.qkey) }
        if mask & T.av != 0 {
            guard a.ah_attr.port_num <= 1, Int(a.ah_attr.sgid_index) < Self.gidTableLength,
                  gids[Int(a.ah_attr.sgid_index)] != nil else {
                throw .invalid("address vector: port \(a.ah_attr.port_num), GID index \(a.ah_attr.sgid_index)")
            }
            t.av = a.ah_attr
        }
        if mask & T.mtu != 0 {
            guard (1...5).contains(a.path_mtu) else { throw .invalid("path MTU \(a.path_mtu)") }
            t.pathMTU = a.path_mtu
        }
        if mask & T.timeout != 0 {
            guard a.timeout <= 31 else { throw .invalid("timeout \(a.timeout)") }
            t.timeout = a.timeout
        }
        if mask & T.retry != 0 {
            guard a.retry_cnt <= 7 else { throw .invalid("retry count \(a.retry_cnt)") }
            t.retryCount = a.retry_cnt
        }
        if mask & T.rnrRetry != 0 {
            guard a.rnr_retry <= 7 else { throw .invalid("RNR retry \(a.rnr_retry)") }
            t.rnrRetry = a.rnr_retry
        }
        if mask & T.rqPSN != 0 { t.rqPSN = UInt32(littleEndian: a.rq_psn) & 0xff_ffff }
        if mask & T.sqPSN != 0 { t.sqPSN = UInt32(littleEndian: a.sq_psn) & 0xff_ffff }
        if mask & T.maxReadAtomic != 0 {
            guard UInt32(a.max_rd_atomic) <= configuration.maxReadAtomicDepth else { throw .invalid("max_rd_atomic \(a.max_rd_atomic)") }
            t.maxReadAtomic = a.max_rd_atomic
        }
        if mask & T.maxDestReadAtomic != 0 {
            guard UInt32(a.max_dest_rd_atomic) <= configuration.maxReadAtomicDepth else { throw .invalid("max_dest_rd_atomic \(a.max_dest_rd_atomic)") }
            t.maxDestReadAtomic = a.max_dest_rd_atomic
        }
        if mask & T.minRNRTimer != 0 {
            guard a.min_rnr_timer <= 31 else { throw .invalid("min RNR timer \(a.min_rnr_timer)") }
            t.minRNRTimer = a.min_rnr_timer
        }
        if mask & T.destQPN != 0 {
            let qpn = UInt32(littleEndian: a.dest_qp_num)
            guard qpn <= 0xff_ffff else { throw .invalid("destination QPN \(qpn)") }
            t.destQPN = qpn
        }
        if mask & T.altPath != 0 {
            t.altAV = a.alt_ah_attr
            t.altPkeyIndex = UInt16(littleEndian: a.alt_pkey_index)
            t.altPort = a.alt_port_num
            t.altTimeout = a.alt_timeout
        }
        if mask & T.pathMigration != 0 {
            guard a.path_mig_state <= 2 else { throw .invalid("path migration state \(a.path_mig_state)") }
            t.pathMigrationState = a.path_mig_state
        }
        if mask & T.sqdNotify != 0 { t.sqdNotify = a.en_sqd_async_notify }
        if mask & T.rateLimit != 0 { t.rateLimit = UInt32(littleEndian: a.rate_limit) }
    }

    func queryQP(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let qpn = try handle(body)
        let qp = try qps.lookup(qpn)
        let t = qp.attributes
        var a = virtio_rdma_qp_attr()
        a.qpn = qpn.littleEndian
        a.attr_mask = (qp.attributesSet | QPTransitions.state | QPTransitions.curState | UInt32(VIRTIO_RDMA_QP_CAP)).littleEndian
        a.qp_state = qp.state.rawValue
        a.cur_qp_state = qp.state.rawValue
        a.path_mtu = t.pathMTU
        a.path_mig_state = t.pathMigrationState
        a.qkey = t.qkey.littleEndian
        // The PSNs in use now once the QP runs, not the ones it started from.
        let receiving = qp.state.receives || qp.state == .error
        let sending = qp.state == .readyToSend || qp.state == .sendQueueDrain || qp.state == .error
        // On the verbs provider the NIC keeps the PSNs.
        let psns = qp.host?.currentPSNs() ?? (sq: qp.nextPSN, rq: qp.expectedPSN)
        a.rq_psn = (receiving && qp.attributesSet & QPTransitions.rqPSN != 0 ? psns.rq : t.rqPSN).littleEndian
        a.sq_psn = (sending && qp.attributesSet & QPTransitions.sqPSN != 0 ? psns.sq : t.sqPSN).littleEndian
        a.dest_qp_num = t.destQPN.littleEndian
        a.qp_access_flags = t.accessFlags.littleEndian
        a.pkey_index = t.pkeyIndex.littleEndian
        a.alt_pkey_index = t.altPkeyIndex.littleEndian
        a.en_sqd_async_notify = t.sqdNotify
        a.sq_draining = qp.state == .sendQueueDrain && qp.windowCount > 0 ? 1 : 0
        a.max_rd_atomic = t.maxReadAtomic
        a.max_dest_rd_atomic = t.maxDestReadAtomic
        a.min_rnr_timer = t.minRNRTimer
        a.port_num = t.port
        a.timeout = t.timeout
        a.retry_cnt = t.retryCount
        a.rnr_retry = t.rnrRetry
        a.alt_port_num = t.altPort
        a.alt_timeout = t.altTimeout
        a.rate_limit = t.rateLimit.littleEndian
        a.max_send_wr = qp.sq.depth.littleEndian
        a.max_recv_wr = (qp.ownReceive?.ring.depth ?? 0).littleEndian
        a.max_send_sge = qp.sqMaxSGE.littleEndian
        a.max_recv_sge = (qp.ownReceive?.maxSGE ?? 0).littleEndian
        a.max_inline_data = qp.sqMaxInline.littleEndian
        a.ah_attr = t.av
        a.alt_ah_attr = t.altAV
        return encode(a)
    }

    // MARK: shared receive queues

    func createSRQ(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_create_srq.self)
        let context = UInt32(littleEndian: c.ctx_handle)
        try checkContext(context)
        let pd = try pds.lookup(UInt32(littleEndian: c.pd_handle))
        try requireZeroReserved(UInt64(c.reserved))
        try checkOwner(pd.context, context: context, "PD", pd.handle)
        let handle = try srqs.reserve()
        let (ring, doorbell, sge, _) = try makeWorkQueue(c.rq, maxDepth: configuration.maxSRQWorkRequests,
                                                         header: Engine.recvHeaderSize, inlineAllowed: false)
        let limit = UInt32(littleEndian: c.srq_limit)
        guard limit <= ring.depth else { throw .invalid("SRQ limit \(limit) above its depth \(ring.depth)") }
        let srq = SharedReceiveQueue(handle: handle, context: context, pd: pd,
                                     queue: ReceiveQueue(ring: ring, doorbell: doorbell, maxSGE: sge, hostShadow: host != nil), limit: limit)
        if let host { try hostCreateSRQ(srq, host) }
        srqs.insert(handle, srq)
        pd.users += 1
        var r = virtio_rdma_rsp_create_srq()
        r.srq_handle = handle.littleEndian
        r.doorbell_queue = UInt32(VIRTIO_RDMA_VQ_DOORBELL_BASE).littleEndian
        return encode(r)
    }

    func modifySRQ(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let a = try body.decode(virtio_rdma_srq_attr.self)
        let srq = try srqs.lookup(UInt32(littleEndian: a.srq_handle))
        let mask = UInt32(littleEndian: a.attr_mask)
        guard mask & ~UInt32(VIRTIO_RDMA_SRQ_MAX_WR | VIRTIO_RDMA_SRQ_LIMIT) == 0 else { throw .invalid("SRQ attribute mask 0x\(String(mask, radix: 16))") }
        guard mask & UInt32(VIRTIO_RDMA_SRQ_MAX_WR) == 0 else { throw .invalid("SRQs cannot be resized") }
        if mask & UInt32(VIRTIO_RDMA_SRQ_LIMIT) != 0 {
            let limit = UInt32(littleEndian: a.srq_limit)
            guard limit <= srq.queue.ring.depth else { throw .invalid("SRQ limit \(limit) above its depth") }
            srq.limit = limit
        }
        return []
    }

    func querySRQ(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let handle = try handle(body)
        let srq = try srqs.lookup(handle)
        var a = virtio_rdma_srq_attr()
        a.srq_handle = handle.littleEndian
        a.max_wr = srq.queue.ring.depth.littleEndian
        a.max_sge = srq.queue.maxSGE.littleEndian
        a.srq_limit = srq.limit.littleEndian
        return encode(a)
    }

    func destroySRQ(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let handle = try handle(body)
        let srq = try srqs.lookup(handle)
        guard srq.users == 0 else { throw .busy("SRQ \(handle) is used by \(srq.users) QPs") }
        destroy(srq)
        return []
    }

    private func destroy(_ srq: SharedReceiveQueue) {
        srqs.remove(srq.handle)
        srq.pd.users -= 1
    }

    // MARK: address handles, P_Keys, GIDs

    func createAH(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_create_ah.self)
        try requireZeroReserved(UInt64(c.reserved))
        let pd = try pds.lookup(UInt32(littleEndian: c.pd_handle))
        guard c.av.port_num <= 1, Int(c.av.sgid_index) < Self.gidTableLength, gids[Int(c.av.sgid_index)] != nil else {
            throw .invalid("address vector: port \(c.av.port_num), GID index \(c.av.sgid_index)")
        }
        let handle = try ahs.reserve()
        let ah = AddressHandle(handle: handle, context: pd.context, pd: pd, av: c.av)
        if let host { try hostCreateAH(ah, host) }
        ahs.insert(handle, ah)
        pd.users += 1
        var r = virtio_rdma_rsp_create_ah()
        r.ah_handle = handle.littleEndian
        return encode(r)
    }

    func destroyAH(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let handle = try handle(body)
        let ah = try ahs.lookup(handle)
        ahs.remove(handle)
        ah.pd.users -= 1
        return []
    }

    func queryPKey(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_query_pkey.self)
        guard UInt32(littleEndian: c.port) == 1 else { throw .invalid("port \(UInt32(littleEndian: c.port))") }
        guard UInt32(littleEndian: c.index) == 0 else { throw .invalid("P_Key index \(UInt32(littleEndian: c.index)) (table of 1)") }
        var r = virtio_rdma_rsp_query_pkey()
        r.pkey = UInt16(0xffff).littleEndian
        return encode(r)
    }

    func addGID(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_gid.self)
        try requireZeroReserved(UInt64(c.reserved))
        guard UInt32(littleEndian: c.port) == 1 else { throw .invalid("port \(UInt32(littleEndian: c.port))") }
        let index = Int(UInt32(littleEndian: c.index))
        guard index < Self.gidTableLength else { throw .invalid("GID index \(index)") }
        let type = UInt32(littleEndian: c.type)
        guard type <= UInt32(VIRTIO_RDMA_GID_ROCE_V2) else { throw .invalid("GID type \(type)") }
        let gid = GID(bytes: c.gid)
        guard !gid.isZero else { throw .invalid("the zero GID") }
        if let host {
            // Several devices may stand on one host GID: the NIC tells them apart by QPN.
            try hostAddGID(index: index, gid: gid, host)
            gids[index] = gid
            gidMACs[index] = withUnsafeBytes(of: c.mac) { Array($0) }
            return []
        }
        try fabric.add(gid, engine: self)
        let old = gids[index]
        gids[index] = gid
        if let old, old != gid { releaseRoute(old) }
        gidMACs[index] = withUnsafeBytes(of: c.mac) { Array($0) }
        return []
    }

    func deleteGID(_ body: RequestBody) throws(CommandError) -> [UInt8] {
        let c = try body.decode(virtio_rdma_cmd_gid.self)
        guard UInt32(littleEndian: c.port) == 1 else { throw .invalid("port \(UInt32(littleEndian: c.port))") }
        let index = Int(UInt32(littleEndian: c.index))
        guard index < Self.gidTableLength else { throw .invalid("GID index \(index)") }
        guard let gid = gids[index] else { return [] }  // already empty: nothing to do
        gids[index] = nil
        if let host {
            host.hostGIDIndex[index] = nil
            return []
        }
        releaseRoute(gid)
        return []
    }

    /// Stops routing `gid` here unless another entry still holds it (a RoCE v1 and a v2 entry
    /// share each address, and Linux adds and deletes them one by one).
    private func releaseRoute(_ gid: GID) {
        if !gids.contains(gid) { fabric.remove(gid, engine: self) }
    }
}
