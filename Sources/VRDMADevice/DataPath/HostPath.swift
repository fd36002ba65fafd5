// SPDX-License-Identifier: Apache-2.0
// The data path on the host verbs provider (`--provider verbs`): the guest's rings and CQEs are
// the same as on the software provider, but the bytes move by the host NIC. Each guest object has
// a host one; a checked guest WQE becomes an ibv_send_wr / ibv_recv_wr whose SGEs are the guest's
// own addresses (MRs are registered with the guest's IOVA over a window of guest RAM), and host
// completions become guest CQEs. Retries, ACKs and timers are the NIC's.
//
// Guest-visible ids stay the device's: QPNs and rkeys are minted here (from a range of their own
// per device, so they are unique in the daemon) and published in a daemon-wide directory that
// translates them into the host's when they go on the wire. An id the directory does not know
// passes unchanged: a peer outside this daemon uses the host's own numbers.
import CIBVerbs
import CLinuxShims
import CVRDMAABI
import HostVerbs
import Synchronization
import VirtQueue

/// Virtual wire ids of every device of the daemon on the verbs provider, mapped to the host's.
/// Writers (create/destroy commands) replace an immutable snapshot; the data path reads its
/// cached snapshot and takes the lock only when the generation moved.
public final class VerbsDirectory: @unchecked Sendable {
    // @unchecked: `current` is behind its mutex; `generation` is atomic.
    final class Snapshot: @unchecked Sendable {
        /// Guest QPN -> host QPN, host QPN -> guest QPN, guest rkey -> host rkey.
        let hostQPN: [UInt32: UInt32]
        let guestQPN: [UInt32: UInt32]
        let hostRKey: [UInt32: UInt32]
        init(hostQPN: [UInt32: UInt32] = [:], guestQPN: [UInt32: UInt32] = [:], hostRKey: [UInt32: UInt32] = [:]) {
            self.hostQPN = hostQPN; self.guestQPN = guestQPN; self.hostRKey = hostRKey
        }
    }

    private let current = Mutex<Snapshot>(Snapshot())
    let generation = Atomic<UInt64>(1)

    public init() {}

    func snapshot() -> Snapshot { current.withLock { $0 } }

    func publishQP(guest: UInt32, host: UInt32) { change { q, g, r in q[guest] = host; g[host] = guest } }
    func removeQP(guest: UInt32, host: UInt32) { change { q, g, r in q[guest] = nil; g[host] = nil } }
    func publishRKey(guest: UInt32, host: UInt32) { change { q, g, r in r[guest] = host } }
    func removeRKey(guest: UInt32) { change { q, g, r in r[guest] = nil } }

    private func change(_ body: (inout [UInt32: UInt32], inout [UInt32: UInt32], inout [UInt32: UInt32]) -> Void) {
        current.withLock { s in
            var q = s.hostQPN, g = s.guestQPN, r = s.hostRKey
            body(&q, &g, &r)
            s = Snapshot(hostQPN: q, guestQPN: g, hostRKey: r)
        }
        generation.add(1, ordering: .releasing)
    }
}

/// What one device keeps for the verbs provider: the opened host device, the guest-to-host GID
/// index map, and scratch the data path reuses.
final class HostPath {
    let context: HostContext
    let directory: VerbsDirectory
    private(set) var snapshot: VerbsDirectory.Snapshot
    private var snapshotGeneration: UInt64 = 0
    /// The host GID index behind each guest GID table entry.
    var hostGIDIndex: [Int?]
    /// The device's QPs by host QPN (host completions name the host's QP).
    var byHostQPN: [UInt32: QueuePair] = [:]
    /// Passes since the async events were last taken.
    var pollsSinceAsyncCheck = 0
    static let pollBatch = 16
    let completions: UnsafeMutablePointer<ibv_wc>
    let sges: UnsafeMutablePointer<ibv_sge>
    let sgeCapacity: Int

    init(settings: DeviceConfiguration.HostVerbsSettings, directory: VerbsDirectory, maxSGE: UInt32, gidTableLength: Int) throws(HostVerbsError) {
        context = try HostContext(deviceName: settings.device, port: settings.port)
        _ = try context.gid(at: settings.gidIndex)
        self.directory = directory
        snapshot = directory.snapshot()
        hostGIDIndex = Array(repeating: nil, count: gidTableLength)
        completions = .allocate(capacity: Self.pollBatch)
        completions.initialize(repeating: ibv_wc(), count: Self.pollBatch)
        sgeCapacity = Int(max(1, maxSGE))
        sges = .allocate(capacity: sgeCapacity)
        sges.initialize(repeating: ibv_sge(), count: sgeCapacity)
    }

