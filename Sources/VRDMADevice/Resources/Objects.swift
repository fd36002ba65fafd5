// SPDX-License-Identifier: Apache-2.0
// The device's resources other than QPs. Each holds the plain values that describe it (what
// migration will move) plus host-side caches rebuilt from them.
import CLinuxShims
import CVRDMAABI
import HostVerbs
import VirtQueue

final class UserContext {
    let handle: UInt32
    init(handle: UInt32) { self.handle = handle }
}

final class ProtectionDomain {
    let handle: UInt32
    let context: UInt32
    /// MRs, QPs, SRQs and AHs created on it: DEALLOC_PD waits for zero.
    var users = 0
    /// The verbs provider's PD (nil on the software provider).
    var host: HostProtectionDomain?
    init(handle: UInt32, context: UInt32) { self.handle = handle; self.context = context }
}

final class MemoryRegion {
    let lkey: UInt32
    let rkey: UInt32
    let pd: ProtectionDomain
    let context: UInt32
    let access: UInt32
    let iova: UInt64
    let length: UInt64
    /// Page list (guest-physical); empty for the DMA MR, whose IOVA is the guest-physical address.
    let pages: [UInt64]
    let dma: Bool
    /// The verbs provider's registration of the same pages (nil on the software provider, or
    /// after guest RAM moved under it).
    var host: HostMemoryRegion?

    init(lkey: UInt32, rkey: UInt32, pd: ProtectionDomain, context: UInt32, access: UInt32, iova: UInt64,
         length: UInt64, pages: [UInt64], dma: Bool) {
        self.lkey = lkey; self.rkey = rkey; self.pd = pd; self.context = context; self.access = access
        self.iova = iova; self.length = length; self.pages = pages; self.dma = dma
    }

    /// Whether [address, address + count) lies inside the region (no overflow possible).
    @inline(__always)
    func contains(_ address: UInt64, _ count: UInt64) -> Bool {
        address >= iova && count <= length && address - iova <= length - count
    }

    /// Whether [address, address + count) of a DMA MR is guest RAM now (RAM may have holes).
    func isGuestRAM(_ address: UInt64, _ count: UInt64, memory: GuestMemory) -> Bool {
        var done: UInt64 = 0
        while done < count {
            guard let r = memory.span(containing: address + done) else { return false }
            done = r.end - address
        }
        return true
    }

    /// The guest-physical address and host pointer of `address` and how many bytes follow it
    /// contiguously in the same page (at most `count`); nil if that page is not guest RAM now.
    @inline(__always)
    func chunk(at address: UInt64, count: Int, memory: GuestMemory) -> (UnsafeMutableRawPointer, UInt64, Int)? {
        let gpa: UInt64
        let inPage: Int
        if dma {
            gpa = address
            inPage = Int(address & (pageSize - 1))
        } else {
            let offset = address - iova + (iova & (pageSize - 1))
            inPage = Int(offset & (pageSize - 1))
            gpa = pages[Int(offset >> 12)] + UInt64(inPage)
        }
        let n = min(count, Int(pageSize) - inPage)
        guard let p = memory.hostPointer(gpa: gpa, length: UInt64(n)) else { return nil }
        return (p, gpa, n)
    }
}

final class CompletionQueue {
    let handle: UInt32
    let context: UInt32
    private(set) var ring: GuestRing
    private(set) var doorbell: DoorbellRecord
    /// CQEs written (free-running), and the arm sequence of the last event sent.
    private(set) var producer: UInt32 = 0
    private(set) var notifiedSequence: UInt32 = 0
    private(set) var overflowed = false
    /// QPs and SRQs using it: DESTROY_CQ waits for zero.
    var users = 0
    /// The verbs provider's CQ, whose completions become this ring's CQEs.
    var host: HostCompletionQueue?

    init(handle: UInt32, context: UInt32, ring: GuestRing, doorbell: DoorbellRecord) {
        self.handle = handle; self.context = context; self.ring = ring; self.doorbell = doorbell
        doorbell.clearDeviceLine()
    }

    var depth: UInt32 { ring.depth }

    enum PushResult { case written(notify: Bool), overflow, alreadyInError }

