// SPDX-License-Identifier: Apache-2.0
// A queue pair: its plain description (type, attributes, rings, indices, PSNs) and the requester's
// in-flight window. The window is raw memory allocated once at create: the responder of another
// device reads a slot's segments while the slot is in flight, and nothing on the data path
// allocates.
//
// That read crosses workers, so each slot has a guard: the sequence that owns it and a count of
// responders reading it. A responder registers, then checks the owner is still its packet's; the
// requester disowns a slot when it retires and refills it only when no responder is registered.
// Either the requester sees the reader, or the reader sees the slot disowned (both sides order
// their write before their read with a full fence), so a WQE's segments are never rewritten,
// with their memory-region references, under a reader: not after a RESET, not for a stale
// duplicate of a retired WQE.
import CLinuxShims
import CVRDMAABI
import HostVerbs
import Synchronization
import VirtQueue

/// Where a message's bytes are: a range of a memory region, or inline bytes held by the QP.
struct DataSegment {
    var mr: MemoryRegion?
    var address: UInt64 = 0
    var length: UInt32 = 0
    var inline: UnsafeMutableRawPointer?
}

/// A send WQE the requester has taken from the ring, until its completion is written.
struct InflightWork {
    enum Phase: UInt8 { case pending, sent, done }
    var phase: Phase = .pending
    /// The completion status once done (VIRTIO_RDMA_WC_*).
    var status: UInt8 = 0
    var wrID: UInt64 = 0
    var opcode: UInt8 = 0
    var signaled = false
    var solicited = false
    var fence = false
    var withImm = false
    var imm: UInt32 = 0
    var psn: UInt32 = 0
    var packets: UInt32 = 1
    var length: UInt32 = 0
    var segmentCount: Int32 = 0
    var remoteAddress: UInt64 = 0
    var rkey: UInt32 = 0
    var compareAdd: UInt64 = 0
    var swap: UInt64 = 0
    /// UD: where the datagram goes, copied from the AH when the WQE was fetched (the work stays
    /// plain data, so the window copies it without reference counting).
    var av = virtio_rdma_av()
    var remoteQPN: UInt32 = 0
    var remoteQKey: UInt32 = 0
    /// UD: the AH's handle (the verbs provider posts with the host's AH).
    var ah: UInt32 = 0
    /// UD: the source GID (zero if the AH's sgid_index entry is empty) and MAC (6 bytes, first in
    /// the low byte), read at fetch: the responder runs on another worker and must not read this
    /// device's GID table.
    var sourceGID = GID(high: 0, low: 0)
    var sourceMAC: UInt64 = 0

    var isReadOrAtomic: Bool {
        opcode == UInt8(VIRTIO_RDMA_WR_RDMA_READ) || opcode == UInt8(VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP)
            || opcode == UInt8(VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD)
    }
}

final class QueuePair: @unchecked Sendable {
    // @unchecked: used on its engine's worker, except that another device's responder reads the
    // segments and inline bytes of in-flight slots (immutable while in flight) and `incarnation`
    // (atomic).
    let qpn: UInt32
    let type: QPType
    let context: UInt32
    let pd: ProtectionDomain
    let sendCQ: CompletionQueue
    let recvCQ: CompletionQueue
    let srq: SharedReceiveQueue?
    let ownReceive: ReceiveQueue?
    let sq: GuestRing
    let sqDoorbell: DoorbellRecord
    let sqMaxSGE: UInt32
    let sqMaxInline: UInt32
    let signalAll: Bool
    unowned let engine: Engine

    private(set) var state: QPState = .reset
    var attributes = QPAttributes()
    /// Bumped when the QP is reset or destroyed: packets of an earlier life are dropped.
    let incarnation = Atomic<UInt32>(0)

