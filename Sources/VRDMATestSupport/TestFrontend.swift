// SPDX-License-Identifier: Apache-2.0
// An in-process vhost-user front-end that behaves like QEMU 7.2: memfd guest RAM split into two
// regions of one file (below and above 4 GiB, as QEMU's pc machine does), real split rings,
// kick/call/err eventfds, and QEMU's message sequences for realize, start, stop, guest reset and
// migration logging. It checks every reply the way QEMU does (flags exactly 0x5, exact sizes).
// Test double only: linked by tests, fuzzing and benchmarks.
import Glibc
import LinuxSystem
import VhostUser
import VirtQueue

public enum FrontendError: Error, Equatable, CustomStringConvertible {
    case badReply(String)
    case closed
    case failed(FrontendRequest)
    case system(SystemError)

    public var description: String {
        switch self {
        case .badReply(let why): "bad reply: \(why)"
        case .closed: "the back-end closed the connection"
        case .failed(let r): "the back-end failed \(r.specName)"
        case .system(let e): "\(e)"
        }
    }
}

/// One virtqueue as the guest driver and QEMU see it.
public final class TestQueue {
    public let index: Int
    public let ring: SplitRingDriver
    public let kick: EventFD
    public let call: EventFD
    public let err: EventFD

    init(index: Int, ring: SplitRingDriver) throws(SystemError) {
        self.index = index
        self.ring = ring
        kick = try EventFD()
        call = try EventFD()
        err = try EventFD()
    }

    /// Kicks sent so far: a busy device that polls should make this stop growing.
    public private(set) var kicks = 0

    /// Notifies the device if the ring's suppression state asks for it (the guest's rule).
    public func kickIfNeeded() {
        if ring.needsKick() {
            kicks += 1
            kick.signal()
        }
    }

    /// Waits up to `milliseconds` for the device to signal `fd`; consumes the signal.
    public static func wait(_ fd: EventFD, milliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, milliseconds) == 1 else { return false }
        return fd.drain() != nil
    }

    public func waitForCall(milliseconds: Int32 = 5000) -> Bool { Self.wait(call, milliseconds: milliseconds) }
    public func waitForError(milliseconds: Int32 = 5000) -> Bool { Self.wait(err, milliseconds: milliseconds) }
}

public final class TestFrontend {
    /// QEMU 7.2 masks protocol features to bits 0...16 (VHOST_USER_PROTOCOL_F_MAX = 17).
    public static let qemuProtocolMask: UInt64 = (1 << 17) - 1
    public static let userBase: UInt64 = 0x7f00_0000_0000

    public let connection: VhostUserConnection
    public let ramFile: OwnedFileDescriptor
    public private(set) var regions: [MemoryRegionDescription]
    /// The front-end's own mapping of guest RAM, for laying out rings and buffers.
    public private(set) var memory: GuestMemory
    public private(set) var protocolFeatures = ProtocolFeatures()
    public private(set) var features: UInt64 = 0
    public private(set) var queues: [Int: TestQueue] = [:]
    public private(set) var logFile: OwnedFileDescriptor?
    public private(set) var logMapping: MemoryMapping?
    /// Regions the back-end has been told about (QEMU diffs against this with CONFIGURE_MEM_SLOTS).
    public private(set) var sentRegions: [MemoryRegionDescription] = []
    private var nextFree: UInt64 = 0x10_0000  // leave the first MiB alone, like firmware would
    private var backendChannel: (OwnedFileDescriptor, OwnedFileDescriptor)?

    /// Guest RAM of `lowSize` bytes at GPA 0 and `highSize` at 4 GiB, both in one memfd.
    public init(socket: OwnedFileDescriptor, lowSize: UInt64 = 16 << 20, highSize: UInt64 = 4 << 20) throws(FrontendError) {
        connection = VhostUserConnection(socket: socket)
        do {
            ramFile = try MemFD.create(name: "guest-ram", size: Int(lowSize + highSize))
            regions = [
                MemoryRegionDescription(guestPhysicalAddress: 0, size: lowSize, userAddress: Self.userBase, mmapOffset: 0),
                MemoryRegionDescription(guestPhysicalAddress: 1 << 32, size: highSize,
                                        userAddress: Self.userBase + lowSize, mmapOffset: lowSize),
            ]
            let mapping = try MemoryMapping(descriptor: ramFile, length: Int(lowSize + highSize))
            memory = try GuestMemory(regions: regions.map { r throws(GuestMemoryError) in
                try MappedGuestRegion(region: Self.guestRegion(r), mapping: mapping)
            })
        } catch let e as SystemError {
            throw .system(e)
        } catch {
            throw .badReply("guest memory set-up: \(error)")
        }
    }

