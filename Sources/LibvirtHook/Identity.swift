// SPDX-License-Identifier: Apache-2.0
// The identities the hook hands out: Ethernet MACs and InfiniBand GUIDs, their text forms, and
// the deterministic derivation from the domain UUID used when the domain XML names none. The
// derivation is part of the operator contract (docs/libvirt.md): changing it changes the GUIDs
// of every existing domain.

public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// "aa:bb:cc:dd:ee:ff" (also accepts '-' separators and upper case).
    public init?(_ text: String) {
        let parts = text.split(separator: text.contains("-") ? "-" : ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var b: [UInt8] = []
        for p in parts {
            guard p.count == 2, let v = UInt8(p, radix: 16) else { return nil }
            b.append(v)
        }
        bytes = b
    }

    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }
    public var isMulticast: Bool { bytes[0] & 1 == 1 }

    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}

/// An EUI-64 InfiniBand GUID (node or port), kept as the number the kernel takes in
/// `struct ifla_vf_guid` and the daemon's --node-guid.
public struct GUID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// "11:22:33:44:55:66:77:88" (ip-link's form), "0x1122334455667788" or "1122334455667788".
    public init?(_ text: String) {
        if text.contains(":") {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 8 else { return nil }
            var v: UInt64 = 0
            for p in parts {
                guard (1...2).contains(p.count), let b = UInt8(p, radix: 16) else { return nil }
                v = v << 8 | UInt64(b)
            }
            value = v
        } else {
            let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? text.dropFirst(2) : Substring(text)
            guard (1...16).contains(digits.count), let v = UInt64(digits, radix: 16) else { return nil }
            value = v
        }
    }

    /// ip-link's form.
    public var description: String {
        (0..<8).map { i in
            let b = UInt8(truncatingIfNeeded: value >> (56 - 8 * i))
            return (b < 16 ? "0" : "") + String(b, radix: 16)
        }.joined(separator: ":")
    }

    /// The daemon's --node-guid form: 16 hex digits.
    public var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

/// Identities derived from the domain UUID, for devices whose XML names none.
///
/// h = splitmix64 finaliser of FNV-1a-64 over "vrdma:<uuid lower case>:<role>:<index>".
/// A MAC is the low 48 bits of h, big-endian, with the first octet made locally administered and
/// unicast (| 0x02, & ~0x01). A GUID is h with its first octet treated the same way, so it is
/// never zero and never collides with a vendor-assigned (universally administered) GUID.
public enum IdentityDerivation {
    public enum Role: String, Sendable {
        case deviceNodeGUID = "device-node-guid"
        case devicePortGUID = "device-port-guid"
        case deviceMAC = "device-mac"
        case hostdevNodeGUID = "hostdev-node-guid"
        case hostdevPortGUID = "hostdev-port-guid"
        case hostdevMAC = "hostdev-mac"
    }

    static func hash(uuid: String, role: Role, index: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in "vrdma:\(uuid.lowercased()):\(role.rawValue):\(index)".utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 30
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 27
        h = h &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return h
    }

    public static func guid(uuid: String, role: Role, index: Int) -> GUID {
        let h = hash(uuid: uuid, role: role, index: index)
        return GUID((h & ~(UInt64(0x01) << 56)) | (UInt64(0x02) << 56))
    }

    public static func mac(uuid: String, role: Role, index: Int) -> MACAddress {
        let h = hash(uuid: uuid, role: role, index: index)
        var bytes = (0..<6).map { i in UInt8(truncatingIfNeeded: h >> (40 - 8 * i)) }
        bytes[0] = (bytes[0] & 0xFE) | 0x02
        return MACAddress(bytes: bytes)!
    }
}
