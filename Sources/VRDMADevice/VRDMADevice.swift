// SPDX-License-Identifier: Apache-2.0
// The virtio-rdma device as the vhost-user framework sees it: features, config space, and which
// handler runs each virtqueue (abi/virtio_rdma.h, "Virtqueues"). What commands do lives in
// ControlQueue.swift.
import CVRDMAABI
import Logging
import VhostUser
import VhostUserBackend
import VirtQueue

public final class VRDMADevice: VhostUserDevice {
    public let configuration: DeviceConfiguration
    private let logger: Logger
    /// The HCA: resource tables and data plane, used only on this device's worker (and by
    /// `reset`, which runs while every ring is stopped).
    let engine: Engine

    /// `fabric` joins the devices of a daemon on the software provider; `directory` does it on
    /// the verbs provider (configuration.hostVerbs), whose host device is opened here.
    public init(configuration: DeviceConfiguration, fabric: SoftwareFabric = SoftwareFabric(),
                directory: VerbsDirectory = VerbsDirectory(), logger: Logger) throws(ConfigurationError) {
        try configuration.validate()
        var c = configuration
        var host: HostPath?
        if let settings = c.hostVerbs {
            do {
                host = try HostPath(settings: settings, directory: directory, maxSGE: c.maxSGE, gidTableLength: Engine.gidTableLength)
            } catch {
                throw .provider("\(error)")
            }
            let a = host!.context.deviceAttributes
            c.clamp(maxQP: UInt32(a.max_qp), maxQPWorkRequests: UInt32(a.max_qp_wr), maxSGE: UInt32(a.max_sge), maxCQ: UInt32(a.max_cq),
                    maxCQE: UInt32(a.max_cqe), maxMR: UInt32(a.max_mr), maxPD: UInt32(a.max_pd), maxSRQ: UInt32(a.max_srq),
                    maxSRQWorkRequests: UInt32(a.max_srq_wr), maxAH: UInt32(a.max_ah), maxMRSize: a.max_mr_size,
                    maxReadAtomicDepth: UInt32(a.max_qp_rd_atom))
        }
        self.configuration = c
        self.logger = logger
        do {
            engine = try Engine(configuration: c, fabric: fabric, host: host, logger: logger)
        } catch {
            throw .system("\(error)")
        }
        engine.start()
    }

    // Ring layout and suppression features the device implements; no device-specific bits yet.
    public var features: UInt64 {
        VirtioFeature.version1 | VirtioFeature.indirectDescriptors | VirtioFeature.eventIndex
    }
    public var protocolFeatures: ProtocolFeatures { .config }
    public var maxQueues: Int { Int(VIRTIO_RDMA_VQ_DOORBELL_BASE) + configuration.doorbellQueues }
    public var maxQueueSize: UInt16 { configuration.maxQueueSize }

    // MARK: config space

    /// The config space bytes, built from the configuration (abi: struct virtio_rdma_config).
    public var configSpace: [UInt8] {
        let c = configuration
        var cfg = virtio_rdma_config()
        cfg.abi_version = UInt32(VIRTIO_RDMA_ABI_VERSION).littleEndian
        cfg.phys_port_cnt = UInt32(1).littleEndian
        cfg.node_guid = c.nodeGUID.littleEndian
        cfg.sys_image_guid = c.systemImageGUID.littleEndian
        cfg.max_mr_size = c.maxMRSize.littleEndian
        cfg.page_size_cap = UInt64(4096).littleEndian
        cfg.max_qp = c.maxQP.littleEndian
        cfg.max_qp_wr = c.maxQPWorkRequests.littleEndian
        cfg.max_sge = c.maxSGE.littleEndian
        cfg.max_cq = c.maxCQ.littleEndian
        cfg.max_cqe = c.maxCQE.littleEndian
        cfg.max_mr = c.maxMR.littleEndian
        cfg.max_pd = c.maxPD.littleEndian
        cfg.max_srq = c.maxSRQ.littleEndian
        cfg.max_srq_wr = c.maxSRQWorkRequests.littleEndian
        cfg.max_ah = c.maxAH.littleEndian
        cfg.max_qp_rd_atom = c.maxReadAtomicDepth.littleEndian
        cfg.max_inline_data = c.maxInlineData.littleEndian
        withUnsafeMutableBytes(of: &cfg.mac) { $0.copyBytes(from: c.mac) }
        cfg.port_state = UInt8(VIRTIO_RDMA_PORT_ACTIVE)
        cfg.active_mtu = 3  // 1024 bytes, the RoCE default over a 1500-byte Ethernet MTU
        cfg.gid_tbl_len = UInt16(16).littleEndian
        cfg.pkey_tbl_len = UInt16(1).littleEndian
        return withUnsafeBytes(of: &cfg) { Array($0) }
    }

