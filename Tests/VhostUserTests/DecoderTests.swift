// SPDX-License-Identifier: Apache-2.0
// The syntax layer, driven by a table with one well-formed message per implemented request: the
// right case comes out, and every size or descriptor-count deviation is refused without leaking.
import LinuxSystem
import Testing
import VhostUser

/// One implemented request: a well-formed payload, how many descriptors it carries, and a check
/// that the decoded value is the right case with the right contents.
struct WellFormed: Sendable, CustomTestStringConvertible {
    let request: FrontendRequest
    let payload: [UInt8]
    let descriptors: Int
    /// Receives the decoded message and the raw numbers of the descriptors that were attached.
    let matches: @Sendable (FrontendMessage, [Int32]) -> Bool
    var testDescription: String { request.specName }
}

private let state = VringState(index: 2, num: 256)
private let address = VringAddress(index: 1, flags: VringAddress.logFlag, descriptorUserAddress: 0x7f00_1000,
                                   usedUserAddress: 0x7f00_3000, availUserAddress: 0x7f00_2000, logGuestAddress: 0x3000)
private let region = MemoryRegionDescription(guestPhysicalAddress: 0x1_0000_0000, size: 0x4000_0000,
                                             userAddress: 0x7f12_0000_0000, mmapOffset: 0x8000_0000)
private let log = LogDescription(mmapSize: 0x2000, mmapOffset: 0x1000)
private let config = ConfigAccess(offset: 4, size: 4, flags: 0, payload: [1, 2, 3, 4])
private let inflight = InflightDescription(mmapSize: 0x1000, mmapOffset: 0, queueCount: 3, queueSize: 256)
private let u64: UInt64 = 0x1_0000_0003

/// Payload-less cases compare by case name: `.request` alone would also match `.unsupported(r)`.
private func noPayload(_ r: FrontendRequest, _ caseName: String) -> WellFormed {
    WellFormed(request: r, payload: [], descriptors: 0) { m, _ in m.request == r && "\(m)" == caseName }
}

