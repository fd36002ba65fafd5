// SPDX-License-Identifier: Apache-2.0
// What the hook will do for one domain, worked out from the XML and the settings alone (no host
// access): each VF's wanted identity, with derived values filled in, and the back-end's command
// line. Every inconsistency between our metadata and the rest of the domain XML is refused here,
// before anything on the host is touched.

/// A value and whether the XML gave it (explicit) or the hook derived it.
public struct Requested<Value: Sendable & Equatable>: Sendable, Equatable {
    public let value: Value
    public let explicit: Bool
}

public struct VFPlan: Sendable, Equatable {
    /// How messages name it: "hostdev ua-sriov0", "device rdma0", "hostdev VF 2 of eth0".
    public let label: String
    public let backing: VRDMAMetadata.Backing
    public let mac: Requested<MACAddress>?
    public let nodeGUID: Requested<GUID>
    public let portGUID: Requested<GUID>
    /// The PCI address the domain passes through for this VF, when linked by alias.
    public let hostdevAddress: PCIAddress?
    public let hostdevAlias: String?
}

public struct BackendPlan: Sendable, Equatable {
    public let provider: String
    /// argv without the binary.
    public let arguments: [String]
    public let sockets: [String]
}

public struct DomainPlan: Sendable, Equatable {
    public let name: String
    public let uuid: String
    public let vfs: [VFPlan]
    public let backend: BackendPlan?
    public let stateDirectory: String

    /// nil when the domain has no vrdma metadata (not ours: the hook leaves it alone).
    public static func make(_ domain: DomainDefinition, settings: HookSettings) throws(HookError) -> DomainPlan? {
        guard let element = domain.vrdmaMetadata else { return nil }
        let metadata = try VRDMAMetadata.parse(element)
        return try make(domain, metadata: metadata, settings: settings)
    }

