// SPDX-License-Identifier: Apache-2.0
// One front-end connection to one device: the meaning layer of the protocol. Each request is
// checked against the session's state (features offered, queue count, memory table) before
// anything changes; then it acts, handing rings to workers and memory tables to the rings.
// Runs on the connection's control thread only.
import LinuxSystem
import Logging
import VhostUser
import VirtQueue

/// What the connection loop sends back for one request.
public enum SessionResponse: Equatable {
    /// The request has no reply (or only an ack, which the loop adds when asked for).
    case done
    /// The request's own reply payload.
    case reply([UInt8])
}

public final class Session {
    /// Protocol features this back-end implements fully. Not INBAND_NOTIFICATIONS (QEMU 7.2 lets
    /// bit 14 through its mask without implementing it) and not INFLIGHT_SHMFD (not yet).
    public static let implementedProtocolFeatures: ProtocolFeatures = [
        .multipleQueues, .logSharedMemory, .replyAck, .backendRequests, .resetDevice,
        .configureMemorySlots, .status,
    ]
    /// Memory slots offered with CONFIGURE_MEM_SLOTS (QEMU caps this at 256 on x86).
    public static let maxMemorySlots = 32

    public let id: UInt32
    public let device: any VhostUserDevice
    private let workers: [VringWorker]
    private let logger: Logger

    public private(set) var ackedFeatures: UInt64 = 0
    public private(set) var ackedProtocolFeatures: ProtocolFeatures = []
    private var status: UInt8 = 0
    private var backendChannel: OwnedFileDescriptor?
    private var rings: [Ring]

    /// Guest RAM as the front-end last described it, and the dirty log if one was given.
    private var memory = GuestMemory.empty
    private var log: DirtyLog?

    public init(id: UInt32, device: any VhostUserDevice, workers: [VringWorker], logger: Logger) {
        precondition(!workers.isEmpty, "a session needs at least one worker")
        self.id = id
        self.device = device
        self.workers = workers
        self.logger = logger
        rings = Array(repeating: Ring(), count: device.maxQueues)
    }

    public var offeredFeatures: UInt64 { device.features | VirtioFeature.protocolFeatures | VirtioFeature.logAll }
    public var offeredProtocolFeatures: ProtocolFeatures { Self.implementedProtocolFeatures.union(device.protocolFeatures) }
    public var replyAckEnabled: Bool { ackedProtocolFeatures.contains(.replyAck) }
    private var logging: Bool { ackedFeatures & VirtioFeature.logAll != 0 }

    /// The memory every running ring sees: guest RAM plus the log while logging is on. One object
    /// for all rings until either changes, so a device can tell "changed" by identity.
    private var effectiveMemory: GuestMemory {
        let wanted = logging ? log : nil
        if let e = effective, e.base === memory, e.memory.log === wanted { return e.memory }
        let fresh = memory.withLog(wanted)
        effective = (memory, fresh)
        return fresh
    }
    private var effective: (base: GuestMemory, memory: GuestMemory)?

    public func ringState(_ index: Int) -> String { rings[index].state.rawValue }

    // MARK: dispatch

