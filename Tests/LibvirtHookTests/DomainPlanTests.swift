// SPDX-License-Identifier: Apache-2.0
// Domain XML as libvirt writes it (Fixtures/, `virsh dumpxml` output) → metadata → plan: the
// shapes the hook supports, the values it derives, the daemon command line, and one clear error
// for each way the metadata can be wrong or disagree with the rest of the domain.
import Testing

@testable import LibvirtHook

@Suite("domain XML and plan")
struct DomainPlanTests {
    let settings = HookSettings()

    func plan(_ xml: String) throws -> DomainPlan? {
        try DomainPlan.make(try DomainDefinition.parse(xml), settings: settings)
    }

    @Test("hostdev interface: the VF gets the interface's MAC; GUIDs are derived; no back-end")
    func hostdevInterface() throws {
        let p = try #require(try plan(Fixture.xml("hostdev-interface")))
        #expect(p.name == "vm-sriov-eth" && p.uuid == "6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7")
        #expect(p.stateDirectory == "/run/vrdma/6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7")
        #expect(p.backend == nil)
        let vf = try #require(p.vfs.first)
        #expect(p.vfs.count == 1)
        #expect(vf.label == "hostdev ua-sriov0")
        #expect(vf.backing == VRDMAMetadata.Backing(pf: "enp3s0f0", vf: 2))
        #expect(vf.mac == Requested(value: MACAddress("52:54:00:6d:90:02")!, explicit: true))
        #expect(vf.hostdevAddress == PCIAddress(sysfsName: "0000:03:10.4"))
        #expect(!vf.nodeGUID.explicit && !vf.portGUID.explicit)
        #expect(vf.nodeGUID.value == IdentityDerivation.guid(uuid: p.uuid, role: .hostdevNodeGUID, index: 0))
    }

    @Test("plain hostdev: given GUIDs in both spellings; MAC derived")
    func plainHostdev() throws {
        let p = try #require(try plan(Fixture.xml("plain-hostdev")))
        let vf = try #require(p.vfs.first)
        #expect(vf.nodeGUID == Requested(value: GUID(0x0002_c903_00a1_b2c3), explicit: true))
        #expect(vf.portGUID == Requested(value: GUID(0x0002_c903_00a1_b2c4), explicit: true))
        #expect(vf.mac?.explicit == false)
        #expect(vf.hostdevAddress?.description == "0000:81:00.5")
    }

