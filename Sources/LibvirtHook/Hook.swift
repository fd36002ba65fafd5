// SPDX-License-Identifier: Apache-2.0
// The hook's operations. prepare: validate the plan against the host, record the VFs' current
// identities, set the new ones one attribute at a time, rebind where a GUID changed, start the
// back-end; any failure undoes what was done, in reverse. release: stop the back-end and restore
// what the record says. migrate/restore: rewrite the hostdev PCI addresses for this host's VFs.
// Never calls libvirt (the caller holds its locks while the hook runs).
import Glibc
import LinuxSystem

/// One VF as found on this host, and what prepare will change on it.
public struct VFStep: Sendable {
    public struct Change: Sendable {
        public let attribute: VFAttribute
        public let previous: String?
        public let value: String
        public let request: VFChange
        public let explicit: Bool
    }

    public let plan: VFPlan
    public let link: LinkInfo
    public let changes: [Change]
    /// Values already in place (nothing to do, nothing to restore).
    public let unchanged: [String]
    public let function: PCIAddress?
    public let driver: String?
    public let rebind: Bool
}

public final class Hook {
    public let settings: HookSettings
    let sriov: SRIOVSysfs
    let backend: any BackendControl
    var linkControl: (any LinkControl)?
    /// Things worth telling the operator that are not failures (written to stderr by main).
    public private(set) var notices: [String] = []

    public init(settings: HookSettings, links: (any LinkControl)? = nil, backend: (any BackendControl)? = nil) {
        self.settings = settings
        sriov = SRIOVSysfs(root: settings.sysfsRoot)
        self.backend = backend ?? BackendLauncher(settings: settings)
        linkControl = links
    }

    func links() throws(HookError) -> any LinkControl {
        if let linkControl { return linkControl }
        do throws(SystemError) {
            let l = try RouteNetlinkSocket()
            linkControl = l
            return l
        } catch { throw .system(error) }
    }

    // MARK: - Looking at the host

    public func resolve(_ plan: DomainPlan) throws(HookError) -> [VFStep] {
        var cache: [String: LinkInfo] = [:]
        var steps: [VFStep] = []
        for vf in plan.vfs {
            let b = vf.backing
            let link: LinkInfo
            if let cached = cache[b.pf] {
                link = cached
            } else {
                do throws(HookError) { link = try links().link(named: b.pf) } catch {
                    if case .netlink(let e) = error, e.errno == ENODEV { throw .host("\(vf.label): PF \(b.pf) does not exist on this host") }
                    throw error
                }
                cache[b.pf] = link
            }
            guard let count = link.numVFs, count > 0 else {
                throw .host("\(vf.label): \(b.pf) has no SR-IOV VFs (sriov_numvfs is 0 or the device has no SR-IOV)")
            }
            guard b.vf < count else { throw .host("\(vf.label): \(b.pf) has \(count) VFs, so VF \(b.vf) does not exist") }
            guard let current = link.vfs.first(where: { $0.vf == b.vf }) else {
                throw .host("\(vf.label): \(b.pf) reports no state for VF \(b.vf)")
            }
            let infiniband = link.type == LinkInfo.typeInfiniBand
            var changes: [VFStep.Change] = []
            var unchanged: [String] = []
            // Ethernet PFs get a MAC (given or derived) and GUIDs only if given; InfiniBand PFs
            // get GUIDs (given or derived) and a MAC only if given.
            if let mac = vf.mac, mac.explicit || !infiniband {
                if current.mac == mac.value {
                    unchanged.append("MAC \(mac.value)")
                } else {
                    changes.append(.init(attribute: .mac, previous: current.mac.description, value: mac.value.description,
                                         request: VFChange(vf: b.vf, mac: mac.value), explicit: mac.explicit))
                }
            }
            for (attribute, wanted, now) in [(VFAttribute.nodeGUID, vf.nodeGUID, current.nodeGUID), (.portGUID, vf.portGUID, current.portGUID)]
            where wanted.explicit || infiniband {
                if now == wanted.value {
                    unchanged.append("\(attribute.rawValue) \(wanted.value)")
                    continue
                }
                let request = attribute == .nodeGUID ? VFChange(vf: b.vf, nodeGUID: wanted.value) : VFChange(vf: b.vf, portGUID: wanted.value)
                changes.append(.init(attribute: attribute, previous: now?.description, value: wanted.value.description,
                                     request: request, explicit: wanted.explicit))
            }
            let function = sriov.vfFunction(pf: b.pf, vf: b.vf)
            if let address = vf.hostdevAddress {
                guard let function else {
                    throw .host("\(vf.label): \(b) has no PCI function on this host (no \(settings.sysfsRoot)/class/net/\(b.pf)/device/virtfn\(b.vf))")
                }
                guard function == address else {
                    throw .configuration("\(vf.label) passes PCI \(address) but \(b) is \(function) on this host")
                }
            }
            let driver = function.flatMap { sriov.driver(of: $0) }
            let guidChanged = changes.contains { $0.attribute != .mac }
            let rebind = guidChanged && driver != nil && !SRIOVSysfs.passthroughDrivers.contains(driver!)
            steps.append(VFStep(plan: vf, link: link, changes: changes, unchanged: unchanged, function: function, driver: driver, rebind: rebind))
        }
        try checkNotClaimedElsewhere(plan)
        return steps
    }