    public convenience init(path: String, lowSize: UInt64 = 16 << 20, highSize: UInt64 = 4 << 20) throws(FrontendError) {
        let socket: OwnedFileDescriptor
        do { socket = try UnixSocket.connect(path: path) } catch { throw .system(error) }
        try self.init(socket: socket, lowSize: lowSize, highSize: highSize)
    }

    /// Runs set-up work whose failures are the test harness's, not the back-end's.
    private func harness<T>(_ body: () throws -> T) throws(FrontendError) -> T {
        do { return try body() } catch let e as FrontendError {
            throw e
        } catch let e as SystemError {
            throw .system(e)
        } catch {
            throw .badReply("\(error)")
        }
    }

    static func guestRegion(_ d: MemoryRegionDescription) -> GuestMemoryRegion {
        GuestMemoryRegion(guestPhysicalAddress: d.guestPhysicalAddress, size: d.size, userAddress: d.userAddress, mmapOffset: d.mmapOffset)
    }

    /// Guest-physical → front-end virtual address (what SET_VRING_ADDR carries).
    public func userAddress(of gpa: UInt64) -> UInt64 {
        for r in regions where gpa >= r.guestPhysicalAddress && gpa - r.guestPhysicalAddress < r.size {
            return r.userAddress + (gpa - r.guestPhysicalAddress)
        }
        preconditionFailure("0x\(String(gpa, radix: 16)) is not guest RAM")
    }

    /// A page-aligned chunk of low guest RAM (bump allocator: tests are short-lived).
    public func allocate(_ size: UInt64, alignment: UInt64 = 4096) -> UInt64 {
        let start = (nextFree + alignment - 1) & ~(alignment - 1)
        precondition(start + size <= regions[0].size, "test guest RAM exhausted")
        nextFree = start + size
        return start
    }

    // MARK: raw messages

    /// Sends one request. Returns the reply payload when the request has one (or asked for an ack).
    @discardableResult
    public func request(_ request: FrontendRequest, payload: [UInt8] = [], descriptors: [Int32] = [],
                        needReply: Bool = false) throws(FrontendError) -> [UInt8]? {
        let ownReply: Bool = switch request {
        case .getFeatures, .getProtocolFeatures, .getQueueNum, .getMaxMemSlots, .getVringBase, .getConfig, .getStatus,
             .getInflightFD:
            true
        case .setLogBase: protocolFeatures.contains(.logSharedMemory)
        default: false
        }
        let wantAck = needReply && protocolFeatures.contains(.replyAck) && !ownReply
        try send(request.rawValue, flags: MessageHeader.version | (needReply ? MessageHeader.needReplyFlag : 0),
                 payload: payload, descriptors: descriptors)
        guard ownReply || wantAck else { return nil }
        let reply = try receiveReply(to: request)
        if wantAck {
            guard reply.count == 8 else { throw .badReply("\(request.specName) ack of \(reply.count) bytes") }
            if ByteReader(reply).readU64() != 0 { throw .failed(request) }
        }
        return reply
    }

    public func send(_ request: UInt32, flags: UInt32, payload: [UInt8], descriptors: [Int32] = []) throws(FrontendError) {
        do { try connection.send(request: request, flags: flags, payload: payload, descriptors: descriptors) } catch {
            if case .system(let e) = error, e.errno == EPIPE || e.errno == ECONNRESET { throw .closed }
            throw .badReply("\(error)")
        }
    }

    /// Reads a reply and checks it as QEMU's vhost_user_read_header does.
    public func receiveReply(to request: FrontendRequest) throws(FrontendError) -> [UInt8] {
        let message: ReceivedMessage?
        do { message = try connection.receive() } catch { throw .badReply("\(error)") }
        guard let message else { throw .closed }
        do { try message.header.validateAsReply(to: request.rawValue) } catch { throw .badReply("\(request.specName): \(error)") }
        return message.payload
    }