    public func handle(_ message: FrontendMessage) throws(SessionError) -> SessionResponse {
        switch message {
        case .getFeatures:
            return .reply(encodeU64(offeredFeatures))
        case .setFeatures(let features):
            try setFeatures(features)
        case .setOwner:
            // Ownership is the connection itself: one front-end per device at a time.
            break
        case .resetOwner, .resetDevice:
            resetDevice()
        case .getProtocolFeatures:
            return .reply(encodeU64(offeredProtocolFeatures.rawValue))
        case .setProtocolFeatures(let raw):
            let requested = ProtocolFeatures(rawValue: raw)
            guard offeredProtocolFeatures.isSuperset(of: requested) else {
                throw .unsupportedProtocolFeatures(raw & ~offeredProtocolFeatures.rawValue)
            }
            ackedProtocolFeatures = requested
            logger.info("protocol features \(requested)")
        case .getQueueNum:
            return .reply(encodeU64(UInt64(device.maxQueues)))
        case .getMaxMemSlots:
            return .reply(encodeU64(UInt64(Self.maxMemorySlots)))
        case .setMemTable(let regions, let fds):
            try setMemoryTable(regions, fds)
        case .addMemReg(let region, let fd):
            try addRegion(region, fd)
        case .remMemReg(let region):
            try removeRegion(region)
        case .setLogBase(let description, let fd):
            try setLog(description, fd)
            // QEMU waits for a reply to SET_LOG_BASE (with LOG_SHMFD) and checks only its type.
            return .reply(encodeU64(0))
        case .setLogFD:
            // Optional log-call descriptor; QEMU never sends it. Keeping it changes nothing.
            break
        case .setVringNum(let state):
            let i = try ringIndex(state.index)
            try requireStopped(i)
            let max = UInt32(min(device.maxQueueSize, SplitQueue.maxSize))
            guard state.num > 0, state.num <= max, state.num & (state.num - 1) == 0 else { throw .invalidQueueSize(state.num) }
            rings[i].size = UInt16(state.num)
        case .setVringBase(let state):
            let i = try ringIndex(state.index)
            try requireStopped(i)
            // Split rings use the low 16 bits (the spec's packed-ring bits are not offered).
            rings[i].nextAvail = UInt16(truncatingIfNeeded: state.num)
        case .getVringBase(let state):
            let i = try ringIndex(state.index)
            let next = stopRing(i)
            return .reply(VringState(index: state.index, num: UInt32(next)).encoded)
        case .setVringAddr(let address):
            try setRingAddress(address)
        case .setVringKick(let index, let fd):
            let i = try ringIndex(index.index)
            // A new kick descriptor for a running ring: hand the ring back and forth so the worker
            // waits on the new one; the ring resumes where it was.
            pauseRing(i)
            rings[i].kick = fd
            rings[i].state = .started
            try startIfReady(i)
        case .setVringCall(let index, let fd):
            let i = try ringIndex(index.index)
            rings[i].call = fd
            if let w = rings[i].worker { workers[w].setCall(i, session: id, fd) }
        case .setVringErr(let index, let fd):
            let i = try ringIndex(index.index)
            rings[i].err = fd
            if let w = rings[i].worker { workers[w].setErr(i, session: id, fd) }
        case .setVringEnable(let state):
            let i = try ringIndex(state.index)
            guard state.num <= 1 else { throw .invalidEnableValue(state.num) }
            rings[i].enabled = state.num == 1
            if rings[i].enabled { try startIfReady(i) } else { pauseRing(i) }
        case .vringKick(let state):
            // In-band kicks need INBAND_NOTIFICATIONS, which is never offered.
            throw .unsupportedRequest(FrontendRequest.vringKick.specName + " (index \(state.index))")
        case .setBackendReqFD(let fd):
            backendChannel = fd
        case .getConfig(let access):
            guard let bytes = device.readConfig(offset: Int(access.offset), count: Int(access.size)),
                  bytes.count == Int(access.size) else {
                throw .configRange(offset: access.offset, size: access.size)
            }
            return .reply(ConfigAccess(offset: access.offset, size: access.size, flags: access.flags, payload: bytes).encoded)
        case .setConfig(let access):
            guard device.writeConfig(offset: Int(access.offset), bytes: access.payload) else { throw .configNotWritable }
        case .setStatus(let value):
            // SET_STATUS(0) also comes with every stop (VM pause), so it must not reset anything:
            // only RESET_DEVICE drops guest resources.
            status = UInt8(truncatingIfNeeded: value)
        case .getStatus:
            return .reply(encodeU64(UInt64(status)))
        case .getInflightFD, .setInflightFD:
            throw .unsupportedRequest("INFLIGHT_SHMFD")
        case .unsupported(let request):
            throw .unsupportedRequest(request.specName)
        case .unknown(let number):
            throw .unknownRequest(number)
        }
        return .done
    }

    /// The front-end went away: stop every ring and drop the guest's resources.
    public func disconnect() {
        for i in rings.indices { _ = stopRing(i) }
        device.reset()
        rings = Array(repeating: Ring(), count: device.maxQueues)
    }

    // MARK: features

    private func setFeatures(_ features: UInt64) throws(SessionError) {
        guard features & ~offeredFeatures == 0 else { throw .unsupportedFeatures(features & ~offeredFeatures) }
        let wasLogging = logging
        logger.info("features 0x\(String(features, radix: 16))")
        ackedFeatures = features
        // Without VHOST_USER_F_PROTOCOL_FEATURES rings are enabled from the start (spec, "Ring states").
        if features & VirtioFeature.protocolFeatures == 0 {
            for i in rings.indices { rings[i].enabled = true }
        }
        if wasLogging != logging {
            logger.info("dirty logging \(logging ? "on" : "off")")
            publishMemory()
        }
    }