let wellFormed: [WellFormed] = [
    noPayload(.getFeatures, "getFeatures"), noPayload(.setOwner, "setOwner"), noPayload(.resetOwner, "resetOwner"),
    noPayload(.getProtocolFeatures, "getProtocolFeatures"), noPayload(.getQueueNum, "getQueueNum"),
    noPayload(.resetDevice, "resetDevice"), noPayload(.getMaxMemSlots, "getMaxMemSlots"), noPayload(.getStatus, "getStatus"),
    WellFormed(request: .setFeatures, payload: encodeU64(u64), descriptors: 0) { m, _ in
        if case .setFeatures(u64) = m { true } else { false }
    },
    WellFormed(request: .setProtocolFeatures, payload: encodeU64(u64), descriptors: 0) { m, _ in
        if case .setProtocolFeatures(u64) = m { true } else { false }
    },
    WellFormed(request: .setStatus, payload: encodeU64(0x0f), descriptors: 0) { m, _ in
        if case .setStatus(0x0f) = m { true } else { false }
    },
    WellFormed(request: .setMemTable, payload: MemoryTablePayload.encode([region]), descriptors: 1) { m, fds in
        if case .setMemTable(let r, let f) = m { r == [region] && f.map(\.rawValue) == fds } else { false }
    },
    WellFormed(request: .setLogBase, payload: log.encoded, descriptors: 1) { m, fds in
        if case .setLogBase(let l, let f) = m { l == log && [f.rawValue] == fds } else { false }
    },
    WellFormed(request: .setLogFD, payload: [], descriptors: 1) { m, fds in
        if case .setLogFD(let f) = m { [f.rawValue] == fds } else { false }
    },
    WellFormed(request: .setVringNum, payload: state.encoded, descriptors: 0) { m, _ in
        if case .setVringNum(state) = m { true } else { false }
    },
    WellFormed(request: .setVringAddr, payload: address.encoded, descriptors: 0) { m, _ in
        if case .setVringAddr(address) = m { true } else { false }
    },
    WellFormed(request: .setVringBase, payload: state.encoded, descriptors: 0) { m, _ in
        if case .setVringBase(state) = m { true } else { false }
    },
    WellFormed(request: .getVringBase, payload: state.encoded, descriptors: 0) { m, _ in
        if case .getVringBase(state) = m { true } else { false }
    },
    WellFormed(request: .setVringKick, payload: encodeU64(3), descriptors: 1) { m, fds in
        if case .setVringKick(let i, let f) = m { i == .init(index: 3, hasDescriptor: true) && f.map { [$0.rawValue] } == fds } else { false }
    },
    WellFormed(request: .setVringCall, payload: encodeU64(4), descriptors: 1) { m, fds in
        if case .setVringCall(let i, let f) = m { i == .init(index: 4, hasDescriptor: true) && f.map { [$0.rawValue] } == fds } else { false }
    },
    WellFormed(request: .setVringErr, payload: encodeU64(5), descriptors: 1) { m, fds in
        if case .setVringErr(let i, let f) = m { i == .init(index: 5, hasDescriptor: true) && f.map { [$0.rawValue] } == fds } else { false }
    },
    WellFormed(request: .setVringEnable, payload: VringState(index: 1, num: 1).encoded, descriptors: 0) { m, _ in
        if case .setVringEnable(VringState(index: 1, num: 1)) = m { true } else { false }
    },
    WellFormed(request: .setBackendReqFD, payload: [], descriptors: 1) { m, fds in
        if case .setBackendReqFD(let f) = m { [f.rawValue] == fds } else { false }
    },
    WellFormed(request: .getConfig, payload: config.encoded, descriptors: 0) { m, _ in
        if case .getConfig(config) = m { true } else { false }
    },
    WellFormed(request: .setConfig, payload: config.encoded, descriptors: 0) { m, _ in
        if case .setConfig(config) = m { true } else { false }
    },
    WellFormed(request: .getInflightFD, payload: inflight.encoded, descriptors: 0) { m, _ in
        if case .getInflightFD(inflight) = m { true } else { false }
    },
    WellFormed(request: .setInflightFD, payload: inflight.encoded, descriptors: 1) { m, fds in
        if case .setInflightFD(let i, let f) = m { i == inflight && [f.rawValue] == fds } else { false }
    },
    WellFormed(request: .vringKick, payload: state.encoded, descriptors: 0) { m, _ in
        if case .vringKick(state) = m { true } else { false }
    },
    WellFormed(request: .addMemReg, payload: SingleRegionPayload.encode(region), descriptors: 1) { m, fds in
        if case .addMemReg(let r, let f) = m { r == region && [f.rawValue] == fds } else { false }
    },
    WellFormed(request: .remMemReg, payload: SingleRegionPayload.encode(region), descriptors: 0) { m, _ in
        if case .remMemReg(region) = m { true } else { false }
    },
]

/// Requests that are well-formed protocol but that this back-end never offers.
let unsupportedRequests: [FrontendRequest] = [
    .sendRARP, .netSetMTU, .iotlbMessage, .setVringEndian, .createCryptoSession, .closeCryptoSession,
    .postcopyAdvise, .postcopyListen, .postcopyEnd, .gpuSetSocket, .getSharedObject, .setDeviceStateFD,
    .checkDeviceState,
]

@Suite("Frontend message decoder")
struct DecoderTests {
    @Test("the tables cover every request of the protocol exactly once")
    func tableIsComplete() {
        let listed = wellFormed.map(\.request) + unsupportedRequests
        #expect(listed.count == FrontendRequest.allCases.count)
        #expect(Set(listed.map(\.rawValue)) == Set(FrontendRequest.allCases.map(\.rawValue)))
    }

    @Test("a well-formed message decodes to its own case, descriptors moved in", arguments: wellFormed)
    func decodesWellFormed(_ c: WellFormed) throws {
        let fds = try eventDescriptors(c.descriptors)
        let decoded = try FrontendMessage.decode(message(c.request, c.payload, descriptors: fds))
        #expect(decoded.request == c.request)
        #expect(c.matches(decoded, fds.map(\.rawValue)))
    }

    @Test("a payload one byte short or one byte long is rejected as a size error", arguments: wellFormed, [-1, 1])
    func wrongSize(_ c: WellFormed, delta: Int) throws {
        guard c.payload.count + delta >= 0 else { return }  // nothing is shorter than empty
        let payload = delta < 0 ? Array(c.payload.dropLast()) : c.payload + [0]
        let error = decodeError(message(c.request, payload, descriptors: try eventDescriptors(c.descriptors)))
        guard case .wrongPayloadSize(let r, _, let actual)? = error else {
            Issue.record("expected wrongPayloadSize, got \(String(describing: error))")
            return
        }
        #expect(r == c.request && actual == UInt32(payload.count))
    }