    /// A VF or socket another running domain's record names is refused (a second daemon would
    /// replace the first one's socket file).
    func checkNotClaimedElsewhere(_ plan: DomainPlan) throws(HookError) {
        for entry in directoryEntries(settings.runDirectory) where entry != plan.uuid && DomainDefinition.isUUID(entry) {
            guard let other = try? StateRecord.load(stateDirectory: settings.runDirectory + "/" + entry) else { continue }
            for vf in plan.vfs where other.changes.contains(where: { $0.pf == vf.backing.pf && $0.vf == vf.backing.vf }) {
                throw .host("\(vf.label): \(vf.backing) is in use by running domain \(other.domain)")
            }
            for socket in plan.backend?.sockets ?? [] where other.sockets.contains(socket) {
                throw .host("socket \(socket) is in use by running domain \(other.domain)")
            }
        }
    }

    func checkBackend(_ plan: BackendPlan) throws(HookError) {
        guard isExecutableFile(settings.daemon) else {
            throw .host("back-end binary \(settings.daemon) is missing or not executable (daemon = in \(HookSettings.defaultPath))")
        }
        let offered = try daemonProviders(settings.daemon)
        guard offered.contains(plan.provider) else {
            throw .configuration("provider '\(plan.provider)' is not offered by \(settings.daemon) (it offers: \(offered.joined(separator: ", ")))")
        }
    }

    // MARK: - Operations

    /// Serialises prepare/release across domains (two domains must not claim one VF).
    func withLock<T>(_ body: () throws(HookError) -> T) throws(HookError) -> T {
        do throws(SystemError) { try makeDirectories(settings.runDirectory) } catch { throw .system(error) }
        let path = settings.runDirectory + "/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system(.last("open(\(path))")) }
        let lock = OwnedFileDescriptor(adopting: fd)
        while flock(lock.rawValue, LOCK_EX) != 0 {
            guard errno == EINTR else { throw .system(.last("flock(\(path))")) }
        }
        return try body()
    }

