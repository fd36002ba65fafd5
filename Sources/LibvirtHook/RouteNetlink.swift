// SPDX-License-Identifier: Apache-2.0
// rtnetlink for SR-IOV VFs: the RTM_SETLINK request that sets one VF's MAC, node GUID or port GUID
// (IFLA_VFINFO_LIST > IFLA_VF_INFO > IFLA_VF_MAC | IFLA_VF_IB_NODE_GUID | IFLA_VF_IB_PORT_GUID),
// the RTM_GETLINK request that reads a PF's VFs back, the parsing of the kernel's answers, and the
// socket that carries them. Byte layouts come from the kernel's UAPI structs (CRouteNetlink); the
// encoder is checked byte for byte against iproute2 (Tests/LibvirtHookTests/NetlinkTests.swift).
import CRouteNetlink
import Glibc
import LinuxSystem

public enum VFAttribute: String, Sendable {
    case mac = "MAC"
    case nodeGUID = "node GUID"
    case portGUID = "port GUID"
}

/// One VF setting. The hook sends one attribute per request: Linux 6.1's do_setvfinfo() applies
/// the MAC before the GUIDs and returns after the node GUID without looking at the port GUID, so a
/// combined request can half-succeed or silently skip a value (net/core/rtnetlink.c).
public struct VFChange: Sendable, Equatable {
    public let vf: UInt32
    public var mac: MACAddress?
    public var nodeGUID: GUID?
    public var portGUID: GUID?

    public init(vf: UInt32, mac: MACAddress? = nil, nodeGUID: GUID? = nil, portGUID: GUID? = nil) {
        self.vf = vf
        self.mac = mac
        self.nodeGUID = nodeGUID
        self.portGUID = portGUID
    }
}

public struct VFInfo: Sendable, Equatable {
    public let vf: UInt32
    public let mac: MACAddress
    /// Reported only by drivers with ndo_get_vf_guid (InfiniBand PFs).
    public let nodeGUID: GUID?
    public let portGUID: GUID?
}

public struct LinkInfo: Sendable, Equatable {
    public static let typeEthernet: UInt16 = 1        // ARPHRD_ETHER
    public static let typeInfiniBand: UInt16 = 32     // ARPHRD_INFINIBAND

    public let index: Int32
    public let name: String
    /// ARPHRD_* of the PF.
    public let type: UInt16
    /// IFLA_NUM_VF; nil when the device reports no SR-IOV.
    public let numVFs: UInt32?
    public let vfs: [VFInfo]

    public var typeName: String {
        switch type {
        case Self.typeEthernet: "Ethernet"
        case Self.typeInfiniBand: "InfiniBand"
        default: "link type \(type)"
        }
    }
}

/// The kernel refused a request: errno, what was asked, and the kernel's own message if it sent
/// one (extended ACK).
public struct NetlinkError: Error, Equatable, CustomStringConvertible, Sendable {
    public let errno: Int32
    public let device: String
    public let request: String
    public let attribute: VFAttribute?
    public let linkType: String?
    public let kernelMessage: String?

    public init(errno: Int32, device: String, request: String, attribute: VFAttribute? = nil,
                linkType: String? = nil, kernelMessage: String? = nil) {
        self.errno = errno
        self.device = device
        self.request = request
        self.attribute = attribute
        self.linkType = linkType
        self.kernelMessage = kernelMessage
    }

    public var description: String {
        var s = "\(request): "
        switch errno {
        case EOPNOTSUPP:
            s += "the driver of \(device)\(linkType.map { " (\($0))" } ?? "") does not support this (EOPNOTSUPP)"
            if attribute == .nodeGUID || attribute == .portGUID {
                s += "; VF GUIDs need an InfiniBand PF (IPoIB on an SR-IOV HCA)"
            }
        case ENODEV: s += "no network device \(device) (ENODEV)"
        case EINVAL: s += "the kernel or driver rejected the VF index or value (EINVAL)"
        case EPERM: s += "not permitted: needs CAP_NET_ADMIN (EPERM)"
        case ERANGE: s += "value out of range for the driver (ERANGE)"
        default: s += "\(String(cString: strerror(errno))) (errno \(errno))"
        }
        if let kernelMessage, !kernelMessage.isEmpty { s += "; kernel: \(kernelMessage)" }
        return s
    }
}

/// Message encoding and decoding; no I/O.
public enum RouteNetlinkMessage {
    static let headerSize = MemoryLayout<nlmsghdr>.size
    static let ifinfoSize = MemoryLayout<ifinfomsg>.size
    static let typeMask = UInt16(truncatingIfNeeded: ~(Int32(NLA_F_NESTED) | Int32(NLA_F_NET_BYTEORDER)))