    @Test("one descriptor too many or too few is rejected, and none leaks",
          arguments: wellFormed.filter { $0.request != .remMemReg }, [-1, 1])
    func wrongDescriptorCount(_ c: WellFormed, delta: Int) throws {
        guard c.descriptors + delta >= 0 else { return }
        try expectNoDescriptorLeak {
            let error = decodeError(message(c.request, c.payload, descriptors: try eventDescriptors(c.descriptors + delta)))
            guard case .wrongDescriptorCount(c.request, _, c.descriptors + delta)? = error else {
                Issue.record("expected wrongDescriptorCount, got \(String(describing: error))")
                return
            }
        }
    }

    @Test("an accepted message releases its descriptors with the decoded value")
    func acceptedReleases() throws {
        try expectNoDescriptorLeak {
            _ = try FrontendMessage.decode(message(.setMemTable, MemoryTablePayload.encode([region, region]),
                                                   descriptors: try eventDescriptors(2)))
        }
    }

    @Test("SET_MEM_TABLE with 0 or 9 regions is rejected", arguments: [0, 9])
    func memTableRegionCount(count: Int) throws {
        let regions = Array(repeating: region, count: count)
        try expectNoDescriptorLeak {
            let error = decodeError(message(.setMemTable, MemoryTablePayload.encode(regions), descriptors: try eventDescriptors(count)))
            #expect(error?.kind == "invalidField")
        }
    }

    @Test("SET_MEM_TABLE whose region count differs from its descriptor count is rejected", arguments: [(2, 1), (2, 3), (8, 7)])
    func memTableDescriptorMismatch(regions: Int, fds: Int) throws {
        let payload = MemoryTablePayload.encode(Array(repeating: region, count: regions))
        try expectNoDescriptorLeak {
            let error = decodeError(message(.setMemTable, payload, descriptors: try eventDescriptors(fds)))
            #expect(error == .wrongDescriptorCount(.setMemTable, expected: "\(regions)", actual: fds))
        }
    }

    @Test("SET_MEM_TABLE whose size is not 8 + 32 × nregions is rejected", arguments: [0, 4, 7, 8, 39, 41, 72, 8 + 32 * 8 + 32])
    func memTableSize(size: Int) throws {
        // nregions says 1 (when there is room for it); the rest is padding or missing regions.
        var payload = MemoryTablePayload.encode([region]) + Array(repeating: 0, count: 8 * 32)
        payload = Array(payload.prefix(size))
        if size > payload.count { payload += Array(repeating: 0, count: size - payload.count) }
        let error = decodeError(message(.setMemTable, payload, descriptors: try eventDescriptors(1)))
        // Four bytes cannot even hold nregions; eight hold nregions = 1 and no region.
        #expect(error?.kind == "wrongPayloadSize")
    }

    @Test("SET_MEM_TABLE with the maximum of 8 regions and 8 descriptors is accepted")
    func memTableMaximum() throws {
        let regions = (0..<8).map { MemoryRegionDescription(guestPhysicalAddress: UInt64($0) << 30, size: 1 << 30, userAddress: 0, mmapOffset: 0) }
        let fds = try eventDescriptors(8)
        guard case .setMemTable(let decoded, let received) = try FrontendMessage.decode(message(.setMemTable, MemoryTablePayload.encode(regions), descriptors: fds)) else {
            Issue.record("not SET_MEM_TABLE")
            return
        }
        #expect(decoded == regions)
        #expect(received.map(\.rawValue) == fds.map(\.rawValue))
    }

    static let vringFDRequests: [FrontendRequest] = [.setVringKick, .setVringCall, .setVringErr]

    @Test("SET_VRING_KICK/CALL/ERR with NOFD decode to no descriptor", arguments: vringFDRequests)
    func noDescriptorFlag(_ r: FrontendRequest) throws {
        let decoded = try FrontendMessage.decode(message(r, encodeU64(0x100 | 7)))
        let expected = VringDescriptorIndex(index: 7, hasDescriptor: false)
        switch decoded {
        case .setVringKick(expected, nil), .setVringCall(expected, nil), .setVringErr(expected, nil):
            #expect(decoded.request == r)
        default:
            Issue.record("decoded \(decoded)")
        }
    }