    // Requester.
    var sqConsumer: UInt32 = 0
    var oldest: UInt32 = 0
    var nextToSend: UInt32 = 0
    var nextPSN: UInt32 = 0
    var retriesLeft: UInt8 = 0
    var rnrRetriesLeft: UInt8 = 0
    /// Monotonic deadlines in ns, 0 when not running: RNR back-off, and the ACK timer.
    var resumeAt: UInt64 = 0
    var ackDeadline: UInt64 = 0
    var outstandingReadAtomic = 0
    var route: Engine?
    var routeGeneration: UInt64 = 0
    /// The device's copy of the SQ (and RQ) need_kick fields.
    var kickRequested: Bool
    var drainedNotified = false
    /// COMM_EST was raised (first packet received in RTR).
    var communicationEstablished = false
    /// Attribute mask bits set since creation or the last RESET (QUERY_QP reports them).
    var attributesSet: UInt32 = 0
    /// The verbs provider's QP (nil on the software provider), and whether a WQE failed before
    /// reaching it: nothing after that one goes to the host until the QP is in ERR or reset.
    var host: HostQueuePair?
    var hostSendStopped = false

    // Responder.
    var expectedPSN: UInt32 = 0

    let inflight: UnsafeMutablePointer<InflightWork>
    /// Per slot: [owner, readers]; owner is 1 << 32 | sequence while a WQE holds the slot, else 0.
    private let slotGuards: UnsafeMutablePointer<UInt64>
    let segments: UnsafeMutablePointer<DataSegment>
    let inlineBytes: UnsafeMutableRawPointer
    let segmentsPerSlot: Int
    let inlinePerSlot: Int

    init(qpn: UInt32, type: QPType, context: UInt32, pd: ProtectionDomain, sendCQ: CompletionQueue,
         recvCQ: CompletionQueue, srq: SharedReceiveQueue?, ownReceive: ReceiveQueue?, sq: GuestRing,
         sqDoorbell: DoorbellRecord, sqMaxSGE: UInt32, sqMaxInline: UInt32, signalAll: Bool, engine: Engine) {
        self.qpn = qpn; self.type = type; self.context = context; self.pd = pd
        self.sendCQ = sendCQ; self.recvCQ = recvCQ; self.srq = srq; self.ownReceive = ownReceive
        self.sq = sq; self.sqDoorbell = sqDoorbell; self.sqMaxSGE = sqMaxSGE; self.sqMaxInline = sqMaxInline
        self.signalAll = signalAll; self.engine = engine
        kickRequested = true
        let depth = Int(sq.depth)
        segmentsPerSlot = Self.segmentsPerSlot(maxSGE: sqMaxSGE)
        inlinePerSlot = Self.inlinePerSlot(maxInline: sqMaxInline)
        inflight = .allocate(capacity: depth)
        inflight.initialize(repeating: InflightWork(), count: depth)
        slotGuards = .allocate(capacity: 2 * depth)
        slotGuards.initialize(repeating: 0, count: 2 * depth)
        segments = .allocate(capacity: depth * segmentsPerSlot)
        segments.initialize(repeating: DataSegment(), count: depth * segmentsPerSlot)
        inlineBytes = .allocate(byteCount: depth * inlinePerSlot, alignment: 8)
        sqDoorbell.clearDeviceLine()
        // Until a worker polls this QP, the first post must kick.
        sqDoorbell.setNeedKick(1)
        kickRequested = true
    }

    deinit {
        let depth = Int(sq.depth)
        inflight.deinitialize(count: depth)
        inflight.deallocate()
        slotGuards.deinitialize(count: 2 * depth)
        slotGuards.deallocate()
        segments.deinitialize(count: depth * segmentsPerSlot)
        segments.deallocate()
        inlineBytes.deallocate()
    }

    static func segmentsPerSlot(maxSGE: UInt32) -> Int { max(1, Int(maxSGE)) }
    // Inline slots also hold an atomic's 8-byte result path, so never less than 8.
    static func inlinePerSlot(maxInline: UInt32) -> Int { max(8, (Int(maxInline) + 7) & ~7) }

    /// Host memory the in-flight window of an SQ takes (charged to the device's quota: a guest
    /// chooses depth and SGE count, and may share ring pages between QPs).
    static func windowBytes(depth: UInt32, maxSGE: UInt32, maxInline: UInt32) -> UInt64 {
        UInt64(depth) * UInt64(MemoryLayout<InflightWork>.stride + segmentsPerSlot(maxSGE: maxSGE) * MemoryLayout<DataSegment>.stride
                               + inlinePerSlot(maxInline: maxInline))
    }

