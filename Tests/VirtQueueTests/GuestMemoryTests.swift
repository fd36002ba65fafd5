// SPDX-License-Identifier: Apache-2.0
import LinuxSystem
import Testing
import VirtQueue

@Suite("Guest memory")
struct GuestMemoryTests {
    @Test("Translation is exact at the first and last byte of a region")
    func edges() throws {
        let r = try makeRegion(gpa: 0x10000, size: 0x10000)
        let m = try GuestMemory(regions: [r])
        #expect(m.hostPointer(gpa: 0x10000, length: 0x10000) == r.base)
        #expect(m.hostPointer(gpa: 0x1FFFF, length: 1) == r.base + 0xFFFF)
        #expect(m.hostPointer(gpa: 0x1FFFF, length: 2) == nil)
        #expect(m.hostPointer(gpa: 0xFFFF, length: 1) == nil)
        #expect(m.hostPointer(gpa: 0x1FFFF, length: 0) != nil)
        #expect(m.hostPointer(gpa: 0x20000, length: 0) == nil)
        #expect(m.span(containing: 0x20000) == nil)
        #expect(m.span(containing: 0x10000)?.base == r.base)
        #expect(m.store(UInt32(0xA1B2C3D4), at: 0x1FFFC))
        #expect(m.load(UInt32.self, at: 0x1FFFC) == 0xA1B2C3D4)
        #expect(r.base.load(fromByteOffset: 0xFFFC, as: UInt8.self) == 0xD4)  // little-endian in guest RAM
        #expect(m.load(UInt32.self, at: 0x1FFFD) == nil)
        #expect(!m.store(UInt16(1), at: 0x1FFFF))
    }

    @Test("Lengths and addresses near UInt64.max never wrap around")
    func noWrap() throws {
        let r = try makeRegion(gpa: 0x10000, size: 0x10000)
        let m = try GuestMemory(regions: [r])
        #expect(m.hostPointer(gpa: 0x10010, length: UInt64.max) == nil)
        #expect(m.hostPointer(gpa: 0x10010, length: UInt64.max - 0x10000) == nil)
        #expect(m.hostPointer(gpa: UInt64.max, length: 1) == nil)
        var buf = [UInt8](repeating: 0, count: 4)
        #expect(!buf.withUnsafeMutableBytes { m.read(at: UInt64.max - 1, into: $0) })
        #expect(m.guestPhysical(userAddress: r.region.userAddress + 8, length: UInt64.max) == nil)
        let fd = try MemFD.create(name: "wrap", size: 0x1000)
        let mapping = try MemoryMapping(descriptor: fd, length: 0x1000)
        for bad in [GuestMemoryRegion(guestPhysicalAddress: UInt64.max - 0xFFF, size: 0x1000, userAddress: 0, mmapOffset: 0),
                    GuestMemoryRegion(guestPhysicalAddress: 0, size: 0x1000, userAddress: UInt64.max - 0x10, mmapOffset: 0),
                    GuestMemoryRegion(guestPhysicalAddress: 0, size: 0x1000, userAddress: 0, mmapOffset: UInt64.max - 0x10)] {
            #expect(throws: GuestMemoryError.wraps(bad)) { try MappedGuestRegion(region: bad, mapping: mapping) }
        }
    }

    @Test("Reads and writes span adjacent regions and fail whole across a hole")
    func spanning() throws {
        let a = try makeRegion(gpa: 0x10000, size: 0x10000)
        let b = try makeRegion(gpa: 0x20000, size: 0x10000)
        let c = try makeRegion(gpa: 0x40000, size: 0x10000)
        let m = try GuestMemory(regions: [c, b, a])
        #expect(m.regions.map(\.region.guestPhysicalAddress) == [0x10000, 0x20000, 0x40000])
        let data: [UInt8] = Array(1...16)
        #expect(data.withUnsafeBytes { m.write(at: 0x1FFF8, from: $0) })
        #expect(a.base.load(fromByteOffset: 0xFFFF, as: UInt8.self) == 8)
        #expect(b.base.load(fromByteOffset: 0, as: UInt8.self) == 9)
        var back = [UInt8](repeating: 0, count: 16)
        #expect(back.withUnsafeMutableBytes { m.read(at: 0x1FFF8, into: $0) })
        #expect(back == data)
        // [0x2FFF8, 0x30008) runs into the hole before c: nothing may be written.
        #expect(!data.withUnsafeBytes { m.write(at: 0x2FFF8, from: $0) })
        #expect(b.base.load(fromByteOffset: 0xFFF8, as: UInt8.self) == 0)
        #expect(!back.withUnsafeMutableBytes { m.read(at: 0x3FFF8, into: $0) })
        // A single pointer never spans regions.
        #expect(m.hostPointer(gpa: 0x1FFF8, length: 16) == nil)
    }

    @Test("Overlap in guest-physical or user address space is rejected")
    func overlap() throws {
        let a = try makeRegion(gpa: 0x10000, size: 0x10000, userAddress: 0x7000_0000)
        let gpaOverlap = try makeRegion(gpa: 0x1F000, size: 0x10000, userAddress: 0x9000_0000)
        let uaOverlap = try makeRegion(gpa: 0x80000, size: 0x10000, userAddress: 0x7000_F000)
        let fine = try makeRegion(gpa: 0x20000, size: 0x10000, userAddress: 0x7001_0000)
        #expect(throws: GuestMemoryError.overlaps(a.region, gpaOverlap.region)) { try GuestMemory(regions: [gpaOverlap, a]) }
        #expect(throws: GuestMemoryError.overlaps(a.region, uaOverlap.region)) { try GuestMemory(regions: [a, uaOverlap]) }
        #expect(try GuestMemory(regions: [a, fine]).regions.count == 2)
    }

