// SPDX-License-Identifier: Apache-2.0
// The device side of a virtio 1.x split virtqueue (virtio 1.2 §2.7). The guest owns the ring memory
// and may change any byte at any time, so every field is read exactly once, checked, and never
// trusted again; nothing the guest writes can make us touch memory outside its regions.
import CLinuxShims
import LinuxSystem

/// Descriptor flags (virtio 1.2 §2.7.5).
public enum VirtqDescriptorFlags {
    public static let next: UInt16 = 1
    public static let write: UInt16 = 2
    public static let indirect: UInt16 = 4
}

/// Ring flags: avail.flags NO_INTERRUPT, used.flags NO_NOTIFY (virtio 1.2 §2.7.7, §2.7.10).
public enum VirtqRingFlags {
    public static let noInterrupt: UInt16 = 1
    public static let noNotify: UInt16 = 1
}

/// Byte layout of the three split-ring parts (virtio 1.2 §2.7.5, §2.7.6, §2.7.8).
public enum SplitRingLayout {
    public static let descriptorSize: UInt64 = 16
    public static func descriptorTableSize(_ q: UInt16) -> UInt64 { 16 * UInt64(q) }
    public static func availRingSize(_ q: UInt16) -> UInt64 { 6 + 2 * UInt64(q) }
    public static func usedRingSize(_ q: UInt16) -> UInt64 { 6 + 8 * UInt64(q) }
    public static let descriptorAlignment: UInt64 = 16, availAlignment: UInt64 = 2, usedAlignment: UInt64 = 4
}

public struct VringAddresses: Sendable, Equatable {
    public var descriptorTable: UInt64  // guest-physical
    public var availRing: UInt64  // guest-physical
    public var usedRing: UInt64  // guest-physical
    /// VHOST_VRING_F_LOG: log used-ring writes at usedLogAddress + offset.
    public var logUsed: Bool
    public var usedLogAddress: UInt64

    public init(descriptorTable: UInt64, availRing: UInt64, usedRing: UInt64, logUsed: Bool = false, usedLogAddress: UInt64 = 0) {
        self.descriptorTable = descriptorTable
        self.availRing = availRing
        self.usedRing = usedRing
        self.logUsed = logUsed
        self.usedLogAddress = usedLogAddress
    }
}

/// Every case is a guest (driver) error: the queue is broken and the caller stops using it.
public enum QueueError: Error, Equatable, CustomStringConvertible {
    case invalidSize(UInt32)
    case ringOutsideMemory(String)
    case misalignedRing(String)
    case availIndexJump(avail: UInt16, next: UInt16)
    case headOutOfRange(UInt16)
    case descriptorIndexOutOfRange(UInt16)
    case chainTooLong(Int)
    case descriptorLoop
    case zeroLengthDescriptor(index: UInt16)
    case bufferOutsideMemory(address: UInt64, length: UInt32)
    case totalLengthOverflow
    case readableAfterWritable
    case nestedIndirect
    case indirectWithNext
    case indirectNotNegotiated
    case badIndirectTableLength(UInt32)

    public var description: String {
        switch self {
        case .invalidSize(let n): "invalid queue size \(n) (a power of two up to 32768)"
        case .ringOutsideMemory(let s): "\(s) is not inside one guest memory region"
        case .misalignedRing(let s): "\(s) is misaligned"
        case .availIndexJump(let a, let n): "avail index \(a) is more than the queue size ahead of \(n)"
        case .headOutOfRange(let h): "chain head \(h) out of range"
        case .descriptorIndexOutOfRange(let i): "descriptor next \(i) out of range"
        case .chainTooLong(let n): "descriptor chain of \(n) descriptors is longer than the queue"
        case .descriptorLoop: "descriptor loop"
        case .zeroLengthDescriptor(let i): "zero-length descriptor \(i)"
        case .bufferOutsideMemory(let a, let l): "buffer 0x\(hex(a)) + \(l) is not inside one guest memory region"
        case .totalLengthOverflow: "descriptor chain total length exceeds 4 GiB"
        case .readableAfterWritable: "device-readable descriptor after a device-writable one"
        case .nestedIndirect: "indirect descriptor inside an indirect table"
        case .indirectWithNext: "descriptor has both NEXT and INDIRECT"
        case .indirectNotNegotiated: "indirect descriptor without VIRTIO_F_INDIRECT_DESC"
        case .badIndirectTableLength(let l): "indirect table length \(l) is not a positive multiple of 16"
        }
    }
}