    deinit {
        completions.deinitialize(count: Self.pollBatch)
        completions.deallocate()
        sges.deinitialize(count: sgeCapacity)
        sges.deallocate()
    }

    /// The directory as of now (a lock only when something was created or destroyed since).
    @inline(__always)
    func currentSnapshot() -> VerbsDirectory.Snapshot {
        let g = directory.generation.load(ordering: .acquiring)
        if g != snapshotGeneration {
            snapshot = directory.snapshot()
            snapshotGeneration = g
        }
        return snapshot
    }
}

/// A host verbs failure inside a command: the guest sees NO_RESOURCES (the host ran out or
/// refused), the log gets the verb and errno.
extension CommandError {
    static func host(_ error: HostVerbsError) -> CommandError { .noResources("host: \(error)") }
}

extension Engine {
    // MARK: commands

    func hostAllocPD(_ pd: ProtectionDomain, _ host: HostPath) throws(CommandError) {
        do { pd.host = try HostProtectionDomain(host.context) } catch { throw .host(error) }
    }

    /// Registers a guest MR with the NIC over a window of its pages (runs of pages adjacent in
    /// the daemon's mapping are mapped as one).
    func hostRegister(_ mr: MemoryRegion, _ host: HostPath) throws(CommandError) {
        guard !mr.dma else { throw .unsupported }
        guard let pd = mr.pd.host else { throw .invalid("PD \(mr.pd.handle) has no host PD") }
        var runs: [(UnsafeMutableRawPointer, Int)] = []
        for gpa in mr.pages {
            guard let p = memory.hostPointer(gpa: gpa, length: pageSize) else { throw .fault("page 0x\(String(gpa, radix: 16)) is not guest RAM") }
            if let last = runs.last, last.0 + last.1 == p {
                runs[runs.count - 1].1 += Int(pageSize)
            } else {
                runs.append((p, Int(pageSize)))
            }
        }
        var access = IBV_ACCESS_LOCAL_WRITE.rawValue
        if mr.access & UInt32(VIRTIO_RDMA_ACCESS_LOCAL_WRITE) == 0 { access = 0 }
        if mr.access & UInt32(VIRTIO_RDMA_ACCESS_REMOTE_WRITE) != 0 { access |= IBV_ACCESS_REMOTE_WRITE.rawValue }
        if mr.access & UInt32(VIRTIO_RDMA_ACCESS_REMOTE_READ) != 0 { access |= IBV_ACCESS_REMOTE_READ.rawValue }
        if mr.access & UInt32(VIRTIO_RDMA_ACCESS_REMOTE_ATOMIC) != 0 { access |= IBV_ACCESS_REMOTE_ATOMIC.rawValue }
        do {
            mr.host = try HostMemoryRegion(pd: pd, runs: runs, offset: Int(mr.iova & (pageSize - 1)), length: Int(mr.length),
                                           iova: mr.iova, access: Int32(bitPattern: access))
        } catch { throw .host(error) }
        if mr.rkey != 0 { host.directory.publishRKey(guest: mr.rkey, host: mr.host!.rkey) }
    }

    func hostDeregister(_ mr: MemoryRegion, _ host: HostPath) {
        if mr.rkey != 0 { host.directory.removeRKey(guest: mr.rkey) }
        mr.host = nil
    }

    func hostCreateCQ(_ cq: CompletionQueue, _ host: HostPath) throws(CommandError) {
        do { cq.host = try HostCompletionQueue(host.context, depth: Int32(cq.depth)) } catch { throw .host(error) }
    }

    func hostCreateSRQ(_ srq: SharedReceiveQueue, _ host: HostPath) throws(CommandError) {
        guard let pd = srq.pd.host else { throw .invalid("PD \(srq.pd.handle) has no host PD") }
        do {
            srq.host = try HostSharedReceiveQueue(pd: pd, depth: srq.queue.ring.depth, maxSGE: srq.queue.maxSGE)
        } catch { throw .host(error) }
    }

    /// The host QP for a guest QP being created; the guest QPN is minted by the caller.
    func hostCreateQP(type: QPType, pd: ProtectionDomain, sendCQ: CompletionQueue, recvCQ: CompletionQueue,
                      srq: SharedReceiveQueue?, sq: GuestRing, sqMaxSGE: UInt32, sqMaxInline: UInt32,
                      receive: ReceiveQueue?) throws(CommandError) -> HostQueuePair {
        // QP1 is the host kernel's; a guest's management datagrams would need their own path.
        guard type != .generalServices else { throw .unsupported }
        guard let hpd = pd.host, let scq = sendCQ.host, let rcq = recvCQ.host else { throw .invalid("objects without host counterparts") }
        var caps = ibv_qp_cap()
        caps.max_send_wr = sq.depth
        caps.max_send_sge = max(1, sqMaxSGE)
        caps.max_inline_data = sqMaxInline
        caps.max_recv_wr = receive?.ring.depth ?? 0
        caps.max_recv_sge = max(1, receive?.maxSGE ?? 1)
        do {
            return try HostQueuePair(pd: hpd, sendCQ: scq, recvCQ: rcq, srq: srq?.host,
                                     type: type == .reliableConnected ? IBV_QPT_RC : IBV_QPT_UD, capabilities: caps)
        } catch { throw .host(error) }
    }

