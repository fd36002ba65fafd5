// SPDX-License-Identifier: Apache-2.0
// The vrdma element under the domain's <metadata>: its syntax only (known elements and
// attributes, value formats, duplicates). Every attribute is described in docs/libvirt.md.
// Unknown elements or attributes in our namespace are errors, so a typo cannot silently fall
// back to a default.

public struct VRDMAMetadata: Sendable, Equatable {
    public static let namespace = "urn:vrdma:libvirt-hook:1"

    /// Daemon quotas, spelled as the daemon's flags (--max-qp ...).
    public enum Quota: String, CaseIterable, Sendable {
        case maxQP = "max-qp", maxCQ = "max-cq", maxMR = "max-mr", maxPD = "max-pd"
        case maxSRQ = "max-srq", maxAH = "max-ah", maxPinnedBytes = "max-pinned-bytes"
    }

    public struct Backend: Sendable, Equatable {
        public var provider = "soft"
        public var options: [ProviderOption] = []
        public var logLevel: String?
        public var workers: Int?
        public var pollMicroseconds: UInt64?
        public var quotas: [Quota: UInt64] = [:]
    }

    public struct ProviderOption: Sendable, Equatable {
        public let name: String
        public let value: String
    }

    /// The identity values given in the XML (nil = derive or leave alone, see DomainPlan).
    public struct Identity: Sendable, Equatable {
        public var mac: MACAddress?
        public var nodeGUID: GUID?
        public var portGUID: GUID?
    }

    /// The host VF behind a device: PF network interface name and VF index.
    public struct Backing: Sendable, Hashable, CustomStringConvertible {
        public let pf: String
        public let vf: UInt32
        public var description: String { "VF \(vf) of \(pf)" }
    }

    /// A vRDMA device (vhost-user-rdma-pci) the back-end serves.
    public struct Device: Sendable, Equatable {
        public let chardev: String
        public let socket: String?
        /// Alias of the virtio NIC whose MAC the device reports (RoCE GIDs).
        public let interface: String?
        public let identity: Identity
        public let backing: Backing?
        public let line: Int
    }

    /// A VF passed through (`<interface type='hostdev'>` or `<hostdev>`).
    public struct Hostdev: Sendable, Equatable {
        /// Alias of the libvirt device this VF is ("ua-..."), or nil if not linked.
        public let alias: String?
        public let identity: Identity
        public let backing: Backing
        public let line: Int
    }

