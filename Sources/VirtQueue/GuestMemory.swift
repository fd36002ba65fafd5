// SPDX-License-Identifier: Apache-2.0
// Guest RAM as the front-end shared it (SET_MEM_TABLE / ADD_MEM_REG): a sorted, immutable table of
// mapped regions. Every access from the device is bounds-checked here; an address the guest made up
// yields nil/false, never a wild pointer. The table is replaced wholesale on hot add/remove
// (copy-on-write), so a worker holding the old table keeps its mappings alive until it switches.
import CLinuxShims
import LinuxSystem

/// One region as described by the front-end (vhost-user §1.6).
public struct GuestMemoryRegion: Sendable, Equatable, CustomStringConvertible {
    public var guestPhysicalAddress: UInt64
    public var size: UInt64
    /// The front-end's (QEMU's) virtual address of the region; ring addresses are given in this space.
    public var userAddress: UInt64
    /// Offset of the region's first byte in the fd.
    public var mmapOffset: UInt64

    public init(guestPhysicalAddress: UInt64, size: UInt64, userAddress: UInt64, mmapOffset: UInt64) {
        self.guestPhysicalAddress = guestPhysicalAddress
        self.size = size
        self.userAddress = userAddress
        self.mmapOffset = mmapOffset
    }

    public var description: String {
        "region gpa 0x\(hex(guestPhysicalAddress)) size 0x\(hex(size)) ua 0x\(hex(userAddress)) offset 0x\(hex(mmapOffset))"
    }

    /// Rejects what would make later arithmetic wrap: every end (gpa/ua/offset + size) must fit in
    /// UInt64, and offset + size must fit in Int for mmap.
    func validate() throws(GuestMemoryError) {
        guard size > 0 else { throw .zeroSize(self) }
        let (_, o1) = guestPhysicalAddress.addingReportingOverflow(size)
        let (_, o2) = userAddress.addingReportingOverflow(size)
        let (end, o3) = mmapOffset.addingReportingOverflow(size)
        guard !o1, !o2, !o3, end <= UInt64(Int.max) else { throw .wraps(self) }
    }
}

func hex(_ v: some BinaryInteger) -> String { String(v, radix: 16) }

public enum GuestMemoryError: Error, Equatable, CustomStringConvertible {
    case zeroSize(GuestMemoryRegion)
    case wraps(GuestMemoryRegion)
    case overlaps(GuestMemoryRegion, GuestMemoryRegion)
    case mappingTooSmall(GuestMemoryRegion)
    case mapFailed(SystemError)
    case tooManyRegions(Int)

    public var description: String {
        switch self {
        case .zeroSize(let r): "zero-size \(r)"
        case .wraps(let r): "\(r) wraps the address space"
        case .overlaps(let a, let b): "\(a) overlaps \(b)"
        case .mappingTooSmall(let r): "mapping too small for \(r)"
        case .mapFailed(let e): "mapping guest memory failed: \(e)"
        case .tooManyRegions(let n): "\(n) memory regions (at most \(GuestMemory.maxRegions))"
        }
    }
}

/// A region and the mapping that backs it. The mapping covers [0, mmapOffset + size) of the fd, like
/// libvhost-user, which does not pass the offset to mmap because it may not be hugepage-aligned.
public final class MappedGuestRegion: Sendable {
    public let region: GuestMemoryRegion
    public let mapping: MemoryMapping

    /// Host address of `region.guestPhysicalAddress`.
    public var base: UnsafeMutableRawPointer { mapping.base + Int(region.mmapOffset) }

    public init(region: GuestMemoryRegion, descriptor: OwnedFileDescriptor) throws(GuestMemoryError) {
        try region.validate()
        do {
            mapping = try MemoryMapping(descriptor: descriptor, length: Int(region.mmapOffset + region.size))
        } catch {
            throw .mapFailed(error)
        }
        self.region = region
    }

    public init(region: GuestMemoryRegion, mapping: MemoryMapping) throws(GuestMemoryError) {
        try region.validate()
        guard region.mmapOffset + region.size <= UInt64(mapping.length) else { throw .mappingTooSmall(region) }
        self.region = region
        self.mapping = mapping
    }

    var start: UInt64 { region.guestPhysicalAddress }
    var end: UInt64 { region.guestPhysicalAddress + region.size }  // validated not to overflow
}

public final class GuestMemory: Sendable {
    /// QEMU's VHOST_USER_MAX_RAM_SLOTS on x86.
    public static let maxRegions = 256

