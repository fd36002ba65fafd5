// SPDX-License-Identifier: Apache-2.0
// The model guest driver's verbs layer, control side: one VerbsDevice per "VM" (a TestFrontend and
// a ModelDriver over a vhost-user socket), its event queue, guest pages and page lists, and the
// objects the control commands create (contexts, PDs, MRs, AHs). Rings and queue pairs are in
// VerbsRings.swift. Everything is done as a guest driver would: structures written into the
// driver's own guest RAM, commands on the control virtqueue, events from virtqueue 1.
// Single-threaded like the rest of the test doubles: one test thread drives one device.
import CVRDMAABI
import Glibc
import LinuxSystem
import VirtQueue

// MARK: guest pages

/// Pages of guest RAM owned by the model driver, with host pointers for the driver's CPU accesses.
/// Byte `k` of the buffer is at offset `firstOffset + k` of the page run.
public final class GuestPages {
    public static let pageSize = Int(VIRTIO_RDMA_PAGE_SIZE)
    public let gpas: [UInt64]
    @usableFromInline let pointers: [UnsafeMutableRawPointer]
    public let firstOffset: Int
    public let length: Int

    init(gpas: [UInt64], memory: GuestMemory, firstOffset: Int = 0, length: Int? = nil) {
        self.gpas = gpas
        pointers = gpas.map { gpa in
            guard let p = memory.hostPointer(gpa: gpa, length: UInt64(GuestPages.pageSize)) else {
                preconditionFailure("page 0x\(String(gpa, radix: 16)) is not guest RAM")
            }
            return p
        }
        self.firstOffset = firstOffset
        self.length = length ?? (gpas.count * GuestPages.pageSize - firstOffset)
    }

    /// Host pointer of byte `offset` (the caller keeps accesses inside that page).
    @inlinable
    public func pointer(at offset: Int) -> UnsafeMutableRawPointer {
        let o = firstOffset + offset
        return pointers[o >> 12] + (o & (GuestPages.pageSize - 1))
    }

    /// Guest-physical address of byte `offset`.
    public func gpa(at offset: Int) -> UInt64 {
        let o = firstOffset + offset
        return gpas[o >> 12] + UInt64(o & (GuestPages.pageSize - 1))
    }

    public func write(_ bytes: [UInt8], at offset: Int = 0) {
        bytes.withUnsafeBytes { write($0, at: offset) }
    }

    public func write(_ src: UnsafeRawBufferPointer, at offset: Int) {
        precondition(offset >= 0 && offset + src.count <= length, "write outside the buffer")
        var done = 0
        while done < src.count {
            let o = firstOffset + offset + done
            let n = min(src.count - done, GuestPages.pageSize - (o & (GuestPages.pageSize - 1)))
            pointer(at: offset + done).copyMemory(from: src.baseAddress! + done, byteCount: n)
            done += n
        }
    }

    public func read(_ count: Int, at offset: Int = 0) -> [UInt8] {
        precondition(offset >= 0 && offset + count <= length, "read outside the buffer")
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { dst in
            var done = 0
            while done < count {
                let o = firstOffset + offset + done
                let n = min(count - done, GuestPages.pageSize - (o & (GuestPages.pageSize - 1)))
                (dst.baseAddress! + done).copyMemory(from: pointer(at: offset + done), byteCount: n)
                done += n
            }
        }
        return out
    }

    public func fill(_ byte: UInt8) { write([UInt8](repeating: byte, count: length)) }

    /// Little-endian integer at `offset` (must not cross a page).
    public func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: pointer(at: offset).loadUnaligned(as: T.self))
    }

    public func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        pointer(at: offset).storeBytes(of: value.littleEndian, as: T.self)
    }
}

// MARK: the device

