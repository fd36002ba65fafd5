// SPDX-License-Identifier: Apache-2.0
// One device's HCA: its resource tables and its data plane. Every method runs on the device's
// worker thread (control queue, doorbell queues and event queue all live there), so nothing here
// takes a lock except the inbox, through which other devices' engines hand in packets.
import CLinuxShims
import CVRDMAABI
import Glibc
import HostVerbs
import LinuxSystem
import Logging
import Synchronization
import VirtQueue

public final class Engine: @unchecked Sendable {
    // @unchecked: everything but `inbox`, `wake` and `sleeping` belongs to the device's worker.
    let configuration: DeviceConfiguration
    let fabric: SoftwareFabric
    /// The verbs provider's host device and state; nil on the software provider.
    let host: HostPath?
    let logger: Logger

    var contexts: HandleTable<UserContext>
    var pds: HandleTable<ProtectionDomain>
    var mrs: HandleTable<MemoryRegion>
    var cqs: HandleTable<CompletionQueue>
    var qps: HandleTable<QueuePair>
    var srqs: HandleTable<SharedReceiveQueue>
    var ahs: HandleTable<AddressHandle>
    var pinnedBytes: UInt64 = 0
    /// Host memory the QPs' in-flight windows take (the maxWindowBytes quota).
    var windowBytes: UInt64 = 0
    /// Port 1's GID table; index 0 is the default link-local GID.
    var gids: [GID?]
    var gidMACs: [[UInt8]]
    static let gidTableLength = 16

    private(set) var memory: GuestMemory = .empty
    /// QPs in creation order: what the data plane scans.
    var activeQPs: [QueuePair] = []

    // Events waiting for an event-queue buffer.
    var events: [virtio_rdma_event] = []
    static let maxPendingEvents = 4096

    // Packets from any engine (this one included).
    private let inbox = Mutex<[Packet]>([])
    private var draining: [Packet] = []
    let wake: EventFD
    /// Scratch for the receive WQE being landed (max_sge entries), allocated once.
    let receiveSegments: UnsafeMutablePointer<DataSegment>
    /// True while the worker sleeps: senders then signal `wake`.
    let sleeping = Atomic<Bool>(false)
    /// The earliest RNR or ACK timer of any QP when the worker last prepared to sleep (monotonic
    /// ns, 0 if none): the worker sleeps until then, not in a loop.
    private(set) var nextDeadline: UInt64 = 0

    init(configuration: DeviceConfiguration, fabric: SoftwareFabric, host: HostPath?, logger: Logger) throws(SystemError) {
        self.configuration = configuration
        self.fabric = fabric
        self.host = host
        self.logger = logger
        wake = try EventFD()
        let c = configuration
        contexts = HandleTable(name: "context", limit: 1024)
        pds = HandleTable(name: "PD", limit: c.maxPD)
        cqs = HandleTable(name: "CQ", limit: c.maxCQ)
        if host != nil {
            // Wire ids unique in the daemon, so its directory can translate them (HostPath.swift):
            // each device mints QPNs and keys from its own range.
            let d = UInt32(c.index + 1)
            precondition(d < 64, "the verbs provider serves at most 63 devices per daemon")
            qps = HandleTable(name: "QP", limit: c.maxQP, first: d << 18, mask: d << 18 | 0x3_ffff)
            mrs = HandleTable(name: "MR", limit: c.maxMR, first: d << 24, mask: d << 24 | 0xff_ffff)
        } else {
            qps = HandleTable(name: "QP", limit: c.maxQP, first: 2)
            mrs = HandleTable(name: "MR", limit: c.maxMR)
        }
        srqs = HandleTable(name: "SRQ", limit: c.maxSRQ)
        ahs = HandleTable(name: "AH", limit: c.maxAH)
        gids = Array(repeating: nil, count: Self.gidTableLength)
        gidMACs = Array(repeating: [0, 0, 0, 0, 0, 0], count: Self.gidTableLength)
        events.reserveCapacity(64)
        draining.reserveCapacity(64)
        receiveSegments = .allocate(capacity: Int(max(1, c.maxSGE)))
        receiveSegments.initialize(repeating: DataSegment(), count: Int(max(1, c.maxSGE)))
    }

    deinit {
        receiveSegments.deinitialize(count: Int(max(1, configuration.maxSGE)))
        receiveSegments.deallocate()
    }