    /// The guest QP is created: its host QP gets its directory entry.
    func hostAdopt(_ qp: QueuePair, _ host: HostPath) {
        guard let hqp = qp.host else { return }
        host.byHostQPN[hqp.qpn] = qp
        host.directory.publishQP(guest: qp.qpn, host: hqp.qpn)
    }

    /// The guest QP goes (destroyed or device reset): so do its host QP and directory entry.
    func hostForget(_ qp: QueuePair, _ host: HostPath) {
        guard let hqp = qp.host else { return }
        host.byHostQPN[hqp.qpn] = nil
        host.directory.removeQP(guest: qp.qpn, host: hqp.qpn)
        qp.host = nil
    }

    func hostCreateAH(_ ah: AddressHandle, _ host: HostPath) throws(CommandError) {
        guard let pd = ah.pd.host else { throw .invalid("PD \(ah.pd.handle) has no host PD") }
        var attr = try hostAddress(ah.av, host)
        do { ah.host = try HostAddressHandle(pd: pd, attributes: &attr) } catch { throw .host(error) }
    }

    /// A guest address vector as the host's: RoCE routes by GID, the source GID is the host entry
    /// behind the guest's GID index.
    func hostAddress(_ av: virtio_rdma_av, _ host: HostPath) throws(CommandError) -> ibv_ah_attr {
        guard Int(av.sgid_index) < host.hostGIDIndex.count, let sgid = host.hostGIDIndex[Int(av.sgid_index)] else {
            throw .invalid("GID index \(av.sgid_index) has no host GID")
        }
        var attr = ibv_ah_attr()
        attr.is_global = 1
        attr.port_num = host.context.port
        attr.sl = av.sl
        attr.static_rate = av.static_rate
        attr.grh.sgid_index = UInt8(sgid)
        attr.grh.hop_limit = av.hop_limit == 0 ? 64 : av.hop_limit
        attr.grh.traffic_class = av.traffic_class
        attr.grh.flow_label = UInt32(littleEndian: av.flow_label)
        withUnsafeMutableBytes(of: &attr.grh.dgid.raw) { d in withUnsafeBytes(of: av.dgid) { d.copyMemory(from: $0) } }
        return attr
    }

    /// ADD_GID on the verbs provider: the GID must be one the host port has (the operator gives
    /// the guest's address to the host netdev or VF); the guest entry then stands for it.
    func hostAddGID(index: Int, gid: GID, _ host: HostPath) throws(CommandError) {
        let bytes = gid.bytes
        guard let entry = host.context.gidTable().first(where: { $0.bytes == bytes }) else {
            throw .invalid("GID \(gid) is not in \(host.context.deviceName) port \(host.context.port)'s GID table: give the guest's address to the host interface")
        }
        host.hostGIDIndex[index] = entry.index
    }