    /// True if the back-end closes the connection within `milliseconds` (after a protocol error).
    public func waitForDisconnect(milliseconds: Int32 = 5000) -> Bool {
        var p = pollfd(fd: connection.socket.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, milliseconds) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(connection.socket.rawValue, &byte, 1, Int32(MSG_PEEK)) <= 0
    }

    private func u64Reply(_ r: FrontendRequest) throws(FrontendError) -> UInt64 {
        guard let reply = try request(r), reply.count == 8 else { throw .badReply("\(r.specName) reply is not 8 bytes") }
        return ByteReader(reply).readU64()
    }

    // MARK: typed requests

    public func getFeatures() throws(FrontendError) -> UInt64 { try u64Reply(.getFeatures) }
    public func getProtocolFeatures() throws(FrontendError) -> ProtocolFeatures { ProtocolFeatures(rawValue: try u64Reply(.getProtocolFeatures)) }
    public func getQueueNum() throws(FrontendError) -> UInt64 { try u64Reply(.getQueueNum) }
    public func getMaxMemSlots() throws(FrontendError) -> UInt64 { try u64Reply(.getMaxMemSlots) }
    public func getStatus() throws(FrontendError) -> UInt64 { try u64Reply(.getStatus) }

    public func setProtocolFeatures(_ f: ProtocolFeatures) throws(FrontendError) {
        try request(.setProtocolFeatures, payload: encodeU64(f.rawValue))
        protocolFeatures = f
    }

    public func setFeatures(_ f: UInt64, needReply: Bool = false) throws(FrontendError) {
        try request(.setFeatures, payload: encodeU64(f), needReply: needReply)
        features = f
    }

    public func getConfig(offset: UInt32 = 0, size: UInt32) throws(FrontendError) -> [UInt8]? {
        let access = ConfigAccess(offset: offset, size: size, flags: 0, payload: [UInt8](repeating: 0, count: Int(size)))
        let reply = try request(.getConfig, payload: access.encoded)!
        if reply.isEmpty { return nil }  // the back-end's way of saying "no"
        guard reply.count == ConfigAccess.headerSize + Int(size) else { throw .badReply("GET_CONFIG reply of \(reply.count) bytes") }
        return Array(reply[ConfigAccess.headerSize...])
    }

    public func setMemTable() throws(FrontendError) {
        try request(.setMemTable, payload: MemoryTablePayload.encode(regions),
                    descriptors: Array(repeating: ramFile.rawValue, count: regions.count), needReply: true)
        sentRegions = regions
    }

    /// What QEMU 7.2's vhost_user_set_mem_table does: with CONFIGURE_MEM_SLOTS, REM_MEM_REG for
    /// regions that went away and ADD_MEM_REG for new ones, each acked; else one SET_MEM_TABLE.
    public func syncMemory() throws(FrontendError) {
        guard protocolFeatures.contains(.configureMemorySlots) else { return try setMemTable() }
        for d in sentRegions where !regions.contains(d) {
            try request(.remMemReg, payload: SingleRegionPayload.encode(d), needReply: true)
        }
        for d in regions where !sentRegions.contains(d) {
            try request(.addMemReg, payload: SingleRegionPayload.encode(d), descriptors: [ramFile.rawValue], needReply: true)
        }
        sentRegions = regions
    }

    /// Hot-adds guest RAM backed by a new memfd (ADD_MEM_REG); returns its guest-physical address.
    @discardableResult
    public func addRegion(guestPhysicalAddress gpa: UInt64, size: UInt64) throws(FrontendError) -> MemoryRegionDescription {
        try harness {
            let fd = try MemFD.create(name: "hotplug", size: Int(size))
            let ua = Self.userBase + 0x10_0000_0000 + gpa
            let d = MemoryRegionDescription(guestPhysicalAddress: gpa, size: size, userAddress: ua, mmapOffset: 0)
            try request(.addMemReg, payload: SingleRegionPayload.encode(d), descriptors: [fd.rawValue], needReply: true)
            let mapping = try MemoryMapping(descriptor: fd, length: Int(size))
            memory = try memory.adding(MappedGuestRegion(region: Self.guestRegion(d), mapping: mapping))
            regions.append(d)
            sentRegions.append(d)
            return d
        }
    }