    private func resetDevice() {
        for i in rings.indices {
            _ = stopRing(i)
            // Call and error descriptors are set once at QEMU's init and survive a reset.
            let (call, err) = (rings[i].call, rings[i].err)
            rings[i] = Ring()
            rings[i].call = call
            rings[i].err = err
        }
        ackedFeatures = 0
        status = 0
        device.reset()
        logger.info("device reset")
    }

    // MARK: memory

    /// The front-end's description of a region, in the memory layer's terms.
    private func guestRegion(_ d: MemoryRegionDescription) -> GuestMemoryRegion {
        GuestMemoryRegion(guestPhysicalAddress: d.guestPhysicalAddress, size: d.size, userAddress: d.userAddress, mmapOffset: d.mmapOffset)
    }

    private func mapRegion(_ d: MemoryRegionDescription, _ fd: OwnedFileDescriptor) throws(SessionError) -> MappedGuestRegion {
        let region = guestRegion(d)
        // The mapping must stay within the file: a region past the end of its memfd would fault
        // (SIGBUS) on first touch instead of failing here.
        if let fileSize = try? fd.fileSize(), fileSize > 0 {
            let (end, overflow) = d.mmapOffset.addingReportingOverflow(d.size)
            guard !overflow, end <= UInt64(fileSize) else {
                throw .invalidRegion("\(region) extends past the end of its file (\(fileSize) bytes)")
            }
        }
        do { return try MappedGuestRegion(region: region, descriptor: fd) } catch { throw .invalidRegion("\(error)") }
    }

    private func setMemoryTable(_ regions: [MemoryRegionDescription], _ fds: [OwnedFileDescriptor]) throws(SessionError) {
        var mapped: [MappedGuestRegion] = []
        for (d, fd) in zip(regions, fds) { mapped.append(try mapRegion(d, fd)) }
        do { memory = try GuestMemory(regions: mapped) } catch { throw .invalidRegion("\(error)") }
        logger.info("memory table: \(regions.count) region(s)", metadata: ["regions": "\(mapped.map { "\($0.region)" })"])
        publishMemory()
    }

    private func addRegion(_ d: MemoryRegionDescription, _ fd: OwnedFileDescriptor) throws(SessionError) {
        guard memory.regions.count < Self.maxMemorySlots else { throw .tooManyRegions(memory.regions.count + 1, limit: Self.maxMemorySlots) }
        let region = try mapRegion(d, fd)
        do { memory = try memory.adding(region) } catch { throw .invalidRegion("\(error)") }
        logger.info("memory region added: \(region.region)")
        publishMemory()
    }

    private func removeRegion(_ d: MemoryRegionDescription) throws(SessionError) {
        let region = guestRegion(d)
        guard let smaller = memory.removing(region) else { throw .noSuchRegion(d) }
        memory = smaller
        logger.info("memory region removed: \(region)")
        // Workers switch before the ack, so after it no ring reads the removed region.
        publishMemory()
    }

    private func setLog(_ d: LogDescription, _ fd: OwnedFileDescriptor) throws(SessionError) {
        guard ackedProtocolFeatures.contains(.logSharedMemory) else { throw .logNotNegotiated }
        let (end, overflow) = d.mmapOffset.addingReportingOverflow(d.mmapSize)
        guard d.mmapSize > 0, !overflow, end <= UInt64(Int.max) else { throw .invalidLog("size \(d.mmapSize) at offset \(d.mmapOffset)") }
        if let fileSize = try? fd.fileSize(), fileSize > 0, end > UInt64(fileSize) {
            throw .invalidLog("\(end) bytes needed, file has \(fileSize)")
        }
        do {
            // The new log is mapped before the old one is released (QEMU may resize mid-migration).
            let mapping = try MemoryMapping(descriptor: fd, length: Int(end))
            log = try DirtyLog(mapping: mapping, offset: Int(d.mmapOffset), size: Int(d.mmapSize))
        } catch {
            throw .invalidLog("\(error)")
        }
        logger.info("dirty log: \(d.mmapSize) bytes")
        publishMemory()
    }

    /// Hands the current memory to every worker running one of our rings, and waits.
    private func publishMemory() {
        let current = effectiveMemory
        for w in Set(rings.compactMap(\.worker)) { workers[w].updateMemory(current, session: id) }
    }

