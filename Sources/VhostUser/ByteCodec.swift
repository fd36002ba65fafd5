// SPDX-License-Identifier: Apache-2.0
// Little-endian field access over message bytes. vhost-user says "native byte order"; the daemon
// only runs on little-endian hosts (x86-64, aarch64), so the two coincide and the code says which.

public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }

    /// Reads a little-endian integer. The caller checked the total size first (syntax layer), so a
    /// short read here is a programming error.
    public mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        let size = MemoryLayout<T>.size
        precondition(offset + size <= bytes.count, "payload size was not validated")
        var value: T = 0
        for i in 0..<size { value |= T(truncatingIfNeeded: bytes[offset + i]) << (8 * i) }
        offset += size
        return value
    }

    public mutating func readBytes(_ count: Int) -> [UInt8] {
        precondition(offset + count <= bytes.count, "payload size was not validated")
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }
}

public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        for i in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }

    public mutating func write(bytes more: [UInt8]) { bytes.append(contentsOf: more) }
}