    struct Writer {
        var bytes: [UInt8] = []

        mutating func append<T>(_ value: T) {
            withUnsafeBytes(of: value) { bytes += $0 }
        }

        mutating func pad() {
            while bytes.count % 4 != 0 { bytes.append(0) }
        }

        mutating func attribute<T>(_ type: Int, _ payload: T) {
            withUnsafeBytes(of: payload) { attribute(type, bytes: Array($0)) }
        }

        mutating func attribute(_ type: Int, bytes payload: [UInt8]) {
            append(nlattr(nla_len: UInt16(4 + payload.count), nla_type: UInt16(type)))
            bytes += payload
            pad()
        }

        /// Nested attribute; iproute2 (addattr_nest) sets no NLA_F_NESTED flag, and neither do we.
        mutating func nest(_ type: Int, _ body: (inout Writer) -> Void) {
            let start = bytes.count
            append(nlattr(nla_len: 0, nla_type: UInt16(type)))
            body(&self)
            let len = UInt16(bytes.count - start)
            withUnsafeBytes(of: len) { bytes.replaceSubrange(start..<start + 2, with: $0) }
        }

        mutating func finish() -> [UInt8] {
            let len = UInt32(bytes.count)
            withUnsafeBytes(of: len) { bytes.replaceSubrange(0..<4, with: $0) }
            return bytes
        }
    }

    static func header(type: Int, flags: Int32, sequence: UInt32, ifindex: Int32) -> Writer {
        var w = Writer()
        w.append(nlmsghdr(nlmsg_len: 0, nlmsg_type: UInt16(type), nlmsg_flags: UInt16(flags), nlmsg_seq: sequence, nlmsg_pid: 0))
        var info = ifinfomsg()
        info.ifi_family = UInt8(AF_UNSPEC)
        info.ifi_index = ifindex
        w.append(info)
        return w
    }

    static func zeroed<T>(_: T.Type) -> [UInt8] { [UInt8](repeating: 0, count: MemoryLayout<T>.size) }

