// SPDX-License-Identifier: Apache-2.0
// rtnetlink: our RTM_SETLINK requests against the bytes iproute2 sends for the same
// `ip link set dev lo vf N mac|node_guid|port_guid ...` (captured with strace at test time, so
// the reference is the real ip binary of this machine), the kernel's answers parsed, and the
// kernel itself refusing our requests on lo (EOPNOTSUPP, ENODEV, EINVAL) with clear messages.
import CRouteNetlink
import Glibc
import LinuxSystem
import Testing

@testable import LibvirtHook

/// iproute2's bytes for `ip link set dev lo ARGS`: the last sendmsg buffer in strace's dump.
func iproute2Request(_ args: [String]) throws -> [UInt8] {
    let ip = try ensureTool("ip", package: "iproute2")
    let strace = try ensureTool("strace", package: "strace")
    let dir = temporaryDirectory()
    defer { removeTree(dir) }
    let trace = dir + "/trace"
    _ = try runHelper([strace, "-o", trace, "-e", "trace=sendmsg", "-e", "write=all", ip, "link", "set", "dev", "lo"] + args, timeout: 20)
    let text = readTextFile(trace) ?? ""
    // Dump lines (" | 00000  78 00 ...") follow the sendmsg line they belong to.
    var blocks: [[UInt8]] = []
    for line in text.split(separator: "\n") {
        if line.contains("sendmsg(") { blocks.append([]); continue }
        guard line.hasPrefix(" | "), !blocks.isEmpty else { continue }
        let chars = Array(line)
        guard chars.count > 10 else { continue }
        let hex = String(chars[10..<min(chars.count, 10 + 49)])
        blocks[blocks.count - 1] += hex.split(separator: " ").compactMap { UInt8($0, radix: 16) }
    }
    guard let last = blocks.last, last.count >= 32 else {
        throw SystemError(errno: EPROTO, operation: "no sendmsg dump from strace for ip \(args)")
    }
    return last
}

/// The tool's path, installing its Debian package if it is missing (make test on a fresh machine).
@discardableResult
func ensureTool(_ name: String, package: String) throws -> String {
    let candidates = ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"].map { $0 + name }
    if let found = candidates.first(where: isExecutableFile) { return found }
    let install = ["/usr/bin/apt-get", "install", "-y", "-qq", package]
    if try runHelper(install, timeout: 300).status != 0 {   // no package lists yet on a fresh machine
        _ = try runHelper(["/usr/bin/apt-get", "update", "-qq"], timeout: 300)
        _ = try runHelper(install, timeout: 300)
    }
    guard let found = candidates.first(where: isExecutableFile) else {
        throw SystemError(errno: ENOENT, operation: "\(name) (Debian package \(package)) is missing and could not be installed")
    }
    return found
}

@Suite("rtnetlink")
struct NetlinkTests {
    static let cases: [(args: [String], change: VFChange)] = [
        (["vf", "7", "mac", "52:54:00:12:34:56"], VFChange(vf: 7, mac: MACAddress("52:54:00:12:34:56"))),
        (["vf", "7", "node_guid", "11:22:33:44:55:66:77:88"], VFChange(vf: 7, nodeGUID: GUID(0x1122_3344_5566_7788))),
        (["vf", "0", "port_guid", "00:02:c9:03:00:a1:b2:c4"], VFChange(vf: 0, portGUID: GUID(0x0002_c903_00a1_b2c4))),
        (["vf", "65535", "mac", "02:ff:00:00:00:01", "node_guid", "fe:dc:ba:98:76:54:32:10", "port_guid", "00:00:00:00:00:00:00:02"],
         VFChange(vf: 65535, mac: MACAddress("02:ff:00:00:00:01"), nodeGUID: GUID(0xfedc_ba98_7654_3210), portGUID: GUID(2))),
    ]

