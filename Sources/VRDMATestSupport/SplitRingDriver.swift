// SPDX-License-Identifier: Apache-2.0
// The driver (guest) side of a virtio split ring, for tests and the in-process front-end. It writes
// guest RAM only through GuestMemory, as a guest CPU would, and plays by virtio 1.2 §2.7.13 (publish
// order, kick suppression); the raw writers let hostile tests break every rule on purpose.
import VirtQueue

/// Used by one thread at a time (the test or the front-end's guest thread).
public final class SplitRingDriver: @unchecked Sendable {
    public let size: UInt16
    /// Guest-physical addresses of the rings it laid out (logUsed false).
    public let addresses: VringAddresses
    private let memory: GuestMemory
    private let eventIndex: Bool

    private var freeDescriptors: [UInt16]
    private var chains: [UInt16: [UInt16]] = [:]  // head → ring descriptors it holds
    private var lastUsedSeen: UInt16 = 0
    private var availAtLastKickCheck: UInt16 = 0

    public struct Buffer {
        public var address: UInt64
        public var length: UInt32
        public var writable: Bool
        public init(address: UInt64, length: UInt32, writable: Bool) {
            self.address = address
            self.length = length
            self.writable = writable
        }
    }

    private static func roundUp(_ v: UInt64, _ a: UInt64) -> UInt64 { (v + a - 1) / a * a }
    private static func layout(base: UInt64, size: UInt16) -> (desc: UInt64, avail: UInt64, used: UInt64, end: UInt64) {
        let avail = base + SplitRingLayout.descriptorTableSize(size)
        let used = roundUp(avail + SplitRingLayout.availRingSize(size), 4)
        return (base, avail, used, used + SplitRingLayout.usedRingSize(size))
    }

    /// Bytes needed from baseAddress (page-rounded).
    public static func footprint(size: UInt16) -> UInt64 {
        roundUp(layout(base: 0, size: size).end, 4096)
    }

    /// Lays out the three rings from `baseAddress` (4096-aligned) and zeroes them.
    public init(memory: GuestMemory, baseAddress: UInt64, size: UInt16, eventIndex: Bool) {
        precondition(baseAddress % 4096 == 0 && size > 0 && size & (size - 1) == 0)
        let l = Self.layout(base: baseAddress, size: size)
        self.memory = memory
        self.size = size
        self.eventIndex = eventIndex
        addresses = VringAddresses(descriptorTable: l.desc, availRing: l.avail, usedRing: l.used, logUsed: false, usedLogAddress: l.used)
        freeDescriptors = (0..<size).reversed()
        let zeros = [UInt8](repeating: 0, count: Int(l.end - l.desc))
        let ok = zeros.withUnsafeBytes { memory.write(at: l.desc, from: $0) }
        precondition(ok, "ring area outside guest memory")
    }

    private func descriptorGPA(_ i: UInt16) -> UInt64 { addresses.descriptorTable + 16 * UInt64(i % size) }

    /// Writes any descriptor (no checks), for hostile tests.
    public func writeDescriptor(index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        Self.writeDescriptor(memory, at: descriptorGPA(index), address: address, length: length, flags: flags, next: next)
    }

    private static func writeDescriptor(_ m: GuestMemory, at gpa: UInt64, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        m.store(address, at: gpa)
        m.store(length, at: gpa + 8)
        m.store(flags, at: gpa + 12)
        m.store(next, at: gpa + 14)
    }

