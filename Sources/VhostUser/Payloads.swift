// SPDX-License-Identifier: Apache-2.0
// Payload layouts of the requests this back-end implements (vhost-user spec, "Message types").
// Each has a fixed encoded size, a decoder that trusts the size already checked, and an encoder
// (the in-process front-end speaks the same bytes).

/// `struct vhost_vring_state`: a ring index and a number (size, base index, enable flag).
public struct VringState: Equatable, Sendable {
    public static let encodedSize = 8
    public var index: UInt32
    public var num: UInt32
    public init(index: UInt32, num: UInt32) { self.index = index; self.num = num }
    public init(_ r: inout ByteReader) { index = r.read(); num = r.read() }
    public var encoded: [UInt8] { var w = ByteWriter(); w.write(index); w.write(num); return w.bytes }
}

/// `struct vhost_vring_addr`: ring addresses in the front-end's virtual address space.
public struct VringAddress: Equatable, Sendable {
    public static let encodedSize = 40
    /// VHOST_VRING_F_LOG: log used-ring writes at `logGuestAddress`.
    public static let logFlag: UInt32 = 1
    public var index: UInt32
    public var flags: UInt32
    public var descriptorUserAddress: UInt64
    public var usedUserAddress: UInt64
    public var availUserAddress: UInt64
    public var logGuestAddress: UInt64
    public init(index: UInt32, flags: UInt32, descriptorUserAddress: UInt64, usedUserAddress: UInt64,
                availUserAddress: UInt64, logGuestAddress: UInt64) {
        self.index = index
        self.flags = flags
        self.descriptorUserAddress = descriptorUserAddress
        self.usedUserAddress = usedUserAddress
        self.availUserAddress = availUserAddress
        self.logGuestAddress = logGuestAddress
    }
    public init(_ r: inout ByteReader) {
        index = r.read(); flags = r.read()
        descriptorUserAddress = r.read(); usedUserAddress = r.read(); availUserAddress = r.read(); logGuestAddress = r.read()
    }
    public var encoded: [UInt8] {
        var w = ByteWriter()
        w.write(index); w.write(flags)
        w.write(descriptorUserAddress); w.write(usedUserAddress); w.write(availUserAddress); w.write(logGuestAddress)
        return w.bytes
    }
}

/// One guest RAM region as the front-end describes it (`VhostUserMemoryRegion`).
public struct MemoryRegionDescription: Equatable, Sendable {
    public static let encodedSize = 32
    public var guestPhysicalAddress: UInt64
    public var size: UInt64
    public var userAddress: UInt64
    public var mmapOffset: UInt64
    public init(guestPhysicalAddress: UInt64, size: UInt64, userAddress: UInt64, mmapOffset: UInt64) {
        self.guestPhysicalAddress = guestPhysicalAddress
        self.size = size
        self.userAddress = userAddress
        self.mmapOffset = mmapOffset
    }
    public init(_ r: inout ByteReader) {
        guestPhysicalAddress = r.read(); size = r.read(); userAddress = r.read(); mmapOffset = r.read()
    }
    public func encode(into w: inout ByteWriter) {
        w.write(guestPhysicalAddress); w.write(size); w.write(userAddress); w.write(mmapOffset)
    }
}

/// SET_MEM_TABLE: `u32 nregions; u32 padding; region[nregions]`, one fd per region in order.
public enum MemoryTablePayload {
    /// QEMU's VHOST_MEMORY_BASELINE_NREGIONS: SET_MEM_TABLE never carries more.
    public static let maxRegions = 8
    public static func encode(_ regions: [MemoryRegionDescription]) -> [UInt8] {
        var w = ByteWriter()
        w.write(UInt32(regions.count)); w.write(UInt32(0))
        for r in regions { r.encode(into: &w) }
        return w.bytes
    }
}

/// ADD_MEM_REG / REM_MEM_REG: `u64 padding; region`.
public enum SingleRegionPayload {
    public static let encodedSize = 40
    public static func encode(_ region: MemoryRegionDescription) -> [UInt8] {
        var w = ByteWriter(); w.write(UInt64(0)); region.encode(into: &w); return w.bytes
    }
}

/// SET_LOG_BASE: the dirty log's size and offset in the attached memfd.
public struct LogDescription: Equatable, Sendable {
    public static let encodedSize = 16
    public var mmapSize: UInt64
    public var mmapOffset: UInt64
    public init(mmapSize: UInt64, mmapOffset: UInt64) { self.mmapSize = mmapSize; self.mmapOffset = mmapOffset }
    public init(_ r: inout ByteReader) { mmapSize = r.read(); mmapOffset = r.read() }
    public var encoded: [UInt8] { var w = ByteWriter(); w.write(mmapSize); w.write(mmapOffset); return w.bytes }
}

/// GET_CONFIG / SET_CONFIG: `u32 offset; u32 size; u32 flags; u8 payload[size]`.
public struct ConfigAccess: Equatable, Sendable {
    public static let headerSize = 12
    /// VHOST_USER_MAX_CONFIG_SIZE in QEMU: config space never exceeds 256 bytes.
    public static let maxSize = 256
    public var offset: UInt32
    public var size: UInt32
    public var flags: UInt32
    public var payload: [UInt8]
    public init(offset: UInt32, size: UInt32, flags: UInt32, payload: [UInt8]) {
        self.offset = offset; self.size = size; self.flags = flags; self.payload = payload
    }
    public var encoded: [UInt8] {
        var w = ByteWriter(); w.write(offset); w.write(size); w.write(flags); w.write(bytes: payload); return w.bytes
    }
}

/// GET/SET_INFLIGHT_FD (`VhostUserInflight`, padded to 24 bytes).
public struct InflightDescription: Equatable, Sendable {
    public static let encodedSize = 24
    public var mmapSize: UInt64
    public var mmapOffset: UInt64
    public var queueCount: UInt16
    public var queueSize: UInt16
    public init(mmapSize: UInt64, mmapOffset: UInt64, queueCount: UInt16, queueSize: UInt16) {
        self.mmapSize = mmapSize; self.mmapOffset = mmapOffset; self.queueCount = queueCount; self.queueSize = queueSize
    }
    public init(_ r: inout ByteReader) { mmapSize = r.read(); mmapOffset = r.read(); queueCount = r.read(); queueSize = r.read() }
    public var encoded: [UInt8] {
        var w = ByteWriter(); w.write(mmapSize); w.write(mmapOffset); w.write(queueCount); w.write(queueSize); w.write(UInt32(0))
        return w.bytes
    }
}

/// The u64 of SET_VRING_KICK/CALL/ERR: bits 0-7 ring index, bit 8 "no descriptor attached".
public struct VringDescriptorIndex: Equatable, Sendable {
    public static let noDescriptorFlag: UInt64 = 0x100
    public var index: UInt32
    public var hasDescriptor: Bool
    public init(index: UInt32, hasDescriptor: Bool) { self.index = index; self.hasDescriptor = hasDescriptor }
    public init(rawValue: UInt64) {
        index = UInt32(rawValue & 0xff)
        hasDescriptor = rawValue & Self.noDescriptorFlag == 0
    }
    public var rawValue: UInt64 { UInt64(index) | (hasDescriptor ? 0 : Self.noDescriptorFlag) }
    /// Any bit besides the index and NOFD is a syntax error.
    public static func isValid(_ raw: UInt64) -> Bool { raw & ~(0xff | noDescriptorFlag) == 0 }
}

public func encodeU64(_ value: UInt64) -> [UInt8] { var w = ByteWriter(); w.write(value); return w.bytes }
