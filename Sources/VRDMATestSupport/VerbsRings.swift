// SPDX-License-Identifier: Apache-2.0
// The model guest driver's data path: doorbell records, work queue rings (SQ, RQ, SRQ) with the
// post protocol of abi/virtio_rdma.h (write the WQE, release-store driver_index, full barrier, read
// need_kick, kick the doorbell queue only if it is set), completion queues (acquire device_index,
// read CQEs, store driver_index; arm by arm_flags then arm_sequence), queue pairs and SRQs, and the
// create commands that describe them. Posting and polling do not allocate: a preallocated SendWR
// or RecvWR is written straight into its ring slot. Raw writers let hostile tests break every rule.
import CLinuxShims
import CVRDMAABI
import Glibc

// MARK: doorbell record

/// A struct virtio_rdma_doorbell in the driver's guest RAM.
public struct DoorbellRecord {
    public let gpa: UInt64
    public let pointer: UnsafeMutableRawPointer

    static let driverIndexOffset = MemoryLayout<virtio_rdma_doorbell>.offset(of: \.driver_index)!
    static let armSequenceOffset = MemoryLayout<virtio_rdma_doorbell>.offset(of: \.arm_sequence)!
    static let armFlagsOffset = MemoryLayout<virtio_rdma_doorbell>.offset(of: \.arm_flags)!
    static let deviceIndexOffset = MemoryLayout<virtio_rdma_doorbell>.offset(of: \.device_index)!
    static let needKickOffset = MemoryLayout<virtio_rdma_doorbell>.offset(of: \.need_kick)!
    static let notifiedSequenceOffset = MemoryLayout<virtio_rdma_doorbell>.offset(of: \.notified_sequence)!
    static let cqStatusOffset = MemoryLayout<virtio_rdma_doorbell>.offset(of: \.cq_status)!

    init(gpa: UInt64, pointer: UnsafeMutableRawPointer) {
        self.gpa = gpa
        self.pointer = pointer
    }

    @inline(__always) func acquire(_ offset: Int) -> UInt32 { UInt32(littleEndian: CLinuxShims_load_acquire_u32(pointer + offset)) }
    @inline(__always) func release(_ offset: Int, _ v: UInt32) { CLinuxShims_store_release_u32(pointer + offset, v.littleEndian) }

    // Driver-written line.
    public var driverIndex: UInt32 { acquire(Self.driverIndexOffset) }
    /// Release store: everything written before (WQEs; reads of polled CQEs) is ordered before it.
    @inline(__always) public func storeDriverIndex(_ v: UInt32) { release(Self.driverIndexOffset, v) }
    public var armSequence: UInt32 { acquire(Self.armSequenceOffset) }
    public func storeArmSequence(_ v: UInt32) { release(Self.armSequenceOffset, v) }
    public var armFlags: UInt32 { acquire(Self.armFlagsOffset) }
    public func storeArmFlags(_ v: UInt32) { (pointer + Self.armFlagsOffset).storeBytes(of: v.littleEndian, as: UInt32.self) }

    // Device-written line.
    @inline(__always) public var deviceIndex: UInt32 { acquire(Self.deviceIndexOffset) }
    @inline(__always) public var needKick: UInt32 { acquire(Self.needKickOffset) }
    public var notifiedSequence: UInt32 { acquire(Self.notifiedSequenceOffset) }
    public var cqStatus: UInt32 { acquire(Self.cqStatusOffset) }

    /// Any 32-bit word of the record (hostile tests; offsets 0..<128).
    public func rawStore(_ v: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= Int(VIRTIO_RDMA_DB_SIZE))
        release(offset, v)
    }
    public func rawLoad(at offset: Int) -> UInt32 { acquire(offset) }
}

// MARK: work queues