    @Test("SET_VRING_KICK/CALL/ERR: NOFD with a descriptor, or a descriptor missing, is rejected",
          arguments: vringFDRequests, [(UInt64(0x100), 1), (UInt64(0x0), 0), (UInt64(0x0), 2)])
    func vringDescriptorMismatch(_ r: FrontendRequest, _ c: (raw: UInt64, fds: Int)) throws {
        try expectNoDescriptorLeak {
            let error = decodeError(message(r, encodeU64(c.raw), descriptors: try eventDescriptors(c.fds)))
            #expect(error?.kind == "wrongDescriptorCount")
        }
    }

    @Test("SET_VRING_KICK/CALL/ERR with bits besides the index and NOFD are rejected",
          arguments: vringFDRequests, [UInt64(0x200), 0x8000_0000_0000_0000, 0x1_0000_0000])
    func vringUnknownBits(_ r: FrontendRequest, raw: UInt64) throws {
        let error = decodeError(message(r, encodeU64(raw | 0x100)))
        #expect(error?.kind == "invalidField")
    }

    @Test("GET/SET_CONFIG with a size field above 256 is rejected", arguments: [FrontendRequest.getConfig, .setConfig])
    func configTooLarge(_ r: FrontendRequest) {
        let access = ConfigAccess(offset: 0, size: 257, flags: 0, payload: Array(repeating: 0, count: 257))
        #expect(decodeError(message(r, access.encoded))?.kind == "invalidField")
        let maximum = ConfigAccess(offset: 0, size: 256, flags: 0, payload: Array(repeating: 7, count: 256))
        #expect(decodeError(message(r, maximum.encoded)) == nil)
    }

    @Test("GET/SET_CONFIG whose size field disagrees with the payload is rejected",
          arguments: [FrontendRequest.getConfig, .setConfig], [UInt32(0), 3, 5, 256])
    func configSizeMismatch(_ r: FrontendRequest, sizeField: UInt32) {
        // Four bytes of config data follow the 12-byte header, whatever the size field says.
        let access = ConfigAccess(offset: 0, size: sizeField, flags: 0, payload: [1, 2, 3, 4])
        #expect(decodeError(message(r, access.encoded))?.kind == "wrongPayloadSize")
    }

    @Test("REM_MEM_REG accepts zero or one descriptor and rejects two", arguments: [0, 1, 2])
    func remMemRegDescriptors(count: Int) throws {
        try expectNoDescriptorLeak {
            let error = decodeError(message(.remMemReg, SingleRegionPayload.encode(region), descriptors: try eventDescriptors(count)))
            if count <= 1 {
                #expect(error == nil)
            } else {
                #expect(error?.kind == "wrongDescriptorCount")
            }
        }
    }

    @Test("a request number outside the protocol decodes to .unknown, not an error",
          arguments: [UInt32(0), 44, 100, UInt32.max])
    func unknownRequest(number: UInt32) throws {
        let m = ReceivedMessage(header: MessageHeader(request: number, flags: 1, size: 3), payload: [1, 2, 3], descriptors: [])
        guard case .unknown(number) = try FrontendMessage.decode(m) else {
            Issue.record("not .unknown(\(number))")
            return
        }
    }

    @Test("a request this back-end does not implement decodes to .unsupported", arguments: unsupportedRequests)
    func unsupported(_ r: FrontendRequest) throws {
        let decoded = try FrontendMessage.decode(message(r, encodeU64(0)))
        guard case .unsupported(r) = decoded else {
            Issue.record("decoded \(decoded)")
            return
        }
        #expect(decoded.request == r)
    }
}

@Suite("Decoder against a lying header")
struct DecoderSizeMismatchTests {
    @Test("a header size that differs from the bytes received is a protocol error, not a trap",
          arguments: [(FrontendRequest.getConfig, UInt32(12), 0), (.setMemTable, 40, 8), (.setFeatures, 8, 16)])
    func headerSizeMismatch(request: FrontendRequest, claimed: UInt32, actual: Int) {
        let message = ReceivedMessage(header: MessageHeader(request: request.rawValue, flags: 1, size: claimed),
                                      payload: [UInt8](repeating: 0, count: actual), descriptors: [])
        #expect(decodeError(message)?.kind == "wrongPayloadSize")
    }
}