    public func readConfig(offset: Int, count: Int) -> [UInt8]? {
        let bytes = configSpace
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else { return nil }
        return Array(bytes[offset..<offset + count])
    }

    /// Config space is read-only for the driver.
    public func writeConfig(offset: Int, bytes: [UInt8]) -> Bool { false }

    // MARK: queues

    public func worker(forQueue index: Int, workerCount: Int) -> Int {
        // Every queue of a device on one worker: commands, doorbells and the events they cause
        // touch the same tables and need no locks. Devices spread over the workers.
        configuration.index % workerCount
    }

    public func makeQueueHandler(queue index: Int, features: UInt64) -> any QueueHandler {
        switch UInt32(index) {
        case UInt32(VIRTIO_RDMA_VQ_CONTROL): ControlQueue(device: self, logger: logger)
        case UInt32(VIRTIO_RDMA_VQ_EVENT): EventQueue(engine: engine)
        default: DoorbellQueue(engine: engine, wakes: index == Int(VIRTIO_RDMA_VQ_DOORBELL_BASE))
        }
    }

    public func reset() {
        engine.reset()
        logger.info("vrdma device reset: guest resources released")
    }
}

/// The event queue holds driver-supplied buffers until the device has an event to report; a
/// kick only says that more buffers arrived.
final class EventQueue: QueueHandler {
    private let engine: Engine
    /// Events wait and the guest has given no buffer: nothing to do until it kicks.
    private var starved = false
    init(engine: Engine) { self.engine = engine }

    func process(_ queue: SplitQueue) throws(QueueError) -> Int {
        var written = 0
        starved = false
        while !engine.events.isEmpty {
            guard let chain = try queue.popChain() else {
                starved = true
                break
            }
            // A buffer that cannot hold a whole event is returned unused; the event waits.
            guard chain.writableLength >= MemoryLayout<virtio_rdma_event>.size else {
                queue.pushUsed(head: chain.head, writtenLength: 0)
                continue
            }
            var event = engine.events.removeFirst()
            let n = withUnsafeBytes(of: &event) { chain.scatter(from: $0, memory: queue.memory) }
            queue.pushUsed(head: chain.head, writtenLength: UInt32(n))
            written += 1
        }
        return written
    }

    var hasPendingWork: Bool { !engine.events.isEmpty && !starved }
}

/// A doorbell queue's kick means "look at your rings"; it carries no buffers. Every doorbell
/// queue runs the same engine pass; the first also wakes the worker for packets from other
/// devices.
final class DoorbellQueue: QueueHandler {
    private let engine: Engine
    private let wakes: Bool
    init(engine: Engine, wakes: Bool) { self.engine = engine; self.wakes = wakes }

    func process(_ queue: SplitQueue) throws(QueueError) -> Int {
        engine.update(memory: queue.memory)
        // Buffers a driver put on a doorbell queue anyway are returned unused.
        while let chain = try queue.popChain() { queue.pushUsed(head: chain.head, writtenLength: 0) }
        return engine.poll()
    }

    var wakeDescriptor: Int32? { wakes ? engine.wakeDescriptor : nil }
    func prepareToSleep() -> Bool { wakes ? engine.prepareToSleep() : false }
    var wakeDeadline: UInt64? { wakes && engine.nextDeadline != 0 ? engine.nextDeadline : nil }
}
