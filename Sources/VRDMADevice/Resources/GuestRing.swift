// SPDX-License-Identifier: Apache-2.0
// Guest memory the device was told about at create time: page lists, rings laid over them, and
// doorbell records. Everything is checked against guest RAM when created and again whenever the
// memory table changes; after that, slot and field accesses need no further checks.
import CLinuxShims
import CVRDMAABI
import VirtQueue

let pageSize = UInt64(VIRTIO_RDMA_PAGE_SIZE)

enum PageList {
    /// Entries one indirect page holds.
    static let entriesPerPage = Int(pageSize / 8)

    /// Reads and checks a page list: 1...maxPages page-aligned pages, every one inside guest RAM.
    static func read(_ d: virtio_rdma_page_list, memory: GuestMemory, maxPages: Int) throws(CommandError) -> [UInt64] {
        let npages = Int(UInt32(littleEndian: d.npages))
        let flags = UInt32(littleEndian: d.flags)
        let gpa = UInt64(littleEndian: d.gpa)
        guard npages >= 1 else { throw .invalid("page list with no pages") }
        guard npages <= maxPages else { throw .invalid("page list of \(npages) pages, at most \(maxPages) fit") }
        guard flags & ~VIRTIO_RDMA_PL_INDIRECT == 0 else { throw .invalid("page list flags 0x\(String(flags, radix: 16))") }
        guard gpa % 8 == 0 else { throw .invalid("page list at 0x\(String(gpa, radix: 16)) is not 8-byte aligned") }
        let direct: [UInt64]
        if flags & VIRTIO_RDMA_PL_INDIRECT != 0 {
            let firstLevel = try entries(at: gpa, count: (npages + entriesPerPage - 1) / entriesPerPage, memory: memory)
            var all: [UInt64] = []
            all.reserveCapacity(npages)
            for (i, page) in firstLevel.enumerated() {
                try checkPage(page, memory: memory)
                all += try entries(at: page, count: min(entriesPerPage, npages - i * entriesPerPage), memory: memory)
            }
            direct = all
        } else {
            direct = try entries(at: gpa, count: npages, memory: memory)
        }
        for page in direct { try checkPage(page, memory: memory) }
        return direct
    }

    private static func entries(at gpa: UInt64, count: Int, memory: GuestMemory) throws(CommandError) -> [UInt64] {
        let bytes = UInt64(count) * 8
        guard let p = memory.hostPointer(gpa: gpa, length: bytes) else {
            throw .fault("page list 0x\(String(gpa, radix: 16)) + \(bytes) outside guest RAM")
        }
        // SAFETY: hostPointer checked all `bytes` lie in one mapped region.
        return (0..<count).map { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
    }

    static func checkPage(_ page: UInt64, memory: GuestMemory) throws(CommandError) {
        guard page % pageSize == 0 else { throw .invalid("page 0x\(String(page, radix: 16)) is not page-aligned") }
        guard memory.hostPointer(gpa: page, length: pageSize) != nil else {
            throw .fault("page 0x\(String(page, radix: 16)) outside guest RAM")
        }
    }
}

/// A ring of `depth` slots of 2^shift bytes over guest pages; a slot never crosses a page.
final class GuestRing {
    let depth: UInt32
    let shift: UInt32
    let pages: [UInt64]
    private(set) var hosts: [UnsafeMutableRawPointer]
    private(set) var memory: GuestMemory

    /// Pages needed for `depth` slots of 2^shift bytes.
    static func pagesNeeded(depth: UInt32, shift: UInt32) -> Int {
        Int((UInt64(depth) << UInt64(shift) + pageSize - 1) / pageSize)
    }

    init(depth: UInt32, shift: UInt32, pageList: virtio_rdma_page_list, memory: GuestMemory) throws(CommandError) {
        precondition(depth.nonzeroBitCount == 1 && shift <= 12)
        let needed = Self.pagesNeeded(depth: depth, shift: shift)
        guard Int(UInt32(littleEndian: pageList.npages)) == needed else {
            throw .invalid("ring of \(depth) x \(1 << shift) bytes needs \(needed) pages, the list has \(UInt32(littleEndian: pageList.npages))")
        }
        self.depth = depth
        self.shift = shift
        pages = try PageList.read(pageList, memory: memory, maxPages: needed)
        self.memory = memory
        hosts = []
        guard remap(memory) else { throw .fault("ring page outside guest RAM") }
    }