    public var backend = Backend()
    public var devices: [Device] = []
    public var hostdevs: [Hostdev] = []

    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    public static func parse(_ root: XMLTree.Element) throws(HookError) -> VRDMAMetadata {
        func fail(_ e: XMLTree.Element, _ message: String) -> HookError {
            .configuration("vrdma metadata line \(e.line): \(message)")
        }
        func checkAttributes(_ e: XMLTree.Element, _ allowed: Set<String>) throws(HookError) {
            for a in e.attributes where a.namespaceURI == nil && !allowed.contains(a.localName) {
                throw fail(e, "unknown attribute '\(a.localName)' on <\(e.localName)> (known: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
        func ours(_ e: XMLTree.Element, _ allowed: Set<String>) throws(HookError) -> [XMLTree.Element] {
            var out: [XMLTree.Element] = []
            for c in e.children {
                guard c.namespaceURI == namespace else {
                    throw fail(c, "<\(c.qualifiedName)> inside <\(e.localName)> is not in the vrdma namespace \(namespace)")
                }
                guard allowed.contains(c.localName) else {
                    throw fail(c, "unknown element <\(c.localName)> in <\(e.localName)>"
                        + (allowed.isEmpty ? " (it takes none)" : " (known: \(allowed.sorted().joined(separator: ", ")))"))
                }
                out.append(c)
            }
            return out
        }
        func integer<T: FixedWidthInteger>(_ e: XMLTree.Element, _ name: String, _ range: ClosedRange<T>) throws(HookError) -> T? {
            guard let t = e[name] else { return nil }
            guard let v = T(t.trimmed), range.contains(v) else { throw fail(e, "\(name)='\(t)' must be an integer in \(range.lowerBound)...\(range.upperBound)") }
            return v
        }
        func identity(_ e: XMLTree.Element) throws(HookError) -> Identity {
            var id = Identity()
            if let t = e["mac"] {
                guard let m = MACAddress(t) else { throw fail(e, "mac='\(t)' is not aa:bb:cc:dd:ee:ff") }
                guard !m.isZero, !m.isMulticast else { throw fail(e, "mac='\(t)' must be a unicast, non-zero address") }
                id.mac = m
            }
            for (attr, kp) in [("node-guid", \Identity.nodeGUID), ("port-guid", \Identity.portGUID)] {
                guard let t = e[attr] else { continue }
                guard let g = GUID(t) else { throw fail(e, "\(attr)='\(t)' is not a GUID (11:22:33:44:55:66:77:88 or 16 hex digits)") }
                guard g.value != 0 else { throw fail(e, "\(attr) must not be zero (RDMA CM fails with a zero GUID)") }
                id[keyPath: kp] = g
            }
            return id
        }
        func backing(_ e: XMLTree.Element, required: Bool) throws(HookError) -> Backing? {
            switch (e["pf"], e["vf"]) {
            case (nil, nil):
                if required { throw fail(e, "<\(e.localName)> needs pf='NETDEV' and vf='N'") }
                return nil
            case (let pf?, _?):
                guard isInterfaceName(pf) else { throw fail(e, "pf='\(pf)' is not a network interface name") }
                let vf: UInt32 = try integer(e, "vf", 0...65535)!
                return Backing(pf: pf, vf: vf)
            default:
                throw fail(e, "pf and vf go together")
            }
        }

        guard root.localName == "config" else {
            throw fail(root, "the vrdma metadata element is <\(root.localName)>; expected <config>")
        }
        try checkAttributes(root, [])
        var m = VRDMAMetadata()
        var sawBackend = false
        for e in try ours(root, ["backend", "device", "hostdev"]) {
            switch e.localName {
            case "backend":
                guard !sawBackend else { throw fail(e, "more than one <backend>") }
                sawBackend = true
                try checkAttributes(e, ["provider", "log-level", "workers", "poll-us"])
                if let p = e["provider"] {
                    guard !p.isEmpty, p.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                        throw fail(e, "provider='\(p)' is not a provider name")
                    }
                    m.backend.provider = p
                }
                if let l = e["log-level"] {
                    guard logLevels.contains(l) else { throw fail(e, "log-level='\(l)' is not one of \(logLevels.joined(separator: ", "))") }
                    m.backend.logLevel = l
                }
                m.backend.workers = try integer(e, "workers", 1...64)
                m.backend.pollMicroseconds = try integer(e, "poll-us", 0...1_000_000)
                var sawQuota = false
                for c in try ours(e, ["option", "quota"]) {
                    _ = try ours(c, [])
                    if c.localName == "option" {
                        try checkAttributes(c, ["name", "value"])
                        guard let n = c["name"], !n.isEmpty, let v = c["value"] else { throw fail(c, "<option> needs name and value") }
                        guard n.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
                            throw fail(c, "option name '\(n)' may hold letters, digits, '-', '_' and '.' only")
                        }
                        guard !m.backend.options.contains(where: { $0.name == n }) else { throw fail(c, "option '\(n)' given twice") }
                        m.backend.options.append(ProviderOption(name: n, value: v))
                    } else {
                        guard !sawQuota else { throw fail(c, "more than one <quota>") }
                        sawQuota = true
                        try checkAttributes(c, Set(Quota.allCases.map(\.rawValue)))
                        for q in Quota.allCases {
                            guard let t = c[q.rawValue] else { continue }
                            let limit: UInt64 = q == .maxPinnedBytes ? UInt64.max : UInt64(UInt32.max)
                            guard let v = q == .maxPinnedBytes ? parseByteSize(t) : UInt64(t.trimmed), v >= 1, v <= limit else {
                                throw fail(c, "\(q.rawValue)='\(t)' must be a positive integer"
                                    + (q == .maxPinnedBytes ? " (bytes; K, M, G, T suffixes allowed)" : " below 2^32"))
                            }
                            m.backend.quotas[q] = v
                        }
                    }
                }
            case "device":
                try checkAttributes(e, ["chardev", "socket", "interface", "mac", "node-guid", "port-guid", "pf", "vf"])
                _ = try ours(e, [])
                guard let chardev = e["chardev"] else { throw fail(e, "<device> needs chardev='ID' (the id of its -chardev socket)") }
                guard isQEMUID(chardev) else { throw fail(e, "chardev='\(chardev)' is not a QEMU id (a letter, then letters, digits, '-', '.', '_')") }
                guard !m.devices.contains(where: { $0.chardev == chardev }) else { throw fail(e, "chardev '\(chardev)' named by two devices") }
                if let s = e["socket"] {
                    guard s.hasPrefix("/"), s.utf8.count <= 107, !s.contains("\n") else { throw fail(e, "socket='\(s)' must be an absolute path of at most 107 bytes") }
                }
                let id = try identity(e)
                if e["interface"] != nil && id.mac != nil { throw fail(e, "give mac or interface, not both") }
                let b = try backing(e, required: false)
                if b == nil && id.portGUID != nil { throw fail(e, "port-guid needs a backing VF (pf and vf)") }
                m.devices.append(Device(chardev: chardev, socket: e["socket"], interface: e["interface"], identity: id, backing: b, line: e.line))
            default:  // hostdev
                try checkAttributes(e, ["alias", "pf", "vf", "mac", "node-guid", "port-guid"])
                _ = try ours(e, [])
                if let a = e["alias"], m.hostdevs.contains(where: { $0.alias == a }) { throw fail(e, "alias '\(a)' named by two hostdevs") }
                m.hostdevs.append(Hostdev(alias: e["alias"], identity: try identity(e), backing: try backing(e, required: true)!, line: e.line))
            }
        }
        guard !m.devices.isEmpty || !m.hostdevs.isEmpty else {
            throw fail(root, "<config> declares no <device> and no <hostdev>")
        }
        var backings: [Backing: Int] = [:]
        for (b, line) in m.devices.compactMap({ d in d.backing.map { ($0, d.line) } }) + m.hostdevs.map({ ($0.backing, $0.line) }) {
            if let first = backings[b] {
                throw .configuration("vrdma metadata line \(line): \(b) is already used on line \(first)")
            }
            backings[b] = line
        }
        return m
    }

    static func isInterfaceName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count < 16 && s != "." && s != ".." && !s.contains("/") && !s.contains(where: { $0.isWhitespace || $0 == ":" })
    }

    static func isQEMUID(_ s: String) -> Bool {
        guard let first = s.first, first.isASCII, first.isLetter else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_") }
    }

    /// "1073741824", "64K", "512M", "1G", "1T" (powers of 1024).
    static func parseByteSize(_ text: String) -> UInt64? {
        let t = text.trimmed
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        if let last = t.last, let unit = units[Character(last.uppercased())] {
            guard let n = UInt64(t.dropLast()) else { return nil }
            let (v, overflow) = n.multipliedReportingOverflow(by: unit)
            return overflow ? nil : v
        }
        return UInt64(t)
    }
}