    static func store<V: FixedWidthInteger>(_ value: V, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value) { bytes.replaceSubrange(offset..<offset + MemoryLayout<V>.size, with: $0) }
    }

    /// RTM_SETLINK on `ifindex` carrying one IFLA_VF_INFO with the attributes of `change` set.
    public static func setVF(ifindex: Int32, change: VFChange, sequence: UInt32) -> [UInt8] {
        var w = header(type: RTM_SETLINK, flags: NLM_F_REQUEST | NLM_F_ACK, sequence: sequence, ifindex: ifindex)
        w.nest(IFLA_VFINFO_LIST) { list in
            list.nest(IFLA_VF_INFO) { info in
                // Payloads are laid out field by field over zeroed bytes: a Swift value of a C
                // struct leaves its padding (4 bytes in ifla_vf_guid) undefined, iproute2 zeroes it.
                if let mac = change.mac {
                    var m = zeroed(ifla_vf_mac.self)
                    store(change.vf, at: MemoryLayout<ifla_vf_mac>.offset(of: \.vf)!, in: &m)
                    m.replaceSubrange(MemoryLayout<ifla_vf_mac>.offset(of: \.mac)!..<(MemoryLayout<ifla_vf_mac>.offset(of: \.mac)! + 6), with: mac.bytes)
                    info.attribute(IFLA_VF_MAC, bytes: m)
                }
                for (type, guid) in [(IFLA_VF_IB_NODE_GUID, change.nodeGUID), (IFLA_VF_IB_PORT_GUID, change.portGUID)] {
                    guard let guid else { continue }
                    var g = zeroed(ifla_vf_guid.self)
                    store(change.vf, at: MemoryLayout<ifla_vf_guid>.offset(of: \.vf)!, in: &g)
                    store(guid.value, at: MemoryLayout<ifla_vf_guid>.offset(of: \.guid)!, in: &g)
                    info.attribute(type, bytes: g)
                }
            }
        }
        return w.finish()
    }

    /// RTM_GETLINK for one device by name, asking for VF information (as `ip link show` does).
    public static func getLink(name: String, sequence: UInt32) -> [UInt8] {
        var w = header(type: RTM_GETLINK, flags: NLM_F_REQUEST, sequence: sequence, ifindex: 0)
        w.attribute(IFLA_EXT_MASK, UInt32(RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS))
        let nameBytes = Array(name.utf8) + [0]
        w.append(nlattr(nla_len: UInt16(4 + nameBytes.count), nla_type: UInt16(IFLA_IFNAME)))
        w.bytes += nameBytes
        w.pad()
        return w.finish()
    }

    public enum Reply: Equatable, Sendable {
        case ack
        case error(errno: Int32, kernelMessage: String?)
        case link(LinkInfo)
    }

    static func load<T>(_ bytes: ArraySlice<UInt8>, at offset: Int, as: T.Type) -> T? {
        guard offset >= bytes.startIndex, offset + MemoryLayout<T>.size <= bytes.endIndex else { return nil }
        return bytes.withUnsafeBytes { raw in raw.loadUnaligned(fromByteOffset: offset - bytes.startIndex, as: T.self) }
    }

    /// (type, payload) of each attribute in `bytes`; stops at the first malformed one.
    static func attributes(_ bytes: ArraySlice<UInt8>) -> [(UInt16, ArraySlice<UInt8>)] {
        var out: [(UInt16, ArraySlice<UInt8>)] = []
        var at = bytes.startIndex
        while let a = load(bytes, at: at, as: nlattr.self), Int(a.nla_len) >= 4, at + Int(a.nla_len) <= bytes.endIndex {
            out.append((a.nla_type & typeMask, bytes[(at + 4)..<(at + Int(a.nla_len))]))
            at += (Int(a.nla_len) + 3) & ~3
        }
        return out
    }

    /// The message answering `sequence` in one datagram from the kernel; nil if none does.
    public static func parseReply(_ datagram: [UInt8], sequence: UInt32) -> Reply? {
        var at = 0
        let all = datagram[...]
        while let h = load(all, at: at, as: nlmsghdr.self), Int(h.nlmsg_len) >= headerSize, at + Int(h.nlmsg_len) <= datagram.count {
            let message = all[at..<(at + Int(h.nlmsg_len))]
            defer { at += (Int(h.nlmsg_len) + 3) & ~3 }
            guard h.nlmsg_seq == sequence else { continue }
            if Int32(h.nlmsg_type) == NLMSG_ERROR {
                guard let code = load(message, at: message.startIndex + headerSize, as: Int32.self) else { return .error(errno: EPROTO, kernelMessage: "short NLMSG_ERROR") }
                if code == 0 { return .ack }
                var text: String?
                if Int32(h.nlmsg_flags) & NLM_F_ACK_TLVS != 0, let inner = load(message, at: message.startIndex + headerSize + 4, as: nlmsghdr.self) {
                    let echoed = Int32(h.nlmsg_flags) & NLM_F_CAPPED != 0 ? headerSize : Int(inner.nlmsg_len)
                    let tlvStart = message.startIndex + headerSize + 4 + ((echoed + 3) & ~3)
                    if tlvStart <= message.endIndex {
                        for (type, payload) in attributes(message[tlvStart...]) where Int(type) == Int(NLMSGERR_ATTR_MSG.rawValue) {
                            text = String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
                        }
                    }
                }
                return .error(errno: -code, kernelMessage: text)
            }
            if Int(h.nlmsg_type) == RTM_NEWLINK, let info = load(message, at: message.startIndex + headerSize, as: ifinfomsg.self) {
                return .link(parseLink(info, message[(message.startIndex + headerSize + ifinfoSize)...]))
            }
        }
        return nil
    }

    static func parseLink(_ info: ifinfomsg, _ attrs: ArraySlice<UInt8>) -> LinkInfo {
        var name = ""
        var numVFs: UInt32?
        var vfs: [VFInfo] = []
        for (type, payload) in attributes(attrs) {
            switch Int(type) {
            case IFLA_IFNAME: name = String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
            case IFLA_NUM_VF: numVFs = load(payload, at: payload.startIndex, as: UInt32.self)
            case IFLA_VFINFO_LIST:
                for (t, vfPayload) in attributes(payload) where Int(t) == IFLA_VF_INFO {
                    var vf: UInt32?
                    var mac: MACAddress?
                    var node: GUID?
                    var port: GUID?
                    for (a, p) in attributes(vfPayload) {
                        switch Int(a) {
                        case IFLA_VF_MAC:
                            if let m = load(p, at: p.startIndex, as: ifla_vf_mac.self) {
                                vf = m.vf
                                mac = withUnsafeBytes(of: m.mac) { MACAddress(bytes: Array($0.prefix(6))) }
                            }
                        case IFLA_VF_IB_NODE_GUID, IFLA_VF_IB_PORT_GUID:
                            let g = load(p, at: p.startIndex, as: ifla_vf_guid.self).map { GUID($0.guid) }
                            if Int(a) == IFLA_VF_IB_NODE_GUID { node = g } else { port = g }
                        default: break
                        }
                    }
                    if let vf, let mac { vfs.append(VFInfo(vf: vf, mac: mac, nodeGUID: node, portGUID: port)) }
                }
            default: break
            }
        }
        return LinkInfo(index: info.ifi_index, name: name, type: info.ifi_type, numVFs: numVFs, vfs: vfs)
    }
}

