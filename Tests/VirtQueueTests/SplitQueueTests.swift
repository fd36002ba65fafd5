// SPDX-License-Identifier: Apache-2.0
import LinuxSystem
import Testing
import VRDMATestSupport
import VirtQueue

typealias Buffer = SplitRingDriver.Buffer
let F = (next: VirtqDescriptorFlags.next, write: VirtqDescriptorFlags.write, indirect: VirtqDescriptorFlags.indirect)

@Suite("Split queue data path")
struct SplitQueueTests {
    @Test("A chain round-trips: the device gathers the request and the driver sees the reply")
    func roundTrip() throws {
        let rig = try Rig()
        let d = Rig.dataBase
        rig.fill(d, Array("hello, ".utf8))
        rig.fill(d + 0x100, Array("device".utf8))
        let head = rig.driver.add([Buffer(address: d, length: 7, writable: false),
                                   Buffer(address: d + 0x100, length: 6, writable: false),
                                   Buffer(address: d + 0x200, length: 4, writable: true),
                                   Buffer(address: d + 0x300, length: 16, writable: true)])
        #expect(try rig.queue.pendingCount() == 1)
        let chain = try #require(try rig.queue.popChain())
        #expect(chain.head == head)
        #expect(chain.readable.map(\.length) == [7, 6])
        #expect(chain.writable.map(\.guestAddress) == [d + 0x200, d + 0x300])
        #expect(chain.readableLength == 13 && chain.writableLength == 20)
        var request = [UInt8](repeating: 0, count: 32)
        let n = request.withUnsafeMutableBytes { chain.gather(into: $0) }
        #expect(n == 13 && String(decoding: request.prefix(n), as: UTF8.self) == "hello, device")
        var tail = [UInt8](repeating: 0, count: 4)
        #expect(tail.withUnsafeMutableBytes { chain.gather(into: $0, from: 6) } == 4)
        #expect(String(decoding: tail, as: UTF8.self) == " dev")
        let reply = Array("0123456789".utf8)
        #expect(reply.withUnsafeBytes { chain.scatter(from: $0, memory: rig.memory) } == 10)
        #expect(rig.bytes(d + 0x200, 4) == Array("0123".utf8) && rig.bytes(d + 0x300, 6) == Array("456789".utf8))
        #expect(rig.bytes(d, 7) == Array("hello, ".utf8))  // readable buffers untouched
        rig.queue.pushUsed(head: chain.head, writtenLength: 10)
        #expect(rig.queue.nextAvail == 1 && rig.queue.nextUsed == 1)
        #expect(try rig.queue.popChain() == nil)
        let used = rig.driver.takeUsed()
        #expect(used.count == 1 && used[0].id == head && used[0].length == 10)
        // Descriptors are recycled: the ring can be filled again many times over.
        for i in 0..<20 {
            let h = rig.driver.add([Buffer(address: d, length: 1, writable: false)])
            let c = try #require(try rig.queue.popChain())
            #expect(c.head == h)
            rig.queue.pushUsed(head: h, writtenLength: UInt32(i))
            #expect(rig.driver.takeUsed().map(\.length) == [UInt32(i)])
        }
    }

    @Test("An indirect table is followed and its buffers keep their direction")
    func indirectChain() throws {
        let rig = try Rig()
        let d = Rig.dataBase
        let head = rig.driver.add([Buffer(address: d, length: 8, writable: false),
                                   Buffer(address: d + 0x40, length: 8, writable: false),
                                   Buffer(address: d + 0x80, length: 64, writable: true)],
                                  indirectTableAddress: Rig.indirectTable)
        let chain = try #require(try rig.queue.popChain())
        #expect(chain.head == head)
        #expect(chain.readable.map(\.guestAddress) == [d, d + 0x40])
        #expect(chain.writable.map(\.length) == [64])
    }

