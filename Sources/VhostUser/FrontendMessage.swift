// SPDX-License-Identifier: Apache-2.0
// Syntax layer: turns a received message into a typed request, checking payload size and the
// number of attached descriptors per request. Meaning (is the index in range? does the region
// overlap?) is the session's job, one layer up. Descriptors move into the typed value, so a
// rejected message releases them by going out of scope.
import LinuxSystem

public struct ReceivedMessage {
    public var header: MessageHeader
    public var payload: [UInt8]
    public var descriptors: [OwnedFileDescriptor]
    public init(header: MessageHeader, payload: [UInt8], descriptors: [OwnedFileDescriptor]) {
        self.header = header; self.payload = payload; self.descriptors = descriptors
    }
}

public enum FrontendMessage {
    case getFeatures
    case setFeatures(UInt64)
    case setOwner
    case resetOwner
    case setMemTable([MemoryRegionDescription], [OwnedFileDescriptor])
    case setLogBase(LogDescription, OwnedFileDescriptor)
    case setLogFD(OwnedFileDescriptor)
    case setVringNum(VringState)
    case setVringAddr(VringAddress)
    case setVringBase(VringState)
    case getVringBase(VringState)
    case setVringKick(VringDescriptorIndex, OwnedFileDescriptor?)
    case setVringCall(VringDescriptorIndex, OwnedFileDescriptor?)
    case setVringErr(VringDescriptorIndex, OwnedFileDescriptor?)
    case getProtocolFeatures
    case setProtocolFeatures(UInt64)
    case getQueueNum
    case setVringEnable(VringState)
    case setBackendReqFD(OwnedFileDescriptor)
    case getConfig(ConfigAccess)
    case setConfig(ConfigAccess)
    case getInflightFD(InflightDescription)
    case setInflightFD(InflightDescription, OwnedFileDescriptor)
    case resetDevice
    case vringKick(VringState)
    case getMaxMemSlots
    case addMemReg(MemoryRegionDescription, OwnedFileDescriptor)
    case remMemReg(MemoryRegionDescription)
    case setStatus(UInt64)
    case getStatus
    /// A well-formed request this back-end does not implement (it never offered the feature).
    case unsupported(FrontendRequest)
    /// A request number outside the protocol; the payload was consumed so the stream stays in step.
    case unknown(UInt32)