    public static func make(_ domain: DomainDefinition, metadata: VRDMAMetadata, settings: HookSettings) throws(HookError) -> DomainPlan {
        let uuid = domain.uuid
        var vfs: [VFPlan] = []

        for (i, h) in metadata.hostdevs.enumerated() {
            var linked: DomainHostdev?
            if let alias = h.alias {
                let matches = domain.hostdevs.filter { $0.alias == alias }
                guard let first = matches.first else {
                    throw .configuration("vrdma hostdev alias '\(alias)' matches no <interface type='hostdev'> or PCI <hostdev> of the domain")
                }
                guard matches.count == 1 else { throw .configuration("alias '\(alias)' is on \(matches.count) devices of the domain") }
                linked = first
                guard first.address != nil else {
                    throw .configuration("<\(first.kind.rawValue)> '\(alias)' (line \(first.line)) has no <source><address>: the hook checks it is \(h.backing)")
                }
            }
            let label = h.alias.map { "hostdev \($0)" } ?? "hostdev \(h.backing)"
            var mac: Requested<MACAddress>
            if let given = h.identity.mac {
                if let m = linked?.mac, m != given {
                    throw .configuration("\(label): metadata mac \(given) differs from the interface's <mac address='\(m)'/>")
                }
                mac = Requested(value: given, explicit: true)
            } else if let m = linked?.mac {
                mac = Requested(value: m, explicit: true)
            } else {
                mac = Requested(value: IdentityDerivation.mac(uuid: uuid, role: .hostdevMAC, index: i), explicit: false)
            }
            vfs.append(VFPlan(
                label: label, backing: h.backing, mac: mac,
                nodeGUID: h.identity.nodeGUID.map { Requested(value: $0, explicit: true) }
                    ?? Requested(value: IdentityDerivation.guid(uuid: uuid, role: .hostdevNodeGUID, index: i), explicit: false),
                portGUID: h.identity.portGUID.map { Requested(value: $0, explicit: true) }
                    ?? Requested(value: IdentityDerivation.guid(uuid: uuid, role: .hostdevPortGUID, index: i), explicit: false),
                hostdevAddress: linked?.address, hostdevAlias: h.alias))
        }

        var backend: BackendPlan?
        if !metadata.devices.isEmpty {
            guard domain.sharedMemory else {
                throw .configuration("guest RAM is not shared with the back-end: add <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>")
            }
            let nodeBase = try nodeGUIDBase(metadata.devices, uuid: uuid)
            let chardevs = domain.qemuOptions(following: "chardev")
            let qemuDevices = domain.qemuOptions(following: "device")
            var sockets: [String] = []
            var macs: [MACAddress?] = []
            for (i, d) in metadata.devices.enumerated() {
                let label = "device \(d.chardev)"
                guard let chardev = chardevs.first(where: { $0["id"] == d.chardev }) else {
                    throw .configuration("\(label): no '-chardev socket,id=\(d.chardev),path=...' in <qemu:commandline>")
                }
                guard chardev.implied == "socket" else {
                    throw .configuration("\(label): -chardev \(d.chardev) is '\(chardev.implied ?? "")', not a socket")
                }
                guard let path = chardev["path"] else { throw .configuration("\(label): -chardev \(d.chardev) has no path=") }
                if let server = chardev["server"], ["on", "yes", "true"].contains(server) {
                    throw .configuration("\(label): -chardev \(d.chardev) has server=\(server); the back-end listens and QEMU connects")
                }
                if let s = d.socket, s != path {
                    throw .configuration("\(label): metadata socket \(s) differs from the -chardev path \(path)")
                }
                guard path.hasPrefix("/"), path.utf8.count <= 107 else {
                    throw .configuration("\(label): socket path \(path) must be absolute and at most 107 bytes")
                }
                guard !sockets.contains(path) else { throw .configuration("\(label): socket \(path) is used by another device") }
                guard qemuDevices.contains(where: { $0.implied == "vhost-user-rdma-pci" && $0["chardev"] == d.chardev }) else {
                    throw .configuration("\(label): no '-device vhost-user-rdma-pci,chardev=\(d.chardev)' in <qemu:commandline>")
                }
                sockets.append(path)

                var mac: Requested<MACAddress>?
                if let m = d.identity.mac {
                    mac = Requested(value: m, explicit: true)
                } else if let alias = d.interface {
                    guard let nic = domain.interfaces.first(where: { $0.alias == alias }) else {
                        throw .configuration("\(label): interface='\(alias)' matches no <interface> alias of the domain")
                    }
                    guard let m = nic.mac else { throw .configuration("\(label): interface '\(alias)' has no <mac address>") }
                    mac = Requested(value: m, explicit: true)
                } else if d.backing != nil {
                    mac = Requested(value: IdentityDerivation.mac(uuid: uuid, role: .deviceMAC, index: i), explicit: false)
                }
                macs.append(mac?.value)
                let node = GUID(nodeBase &+ UInt64(i))
                if let b = d.backing {
                    vfs.append(VFPlan(
                        label: label, backing: b, mac: mac,
                        nodeGUID: Requested(value: node, explicit: d.identity.nodeGUID != nil),
                        portGUID: d.identity.portGUID.map { Requested(value: $0, explicit: true) }
                            ?? Requested(value: IdentityDerivation.guid(uuid: uuid, role: .devicePortGUID, index: i), explicit: false),
                        hostdevAddress: nil, hostdevAlias: nil))
                }
            }
            let b = metadata.backend
            if b.provider == "soft" && !b.options.isEmpty {
                throw .configuration("provider soft takes no options (given: \(b.options.map(\.name).joined(separator: ", ")))")
            }
            var args = sockets.flatMap { ["--socket-path", $0] }
            args += ["--node-guid", GUID(nodeBase).hex]
            // The daemon pairs the n-th --mac with the n-th device: fill gaps with "none" (zero).
            if let last = macs.lastIndex(where: { $0 != nil }) {
                for m in macs[...last] { args += ["--mac", (m ?? MACAddress(bytes: [0, 0, 0, 0, 0, 0])!).description] }
            }
            args += ["--log-level", b.logLevel ?? "info"]
            if let w = b.workers { args += ["--workers", String(w)] }
            if let p = b.pollMicroseconds { args += ["--poll-us", String(p)] }
            for q in VRDMAMetadata.Quota.allCases { if let v = b.quotas[q] { args += ["--\(q.rawValue)", String(v)] } }
            if b.provider != "soft" {
                args += ["--provider", b.provider]
                for o in b.options { args += ["--provider-option", "\(o.name)=\(o.value)"] }
            }
            backend = BackendPlan(provider: b.provider, arguments: args, sockets: sockets)
        }
        return DomainPlan(name: domain.name, uuid: uuid, vfs: vfs, backend: backend,
                          stateDirectory: settings.runDirectory + "/" + uuid)
    }

    /// The daemon numbers its devices' node GUIDs from --node-guid up: device i has base + i. Given
    /// GUIDs must fit that; without any, the base is derived from the UUID.
    static func nodeGUIDBase(_ devices: [VRDMAMetadata.Device], uuid: String) throws(HookError) -> UInt64 {
        var base: UInt64?
        for (i, d) in devices.enumerated() {
            guard let g = d.identity.nodeGUID else { continue }
            let b = g.value &- UInt64(i)
            if let base, base != b {
                throw .configuration("device \(d.chardev): node-guid \(g) breaks the back-end's numbering "
                    + "(device n has the first device's node GUID + n: expected \(GUID(base &+ UInt64(i))))")
            }
            base = b
        }
        let chosen = base ?? IdentityDerivation.guid(uuid: uuid, role: .deviceNodeGUID, index: 0).value
        for i in 0..<devices.count where chosen &+ UInt64(i) == 0 {
            throw .configuration("device \(devices[i].chardev): its node GUID would be zero; choose other node-guid values")
        }
        return chosen
    }
}