    @Test("each request is byte for byte what ip link set sends, but RTM_SETLINK for iproute2's RTM_NEWLINK", arguments: cases.indices)
    func matchesIproute2(index: Int) throws {
        let (args, change) = Self.cases[index]
        var reference = try iproute2Request(args)
        var ours = RouteNetlinkMessage.setVF(ifindex: Int32(if_nametoindex("lo")), change: change, sequence: 0x0102_0304)
        // Both use do_setlink() in the kernel; the issue asks for RTM_SETLINK, iproute2 sends RTM_NEWLINK.
        #expect(ours[4..<6] == [UInt8(RTM_SETLINK), 0][...])
        #expect(reference[4..<6] == [UInt8(RTM_NEWLINK), 0][...])
        // The sequence number is iproute2's clock; ours is ours.
        #expect(ours[8..<12] == [4, 3, 2, 1][...])
        for r in [4..<6, 8..<12] {
            reference.replaceSubrange(r, with: [UInt8](repeating: 0, count: r.count))
            ours.replaceSubrange(r, with: [UInt8](repeating: 0, count: r.count))
        }
        #expect(ours == reference, "ours \(ours)\niproute2 \(reference)")
    }

    /// A kernel reply built by hand: NLMSG_ERROR for `sequence` with an extended-ACK message.
    func errorReply(code: Int32, sequence: UInt32, message: String?, capped: Bool = true) -> [UInt8] {
        let request = RouteNetlinkMessage.setVF(ifindex: 1, change: VFChange(vf: 0, mac: MACAddress("02:00:00:00:00:01")), sequence: sequence)
        var w = RouteNetlinkMessage.Writer()
        var flags: Int32 = 0
        if capped { flags |= NLM_F_CAPPED }
        if message != nil { flags |= NLM_F_ACK_TLVS }
        w.append(nlmsghdr(nlmsg_len: 0, nlmsg_type: UInt16(NLMSG_ERROR), nlmsg_flags: UInt16(flags), nlmsg_seq: sequence, nlmsg_pid: 0))
        w.append(code)
        w.bytes += capped ? Array(request[0..<16]) : request
        if let message {
            let b = Array(message.utf8) + [0]
            w.append(nlattr(nla_len: UInt16(4 + b.count), nla_type: UInt16(NLMSGERR_ATTR_MSG.rawValue)))
            w.bytes += b
            w.pad()
        }
        return w.finish()
    }