/// A send, receive or shared receive queue ring and its doorbell record.
public final class WorkQueue {
    public enum Kind: Sendable { case send, receive, shared }
    public let kind: Kind
    public let depth: UInt32
    public let wqeShift: UInt32
    public let maxSGE: UInt32
    public let maxInline: UInt32
    public let ring: GuestPages
    public let doorbell: DoorbellRecord
    public let device: VerbsDevice
    /// The doorbell virtqueue the create response named.
    public internal(set) var doorbellQueue: Int = -1
    /// driver_index as this driver last published it.
    public private(set) var producer: UInt32 = 0
    /// Kicks sent for this queue, and posts that needed none.
    public private(set) var kicks = 0
    public private(set) var suppressedKicks = 0

    public var slotSize: Int { 1 << Int(wqeShift) }
    /// WQEs posted and not yet taken by the device.
    public var outstanding: UInt32 { producer &- doorbell.deviceIndex }

    init(kind: Kind, depth: UInt32, wqeShift: UInt32, maxSGE: UInt32, maxInline: UInt32, ring: GuestPages,
         doorbell: DoorbellRecord, device: VerbsDevice) {
        self.kind = kind
        self.depth = depth
        self.wqeShift = wqeShift
        self.maxSGE = maxSGE
        self.maxInline = maxInline
        self.ring = ring
        self.doorbell = doorbell
        self.device = device
    }

    /// Host pointer of the slot that index `index` maps to (index & (depth - 1)).
    @inline(__always)
    public func slot(_ index: UInt32) -> UnsafeMutableRawPointer {
        ring.pointer(at: Int(index & (depth &- 1)) << Int(wqeShift))
    }

    @inline(__always)
    func reserve() throws(VerbsError) -> UnsafeMutableRawPointer {
        guard producer &- doorbell.deviceIndex < depth else { throw .refused("\(kind) queue full (\(depth) outstanding)") }
        return slot(producer)
    }

    /// Publishes everything written so far: release-store driver_index, full barrier, need_kick.
    @inline(__always)
    public func publish() {
        doorbell.storeDriverIndex(producer)
        CLinuxShims_fence_seq_cst()
        if doorbell.needKick != 0 {
            kick()
        } else {
            suppressedKicks += 1
            device.suppressedKicks += 1
        }
    }

    /// Kicks the doorbell queue whatever need_kick says.
    public func kick() {
        kicks += 1
        device.kickDoorbellQueue(doorbellQueue)
    }

    // MARK: WQE encoding

    static let sendHeaderSize = MemoryLayout<virtio_rdma_send_wqe>.size
    static let recvHeaderSize = MemoryLayout<virtio_rdma_recv_wqe>.size
    static let sgeSize = MemoryLayout<virtio_rdma_sge>.size

    @inline(__always)
    static func writeSGEs(_ sges: [SGE], at p: UnsafeMutableRawPointer) {
        var q = p
        for s in sges {
            var g = virtio_rdma_sge()
            g.addr = s.addr.littleEndian
            g.length = s.length.littleEndian
            g.lkey = s.lkey.littleEndian
            q.storeBytes(of: g, as: virtio_rdma_sge.self)
            q += sgeSize
        }
    }

    /// Writes `wr` into the next free slot and advances the producer (not published).
    @inline(__always)
    func append(_ wr: SendWR) throws(VerbsError) {
        let isInline = wr.flags.contains(.inline)
        let bodySize = isInline ? wr.inlineData.count : wr.sges.count * Self.sgeSize
        guard Self.sendHeaderSize + bodySize <= slotSize else { throw .refused("send WQE of \(Self.sendHeaderSize + bodySize) bytes in \(slotSize)-byte slots") }
        let p = try reserve()
        var w = virtio_rdma_send_wqe()
        w.wr_id = wr.wrId.littleEndian
        w.opcode = wr.opcode.rawValue
        w.send_flags = wr.flags.rawValue.littleEndian
        w.num_sge = (wr.numSGEOverride ?? (isInline ? 0 : UInt32(wr.sges.count))).littleEndian
        w.imm_data = wr.imm.littleEndian
        w.inline_length = (isInline ? UInt32(wr.inlineData.count) : 0).littleEndian
        w.remote_addr = wr.remoteAddr.littleEndian
        w.compare_add = wr.compareAdd.littleEndian
        w.swap = wr.swap.littleEndian
        w.rkey = wr.rkey.littleEndian
        w.ah = wr.ah.littleEndian
        w.remote_qpn = wr.remoteQPN.littleEndian
        w.remote_qkey = wr.remoteQKey.littleEndian
        p.storeBytes(of: w, as: virtio_rdma_send_wqe.self)
        if isInline {
            wr.inlineData.withUnsafeBytes { src in
                if let base = src.baseAddress { (p + Self.sendHeaderSize).copyMemory(from: base, byteCount: src.count) }
            }
        } else {
            Self.writeSGEs(wr.sges, at: p + Self.sendHeaderSize)
        }
        producer &+= 1
    }