    /// Publishes the default GID; called once the device exists. On the verbs provider it is the
    /// host port's GID the operator chose (--gid-index).
    func start() {
        if let host {
            let index = configuration.hostVerbs!.gidIndex
            if let g = try? host.context.gid(at: index) {
                gids[0] = g.bytes.withUnsafeBytes { GID(high: UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)),
                                                        low: UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))) }
                gidMACs[0] = configuration.mac
                host.hostGIDIndex[0] = index
            }
            return
        }
        let gid = GID.linkLocal(guid: configuration.nodeGUID)
        if (try? fabric.add(gid, engine: self)) != nil {
            gids[0] = gid
            gidMACs[0] = configuration.mac
        } else {
            logger.warning("default GID \(gid) is taken by another device of this daemon")
        }
    }

    // MARK: memory

    /// Switches to a new memory table; a ring that is no longer in guest RAM breaks its QP.
    func update(memory new: GuestMemory) {
        guard new !== memory else { return }
        memory = new
        if let host { hostRemapMRs(host) }
        for cq in cqs.objects.values where !cq.remap(new) {
            logger.warning("CQ \(cq.handle): ring left guest RAM")
        }
        for srq in srqs.objects.values where !srq.queue.remap(new) {
            logger.warning("SRQ \(srq.handle): ring left guest RAM")
        }
        for qp in activeQPs {
            let ok = qp.sq.remap(new) && qp.sqDoorbell.remap(new) && (qp.ownReceive?.remap(new) ?? true)
            if !ok {
                logger.warning("QP \(qp.qpn): ring left guest RAM")
                fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_FATAL))
            }
        }
    }

    // MARK: inbox

    func deliver(_ packet: Packet) {
        inbox.withLock { $0.append(packet) }
        if sleeping.load(ordering: .sequentiallyConsistent) { wake.signal() }
    }

    private var inboxEmpty: Bool { inbox.withLock { $0.isEmpty } }

    // MARK: the data plane pass

    /// One pass: packets in, then every QP's send queue. Returns the work done.
    func poll() -> Int {
        if let host { return hostPoll(host) }
        if sleeping.load(ordering: .relaxed) {
            sleeping.store(false, ordering: .relaxed)
            wake.drain()
        }
        var work = 0
        let now = monotonicNanoseconds()
        inbox.withLock { swap(&$0, &draining) }
        if !draining.isEmpty {
            for i in draining.indices {
                switch draining[i].kind {
                case .request: respond(to: draining[i])
                case .acknowledge, .negativeAcknowledge: complete(draining[i], now: now)
                }
            }
            work += draining.count
            draining.removeAll(keepingCapacity: true)
        }
        for qp in activeQPs { work += runRequester(qp, now: now) }
        return work
    }

    /// The worker is going to sleep: ask the guest to kick again, then look once more.
    func prepareToSleep() -> Bool {
        if let host { return hostPrepareToSleep(host) }
        var pending = false
        nextDeadline = 0
        for qp in activeQPs {
            qp.sqDoorbell.setNeedKick(1)
            if qp.state == .error { qp.ownReceive?.doorbell.setNeedKick(1) }
            qp.kickRequested = true
        }
        sleeping.store(true, ordering: .sequentiallyConsistent)
        CLinuxShims_fence_seq_cst()
        for qp in activeQPs {
            if qp.resumeAt != 0 && (nextDeadline == 0 || qp.resumeAt < nextDeadline) { nextDeadline = qp.resumeAt }
            if qp.ackDeadline != 0 && (nextDeadline == 0 || qp.ackDeadline < nextDeadline) { nextDeadline = qp.ackDeadline }
            if qp.sqDoorbell.driverIndex != qp.sqConsumer && qp.state == .readyToSend && qp.windowCount < qp.sq.depth { pending = true }
            if qp.state == .error {
                // Posts still to flush; an impossible index is not work (nothing is taken).
                let sq = qp.sqDoorbell.driverIndex &- qp.sqConsumer
                if sq > 0 && sq <= qp.sq.depth { pending = true }
                if let rq = qp.ownReceive, let n = rq.available, n > 0 { pending = true }
            }
        }
        if !inboxEmpty { pending = true }
        if nextDeadline != 0 && monotonicNanoseconds() >= nextDeadline { pending = true }
        if pending { sleeping.store(false, ordering: .relaxed) }
        return pending
    }

    /// While polling the guest need not kick: clear need_kick on QPs that had it set.
    @inline(__always)
    func stopKicks(_ qp: QueuePair) {
        guard qp.kickRequested else { return }
        qp.kickRequested = false
        qp.sqDoorbell.setNeedKick(0)
        qp.ownReceive?.doorbell.setNeedKick(0)
    }

    /// What wakes the sleeping worker besides kicks: the inbox (software provider) or the host
    /// completion channel and async events (verbs provider).
    var wakeDescriptor: Int32 { host?.context.wakeDescriptor ?? wake.descriptor.rawValue }

    // MARK: events

    func postEvent(_ type: Int32, handle: UInt32, detail: UInt32 = 0) {
        guard events.count < Self.maxPendingEvents else {
            logger.warning("event queue full: dropping event \(type) for \(handle)")
            return
        }
        logger.trace("event \(type) for \(handle)")
        var e = virtio_rdma_event()
        e.type = UInt32(bitPattern: type).littleEndian
        e.handle = handle.littleEndian
        e.detail = detail.littleEndian
        events.append(e)
    }

    /// Writes one CQE and raises the CQ's event or overflow error.
    func writeCompletion(_ cq: CompletionQueue, _ cqe: inout virtio_rdma_cqe, solicited: Bool) {
        switch cq.push(&cqe, solicited: solicited) {
        case .written(let notify):
            if notify { postEvent(Int32(VIRTIO_RDMA_EV_CQ_COMPLETION), handle: cq.handle) }
        case .overflow:
            logger.warning("CQ \(cq.handle) overflowed")
            postEvent(Int32(VIRTIO_RDMA_EV_CQ_ERR), handle: cq.handle, detail: VIRTIO_RDMA_CQ_OVERFLOW)
        case .alreadyInError:
            break
        }
    }

    // MARK: reset

    /// RESET_DEVICE or the front-end left: everything the guest created goes.
    func reset() {
        for qp in activeQPs { qp.incarnation.add(1, ordering: .releasing) }
        if let host {
            for qp in activeQPs { hostForget(qp, host) }
            for mr in mrs.objects.values { hostDeregister(mr, host) }
            for i in 1..<host.hostGIDIndex.count { host.hostGIDIndex[i] = nil }
        }
        activeQPs.removeAll()
        qps.removeAll(); srqs.removeAll(); cqs.removeAll(); mrs.removeAll(); ahs.removeAll(); pds.removeAll()
        contexts.removeAll()
        pinnedBytes = 0
        windowBytes = 0
        events.removeAll()
        for i in 1..<gids.count {
            if let gid = gids[i], host == nil { fabric.remove(gid, engine: self) }
            gids[i] = nil
        }
        inbox.withLock { $0.removeAll() }
    }
}

@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