    @Test("Regions are added and removed by value and the old table stays usable")
    func addRemove() throws {
        let a = try makeRegion(gpa: 0x10000, size: 0x10000)
        let b = try makeRegion(gpa: 0x30000, size: 0x10000)
        let m1 = try GuestMemory.empty.adding(a)
        let m2 = try m1.adding(b)
        #expect(m2.span(containing: 0x30000)?.base == b.base)
        #expect(throws: GuestMemoryError.overlaps(a.region, a.region)) { try m2.adding(a) }
        var other = b.region
        other.userAddress += 0x1000
        #expect(m2.removing(other) == nil)
        let m3 = try #require(m2.removing(b.region))
        #expect(m3.span(containing: 0x30000) == nil)
        #expect(m2.span(containing: 0x30000)?.base == b.base)
        #expect(GuestMemory.empty.hostPointer(gpa: 0, length: 0) == nil)
    }

    @Test("The mmap offset selects the region's first byte within a mapping from offset zero")
    func mmapOffset() throws {
        let fd = try MemFD.create(name: "offset", size: 0x3000)
        let whole = try MemoryMapping(descriptor: fd, length: 0x3000)
        whole.base.storeBytes(of: 0xAB, toByteOffset: 0x1000, as: UInt8.self)
        let region = GuestMemoryRegion(guestPhysicalAddress: 0x4000, size: 0x2000, userAddress: 0x5000_0000, mmapOffset: 0x1000)
        let r = try MappedGuestRegion(region: region, descriptor: fd)
        #expect(r.mapping.length == 0x3000)
        let m = try GuestMemory(regions: [r])
        #expect(m.load(UInt8.self, at: 0x4000) == 0xAB)
        #expect(m.guestPhysical(userAddress: 0x5000_0010, length: 0x10) == 0x4010)
        #expect(m.guestPhysical(userAddress: 0x5000_1FF0, length: 0x11) == nil)
        #expect(m.guestPhysical(userAddress: 0x4010, length: 1) == nil)
        let small = try MemoryMapping(descriptor: fd, length: 0x2000)
        #expect(throws: GuestMemoryError.mappingTooSmall(region)) { try MappedGuestRegion(region: region, mapping: small) }
        var empty = region
        empty.size = 0
        #expect(throws: GuestMemoryError.zeroSize(empty)) { try MappedGuestRegion(region: empty, descriptor: fd) }
    }

    @Test("More regions than QEMU's slot limit are rejected")
    func tooMany() throws {
        let fd = try MemFD.create(name: "many", size: 0x1000 * 257)
        let mapping = try MemoryMapping(descriptor: fd, length: 0x1000 * 257)
        let regions = try (0..<257).map { i in
            try MappedGuestRegion(region: GuestMemoryRegion(guestPhysicalAddress: UInt64(i) * 0x1000, size: 0x1000,
                                                             userAddress: UInt64(i) * 0x1000, mmapOffset: UInt64(i) * 0x1000),
                                  mapping: mapping)
        }
        #expect(throws: GuestMemoryError.tooManyRegions(257)) { try GuestMemory(regions: regions) }
        #expect(try GuestMemory(regions: Array(regions.prefix(256))).span(containing: 0xFF_F00)?.start == 0xFF000)
    }
}

@Suite("Dirty log")
struct DirtyLogTests {
    @Test("A write spanning pages sets exactly one bit per touched page")
    func spanningPages() throws {
        let log = try makeLog(bytes: 4)
        let m = try GuestMemory(regions: [makeRegion(gpa: 0, size: 0x20000)], log: log)
        let data = [UInt8](repeating: 7, count: 8)
        #expect(data.withUnsafeBytes { m.write(at: 0x1FFC, from: $0) })
        #expect((0..<32).filter { log.isDirty(page: $0) } == [1, 2])
        log.mark(gpa: 0x5000, length: 0xA000)  // pages 5...14, across a byte boundary
        #expect((0..<32).filter { log.isDirty(page: $0) } == [1, 2] + Array(5...14))
        m.store(UInt8(1), at: 0x1F000)
        #expect(log.isDirty(page: 0x1F))
        log.mark(gpa: 0x3000, length: 0)
        #expect(!log.isDirty(page: 3))
    }

    @Test("Pages past the end of the bitmap are ignored and never written")
    func pastTheEnd() throws {
        let log = try makeLog(bytes: 1, mappingLength: 8, offset: 2)  // covers pages 0...7
        log.mark(gpa: 0x7000, length: 0x3000)  // pages 7, 8, 9
        #expect(log.isDirty(page: 7))
        #expect(!log.isDirty(page: 8))
        #expect(log.droppedMarks == 1)
        log.mark(gpa: UInt64.max - 1, length: 100)
        log.mark(gpa: 0x100000, length: 1)
        #expect(log.droppedMarks == 3)
        let raw = (0..<8).map { log.mapping.base.load(fromByteOffset: $0, as: UInt8.self) }
        #expect(raw == [0, 0, 0x80, 0, 0, 0, 0, 0])
        #expect(throws: GuestMemoryError.self) { try DirtyLog(mapping: log.mapping, offset: 4, size: 5) }
    }
}