    /// Writes descriptors for `buffers` (a direct chain, or one indirect table at indirectTableAddress)
    /// and publishes the head in the avail ring. Does not kick.
    @discardableResult
    public func add(_ buffers: [Buffer], indirectTableAddress: UInt64? = nil) -> UInt16 {
        precondition(!buffers.isEmpty)
        if let table = indirectTableAddress {
            for (i, b) in buffers.enumerated() {
                let last = i == buffers.count - 1
                Self.writeDescriptor(memory, at: table + 16 * UInt64(i), address: b.address, length: b.length,
                                     flags: (b.writable ? VirtqDescriptorFlags.write : 0) | (last ? 0 : VirtqDescriptorFlags.next),
                                     next: last ? 0 : UInt16(i + 1))
            }
            let head = allocate(1)[0]
            writeDescriptor(index: head, address: table, length: UInt32(16 * buffers.count), flags: VirtqDescriptorFlags.indirect, next: 0)
            chains[head] = [head]
            publish(head: head)
            return head
        }
        let ids = allocate(buffers.count)
        for (i, b) in buffers.enumerated() {
            let last = i == buffers.count - 1
            writeDescriptor(index: ids[i], address: b.address, length: b.length,
                            flags: (b.writable ? VirtqDescriptorFlags.write : 0) | (last ? 0 : VirtqDescriptorFlags.next),
                            next: last ? 0 : ids[i + 1])
        }
        chains[ids[0]] = ids
        publish(head: ids[0])
        return ids[0]
    }

    private func allocate(_ n: Int) -> [UInt16] {
        precondition(freeDescriptors.count >= n, "ring full: \(n) descriptors wanted, \(freeDescriptors.count) free")
        return (0..<n).map { _ in freeDescriptors.removeLast() }
    }

    /// avail.ring[idx % size] = head; then (release) avail.idx += 1 (§2.7.13.2 before §2.7.13.3).
    public func publish(head: UInt16) {
        let idx = availIndex
        memory.store(head, at: addresses.availRing + 4 + 2 * UInt64(idx % size))
        memory.storeRelease(idx &+ 1, at: addresses.availRing + 2)
    }

    public func setAvailIndex(_ idx: UInt16) {
        memory.storeRelease(idx, at: addresses.availRing + 2)
    }

    /// The driver's own avail.idx as it sits in guest memory.
    public var availIndex: UInt16 { memory.load(UInt16.self, at: addresses.availRing + 2) ?? 0 }

    /// True if the device wants a kick for what was published since the last call (§2.7.13.4).
    public func needsKick() -> Bool {
        // The avail.idx store must be visible before we read avail_event / used.flags.
        GuestMemory.fullFence()
        let new = availIndex, old = availAtLastKickCheck
        availAtLastKickCheck = new
        if eventIndex {
            let event = memory.load(UInt16.self, at: addresses.usedRing + 4 + 8 * UInt64(size)) ?? 0
            return new &- event &- 1 < new &- old  // vring_need_event
        }
        let flags = memory.load(UInt16.self, at: addresses.usedRing) ?? 0
        return new != old && flags & VirtqRingFlags.noNotify == 0
    }

    /// Used elements not yet seen, in order; their descriptors return to the free list.
    public func takeUsed() -> [(id: UInt16, length: UInt32)] {
        let end = usedIndex
        var out: [(id: UInt16, length: UInt32)] = []
        while lastUsedSeen != end {
            let e = addresses.usedRing + 4 + 8 * UInt64(lastUsedSeen % size)
            let id = memory.load(UInt32.self, at: e) ?? 0
            let len = memory.load(UInt32.self, at: e + 4) ?? 0
            out.append((UInt16(truncatingIfNeeded: id), len))
            if let ids = chains.removeValue(forKey: UInt16(truncatingIfNeeded: id)) { freeDescriptors += ids }
            lastUsedSeen &+= 1
        }
        return out
    }

    /// EVENT_IDX: ask for an interrupt once used.idx passes `idx` (avail->used_event).
    public func setUsedEvent(_ idx: UInt16) {
        memory.store(idx, at: addresses.availRing + 4 + 2 * UInt64(size))
    }

    public func setNoInterrupt(_ on: Bool) {
        memory.store(on ? VirtqRingFlags.noInterrupt : 0, at: addresses.availRing)
    }

    /// used.idx, acquire-loaded so that the elements it publishes can be read after it.
    public var usedIndex: UInt16 { memory.loadAcquire(UInt16.self, at: addresses.usedRing + 2) ?? 0 }
}
