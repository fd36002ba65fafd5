// SPDX-License-Identifier: Apache-2.0
// The parts of a libvirt domain XML the hook reads: identity (name, UUID), hostdev interfaces and
// plain PCI hostdevs (their aliases, MACs and source PCI addresses), virtio NICs' MACs, the
// <qemu:commandline> arguments that add the vRDMA device, whether guest RAM is shared, and our
// <metadata> element. Syntax and libvirt's own structure only; what vrdma makes of it is
// DomainPlan's business.

public struct PCIAddress: Hashable, Sendable, CustomStringConvertible {
    public let domain: UInt32
    public let bus: UInt32
    public let slot: UInt32
    public let function: UInt32

    public init(domain: UInt32, bus: UInt32, slot: UInt32, function: UInt32) {
        self.domain = domain
        self.bus = bus
        self.slot = slot
        self.function = function
    }

    /// sysfs form "0000:03:10.2".
    public init?(sysfsName: String) {
        let colon = sysfsName.split(separator: ":")
        guard colon.count == 3 else { return nil }
        let slotFunction = colon[2].split(separator: ".")
        guard slotFunction.count == 2, let d = UInt32(colon[0], radix: 16), let b = UInt32(colon[1], radix: 16),
              let s = UInt32(slotFunction[0], radix: 16), let f = UInt32(slotFunction[1], radix: 16) else { return nil }
        self.init(domain: d, bus: b, slot: s, function: f)
    }

    static func hex(_ v: UInt32, _ width: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    public var description: String {
        "\(Self.hex(domain, 4)):\(Self.hex(bus, 2)):\(Self.hex(slot, 2)).\(Self.hex(function, 1))"
    }

    /// libvirt's attribute values, in its own spelling ("0x0000", "0x03", "0x10", "0x2").
    var libvirtAttributes: [String: String] {
        ["domain": "0x" + Self.hex(domain, 4), "bus": "0x" + Self.hex(bus, 2),
         "slot": "0x" + Self.hex(slot, 2), "function": "0x" + Self.hex(function, 1)]
    }
}

/// A PCI function passed to the guest: `<interface type='hostdev'>` or `<hostdev type='pci'>`.
public struct DomainHostdev: Sendable {
    public enum Kind: String, Sendable { case interface, hostdev }
    public let kind: Kind
    public let alias: String?
    /// `<interface>` only: libvirt sets this MAC on the VF itself.
    public let mac: MACAddress?
    public let address: PCIAddress?
    /// Byte ranges of the domain/bus/slot/function attribute values, for the migrate filter.
    public let addressValueRanges: [String: Range<Int>]
    public let line: Int
}

/// Any `<interface>` with a MAC (a virtio NIC the vRDMA device is paired with, for RoCE GIDs).
public struct DomainInterface: Sendable {
    public let type: String
    public let alias: String?
    public let mac: MACAddress?
}

public struct DomainDefinition: Sendable {
    public static let qemuNamespace = "http://libvirt.org/schemas/domain/qemu/1.0"

    public let name: String
    public let uuid: String
    public let hostdevs: [DomainHostdev]
    public let interfaces: [DomainInterface]
    /// `<qemu:commandline><qemu:arg value=.../>` in order.
    public let qemuArguments: [String]
    /// Guest RAM is shared with other processes (vhost-user needs it): memoryBacking access
    /// mode='shared', or every NUMA cell memAccess='shared'.
    public let sharedMemory: Bool
    /// The `<metadata>` child in the vrdma namespace, if any.
    public let vrdmaMetadata: XMLTree.Element?
    /// The document as given (the filter edits it in place).
    public let xml: String

    public static func parse(_ xml: String) throws(HookError) -> DomainDefinition {
        let root: XMLTree.Element
        do throws(XMLError) { root = try XMLTree.parse(xml) } catch { throw .xml(error) }
        guard root.localName == "domain", root.namespaceURI == nil else {
            throw .configuration("domain XML: the root element is <\(root.qualifiedName)>, not <domain>")
        }
        guard let name = root.child("name")?.text.trimmed, !name.isEmpty else {
            throw .configuration("domain XML: no <name>")
        }
        guard let uuid = root.child("uuid")?.text.trimmed, isUUID(uuid) else {
            throw .configuration("domain XML: no valid <uuid> (libvirt always adds one; add it when writing XML by hand)")
        }
        var hostdevs: [DomainHostdev] = []
        var interfaces: [DomainInterface] = []
        if let devices = root.child("devices") {
            for e in devices.children {
                guard e.namespaceURI == nil else { continue }
                let alias = e.child("alias")?["name"]
                if e.localName == "interface" {
                    let type = e["type"] ?? ""
                    var mac: MACAddress?
                    if let text = e.child("mac")?["address"] {
                        guard let m = MACAddress(text) else { throw .configuration("domain XML: interface MAC '\(text)' is not aa:bb:cc:dd:ee:ff") }
                        mac = m
                    }
                    interfaces.append(DomainInterface(type: type, alias: alias, mac: mac))
                    if type == "hostdev" {
                        hostdevs.append(try hostdev(e, kind: .interface, alias: alias, mac: mac))
                    }
                } else if e.localName == "hostdev", e["type"] == "pci" {
                    hostdevs.append(try hostdev(e, kind: .hostdev, alias: alias, mac: nil))
                }
            }
        }
        var arguments: [String] = []
        for cl in root.children where cl.localName == "commandline" && cl.namespaceURI == qemuNamespace {
            for arg in cl.children where arg.localName == "arg" && arg.namespaceURI == qemuNamespace {
                arguments.append(arg["value"] ?? "")
            }
        }
        let metadata = root.child("metadata")?.children.filter { $0.namespaceURI == VRDMAMetadata.namespace } ?? []
        guard metadata.count <= 1 else {
            throw .configuration("vrdma metadata: \(metadata.count) elements in the vrdma namespace; libvirt keeps one per namespace")
        }
        return DomainDefinition(name: name, uuid: uuid.lowercased(), hostdevs: hostdevs, interfaces: interfaces,
                                qemuArguments: arguments, sharedMemory: sharedMemory(root), vrdmaMetadata: metadata.first, xml: xml)
    }