    public func removeRegion(_ d: MemoryRegionDescription) throws(FrontendError) {
        try request(.remMemReg, payload: SingleRegionPayload.encode(d), needReply: true)
        regions.removeAll { $0 == d }
        sentRegions.removeAll { $0 == d }
        if let smaller = memory.removing(Self.guestRegion(d)) { memory = smaller }
    }

    /// Lays out queue `index` in guest RAM (the guest driver's part of queue set-up).
    @discardableResult
    public func makeQueue(_ index: Int, size: UInt16, eventIndex: Bool) throws(FrontendError) -> TestQueue {
        let base = allocate(SplitRingDriver.footprint(size: size))
        let ring = SplitRingDriver(memory: memory, baseAddress: base, size: size, eventIndex: eventIndex)
        do { queues[index] = try TestQueue(index: index, ring: ring) } catch { throw .system(error) }
        return queues[index]!
    }

    public func vringAddress(_ q: TestQueue, log: Bool = false) -> VringAddress {
        VringAddress(index: UInt32(q.index), flags: log ? VringAddress.logFlag : 0,
                     descriptorUserAddress: userAddress(of: q.ring.addresses.descriptorTable),
                     usedUserAddress: userAddress(of: q.ring.addresses.usedRing),
                     availUserAddress: userAddress(of: q.ring.addresses.availRing),
                     logGuestAddress: q.ring.addresses.usedRing)
    }

    public func setVringFD(_ request: FrontendRequest, index: Int, fd: EventFD?, needReply: Bool = false) throws(FrontendError) {
        let arg = VringDescriptorIndex(index: UInt32(index), hasDescriptor: fd != nil)
        try self.request(request, payload: encodeU64(arg.rawValue), descriptors: fd.map { [$0.descriptor.rawValue] } ?? [],
                         needReply: needReply)
    }

    public func getVringBase(_ index: Int) throws(FrontendError) -> UInt16 {
        let reply = try request(.getVringBase, payload: VringState(index: UInt32(index), num: 0).encoded)!
        guard reply.count == 8 else { throw .badReply("GET_VRING_BASE reply of \(reply.count) bytes") }
        var r = ByteReader(reply)
        let state = VringState(&r)
        guard state.index == UInt32(index) else { throw .badReply("GET_VRING_BASE for queue \(state.index)") }
        return UInt16(truncatingIfNeeded: state.num)
    }

    // MARK: QEMU 7.2 sequences (hw/virtio/vhost.c, vhost-user.c; see shared/reference/vhost-user.md §2)

    /// Device realize: negotiation, owner, per-queue call/err descriptors, config read.
    /// Returns the config space bytes.
    @discardableResult
    public func realize(queueCount: Int, configSize: UInt32) throws(FrontendError) -> [UInt8] {
        let offered = try getFeatures()
        guard offered & VirtioFeature.protocolFeatures != 0 else { throw .badReply("no VHOST_USER_F_PROTOCOL_FEATURES") }
        let negotiated = ProtocolFeatures(rawValue: try getProtocolFeatures().rawValue & Self.qemuProtocolMask)
        try setProtocolFeatures(negotiated)
        if negotiated.contains(.multipleQueues) {
            guard try getQueueNum() >= UInt64(queueCount) else { throw .badReply("too few queues") }
        }
        if negotiated.contains(.configureMemorySlots) { _ = try getMaxMemSlots() }
        if negotiated.contains(.backendRequests) {
            do { backendChannel = try UnixSocket.pair() } catch { throw .system(error) }
            try request(.setBackendReqFD, descriptors: [backendChannel!.1.rawValue], needReply: true)
        }
        try request(.setOwner)
        _ = try getFeatures()
        for i in 0..<queueCount {
            // QEMU's "masked notifier" until the guest unmasks the vector.
            let masked = try? EventFD()
            try setVringFD(.setVringCall, index: i, fd: masked)
            // Queues laid out before realize get their own error descriptor, so tests can see it fire.
            try setVringFD(.setVringErr, index: i, fd: queues[i]?.err ?? (try? EventFD()))
        }
        guard let config = try getConfig(size: configSize) else { throw .badReply("GET_CONFIG failed") }
        return config
    }