    @Test("several devices: two vRDMA devices on one back-end, an Ethernet and an IB VF")
    func severalDevices() throws {
        let p = try #require(try plan(Fixture.xml("several-devices")))
        #expect(p.vfs.map(\.label) == ["hostdev ua-sriov0", "hostdev ua-ib0"])
        #expect(p.vfs[0].mac == Requested(value: MACAddress("52:54:00:8e:86:6b")!, explicit: true))
        #expect(p.vfs[1].mac?.explicit == false)
        let b = try #require(p.backend)
        let base = IdentityDerivation.guid(uuid: p.uuid, role: .deviceNodeGUID, index: 0)
        #expect(b.sockets == ["/run/vrdma/sockets/vm-rdma-0.sock", "/run/vrdma/sockets/vm-rdma-1.sock"])
        #expect(b.arguments == [
            "--socket-path", "/run/vrdma/sockets/vm-rdma-0.sock", "--socket-path", "/run/vrdma/sockets/vm-rdma-1.sock",
            "--node-guid", base.hex, "--mac", "52:54:00:18:f3:6e", "--log-level", "debug", "--workers", "2",
            "--max-qp", "256", "--max-cq", "512", "--max-mr", "1024", "--max-pd", "64", "--max-srq", "32", "--max-ah", "128",
            "--max-pinned-bytes", "1073741824",
        ])
    }

    @Test("a MAC for a later device only: earlier devices get the zero MAC, meaning none")
    func macGaps() throws {
        var xml = Fixture.replacing(Fixture.xml("several-devices"), "<vrdma:device chardev=\"rdma0\" interface=\"ua-net0\"/>",
                                    "<vrdma:device chardev=\"rdma0\"/>")
        xml = Fixture.replacing(xml, "<vrdma:device chardev=\"rdma1\" ", "<vrdma:device chardev=\"rdma1\" mac=\"02:00:00:00:00:07\" ")
        let args = try #require(try plan(xml)?.backend?.arguments)
        let macs = args.indices.filter { args[$0] == "--mac" }.map { args[$0 + 1] }
        #expect(macs == ["00:00:00:00:00:00", "02:00:00:00:00:07"])
    }

    @Test("given node GUIDs fix the back-end's base: device n is base + n")
    func nodeGUIDNumbering() throws {
        let xml = Fixture.replacing(Fixture.xml("several-devices"), "<vrdma:device chardev=\"rdma1\" ",
                                    "<vrdma:device chardev=\"rdma1\" node-guid=\"0x5652000000000011\" ")
        let args = try #require(try plan(xml)?.backend?.arguments)
        #expect(args[args.firstIndex(of: "--node-guid")! + 1] == "5652000000000010")
        let inconsistent = Fixture.replacing(xml, "<vrdma:device chardev=\"rdma0\" ", "<vrdma:device chardev=\"rdma0\" node-guid=\"0x5652000000000020\" ")
        #expect(throws: HookError.configuration("device rdma1: node-guid 56:52:00:00:00:00:00:11 breaks the back-end's numbering "
            + "(device n has the first device's node GUID + n: expected 56:52:00:00:00:00:00:21)")) { _ = try plan(inconsistent) }
    }

    @Test("a domain without vrdma metadata is not ours")
    func noMetadata() throws {
        #expect(try plan(Fixture.xml("no-metadata")) == nil)
    }

    static let invalid: [(String, String, String)] = [
        ("socket=\"/run/vrdma/sockets/vm-rdma-1.sock\"", "socket=\"/run/vrdma/other.sock\"", "differs from the -chardev path"),
        ("  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n", "",
         "guest RAM is not shared with the back-end: add <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"),
        ("interface=\"ua-net0\"", "interface=\"ua-nope\"", "interface='ua-nope' matches no <interface> alias"),
        ("alias=\"ua-sriov0\" pf=", "alias=\"ua-missing\" pf=", "'ua-missing' matches no <interface type='hostdev'>"),
        ("pf=\"enp3s0f0\" vf=\"2\"", "pf=\"enp3s0f0\" vf=\"two\"", "vf='two' must be an integer"),
        ("log-level=\"debug\" workers=\"2\">", "log-level=\"debug\" workers=\"2\"><vrdma:option name=\"a\" value=\"b\"/>", "provider soft takes no options"),
        ("max-qp=\"256\"", "max-qp=\"0\"", "max-qp='0' must be a positive integer"),
        ("<vrdma:device chardev=\"rdma0\" interface=", "<vrdma:device chardev=\"rdma0\" intreface=", "unknown attribute 'intreface' on <device>"),
        ("vhost-user-rdma-pci,chardev=rdma1,num-queues=6", "vhost-user-rdma-pci,chardev=rdmaX", "no '-device vhost-user-rdma-pci,chardev=rdma1'"),
        ("socket,id=rdma1,", "socket,id=rdma9,", "device rdma1: no '-chardev socket,id=rdma1,path=...'"),
        ("<vrdma:device chardev=\"rdma0\" ", "<vrdma:device chardev=\"rdma0\" node-guid=\"0\" ", "node-guid must not be zero"),
        ("pf=\"ibp129s0f0\" vf=\"1\"", "pf=\"enp3s0f0\" vf=\"2\"", "VF 2 of enp3s0f0 is already used on line 11"),
        ("pf=\"enp3s0f0\" vf=\"2\"", "pf=\"enp3s0f0\" vf=\"2\" mac=\"52:54:00:00:00:01\"", "differs from the interface's <mac address='52:54:00:8e:86:6b'/>"),
        ("<vrdma:hostdev alias=\"ua-ib0\"", "<vrdma:hostdve alias=\"ua-ib0\"", "unknown element <hostdve>"),
        ("path=/run/vrdma/sockets/vm-rdma-0.sock,reconnect=1", "path=/run/vrdma/sockets/vm-rdma-0.sock,server=on", "has server=on"),
        ("interface=\"ua-net0\"", "mac=\"01:00:5e:00:00:01\"", "must be a unicast, non-zero address"),
        ("pf=\"enp3s0f0\" vf=\"2\"", "pf=\"enp3s0f0\"", "pf and vf go together"),
        ("pf=\"enp3s0f0\"", "pf=\"a/b\"", "pf='a/b' is not a network interface name"),
        ("<vrdma:backend provider=\"soft\" log-level=\"debug\"", "<vrdma:backend provider=\"soft\" log-level=\"loud\"", "log-level='loud' is not one of"),
        ("max-pinned-bytes=\"1G\"", "max-pinned-bytes=\"1Q\"", "max-pinned-bytes='1Q' must be a positive integer (bytes"),
        ("<vrdma:device chardev=\"rdma0\" interface=\"ua-net0\"/>", "<vrdma:device chardev=\"rdma0\" port-guid=\"0x1\"/>", "port-guid needs a backing VF"),
        ("<vrdma:device chardev=\"rdma0\" interface=\"ua-net0\"/>", "<vrdma:device chardev=\"0bad\"/>", "chardev='0bad' is not a QEMU id"),
        ("  <uuid>3e9a0d2c-5b71-4c88-a0f4-1d2e3f405162</uuid>\n", "", "no valid <uuid>"),
        ("<vrdma:hostdev alias=\"ua-ib0\" pf=\"ibp129s0f0\" vf=\"1\"/>", "<vrdma:hostdev alias=\"ua-ib0\" pf=\"ibp129s0f0\" vf=\"1\"><x/></vrdma:hostdev>",
         "<x> inside <hostdev> is not in the vrdma namespace"),
    ]

    @Test("invalid or inconsistent metadata is refused with one clear line", arguments: invalid.indices)
    func invalidMetadata(index: Int) {
        let (old, new, message) = Self.invalid[index]
        let xml = Fixture.replacing(Fixture.xml("several-devices"), old, new)
        #expect {
            _ = try plan(xml)
        } throws: { error in
            let text = "\(error)"
            return text.contains(message) && !text.contains("\n")
        }
    }

    @Test("shared memory through NUMA cells counts as shared")
    func numaShared() throws {
        let xml = Fixture.replacing(Fixture.xml("several-devices"), "  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n",
                                    "  <cpu><numa><cell id='0' cpus='0' memory='2048' unit='MiB' memAccess='shared'/></numa></cpu>\n")
        #expect(try plan(xml)?.backend != nil)
    }

    @Test("not well-formed domain XML is an XML error with its line")
    func malformedDomain() {
        #expect {
            _ = try DomainDefinition.parse("<domain><name>x</name>\n<uuid>")
        } throws: { error in
            guard case .xml(let e) = error as? HookError else { return false }
            return e.line == 2
        }
    }

    @Test("two vrdma elements in <metadata> are refused (libvirt keeps one per namespace)")
    func twoMetadataElements() {
        let xml = Fixture.replacing(Fixture.xml("hostdev-interface"), "  </metadata>",
                                    "    <v2:config xmlns:v2=\"\(VRDMAMetadata.namespace)\"/>\n  </metadata>")
        #expect(throws: HookError.configuration("vrdma metadata: 2 elements in the vrdma namespace; libvirt keeps one per namespace")) {
            _ = try DomainDefinition.parse(xml)
        }
    }

    @Test("QEMU option strings: implied value, pairs, doubled commas")
    func qemuOptions() {
        let o = QEMUOptions("socket,id=rdma0,path=/tmp/a,,b.sock,reconnect=1,server")
        #expect(o.implied == "socket" && o["id"] == "rdma0" && o["path"] == "/tmp/a,b.sock" && o["server"] == "on")
    }

    @Test("settings file: every key, and errors naming the line")
    func settingsFile() throws {
        let s = try HookSettings.parse("""
            # comment
            daemon = /opt/vrdma/bin/vhost-user-rdma
            run-dir = /run/x   # trailing comment
            service-manager = process
            systemd-unit = my-backend
            start-timeout = 2.5
            stop-timeout = 3
            socket-group = kvm
            sysfs = /tmp/sys
            """)
        #expect(s.daemon == "/opt/vrdma/bin/vhost-user-rdma" && s.runDirectory == "/run/x" && s.serviceManager == .process)
        #expect(s.systemdUnit == "my-backend" && s.startTimeout == 2.5 && s.stopTimeout == 3 && s.socketGroup == "kvm" && s.sysfsRoot == "/tmp/sys")
        #expect(throws: HookError.settings("settings:2: unknown setting 'deamon'")) { try HookSettings.parse("\ndeamon = /x") }
        #expect(throws: HookError.settings("settings:1: service-manager must be auto, systemd or process")) { try HookSettings.parse("service-manager = runit") }
    }
}