/// One buffer of a chain, already translated. `host` stays valid while the chain's GuestMemory lives.
public struct GuestSegment: @unchecked Sendable {
    // @unchecked: `host` points into a shared guest mapping; who may touch it is the queue owner's rule.
    public let guestAddress: UInt64
    public let length: UInt32
    public let host: UnsafeMutableRawPointer

    public init(guestAddress: UInt64, length: UInt32, host: UnsafeMutableRawPointer) {
        self.guestAddress = guestAddress
        self.length = length
        self.host = host
    }
}

public struct DescriptorChain: Sendable {
    public let head: UInt16
    /// Device-readable buffers, in order.
    public private(set) var readable: [GuestSegment] = []
    /// Device-writable buffers, in order.
    public private(set) var writable: [GuestSegment] = []
    public private(set) var readableLength = 0
    public private(set) var writableLength = 0

    init(head: UInt16) { self.head = head }

    fileprivate mutating func append(_ s: GuestSegment, writable w: Bool) throws(QueueError) {
        // Used.len is a le32 (§2.7.8), so neither direction may exceed UInt32.max in total.
        if w {
            writableLength += Int(s.length)
            guard writableLength <= Int(UInt32.max) else { throw .totalLengthOverflow }
            writable.append(s)
        } else {
            readableLength += Int(s.length)
            guard readableLength <= Int(UInt32.max) else { throw .totalLengthOverflow }
            readable.append(s)
        }
    }

    /// Copies readable bytes starting at byte `offset` of the readable side; returns bytes copied.
    public func gather(into buffer: UnsafeMutableRawBufferPointer, from offset: Int = 0) -> Int {
        Self.copy(segments: readable, offset: offset, count: buffer.count) { seg, segOffset, done, n in
            // SAFETY: segments were checked to lie in one guest region at pop; segOffset + n <= seg.length.
            buffer.baseAddress!.advanced(by: done).copyMemory(from: seg.host + segOffset, byteCount: n)
        }
    }

    /// Copies into the writable side starting at byte `offset`; marks the written guest bytes dirty.
    public func scatter(from buffer: UnsafeRawBufferPointer, at offset: Int = 0, memory: GuestMemory) -> Int {
        Self.copy(segments: writable, offset: offset, count: buffer.count) { seg, segOffset, done, n in
            // SAFETY: segments were checked to lie in one guest region at pop; segOffset + n <= seg.length.
            (seg.host + segOffset).copyMemory(from: buffer.baseAddress!.advanced(by: done), byteCount: n)
            memory.markDirty(gpa: seg.guestAddress + UInt64(segOffset), length: UInt64(n))
        }
    }

    private static func copy(segments: [GuestSegment], offset: Int, count: Int,
                             _ body: (GuestSegment, _ segOffset: Int, _ done: Int, _ n: Int) -> Void) -> Int {
        guard offset >= 0, count > 0 else { return 0 }
        var skip = offset, done = 0
        for seg in segments {
            let len = Int(seg.length)
            if skip >= len { skip -= len; continue }
            let n = min(len - skip, count - done)
            body(seg, skip, done, n)
            done += n
            skip = 0
            if done == count { break }
        }
        return done
    }
}

/// Owned by ONE thread at a time: created by the control thread, then handed to a worker that alone
/// calls its methods (design-intent "Threads"). @unchecked because that hand-off is the only sharing.
public final class SplitQueue: @unchecked Sendable {
    public static let maxSize: UInt16 = 32768

