// SPDX-License-Identifier: Apache-2.0
// What the daemon does for a correct front-end: negotiation, rings with direct and indirect
// chains, notification suppression both ways, dirty logging, memory hot-plug, reconnects and
// several devices in one daemon.
import CVRDMAABI
import Glibc
import LinuxSystem
import Testing
import VRDMATestSupport
import VhostUser
import VirtQueue

@Suite("vhost-user protocol against the daemon", .serialized)
struct ProtocolTests {
    @Test("feature negotiation offers what is implemented and nothing more")
    func negotiation() throws {
        try afterward { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            let features = try fe.getFeatures()
            for bit in [VirtioFeature.version1, VirtioFeature.eventIndex, VirtioFeature.indirectDescriptors,
                        VirtioFeature.protocolFeatures, VirtioFeature.logAll] {
                #expect(features & bit != 0)
            }
            #expect(features & VirtioFeature.ringPacked == 0)
            let offered = try fe.getProtocolFeatures()
            let required: ProtocolFeatures = [.multipleQueues, .logSharedMemory, .replyAck, .config, .resetDevice,
                                              .configureMemorySlots, .status]
            #expect(offered.isSuperset(of: required))
            #expect(!offered.contains(.inbandNotifications))
            try fe.setProtocolFeatures(offered)
            #expect(try fe.getQueueNum() == 64)
            #expect(try fe.getMaxMemSlots() == 32)
            // A feature the device never offered is refused.
            #expect(throws: FrontendError.failed(.setFeatures)) { try fe.setFeatures(VirtioFeature.ringPacked, needReply: true) }
            try fe.request(.setStatus, payload: encodeU64(0x0b))
            #expect(try fe.getStatus() == 0x0b)
        }
    }