    /// Re-translates the pages for a new memory table; false if one is no longer in guest RAM.
    /// Then the ring keeps its old translation, and with it the old table, whose mappings stay
    /// alive while referenced: a broken ring is still safe to touch (its owner is failed).
    func remap(_ memory: GuestMemory) -> Bool {
        var h: [UnsafeMutableRawPointer] = []
        h.reserveCapacity(pages.count)
        for page in pages {
            guard let p = memory.hostPointer(gpa: page, length: pageSize) else { return false }
            h.append(p)
        }
        hosts = h
        self.memory = memory
        return true
    }

    @inline(__always)
    func slot(_ index: UInt32) -> UnsafeMutableRawPointer {
        let offset = Int(index & (depth - 1)) << Int(shift)
        return hosts[offset >> 12] + (offset & 4095)
    }

    @inline(__always)
    func slotGPA(_ index: UInt32) -> UInt64 {
        let offset = Int(index & (depth - 1)) << Int(shift)
        return pages[offset >> 12] + UInt64(offset & 4095)
    }

    /// Marks a slot written by the device dirty (migration log).
    @inline(__always)
    func markDirty(_ index: UInt32) {
        if memory.log != nil { memory.markDirty(gpa: slotGPA(index), length: 1 << UInt64(shift)) }
    }
}

/// struct virtio_rdma_doorbell in guest RAM: the driver's line at 0, the device's at 64.
final class DoorbellRecord {
    let gpa: UInt64
    private(set) var base: UnsafeMutableRawPointer
    private(set) var memory: GuestMemory

    init(gpa: UInt64, memory: GuestMemory) throws(CommandError) {
        guard gpa % 64 == 0 else { throw .invalid("doorbell record 0x\(String(gpa, radix: 16)) is not 64-byte aligned") }
        guard let p = memory.hostPointer(gpa: gpa, length: UInt64(VIRTIO_RDMA_DB_SIZE)) else {
            throw .fault("doorbell record 0x\(String(gpa, radix: 16)) outside guest RAM")
        }
        guard gpa % pageSize + UInt64(VIRTIO_RDMA_DB_SIZE) <= pageSize else {
            throw .invalid("doorbell record 0x\(String(gpa, radix: 16)) crosses a page")
        }
        self.gpa = gpa
        base = p
        self.memory = memory
    }

    func remap(_ memory: GuestMemory) -> Bool {
        guard let p = memory.hostPointer(gpa: gpa, length: UInt64(VIRTIO_RDMA_DB_SIZE)) else { return false }
        base = p
        self.memory = memory
        return true
    }

    // SAFETY (all accessors): base is a host pointer to the 128 checked bytes, 64-byte aligned in
    // guest-physical space; guest RAM regions are page-aligned in both spaces, so also on the host.
    @inline(__always) var driverIndex: UInt32 { UInt32(littleEndian: CLinuxShims_load_acquire_u32(base)) }
    @inline(__always) var armSequence: UInt32 { UInt32(littleEndian: CLinuxShims_load_acquire_u32(base + 4)) }
    @inline(__always) var armFlags: UInt32 { UInt32(littleEndian: CLinuxShims_load_acquire_u32(base + 8)) }

    @inline(__always) func setDeviceIndex(_ v: UInt32) { storeDevice(v, at: 64) }
    @inline(__always) func setNeedKick(_ v: UInt32) { storeDevice(v, at: 68) }
    @inline(__always) func setNotifiedSequence(_ v: UInt32) { storeDevice(v, at: 72) }
    @inline(__always) func setCQStatus(_ v: UInt32) { storeDevice(v, at: 76) }

    /// Resets the device line (create, or QP to RESET).
    func clearDeviceLine() {
        (base + 64).initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        if memory.log != nil { memory.markDirty(gpa: gpa + 64, length: 64) }
    }

    @inline(__always)
    private func storeDevice(_ v: UInt32, at offset: Int) {
        CLinuxShims_store_release_u32(base + offset, v.littleEndian)
        if memory.log != nil { memory.markDirty(gpa: gpa + UInt64(offset), length: 4) }
    }
}