    @Test("kernel answers: ACK, errno with the kernel's message (capped or not), other sequence numbers skipped")
    func replies() {
        #expect(RouteNetlinkMessage.parseReply(errorReply(code: 0, sequence: 5, message: nil), sequence: 5) == .ack)
        #expect(RouteNetlinkMessage.parseReply(errorReply(code: -EINVAL, sequence: 5, message: "VF out of range"), sequence: 5)
            == .error(errno: EINVAL, kernelMessage: "VF out of range"))
        #expect(RouteNetlinkMessage.parseReply(errorReply(code: -EOPNOTSUPP, sequence: 5, message: "no", capped: false), sequence: 5)
            == .error(errno: EOPNOTSUPP, kernelMessage: "no"))
        let two = errorReply(code: -ENODEV, sequence: 4, message: nil) + errorReply(code: 0, sequence: 5, message: nil)
        #expect(RouteNetlinkMessage.parseReply(two, sequence: 5) == .ack)
        #expect(RouteNetlinkMessage.parseReply(two, sequence: 6) == nil)
        #expect(RouteNetlinkMessage.parseReply(Array(two[0..<7]), sequence: 4) == nil)
    }

    @Test("RTM_NEWLINK with VF information: count, MACs, GUIDs")
    func linkReply() {
        var w = RouteNetlinkMessage.Writer()
        w.append(nlmsghdr(nlmsg_len: 0, nlmsg_type: UInt16(RTM_NEWLINK), nlmsg_flags: 0, nlmsg_seq: 9, nlmsg_pid: 0))
        var info = ifinfomsg()
        info.ifi_index = 12
        info.ifi_type = 32
        w.append(info)
        let name = Array("ib0".utf8) + [0]
        w.append(nlattr(nla_len: UInt16(4 + name.count), nla_type: UInt16(IFLA_IFNAME)))
        w.bytes += name
        w.pad()
        w.attribute(IFLA_NUM_VF, UInt32(2))
        w.nest(IFLA_VFINFO_LIST) { list in
            for vf in UInt32(0)..<2 {
                list.nest(IFLA_VF_INFO) { i in
                    var m = ifla_vf_mac()
                    m.vf = vf
                    m.mac.0 = 0x02
                    m.mac.5 = UInt8(vf)
                    i.attribute(IFLA_VF_MAC, m)
                    var g = ifla_vf_guid()
                    g.vf = vf
                    g.guid = 0x1000 + UInt64(vf)
                    i.attribute(IFLA_VF_IB_NODE_GUID, g)
                    g.guid = 0x2000 + UInt64(vf)
                    i.attribute(IFLA_VF_IB_PORT_GUID, g)
                }
            }
        }
        let reply = RouteNetlinkMessage.parseReply(w.finish(), sequence: 9)
        #expect(reply == .link(LinkInfo(index: 12, name: "ib0", type: 32, numVFs: 2, vfs: [
            VFInfo(vf: 0, mac: MACAddress("02:00:00:00:00:00")!, nodeGUID: GUID(0x1000), portGUID: GUID(0x2000)),
            VFInfo(vf: 1, mac: MACAddress("02:00:00:00:00:01")!, nodeGUID: GUID(0x1001), portGUID: GUID(0x2001)),
        ])))
    }

    @Test("the real kernel: lo is found, a missing device is ENODEV, VF settings on lo are EOPNOTSUPP, VF index 2^31-1 is EINVAL")
    func realKernel() throws {
        let socket = try RouteNetlinkSocket()
        let lo = try socket.link(named: "lo")
        #expect(lo.name == "lo" && lo.index == Int32(if_nametoindex("lo")) && (lo.numVFs ?? 0) == 0)
        #expect(throws: HookError.netlink(NetlinkError(errno: ENODEV, device: "vrdmanope0", request: "read vrdmanope0"))) {
            _ = try socket.link(named: "vrdmanope0")
        }
        let root = getuid() == 0
        func refusal(_ change: VFChange) -> NetlinkError? {
            do { try socket.setVF(change, on: lo) } catch {
                if case .netlink(let e) = error { return e }
            }
            return nil
        }
        let mac = try #require(refusal(VFChange(vf: 0, mac: MACAddress("02:00:00:00:00:01"))))
        #expect(mac.errno == (root ? EOPNOTSUPP : EPERM))
        let guid = try #require(refusal(VFChange(vf: 0, nodeGUID: GUID(0x0002_c903_00a1_b2c3))))
        #expect(guid.errno == (root ? EOPNOTSUPP : EPERM))
        if root {
            #expect(guid.description == "set node GUID 00:02:c9:03:00:a1:b2:c3 of VF 0 on lo: the driver of lo (link type 772) does not support this "
                + "(EOPNOTSUPP); VF GUIDs need an InfiniBand PF (IPoIB on an SR-IOV HCA)" + (guid.kernelMessage.map { "; kernel: \($0)" } ?? ""))
            let range = try #require(refusal(VFChange(vf: UInt32(Int32.max), portGUID: GUID(1))))
            #expect(range.errno == EINVAL)
            #expect(range.description.hasPrefix("set port GUID 00:00:00:00:00:00:00:01 of VF 2147483647 on lo: the kernel or driver rejected the VF index or value (EINVAL)"))
        }
    }

    @Test("error messages name the request, the device and the errno", arguments: [
        (ENODEV, "read eth9: no network device eth9 (ENODEV)"),
        (EINVAL, "read eth9: the kernel or driver rejected the VF index or value (EINVAL)"),
        (EPERM, "read eth9: not permitted: needs CAP_NET_ADMIN (EPERM)"),
        (EOPNOTSUPP, "read eth9: the driver of eth9 does not support this (EOPNOTSUPP)"),
    ])
    func messages(code: Int32, text: String) {
        #expect(NetlinkError(errno: code, device: "eth9", request: "read eth9").description == text)
    }
}