    /// The guest set DRIVER_OK: vhost_dev_start for the queues it set up, then unmask.
    public func start(features guestFeatures: UInt64, queues indices: [Int]) throws(FrontendError) {
        let logging = guestFeatures & VirtioFeature.logAll != 0
        try setFeatures(guestFeatures | VirtioFeature.protocolFeatures, needReply: logging)
        if protocolFeatures.contains(.status) {
            let status = try getStatus()
            try request(.setStatus, payload: encodeU64(status | 0x8))  // FEATURES_OK
        }
        try syncMemory()
        for i in indices {
            guard let q = queues[i] else { preconditionFailure("queue \(i) was not laid out") }
            try request(.setVringNum, payload: VringState(index: UInt32(i), num: UInt32(q.ring.size)).encoded)
            try request(.setVringBase, payload: VringState(index: UInt32(i), num: UInt32(q.ring.availIndex)).encoded)
            try request(.setVringAddr, payload: vringAddress(q, log: logging).encoded, needReply: logging)
            try setVringFD(.setVringKick, index: i, fd: q.kick)
        }
        // Rings start disabled under PROTOCOL_FEATURES; the device model enables every one.
        for i in indices { try request(.setVringEnable, payload: VringState(index: UInt32(i), num: 1).encoded) }
        for i in indices { try setVringFD(.setVringCall, index: i, fd: queues[i]!.call) }
    }

    /// VM stop or guest driver reset: vhost_dev_stop. Returns each queue's next available index.
    @discardableResult
    public func stop(queues indices: [Int]) throws(FrontendError) -> [Int: UInt16] {
        var bases: [Int: UInt16] = [:]
        for i in indices { bases[i] = try getVringBase(i) }
        return bases
    }

    /// The guest reset the device: stop, then RESET_DEVICE from the device model's reset hook.
    public func guestReset(queues indices: [Int]) throws(FrontendError) {
        try stop(queues: indices)
        try request(.resetDevice)
        features = 0
    }

    /// Migration begins: SET_LOG_BASE (waits for its reply), SET_FEATURES|LOG_ALL, ring addresses
    /// with the LOG flag. Returns the log mapping for inspection.
    @discardableResult
    public func startLogging(queues indices: [Int]) throws(FrontendError) -> MemoryMapping {
        let top = regions.map { $0.guestPhysicalAddress + $0.size }.max() ?? 0
        // One bit per 4 KiB page, allocated in 8-byte chunks as QEMU's vhost_log_alloc does.
        let size = ((top / 4096 + 63) / 64) * 8
        return try harness {
            let fd = try MemFD.create(name: "vhost-log", size: Int(size))
            let map = try MemoryMapping(descriptor: fd, length: Int(size))
            try request(.setLogBase, payload: LogDescription(mmapSize: size, mmapOffset: 0).encoded, descriptors: [fd.rawValue])
            logFile = fd
            logMapping = map
            try setFeatures(features | VirtioFeature.logAll, needReply: true)
            for i in indices { try request(.setVringAddr, payload: vringAddress(queues[i]!, log: true).encoded, needReply: true) }
            return map
        }
    }

    /// Migration cancelled: logging off again.
    public func stopLogging(queues indices: [Int]) throws(FrontendError) {
        try setFeatures(features & ~VirtioFeature.logAll, needReply: true)
        for i in indices { try request(.setVringAddr, payload: vringAddress(queues[i]!, log: false).encoded, needReply: true) }
    }

    /// Whether the dirty log has the bit for guest-physical page `gpa / 4096`.
    public func isDirty(gpa: UInt64) -> Bool {
        guard let map = logMapping else { return false }
        let page = gpa / 4096
        guard page / 8 < UInt64(map.length) else { return false }
        return map.base.load(fromByteOffset: Int(page / 8), as: UInt8.self) & (1 << UInt8(page % 8)) != 0
    }

    public func clearLog() {
        guard let map = logMapping else { return }
        memset(map.base, 0, map.length)
    }
}

extension ByteReader {
    func readU64() -> UInt64 { var r = self; return r.read() }
}