    static func hostdev(_ e: XMLTree.Element, kind: DomainHostdev.Kind, alias: String?, mac: MACAddress?) throws(HookError) -> DomainHostdev {
        guard let a = e.child(path: "source", "address") else {
            return DomainHostdev(kind: kind, alias: alias, mac: mac, address: nil, addressValueRanges: [:], line: e.line)
        }
        var values: [String: UInt32] = [:]
        var ranges: [String: Range<Int>] = [:]
        for field in ["domain", "bus", "slot", "function"] {
            guard let attr = a.attribute(field) else {
                if field == "domain" { values[field] = 0; continue }
                throw .configuration("domain XML line \(a.line): <\(kind.rawValue)> source address has no \(field)")
            }
            let t = attr.value
            let v = t.hasPrefix("0x") || t.hasPrefix("0X") ? UInt32(t.dropFirst(2), radix: 16) : UInt32(t)
            guard let v else { throw .configuration("domain XML line \(a.line): PCI \(field) '\(t)' is not a number") }
            values[field] = v
            ranges[field] = attr.valueRange
        }
        let address = PCIAddress(domain: values["domain"]!, bus: values["bus"]!, slot: values["slot"]!, function: values["function"]!)
        return DomainHostdev(kind: kind, alias: alias, mac: mac, address: address, addressValueRanges: ranges, line: e.line)
    }

    static func sharedMemory(_ root: XMLTree.Element) -> Bool {
        if root.child(path: "memoryBacking", "access")?["mode"] == "shared" { return true }
        let cells = root.child(path: "cpu", "numa")?.children("cell") ?? []
        return !cells.isEmpty && cells.allSatisfy { $0["memAccess"] == "shared" }
    }

    static func isUUID(_ s: String) -> Bool {
        let groups = s.split(separator: "-", omittingEmptySubsequences: false)
        if groups.count == 1 { return s.count == 32 && s.allSatisfy(\.isHexDigit) }
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    /// The QEMU option strings that follow `-flag` (or `--flag`) in the commandline arguments.
    public func qemuOptions(following flag: String) -> [QEMUOptions] {
        var out: [QEMUOptions] = []
        var i = 0
        while i < qemuArguments.count {
            let a = qemuArguments[i]
            if a == "-" + flag || a == "--" + flag, i + 1 < qemuArguments.count {
                out.append(QEMUOptions(qemuArguments[i + 1]))
                i += 2
            } else if a.hasPrefix("-" + flag + "=") || a.hasPrefix("--" + flag + "=") {
                out.append(QEMUOptions(String(a[a.index(after: a.firstIndex(of: "=")!)...])))
                i += 1
            } else {
                i += 1
            }
        }
        return out
    }
}

/// A QEMU option string such as "socket,id=rdma0,path=/run/x.sock,reconnect=1": an optional
/// leading implied value (the backend or driver) and key=value pairs; ",," is a literal comma.
public struct QEMUOptions: Sendable {
    public let implied: String?
    public let values: [String: String]
    public let text: String

    public init(_ text: String) {
        self.text = text
        var items: [String] = []
        var current = ""
        var chars = Array(text)
        var i = 0
        while i < chars.count {
            if chars[i] == "," {
                if i + 1 < chars.count && chars[i + 1] == "," { current.append(","); i += 2; continue }
                items.append(current)
                current = ""
            } else {
                current.append(chars[i])
            }
            i += 1
        }
        items.append(current)
        chars = []
        var implied: String?
        var values: [String: String] = [:]
        for (n, item) in items.enumerated() {
            if let eq = item.firstIndex(of: "=") {
                values[String(item[..<eq])] = String(item[item.index(after: eq)...])
            } else if n == 0 {
                implied = item
            } else {
                values[item] = "on"
            }
        }
        self.implied = implied
        self.values = values
    }

    public subscript(_ key: String) -> String? { values[key] }
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