    public func prepare(_ domain: DomainDefinition) throws(HookError) {
        guard let plan = try DomainPlan.make(domain, settings: settings) else { return }
        try withLock { () throws(HookError) in
            if let stale = try StateRecord.load(stateDirectory: plan.stateDirectory) {
                notices.append("undoing what a previous start of \(stale.domain) left behind (its release never ran)")
                let failures = undo(stale, stateDirectory: plan.stateDirectory)
                guard failures.isEmpty else { throw .host("cannot undo a previous start: \(failures.joined(separator: "; "))") }
            }
            let steps = try resolve(plan)
            if let b = plan.backend { try checkBackend(b) }
            do throws(SystemError) { try makeDirectories(plan.stateDirectory) } catch { throw .system(error) }
            var record = StateRecord(domain: plan.name)
            try record.save(stateDirectory: plan.stateDirectory)
            do throws(HookError) {
                for step in steps {
                    for c in step.changes {
                        try links().setVF(c.request, on: step.link)
                        record.changes.append(.init(pf: step.link.name, vf: step.plan.backing.vf, attribute: c.attribute, previous: c.previous, set: c.value))
                        try record.save(stateDirectory: plan.stateDirectory)
                    }
                    if step.rebind, let function = step.function, let driver = step.driver {
                        try sriov.rebind(function, driver: driver)
                        record.rebinds.append((function, driver))
                        try record.save(stateDirectory: plan.stateDirectory)
                    }
                }
                if let b = plan.backend {
                    record.sockets = b.sockets
                    record.backend = try backend.start(b, stateDirectory: plan.stateDirectory, uuid: plan.uuid)
                    try record.save(stateDirectory: plan.stateDirectory)
                }
            } catch {
                let failures = undo(record, stateDirectory: plan.stateDirectory)
                if failures.isEmpty {
                    removeStateDirectory(plan.stateDirectory)
                    throw error
                }
                throw .host("\(error); undoing it also failed: \(failures.joined(separator: "; "))")
            }
        }
    }

    /// Stops the back-end and restores the VFs. Nothing recorded: nothing to do.
    public func release(uuid: String) throws(HookError) {
        let stateDirectory = settings.runDirectory + "/" + uuid.lowercased()
        // Most domains are not ours: no record, no lock file, nothing created.
        guard fileExists(StateRecord.path(stateDirectory: stateDirectory)) else { return }
        try withLock { () throws(HookError) in
            guard let record = try StateRecord.load(stateDirectory: stateDirectory) else { return }
            let failures = undo(record, stateDirectory: stateDirectory)
            guard failures.isEmpty else { throw .host(failures.joined(separator: "; ")) }
            removeStateDirectory(stateDirectory)
        }
    }