    public let size: UInt16
    public private(set) var addresses: VringAddresses
    public private(set) var memory: GuestMemory
    public private(set) var nextAvail: UInt16
    public private(set) var nextUsed: UInt16
    /// Whether the driver is asked to kick (false while the owning worker polls the ring).
    public private(set) var notificationsEnabled = true
    public let eventIndex: Bool, indirect: Bool

    // Host pointers of the three rings; valid because `memory` keeps their region mapped and the
    // rings were checked to lie entirely inside one region (validateRings).
    private var desc: UnsafeMutableRawPointer
    private var avail: UnsafeMutableRawPointer
    private var used: UnsafeMutableRawPointer
    /// used.idx at the last needsNotification(); nil until the first one (always notify then).
    private var signalledUsed: UInt16?

    /// Checks a SET_VRING_NUM value: a power of two in 1...32768 (virtio 1.2 §2.7).
    public static func validateSize(_ n: UInt32) throws(QueueError) -> UInt16 {
        guard n > 0, n <= UInt32(maxSize), n & (n - 1) == 0 else { throw .invalidSize(n) }
        return UInt16(n)
    }

    public init(size: UInt16, addresses: VringAddresses, memory: GuestMemory, nextAvail: UInt16,
                eventIndex: Bool, indirect: Bool) throws(QueueError) {
        self.size = try Self.validateSize(UInt32(size))
        (desc, avail, used) = try Self.validateRings(size: size, addresses: addresses, memory: memory)
        self.addresses = addresses
        self.memory = memory
        self.nextAvail = nextAvail
        self.eventIndex = eventIndex
        self.indirect = indirect
        // vhost-user: SET_VRING_BASE carries only the avail index; the used index is the guest's used.idx.
        // SAFETY: the used ring (6 + 8*size bytes, 4-aligned) was validated inside one region.
        nextUsed = UInt16(littleEndian: CLinuxShims_load_acquire_u16(used + 2))
    }