    /// Decodes and syntax-checks `message`. Throws only for protocol errors; consumes the descriptors.
    public static func decode(_ message: ReceivedMessage) throws(VhostUserError) -> FrontendMessage {
        guard let request = FrontendRequest(rawValue: message.header.request) else {
            return .unknown(message.header.request)
        }
        var fds = message.descriptors
        let size = message.header.size
        // Every check below is against `size`; the bytes must be exactly that many.
        guard message.payload.count == Int(size) else {
            throw .wrongPayloadSize(request, expected: "\(size) (the header's size)", actual: UInt32(clamping: message.payload.count))
        }
        var r = ByteReader(message.payload)

        func expectSize(_ n: Int) throws(VhostUserError) {
            guard size == UInt32(n) else { throw .wrongPayloadSize(request, expected: "\(n)", actual: size) }
        }
        func expectDescriptors(_ n: Int) throws(VhostUserError) {
            guard fds.count == n else { throw .wrongDescriptorCount(request, expected: "\(n)", actual: fds.count) }
        }
        func vringIndexWithOptionalFD() throws(VhostUserError) -> (VringDescriptorIndex, OwnedFileDescriptor?) {
            try expectSize(8)
            let raw: UInt64 = r.read()
            guard VringDescriptorIndex.isValid(raw) else { throw .invalidField(request, "unknown bits in 0x\(String(raw, radix: 16))") }
            let index = VringDescriptorIndex(rawValue: raw)
            try expectDescriptors(index.hasDescriptor ? 1 : 0)
            return (index, fds.first)
        }

        switch request {
        case .getFeatures, .setOwner, .resetOwner, .getProtocolFeatures, .getQueueNum, .resetDevice,
             .getMaxMemSlots, .getStatus:
            try expectSize(0)
            try expectDescriptors(0)
            switch request {
            case .getFeatures: return .getFeatures
            case .setOwner: return .setOwner
            case .resetOwner: return .resetOwner
            case .getProtocolFeatures: return .getProtocolFeatures
            case .getQueueNum: return .getQueueNum
            case .resetDevice: return .resetDevice
            case .getMaxMemSlots: return .getMaxMemSlots
            default: return .getStatus
            }
        case .setFeatures, .setProtocolFeatures, .setStatus:
            try expectSize(8)
            try expectDescriptors(0)
            let value: UInt64 = r.read()
            switch request {
            case .setFeatures: return .setFeatures(value)
            case .setProtocolFeatures: return .setProtocolFeatures(value)
            default: return .setStatus(value)
            }
        case .setMemTable:
            guard size >= 8 else { throw .wrongPayloadSize(request, expected: "8 + 32 per region", actual: size) }
            let count: UInt32 = r.read()
            _ = r.read(UInt32.self)
            guard count >= 1, count <= UInt32(MemoryTablePayload.maxRegions) else {
                throw .invalidField(request, "\(count) regions (1...\(MemoryTablePayload.maxRegions) allowed)")
            }
            try expectSize(8 + Int(count) * MemoryRegionDescription.encodedSize)
            try expectDescriptors(Int(count))
            let regions = (0..<Int(count)).map { _ in MemoryRegionDescription(&r) }
            return .setMemTable(regions, fds)
        case .setLogBase:
            try expectSize(LogDescription.encodedSize)
            try expectDescriptors(1)
            return .setLogBase(LogDescription(&r), fds[0])
        case .setLogFD:
            try expectSize(0)
            try expectDescriptors(1)
            return .setLogFD(fds[0])
        case .setVringNum, .setVringBase, .getVringBase, .setVringEnable, .vringKick:
            try expectSize(VringState.encodedSize)
            try expectDescriptors(0)
            let state = VringState(&r)
            switch request {
            case .setVringNum: return .setVringNum(state)
            case .setVringBase: return .setVringBase(state)
            case .getVringBase: return .getVringBase(state)
            case .setVringEnable: return .setVringEnable(state)
            default: return .vringKick(state)
            }
        case .setVringAddr:
            try expectSize(VringAddress.encodedSize)
            try expectDescriptors(0)
            return .setVringAddr(VringAddress(&r))
        case .setVringKick:
            let (i, fd) = try vringIndexWithOptionalFD()
            return .setVringKick(i, fd)
        case .setVringCall:
            let (i, fd) = try vringIndexWithOptionalFD()
            return .setVringCall(i, fd)
        case .setVringErr:
            let (i, fd) = try vringIndexWithOptionalFD()
            return .setVringErr(i, fd)
        case .setBackendReqFD:
            try expectSize(0)
            try expectDescriptors(1)
            return .setBackendReqFD(fds[0])
        case .getConfig, .setConfig:
            guard size >= UInt32(ConfigAccess.headerSize) else {
                throw .wrongPayloadSize(request, expected: "12 + config size", actual: size)
            }
            try expectDescriptors(0)
            let offset: UInt32 = r.read(), length: UInt32 = r.read(), flags: UInt32 = r.read()
            guard length <= UInt32(ConfigAccess.maxSize) else { throw .invalidField(request, "config size \(length) > 256") }
            try expectSize(ConfigAccess.headerSize + Int(length))
            let access = ConfigAccess(offset: offset, size: length, flags: flags, payload: r.readBytes(Int(length)))
            return request == .getConfig ? .getConfig(access) : .setConfig(access)
        case .getInflightFD:
            try expectSize(InflightDescription.encodedSize)
            try expectDescriptors(0)
            return .getInflightFD(InflightDescription(&r))
        case .setInflightFD:
            try expectSize(InflightDescription.encodedSize)
            try expectDescriptors(1)
            return .setInflightFD(InflightDescription(&r), fds[0])
        case .addMemReg:
            try expectSize(SingleRegionPayload.encodedSize)
            try expectDescriptors(1)
            _ = r.read(UInt64.self)
            return .addMemReg(MemoryRegionDescription(&r), fds[0])
        case .remMemReg:
            try expectSize(SingleRegionPayload.encodedSize)
            // The spec allows QEMU to attach the region's fd here; it is not needed, so it is closed.
            guard fds.count <= 1 else { throw .wrongDescriptorCount(request, expected: "0 or 1", actual: fds.count) }
            fds.removeAll()
            _ = r.read(UInt64.self)
            return .remMemReg(MemoryRegionDescription(&r))
        case .sendRARP, .netSetMTU, .iotlbMessage, .setVringEndian, .createCryptoSession, .closeCryptoSession,
             .postcopyAdvise, .postcopyListen, .postcopyEnd, .gpuSetSocket, .getSharedObject,
             .setDeviceStateFD, .checkDeviceState:
            return .unsupported(request)
        }
    }

    /// The virtqueue a per-queue request is about (for logs).
    public var queueIndex: UInt32? {
        switch self {
        case .setVringNum(let s), .setVringBase(let s), .getVringBase(let s), .setVringEnable(let s), .vringKick(let s):
            s.index
        case .setVringAddr(let a): a.index
        case .setVringKick(let i, _), .setVringCall(let i, _), .setVringErr(let i, _): i.index
        default: nil
        }
    }

    public var request: FrontendRequest? {
        switch self {
        case .getFeatures: .getFeatures
        case .setFeatures: .setFeatures
        case .setOwner: .setOwner
        case .resetOwner: .resetOwner
        case .setMemTable: .setMemTable
        case .setLogBase: .setLogBase
        case .setLogFD: .setLogFD
        case .setVringNum: .setVringNum
        case .setVringAddr: .setVringAddr
        case .setVringBase: .setVringBase
        case .getVringBase: .getVringBase
        case .setVringKick: .setVringKick
        case .setVringCall: .setVringCall
        case .setVringErr: .setVringErr
        case .getProtocolFeatures: .getProtocolFeatures
        case .setProtocolFeatures: .setProtocolFeatures
        case .getQueueNum: .getQueueNum
        case .setVringEnable: .setVringEnable
        case .setBackendReqFD: .setBackendReqFD
        case .getConfig: .getConfig
        case .setConfig: .setConfig
        case .getInflightFD: .getInflightFD
        case .setInflightFD: .setInflightFD
        case .resetDevice: .resetDevice
        case .vringKick: .vringKick
        case .getMaxMemSlots: .getMaxMemSlots
        case .addMemReg: .addMemReg
        case .remMemReg: .remMemReg
        case .setStatus: .setStatus
        case .getStatus: .getStatus
        case .unsupported(let r): r
        case .unknown: nil
        }
    }
}