/// One virtio-rdma device as its guest driver sees it: brought up, event buffers posted.
public final class VerbsDevice {
    public let frontend: TestFrontend
    public let driver: ModelDriver
    public private(set) var attributes = virtio_rdma_rsp_query_device()
    public private(set) var config = virtio_rdma_config()
    /// The GIDs this driver put in the port's table (index 0: the default the device derives).
    public private(set) var gids: [Int: GID] = [:]
    /// The GID index RC and UD helpers use by default (1 if `roceGID` was added, else 0).
    public var defaultGIDIndex: UInt8
    /// Context 0, the kernel's: always exists.
    public private(set) lazy var kernel = VerbsContext(device: self, handle: 0)

    /// Doorbell-queue kicks the driver sent (need_kick was set, or a raw kick).
    public internal(set) var doorbellKicks = 0
    /// Posts that found need_kick clear (the device was polling).
    public internal(set) var suppressedKicks = 0

    private var highNext: UInt64
    /// Next user-space-looking IOVA for MRs (a gap page between regions).
    private var nextUserIOVA: UInt64 = 0x7f3a_0000_0000
    private var eventBuffers: [UInt16: UInt64] = [:]
    /// Events read from the event queue and not yet taken by a test.
    public private(set) var pendingEvents: [DeviceEvent] = []
    /// Interrupts (call eventfd signals) seen on the event queue.
    public private(set) var eventInterrupts = 0

    public var nodeGUID: UInt64 { UInt64(littleEndian: attributes.node_guid) }
    /// Virtqueue 1 (nil if the driver set up only the control queue).
    public var eventQueue: TestQueue? { frontend.queues[Int(VIRTIO_RDMA_VQ_EVENT)] }

    /// Connects to `socketPath`, brings the device up, reads config and QUERY_DEVICE, posts
    /// `eventBuffers` event buffers and, with `roceGID`, adds it at GID index 1.
    public init(socketPath: String, queueCount: Int = 4, lowMiB: UInt64 = 48, highMiB: UInt64 = 4,
                eventBuffers: Int = 48, roceGID: GID? = nil) throws(VerbsError) {
        do {
            frontend = try TestFrontend(path: socketPath, lowSize: lowMiB << 20, highSize: highMiB << 20)
            driver = try ModelDriver(frontend: frontend, queueCount: queueCount, queueSize: 64)
            try driver.bringUp()
        } catch {
            throw .frontend(error)
        }
        highNext = frontend.regions[1].guestPhysicalAddress
        defaultGIDIndex = 0
        config = decode(virtio_rdma_config.self, from: driver.config)
        attributes = decode(virtio_rdma_rsp_query_device.self, from: try execute(.queryDevice, responseSize: 136))
        gids[0] = GID.linkLocal(guid: nodeGUID)
        postEventBuffers(eventBuffers)
        if let roceGID {
            try addGID(index: 1, gid: roceGID)
            defaultGIDIndex = 1
        }
    }

    // MARK: commands

    /// One command as bytes: status, response body and used length, whatever they are.
    public func rawCommand(_ opcode: UInt32, request: [UInt8] = [], responseSize: Int, timeoutMilliseconds: Int32 = 5000,
                           headerReserved: UInt32 = 0) throws(VerbsError) -> ModelDriver.Reply {
        do {
            return try driver.command(opcode, request: request, responseSize: responseSize, timeoutMilliseconds: timeoutMilliseconds,
                                      headerReserved: headerReserved)
        } catch {
            throw .frontend(error)
        }
    }

    /// One command; throws `.command(op, status)` unless the device answers OK with exactly the
    /// response size (used length = 8 + size, as the header demands).
    @discardableResult
    public func execute(_ op: Opcode, request: [UInt8] = [], responseSize: Int, timeoutMilliseconds: Int32 = 5000) throws(VerbsError) -> [UInt8] {
        let reply = try rawCommand(op.rawValue, request: request, responseSize: responseSize, timeoutMilliseconds: timeoutMilliseconds)
        let status = CommandStatus(rawValue: reply.status)
        guard status == .ok else { throw .command(op, status) }
        let expected = UInt32(MemoryLayout<virtio_rdma_resp_hdr>.size + responseSize)
        guard reply.usedLength == expected else {
            throw .protocolViolation("\(op) answered OK with used length \(reply.usedLength), expected \(expected)")
        }
        return reply.body
    }