    private static func validateRings(size: UInt16, addresses a: VringAddresses, memory: GuestMemory) throws(QueueError)
        -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer, UnsafeMutableRawPointer)
    {
        func ring(_ name: String, _ gpa: UInt64, _ length: UInt64, _ align: UInt64) throws(QueueError) -> UnsafeMutableRawPointer {
            guard gpa % align == 0 else { throw .misalignedRing("\(name) 0x\(hex(gpa))") }
            guard let p = memory.hostPointer(gpa: gpa, length: length) else { throw .ringOutsideMemory("\(name) 0x\(hex(gpa)) + \(length)") }
            // Guest alignment implies host alignment only if the region base is aligned; mmap bases are
            // page-aligned but mmapOffset is the front-end's, so check: atomics need natural alignment.
            guard UInt(bitPattern: p) % UInt(align) == 0 else { throw .misalignedRing("\(name) host address") }
            return p
        }
        let L = SplitRingLayout.self
        return (try ring("descriptor table", a.descriptorTable, L.descriptorTableSize(size), L.descriptorAlignment),
                try ring("avail ring", a.availRing, L.availRingSize(size), L.availAlignment),
                try ring("used ring", a.usedRing, L.usedRingSize(size), L.usedAlignment))
    }

    /// Switches to a new memory table (hot add/remove, new log); the rings must still lie inside it.
    /// On error nothing changes.
    public func updateMemory(_ memory: GuestMemory) throws(QueueError) {
        (desc, avail, used) = try Self.validateRings(size: size, addresses: addresses, memory: memory)
        self.memory = memory
    }

    public func setUsedLogging(_ on: Bool, usedLogAddress: UInt64) {
        addresses.logUsed = on
        addresses.usedLogAddress = usedLogAddress
    }

    // MARK: ring field accessors. SAFETY (all): offsets are < the validated ring sizes because slot
    // indices are reduced modulo `size`, and fixed fields lie within 6 + k*size bytes.

    private var availIdxAcquire: UInt16 { UInt16(littleEndian: CLinuxShims_load_acquire_u16(avail + 2)) }
    private var availFlags: UInt16 { UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 0, as: UInt16.self)) }
    private func availRing(_ i: UInt16) -> UInt16 {
        UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 4 + 2 * Int(i % size), as: UInt16.self))
    }
    private var usedEvent: UInt16 { UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 4 + 2 * Int(size), as: UInt16.self)) }

    /// Logs a device write at used-ring offset `offset`: dirty log at its GPA, plus at usedLogAddress
    /// when VHOST_VRING_F_LOG is set (QEMU drains the latter for the used ring, vhost-user §1.7).
    private func logUsed(offset: Int, length: Int) {
        guard let log = memory.log else { return }
        log.mark(gpa: addresses.usedRing &+ UInt64(offset), length: UInt64(length))
        if addresses.logUsed && addresses.usedLogAddress != addresses.usedRing {
            log.mark(gpa: addresses.usedLogAddress &+ UInt64(offset), length: UInt64(length))
        }
    }

    private func writeUsed16(_ v: UInt16, offset: Int) {
        used.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self)
        logUsed(offset: offset, length: 2)
    }

    private var availEventOffset: Int { 4 + 8 * Int(size) }

    /// Available heads not yet popped (acquire load of avail.idx, §2.7.13.3.1 / vhost-user §3.4).
    public func pendingCount() throws(QueueError) -> Int {
        let availIdx = availIdxAcquire
        let n = availIdx &- nextAvail
        // The driver can have at most `size` heads outstanding; more means a corrupted index.
        guard n <= size else { throw .availIndexJump(avail: availIdx, next: nextAvail) }
        return Int(n)
    }

    /// Pops and fully validates one chain; nil when the ring is empty. A thrown error leaves the queue broken.
    public func popChain() throws(QueueError) -> DescriptorChain? {
        // The acquire load in pendingCount orders the ring/descriptor reads below after avail.idx.
        guard try pendingCount() > 0 else { return nil }
        let head = availRing(nextAvail)
        guard head < size else { throw .headOutOfRange(head) }

        var chain = DescriptorChain(head: head)
        var table = desc, tableCount = UInt32(size)
        var index = head
        var inIndirect = false
        var visitedInTable: UInt32 = 0  // loop detection by counting (libvhost-user "Looped descriptor")
        var total = 0  // descriptors in the whole chain, direct + indirect
        var sawWritable = false
        while true {
            visitedInTable += 1
            total += 1
            // A table has only tableCount distinct entries, so visiting more means a cycle.
            guard visitedInTable <= tableCount else { throw .descriptorLoop }
            // "A driver MUST NOT create a descriptor chain longer than the Queue Size" (§2.7.5.3.1).
            guard total <= Int(size) else { throw .chainTooLong(total) }
            // SAFETY: index < tableCount (checked for head above and for every next below), and the
            // table holds tableCount 16-byte entries inside one region (ring or indirect-table check).
            let d = table + 16 * Int(index)
            let addr = UInt64(littleEndian: d.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            let len = UInt32(littleEndian: d.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            let flags = UInt16(littleEndian: d.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
            let next = UInt16(littleEndian: d.loadUnaligned(fromByteOffset: 14, as: UInt16.self))

            if flags & VirtqDescriptorFlags.indirect != 0 {
                // §2.7.5.3.1: only with the feature, never nested, never together with NEXT.
                guard indirect else { throw .indirectNotNegotiated }
                guard !inIndirect else { throw .nestedIndirect }
                guard flags & VirtqDescriptorFlags.next == 0 else { throw .indirectWithNext }
                guard len > 0, len % 16 == 0 else { throw .badIndirectTableLength(len) }
                guard let p = memory.hostPointer(gpa: addr, length: UInt64(len)) else {
                    throw .bufferOutsideMemory(address: addr, length: len)
                }
                // The WRITE flag on the indirect descriptor itself is ignored (§2.7.5.3.2).
                table = p
                tableCount = len / 16
                inIndirect = true
                visitedInTable = 0
                total -= 1  // the indirect descriptor is not a buffer of the chain
                index = 0
                continue
            }

            guard len > 0 else { throw .zeroLengthDescriptor(index: index) }
            guard let host = memory.hostPointer(gpa: addr, length: UInt64(len)) else {
                throw .bufferOutsideMemory(address: addr, length: len)
            }
            let w = flags & VirtqDescriptorFlags.write != 0
            // §2.7.4.2: device-readable descriptors come before device-writable ones.
            if w { sawWritable = true } else if sawWritable { throw .readableAfterWritable }
            try chain.append(GuestSegment(guestAddress: addr, length: len, host: host), writable: w)

            guard flags & VirtqDescriptorFlags.next != 0 else { break }
            guard UInt32(next) < tableCount else { throw .descriptorIndexOutOfRange(next) }
            index = next
        }

        nextAvail &+= 1
        if eventIndex && notificationsEnabled {
            // §2.7.10: ask for a kick only once the driver publishes past what we consumed.
            // While notifications are off (the worker polls) avail_event is left behind, which is
            // what stops the driver from kicking.
            writeUsed16(nextAvail, offset: availEventOffset)
        }
        return chain
    }

    /// Writes used element {id: head, len}, then (release) used.idx = nextUsed + 1.
    public func pushUsed(head: UInt16, writtenLength: UInt32) {
        let offset = 4 + 8 * Int(nextUsed % size)
        // SAFETY: offset + 8 <= 4 + 8*size, inside the validated used ring.
        used.storeBytes(of: UInt32(head).littleEndian, toByteOffset: offset, as: UInt32.self)
        used.storeBytes(of: writtenLength.littleEndian, toByteOffset: offset + 4, as: UInt32.self)
        logUsed(offset: offset, length: 8)
        nextUsed &+= 1
        // §2.7.8.2 / vhost-user §3.4: the element must be visible before the index that publishes it.
        // SAFETY: used+2 is inside the validated, 4-aligned used ring.
        CLinuxShims_store_release_u16(used + 2, nextUsed.littleEndian)
        logUsed(offset: 2, length: 2)
    }

    /// Whether to signal the call fd for what was pushed since the last call.
    public func needsNotification() -> Bool {
        // Expose used entries before reading used_event / avail.flags, or a driver that just
        // re-enabled interrupts could miss one (vhost-user §3.4 "Notify").
        CLinuxShims_fence_seq_cst()
        if eventIndex {
            let new = nextUsed
            let old = signalledUsed
            signalledUsed = new
            guard let old else { return true }
            // vring_need_event (§2.7.10): did used.idx move past used_event in (old, new]?
            return new &- usedEvent &- 1 < new &- old
        }
        return availFlags & VirtqRingFlags.noInterrupt == 0
    }

    /// Ask the driver not to kick (while we poll). With EVENT_IDX nothing is written: pops stop
    /// moving avail_event, so it falls behind what the driver publishes, which suppresses kicks
    /// (§2.7.10).
    public func disableNotifications() {
        notificationsEnabled = false
        guard !eventIndex else { return }
        // SAFETY: used.flags is the used ring's first field.
        let flags = UInt16(littleEndian: used.loadUnaligned(as: UInt16.self))
        writeUsed16(flags | VirtqRingFlags.noNotify, offset: 0)
    }

    /// Ask for kicks again; returns true if work is pending, in which case the caller must drain again
    /// (a kick published before our write may have been suppressed — the lost-kick race).
    public func enableNotifications() -> Bool {
        notificationsEnabled = true
        if eventIndex {
            writeUsed16(nextAvail, offset: availEventOffset)
        } else {
            // SAFETY: used.flags is the used ring's first field.
            let flags = UInt16(littleEndian: used.loadUnaligned(as: UInt16.self))
            writeUsed16(flags & ~VirtqRingFlags.noNotify, offset: 0)
        }
        // Our write must be visible before we re-read avail.idx (vhost-user §3.4 "Re-enable").
        CLinuxShims_fence_seq_cst()
        // A corrupted index counts as pending so that the caller's next pop reports it.
        return (try? pendingCount()).map { $0 > 0 } ?? true
    }
}
