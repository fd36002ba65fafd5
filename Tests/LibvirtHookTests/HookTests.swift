// SPDX-License-Identifier: Apache-2.0
// The operations against recorded VFs (FakeLinks), a fake sysfs tree and a recording back-end:
// what prepare sets and in which order, when it rebinds, what release restores, that every
// failure leaves the host as it was, and the migrate/restore filter.
import Glibc
import Testing

@testable import LibvirtHook

@Suite("hook operations")
final class HookTests {
    let root = temporaryDirectory()
    var settings = HookSettings()
    let links = FakeLinks()
    let backend = FakeBackend()

    init() {
        settings.runDirectory = root + "/run"
        settings.sysfsRoot = root + "/sys"
        settings.daemon = productsDirectory + "/vhost-user-rdma"
    }

    deinit { removeTree(root) }

    var hook: Hook { Hook(settings: settings, links: links, backend: backend) }

    func state(_ uuid: String) -> String? { readTextFile(settings.runDirectory + "/" + uuid + "/state") }

    static let ethUUID = "6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7"
    static let ibUUID = "0b7d6c5e-1f2a-4b3c-9d4e-5f60718293a4"
    static let zeroMAC = MACAddress("00:00:00:00:00:00")!

    /// The two PFs of the several-devices fixture: enp3s0f0 (Ethernet, VF 2) and ibp129s0f0
    /// (InfiniBand, VF 1), their VFs bound to `driver`.
    func severalDevicesHost(driver: String? = "vfio-pci") {
        links.addPF("enp3s0f0", vfs: 4)
        links.addPF("ibp129s0f0", type: LinkInfo.typeInfiniBand, vfs: 2, guids: true)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:03:10.4", driver)])
        makeFakeSysfs(root: settings.sysfsRoot, pf: "ibp129s0f0", functions: [(1, "0000:81:00.2", driver)])
    }

    @Test("Ethernet VF behind a hostdev interface: prepare sets its MAC only, release restores it")
    func ethernetVF() throws {
        links.addPF("enp3s0f0", vfs: 4)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:03:10.4", "iavf")])
        let domain = try Fixture.domain("hostdev-interface")
        try hook.prepare(domain)
        #expect(links.requests.map(\.1) == [VFChange(vf: 2, mac: MACAddress("52:54:00:6d:90:02"))])
        #expect(links.vf("enp3s0f0", 2)?.mac == MACAddress("52:54:00:6d:90:02"))
        #expect(state(Self.ethUUID)?.contains("vf enp3s0f0 2 mac 00:00:00:00:00:00 52:54:00:6d:90:02") == true)
        #expect(readTextFile(settings.sysfsRoot + "/bus/pci/drivers/iavf/unbind") == "", "a MAC change needs no rebind")
        #expect(backend.started.isEmpty)

        try hook.release(uuid: Self.ethUUID)
        #expect(links.requests.last?.1 == VFChange(vf: 2, mac: Self.zeroMAC))
        #expect(links.vf("enp3s0f0", 2)?.mac == Self.zeroMAC)
        #expect(!fileExists(settings.runDirectory + "/" + Self.ethUUID))
        // A second release (libvirt also calls it after a failed start) has nothing to do.
        let before = links.requests.count
        try hook.release(uuid: Self.ethUUID)
        #expect(links.requests.count == before)
    }