    /// The status of one command given as raw bytes (hostile tests).
    public func status(of op: Opcode, request: [UInt8], responseSize: Int = 0) throws(VerbsError) -> CommandStatus {
        CommandStatus(rawValue: try rawCommand(op.rawValue, request: request, responseSize: responseSize).status)
    }

    public func queryDevice() throws(VerbsError) -> virtio_rdma_rsp_query_device {
        decode(virtio_rdma_rsp_query_device.self, from: try execute(.queryDevice, responseSize: 136))
    }

    public func queryPort(_ port: UInt32 = 1) throws(VerbsError) -> virtio_rdma_rsp_query_port {
        var r = virtio_rdma_cmd_query_port()
        r.port = port.littleEndian
        return decode(virtio_rdma_rsp_query_port.self, from: try execute(.queryPort, request: bytes(of: r), responseSize: 32))
    }

    public func queryPKey(index: UInt32, port: UInt32 = 1) throws(VerbsError) -> UInt16 {
        var r = virtio_rdma_cmd_query_pkey()
        r.port = port.littleEndian
        r.index = index.littleEndian
        let body = try execute(.queryPKey, request: bytes(of: r), responseSize: 8)
        return UInt16(littleEndian: decode(virtio_rdma_rsp_query_pkey.self, from: body).pkey)
    }

    public func addGID(index: UInt32, gid: GID, type: UInt32 = UInt32(VIRTIO_RDMA_GID_ROCE_V2), mac: [UInt8]? = nil,
                       port: UInt32 = 1) throws(VerbsError) {
        var r = virtio_rdma_cmd_gid()
        r.port = port.littleEndian
        r.index = index.littleEndian
        withUnsafeMutableBytes(of: &r.gid) { $0.copyBytes(from: gid.bytes) }
        r.type = type.littleEndian
        let m = mac ?? withUnsafeBytes(of: config.mac) { Array($0) }
        withUnsafeMutableBytes(of: &r.mac) { $0.copyBytes(from: m) }
        try execute(.addGID, request: bytes(of: r), responseSize: 0)
        gids[Int(index)] = gid
    }

    public func delGID(index: UInt32, port: UInt32 = 1) throws(VerbsError) {
        var r = virtio_rdma_cmd_gid()
        r.port = port.littleEndian
        r.index = index.littleEndian
        try execute(.delGID, request: bytes(of: r), responseSize: 0)
        gids[Int(index)] = nil
    }

    public func gid(at index: UInt8) -> GID {
        guard let g = gids[Int(index)] else { preconditionFailure("no GID at index \(index) on this driver") }
        return g
    }

    /// A context object for any handle, minted or not (hostile tests name contexts that do not exist).
    public func context(handle: UInt32) -> VerbsContext { VerbsContext(device: self, handle: handle) }

    public func createContext() throws(VerbsError) -> VerbsContext {
        let body = try execute(.createUContext, responseSize: 8)
        return VerbsContext(device: self, handle: UInt32(littleEndian: decode(virtio_rdma_rsp_create_ucontext.self, from: body).ctx_handle))
    }

    /// A command that names one object (DESTROY_*, DEALLOC_PD, DEREG_MR, QUERY_QP, QUERY_SRQ).
    public func handleCommand(_ op: Opcode, _ handle: UInt32, responseSize: Int = 0) throws(VerbsError) -> [UInt8] {
        var r = virtio_rdma_cmd_handle()
        r.handle = handle.littleEndian
        return try execute(op, request: bytes(of: r), responseSize: responseSize)
    }

    /// MODIFY_QP for any QPN (hostile tests name QPs that do not exist).
    public func modifyQP(qpn: UInt32, _ attrs: QPAttributes) throws(VerbsError) {
        try execute(.modifyQP, request: bytes(of: attrs.raw(qpn: qpn)), responseSize: 0)
    }

