// SPDX-License-Identifier: Apache-2.0
// Feature bits: the vhost-user protocol features and the transport-level virtio feature bits that
// every vhost-user device shares. Device-specific bits (0-23) belong to the device.

public struct ProtocolFeatures: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let multipleQueues = ProtocolFeatures(rawValue: 1 << 0)       // MQ
    public static let logSharedMemory = ProtocolFeatures(rawValue: 1 << 1)      // LOG_SHMFD
    public static let rarp = ProtocolFeatures(rawValue: 1 << 2)
    public static let replyAck = ProtocolFeatures(rawValue: 1 << 3)
    public static let mtu = ProtocolFeatures(rawValue: 1 << 4)
    public static let backendRequests = ProtocolFeatures(rawValue: 1 << 5)      // BACKEND_REQ
    public static let crossEndian = ProtocolFeatures(rawValue: 1 << 6)
    public static let cryptoSession = ProtocolFeatures(rawValue: 1 << 7)
    public static let pageFault = ProtocolFeatures(rawValue: 1 << 8)
    public static let config = ProtocolFeatures(rawValue: 1 << 9)
    public static let backendSendFD = ProtocolFeatures(rawValue: 1 << 10)
    public static let hostNotifier = ProtocolFeatures(rawValue: 1 << 11)
    public static let inflightSharedMemory = ProtocolFeatures(rawValue: 1 << 12)
    public static let resetDevice = ProtocolFeatures(rawValue: 1 << 13)
    public static let inbandNotifications = ProtocolFeatures(rawValue: 1 << 14)
    public static let configureMemorySlots = ProtocolFeatures(rawValue: 1 << 15)
    public static let status = ProtocolFeatures(rawValue: 1 << 16)

    static let names: [(ProtocolFeatures, String)] = [
        (.multipleQueues, "MQ"), (.logSharedMemory, "LOG_SHMFD"), (.rarp, "RARP"), (.replyAck, "REPLY_ACK"),
        (.mtu, "MTU"), (.backendRequests, "BACKEND_REQ"), (.crossEndian, "CROSS_ENDIAN"),
        (.cryptoSession, "CRYPTO_SESSION"), (.pageFault, "PAGEFAULT"), (.config, "CONFIG"),
        (.backendSendFD, "BACKEND_SEND_FD"), (.hostNotifier, "HOST_NOTIFIER"),
        (.inflightSharedMemory, "INFLIGHT_SHMFD"), (.resetDevice, "RESET_DEVICE"),
        (.inbandNotifications, "INBAND_NOTIFICATIONS"), (.configureMemorySlots, "CONFIGURE_MEM_SLOTS"),
        (.status, "STATUS"),
    ]

    public var description: String {
        var parts = Self.names.filter { contains($0.0) }.map(\.1)
        let unknown = rawValue & ~Self.names.reduce(0) { $0 | $1.0.rawValue }
        if unknown != 0 { parts.append("0x" + String(unknown, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}

/// Virtio feature bits that the transport (not the device type) defines, plus the two vhost bits.
public enum VirtioFeature {
    public static let notifyOnEmpty: UInt64 = 1 << 24
    public static let indirectDescriptors: UInt64 = 1 << 28
    public static let eventIndex: UInt64 = 1 << 29
    /// VHOST_USER_F_PROTOCOL_FEATURES: the legacy "UNUSED" bit, reused by vhost-user.
    public static let protocolFeatures: UInt64 = 1 << 30
    /// VHOST_F_LOG_ALL: the front-end asks for dirty-page logging (migration).
    public static let logAll: UInt64 = 1 << 26
    public static let version1: UInt64 = 1 << 32
    public static let accessPlatform: UInt64 = 1 << 33
    public static let ringPacked: UInt64 = 1 << 34
    public static let ringReset: UInt64 = 1 << 40
}
