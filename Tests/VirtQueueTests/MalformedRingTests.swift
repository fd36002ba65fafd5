// SPDX-License-Identifier: Apache-2.0
// Each hostile ring must be refused with the error that names what the guest did wrong.
import LinuxSystem
import Testing
import VRDMATestSupport
import VirtQueue

/// Publishes head 0 after `setup` wrote raw descriptors, and expects popChain to throw `error`.
private func expectPop(_ error: QueueError, indirect: Bool = true, extraRegions: [MappedGuestRegion] = [],
                       sourceLocation: SourceLocation = #_sourceLocation, _ setup: (Rig) -> Void) throws {
    let rig = try Rig(indirect: indirect, extraRegions: extraRegions)
    setup(rig)
    rig.driver.publish(head: 0)
    #expect(throws: error, sourceLocation: sourceLocation) { try rig.queue.popChain() }
    #expect(rig.queue.nextAvail == 0, sourceLocation: sourceLocation)
}

private let d = Rig.dataBase
private let t = Rig.indirectTable

private func writeIndirectEntry(_ rig: Rig, _ i: UInt64, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
    rig.memory.store(address, at: t + 16 * i)
    rig.memory.store(length, at: t + 16 * i + 8)
    rig.memory.store(flags, at: t + 16 * i + 12)
    rig.memory.store(next, at: t + 16 * i + 14)
}

@Suite("Malformed rings")
struct MalformedRingTests {
    @Test("A head index beyond the queue size is rejected")
    func headOutOfRange() throws {
        let rig = try Rig()
        rig.driver.publish(head: 8)
        #expect(throws: QueueError.headOutOfRange(8)) { try rig.queue.popChain() }
    }

    @Test("A next index beyond the queue size is rejected")
    func nextOutOfRange() throws {
        try expectPop(.descriptorIndexOutOfRange(8)) { $0.driver.writeDescriptor(index: 0, address: d, length: 4, flags: F.next, next: 8) }
    }

    @Test("A descriptor loop is detected")
    func loop() throws {
        try expectPop(.descriptorLoop) { rig in
            rig.driver.writeDescriptor(index: 0, address: d, length: 4, flags: F.next, next: 1)
            rig.driver.writeDescriptor(index: 1, address: d, length: 4, flags: F.next, next: 0)
        }
    }

    @Test("A loop inside an indirect table is detected")
    func indirectLoop() throws {
        try expectPop(.descriptorLoop) { rig in
            rig.driver.writeDescriptor(index: 0, address: t, length: 32, flags: F.indirect, next: 0)
            writeIndirectEntry(rig, 0, address: d, length: 4, flags: F.next, next: 1)
            writeIndirectEntry(rig, 1, address: d, length: 4, flags: F.next, next: 0)
        }
    }

    @Test("A chain longer than the ring is rejected even without a loop")
    func tooLong() throws {
        try expectPop(.chainTooLong(9)) { rig in
            rig.driver.writeDescriptor(index: 0, address: d, length: 4, flags: F.next, next: 1)
            rig.driver.writeDescriptor(index: 1, address: t, length: 16 * 8, flags: F.indirect, next: 0)
            for i in 0..<8 { writeIndirectEntry(rig, UInt64(i), address: d, length: 4, flags: i < 7 ? F.next : 0, next: UInt16(i + 1)) }
        }
    }

    @Test("A zero-length descriptor is rejected with its index")
    func zeroLength() throws {
        try expectPop(.zeroLengthDescriptor(index: 3)) { rig in
            rig.driver.writeDescriptor(index: 0, address: d, length: 4, flags: F.next, next: 3)
            rig.driver.writeDescriptor(index: 3, address: d, length: 0, flags: 0, next: 0)
        }
    }

