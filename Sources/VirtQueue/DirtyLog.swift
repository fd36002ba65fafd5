// SPDX-License-Identifier: Apache-2.0
// The migration dirty bitmap shared with the front-end (SET_LOG_BASE, vhost-user §1.7): one bit per
// 4 KiB guest-physical page from GPA 0. QEMU drains it with atomic xchg while we write, so every
// update is an atomic byte OR; a page beyond the bitmap is dropped rather than written out of bounds.
import CLinuxShims
import LinuxSystem
import Synchronization

public final class DirtyLog: Sendable {
    /// VHOST_LOG_PAGE.
    public static let pageSize: UInt64 = 4096

    public let mapping: MemoryMapping
    /// The bitmap is mapping.base + offset ..< + size bytes; it covers size * 8 pages.
    public let offset: Int, size: Int
    private let dropped = Atomic<Int>(0)

    /// Marks that fell (partly) past the bitmap: the front-end sized it too small, which loses dirty pages.
    public var droppedMarks: Int { dropped.load(ordering: .relaxed) }

    public init(mapping: MemoryMapping, offset: Int, size: Int) throws(GuestMemoryError) {
        guard offset >= 0, size >= 0, offset <= mapping.length, size <= mapping.length - offset else {
            throw .mappingTooSmall(GuestMemoryRegion(guestPhysicalAddress: 0, size: UInt64(max(size, 0)), userAddress: 0, mmapOffset: UInt64(max(offset, 0))))
        }
        self.mapping = mapping
        self.offset = offset
        self.size = size
    }

    private var pageCount: UInt64 { UInt64(size) * 8 }

    public func mark(gpa: UInt64, length: UInt64) {
        guard length > 0 else { return }
        let first = gpa / Self.pageSize
        // Saturate instead of wrapping: a range running past UInt64.max ends at the last page.
        let (lastByte, o) = gpa.addingReportingOverflow(length - 1)
        let last = (o ? UInt64.max : lastByte) / Self.pageSize
        guard first < pageCount else { dropped.add(1, ordering: .relaxed); return }
        if last >= pageCount { dropped.add(1, ordering: .relaxed) }
        let end = min(last, pageCount - 1)
        let bitmap = mapping.base + offset
        var byte = first / 8
        while byte <= end / 8 {
            let lo = byte == first / 8 ? first % 8 : 0
            let hi = byte == end / 8 ? end % 8 : 7
            let mask = UInt8(truncatingIfNeeded: (0xFF << lo) & (0xFF >> (7 - hi)))
            // SAFETY: byte <= end/8 < size because end < pageCount = size*8; the bitmap lies in the mapping (init).
            CLinuxShims_atomic_or_u8(bitmap + Int(byte), mask)
            byte += 1
        }
    }

    public func isDirty(page: UInt64) -> Bool {
        guard page < pageCount else { return false }
        // SAFETY: page/8 < size, checked above.
        let b = (mapping.base + offset + Int(page / 8)).load(as: UInt8.self)
        return b & (1 << (page % 8)) != 0
    }
}