    /// Writes one CQE and says whether an event is due (the CQ was armed for it).
    func push(_ cqe: inout virtio_rdma_cqe, solicited: Bool) -> PushResult {
        guard !overflowed else { return .alreadyInError }
        let consumer = doorbell.driverIndex
        // A consumer ahead of the producer is a driver bug; treat it like a full ring.
        guard producer &- consumer < depth else {
            overflowed = true
            doorbell.setCQStatus(VIRTIO_RDMA_CQ_OVERFLOW)
            return .overflow
        }
        let slot = ring.slot(producer)
        // SAFETY: a 64-byte slot inside a checked ring page.
        withUnsafeBytes(of: &cqe) { slot.copyMemory(from: $0.baseAddress!, byteCount: MemoryLayout<virtio_rdma_cqe>.size) }
        ring.markDirty(producer)
        producer &+= 1
        doorbell.setDeviceIndex(producer)
        let sequence = doorbell.armSequence
        guard sequence != notifiedSequence else { return .written(notify: false) }
        let flags = doorbell.armFlags
        let matches = flags & UInt32(VIRTIO_RDMA_CQ_ARM_NEXT) != 0 || solicited || cqe.status != 0
        guard matches else { return .written(notify: false) }
        notifiedSequence = sequence
        doorbell.setNotifiedSequence(sequence)
        return .written(notify: true)
    }

    /// RESIZE_CQ: copies unpolled CQEs to the new ring; indices restart from there.
    func resize(ring newRing: GuestRing, doorbell newDoorbell: DoorbellRecord) throws(CommandError) {
        guard !overflowed else { throw .badState("CQ \(handle) overflowed: destroy it") }
        let consumer = doorbell.driverIndex
        let pending = producer &- consumer
        guard pending <= depth else { throw .invalid("CQ consumer index is ahead of the producer") }
        guard pending <= newRing.depth else { throw .invalid("\(pending) unpolled CQEs do not fit in \(newRing.depth)") }
        for i in 0..<pending {
            newRing.slot(i).copyMemory(from: ring.slot(consumer &+ i), byteCount: MemoryLayout<virtio_rdma_cqe>.size)
            newRing.markDirty(i)
        }
        newDoorbell.clearDeviceLine()
        ring = newRing
        doorbell = newDoorbell
        producer = pending
        notifiedSequence = newDoorbell.armSequence
        newDoorbell.setNotifiedSequence(notifiedSequence)
        newDoorbell.setDeviceIndex(producer)
    }

    func remap(_ memory: GuestMemory) -> Bool { ring.remap(memory) && doorbell.remap(memory) }
}

/// A receive queue: a QP's own RQ or a shared one. The responder takes WQEs from it in order.
final class ReceiveQueue {
    let ring: GuestRing
    let doorbell: DoorbellRecord
    let maxSGE: UInt32
    /// WQEs taken (free-running), the device side of the doorbell record.
    var consumer: UInt32 = 0
    /// Verbs provider: per ring slot, the wr_id and first SGE (address, lkey) of a WQE handed to
    /// the host, whose completion comes later. Empty on the software provider.
    var wrIDs: [UInt64]
    var firstAddress: [(UInt64, UInt32)]
    /// Verbs provider: WQEs handed to the NIC and not completed yet.
    var hostHeld: UInt32 = 0
    /// The verbs provider may hand the NIC another WQE: it holds fewer than a ring's worth (more
    /// would reuse slots whose wr_id the device still keeps).
    var hostHasRoom: Bool { hostHeld < ring.depth }

    init(ring: GuestRing, doorbell: DoorbellRecord, maxSGE: UInt32, hostShadow: Bool) {
        self.ring = ring; self.doorbell = doorbell; self.maxSGE = maxSGE
        wrIDs = hostShadow ? Array(repeating: 0, count: Int(ring.depth)) : []
        firstAddress = hostShadow ? Array(repeating: (0, 0), count: Int(ring.depth)) : []
        doorbell.clearDeviceLine()
    }

    /// WQEs posted and not yet taken; nil if the driver's index is impossible (more than depth).
    @inline(__always)
    var available: UInt32? {
        let n = doorbell.driverIndex &- consumer
        return n <= ring.depth ? n : nil
    }

    func take() {
        consumer &+= 1
        doorbell.setDeviceIndex(consumer)
    }

    func remap(_ memory: GuestMemory) -> Bool { ring.remap(memory) && doorbell.remap(memory) }
}

final class SharedReceiveQueue {
    let handle: UInt32
    let context: UInt32
    let pd: ProtectionDomain
    let queue: ReceiveQueue
    var limit: UInt32
    var users = 0
    /// Verbs provider: the host SRQ.
    var host: HostSharedReceiveQueue?

    init(handle: UInt32, context: UInt32, pd: ProtectionDomain, queue: ReceiveQueue, limit: UInt32) {
        self.handle = handle; self.context = context; self.pd = pd; self.queue = queue; self.limit = limit
    }
}

final class AddressHandle {
    let handle: UInt32
    let context: UInt32
    let pd: ProtectionDomain
    let av: virtio_rdma_av
    var host: HostAddressHandle?
    init(handle: UInt32, context: UInt32, pd: ProtectionDomain, av: virtio_rdma_av) {
        self.handle = handle; self.context = context; self.pd = pd; self.av = av
    }
}