    public func queryQP(qpn: UInt32) throws(VerbsError) -> QPInfo {
        QPInfo(decode(virtio_rdma_qp_attr.self, from: try handleCommand(.queryQP, qpn, responseSize: MemoryLayout<virtio_rdma_qp_attr>.size)))
    }

    // MARK: guest memory

    /// An IOVA range no other MR of this driver uses, `pageOffset` bytes into its first page.
    public func userIOVA(length: Int, pageOffset: Int = 0) -> UInt64 {
        let va = nextUserIOVA + UInt64(pageOffset & 4095)
        nextUserIOVA += (UInt64(pageOffset & 4095 + length) + 4095) / 4096 * 4096 + 4096
        return va
    }

    /// `count` pages of zeroed guest RAM laid out as asked.
    public func allocatePages(_ count: Int, layout: PageLayout = .contiguous) -> [UInt64] {
        precondition(count > 0)
        let page = UInt64(GuestPages.pageSize)
        switch layout {
        case .contiguous:
            let base = frontend.allocate(UInt64(count) * page)
            return (0..<count).map { base + UInt64($0) * page }
        case .scattered:
            // Page, hole, page, hole... handed out last first.
            return (0..<count).map { _ in frontend.allocate(2 * page) }.reversed()
        case .high:
            let region = frontend.regions[1]
            precondition(highNext + UInt64(count) * page <= region.guestPhysicalAddress + region.size, "high guest RAM exhausted")
            let base = highNext
            highNext += UInt64(count) * page
            return (0..<count).map { base + UInt64($0) * page }
        }
    }

    public func pages(_ count: Int, layout: PageLayout = .contiguous, firstOffset: Int = 0, length: Int? = nil) -> GuestPages {
        GuestPages(gpas: allocatePages(count, layout: layout), memory: frontend.memory, firstOffset: firstOffset, length: length)
    }

    /// Writes `entries` as a page list (a contiguous __le64 array; with `indirect`, second-level
    /// pages of 512 entries and a first-level array of their addresses). npages = entries.count.
    public func writePageList(_ entries: [UInt64], indirect: Bool = false) -> virtio_rdma_page_list {
        var list = virtio_rdma_page_list()
        list.npages = UInt32(truncatingIfNeeded: entries.count).littleEndian
        list.flags = (indirect ? UInt32(VIRTIO_RDMA_PL_INDIRECT) : 0).littleEndian
        guard !entries.isEmpty else { return list }
        func array(_ values: [UInt64]) -> UInt64 {
            let gpa = frontend.allocate(UInt64(max(values.count * 8, 8)), alignment: 4096)
            let raw = values.map { $0.littleEndian }
            _ = raw.withUnsafeBytes { frontend.memory.write(at: gpa, from: $0) }
            return gpa
        }
        if indirect {
            let secondLevel = stride(from: 0, to: entries.count, by: 512).map { start in
                array(Array(entries[start..<min(start + 512, entries.count)]))
            }
            list.gpa = array(secondLevel).littleEndian
        } else {
            list.gpa = array(entries).littleEndian
        }
        return list
    }

    /// A 128-byte doorbell record, zeroed; 128-aligned so it is 64-aligned and never crosses a page.
    public func allocateDoorbell() -> DoorbellRecord {
        let gpa = frontend.allocate(UInt64(VIRTIO_RDMA_DB_SIZE), alignment: 128)
        guard let p = frontend.memory.hostPointer(gpa: gpa, length: UInt64(VIRTIO_RDMA_DB_SIZE)) else {
            preconditionFailure("doorbell outside guest RAM")
        }
        return DoorbellRecord(gpa: gpa, pointer: p)
    }

    // MARK: doorbell queues

    /// Notifies doorbell virtqueue `index` (no buffers: the kick says "look at your rings").
    public func kickDoorbellQueue(_ index: Int) {
        guard let q = frontend.queues[index] else { return }
        doorbellKicks += 1
        q.kick.signal()
    }