    /// Sorted by guest-physical address, non-overlapping in both GPA and user address space.
    public let regions: [MappedGuestRegion]
    /// Non-nil only while dirty logging is active (SET_LOG_BASE with LOG_ALL negotiated).
    public let log: DirtyLog?

    public static let empty = GuestMemory(sorted: [], log: nil)

    /// The lookup copy of `regions`: plain values in memory owned here, so the data path's address
    /// checks retain nothing (the table outlives every lookup made through it).
    // nonisolated(unsafe): written once in init, read-only after, freed in deinit.
    nonisolated(unsafe) private let spans: UnsafeMutableBufferPointer<Span>

    /// One region as the lookups need it.
    public struct Span: @unchecked Sendable {
        public let start: UInt64
        public let end: UInt64
        public let base: UnsafeMutableRawPointer
    }

    private init(sorted: [MappedGuestRegion], log: DirtyLog?) {
        regions = sorted
        self.log = log
        spans = Self.spans(of: sorted)
    }

    private static func spans(of sorted: [MappedGuestRegion]) -> UnsafeMutableBufferPointer<Span> {
        let spans = UnsafeMutableBufferPointer<Span>.allocate(capacity: sorted.count)
        for (i, r) in sorted.enumerated() { (spans.baseAddress! + i).initialize(to: Span(start: r.start, end: r.end, base: r.base)) }
        return spans
    }

    deinit { spans.deallocate() }

    public init(regions: [MappedGuestRegion], log: DirtyLog? = nil) throws(GuestMemoryError) {
        guard regions.count <= Self.maxRegions else { throw .tooManyRegions(regions.count) }
        let byGPA = regions.sorted { $0.region.guestPhysicalAddress < $1.region.guestPhysicalAddress }
        for (a, b) in zip(byGPA, byGPA.dropFirst()) where a.end > b.start {
            throw .overlaps(a.region, b.region)
        }
        // Overlapping user addresses would make SET_VRING_ADDR translation ambiguous.
        let byUA = regions.sorted { $0.region.userAddress < $1.region.userAddress }
        for (a, b) in zip(byUA, byUA.dropFirst()) where a.region.userAddress + a.region.size > b.region.userAddress {
            throw .overlaps(a.region, b.region)
        }
        self.regions = byGPA
        self.log = log
        spans = Self.spans(of: byGPA)
    }

    public func adding(_ region: MappedGuestRegion) throws(GuestMemoryError) -> GuestMemory {
        try GuestMemory(regions: regions + [region], log: log)
    }

    /// nil if no region matches (GPA, size and user address must all match, as in REM_MEM_REG).
    public func removing(_ region: GuestMemoryRegion) -> GuestMemory? {
        guard let i = regions.firstIndex(where: {
            $0.region.guestPhysicalAddress == region.guestPhysicalAddress && $0.region.size == region.size
                && $0.region.userAddress == region.userAddress
        }) else { return nil }
        var rest = regions
        rest.remove(at: i)
        return GuestMemory(sorted: rest, log: log)
    }

    /// A new table over the same mappings (the session keeps one per change, see `effectiveMemory`).
    public func withLog(_ log: DirtyLog?) -> GuestMemory { GuestMemory(sorted: regions, log: log) }