/// What the hook needs from the kernel's link layer; the real one is RouteNetlinkSocket, tests
/// substitute a recording fake.
public protocol LinkControl: AnyObject {
    func link(named name: String) throws(HookError) -> LinkInfo
    func setVF(_ change: VFChange, on link: LinkInfo) throws(HookError)
}

public final class RouteNetlinkSocket: LinkControl {
    let socket: OwnedFileDescriptor
    var sequence: UInt32

    public init() throws(SystemError) {
        let fd = try retryingInterrupts("socket(AF_NETLINK)") {
            Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        }
        socket = OwnedFileDescriptor(adopting: fd)
        // Ask for the kernel's error strings (extended ACK); older kernels ignore it.
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        sequence = UInt32(truncatingIfNeeded: time(nil))
    }

    /// Sends `request` and returns the kernel's answer to it.
    func exchange(_ request: [UInt8], sequence: UInt32) throws(SystemError) -> RouteNetlinkMessage.Reply {
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = try retryingInterrupts("sendto(NETLINK_ROUTE)") {
            request.withUnsafeBytes { buf in
                withUnsafePointer(to: &kernel) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(socket.rawValue, buf.baseAddress, buf.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                    }
                }
            }
        }
        guard sent == request.count else { throw SystemError(errno: EMSGSIZE, operation: "sendto(NETLINK_ROUTE): short send") }
        for _ in 0..<64 {
            // Peek the size first: a PF with many VFs answers with more than a page.
            let size = try retryingInterrupts("recv(NETLINK_ROUTE)") { recv(socket.rawValue, nil, 0, Int32(MSG_PEEK | MSG_TRUNC)) }
            var buffer = [UInt8](repeating: 0, count: max(size, 16))
            let n = try retryingInterrupts("recv(NETLINK_ROUTE)") { buffer.withUnsafeMutableBytes { recv(socket.rawValue, $0.baseAddress, $0.count, 0) } }
            if let reply = RouteNetlinkMessage.parseReply(Array(buffer[..<n]), sequence: sequence) { return reply }
        }
        throw SystemError(errno: EPROTO, operation: "NETLINK_ROUTE: no answer to request \(sequence)")
    }

    func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    public func link(named name: String) throws(HookError) -> LinkInfo {
        let seq = nextSequence()
        let reply: RouteNetlinkMessage.Reply
        do throws(SystemError) { reply = try exchange(RouteNetlinkMessage.getLink(name: name, sequence: seq), sequence: seq) } catch { throw .system(error) }
        switch reply {
        case .link(let info): return info
        case .error(let code, let text):
            throw .netlink(NetlinkError(errno: code, device: name, request: "read \(name)", kernelMessage: text))
        case .ack:
            throw .netlink(NetlinkError(errno: EPROTO, device: name, request: "read \(name)", kernelMessage: "acknowledged without data"))
        }
    }

    public func setVF(_ change: VFChange, on link: LinkInfo) throws(HookError) {
        let seq = nextSequence()
        let attribute: VFAttribute = change.mac != nil ? .mac : change.nodeGUID != nil ? .nodeGUID : .portGUID
        let value = change.mac?.description ?? (change.nodeGUID ?? change.portGUID)?.description ?? ""
        let request = "set \(attribute.rawValue) \(value) of VF \(change.vf) on \(link.name)"
        let reply: RouteNetlinkMessage.Reply
        do throws(SystemError) { reply = try exchange(RouteNetlinkMessage.setVF(ifindex: link.index, change: change, sequence: seq), sequence: seq) } catch { throw .system(error) }
        switch reply {
        case .ack: return
        case .error(let code, let text):
            throw .netlink(NetlinkError(errno: code, device: link.name, request: request, attribute: attribute,
                                        linkType: link.typeName, kernelMessage: text))
        case .link:
            throw .netlink(NetlinkError(errno: EPROTO, device: link.name, request: request, kernelMessage: "unexpected link message"))
        }
    }
}