    /// Whether the driver set up virtqueue `index` (a create response must name one of these).
    public func hasQueue(_ index: Int) -> Bool { index >= Int(VIRTIO_RDMA_VQ_DOORBELL_BASE) && frontend.queues[index] != nil }

    // MARK: event queue

    /// Adds `count` 16-byte device-writable buffers to the event queue and kicks it if asked to.
    public func postEventBuffers(_ count: Int) {
        guard count > 0, let eventQueue else { return }
        let ring = eventQueue.ring
        let size = MemoryLayout<virtio_rdma_event>.size
        let base = frontend.allocate(UInt64(count * size), alignment: 16)
        for i in 0..<count { post(eventBuffer: base + UInt64(i * size), ring: ring) }
        ring.setUsedEvent(ring.usedIndex)
        eventQueue.kickIfNeeded()
    }

    private func post(eventBuffer gpa: UInt64, ring: SplitRingDriver) {
        let zeros = [UInt8](repeating: 0xee, count: 16)
        _ = zeros.withUnsafeBytes { frontend.memory.write(at: gpa, from: $0) }
        let head = ring.add([SplitRingDriver.Buffer(address: gpa, length: 16, writable: true)])
        eventBuffers[head] = gpa
    }

    /// Reads every used event buffer into `pendingEvents` and gives the buffers back. Returns how
    /// many events arrived. A used length other than 16 is a protocol violation.
    @discardableResult
    public func collectEvents() throws(VerbsError) -> Int {
        guard let eventQueue else { return 0 }
        let ring = eventQueue.ring
        // Read every used buffer before giving any back: takeUsed has already freed all their
        // descriptors, and a re-post could take one that a later used entry still names.
        var drained: [UInt64] = []
        for used in ring.takeUsed() {
            guard let gpa = eventBuffers.removeValue(forKey: used.id) else {
                throw .protocolViolation("event queue returned unknown buffer \(used.id)")
            }
            drained.append(gpa)
            guard used.length == 16 else { throw .protocolViolation("event with used length \(used.length)") }
            var e = virtio_rdma_event()
            _ = withUnsafeMutableBytes(of: &e) { frontend.memory.read(at: gpa, into: $0) }
            pendingEvents.append(DeviceEvent(type: EventType(rawValue: UInt32(littleEndian: e.type)), handle: UInt32(littleEndian: e.handle),
                                             detail: UInt32(littleEndian: e.detail), reserved: UInt32(littleEndian: e.reserved)))
        }
        for gpa in drained { post(eventBuffer: gpa, ring: ring) }
        let n = drained.count
        if n > 0 { eventQueue.kickIfNeeded() }
        // Ask for an interrupt on the next event (EVENT_IDX). An event that races this re-arm may
        // not interrupt; waiters therefore sleep in short slices and collect again.
        ring.setUsedEvent(ring.usedIndex)
        return n
    }

    /// Waits for the event queue's interrupt (its call eventfd); true if it fired.
    public func waitForEventInterrupt(milliseconds: Int32) -> Bool {
        guard let eventQueue else { return false }
        let fired = eventQueue.waitForCall(milliseconds: milliseconds)
        if fired { eventInterrupts += 1 }
        return fired
    }

    /// The first pending or arriving event that matches, removed from `pendingEvents`; nil after
    /// `timeoutMilliseconds`. Sleeps on the event queue's call eventfd, as a guest would.
    public func waitForEvent(timeoutMilliseconds: Int = 2000, where match: (DeviceEvent) -> Bool) throws(VerbsError) -> DeviceEvent? {
        let deadline = monotonicMilliseconds() + timeoutMilliseconds
        while true {
            try collectEvents()
            if let i = pendingEvents.firstIndex(where: match) { return pendingEvents.remove(at: i) }
            let left = deadline - monotonicMilliseconds()
            if left <= 0 { return nil }
            _ = waitForEventInterrupt(milliseconds: Int32(min(left, 50)))
        }
    }