    @inline(__always)
    func append(_ wr: RecvWR) throws(VerbsError) {
        guard Self.recvHeaderSize + wr.sges.count * Self.sgeSize <= slotSize else { throw .refused("receive WQE larger than its slot") }
        let p = try reserve()
        var w = virtio_rdma_recv_wqe()
        w.wr_id = wr.wrId.littleEndian
        w.num_sge = (wr.numSGEOverride ?? UInt32(wr.sges.count)).littleEndian
        p.storeBytes(of: w, as: virtio_rdma_recv_wqe.self)
        Self.writeSGEs(wr.sges, at: p + Self.recvHeaderSize)
        producer &+= 1
    }

    // MARK: raw access (hostile tests)

    /// Writes `bytes` at the start of slot `index & (depth - 1)` (at most one slot).
    public func writeSlot(_ index: UInt32, bytes: [UInt8]) {
        precondition(bytes.count <= slotSize)
        bytes.withUnsafeBytes { slot(index).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// Sets driver_index to anything (release store); the driver's producer follows it. Then kicks
    /// if need_kick asks for it, or always with `forceKick`.
    public func setDriverIndex(_ value: UInt32, forceKick: Bool = false) {
        producer = value
        doorbell.storeDriverIndex(value)
        CLinuxShims_fence_seq_cst()
        if forceKick || doorbell.needKick != 0 { kick() }
    }

    /// Advances the producer over slots the caller filled with `writeSlot`, and publishes.
    public func advance(by n: UInt32) {
        producer &+= n
        publish()
    }
}

// MARK: completion queues

public final class CompletionQueue {
    public let context: VerbsContext
    public let handle: UInt32
    public private(set) var depth: UInt32
    public private(set) var ring: GuestPages
    public private(set) var doorbell: DoorbellRecord
    /// driver_index: CQEs polled.
    public private(set) var consumer: UInt32 = 0
    /// Set when the device published more CQEs than the ring holds (an ABI violation).
    public private(set) var sawIndexBeyondDepth = false
    public var device: VerbsDevice { context.device }

    init(context: VerbsContext, handle: UInt32, depth: UInt32, ring: GuestPages, doorbell: DoorbellRecord) {
        self.context = context
        self.handle = handle
        self.depth = depth
        self.ring = ring
        self.doorbell = doorbell
    }

    static let cqeSize = MemoryLayout<virtio_rdma_cqe>.size

    /// CQEs published and not yet polled.
    public var available: UInt32 { doorbell.deviceIndex &- consumer }

    /// One CQE, if the device has published one: acquire device_index, read the slot, then
    /// release-store driver_index (the slot may be reused only after the read).
    @inline(__always)
    public func pollOne() -> Completion? {
        let produced = doorbell.deviceIndex
        guard produced != consumer else { return nil }
        if produced &- consumer > depth { sawIndexBeyondDepth = true }
        let cqe = ring.pointer(at: Int(consumer & (depth &- 1)) * Self.cqeSize).load(as: virtio_rdma_cqe.self)
        consumer &+= 1
        doorbell.storeDriverIndex(consumer)
        return Completion(cqe)
    }

    /// Up to `max` CQEs into `out` (appended; keep its capacity to avoid allocating). Returns the count.
    @inline(__always)
    public func poll(into out: inout [Completion], max: Int = .max) -> Int {
        var n = 0
        while n < max, let c = pollOne() {
            out.append(c)
            n += 1
        }
        return n
    }

    public func poll(max: Int = .max) -> [Completion] {
        var out: [Completion] = []
        _ = poll(into: &out, max: max)
        return out
    }

    /// Polls until `count` CQEs have arrived or `timeoutMilliseconds` passed (then throws, saying
    /// what did arrive).
    public func wait(for count: Int = 1, timeoutMilliseconds: Int = 3000) throws(VerbsError) -> [Completion] {
        var out: [Completion] = []
        out.reserveCapacity(count)
        let deadline = monotonicMilliseconds() + timeoutMilliseconds
        var spins = 0
        while out.count < count {
            if poll(into: &out, max: count - out.count) == 0 {
                spins += 1
                if spins > 200 {
                    guard monotonicMilliseconds() < deadline else {
                        throw .timeout("CQ \(handle): \(out.count) of \(count) completions: \(out)")
                    }
                    usleep(50)
                }
            }
        }
        return out
    }

    public func waitOne(timeoutMilliseconds: Int = 3000) throws(VerbsError) -> Completion {
        try wait(for: 1, timeoutMilliseconds: timeoutMilliseconds)[0]
    }

    /// Whatever arrives within `milliseconds` (a test that expects nothing checks this is empty).
    public func drain(waitingMilliseconds: Int) -> [Completion] {
        let deadline = monotonicMilliseconds() + waitingMilliseconds
        var out = poll()
        while monotonicMilliseconds() < deadline {
            usleep(1000)
            _ = poll(into: &out)
        }
        return out
    }

    /// Arms the CQ: arm_flags, then arm_sequence + 1 (release), then a full barrier. The caller
    /// polls once more afterwards (the race rule): a CQE that raced the arm is found by that poll.
    public func arm(_ kind: ArmKind = .next) {
        doorbell.storeArmFlags(kind.rawValue)
        doorbell.storeArmSequence(doorbell.armSequence &+ 1)
        CLinuxShims_fence_seq_cst()
    }

    /// Interrupt mode, as an event-driven guest waits: poll; if empty, arm NEXT, poll once more
    /// (the race rule), then sleep on the event queue until this CQ's completion event, and poll
    /// again (an event left from an earlier arm just sends it round once more).
    public func waitForCompletionEvent(timeoutMilliseconds: Int = 3000) throws(VerbsError) -> Completion {
        let deadline = monotonicMilliseconds() + timeoutMilliseconds
        while true {
            if let c = pollOne() { return c }
            arm(.next)
            if let c = pollOne() { return c }
            let left = deadline - monotonicMilliseconds()
            guard left > 0 else { throw .timeout("no completion event for CQ \(handle)") }
            _ = try device.waitForEvent(.cqCompletion, handle: handle, timeoutMilliseconds: left)
        }
    }

    public var isArmed: Bool { doorbell.armSequence != doorbell.notifiedSequence }
    public var status: UInt32 { doorbell.cqStatus }
    public var overflowed: Bool { doorbell.cqStatus & UInt32(VIRTIO_RDMA_CQ_OVERFLOW) != 0 }

    /// Hostile tests: driver_index set to anything.
    public func setDriverIndex(_ v: UInt32) {
        consumer = v
        doorbell.storeDriverIndex(v)
    }

    /// RESIZE_CQ onto a new ring and doorbell record; unpolled CQEs move to the new ring's start.
    public func resize(depth newDepth: UInt32, layout: PageLayout = .contiguous) throws(VerbsError) {
        let plan = context.planCQ(depth: newDepth, layout: layout)
        var r = virtio_rdma_cmd_resize_cq()
        r.cq_handle = handle.littleEndian
        r.depth = newDepth.littleEndian
        r.doorbell_gpa = plan.doorbell.gpa.littleEndian
        r.ring = plan.request.ring
        _ = try device.execute(.resizeCQ, request: bytes(of: r), responseSize: MemoryLayout<virtio_rdma_rsp_create_cq>.size)
        depth = newDepth
        ring = plan.ring
        doorbell = plan.doorbell
        consumer = 0
        doorbell.storeDriverIndex(0)
    }

    public func destroy() throws(VerbsError) {
        _ = try device.handleCommand(.destroyCQ, handle)
    }
}

// MARK: queue pairs and SRQs

public final class QueuePair {
    public let context: VerbsContext
    public let pd: ProtectionDomain
    public let type: QPType
    public let qpn: UInt32
    public let sendCQ: CompletionQueue
    public let recvCQ: CompletionQueue
    public let sq: WorkQueue
    /// nil with an SRQ.
    public let rq: WorkQueue?
    public let srq: SharedReceiveQueue?
    public var device: VerbsDevice { context.device }
    /// The PSN this QP's requester starts from (helpers use it as sq_psn and the peer's rq_psn).
    public var initialPSN: UInt32 { (qpn &* 0x9e37_79b1) & 0xff_ffff }

    init(context: VerbsContext, pd: ProtectionDomain, type: QPType, qpn: UInt32, sendCQ: CompletionQueue, recvCQ: CompletionQueue,
         sq: WorkQueue, rq: WorkQueue?, srq: SharedReceiveQueue?) {
        self.context = context
        self.pd = pd
        self.type = type
        self.qpn = qpn
        self.sendCQ = sendCQ
        self.recvCQ = recvCQ
        self.sq = sq
        self.rq = rq
        self.srq = srq
    }

    /// Writes one send WQE and publishes it (kicking only if the device asks).
    @inline(__always)
    public func postSend(_ wr: SendWR) throws(VerbsError) {
        try sq.append(wr)
        sq.publish()
    }

    /// Writes several send WQEs and publishes them with one driver_index store. If one is
    /// refused, those before it are still published (as ibv_post_send's bad_wr semantics).
    public func postSend(_ wrs: [SendWR]) throws(VerbsError) {
        defer { sq.publish() }
        for wr in wrs { try sq.append(wr) }
    }

    @inline(__always)
    public func postRecv(_ wr: RecvWR) throws(VerbsError) {
        guard let rq else { throw .refused("QP \(qpn) receives from an SRQ") }
        try rq.append(wr)
        rq.publish()
    }

    public func postRecv(_ wrs: [RecvWR]) throws(VerbsError) {
        guard let rq else { throw .refused("QP \(qpn) receives from an SRQ") }
        defer { rq.publish() }
        for wr in wrs { try rq.append(wr) }
    }

    public func modify(_ attrs: QPAttributes) throws(VerbsError) {
        try device.modifyQP(qpn: qpn, attrs)
    }

    public func query() throws(VerbsError) -> QPInfo { try device.queryQP(qpn: qpn) }
    public func state() throws(VerbsError) -> QPState { try query().state }

    public func destroy() throws(VerbsError) {
        _ = try device.handleCommand(.destroyQP, qpn)
    }
}

public final class SharedReceiveQueue {
    public let context: VerbsContext
    public let pd: ProtectionDomain
    public let handle: UInt32
    public let wq: WorkQueue
    public var device: VerbsDevice { context.device }

    init(context: VerbsContext, pd: ProtectionDomain, handle: UInt32, wq: WorkQueue) {
        self.context = context
        self.pd = pd
        self.handle = handle
        self.wq = wq
    }

    public func postRecv(_ wr: RecvWR) throws(VerbsError) {
        try wq.append(wr)
        wq.publish()
    }

    public func postRecv(_ wrs: [RecvWR]) throws(VerbsError) {
        defer { wq.publish() }
        for wr in wrs { try wq.append(wr) }
    }

    /// MODIFY_SRQ with any mask.
    public func modify(mask: UInt32, maxWR: UInt32 = 0, limit: UInt32 = 0) throws(VerbsError) {
        var a = virtio_rdma_srq_attr()
        a.srq_handle = handle.littleEndian
        a.attr_mask = mask.littleEndian
        a.max_wr = maxWR.littleEndian
        a.srq_limit = limit.littleEndian
        try device.execute(.modifySRQ, request: bytes(of: a), responseSize: 0)
    }

    public func setLimit(_ limit: UInt32) throws(VerbsError) {
        try modify(mask: UInt32(VIRTIO_RDMA_SRQ_LIMIT), limit: limit)
    }

    public func query() throws(VerbsError) -> (maxWR: UInt32, maxSGE: UInt32, limit: UInt32) {
        let a = decode(virtio_rdma_srq_attr.self, from: try device.handleCommand(.querySRQ, handle, responseSize: 24))
        return (UInt32(littleEndian: a.max_wr), UInt32(littleEndian: a.max_sge), UInt32(littleEndian: a.srq_limit))
    }

    public func destroy() throws(VerbsError) {
        _ = try device.handleCommand(.destroySRQ, handle)
    }
}

// MARK: create commands

/// A work queue's ring, doorbell and wq_desc before the create command; `desc` may be edited.
public struct WorkQueuePlan {
    public var desc: virtio_rdma_wq_desc
    public let ring: GuestPages
    public let doorbell: DoorbellRecord
    public let depth: UInt32
    public let wqeShift: UInt32
    public let maxSGE: UInt32
    public let maxInline: UInt32
}

/// CREATE_CQ's request with the ring and doorbell it describes; `request` may be edited.
public struct CQPlan {
    public var request: virtio_rdma_cmd_create_cq
    public let ring: GuestPages
    public let doorbell: DoorbellRecord
    public let depth: UInt32
}

/// CREATE_QP's request with the rings it describes; `request` may be edited before `createQP(_:)`.
public struct QPPlan {
    public var request: virtio_rdma_cmd_create_qp
    public let pd: ProtectionDomain
    public let sendCQ: CompletionQueue
    public let recvCQ: CompletionQueue
    public let srq: SharedReceiveQueue?
    public let sq: WorkQueuePlan
    public let rq: WorkQueuePlan?
}

public struct SRQPlan {
    public var request: virtio_rdma_cmd_create_srq
    public let pd: ProtectionDomain
    public let wq: WorkQueuePlan
}

extension VerbsContext {
    /// The smallest wqe_shift (6...) that holds `header` + max(maxSGE * 16, maxInline) bytes.
    public static func wqeShift(header: Int, maxSGE: UInt32, maxInline: UInt32) -> UInt32 {
        let need = header + max(Int(maxSGE) * 16, Int(maxInline))
        var shift: UInt32 = 6
        while (1 << Int(shift)) < need { shift += 1 }
        return shift
    }

    public func planWorkQueue(_ caps: WorkQueueCaps, send: Bool, layout: PageLayout = .contiguous, indirect: Bool = false) -> WorkQueuePlan {
        let shift = caps.wqeShift
            ?? Self.wqeShift(header: send ? WorkQueue.sendHeaderSize : WorkQueue.recvHeaderSize, maxSGE: caps.maxSGE, maxInline: caps.maxInline)
        let bytes = Int(caps.depth) << Int(min(shift, 12))
        let ring = device.pages(max(1, (bytes + 4095) / 4096), layout: layout)
        let doorbell = device.allocateDoorbell()
        var d = virtio_rdma_wq_desc()
        d.depth = caps.depth.littleEndian
        d.max_sge = caps.maxSGE.littleEndian
        d.max_inline = caps.maxInline.littleEndian
        d.wqe_shift = shift.littleEndian
        d.doorbell_gpa = doorbell.gpa.littleEndian
        d.ring = device.writePageList(ring.gpas, indirect: indirect)
        return WorkQueuePlan(desc: d, ring: ring, doorbell: doorbell, depth: caps.depth, wqeShift: shift, maxSGE: caps.maxSGE,
                             maxInline: caps.maxInline)
    }

    public func planCQ(depth: UInt32, layout: PageLayout = .contiguous, indirect: Bool = false) -> CQPlan {
        let bytes = Int(depth) * CompletionQueue.cqeSize
        let ring = device.pages(max(1, (bytes + 4095) / 4096), layout: layout)
        let doorbell = device.allocateDoorbell()
        var r = virtio_rdma_cmd_create_cq()
        r.ctx_handle = handle.littleEndian
        r.depth = depth.littleEndian
        r.doorbell_gpa = doorbell.gpa.littleEndian
        r.ring = device.writePageList(ring.gpas, indirect: indirect)
        return CQPlan(request: r, ring: ring, doorbell: doorbell, depth: depth)
    }

    public func createCQ(_ plan: CQPlan) throws(VerbsError) -> CompletionQueue {
        let body = try device.execute(.createCQ, request: bytes(of: plan.request), responseSize: 8)
        let rsp = decode(virtio_rdma_rsp_create_cq.self, from: body)
        let depth = UInt32(littleEndian: rsp.depth)
        guard depth == plan.depth else { throw .protocolViolation("CREATE_CQ of depth \(plan.depth) answered depth \(depth)") }
        return CompletionQueue(context: self, handle: UInt32(littleEndian: rsp.cq_handle), depth: depth, ring: plan.ring, doorbell: plan.doorbell)
    }

    public func createCQ(depth: UInt32, layout: PageLayout = .contiguous, indirect: Bool = false) throws(VerbsError) -> CompletionQueue {
        try createCQ(planCQ(depth: depth, layout: layout, indirect: indirect))
    }

    public func planQP(pd: ProtectionDomain, sendCQ: CompletionQueue, recvCQ: CompletionQueue? = nil, type: QPType = .rc,
                       sq: WorkQueueCaps = WorkQueueCaps(depth: 64), rq: WorkQueueCaps = WorkQueueCaps(depth: 64),
                       srq: SharedReceiveQueue? = nil, sqSigAll: Bool = false, layout: PageLayout = .contiguous,
                       indirect: Bool = false) -> QPPlan {
        let sqPlan = planWorkQueue(sq, send: true, layout: layout, indirect: indirect)
        let rqPlan = srq == nil ? planWorkQueue(rq, send: false, layout: layout, indirect: indirect) : nil
        var r = virtio_rdma_cmd_create_qp()
        r.ctx_handle = handle.littleEndian
        r.pd_handle = pd.handle.littleEndian
        r.send_cq = sendCQ.handle.littleEndian
        r.recv_cq = (recvCQ ?? sendCQ).handle.littleEndian
        r.srq_handle = (srq?.handle ?? 0).littleEndian
        r.qp_type = type.rawValue
        r.sq_sig_all = sqSigAll ? 1 : 0
        r.sq = sqPlan.desc
        if let rqPlan { r.rq = rqPlan.desc }
        return QPPlan(request: r, pd: pd, sendCQ: sendCQ, recvCQ: recvCQ ?? sendCQ, srq: srq, sq: sqPlan, rq: rqPlan)
    }

    public func createQP(_ plan: QPPlan) throws(VerbsError) -> QueuePair {
        let body = try device.execute(.createQP, request: bytes(of: plan.request), responseSize: 8)
        let rsp = decode(virtio_rdma_rsp_create_qp.self, from: body)
        let qpn = UInt32(littleEndian: rsp.qpn)
        let queue = Int(UInt32(littleEndian: rsp.doorbell_queue))
        let valid = plan.request.qp_type == UInt8(VIRTIO_RDMA_QPT_GSI) ? qpn == UInt32(VIRTIO_RDMA_GSI_QPN) : qpn > 1 && qpn <= 0xff_ffff
        guard valid else { throw .protocolViolation("CREATE_QP answered QPN \(qpn) for QP type \(plan.request.qp_type)") }
        guard device.hasQueue(queue) else {
            throw .protocolViolation("CREATE_QP named doorbell queue \(queue); the driver set up queues 0..<\(device.driver.queueCount)")
        }
        let sq = WorkQueue(kind: .send, depth: plan.sq.depth, wqeShift: plan.sq.wqeShift, maxSGE: plan.sq.maxSGE, maxInline: plan.sq.maxInline,
                           ring: plan.sq.ring, doorbell: plan.sq.doorbell, device: device)
        sq.doorbellQueue = queue
        var rq: WorkQueue?
        if let p = plan.rq {
            rq = WorkQueue(kind: .receive, depth: p.depth, wqeShift: p.wqeShift, maxSGE: p.maxSGE, maxInline: 0, ring: p.ring,
                           doorbell: p.doorbell, device: device)
            rq!.doorbellQueue = queue
        }
        return QueuePair(context: self, pd: plan.pd, type: QPType(rawValue: plan.request.qp_type), qpn: qpn, sendCQ: plan.sendCQ,
                         recvCQ: plan.recvCQ, sq: sq, rq: rq, srq: plan.srq)
    }

    public func createQP(pd: ProtectionDomain, sendCQ: CompletionQueue, recvCQ: CompletionQueue? = nil, type: QPType = .rc,
                         sq: WorkQueueCaps = WorkQueueCaps(depth: 64), rq: WorkQueueCaps = WorkQueueCaps(depth: 64),
                         srq: SharedReceiveQueue? = nil, sqSigAll: Bool = false, layout: PageLayout = .contiguous,
                         indirect: Bool = false) throws(VerbsError) -> QueuePair {
        try createQP(planQP(pd: pd, sendCQ: sendCQ, recvCQ: recvCQ, type: type, sq: sq, rq: rq, srq: srq, sqSigAll: sqSigAll,
                            layout: layout, indirect: indirect))
    }

    public func planSRQ(pd: ProtectionDomain, caps: WorkQueueCaps = WorkQueueCaps(depth: 64), limit: UInt32 = 0,
                        layout: PageLayout = .contiguous) -> SRQPlan {
        let wq = planWorkQueue(caps, send: false, layout: layout)
        var r = virtio_rdma_cmd_create_srq()
        r.ctx_handle = handle.littleEndian
        r.pd_handle = pd.handle.littleEndian
        r.srq_limit = limit.littleEndian
        r.rq = wq.desc
        return SRQPlan(request: r, pd: pd, wq: wq)
    }

    public func createSRQ(_ plan: SRQPlan) throws(VerbsError) -> SharedReceiveQueue {
        let body = try device.execute(.createSRQ, request: bytes(of: plan.request), responseSize: 8)
        let rsp = decode(virtio_rdma_rsp_create_srq.self, from: body)
        let queue = Int(UInt32(littleEndian: rsp.doorbell_queue))
        guard device.hasQueue(queue) else {
            throw .protocolViolation("CREATE_SRQ named doorbell queue \(queue); the driver set up queues 0..<\(device.driver.queueCount)")
        }
        let wq = WorkQueue(kind: .shared, depth: plan.wq.depth, wqeShift: plan.wq.wqeShift, maxSGE: plan.wq.maxSGE, maxInline: 0,
                           ring: plan.wq.ring, doorbell: plan.wq.doorbell, device: device)
        wq.doorbellQueue = queue
        return SharedReceiveQueue(context: self, pd: plan.pd, handle: UInt32(littleEndian: rsp.srq_handle), wq: wq)
    }

    public func createSRQ(pd: ProtectionDomain, caps: WorkQueueCaps = WorkQueueCaps(depth: 64), limit: UInt32 = 0) throws(VerbsError)
        -> SharedReceiveQueue {
        try createSRQ(planSRQ(pd: pd, caps: caps, limit: limit))
    }
}