    /// MODIFY_QP's attributes (already checked and applied to the device's copy) for the host QP.
    func hostModify(_ qp: QueuePair, _ a: virtio_rdma_qp_attr, mask given: UInt32, target: QPState, _ host: HostPath) throws(CommandError) {
        guard let hqp = qp.host else { return }
        typealias T = QPTransitions
        var attr = ibv_qp_attr()
        var mask = UInt32(IBV_QP_STATE.rawValue)
        attr.qp_state = ibv_qp_state(UInt32(target.rawValue))
        let passed = given & (T.access | T.pkey | T.qkey | T.mtu | T.timeout | T.retry | T.rnrRetry | T.rqPSN | T.sqPSN
                              | T.maxReadAtomic | T.maxDestReadAtomic | T.minRNRTimer | T.sqdNotify)
        mask |= passed
        var access: UInt32 = 0
        let flags = UInt32(littleEndian: a.qp_access_flags)
        if flags & UInt32(VIRTIO_RDMA_ACCESS_LOCAL_WRITE) != 0 { access |= IBV_ACCESS_LOCAL_WRITE.rawValue }
        if flags & UInt32(VIRTIO_RDMA_ACCESS_REMOTE_WRITE) != 0 { access |= IBV_ACCESS_REMOTE_WRITE.rawValue }
        if flags & UInt32(VIRTIO_RDMA_ACCESS_REMOTE_READ) != 0 { access |= IBV_ACCESS_REMOTE_READ.rawValue }
        if flags & UInt32(VIRTIO_RDMA_ACCESS_REMOTE_ATOMIC) != 0 { access |= IBV_ACCESS_REMOTE_ATOMIC.rawValue }
        attr.qp_access_flags = access
        attr.pkey_index = 0
        attr.qkey = UInt32(littleEndian: a.qkey)
        attr.path_mtu = ibv_mtu(UInt32(a.path_mtu))
        attr.timeout = a.timeout
        attr.retry_cnt = a.retry_cnt
        attr.rnr_retry = a.rnr_retry
        attr.rq_psn = UInt32(littleEndian: a.rq_psn) & 0xff_ffff
        attr.sq_psn = UInt32(littleEndian: a.sq_psn) & 0xff_ffff
        attr.max_rd_atomic = a.max_rd_atomic
        attr.max_dest_rd_atomic = a.max_dest_rd_atomic
        attr.min_rnr_timer = a.min_rnr_timer
        attr.en_sqd_async_notify = a.en_sqd_async_notify
        if given & T.port != 0 {
            mask |= UInt32(IBV_QP_PORT.rawValue)
            attr.port_num = host.context.port
        }
        if given & T.av != 0 {
            mask |= UInt32(IBV_QP_AV.rawValue)
            attr.ah_attr = try hostAddress(a.ah_attr, host)
        }
        if given & T.destQPN != 0 {
            mask |= UInt32(IBV_QP_DEST_QPN.rawValue)
            let guest = UInt32(littleEndian: a.dest_qp_num) & 0xff_ffff
            attr.dest_qp_num = host.currentSnapshot().hostQPN[guest] ?? guest
        }
        do { try hqp.modify(&attr, mask: Int32(bitPattern: mask)) } catch { throw .badState("host refused: \(error)") }
    }

    /// The device put the QP in ERR (a bad WQE, an error completion): the host QP follows, so
    /// the NIC stops and returns what it holds as flushed.
    func hostEnterError(_ qp: QueuePair) {
        guard let hqp = qp.host else { return }
        var attr = ibv_qp_attr()
        attr.qp_state = IBV_QPS_ERR
        do { try hqp.modify(&attr, mask: Int32(IBV_QP_STATE.rawValue)) } catch {
            logger.warning("QP \(qp.qpn): the host QP did not enter ERR: \(error)")
        }
    }

    // MARK: the data path

    /// One pass on the verbs provider: completions first (they free ring space), then every
    /// QP's new receive and send WQEs, then every SRQ's.
    func hostPoll(_ host: HostPath) -> Int {
        // Completion events only come after the arms made before sleeping: drained on waking,
        // not with a failing read on every pass (undrained, they keep the wake descriptor ready).
        if sleeping.load(ordering: .relaxed) {
            sleeping.store(false, ordering: .relaxed)
            host.context.drainCompletionEvents()
        }
        // Async events are rare: a look every 64 passes, and before sleeping.
        host.pollsSinceAsyncCheck &+= 1
        if host.pollsSinceAsyncCheck >= 64 { hostTakeAsyncEvents(host) }
        var work = hostPollCompletions(host)
        for qp in activeQPs { work += hostRunQP(qp, host) }
        for srq in srqs.objects.values { work += hostPostSharedReceives(srq, host) }
        return work
    }

    /// Arms every host CQ, then looks once more: a completion that came before the arm raises no
    /// event, so it must be seen now.
    func hostPrepareToSleep(_ host: HostPath) -> Bool {
        hostTakeAsyncEvents(host)
        for cq in cqs.objects.values { cq.host?.arm() }
        var pending = hostPollCompletions(host) > 0
        for qp in activeQPs {
            qp.sqDoorbell.setNeedKick(1)
            qp.ownReceive?.doorbell.setNeedKick(1)
            qp.kickRequested = true
        }
        for srq in srqs.objects.values { srq.queue.doorbell.setNeedKick(1) }
        sleeping.store(true, ordering: .sequentiallyConsistent)
        CLinuxShims_fence_seq_cst()
        // Only work a pass would do: WQEs it can take (a full window, a stopped SQ or a NIC that
        // holds a ring's worth of receives waits for a host completion, which wakes the worker).
        for qp in activeQPs {
            let sq = qp.sqDoorbell.driverIndex &- qp.sqConsumer
            if sq > 0 && sq <= qp.sq.depth && (qp.state == .error
                || (qp.state == .readyToSend && qp.windowCount < qp.sq.depth && !qp.hostSendStopped)) { pending = true }
            // In ERR, receives the host still holds come back flushed first (flushReceiveQueue waits).
            if let rq = qp.ownReceive, let n = rq.available, n > 0, qp.state != .reset,
               qp.state == .error ? rq.hostHeld == 0 : rq.hostHasRoom { pending = true }
        }
        for srq in srqs.objects.values {
            if let n = srq.queue.available, n > 0, srq.queue.hostHasRoom { pending = true }
        }
        if pending { sleeping.store(false, ordering: .relaxed) }
        return pending
    }