    @Test("A direct prefix followed by an indirect descriptor is one chain")
    func directThenIndirect() throws {
        let rig = try Rig()
        let t = Rig.indirectTable
        rig.driver.writeDescriptor(index: 2, address: Rig.dataBase, length: 4, flags: F.next, next: 5)
        // WRITE on the indirect descriptor itself is ignored (§2.7.5.3.2).
        rig.driver.writeDescriptor(index: 5, address: t, length: 16, flags: F.indirect | F.write, next: 0)
        rig.memory.store(Rig.dataBase + 0x100, at: t)
        rig.memory.store(UInt32(8), at: t + 8)
        rig.memory.store(F.write, at: t + 12)
        rig.driver.publish(head: 2)
        let chain = try #require(try rig.queue.popChain())
        #expect(chain.readable.map(\.guestAddress) == [Rig.dataBase])
        #expect(chain.writable.map(\.guestAddress) == [Rig.dataBase + 0x100])
    }

    @Test("The used index resumes from guest memory, not from zero")
    func usedIndexFromGuest() throws {
        let memory = try GuestMemory(regions: [makeRegion(gpa: Rig.ramBase, size: Rig.ramSize)])
        let driver = SplitRingDriver(memory: memory, baseAddress: Rig.ramBase, size: 8, eventIndex: false)
        memory.store(UInt16(41), at: driver.addresses.usedRing + 2)
        let q = try SplitQueue(size: 8, addresses: driver.addresses, memory: memory, nextAvail: 40, eventIndex: false, indirect: false)
        #expect(q.nextUsed == 41 && q.nextAvail == 40)
        q.pushUsed(head: 3, writtenLength: 0)
        #expect(driver.usedIndex == 42)
        #expect(memory.load(UInt32.self, at: driver.addresses.usedRing + 4 + 8 * 1) == 3)  // slot 41 % 8
    }

    @Test("Memory updates keep the queue working unless the rings lose their region")
    func updateMemory() throws {
        let rig = try Rig()
        let extra = try makeRegion(gpa: 0x40_0000, size: 0x1000)
        let bigger = try rig.memory.adding(extra)
        try rig.queue.updateMemory(bigger)
        #expect(rig.queue.memory === bigger)
        let ringRegion = rig.memory.regions[0].region
        let without = try #require(bigger.removing(ringRegion))
        #expect(throws: QueueError.self) { try rig.queue.updateMemory(without) }
        #expect(rig.queue.memory === bigger)
        rig.driver.add([Buffer(address: 0x40_0000, length: 16, writable: true)])
        #expect(try rig.queue.popChain()?.writable.count == 1)
    }
}

