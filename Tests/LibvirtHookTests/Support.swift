// SPDX-License-Identifier: Apache-2.0
// Test doubles for the hook: fixture XML, a recording LinkControl with VF state, a recording
// back-end, a fake sysfs tree, and the paths of the built binaries.
import Glibc
import Testing

@testable import LibvirtHook

enum Fixture {
    static var directory: String { directoryName(#filePath) + "/Fixtures" }

    static func xml(_ name: String) -> String {
        guard let text = readTextFile("\(directory)/\(name).xml") else { preconditionFailure("no fixture \(name)") }
        return text
    }

    static func domain(_ name: String) throws -> DomainDefinition { try DomainDefinition.parse(xml(name)) }

    /// `text` with `old` replaced; fails the test if `old` is not there (a fixture drifted).
    static func replacing(_ text: String, _ old: String, _ new: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        #expect(text.contains(old), "fixture text '\(old)' not found", sourceLocation: sourceLocation)
        return text.replacing(old, with: new)
    }
}

func temporaryDirectory() -> String {
    var template = Array("/tmp/vrdma-hook-test-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { preconditionFailure("mkdtemp failed") }
    return String(cString: p)
}

/// Removes a test's temporary tree (plain files, symlinks, directories).
func removeTree(_ path: String) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if (st.st_mode & S_IFMT) == S_IFDIR {
        for e in directoryEntries(path) { removeTree(path + "/" + e) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

/// The directory of the test binary: SwiftPM puts the products next to it.
var productsDirectory: String {
    var dir = directoryName(currentExecutable())
    if dir.hasSuffix(".xctest") { dir = directoryName(dir) }
    return dir
}

/// A PF with VFs whose state changes when set, like a driver that accepts everything except
/// what `refuse` names.
final class FakeLinks: LinkControl {
    var links: [String: LinkInfo] = [:]
    var requests: [(String, VFChange)] = []
    var refuse: [VFAttribute: Int32] = [:]

    func addPF(_ name: String, type: UInt16 = LinkInfo.typeEthernet, vfs: Int, guids: Bool = false) {
        let infos = (0..<vfs).map { i in
            VFInfo(vf: UInt32(i), mac: MACAddress(bytes: [0, 0, 0, 0, 0, 0])!,
                   nodeGUID: guids ? GUID(0x1000 + UInt64(i)) : nil, portGUID: guids ? GUID(0x2000 + UInt64(i)) : nil)
        }
        links[name] = LinkInfo(index: Int32(10 + links.count), name: name, type: type, numVFs: UInt32(vfs), vfs: infos)
    }

    func link(named name: String) throws(HookError) -> LinkInfo {
        guard let l = links[name] else {
            throw .netlink(NetlinkError(errno: ENODEV, device: name, request: "read \(name)"))
        }
        return l
    }

    func vf(_ pf: String, _ n: UInt32) -> VFInfo? { links[pf]?.vfs.first { $0.vf == n } }

    func setVF(_ change: VFChange, on link: LinkInfo) throws(HookError) {
        requests.append((link.name, change))
        let attribute: VFAttribute = change.mac != nil ? .mac : change.nodeGUID != nil ? .nodeGUID : .portGUID
        if let code = refuse[attribute] {
            throw .netlink(NetlinkError(errno: code, device: link.name, request: "set \(attribute.rawValue) of VF \(change.vf) on \(link.name)",
                                        attribute: attribute, linkType: link.typeName))
        }
        guard let l = links[link.name] else { throw .netlink(NetlinkError(errno: ENODEV, device: link.name, request: "set")) }
        let vfs = l.vfs.map { v in
            v.vf != change.vf ? v : VFInfo(vf: v.vf, mac: change.mac ?? v.mac, nodeGUID: change.nodeGUID ?? v.nodeGUID,
                                           portGUID: change.portGUID ?? v.portGUID)
        }
        links[link.name] = LinkInfo(index: l.index, name: l.name, type: l.type, numVFs: l.numVFs, vfs: vfs)
    }
}

final class FakeBackend: BackendControl {
    var started: [BackendPlan] = []
    var stopped: [StateRecord.Backend] = []
    var failStart: HookError?

    func start(_ plan: BackendPlan, stateDirectory: String, uuid: String) throws(HookError) -> StateRecord.Backend {
        if let failStart { throw failStart }
        started.append(plan)
        return .process(pid: 999_999_999, startTime: 1)
    }

    func stop(_ backend: StateRecord.Backend, stateDirectory: String) throws(HookError) { stopped.append(backend) }

    func describe(uuid: String) -> String { "a fake" }
}

/// A sysfs tree with `pf`'s VFs as PCI functions (virtfnN links), each bound to a driver
/// directory whose bind/unbind files record what was written.
func makeFakeSysfs(root: String, pf: String, functions: [(vf: UInt32, address: String, driver: String?)]) {
    _ = try? makeDirectories("\(root)/class/net/\(pf)/device")
    _ = try? makeDirectories("\(root)/bus/pci/devices")
    for f in functions {
        let dev = "\(root)/bus/pci/devices/\(f.address)"
        _ = try? makeDirectories(dev)
        symlink("../../../../bus/pci/devices/\(f.address)", "\(root)/class/net/\(pf)/device/virtfn\(f.vf)")
        if let d = f.driver {
            _ = try? makeDirectories("\(root)/bus/pci/drivers/\(d)")
            for file in ["bind", "unbind"] { _ = try? writeTextFile("\(root)/bus/pci/drivers/\(d)/\(file)", "") }
            symlink("../../drivers/\(d)", "\(dev)/driver")
        }
    }
}