    var windowBytes: UInt64 { Self.windowBytes(depth: sq.depth, maxSGE: sqMaxSGE, maxInline: sqMaxInline) }

    var receive: ReceiveQueue { srq?.queue ?? ownReceive! }

    @inline(__always) func slot(_ sequence: UInt32) -> Int { Int(sequence & (sq.depth - 1)) }
    @inline(__always) func segments(of sequence: UInt32) -> UnsafeMutablePointer<DataSegment> {
        segments + slot(sequence) * segmentsPerSlot
    }
    @inline(__always) func inline(of sequence: UInt32) -> UnsafeMutableRawPointer {
        inlineBytes + slot(sequence) * inlinePerSlot
    }

    // MARK: slot guards

    /// Requester: the WQE of `sequence` holds its slot now (after the slot was written).
    @inline(__always) func own(_ sequence: UInt32) {
        CLinuxShims_store_release_u64(slotGuards + 2 * slot(sequence), 1 << 32 | UInt64(sequence))
    }

    /// Requester: the slot's WQE retired (or was discarded); stale packets must not read it.
    @inline(__always) func disown(_ sequence: UInt32) {
        CLinuxShims_store_release_u64(slotGuards + 2 * slot(sequence), 0)
    }

    /// Requester: whether the slot `sequence` will use may be written (no responder reads it).
    @inline(__always) func slotWritable(_ sequence: UInt32) -> Bool {
        CLinuxShims_fence_seq_cst()  // orders the disowning store before the readers load
        return CLinuxShims_load_acquire_u64(slotGuards + 2 * slot(sequence) + 1) == 0
    }

    /// Responder, on another worker: registers as a reader of the slot of `sequence`; false (and
    /// unregistered) if that WQE no longer holds it or the QP was reset since `incarnation`.
    func beginReading(_ sequence: UInt32, incarnation: UInt32) -> Bool {
        let readers = slotGuards + 2 * slot(sequence) + 1
        _ = CLinuxShims_atomic_fetch_add_u64(readers, 1)
        CLinuxShims_fence_seq_cst()  // orders the registration before the owner load
        if self.incarnation.load(ordering: .acquiring) == incarnation,
           CLinuxShims_load_acquire_u64(slotGuards + 2 * slot(sequence)) == 1 << 32 | UInt64(sequence) {
            return true
        }
        endReading(sequence)
        return false
    }

    func endReading(_ sequence: UInt32) {
        _ = CLinuxShims_atomic_fetch_add_u64(slotGuards + 2 * slot(sequence) + 1, UInt64.max)
    }

    /// WQEs taken from the SQ and not yet completed.
    var windowCount: UInt32 { sqConsumer &- oldest }

    /// Enters `new`, doing what the transition means for the rings (the caller checked legality).
    func enter(_ new: QPState) {
        let old = state
        state = new
        switch new {
        case .reset:
            incarnation.add(1, ordering: .releasing)
            attributes = QPAttributes()
            attributesSet = 0
            communicationEstablished = false
            for i in 0..<Int(sq.depth) { disown(UInt32(i)) }
            sqConsumer = sqDoorbell.driverIndex
            oldest = sqConsumer
            nextToSend = sqConsumer
            sqDoorbell.setDeviceIndex(sqConsumer)
            if let rq = ownReceive {
                rq.hostHeld = 0  // the host QP's reset discards them
                rq.consumer = rq.doorbell.driverIndex
                rq.doorbell.setDeviceIndex(rq.consumer)
            }
            resumeAt = 0; ackDeadline = 0; outstandingReadAtomic = 0
            hostSendStopped = false
        case .readyToReceive where old != .readyToReceive:
            expectedPSN = attributes.rqPSN & 0xff_ffff
        case .readyToSend where old == .readyToReceive:
            nextPSN = attributes.sqPSN & 0xff_ffff
            retriesLeft = attributes.retryCount
            rnrRetriesLeft = attributes.rnrRetry
        case .sendQueueDrain:
            drainedNotified = false
        default:
            break
        }
    }
}