    @Test("commands travel in direct and indirect descriptor chains")
    func directAndIndirect() throws {
        try afterward { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            let direct = try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: 136)
            let indirect = try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: 136, indirect: true)
            #expect(direct.status == 0 && indirect.status == 0)
            #expect(direct.body == indirect.body)
            #expect(direct.usedLength == 8 + 136)
        }
    }

    @Test("the control queue answers bad commands with a status, not a broken queue")
    func commandStatuses() throws {
        try afterward { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            #expect(try driver.command(999, responseSize: 0).status == VIRTIO_RDMA_S_UNSUPPORTED.rawValue)
            // A resource command with no body and no room for its answer.
            #expect(try driver.command(UInt32(VIRTIO_RDMA_CMD_CREATE_QP.rawValue), responseSize: 0).status == VIRTIO_RDMA_S_INVALID.rawValue)
            #expect(try driver.command(UInt32(VIRTIO_RDMA_CMD_CREATE_QP.rawValue), responseSize: 8).status == VIRTIO_RDMA_S_INVALID.rawValue)
            #expect(try driver.queryPort(2).0 == VIRTIO_RDMA_S_INVALID.rawValue)
            // QUERY_PORT without its request body, and a response buffer too small for the answer.
            #expect(try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_PORT.rawValue), responseSize: 32).status == VIRTIO_RDMA_S_INVALID.rawValue)
            #expect(try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: 16).status == VIRTIO_RDMA_S_INVALID.rawValue)
            // No room even for a status: completed with nothing written.
            #expect(try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: -4).usedLength == 0)
            _ = try driver.queryDevice()
        }
    }

    @Test("EVENT_IDX: no interrupt until used_event is passed")
    func interruptSuppression() throws {
        try afterward { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            let control = driver.frontend.queues[0]!
            _ = try driver.queryDevice()
            // used_event stays at the entry already consumed: completions arrive silently.
            control.ring.setUsedEvent(control.ring.usedIndex &- 1)
            for _ in 0..<3 { _ = try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: 136, interrupt: false) }
            #expect(!control.waitForCall(milliseconds: 200), "interrupted although used_event was not passed")
            // Re-armed, the next completion interrupts.
            _ = try driver.queryDevice()
        }
    }

    @Test("without EVENT_IDX the NO_INTERRUPT flag suppresses interrupts")
    func noInterruptFlag() throws {
        try afterward { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]), eventIndex: false)
            try driver.bringUp()
            let control = driver.frontend.queues[0]!
            _ = try driver.queryDevice()
            // The signals sent so far (call descriptor installed, that completion) are consumed
            // here: the command may have found its used entry without reading the eventfd.
            _ = control.waitForCall(milliseconds: 50)
            control.ring.setNoInterrupt(true)
            _ = try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: 136, interrupt: false)
            #expect(!control.waitForCall(milliseconds: 200))
            control.ring.setNoInterrupt(false)
            _ = try driver.queryDevice()
        }
    }

    @Test("a polling worker suppresses guest kicks (EVENT_IDX and NO_NOTIFY)", arguments: [true, false])
    func kickSuppression(eventIndex: Bool) throws {
        let daemon = try DaemonProcess(extraArguments: ["--poll-us", "5000000"])
        let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]), eventIndex: eventIndex)
        try driver.bringUp()
        let control = driver.frontend.queues[0]!
        for _ in 0..<20 { _ = try driver.queryDevice() }
        // The first command wakes the worker; it then polls and asks for no more kicks.
        #expect(control.kicks <= 2, "\(control.kicks) kicks for 20 commands to a polling device: \(daemon.logPath)")
        #expect(daemon.terminate() == 0)

        let sleeper = try DaemonProcess(extraArguments: ["--poll-us", "0"])
        let idle = try ModelDriver(frontend: try TestFrontend(path: sleeper.socketPaths[0]), eventIndex: eventIndex)
        try idle.bringUp()
        // A device that has gone idle has asked for kicks again: each command after a pause kicks.
        for _ in 0..<20 {
            _ = try idle.queryDevice()
            usleep(20_000)
        }
        #expect(idle.frontend.queues[0]!.kicks == 20, "an idle device must ask for every kick")
        #expect(sleeper.terminate() == 0)
    }

    @Test("a ring without a kick descriptor is polled")
    func noKickDescriptor() throws {
        try afterward { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            try driver.frontend.setVringFD(.setVringKick, index: 0, fd: nil)
            _ = try driver.queryDevice()
        }
    }

    @Test("SET_VRING_CALL can swap the interrupt descriptor while the ring runs")
    func callSwap() throws {
        try afterward { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            let control = driver.frontend.queues[0]!
            _ = try driver.queryDevice()  // also consumes the signal sent when the call descriptor was installed
            let replacement = try EventFD()
            try driver.frontend.setVringFD(.setVringCall, index: 0, fd: replacement, needReply: true)
            _ = replacement.drain()  // the daemon signals a new descriptor once, in case it missed one
            control.ring.setUsedEvent(control.ring.usedIndex)
            _ = try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: 136, interrupt: false)
            #expect(TestQueue.wait(replacement, milliseconds: 2000), "no interrupt on the new descriptor")
            #expect(!control.waitForCall(milliseconds: 100), "interrupt on the old descriptor")
        }
    }

    @Test("a new kick descriptor for a running ring takes over from the old one")
    func kickSwap() throws {
        try afterward { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            _ = try driver.queryDevice()
            let control = driver.frontend.queues[0]!
            let newKick = try EventFD()
            try driver.frontend.setVringFD(.setVringKick, index: 0, fd: newKick, needReply: true)
            control.ring.setUsedEvent(control.ring.usedIndex)
            _ = control.ring.add([.init(address: driver.commandBuffer, length: 8, writable: false),
                                  .init(address: driver.responseBuffer, length: 144, writable: true)])
            // Fill the command header: QUERY_DEVICE.
            _ = driver.frontend.memory.store(UInt32(1), at: driver.commandBuffer)
            newKick.signal()
            #expect(control.waitForCall(milliseconds: 3000), "the new kick descriptor was not watched")
            #expect(control.ring.takeUsed().count == 1)
        }
    }

    @Test("dirty logging marks every page the device writes, and only while logging")
    func dirtyLogging() throws {
        try afterward(expectLog: "dirty logging on") { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            let fe = driver.frontend
            let control = fe.queues[0]!
            try fe.startLogging(queues: Array(0..<driver.queueCount))
            fe.clearLog()
            _ = try driver.queryDevice()
            #expect(fe.isDirty(gpa: driver.responseBuffer), "response payload not logged")
            #expect(fe.isDirty(gpa: control.ring.addresses.usedRing), "used ring not logged")
            #expect(!fe.isDirty(gpa: driver.commandBuffer), "a page the device only read was logged")
            // A response placed in high memory (above 4 GiB) is logged at its own page.
            let high = fe.regions[1].guestPhysicalAddress + 0x3000
            _ = try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: 136, responseAddress: high)
            #expect(fe.isDirty(gpa: high))
            try fe.stopLogging(queues: Array(0..<driver.queueCount))
            fe.clearLog()
            _ = try driver.queryDevice()
            #expect(!fe.isDirty(gpa: driver.responseBuffer), "logged after logging stopped")
        }
    }

    @Test("guest memory can be hot-added and removed while rings run")
    func memoryHotplug() throws {
        try afterward(expectLog: "memory region removed") { daemon in
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            let fe = driver.frontend
            let added = try fe.addRegion(guestPhysicalAddress: 0x2_0000_0000, size: 2 << 20)
            let reply = try driver.command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: 136,
                                           commandAddress: added.guestPhysicalAddress,
                                           responseAddress: added.guestPhysicalAddress + 4096)
            #expect(reply.status == 0)
            try fe.removeRegion(added)
            _ = try driver.queryDevice()
            // Removing it twice is refused.
            #expect(throws: FrontendError.failed(.remMemReg)) {
                try fe.request(.remMemReg, payload: SingleRegionPayload.encode(added), needReply: true)
            }
            // Buffers in the removed region are now outside guest memory: the queue breaks.
            let control = fe.queues[0]!
            _ = control.ring.add([.init(address: added.guestPhysicalAddress, length: 8, writable: false),
                                  .init(address: added.guestPhysicalAddress + 4096, length: 144, writable: true)])
            control.kick.signal()
            #expect(control.waitForError())
        }
    }

    @Test("a front-end that dies with rings running is cleaned up and the next one is served")
    func reconnect() throws {
        try afterward(expectLog: "front-end closed the connection") { daemon in
            for _ in 0..<3 {
                let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
                try driver.bringUp()
                _ = try driver.queryDevice()
                // Dropped here without GET_VRING_BASE: as if QEMU was killed.
            }
        }
    }

    @Test("one daemon serves several devices at once, each with its own identity")
    func manyDevices() throws {
        let daemon = try DaemonProcess(devices: 4)
        let idle = settledDescriptorCount(daemon)
        do {
            let drivers = try daemon.socketPaths.map { path throws in try ModelDriver(frontend: try TestFrontend(path: path)) }
            for d in drivers { try d.bringUp() }
            var guids = Set<UInt64>()
            for round in 0..<5 {
                for d in drivers {
                    let attributes = try d.queryDevice()
                    if round == 0 { guids.insert(UInt64(littleEndian: attributes.node_guid)) }
                }
            }
            #expect(guids.count == 4)
            // One device's hostile guest does not disturb the others.
            drivers[1].frontend.queues[0]!.ring.publish(head: 999)
            drivers[1].frontend.queues[0]!.kick.signal()
            #expect(drivers[1].frontend.queues[0]!.waitForError())
            for d in [drivers[0], drivers[2], drivers[3]] { _ = try d.queryDevice() }
        }
        #expect(daemon.waitForDescriptorCount(idle) == idle)
        #expect(daemon.terminate() == 0)
    }
}