    /// The host device's async events, as the guest's: events of a host QP or CQ name the guest's
    /// object, port events port 1. The device raises SRQ limit and last-WQE events itself.
    func hostTakeAsyncEvents(_ host: HostPath) {
        host.pollsSinceAsyncCheck = 0
        while let event = host.context.nextAsyncEvent() {
            switch event {
            case .queuePair(let type, let hostQPN):
                guard let qp = host.byHostQPN[hostQPN] else { continue }
                switch type {
                case IBV_EVENT_QP_FATAL: fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_FATAL))
                case IBV_EVENT_QP_REQ_ERR: fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_REQ_ERR))
                case IBV_EVENT_QP_ACCESS_ERR: fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_ACCESS_ERR))
                case IBV_EVENT_COMM_EST where !qp.communicationEstablished:
                    qp.communicationEstablished = true
                    postEvent(Int32(VIRTIO_RDMA_EV_COMM_EST), handle: qp.qpn)
                case IBV_EVENT_SQ_DRAINED where qp.state == .sendQueueDrain && !qp.drainedNotified && qp.attributes.sqdNotify != 0:
                    qp.drainedNotified = true
                    postEvent(Int32(VIRTIO_RDMA_EV_SQ_DRAINED), handle: qp.qpn)
                default:
                    logger.debug("QP \(qp.qpn): host event \(type.rawValue) not passed on")
                }
            case .completionQueue(let type, let id):
                guard type == IBV_EVENT_CQ_ERR, let cq = cqs.objects.values.first(where: { $0.host?.id == id }) else { continue }
                logger.warning("CQ \(cq.handle): the host CQ failed (overrun)")
                postEvent(Int32(VIRTIO_RDMA_EV_CQ_ERR), handle: cq.handle, detail: VIRTIO_RDMA_CQ_OVERFLOW)
            case .port(let type, let port):
                guard port == host.context.port else { continue }
                switch type {
                case IBV_EVENT_PORT_ACTIVE: postEvent(Int32(VIRTIO_RDMA_EV_PORT_ACTIVE), handle: 1)
                case IBV_EVENT_PORT_ERR: postEvent(Int32(VIRTIO_RDMA_EV_PORT_ERR), handle: 1)
                case IBV_EVENT_GID_CHANGE: postEvent(Int32(VIRTIO_RDMA_EV_GID_CHANGE), handle: 1)
                default: break
                }
            case .device:
                logger.error("host device \(host.context.deviceName) failed: its QPs fail")
                for qp in activeQPs { fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_FATAL)) }
            case .sharedReceiveQueue:
                break
            }
        }
    }

    private func hostRunQP(_ qp: QueuePair, _ host: HostPath) -> Int {
        switch qp.state {
        case .reset:
            return 0
        case .error:
            // The host flushes what it holds; what it never got is flushed here.
            return flushSendQueue(qp) + flushReceiveQueue(qp)
        default:
            break
        }
        var work = 0
        if qp.ownReceive != nil { work += hostPostReceives(qp, host) }
        guard qp.state == .readyToSend else { return work }
        while !qp.hostSendStopped && qp.windowCount < qp.sq.depth {
            guard let waiting = sendWQEWaiting(qp) else { return work + 1 }
            if !waiting { break }
            let sequence = qp.sqConsumer
            fetch(qp)
            work += 1
            let i = qp.slot(sequence)
            // A WQE that failed its checks, or that the host refused, completes in order and then
            // fails the QP; nothing after it is sent.
            if qp.inflight[i].phase == .done {
                qp.hostSendStopped = true
                break
            }
            let status = hostPostSend(qp, sequence: sequence, host)
            if status != UInt8(VIRTIO_RDMA_WC_SUCCESS) {
                qp.inflight[i].phase = .done
                qp.inflight[i].status = status
                qp.hostSendStopped = true
                break
            }
            qp.inflight[i].phase = .sent
        }
        retire(qp)
        return work
    }

    /// Host wr_ids: a receive's has the top bit and its ring sequence; a send's has the QP's
    /// incarnation and the WQE's sequence, so a completion of an earlier life of the QP is dropped.
    static let receiveTag: UInt64 = 1 << 63

    @inline(__always)
    private func hostWRID(_ qp: QueuePair, _ sequence: UInt32) -> UInt64 {
        UInt64(qp.incarnation.load(ordering: .relaxed) & 0x7fff_ffff) << 32 | UInt64(sequence)
    }

    private func hostPostSend(_ qp: QueuePair, sequence: UInt32, _ host: HostPath) -> UInt8 {
        guard let hqp = qp.host else { return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR) }
        let w = qp.inflight[qp.slot(sequence)]
        let segments = qp.segments(of: sequence)
        var wr = ibv_send_wr()
        wr.wr_id = hostWRID(qp, sequence)
        wr.opcode = ibv_wr_opcode(UInt32(w.opcode))
        var flags = IBV_SEND_SIGNALED.rawValue
        if w.solicited { flags |= IBV_SEND_SOLICITED.rawValue }
        if w.fence { flags |= IBV_SEND_FENCE.rawValue }
        let count = Int(w.segmentCount)
        if count == 1, let inline = segments[0].inline {
            flags |= IBV_SEND_INLINE.rawValue
            host.sges[0] = ibv_sge(addr: UInt64(UInt(bitPattern: inline)), length: segments[0].length, lkey: 0)
        } else {
            for i in 0..<count {
                guard let mr = segments[i].mr, let hmr = mr.host else { return UInt8(VIRTIO_RDMA_WC_LOC_PROT_ERR) }
                host.sges[i] = ibv_sge(addr: segments[i].address, length: segments[i].length, lkey: hmr.lkey)
            }
        }
        wr.sg_list = host.sges
        wr.num_sge = Int32(count)
        wr.send_flags = flags
        if w.withImm { wr.imm_data = w.imm }
        let directory = host.currentSnapshot()
        let rkey = directory.hostRKey[w.rkey] ?? w.rkey
        // The device's answer to a misaligned atomic, whatever the host NIC would do with it.
        if w.isReadOrAtomic && w.opcode != UInt8(VIRTIO_RDMA_WR_RDMA_READ) && w.remoteAddress & 7 != 0 {
            return UInt8(VIRTIO_RDMA_WC_REM_INV_REQ_ERR)
        }
        switch Int32(w.opcode) {
        case VIRTIO_RDMA_WR_RDMA_WRITE, VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM, VIRTIO_RDMA_WR_RDMA_READ:
            wr.wr.rdma.remote_addr = w.remoteAddress
            wr.wr.rdma.rkey = rkey
        case VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP, VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD:
            wr.wr.atomic.remote_addr = w.remoteAddress
            wr.wr.atomic.rkey = rkey
            wr.wr.atomic.compare_add = w.compareAdd
            wr.wr.atomic.swap = w.swap
        default:
            break
        }
        if qp.type.isDatagram {
            guard let ah = ahs.get(w.ah)?.host else { return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR) }
            wr.wr.ud.ah = ah.ah
            wr.wr.ud.remote_qpn = directory.hostQPN[w.remoteQPN] ?? w.remoteQPN
            wr.wr.ud.remote_qkey = w.remoteQKey
        }
        let rc = hqp.post(&wr)
        guard rc == 0 else {
            logger.warning("QP \(qp.qpn): ibv_post_send failed (errno \(rc))")
            return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR)
        }
        return UInt8(VIRTIO_RDMA_WC_SUCCESS)
    }

    /// Checks one receive WQE of `rq` (at its consumer index) and fills the host SGEs; nil when a
    /// key, range or access is wrong.
    private func hostReceiveSegments(_ rq: ReceiveQueue, pd: ProtectionDomain, _ host: HostPath) -> (wrID: UInt64, count: Int)? {
        let wqe = rq.ring.slot(rq.consumer)
        // SAFETY: a checked ring slot of at least 16 bytes.
        let header = wqe.loadUnaligned(as: virtio_rdma_recv_wqe.self)
        let wrID = UInt64(littleEndian: header.wr_id)
        let count = UInt32(littleEndian: header.num_sge)
        guard count <= rq.maxSGE else { return nil }
        for i in 0..<Int(count) {
            // SAFETY: create checked 16 + 16 * max_sge <= the slot size, and count <= max_sge.
            let sge = (wqe + Self.recvHeaderSize + i * Self.sgeSize).loadUnaligned(as: virtio_rdma_sge.self)
            let address = UInt64(littleEndian: sge.addr)
            let length = UInt32(littleEndian: sge.length)
            let key = UInt32(littleEndian: sge.lkey)
            guard let mr = mrs.get(key), mr.lkey == key, mr.pd === pd, mr.access & VIRTIO_RDMA_ACCESS_LOCAL_WRITE != 0,
                  mr.contains(address, UInt64(length)), let hmr = mr.host else { return nil }
            host.sges[i] = ibv_sge(addr: address, length: length, lkey: hmr.lkey)
            if i == 0 { rq.firstAddress[Int(rq.consumer & (rq.ring.depth - 1))] = (address, key) }
        }
        if count == 0 { rq.firstAddress[Int(rq.consumer & (rq.ring.depth - 1))] = (0, 0) }
        return (wrID, Int(count))
    }

    /// Hands `rq`'s next WQE, checked, to the host with `post`. nil: the WQE is bad (nothing was
    /// taken); false: the host queue is full (retried on a later pass).
    private func handReceiveToHost(_ rq: ReceiveQueue, pd: ProtectionDomain, _ host: HostPath,
                                   post: (inout ibv_recv_wr) -> Int32) -> Bool? {
        guard rq.hostHasRoom else { return false }
        guard let (wrID, count) = hostReceiveSegments(rq, pd: pd, host) else { return nil }
        var wr = ibv_recv_wr()
        wr.wr_id = Self.receiveTag | UInt64(rq.consumer)
        wr.sg_list = host.sges
        wr.num_sge = Int32(count)
        guard post(&wr) == 0 else { return false }
        rq.wrIDs[Int(rq.consumer & (rq.ring.depth - 1))] = wrID
        rq.take()
        rq.hostHeld += 1
        return true
    }

    private func hostPostReceives(_ qp: QueuePair, _ host: HostPath) -> Int {
        guard let rq = qp.ownReceive, let hqp = qp.host, let available = rq.available else { return 0 }
        var work = 0
        for _ in 0..<available {
            stopKicks(qp)
            guard let handed = handReceiveToHost(rq, pd: qp.pd, host, post: { hqp.post(&$0) }) else {
                // A bad receive WQE breaks the QP, as it would when a message landed in it.
                // SAFETY: a checked ring slot of at least 16 bytes.
                let wrID = UInt64(littleEndian: rq.ring.slot(rq.consumer).loadUnaligned(as: UInt64.self))
                rq.take()
                var cqe = virtio_rdma_cqe()
                cqe.wr_id = wrID.littleEndian
                cqe.status = UInt8(VIRTIO_RDMA_WC_LOC_PROT_ERR)
                cqe.opcode = UInt8(VIRTIO_RDMA_WC_RECV)
                cqe.qp_num = qp.qpn.littleEndian
                writeCompletion(qp.recvCQ, &cqe, solicited: false)
                moveToError(qp)
                return work + 1
            }
            if !handed { break }
            work += 1
        }
        return work
    }

    private func hostPostSharedReceives(_ srq: SharedReceiveQueue, _ host: HostPath) -> Int {
        guard let hsrq = srq.host, let available = srq.queue.available else { return 0 }
        let rq = srq.queue
        var work = 0
        for _ in 0..<available {
            rq.doorbell.setNeedKick(0)
            guard let handed = handReceiveToHost(rq, pd: srq.pd, host, post: { hsrq.post(&$0) }) else {
                // Nobody owns a bad WQE of an SRQ yet: it is dropped with a warning.
                logger.warning("SRQ \(srq.handle): receive WQE \(rq.consumer) has a bad SGE; skipped")
                rq.take()
                continue
            }
            if !handed { break }
            work += 1
        }
        return work
    }

    private func hostPollCompletions(_ host: HostPath) -> Int {
        var work = 0
        for cq in cqs.objects.values {
            guard let hcq = cq.host else { continue }
            while true {
                let n = hcq.poll(host.completions, count: Int32(HostPath.pollBatch))
                if n <= 0 { break }
                for i in 0..<Int(n) { hostComplete(host.completions[i], host) }
                work += Int(n)
                if n < Int32(HostPath.pollBatch) { break }
            }
        }
        return work
    }

    private func hostComplete(_ wc: ibv_wc, _ host: HostPath) {
        guard let qp = host.byHostQPN[wc.qp_num] else { return }  // destroyed since
        // An error completion's opcode is undefined: the wr_id says which queue it came from.
        if wc.wr_id & Self.receiveTag != 0 {
            hostCompleteReceive(wc, qp, host)
            return
        }
        let sequence = UInt32(truncatingIfNeeded: wc.wr_id)
        guard wc.wr_id == hostWRID(qp, sequence),
              sequence &- qp.oldest < qp.windowCount else { return }  // an earlier life's, or already flushed
        let i = qp.slot(sequence)
        guard qp.inflight[i].phase == .sent else { return }
        qp.inflight[i].phase = .done
        qp.inflight[i].status = UInt8(truncatingIfNeeded: wc.status.rawValue)
        retire(qp)
    }

    private func hostCompleteReceive(_ wc: ibv_wc, _ qp: QueuePair, _ host: HostPath) {
        let rq = qp.receive
        let slot = Int(UInt32(truncatingIfNeeded: wc.wr_id) & (rq.ring.depth - 1))
        var cqe = virtio_rdma_cqe()
        cqe.wr_id = rq.wrIDs[slot].littleEndian
        cqe.status = UInt8(truncatingIfNeeded: wc.status.rawValue)
        cqe.opcode = wc.opcode.rawValue == IBV_WC_RECV_RDMA_WITH_IMM.rawValue ? UInt8(VIRTIO_RDMA_WC_RECV_RDMA_WITH_IMM) : UInt8(VIRTIO_RDMA_WC_RECV)
        cqe.qp_num = qp.qpn.littleEndian
        cqe.byte_len = wc.byte_len.littleEndian
        var flags: UInt32 = 0
        if wc.wc_flags & IBV_WC_WITH_IMM.rawValue != 0 {
            flags |= UInt32(VIRTIO_RDMA_WC_F_WITH_IMM)
            cqe.imm_data = wc.imm_data.littleEndian
        }
        if qp.type.isDatagram && wc.status == IBV_WC_SUCCESS {
            flags |= UInt32(VIRTIO_RDMA_WC_F_GRH)
            cqe.src_qp = (host.currentSnapshot().guestQPN[wc.src_qp] ?? wc.src_qp).littleEndian
            cqe.network_hdr_type = networkHeaderType(rq.firstAddress[slot])
            cqe.vlan_id = UInt16(0xffff).littleEndian
        }
        cqe.wc_flags = UInt16(flags).littleEndian
        cqe.pkey_index = wc.pkey_index.littleEndian
        cqe.sl = wc.sl
        // Saturating: a completion the host invents must not trap the daemon.
        if rq.hostHeld > 0 { rq.hostHeld -= 1 }
        if let srq = qp.srq {
            if srq.limit > 0 && rq.hostHeld < srq.limit {
                srq.limit = 0
                postEvent(Int32(VIRTIO_RDMA_EV_SRQ_LIMIT_REACHED), handle: srq.handle)
            }
        }
        // A host completion does not say whether the message was solicited: a SOLICITED arm fires
        // on any receive (spurious events are allowed, missed ones are not).
        writeCompletion(qp.recvCQ, &cqe, solicited: true)
        if wc.status != IBV_WC_SUCCESS && wc.status != IBV_WC_WR_FLUSH_ERR { moveToError(qp) }
    }

    /// The NIC wrote the GRH area of a UD receive: an IPv4 header in its last 20 bytes (RoCE v2
    /// over IPv4) or an IPv6 one in all 40.
    private func networkHeaderType(_ first: (UInt64, UInt32)) -> UInt8 {
        guard let mr = mrs.get(first.1), mr.contains(first.0, 40), let (p, _, n) = mr.chunk(at: first.0, count: 40, memory: memory),
              n == 40 else { return UInt8(VIRTIO_RDMA_NETWORK_IPV6) }
        return p.load(fromByteOffset: 20, as: UInt8.self) >> 4 == 4 ? UInt8(VIRTIO_RDMA_NETWORK_IPV4) : UInt8(VIRTIO_RDMA_NETWORK_IPV6)
    }

    /// The guest's RAM changed: an MR whose pages are no longer where its window was built from
    /// loses its host registration (its later use fails with a protection error).
    func hostRemapMRs(_ host: HostPath) {
        for mr in mrs.objects.values {
            guard let hmr = mr.host, !stillMapped(mr.pages, sources: hmr.sources) else { continue }
            logger.warning("MR \(mr.lkey): its pages moved in guest RAM; host registration dropped")
            hostDeregister(mr, host)
        }
    }

    /// Whether `pages` are still the host runs starting at `sources`.
    private func stillMapped(_ pages: [UInt64], sources: [UnsafeMutableRawPointer]) -> Bool {
        var run = -1
        var previous: UnsafeMutableRawPointer?
        for gpa in pages {
            guard let p = memory.hostPointer(gpa: gpa, length: pageSize) else { return false }
            if previous.map({ $0 + Int(pageSize) }) != p {
                run += 1
                guard run < sources.count, sources[run] == p else { return false }
            }
            previous = p
        }
        return run + 1 == sources.count
    }
}
