// SPDX-License-Identifier: Apache-2.0
// What an operator chooses for one device: identity (GUIDs, paired MAC) and quotas. Set from the
// command line or the libvirt hook; reported to the guest through config space and QUERY_DEVICE.

public struct DeviceConfiguration: Sendable, Equatable {
    public var nodeGUID: UInt64
    public var systemImageGUID: UInt64
    /// MAC of the paired virtio-net NIC (RoCE: GIDs come from its addresses); zero if none.
    public var mac: [UInt8]
    /// Doorbell virtqueues the device accepts (one per data-plane worker is the useful number).
    public var doorbellQueues: Int
    public var maxQueueSize: UInt16

    public var maxQP: UInt32
    public var maxQPWorkRequests: UInt32
    public var maxSGE: UInt32
    public var maxCQ: UInt32
    public var maxCQE: UInt32
    public var maxMR: UInt32
    public var maxPD: UInt32
    public var maxSRQ: UInt32
    public var maxSRQWorkRequests: UInt32
    public var maxAH: UInt32
    public var maxMRSize: UInt64
    public var maxInlineData: UInt32
    public var maxReadAtomicDepth: UInt32
    /// Quota: bytes of guest memory registered in MRs at once (DMA MRs not counted).
    public var maxPinnedBytes: UInt64
    /// Quota: host memory for the QPs' in-flight windows (depth x SGEs, chosen by the guest).
    public var maxWindowBytes: UInt64
    /// Which device of the daemon this is: picks its worker (all its queues share one).
    public var index: Int
    /// The provider: nil for the software fabric, or the host RDMA device for the verbs provider.
    public var hostVerbs: HostVerbsSettings?

    /// `--provider verbs`: which host device, port and GID stand behind the guest's device.
    public struct HostVerbsSettings: Sendable, Equatable {
        public var device: String
        public var port: UInt8
        /// The host GID that is the guest's GID index 0.
        public var gidIndex: Int
        public init(device: String, port: UInt8 = 1, gidIndex: Int = 0) {
            self.device = device; self.port = port; self.gidIndex = gidIndex
        }
    }

    /// Lowers the limits to what the host device can do (the verbs provider creates a host
    /// object per guest object, so the guest must not be promised more).
    mutating func clamp(maxQP: UInt32, maxQPWorkRequests: UInt32, maxSGE: UInt32, maxCQ: UInt32, maxCQE: UInt32, maxMR: UInt32,
                        maxPD: UInt32, maxSRQ: UInt32, maxSRQWorkRequests: UInt32, maxAH: UInt32, maxMRSize: UInt64,
                        maxReadAtomicDepth: UInt32) {
        self.maxQP = min(self.maxQP, maxQP)
        self.maxQPWorkRequests = min(self.maxQPWorkRequests, maxQPWorkRequests)
        self.maxSGE = min(self.maxSGE, maxSGE)
        self.maxCQ = min(self.maxCQ, maxCQ)
        self.maxCQE = min(self.maxCQE, maxCQE)
        self.maxMR = min(self.maxMR, maxMR)
        self.maxPD = min(self.maxPD, maxPD)
        self.maxSRQ = min(self.maxSRQ, maxSRQ)
        self.maxSRQWorkRequests = min(self.maxSRQWorkRequests, maxSRQWorkRequests)
        self.maxAH = min(self.maxAH, maxAH)
        self.maxMRSize = min(self.maxMRSize, maxMRSize)
        self.maxReadAtomicDepth = min(self.maxReadAtomicDepth, maxReadAtomicDepth)
    }

    /// Defaults sized for the design targets (16K QPs, 32K CQs per device).
    public init(nodeGUID: UInt64 = 0x5652_444d_4100_0001, mac: [UInt8] = [0, 0, 0, 0, 0, 0]) {
        self.nodeGUID = nodeGUID
        systemImageGUID = nodeGUID
        self.mac = mac
        doorbellQueues = 62
        maxQueueSize = 1024
        maxQP = 16384
        maxQPWorkRequests = 16384
        maxSGE = 32
        maxCQ = 32768
        maxCQE = 65536
        maxMR = 65536
        maxPD = 16384
        maxSRQ = 4096
        maxSRQWorkRequests = 16384
        maxAH = 32768
        maxMRSize = 1 << 40
        maxInlineData = 256
        maxReadAtomicDepth = 16
        maxPinnedBytes = 1 << 40
        maxWindowBytes = 1 << 30
        index = 0
        hostVerbs = nil
    }

    /// Checks what cannot be expressed in the ABI (a zero GUID breaks rdma_cm; a MAC is 6 bytes).
    public func validate() throws(ConfigurationError) {
        guard nodeGUID != 0 else { throw .zeroGUID }
        guard mac.count == 6 else { throw .badMAC(mac.count) }
        guard (1...1022).contains(doorbellQueues) else { throw .doorbellQueues(doorbellQueues) }
        guard maxQueueSize >= 2, maxQueueSize <= 32768, maxQueueSize & (maxQueueSize - 1) == 0 else {
            throw .queueSize(maxQueueSize)
        }
    }
}

public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case zeroGUID
    case badMAC(Int)
    case doorbellQueues(Int)
    case queueSize(UInt16)
    /// The host refused something the device needs (an eventfd).
    case system(String)
    /// The verbs provider cannot use the host device asked for.
    case provider(String)

    public var description: String {
        switch self {
        case .zeroGUID: "the node GUID must not be zero"
        case .badMAC(let n): "a MAC address has 6 bytes, not \(n)"
        case .doorbellQueues(let n): "doorbell queue count \(n) must be 1...1022 (QEMU allows 1024 queues)"
        case .queueSize(let n): "queue size \(n) must be a power of two in 2...32768"
        case .system(let s): s
        case .provider(let s): "--provider verbs: \(s)"
        }
    }
}