    /// The region holding `gpa`, as a span valid while this table lives.
    @inline(__always)
    public func span(containing gpa: UInt64) -> Span? {
        // Last region whose start is <= gpa.
        var lo = 0, hi = spans.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if spans[mid].start <= gpa { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let r = spans[lo - 1]
        return gpa < r.end ? r : nil
    }

    /// Host pointer for [gpa, gpa+length) when it lies inside ONE region. length 0 → pointer if gpa is inside a region.
    public func hostPointer(gpa: UInt64, length: UInt64) -> UnsafeMutableRawPointer? {
        guard let r = span(containing: gpa) else { return nil }
        let offset = gpa - r.start
        // Written as a subtraction so that gpa + length cannot wrap.
        guard length <= r.end - r.start - offset else { return nil }
        return r.base + Int(offset)
    }

    /// Front-end virtual address → guest-physical, for ring addresses in SET_VRING_ADDR (whole range in one region).
    public func guestPhysical(userAddress: UInt64, length: UInt64) -> UInt64? {
        for r in regions {
            let ua = r.region.userAddress
            guard userAddress >= ua, userAddress - ua < r.region.size else { continue }
            let offset = userAddress - ua
            guard length <= r.region.size - offset else { return nil }
            return r.start + offset
        }
        return nil
    }

    public func load<T: FixedWidthInteger>(_ type: T.Type, at gpa: UInt64) -> T? {
        guard let p = hostPointer(gpa: gpa, length: UInt64(MemoryLayout<T>.size)) else { return nil }
        // SAFETY: hostPointer checked that all size(T) bytes lie in one mapped region.
        return T(littleEndian: p.loadUnaligned(as: T.self))
    }

    @discardableResult
    public func store<T: FixedWidthInteger>(_ value: T, at gpa: UInt64) -> Bool {
        guard let p = hostPointer(gpa: gpa, length: UInt64(MemoryLayout<T>.size)) else { return false }
        // SAFETY: hostPointer checked that all size(T) bytes lie in one mapped region.
        p.storeBytes(of: value.littleEndian, as: T.self)
        markDirty(gpa: gpa, length: UInt64(MemoryLayout<T>.size))
        return true
    }

    /// Acquire load of a 16-bit ring index (the driver side uses this for used.idx).
    public func loadAcquire(_ type: UInt16.Type, at gpa: UInt64) -> UInt16? {
        guard let p = hostPointer(gpa: gpa, length: 2), Int(bitPattern: p) & 1 == 0 else { return nil }
        // SAFETY: in one region (hostPointer) and 2-aligned, as the C atomic requires.
        return UInt16(littleEndian: CLinuxShims_load_acquire_u16(p))
    }

    /// Release store of a 16-bit ring index (the driver side uses this for avail.idx); marks dirty.
    @discardableResult
    public func storeRelease(_ value: UInt16, at gpa: UInt64) -> Bool {
        guard let p = hostPointer(gpa: gpa, length: 2), Int(bitPattern: p) & 1 == 0 else { return false }
        // SAFETY: in one region (hostPointer) and 2-aligned, as the C atomic requires.
        CLinuxShims_store_release_u16(p, value.littleEndian)
        markDirty(gpa: gpa, length: 2)
        return true
    }

    /// A full (sequentially consistent) fence, for the driver side of notification suppression.
    public static func fullFence() { CLinuxShims_fence_seq_cst() }

    /// Visits the host pieces of [gpa, gpa+count) across adjacent regions; false if any byte is unmapped.
    private func forEachPiece(at gpa: UInt64, count: Int, _ body: (UnsafeMutableRawPointer, _ done: Int, _ n: Int) -> Void) -> Bool {
        var done = 0
        while done < count {
            // gpa + done cannot wrap: each piece ends at a region end, which is <= UInt64.max.
            let (cur, o) = gpa.addingReportingOverflow(UInt64(done))
            guard !o, let r = span(containing: cur) else { return false }
            let n = Int(min(UInt64(count - done), r.end - cur))
            body(r.base + Int(cur - r.start), done, n)
            done += n
        }
        return true
    }

    /// Copies guest memory into `buffer`; the range may span adjacent regions. False (nothing copied) if any byte is outside.
    public func read(at gpa: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard forEachPiece(at: gpa, count: buffer.count, { _, _, _ in }) else { return false }
        return forEachPiece(at: gpa, count: buffer.count) { p, done, n in
            // SAFETY: forEachPiece hands out only [p, p+n) inside one mapped region; buffer has done+n bytes.
            buffer.baseAddress!.advanced(by: done).copyMemory(from: p, byteCount: n)
        }
    }

    /// Copies `buffer` into guest memory (may span adjacent regions) and marks it dirty. False (nothing copied) if any byte is outside.
    @discardableResult
    public func write(at gpa: UInt64, from buffer: UnsafeRawBufferPointer) -> Bool {
        guard forEachPiece(at: gpa, count: buffer.count, { _, _, _ in }) else { return false }
        _ = forEachPiece(at: gpa, count: buffer.count) { p, done, n in
            // SAFETY: forEachPiece hands out only [p, p+n) inside one mapped region; buffer has done+n bytes.
            p.copyMemory(from: buffer.baseAddress!.advanced(by: done), byteCount: n)
        }
        markDirty(gpa: gpa, length: UInt64(buffer.count))
        return true
    }

    /// For writes done through host pointers; no-op without a log.
    @inline(__always)
    public func markDirty(gpa: UInt64, length: UInt64) {
        log?.mark(gpa: gpa, length: length)
    }
}
