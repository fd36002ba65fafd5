// SPDX-License-Identifier: Apache-2.0
// Each malformed message the issue lists, sent to the real daemon. Protocol-level garbage ends
// the connection; a well-formed request with a bad meaning fails its reply. Either way the daemon
// lives on, leaks no descriptor and serves the next front-end.
import Glibc
import LinuxSystem
import Testing
import VRDMATestSupport
import VhostUser

@Suite("Malformed vhost-user messages", .serialized)
struct MalformedMessageTests {
    let version = MessageHeader.version

    @Test("an oversize payload drops the connection")
    func oversizePayload() throws {
        try afterward(expectLog: "exceeds 4096") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try? fe.send(FrontendRequest.setFeatures.rawValue, flags: version, payload: [UInt8](repeating: 0, count: 4097))
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("a short payload drops the connection")
    func shortPayload() throws {
        try afterward(expectLog: "payload of 4 bytes, expected 8") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.send(FrontendRequest.setFeatures.rawValue, flags: version, payload: [1, 2, 3, 4])
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("a message cut short by the peer closing ends the session cleanly")
    func truncatedMessage() throws {
        try afterward(expectLog: "connection closed after") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            // The header promises 40 bytes; only 8 arrive before the socket closes.
            let raw = MessageHeader(request: FrontendRequest.setVringAddr.rawValue, flags: version, size: 40).encoded + [0, 0, 0, 0, 0, 0, 0, 0]
            _ = raw.withUnsafeBytes { Glibc.write(fe.connection.socket.rawValue, $0.baseAddress, $0.count) }
            Glibc.shutdown(fe.connection.socket.rawValue, Int32(SHUT_WR))
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("a wrong descriptor count drops the connection and closes every descriptor")
    func wrongDescriptorCount() throws {
        try afterward(expectLog: "1 file descriptors, expected 2") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            var regions = fe.regions
            regions[1].guestPhysicalAddress = 1 << 33
            try fe.send(FrontendRequest.setMemTable.rawValue, flags: version, payload: MemoryTablePayload.encode(regions),
                        descriptors: [fe.ramFile.rawValue])
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("descriptors on a request that takes none drop the connection and are closed")
    func descriptorsWhereNoneBelong() throws {
        try afterward(expectLog: "VHOST_USER_GET_FEATURES: 2 file descriptors, expected 0") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            let a = try EventFD(), b = try EventFD()
            try fe.send(FrontendRequest.getFeatures.rawValue, flags: version, payload: [],
                        descriptors: [a.descriptor.rawValue, b.descriptor.rawValue])
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("more descriptors than any message may carry are all closed")
    func tooManyDescriptors() throws {
        try afterward(expectLog: "expected at most 8") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            let fds = try (0..<12).map { _ throws(SystemError) in try EventFD() }
            try fe.send(FrontendRequest.setMemTable.rawValue, flags: version, payload: [UInt8](repeating: 0, count: 8),
                        descriptors: fds.map(\.descriptor.rawValue))
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("an unknown request with NEED_REPLY gets a failure reply and the session goes on")
    func unknownRequestAcked() throws {
        try afterward(expectLog: "unknown request 99") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            try fe.send(99, flags: version | MessageHeader.needReplyFlag, payload: [1, 2, 3])
            let message = try #require(try fe.connection.receive())
            #expect(message.header.flags == 0x5)
            #expect(message.payload == encodeU64(1))
            #expect(try fe.getQueueNum() > 0)
        }
    }

    @Test("an unknown request without NEED_REPLY drops the connection")
    func unknownRequestSilent() throws {
        try afterward(expectLog: "unknown request 77") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.send(77, flags: version, payload: [])
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("bad header flags drop the connection", arguments: [UInt32(0x0), 0x2, 0x5, 0x11, 0x8000_0001])
    func badFlags(flags: UInt32) throws {
        try afterward { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.send(FrontendRequest.getFeatures.rawValue, flags: flags, payload: [])
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("a queue index out of range fails the request", arguments: [FrontendRequest.setVringNum, .setVringBase, .setVringEnable])
    func queueIndexOutOfRange(request: FrontendRequest) throws {
        try afterward(expectLog: "queue index 4096 out of range") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            #expect(throws: FrontendError.failed(request)) {
                try fe.request(request, payload: VringState(index: 4096, num: 1).encoded, needReply: true)
            }
            // Without a way to say "failed" the daemon must hang up rather than pretend.
            try fe.send(request.rawValue, flags: version, payload: VringState(index: 4096, num: 1).encoded)
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("a kick descriptor for a queue out of range is refused and closed")
    func kickOutOfRange() throws {
        try afterward { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            let kick = try EventFD()
            try fe.send(FrontendRequest.setVringKick.rawValue, flags: version | MessageHeader.needReplyFlag,
                        payload: encodeU64(200), descriptors: [kick.descriptor.rawValue])
            let reply = try #require(try fe.connection.receive())
            #expect(reply.payload == encodeU64(1))
        }
    }

    @Test("ring sizes that are not a power of two within the maximum are refused", arguments: [UInt32(0), 3, 100, 2048, 65536])
    func badRingSize(size: UInt32) throws {
        try afterward { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            #expect(throws: FrontendError.failed(.setVringNum)) {
                try fe.request(.setVringNum, payload: VringState(index: 0, num: size).encoded, needReply: true)
            }
        }
    }

    @Test("overlapping memory regions are refused")
    func overlappingRegions() throws {
        try afterward(expectLog: "memory region rejected") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            var regions = fe.regions
            regions[1].guestPhysicalAddress = regions[0].size - 4096  // overlaps the end of region 0
            #expect(throws: FrontendError.failed(.setMemTable)) {
                try fe.request(.setMemTable, payload: MemoryTablePayload.encode(regions),
                               descriptors: [fe.ramFile.rawValue, fe.ramFile.rawValue], needReply: true)
            }
            regions = fe.regions
            regions[1].userAddress = regions[0].userAddress + 4096  // overlapping in the front-end's address space
            #expect(throws: FrontendError.failed(.setMemTable)) {
                try fe.request(.setMemTable, payload: MemoryTablePayload.encode(regions),
                               descriptors: [fe.ramFile.rawValue, fe.ramFile.rawValue], needReply: true)
            }
        }
    }

    @Test("memory regions that wrap around or lie past the end of their file are refused")
    func wrappingRegions() throws {
        try afterward(expectLog: "memory region rejected") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            let table: [[MemoryRegionDescription]] = [
                [MemoryRegionDescription(guestPhysicalAddress: UInt64.max - 4095, size: 8192, userAddress: 0x1000_0000, mmapOffset: 0)],
                [MemoryRegionDescription(guestPhysicalAddress: 0, size: 8192, userAddress: UInt64.max - 4095, mmapOffset: 0)],
                [MemoryRegionDescription(guestPhysicalAddress: 0, size: 4096, userAddress: 0x1000_0000, mmapOffset: UInt64.max - 100)],
                [MemoryRegionDescription(guestPhysicalAddress: 0, size: 64 << 20, userAddress: 0x1000_0000, mmapOffset: 0)],
                [MemoryRegionDescription(guestPhysicalAddress: 0, size: 0, userAddress: 0x1000_0000, mmapOffset: 0)],
            ]
            for regions in table {
                #expect(throws: FrontendError.failed(.setMemTable)) {
                    try fe.request(.setMemTable, payload: MemoryTablePayload.encode(regions),
                                   descriptors: [fe.ramFile.rawValue], needReply: true)
                }
            }
        }
    }

    @Test("ring addresses outside guest memory are refused")
    func ringOutsideMemory() throws {
        try afterward(expectLog: "is outside guest memory") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            try fe.setMemTable()
            let q = try fe.makeQueue(0, size: 64, eventIndex: true)
            try fe.request(.setVringNum, payload: VringState(index: 0, num: 64).encoded, needReply: true)
            var address = fe.vringAddress(q)
            address.usedUserAddress = 0x1234_0000  // no region there
            #expect(throws: FrontendError.failed(.setVringAddr)) {
                try fe.request(.setVringAddr, payload: address.encoded, needReply: true)
            }
            address = fe.vringAddress(q)
            address.descriptorUserAddress = fe.regions[0].userAddress + fe.regions[0].size - 16  // table runs off the end
            #expect(throws: FrontendError.failed(.setVringAddr)) {
                try fe.request(.setVringAddr, payload: address.encoded, needReply: true)
            }
        }
    }

    @Test("protocol features that were not offered are refused, in-band notifications among them")
    func unofferedProtocolFeatures() throws {
        try afterward { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            let offered = try fe.getProtocolFeatures()
            #expect(!offered.contains(.inbandNotifications))
            #expect(!offered.contains(.inflightSharedMemory))
            try fe.send(FrontendRequest.setProtocolFeatures.rawValue, flags: version,
                        payload: encodeU64(offered.union(.inbandNotifications).rawValue))
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("inflight descriptors are refused cleanly while INFLIGHT_SHMFD is not offered")
    func inflightRefused() throws {
        try afterward(expectLog: "INFLIGHT_SHMFD is not supported") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            let fd = try MemFD.create(name: "inflight", size: 4096)
            #expect(throws: FrontendError.failed(.setInflightFD)) {
                try fe.request(.setInflightFD, payload: InflightDescription(mmapSize: 4096, mmapOffset: 0, queueCount: 4, queueSize: 64).encoded,
                               descriptors: [fd.rawValue], needReply: true)
            }
            try fe.send(FrontendRequest.getInflightFD.rawValue, flags: version,
                        payload: InflightDescription(mmapSize: 0, mmapOffset: 0, queueCount: 4, queueSize: 64).encoded)
            #expect(fe.waitForDisconnect())
        }
    }

    @Test("config reads outside config space get the empty failure reply")
    func configOutOfRange() throws {
        try afterward(expectLog: "outside config space") { daemon in
            let fe = try TestFrontend(path: daemon.socketPaths[0])
            try fe.negotiate()
            #expect(try fe.getConfig(offset: 120, size: 16) == nil)
            #expect(try fe.getConfig(offset: 0, size: 256) == nil)
            #expect(try fe.getConfig(offset: 8, size: 8) != nil)
            #expect(throws: FrontendError.failed(.setConfig)) {
                try fe.request(.setConfig, payload: ConfigAccess(offset: 0, size: 4, flags: 0, payload: [1, 2, 3, 4]).encoded, needReply: true)
            }
        }
    }
}
