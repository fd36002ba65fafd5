// SPDX-License-Identifier: Apache-2.0
// A hostile guest writes garbage into its own rings. The daemon must stop that queue (signal the
// error descriptor, complete nothing), stay up, keep its other devices and sessions working, and
// recover the queue when the guest resets the device.
import CVRDMAABI
import Testing
import VRDMATestSupport
import VhostUser
import VirtQueue

@Suite("Malformed rings from a hostile guest", .serialized)
struct MalformedRingTests {
    typealias Flags = VirtqDescriptorFlags

    /// Brings a device up, lets `poison` write descriptors into the control ring (returning the
    /// head to publish), kicks, and checks the queue broke, then that a guest reset repairs it.
    func expectQueueBroken(_ logLine: String, poison: (TestQueue, TestFrontend) -> UInt16) throws {
        try afterward(expectLog: logLine) { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            _ = try driver.queryDevice()
            let control = driver.frontend.queues[0]!
            let head = poison(control, driver.frontend)
            control.ring.publish(head: head)
            control.kick.signal()
            #expect(control.waitForError(), "the error descriptor was not signalled")
            #expect(control.ring.takeUsed().isEmpty, "a malformed chain was completed")
            // The guest resets the device; the same connection works again.
            try driver.frontend.guestReset(queues: Array(0..<driver.queueCount))
            let fresh = try ModelDriver(frontend: driver.frontend)
            try driver.frontend.start(features: VirtioFeature.version1 | VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors,
                                      queues: Array(0..<fresh.queueCount))
            _ = try fresh.queryDevice()
        }
    }

    @Test("a descriptor loop breaks the queue instead of hanging the worker")
    func descriptorLoop() throws {
        try expectQueueBroken("descriptor loop") { q, fe in
            let buf = fe.allocate(4096)
            q.ring.writeDescriptor(index: 0, address: buf, length: 16, flags: Flags.next, next: 1)
            q.ring.writeDescriptor(index: 1, address: buf + 16, length: 16, flags: Flags.next, next: 0)
            return 0
        }
    }

    @Test("an indirect table longer than the ring breaks the queue")
    func chainLongerThanRing() throws {
        try expectQueueBroken("broken by the guest") { q, fe in
            // 64 entries chained in a table for a ring of 64 is fine; make the table claim 4096.
            let table = fe.allocate(16 * 4096, alignment: 16)
            let buf = fe.allocate(4096)
            for i in 0..<4096 {
                let d = table + UInt64(16 * i)
                _ = fe.memory.store(buf, at: d)
                _ = fe.memory.store(UInt32(8), at: d + 8)
                _ = fe.memory.store(i == 4095 ? UInt16(Flags.write) : Flags.next, at: d + 12)
                _ = fe.memory.store(UInt16(truncatingIfNeeded: i + 1), at: d + 14)
            }
            q.ring.writeDescriptor(index: 0, address: table, length: 16 * 4096, flags: Flags.indirect, next: 0)
            return 0
        }
    }

    @Test("a zero-length descriptor breaks the queue")
    func zeroLength() throws {
        try expectQueueBroken("zero") { q, fe in
            q.ring.writeDescriptor(index: 0, address: fe.allocate(4096), length: 0, flags: 0, next: 0)
            return 0
        }
    }

    @Test("a descriptor whose address plus length overflows breaks the queue")
    func overflowingDescriptor() throws {
        try expectQueueBroken("broken by the guest") { q, _ in
            q.ring.writeDescriptor(index: 0, address: UInt64.max - 7, length: 64, flags: 0, next: 0)
            return 0
        }
    }

    @Test("a descriptor pointing outside guest memory breaks the queue")
    func outsideMemory() throws {
        try expectQueueBroken("broken by the guest") { q, _ in
            q.ring.writeDescriptor(index: 0, address: 0x8000_0000, length: 64, flags: Flags.write, next: 0)
            return 0
        }
    }

    @Test("a head index past the ring breaks the queue")
    func headOutOfRange() throws {
        try expectQueueBroken("broken by the guest") { _, _ in 1000 }
    }

    @Test("an avail index that jumps more than the ring size breaks the queue")
    func availIndexJump() throws {
        try expectQueueBroken("broken by the guest") { q, _ in
            q.ring.setAvailIndex(q.ring.availIndex &+ 500)
            return 0
        }
    }
}