@Suite("Split queue notifications")
struct NotificationTests {
    @Test("With EVENT_IDX the driver kicks only when it publishes the entry at avail_event")
    func eventIndexKicks() throws {
        let rig = try Rig(eventIndex: true)
        #expect(!rig.queue.enableNotifications())
        rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: false)])
        #expect(rig.driver.needsKick())  // avail_event 0 is in [0, 1)
        rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: false)])
        #expect(!rig.driver.needsKick())  // device has not caught up: it will find this one itself
        let availEvent = rig.driver.addresses.usedRing + 4 + 8 * 8
        rig.queue.disableNotifications()
        #expect(rig.memory.load(UInt16.self, at: rig.driver.addresses.usedRing) == 0)  // no NO_NOTIFY with EVENT_IDX
        _ = try rig.queue.popChain()
        _ = try rig.queue.popChain()
        // While the device polls, pops leave avail_event behind: new work draws no kick.
        #expect(rig.memory.load(UInt16.self, at: availEvent) == 0)
        rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: false)])
        #expect(!rig.driver.needsKick())
        // Re-enabling catches avail_event up and reports the entry that came in meanwhile.
        #expect(rig.queue.enableNotifications())
        #expect(rig.memory.load(UInt16.self, at: availEvent) == 2)
        _ = try rig.queue.popChain()
        #expect(rig.memory.load(UInt16.self, at: availEvent) == 3)
        rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: false)])
        #expect(rig.driver.needsKick())
        #expect(!rig.driver.needsKick())  // nothing new since the last check
    }

    @Test("Re-enabling notifications reports work that raced with the enable")
    func enableRecheck() throws {
        for eventIndex in [false, true] {
            let rig = try Rig(eventIndex: eventIndex)
            rig.queue.disableNotifications()
            rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: false)])
            #expect(rig.queue.enableNotifications())
            _ = try rig.queue.popChain()
            #expect(!rig.queue.enableNotifications())
        }
    }

    @Test("Without EVENT_IDX, NO_NOTIFY in used.flags suppresses kicks until notifications are re-enabled")
    func noNotify() throws {
        let rig = try Rig()
        rig.queue.disableNotifications()
        rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: false)])
        #expect(!rig.driver.needsKick())
        _ = rig.queue.enableNotifications()
        rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: false)])
        #expect(rig.driver.needsKick())
    }

    @Test("With EVENT_IDX the device interrupts only when used.idx passes used_event")
    func eventIndexInterrupts() throws {
        let rig = try Rig(eventIndex: true)
        for _ in 0..<4 { rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: true)]) }
        var heads: [UInt16] = []
        while let c = try rig.queue.popChain() { heads.append(c.head) }
        rig.queue.pushUsed(head: heads[0], writtenLength: 1)
        #expect(rig.queue.needsNotification())  // first signal is unconditional
        rig.driver.setUsedEvent(2)  // interrupt once entry 2 is used, i.e. used.idx goes past 2
        rig.queue.pushUsed(head: heads[1], writtenLength: 1)
        #expect(!rig.queue.needsNotification())  // used.idx 2: event not passed
        rig.queue.pushUsed(head: heads[2], writtenLength: 1)
        #expect(rig.queue.needsNotification())  // used.idx 3 passed 2
        rig.queue.pushUsed(head: heads[3], writtenLength: 1)
        #expect(!rig.queue.needsNotification())  // already signalled past the event
        #expect(rig.driver.takeUsed().count == 4)
    }

    @Test("Without EVENT_IDX, NO_INTERRUPT in avail.flags suppresses interrupts")
    func noInterrupt() throws {
        let rig = try Rig()
        rig.driver.add([Buffer(address: Rig.dataBase, length: 1, writable: true)])
        let c = try #require(try rig.queue.popChain())
        rig.queue.pushUsed(head: c.head, writtenLength: 1)
        rig.driver.setNoInterrupt(true)
        #expect(!rig.queue.needsNotification())
        rig.driver.setNoInterrupt(false)
        #expect(rig.queue.needsNotification())
    }

    @Test("Used-ring writes are logged at the used log address only when VHOST_VRING_F_LOG is set")
    func usedLogging() throws {
        let alias: UInt64 = 0x80_0000  // a log address distinct from the used ring's own page
        for on in [false, true] {
            let log = try makeLog(bytes: 0x200)  // 4096 pages: 16 MiB, past the alias
            let rig = try Rig(eventIndex: true, log: log)
            rig.queue.setUsedLogging(on, usedLogAddress: alias)
            rig.driver.add([Buffer(address: Rig.dataBase + 0x2000, length: 8, writable: true)])
            log.mapping.base.initializeMemory(as: UInt8.self, repeating: 0, count: log.size)  // forget the driver's writes
            let c = try #require(try rig.queue.popChain())
            let payload = [UInt8](repeating: 1, count: 8)
            _ = payload.withUnsafeBytes { c.scatter(from: $0, memory: rig.memory) }
            rig.queue.pushUsed(head: c.head, writtenLength: 8)
            let usedPage = rig.driver.addresses.usedRing / 4096
            #expect(log.isDirty(page: usedPage))
            #expect(log.isDirty(page: (Rig.dataBase + 0x2000) / 4096))  // payload
            #expect(log.isDirty(page: alias / 4096) == on)
            #expect(log.isDirty(page: (alias + 4 + 8 * 8) / 4096) == on)  // avail_event, same page here
            #expect(!log.isDirty(page: alias / 4096 + 1))
        }
    }
}