    @Test("A buffer outside guest memory is rejected")
    func outside() throws {
        try expectPop(.bufferOutsideMemory(address: 0x90_0000, length: 4)) { $0.driver.writeDescriptor(index: 0, address: 0x90_0000, length: 4, flags: 0, next: 0) }
        try expectPop(.bufferOutsideMemory(address: 0x1F_FFFE, length: 4)) { $0.driver.writeDescriptor(index: 0, address: 0x1F_FFFE, length: 4, flags: 0, next: 0) }
    }

    @Test("A buffer whose address plus length overflows is rejected")
    func overflow() throws {
        try expectPop(.bufferOutsideMemory(address: UInt64.max - 3, length: 16)) {
            $0.driver.writeDescriptor(index: 0, address: UInt64.max - 3, length: 16, flags: 0, next: 0)
        }
    }

    @Test("A buffer spanning two adjacent regions is rejected")
    func spansRegions() throws {
        let next = try makeRegion(gpa: Rig.ramBase + Rig.ramSize, size: 0x1000)
        try expectPop(.bufferOutsideMemory(address: 0x1F_FFF8, length: 16), extraRegions: [next]) {
            $0.driver.writeDescriptor(index: 0, address: 0x1F_FFF8, length: 16, flags: 0, next: 0)
        }
    }

    @Test("A device-readable buffer after a device-writable one is rejected")
    func readableAfterWritable() throws {
        try expectPop(.readableAfterWritable) { rig in
            rig.driver.writeDescriptor(index: 0, address: d, length: 4, flags: F.write | F.next, next: 1)
            rig.driver.writeDescriptor(index: 1, address: d, length: 4, flags: 0, next: 0)
        }
    }

    @Test("An indirect descriptor inside an indirect table is rejected")
    func nested() throws {
        try expectPop(.nestedIndirect) { rig in
            rig.driver.writeDescriptor(index: 0, address: t, length: 16, flags: F.indirect, next: 0)
            writeIndirectEntry(rig, 0, address: t, length: 16, flags: F.indirect, next: 0)
        }
    }

    @Test("NEXT together with INDIRECT is rejected")
    func indirectWithNext() throws {
        try expectPop(.indirectWithNext) { rig in
            rig.driver.writeDescriptor(index: 0, address: t, length: 16, flags: F.indirect | F.next, next: 1)
            writeIndirectEntry(rig, 0, address: d, length: 4, flags: 0, next: 0)
        }
    }

    @Test("An indirect descriptor without the negotiated feature is rejected")
    func notNegotiated() throws {
        try expectPop(.indirectNotNegotiated, indirect: false) { rig in
            rig.driver.writeDescriptor(index: 0, address: t, length: 16, flags: F.indirect, next: 0)
            writeIndirectEntry(rig, 0, address: d, length: 4, flags: 0, next: 0)
        }
    }

    @Test("An indirect table whose length is not a positive multiple of 16 is rejected")
    func badTableLength() throws {
        for len: UInt32 in [24, 0, 15] {
            try expectPop(.badIndirectTableLength(len)) { $0.driver.writeDescriptor(index: 0, address: t, length: len, flags: F.indirect, next: 0) }
        }
        try expectPop(.bufferOutsideMemory(address: 0x1F_FFF0, length: 32)) {
            $0.driver.writeDescriptor(index: 0, address: 0x1F_FFF0, length: 32, flags: F.indirect, next: 0)
        }
    }

    @Test("An indirect next index beyond the table is rejected")
    func indirectNextOutOfRange() throws {
        try expectPop(.descriptorIndexOutOfRange(2)) { rig in
            rig.driver.writeDescriptor(index: 0, address: t, length: 32, flags: F.indirect, next: 0)
            writeIndirectEntry(rig, 0, address: d, length: 4, flags: F.next, next: 2)
        }
    }

    @Test("An avail index more than the queue size ahead is rejected")
    func availJump() throws {
        let rig = try Rig()
        rig.driver.setAvailIndex(9)
        #expect(throws: QueueError.availIndexJump(avail: 9, next: 0)) { try rig.queue.pendingCount() }
        #expect(throws: QueueError.availIndexJump(avail: 9, next: 0)) { try rig.queue.popChain() }
        rig.driver.setAvailIndex(8)
        #expect(try rig.queue.pendingCount() == 8)
    }

