// SPDX-License-Identifier: Apache-2.0
// Payload codecs (the in-process front-end encodes, the daemon decodes: both must agree with the
// C layouts), feature names and request names.
import LinuxSystem
import Testing
import VhostUser

@Suite("Payload codecs and names")
struct PayloadTests {
    @Test("VringState round-trips through its 8-byte layout")
    func vringState() {
        let s = VringState(index: 0x0102_0304, num: 0xFFFF_0001)
        #expect(s.encoded == [4, 3, 2, 1, 1, 0, 0xFF, 0xFF])
        var r = ByteReader(s.encoded)
        #expect(VringState(&r) == s)
        #expect(r.remaining == 0)
    }

    @Test("VringAddress round-trips, fields in vhost_vring_addr order (desc, used, avail, log)")
    func vringAddress() {
        let a = VringAddress(index: 1, flags: 1, descriptorUserAddress: 0x11, usedUserAddress: 0x22,
                             availUserAddress: 0x33, logGuestAddress: 0x44)
        let bytes = a.encoded
        #expect(bytes.count == VringAddress.encodedSize)
        #expect([bytes[8], bytes[16], bytes[24], bytes[32]] == [0x11, 0x22, 0x33, 0x44])
        var r = ByteReader(bytes)
        #expect(VringAddress(&r) == a)
    }

    @Test("memory regions round-trip through a SET_MEM_TABLE payload")
    func memoryTable() throws {
        let regions = [
            MemoryRegionDescription(guestPhysicalAddress: 0, size: 0x8000_0000, userAddress: 0x7f00_0000_0000, mmapOffset: 0),
            MemoryRegionDescription(guestPhysicalAddress: 0x1_0000_0000, size: 0x4000_0000, userAddress: 0x7f00_8000_0000, mmapOffset: 0x8000_0000),
        ]
        let payload = MemoryTablePayload.encode(regions)
        #expect(payload.count == 8 + 2 * MemoryRegionDescription.encodedSize)
        #expect(Array(payload.prefix(8)) == [2, 0, 0, 0, 0, 0, 0, 0])
        guard case .setMemTable(let decoded, _) = try FrontendMessage.decode(message(.setMemTable, payload, descriptors: try eventDescriptors(2))) else {
            Issue.record("not SET_MEM_TABLE")
            return
        }
        #expect(decoded == regions)
    }

    @Test("LogDescription round-trips")
    func logDescription() {
        let l = LogDescription(mmapSize: 0x1234_5678_9abc, mmapOffset: 0x1000)
        #expect(l.encoded.count == LogDescription.encodedSize)
        var r = ByteReader(l.encoded)
        #expect(LogDescription(&r) == l)
    }

    @Test("ConfigAccess round-trips through SET_CONFIG")
    func configAccess() throws {
        let c = ConfigAccess(offset: 8, size: 5, flags: 1, payload: [9, 8, 7, 6, 5])
        #expect(c.encoded.count == ConfigAccess.headerSize + 5)
        guard case .setConfig(let decoded) = try FrontendMessage.decode(message(.setConfig, c.encoded)) else {
            Issue.record("not SET_CONFIG")
            return
        }
        #expect(decoded == c)
    }

    @Test("InflightDescription round-trips, padded to 24 bytes")
    func inflight() {
        let i = InflightDescription(mmapSize: 0x3000, mmapOffset: 0x40, queueCount: 4, queueSize: 0x100)
        #expect(i.encoded.count == InflightDescription.encodedSize)
        #expect(Array(i.encoded.suffix(8)) == [4, 0, 0, 1, 0, 0, 0, 0])
        var r = ByteReader(i.encoded)
        #expect(InflightDescription(&r) == i)
    }

    @Test("VringDescriptorIndex: bits 0-7 are the index, bit 8 is NOFD",
          arguments: [(UInt64(0), UInt32(0), true), (0x5, 5, true), (0xff, 255, true), (0x100, 0, false), (0x1ff, 255, false)])
    func vringDescriptorIndex(raw: UInt64, index: UInt32, hasDescriptor: Bool) {
        let v = VringDescriptorIndex(rawValue: raw)
        #expect(v == VringDescriptorIndex(index: index, hasDescriptor: hasDescriptor))
        #expect(v.rawValue == raw)
        #expect(VringDescriptorIndex.isValid(raw))
        #expect(!VringDescriptorIndex.isValid(raw | 0x200))
    }

    @Test("ProtocolFeatures prints the spec's names, then unknown bits in hex")
    func protocolFeatureNames() {
        #expect(ProtocolFeatures([.multipleQueues, .replyAck, .config]).description == "MQ|REPLY_ACK|CONFIG")
        #expect(ProtocolFeatures([.logSharedMemory, .backendRequests, .status]).description == "LOG_SHMFD|BACKEND_REQ|STATUS")
        #expect(ProtocolFeatures(rawValue: 1 << 3 | 1 << 40).description == "REPLY_ACK|0x10000000000")
        #expect(ProtocolFeatures().description == "none")
    }

    @Test("every request's spec name starts with VHOST_USER_ and no two are the same")
    func specNames() {
        let names = FrontendRequest.allCases.map(\.specName)
        #expect(names.allSatisfy { $0.hasPrefix("VHOST_USER_") })
        #expect(Set(names).count == names.count)
        #expect(FrontendRequest.setMemTable.specName == "VHOST_USER_SET_MEM_TABLE")
        #expect(FrontendRequest.iotlbMessage.specName == "VHOST_USER_IOTLB_MSG")
    }
}
