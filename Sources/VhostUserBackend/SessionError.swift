// SPDX-License-Identifier: Apache-2.0
// Meaning-level rejections of a well-formed request. The session turns each into a failure
// reply when the front-end asked for one, or into a disconnect when it cannot be told otherwise.
import VhostUser
import VirtQueue

public enum SessionError: Error, CustomStringConvertible, Equatable {
    case queueIndexOutOfRange(UInt32, limit: Int)
    case invalidQueueSize(UInt32)
    case ringRunning(Int)
    case ringNotConfigured(Int)
    case ringOutsideMemory(Int, String)
    case unsupportedFeatures(UInt64)
    case unsupportedProtocolFeatures(UInt64)
    case invalidRegion(String)
    case tooManyRegions(Int, limit: Int)
    case noSuchRegion(MemoryRegionDescription)
    case logNotNegotiated
    case invalidLog(String)
    case configRange(offset: UInt32, size: UInt32)
    case configNotWritable
    case invalidEnableValue(UInt32)
    case unsupportedRequest(String)
    case unknownRequest(UInt32)
    case resources(String)

    public var description: String {
        switch self {
        case .queueIndexOutOfRange(let i, let limit): "queue index \(i) out of range (device has \(limit) queues)"
        case .invalidQueueSize(let n): "queue size \(n) is not a power of two within the device maximum"
        case .ringRunning(let i): "queue \(i) is running; stop it first"
        case .ringNotConfigured(let i): "queue \(i) has no size or addresses yet"
        case .ringOutsideMemory(let i, let what): "queue \(i): \(what)"
        case .unsupportedFeatures(let f): "features 0x\(String(f, radix: 16)) were not offered"
        case .unsupportedProtocolFeatures(let f): "protocol features \(ProtocolFeatures(rawValue: f)) were not offered"
        case .invalidRegion(let why): "memory region rejected: \(why)"
        case .tooManyRegions(let n, let limit): "\(n) memory regions exceed the \(limit) slots offered"
        case .noSuchRegion(let r): "no memory region at guest address 0x\(String(r.guestPhysicalAddress, radix: 16)) of size 0x\(String(r.size, radix: 16))"
        case .logNotNegotiated: "dirty log without LOG_SHMFD"
        case .invalidLog(let why): "dirty log rejected: \(why)"
        case .configRange(let o, let s): "config access of \(s) bytes at \(o) is outside config space"
        case .configNotWritable: "config space write refused"
        case .invalidEnableValue(let v): "ring enable value \(v) is neither 0 nor 1"
        case .unsupportedRequest(let name): "\(name) is not supported (its feature was not offered)"
        case .unknownRequest(let n): "unknown request \(n)"
        case .resources(let why): why
        }
    }
}
