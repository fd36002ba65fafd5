// SPDX-License-Identifier: Apache-2.0
// What prepare changed on the host, so release can undo it: each VF's previous MAC/GUIDs and the
// values set, and how the back-end runs. One text file per domain, <run-dir>/<uuid>/state,
// rewritten after every step so that a hook killed half-way still leaves an exact record.
//
//   vrdma-libvirt-hook state 1
//   domain <name>                       (percent-encoded)
//   vf <pf> <vf> <attribute> <previous|-> <set>   one line per attribute set (mac|node-guid|port-guid)
//   rebind <pci address> <driver>
//   backend process <pid> <start time in clock ticks>
//   backend systemd <unit>
//   socket <path>

import LinuxSystem

public struct StateRecord: Sendable, Equatable {
    public struct VFChangeRecord: Sendable, Equatable {
        public let pf: String
        public let vf: UInt32
        public let attribute: VFAttribute
        /// nil: the driver did not report it (cannot be restored).
        public let previous: String?
        public let set: String
    }

    public enum Backend: Sendable, Equatable {
        case process(pid: Int32, startTime: UInt64)
        case systemd(unit: String)
    }

    public static let header = "vrdma-libvirt-hook state 1"

    public var domain: String
    public var changes: [VFChangeRecord] = []
    public var rebinds: [(PCIAddress, String)] = []
    public var backend: Backend?
    public var sockets: [String] = []

    public init(domain: String) { self.domain = domain }

    public static func == (a: StateRecord, b: StateRecord) -> Bool {
        a.domain == b.domain && a.changes == b.changes && a.backend == b.backend && a.sockets == b.sockets
            && a.rebinds.map { "\($0.0) \($0.1)" } == b.rebinds.map { "\($0.0) \($0.1)" }
    }

    static func attributeName(_ a: VFAttribute) -> String {
        switch a {
        case .mac: "mac"
        case .nodeGUID: "node-guid"
        case .portGUID: "port-guid"
        }
    }

    static func encode(_ s: String) -> String {
        var out = ""
        for u in s.utf8 {
            if u <= 0x20 || u == 0x25 || u >= 0x7f {
                let h = String(u, radix: 16, uppercase: true)
                out += "%" + (h.count == 1 ? "0" : "") + h
            } else {
                out.append(Character(UnicodeScalar(u)))
            }
        }
        return out
    }

    static func decode(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "%" {
                let hexEnd = s.index(i, offsetBy: 3, limitedBy: s.endIndex) ?? s.endIndex
                guard s.distance(from: i, to: hexEnd) == 3, let b = UInt8(s[s.index(after: i)..<hexEnd], radix: 16) else { return nil }
                bytes.append(b)
                i = hexEnd
            } else {
                bytes += Array(String(s[i]).utf8)
                i = s.index(after: i)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public var text: String {
        var lines = [Self.header, "domain \(Self.encode(domain))"]
        for c in changes {
            lines.append("vf \(c.pf) \(c.vf) \(Self.attributeName(c.attribute)) \(c.previous ?? "-") \(c.set)")
        }
        for (address, driver) in rebinds { lines.append("rebind \(address) \(driver)") }
        switch backend {
        case .process(let pid, let start): lines.append("backend process \(pid) \(start)")
        case .systemd(let unit): lines.append("backend systemd \(unit)")
        case nil: break
        }
        for s in sockets { lines.append("socket \(Self.encode(s))") }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func parse(_ text: String, source: String) throws(HookError) -> StateRecord {
        let lines = text.split(separator: "\n")
        guard lines.first == Substring(header) else { throw .host("\(source): not a vrdma hook state file") }
        var r = StateRecord(domain: "")
        for (n, line) in lines.enumerated().dropFirst() {
            let f = line.split(separator: " ")
            func bad() -> HookError { .host("\(source):\(n + 1): cannot read '\(line)'") }
            switch (f.first, f.count) {
            case ("domain", 2):
                guard let d = decode(f[1]) else { throw bad() }
                r.domain = d
            case ("vf", 6):
                guard let vf = UInt32(f[2]) else { throw bad() }
                let attribute: VFAttribute
                switch f[3] {
                case "mac": attribute = .mac
                case "node-guid": attribute = .nodeGUID
                case "port-guid": attribute = .portGUID
                default: throw bad()
                }
                r.changes.append(VFChangeRecord(pf: String(f[1]), vf: vf, attribute: attribute,
                                                previous: f[4] == "-" ? nil : String(f[4]), set: String(f[5])))
            case ("rebind", 3):
                guard let a = PCIAddress(sysfsName: String(f[1])) else { throw bad() }
                r.rebinds.append((a, String(f[2])))
            case ("backend", 4) where f[1] == "process":
                guard let pid = Int32(f[2]), let start = UInt64(f[3]) else { throw bad() }
                r.backend = .process(pid: pid, startTime: start)
            case ("backend", 3) where f[1] == "systemd":
                r.backend = .systemd(unit: String(f[2]))
            case ("socket", 2):
                guard let s = decode(f[1]) else { throw bad() }
                r.sockets.append(s)
            default:
                throw bad()
            }
        }
        return r
    }

    public static func path(stateDirectory: String) -> String { stateDirectory + "/state" }

    public static func load(stateDirectory: String) throws(HookError) -> StateRecord? {
        let p = path(stateDirectory: stateDirectory)
        guard let text = readTextFile(p) else { return nil }
        return try parse(text, source: p)
    }

    public func save(stateDirectory: String) throws(HookError) {
        do throws(SystemError) { try writeTextFile(Self.path(stateDirectory: stateDirectory), text) } catch { throw .system(error) }
    }
}
