// SPDX-License-Identifier: Apache-2.0
// Guest memory for tests: real memfd mappings, as the front-end would share them.
import LinuxSystem
import VRDMATestSupport
import VirtQueue

/// A region backed by its own memfd; user addresses sit in a distinct range so that GPA/UA mix-ups show.
func makeRegion(gpa: UInt64, size: UInt64, userAddress: UInt64? = nil) throws -> MappedGuestRegion {
    let fd = try MemFD.create(name: "guest-ram", size: Int(size))
    let region = GuestMemoryRegion(guestPhysicalAddress: gpa, size: size, userAddress: userAddress ?? gpa + 0x7f00_0000_0000, mmapOffset: 0)
    return try MappedGuestRegion(region: region, descriptor: fd)
}

func makeLog(bytes: Int, mappingLength: Int? = nil, offset: Int = 0) throws -> DirtyLog {
    let fd = try MemFD.create(name: "dirty-log", size: mappingLength ?? bytes)
    let mapping = try MemoryMapping(descriptor: fd, length: mappingLength ?? bytes)
    return try DirtyLog(mapping: mapping, offset: offset, size: bytes)
}

/// Rings at 0x100000 in a 1 MiB region; data buffers from `dataBase`.
struct Rig {
    static let ramBase: UInt64 = 0x10_0000
    static let ramSize: UInt64 = 0x10_0000
    static let dataBase: UInt64 = 0x11_0000
    static let indirectTable: UInt64 = 0x1F_0000

    let memory: GuestMemory
    let driver: SplitRingDriver
    let queue: SplitQueue

    init(size: UInt16 = 8, eventIndex: Bool = false, indirect: Bool = true, log: DirtyLog? = nil,
         extraRegions: [MappedGuestRegion] = []) throws {
        memory = try GuestMemory(regions: [makeRegion(gpa: Self.ramBase, size: Self.ramSize)] + extraRegions, log: log)
        driver = SplitRingDriver(memory: memory, baseAddress: Self.ramBase, size: size, eventIndex: eventIndex)
        queue = try SplitQueue(size: size, addresses: driver.addresses, memory: memory, nextAvail: 0,
                               eventIndex: eventIndex, indirect: indirect)
    }

    func fill(_ gpa: UInt64, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { memory.write(at: gpa, from: $0) }
    }

    func bytes(_ gpa: UInt64, _ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        _ = out.withUnsafeMutableBytes { memory.read(at: gpa, into: $0) }
        return out
    }
}