    // MARK: rings

    private func ringIndex(_ raw: UInt32) throws(SessionError) -> Int {
        guard raw < UInt32(rings.count) else { throw .queueIndexOutOfRange(raw, limit: rings.count) }
        return Int(raw)
    }

    private func requireStopped(_ i: Int) throws(SessionError) {
        guard rings[i].state != .running else { throw .ringRunning(i) }
    }

    private func setRingAddress(_ a: VringAddress) throws(SessionError) {
        let i = try ringIndex(a.index)
        let logUsed = a.flags & VringAddress.logFlag != 0
        if rings[i].state == .running, let old = rings[i].address {
            // While running, only the logging flag may change (QEMU toggles it around migration).
            guard old.descriptorUserAddress == a.descriptorUserAddress, old.availUserAddress == a.availUserAddress,
                  old.usedUserAddress == a.usedUserAddress else { throw .ringRunning(i) }
            rings[i].address = a
            if let w = rings[i].worker { workers[w].setUsedLogging(i, session: id, on: logUsed, address: a.logGuestAddress) }
            return
        }
        guard a.flags & ~VringAddress.logFlag == 0 else { throw .ringOutsideMemory(i, "unknown ring flags 0x\(String(a.flags, radix: 16))") }
        _ = try translate(a, size: rings[i].size ?? 1, ring: i)
        rings[i].address = a
        try startIfReady(i)
    }

    /// Ring addresses arrive as front-end virtual addresses; rings run on guest-physical ones.
    private func translate(_ a: VringAddress, size: UInt16, ring i: Int) throws(SessionError) -> VringAddresses {
        let n = UInt64(size)
        func gpa(_ ua: UInt64, _ length: UInt64, _ what: String) throws(SessionError) -> UInt64 {
            guard let g = memory.guestPhysical(userAddress: ua, length: length) else {
                throw .ringOutsideMemory(i, "\(what) at 0x\(String(ua, radix: 16)) (+\(length)) is outside guest memory")
            }
            return g
        }
        return VringAddresses(
            descriptorTable: try gpa(a.descriptorUserAddress, 16 * n, "descriptor table"),
            availRing: try gpa(a.availUserAddress, 6 + 2 * n, "available ring"),
            usedRing: try gpa(a.usedUserAddress, 6 + 8 * n, "used ring"),
            logUsed: a.flags & VringAddress.logFlag != 0,
            usedLogAddress: a.logGuestAddress)
    }

    /// Attaches ring `i` to its worker once it is started, enabled and fully described.
    private func startIfReady(_ i: Int) throws(SessionError) {
        let ring = rings[i]
        guard ring.state == .started, ring.enabled, let size = ring.size, let address = ring.address else { return }
        let addresses = try translate(address, size: size, ring: i)
        let queue: SplitQueue
        do {
            queue = try SplitQueue(size: size, addresses: addresses, memory: effectiveMemory, nextAvail: ring.nextAvail,
                                   eventIndex: ackedFeatures & VirtioFeature.eventIndex != 0,
                                   indirect: ackedFeatures & VirtioFeature.indirectDescriptors != 0)
        } catch {
            throw .ringOutsideMemory(i, "\(error)")
        }
        let w = device.worker(forQueue: i, workerCount: workers.count) % workers.count
        let attachment = RingAttachment(key: RingKey(session: id, index: i), queue: queue,
                                        handler: device.makeQueueHandler(queue: i, features: ackedFeatures),
                                        kick: ring.kick, call: ring.call, err: ring.err)
        _ = workers[w].attach(attachment)
        rings[i].worker = w
        rings[i].state = .running
        logger.info("queue \(i) running", metadata: ["size": "\(size)", "avail": "\(ring.nextAvail)", "worker": "\(w)"])
    }

    /// Takes ring `i` off its worker, keeping its position, but leaves it started (disable).
    private func pauseRing(_ i: Int) {
        guard let w = rings[i].worker else { return }
        if let next = workers[w].detach(RingKey(session: id, index: i)) { rings[i].nextAvail = next }
        rings[i].worker = nil
        rings[i].state = .started
    }

    /// GET_VRING_BASE: stop ring `i` and return where the guest should resume.
    private func stopRing(_ i: Int) -> UInt16 {
        pauseRing(i)
        rings[i].state = .stopped
        rings[i].kick = nil
        return rings[i].nextAvail
    }
}