    public func waitForEvent(_ type: EventType, handle: UInt32, timeoutMilliseconds: Int = 2000) throws(VerbsError) -> DeviceEvent? {
        try waitForEvent(timeoutMilliseconds: timeoutMilliseconds) { $0.type == type && $0.handle == handle }
    }

    /// Every event that arrives within `milliseconds` (plus those pending), removed from pending.
    public func takeEvents(waitingMilliseconds: Int = 0) throws(VerbsError) -> [DeviceEvent] {
        let deadline = monotonicMilliseconds() + waitingMilliseconds
        try collectEvents()
        while monotonicMilliseconds() < deadline {
            _ = waitForEventInterrupt(milliseconds: Int32(max(1, min(deadline - monotonicMilliseconds(), 50))))
            try collectEvents()
        }
        defer { pendingEvents.removeAll() }
        return pendingEvents
    }
}

/// Milliseconds of CLOCK_MONOTONIC.
public func monotonicMilliseconds() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

// MARK: objects of the control plane

/// A user context (or the kernel's, handle 0): creates CQs, QPs and SRQs and owns them.
public final class VerbsContext {
    public let device: VerbsDevice
    public let handle: UInt32

    init(device: VerbsDevice, handle: UInt32) {
        self.device = device
        self.handle = handle
    }

    public func destroy() throws(VerbsError) {
        _ = try device.handleCommand(.destroyUContext, handle)
    }

    public func allocPD() throws(VerbsError) -> ProtectionDomain {
        var r = virtio_rdma_cmd_alloc_pd()
        r.ctx_handle = handle.littleEndian
        let body = try device.execute(.allocPD, request: bytes(of: r), responseSize: 8)
        return ProtectionDomain(context: self, handle: UInt32(littleEndian: decode(virtio_rdma_rsp_alloc_pd.self, from: body).pd_handle))
    }
}

/// A protection domain: MRs, AHs, and the PD that QPs and SRQs are created on.
public final class ProtectionDomain {
    public let context: VerbsContext
    public let handle: UInt32
    public var device: VerbsDevice { context.device }

    init(context: VerbsContext, handle: UInt32) {
        self.context = context
        self.handle = handle
    }

    public func dealloc() throws(VerbsError) {
        _ = try device.handleCommand(.deallocPD, handle)
    }

    /// Registers `length` bytes of fresh guest RAM. The region's IOVA is `iova` (default: a fresh
    /// user-space-looking address `pageOffset` bytes into a page); its first byte sits at
    /// `iova & 4095` of the first page, and the page list names exactly the spanned pages.
    public func registerMR(length: Int, access: Access = .all, pageOffset: Int = 0, iova: UInt64? = nil,
                           layout: PageLayout = .contiguous, indirect: Bool = false,
                           timeoutMilliseconds: Int32 = 5000) throws(VerbsError) -> MemoryRegion {
        precondition(length > 0)
        let va = iova ?? device.userIOVA(length: length, pageOffset: pageOffset)
        let offset = Int(va & 4095)
        let npages = (offset + length + 4095) / 4096
        let pages = device.pages(npages, layout: layout, firstOffset: offset, length: length)
        var r = virtio_rdma_cmd_reg_mr()
        r.pd_handle = handle.littleEndian
        r.access = access.rawValue.littleEndian
        r.iova = va.littleEndian
        r.length = UInt64(length).littleEndian
        r.pages = device.writePageList(pages.gpas, indirect: indirect)
        let keys = try registerMR(r, timeoutMilliseconds: timeoutMilliseconds)
        return MemoryRegion(pd: self, lkey: keys.lkey, rkey: keys.rkey, iova: va, length: UInt64(length), access: access, pages: pages)
    }

    /// The kernel's DMA MR: all of guest RAM, IOVA = guest-physical address.
    public func registerDMAMR(access: Access = .localWrite) throws(VerbsError) -> MemoryRegion {
        var r = virtio_rdma_cmd_reg_mr()
        r.pd_handle = handle.littleEndian
        r.access = access.rawValue.littleEndian
        r.flags = UInt32(VIRTIO_RDMA_MR_DMA).littleEndian
        let keys = try registerMR(r)
        return MemoryRegion(pd: self, lkey: keys.lkey, rkey: keys.rkey, iova: 0, length: UInt64.max, access: access, pages: nil)
    }