    @Test("InfiniBand VF: node and port GUID in separate requests, then a rebind; release restores and rebinds again")
    func infinibandVF() throws {
        links.addPF("ibp129s0f0", type: LinkInfo.typeInfiniBand, vfs: 8, guids: true)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "ibp129s0f0", functions: [(3, "0000:81:00.5", "mlx5_core")])
        try hook.prepare(try Fixture.domain("plain-hostdev"))
        #expect(links.requests.map(\.1) == [VFChange(vf: 3, nodeGUID: GUID(0x0002_c903_00a1_b2c3)),
                                            VFChange(vf: 3, portGUID: GUID(0x0002_c903_00a1_b2c4))])
        #expect(readTextFile(settings.sysfsRoot + "/bus/pci/drivers/mlx5_core/unbind") == "0000:81:00.5")
        #expect(readTextFile(settings.sysfsRoot + "/bus/pci/drivers/mlx5_core/bind") == "0000:81:00.5")
        #expect(state(Self.ibUUID)?.contains("rebind 0000:81:00.5 mlx5_core") == true)

        _ = try? writeTextFile(settings.sysfsRoot + "/bus/pci/drivers/mlx5_core/bind", "")
        try hook.release(uuid: Self.ibUUID)
        #expect(links.requests.suffix(2).map(\.1) == [VFChange(vf: 3, portGUID: GUID(0x2003)), VFChange(vf: 3, nodeGUID: GUID(0x1003))])
        #expect(readTextFile(settings.sysfsRoot + "/bus/pci/drivers/mlx5_core/bind") == "0000:81:00.5")
    }

    @Test("a VF already held by vfio-pci is not rebound")
    func claimedVF() throws {
        links.addPF("ibp129s0f0", type: LinkInfo.typeInfiniBand, vfs: 8, guids: true)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "ibp129s0f0", functions: [(3, "0000:81:00.5", "vfio-pci")])
        try hook.prepare(try Fixture.domain("plain-hostdev"))
        #expect(links.requests.count == 2)
        #expect(readTextFile(settings.sysfsRoot + "/bus/pci/drivers/vfio-pci/unbind") == "")
        let lines = try hook.dryRun(try Fixture.domain("plain-hostdev"), operation: .release)
        #expect(lines.contains("restore node GUID of VF 3 on ibp129s0f0 to 00:00:00:00:00:00:10:03"))
    }

    @Test("the driver refuses a GUID (EOPNOTSUPP): the MAC already set is restored, nothing is recorded")
    func guidRefusedRollsBack() throws {
        links.addPF("enp3s0f0", vfs: 4)
        links.refuse[.nodeGUID] = EOPNOTSUPP
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:03:10.4", "iavf")])
        let xml = Fixture.replacing(Fixture.xml("hostdev-interface"), "vf=\"2\"/>", "vf=\"2\" node-guid=\"0x0002c90300000001\"/>")
        #expect {
            try hook.prepare(try DomainDefinition.parse(xml))
        } throws: { error in
            guard case .netlink(let e) = error as? HookError else { return false }
            return e.errno == EOPNOTSUPP && e.attribute == .nodeGUID
        }
        #expect(links.requests.map(\.1) == [VFChange(vf: 2, mac: MACAddress("52:54:00:6d:90:02")), VFChange(vf: 2, nodeGUID: GUID(0x0002_c903_0000_0001)),
                                            VFChange(vf: 2, mac: Self.zeroMAC)])
        #expect(links.vf("enp3s0f0", 2)?.mac == Self.zeroMAC)
        #expect(!fileExists(settings.runDirectory + "/" + Self.ethUUID))
    }

    @Test("the back-end fails to start: the VFs are restored")
    func backendFailureRollsBack() throws {
        severalDevicesHost()
        backend.failStart = .backend("did not accept")
        #expect(throws: HookError.backend("did not accept")) { try hook.prepare(try Fixture.domain("several-devices")) }
        #expect(links.requests.count == 6, "3 set, 3 restored: \(links.requests.map(\.1))")
        #expect(links.vf("enp3s0f0", 2)?.mac == Self.zeroMAC)
        #expect(links.vf("ibp129s0f0", 1)?.nodeGUID == GUID(0x1001) && links.vf("ibp129s0f0", 1)?.portGUID == GUID(0x2001))
        #expect(!fileExists(settings.runDirectory + "/3e9a0d2c-5b71-4c88-a0f4-1d2e3f405162"))
    }

    @Test("several devices: both VFs set, the back-end started with the plan's arguments, all undone on release")
    func severalDevices() throws {
        severalDevicesHost()
        let domain = try Fixture.domain("several-devices")
        try hook.prepare(domain)
        #expect(backend.started.count == 1 && backend.started[0].sockets.count == 2)
        #expect(links.requests.map { $0.0 } == ["enp3s0f0", "ibp129s0f0", "ibp129s0f0"])
        let text = try #require(state(domain.uuid))
        #expect(text.contains("backend process 999999999 1") && text.contains("socket /run/vrdma/sockets/vm-rdma-1.sock"))
        try hook.release(uuid: domain.uuid)
        #expect(backend.stopped == [.process(pid: 999_999_999, startTime: 1)])
        #expect(links.requests.count == 6)
    }

    @Test("refusals before any change: missing PF, VF index, no SR-IOV, wrong PCI address, VF of another domain")
    func refusals() throws {
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:03:10.5", nil)])
        let domain = try Fixture.domain("hostdev-interface")
        #expect(throws: HookError.host("hostdev ua-sriov0: PF enp3s0f0 does not exist on this host")) { try hook.prepare(domain) }
        links.addPF("enp3s0f0", vfs: 2)
        #expect(throws: HookError.host("hostdev ua-sriov0: enp3s0f0 has 2 VFs, so VF 2 does not exist")) { try hook.prepare(domain) }
        links.addPF("enp3s0f0", vfs: 0)
        #expect(throws: HookError.host("hostdev ua-sriov0: enp3s0f0 has no SR-IOV VFs (sriov_numvfs is 0 or the device has no SR-IOV)")) { try hook.prepare(domain) }
        links.addPF("enp3s0f0", vfs: 4)
        #expect(throws: HookError.configuration("hostdev ua-sriov0 passes PCI 0000:03:10.4 but VF 2 of enp3s0f0 is 0000:03:10.5 on this host")) {
            try hook.prepare(domain)
        }
        #expect(links.requests.isEmpty)

        removeTree(settings.sysfsRoot)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:03:10.4", nil)])
        let other = settings.runDirectory + "/11111111-2222-4333-8444-555555555555"
        try makeDirectories(other)
        try writeTextFile(other + "/state", "vrdma-libvirt-hook state 1\ndomain other%20vm\nvf enp3s0f0 2 mac - 02:00:00:00:00:01\n")
        #expect(throws: HookError.host("hostdev ua-sriov0: VF 2 of enp3s0f0 is in use by running domain other vm")) { try hook.prepare(domain) }
        #expect(links.requests.isEmpty)

        try writeTextFile(other + "/state", "vrdma-libvirt-hook state 1\ndomain other\nsocket /run/vrdma/sockets/vm-rdma-1.sock\n")
        links.addPF("ibp129s0f0", type: LinkInfo.typeInfiniBand, vfs: 2, guids: true)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "ibp129s0f0", functions: [(1, "0000:81:00.2", nil)])
        #expect(throws: HookError.host("socket /run/vrdma/sockets/vm-rdma-1.sock is in use by running domain other")) {
            try hook.prepare(try Fixture.domain("several-devices"))
        }
        #expect(links.requests.isEmpty && backend.started.isEmpty)
    }

    @Test("a record left by a start whose release never ran is undone first")
    func staleRecord() throws {
        links.addPF("enp3s0f0", vfs: 4)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:03:10.4", nil)])
        let dir = settings.runDirectory + "/" + Self.ethUUID
        try makeDirectories(dir)
        try writeTextFile(dir + "/state", "vrdma-libvirt-hook state 1\ndomain vm-sriov-eth\nvf enp3s0f0 2 mac 02:00:00:00:00:09 02:00:00:00:00:01\n")
        let h = hook
        try h.prepare(try Fixture.domain("hostdev-interface"))
        #expect(links.requests.map(\.1) == [VFChange(vf: 2, mac: MACAddress("02:00:00:00:00:09")), VFChange(vf: 2, mac: MACAddress("52:54:00:6d:90:02"))])
        #expect(h.notices.first?.contains("release never ran") == true)
        #expect(state(Self.ethUUID)?.contains("vf enp3s0f0 2 mac 02:00:00:00:00:09 52:54:00:6d:90:02") == true)
    }

    @Test("migrate/restore filter: the hostdev address becomes this host's VF; nothing else changes")
    func filter() throws {
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:04:00.6", nil)])
        let xml = Fixture.xml("hostdev-interface")
        let out = try #require(try hook.filter(try DomainDefinition.parse(xml)))
        #expect(out == Fixture.replacing(xml, "domain='0x0000' bus='0x03' slot='0x10' function='0x4'",
                                         "domain='0x0000' bus='0x04' slot='0x00' function='0x6'"))
        removeTree(settings.sysfsRoot)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:03:10.4", nil)])
        #expect(try hook.filter(try DomainDefinition.parse(xml)) == nil)
        #expect(try hook.filter(try Fixture.domain("no-metadata")) == nil)
        removeTree(settings.sysfsRoot)
        #expect(throws: HookError.host("hostdev ua-sriov0: VF 2 of enp3s0f0 has no PCI function on this host")) {
            _ = try hook.filter(try DomainDefinition.parse(xml))
        }
    }

    @Test("dry run says what prepare would do and touches nothing")
    func dryRun() throws {
        links.addPF("enp3s0f0", vfs: 4)
        links.addPF("ibp129s0f0", type: LinkInfo.typeInfiniBand, vfs: 2, guids: true)
        makeFakeSysfs(root: settings.sysfsRoot, pf: "enp3s0f0", functions: [(2, "0000:03:10.4", "iavf")])
        makeFakeSysfs(root: settings.sysfsRoot, pf: "ibp129s0f0", functions: [(1, "0000:81:00.2", "mlx5_core")])
        let lines = try hook.dryRun(try Fixture.domain("several-devices"), operation: .prepare)
        let text = lines.joined(separator: "\n")
        #expect(text.contains("hostdev ua-sriov0: VF 2 of enp3s0f0 (Ethernet PF) = PCI 0000:03:10.4, driver iavf"))
        #expect(text.contains("  set MAC 52:54:00:8e:86:6b (given; now 00:00:00:00:00:00)"))
        #expect(text.contains("  rebind 0000:81:00.2 to mlx5_core (GUIDs changed, VF not claimed)"))
        #expect(text.contains("start back-end as a fake:") && text.contains("--socket-path /run/vrdma/sockets/vm-rdma-0.sock"))
        #expect(links.requests.isEmpty && backend.started.isEmpty)
        #expect(try hook.dryRun(try Fixture.domain("no-metadata"), operation: .prepare).first?.contains("no vrdma metadata") == true)
    }

    @Test("a provider the daemon does not offer is refused")
    func unknownProvider() throws {
        let xml = Fixture.replacing(Fixture.xml("several-devices"), "provider=\"soft\"", "provider=\"ucx\"")
        severalDevicesHost(driver: nil)
        #expect(throws: HookError.configuration("provider 'ucx' is not offered by \(settings.daemon) (it offers: soft, verbs)")) {
            try hook.prepare(try DomainDefinition.parse(xml))
        }
        #expect(links.requests.isEmpty)
    }
}