    @Test("Total chain lengths beyond 4 GiB are rejected")
    func totalLength() throws {
        // Sparse memfd: 3 GiB of address space, nothing touched beyond the rings.
        let big = try makeRegion(gpa: 0x1_0000_0000, size: 0xC000_0000)
        try expectPop(.totalLengthOverflow, extraRegions: [big]) { rig in
            rig.driver.writeDescriptor(index: 0, address: 0x1_0000_0000, length: 0xC000_0000, flags: F.next, next: 1)
            rig.driver.writeDescriptor(index: 1, address: 0x1_0000_0000, length: 0xC000_0000, flags: 0, next: 0)
        }
        try expectPop(.totalLengthOverflow, extraRegions: [big]) { rig in
            rig.driver.writeDescriptor(index: 0, address: 0x1_0000_0000, length: 0xC000_0000, flags: F.write | F.next, next: 1)
            rig.driver.writeDescriptor(index: 1, address: 0x1_0000_0000, length: 0xC000_0000, flags: F.write, next: 0)
        }
    }
}

@Suite("Ring setup validation")
struct RingSetupTests {
    private func addresses(_ desc: UInt64, _ avail: UInt64, _ used: UInt64) -> VringAddresses {
        VringAddresses(descriptorTable: desc, availRing: avail, usedRing: used, logUsed: false, usedLogAddress: used)
    }

    private func make(_ a: VringAddresses, size: UInt16 = 8) throws -> SplitQueue {
        let memory = try GuestMemory(regions: [makeRegion(gpa: 0x10000, size: 0x10000)])
        return try SplitQueue(size: size, addresses: a, memory: memory, nextAvail: 0, eventIndex: false, indirect: false)
    }

    @Test("Queue sizes must be powers of two from 1 to 32768")
    func sizes() throws {
        for bad: UInt32 in [0, 3, 65536, 24, 65535] {
            #expect(throws: QueueError.invalidSize(bad)) { try SplitQueue.validateSize(bad) }
        }
        for bad: UInt16 in [0, 3] {
            #expect(throws: QueueError.invalidSize(UInt32(bad))) { try make(addresses(0x10000, 0x11000, 0x12000), size: bad) }
        }
        #expect(try SplitQueue.validateSize(32768) == 32768)
        #expect(try SplitQueue.validateSize(1) == 1)
        #expect(try make(addresses(0x10000, 0x11000, 0x12000), size: 1).size == 1)
    }

    @Test("Rings outside guest memory or crossing its end are rejected")
    func outside() throws {
        for a in [addresses(0x30000, 0x11000, 0x12000), addresses(0x10000, 0x1FFFC, 0x12000), addresses(0x10000, 0x11000, 0x1FFF0),
                  addresses(0x10000, 0x11000, UInt64.max - 3)] {
            #expect { try make(a) } throws: { error in
                guard case QueueError.ringOutsideMemory = error else { return false }
                return true
            }
        }
        // A 64 KiB region cannot hold 32768 descriptors (512 KiB).
        #expect { try make(addresses(0x10000, 0x11000, 0x12000), size: 32768) } throws: { error in
            guard case QueueError.ringOutsideMemory = error else { return false }
            return true
        }
    }

    @Test("Misaligned rings are rejected")
    func misaligned() throws {
        #expect(throws: QueueError.misalignedRing("descriptor table 0x10008")) { try make(addresses(0x10008, 0x11000, 0x12000)) }
        #expect(throws: QueueError.misalignedRing("avail ring 0x11001")) { try make(addresses(0x10000, 0x11001, 0x12000)) }
        #expect(throws: QueueError.misalignedRing("used ring 0x12002")) { try make(addresses(0x10000, 0x11000, 0x12002)) }
        #expect(try make(addresses(0x10010, 0x11002, 0x12004)).size == 8)
    }
}