    /// Undoes `record` in reverse order; returns what could not be undone (and rewrites the record
    /// to hold just that, so a later attempt knows).
    func undo(_ record: StateRecord, stateDirectory: String) -> [String] {
        var failures: [String] = []
        var left = StateRecord(domain: record.domain)
        if let b = record.backend {
            do throws(HookError) { try backend.stop(b, stateDirectory: stateDirectory) } catch {
                failures.append("\(error)")
                left.backend = b
            }
        }
        for s in record.sockets {
            var st = stat()
            if lstat(s, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK { unlink(s) }
        }
        var linksByName: [String: LinkInfo] = [:]
        for c in record.changes.reversed() {
            guard let previous = c.previous else {
                notices.append("\(c.attribute.rawValue) of VF \(c.vf) on \(c.pf) was not readable before; left at \(c.set)")
                continue
            }
            var request = VFChange(vf: c.vf)
            switch c.attribute {
            case .mac: request.mac = MACAddress(previous)
            case .nodeGUID: request.nodeGUID = GUID(previous)
            case .portGUID: request.portGUID = GUID(previous)
            }
            do throws(HookError) {
                let link: LinkInfo
                if let cached = linksByName[c.pf] { link = cached } else {
                    link = try links().link(named: c.pf)
                    linksByName[c.pf] = link
                }
                try links().setVF(request, on: link)
            } catch {
                failures.append("restoring \(c.attribute.rawValue) \(previous) of VF \(c.vf) on \(c.pf): \(error)")
                left.changes.insert(c, at: 0)
            }
        }
        for (function, driver) in record.rebinds {
            // The restored GUIDs take effect on the next bind; leave a VF held for passthrough alone.
            guard let now = sriov.driver(of: function), now == driver else { continue }
            do throws(HookError) { try sriov.rebind(function, driver: driver) } catch { failures.append("\(error)") }
        }
        if !failures.isEmpty { try? left.save(stateDirectory: stateDirectory) }
        return failures
    }

    /// migrate/restore: the domain XML with hostdev PCI addresses changed to this host's VFs, or
    /// nil when nothing needs changing.
    public func filter(_ domain: DomainDefinition) throws(HookError) -> String? {
        guard let plan = try DomainPlan.make(domain, settings: settings) else { return nil }
        var edits: [(range: Range<Int>, replacement: String)] = []
        for vf in plan.vfs {
            guard let alias = vf.hostdevAlias, let old = vf.hostdevAddress else { continue }
            guard let here = sriov.vfFunction(pf: vf.backing.pf, vf: vf.backing.vf) else {
                throw .host("\(vf.label): \(vf.backing) has no PCI function on this host")
            }
            guard here != old, let hostdev = domain.hostdevs.first(where: { $0.alias == alias }) else { continue }
            let wanted = here.libvirtAttributes
            let current = old.libvirtAttributes
            for field in ["domain", "bus", "slot", "function"] where wanted[field] != current[field] {
                guard let range = hostdev.addressValueRanges[field] else {
                    throw .configuration("\(vf.label): its <address> has no \(field)= to rewrite to \(here)")
                }
                edits.append((range, wanted[field]!))
            }
        }
        return edits.isEmpty ? nil : XMLTree.applying(edits, to: domain.xml)
    }

    /// The UUID of the running domain recorded under `domainName` (release without readable XML).
    public static func recordedUUID(domainName: String, settings: HookSettings) -> String? {
        directoryEntries(settings.runDirectory).first { entry in
            DomainDefinition.isUUID(entry)
                && (try? StateRecord.load(stateDirectory: settings.runDirectory + "/" + entry))??.domain == domainName
        }
    }

    // MARK: - Dry run

    public enum DryRunOperation: String, Sendable { case prepare, release, migrate, restore }

    /// What `operation` would do, one line per action; throws what it would refuse.
    public func dryRun(_ domain: DomainDefinition, operation: DryRunOperation) throws(HookError) -> [String] {
        guard let plan = try DomainPlan.make(domain, settings: settings) else {
            return ["domain \(domain.name): no vrdma metadata (\(VRDMAMetadata.namespace)); the hook leaves it alone"]
        }
        var out = ["domain \(plan.name) (uuid \(plan.uuid)), state in \(plan.stateDirectory)"]
        switch operation {
        case .prepare:
            for step in try resolve(plan) {
                let where_ = step.function.map { " = PCI \($0)" + (step.driver.map { ", driver \($0)" } ?? ", no driver") } ?? ""
                let backing = step.plan.label.hasSuffix(step.plan.backing.description) ? "" : ": \(step.plan.backing)"
                out.append("\(step.plan.label)\(backing) (\(step.link.typeName) PF)\(where_)")
                for c in step.changes {
                    out.append("  set \(c.attribute.rawValue) \(c.value) (\(c.explicit ? "given" : "derived"); now \(c.previous ?? "unknown"))")
                }
                for u in step.unchanged { out.append("  \(u) already set") }
                if step.rebind, let f = step.function, let d = step.driver { out.append("  rebind \(f) to \(d) (GUIDs changed, VF not claimed)") }
                if let d = step.driver, SRIOVSysfs.passthroughDrivers.contains(d) { out.append("  no rebind: held by \(d)") }
            }
            if let b = plan.backend {
                try checkBackend(b)
                out.append("start back-end as \(backend.describe(uuid: plan.uuid)):")
                out.append("  " + ([settings.daemon] + b.arguments).joined(separator: " "))
                out.append("  wait until \(b.sockets.joined(separator: ", ")) accept\(b.sockets.count == 1 ? "s" : "") (\(settings.startTimeout) s)")
            }
        case .release:
            guard let record = try StateRecord.load(stateDirectory: plan.stateDirectory) else {
                out.append("nothing recorded: nothing to undo")
                return out
            }
            switch record.backend {
            case .process(let pid, _): out.append("stop supervised back-end pid \(pid)")
            case .systemd(let unit): out.append("systemctl stop \(unit)")
            case nil: break
            }
            for c in record.changes.reversed() {
                out.append(c.previous.map { "restore \(c.attribute.rawValue) of VF \(c.vf) on \(c.pf) to \($0)" }
                    ?? "leave \(c.attribute.rawValue) of VF \(c.vf) on \(c.pf) at \(c.set) (previous value unknown)")
            }
            for (f, d) in record.rebinds { out.append("rebind \(f) to \(d)") }
        case .migrate, .restore:
            if let xml = try filter(domain) { out.append("domain XML for this host:"); out.append(xml) } else { out.append("domain XML unchanged") }
        }
        return out
    }
}