    /// REG_MR with any request (hostile tests): the keys, or the status as `.command`.
    public func registerMR(_ request: virtio_rdma_cmd_reg_mr, timeoutMilliseconds: Int32 = 5000) throws(VerbsError) -> (lkey: UInt32, rkey: UInt32) {
        let body = try device.execute(.regMR, request: bytes(of: request), responseSize: 8, timeoutMilliseconds: timeoutMilliseconds)
        let rsp = decode(virtio_rdma_rsp_reg_mr.self, from: body)
        return (UInt32(littleEndian: rsp.lkey), UInt32(littleEndian: rsp.rkey))
    }

    public func createAH(_ av: AddressVector) throws(VerbsError) -> AddressHandle {
        var r = virtio_rdma_cmd_create_ah()
        r.pd_handle = handle.littleEndian
        r.av = av.raw
        let body = try device.execute(.createAH, request: bytes(of: r), responseSize: 8)
        return AddressHandle(pd: self, handle: UInt32(littleEndian: decode(virtio_rdma_rsp_create_ah.self, from: body).ah_handle))
    }
}

/// A registered memory region and the guest pages behind it (nil for the DMA MR).
public final class MemoryRegion {
    public let pd: ProtectionDomain
    public let lkey: UInt32
    public let rkey: UInt32
    public let iova: UInt64
    public let length: UInt64
    public let access: Access
    public let pages: GuestPages?
    public var device: VerbsDevice { pd.device }

    init(pd: ProtectionDomain, lkey: UInt32, rkey: UInt32, iova: UInt64, length: UInt64, access: Access, pages: GuestPages?) {
        self.pd = pd
        self.lkey = lkey
        self.rkey = rkey
        self.iova = iova
        self.length = length
        self.access = access
        self.pages = pages
    }

    public func deregister() throws(VerbsError) {
        _ = try device.handleCommand(.deregMR, lkey)
    }

    /// An SGE for bytes [offset, offset + length) of the region.
    public func sge(offset: Int = 0, length: Int? = nil) -> SGE {
        SGE(addr: iova &+ UInt64(offset), length: UInt32(length ?? (Int(min(self.length, 1 << 30)) - offset)), lkey: lkey)
    }

    /// IOVA of byte `offset`.
    public func address(_ offset: Int) -> UInt64 { iova &+ UInt64(offset) }

    public func write(_ bytes: [UInt8], at offset: Int = 0) {
        if let pages { return pages.write(bytes, at: offset) }
        _ = bytes.withUnsafeBytes { device.frontend.memory.write(at: iova &+ UInt64(offset), from: $0) }
    }

    public func read(_ count: Int, at offset: Int = 0) -> [UInt8] {
        if let pages { return pages.read(count, at: offset) }
        var out = [UInt8](repeating: 0, count: count)
        _ = out.withUnsafeMutableBytes { device.frontend.memory.read(at: iova &+ UInt64(offset), into: $0) }
        return out
    }

    public func fill(_ byte: UInt8) {
        if let pages { pages.fill(byte) }
    }

    /// The 8-byte little-endian word at `offset` (atomics' target and result).
    public func loadU64(at offset: Int) -> UInt64 {
        read(8, at: offset).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    public func storeU64(_ v: UInt64, at offset: Int) {
        write(bytes(of: v.littleEndian), at: offset)
    }
}

public final class AddressHandle {
    public let pd: ProtectionDomain
    public let handle: UInt32

    init(pd: ProtectionDomain, handle: UInt32) {
        self.pd = pd
        self.handle = handle
    }

    public func destroy() throws(VerbsError) {
        _ = try pd.device.handleCommand(.destroyAH, handle)
    }
}
