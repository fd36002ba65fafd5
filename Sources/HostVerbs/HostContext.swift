// SPDX-License-Identifier: Apache-2.0
// The host's RDMA device through libibverbs: one opened device and port, its GID table, and the
// completion channel whose descriptor wakes a sleeping data-plane worker. Knows nothing of virtio:
// the device layer hands it plain values and host pointers.
import CIBVerbs
import CLinuxShims
import Glibc

public enum HostVerbsError: Error, Equatable, CustomStringConvertible {
    /// The named device is not among those libibverbs lists.
    case noDevice(requested: String, present: [String])
    case badPort(device: String, port: UInt8, count: UInt8)
    case badGIDIndex(device: String, index: Int, length: Int)
    /// A verb failed: what was being done and its errno.
    case system(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .noDevice(let name, let present):
            present.isEmpty ? "no RDMA device '\(name)': this host has no RDMA devices"
                : "no RDMA device '\(name)'; present: \(present.joined(separator: ", "))"
        case .badPort(let d, let p, let n): "\(d) has \(n) port(s), not port \(p)"
        case .badGIDIndex(let d, let i, let n): "\(d): GID index \(i) outside its table of \(n)"
        case .system(let op, let e): "\(op): \(String(cString: strerror(e))) (errno \(e))"
        }
    }

    /// The error a failed verb left in errno (verbs return NULL or a negative/positive errno).
    static func last(_ operation: String, _ code: Int32 = 0) -> HostVerbsError {
        .system(operation: operation, errno: code > 0 ? code : (code < 0 ? -code : (errno != 0 ? errno : EIO)))
    }
}

/// A GID of the host port: its table index and 16 bytes in network order.
public struct HostGID: Equatable, Sendable {
    public let index: Int
    public let bytes: [UInt8]
}

public final class HostContext: @unchecked Sendable {
    // @unchecked: used by one device's worker; the pointers are owned here.
    public let deviceName: String
    public let port: UInt8
    let context: UnsafeMutablePointer<ibv_context>
    let channel: UnsafeMutablePointer<ibv_comp_channel>
    /// Holds the channel's and the async events' descriptors.
    private let wakeEpoll: Int32
    public let deviceAttributes: ibv_device_attr
    public let portAttributes: ibv_port_attr

    /// The RDMA devices libibverbs finds on this host.
    public static func deviceNames() -> [String] {
        var count: Int32 = 0
        guard let list = ibv_get_device_list(&count) else { return [] }
        defer { ibv_free_device_list(list) }
        return (0..<Int(count)).compactMap { list[$0].map { String(cString: ibv_get_device_name($0)) } }
    }

    /// Opens `deviceName` and checks `port` exists.
    public init(deviceName: String, port: UInt8) throws(HostVerbsError) {
        var count: Int32 = 0
        guard let list = ibv_get_device_list(&count) else { throw .noDevice(requested: deviceName, present: []) }
        defer { ibv_free_device_list(list) }
        var found: UnsafeMutablePointer<ibv_device>?
        var names: [String] = []
        for i in 0..<Int(count) {
            guard let d = list[i] else { continue }
            let name = String(cString: ibv_get_device_name(d))
            names.append(name)
            if name == deviceName { found = d }
        }
        guard let found else { throw .noDevice(requested: deviceName, present: names) }
        guard let ctx = ibv_open_device(found) else { throw .last("ibv_open_device(\(deviceName))") }
        var attr = ibv_device_attr()
        var rc = ibv_query_device(ctx, &attr)
        guard rc == 0 else { ibv_close_device(ctx); throw .last("ibv_query_device(\(deviceName))", rc) }
        guard port >= 1, port <= attr.phys_port_cnt else {
            ibv_close_device(ctx)
            throw .badPort(device: deviceName, port: port, count: attr.phys_port_cnt)
        }
        var portAttr = ibv_port_attr()
        rc = CIBVerbs_query_port(ctx, port, &portAttr)
        guard rc == 0 else { ibv_close_device(ctx); throw .last("ibv_query_port(\(deviceName), \(port))", rc) }
        guard let ch = ibv_create_comp_channel(ctx) else {
            ibv_close_device(ctx)
            throw .last("ibv_create_comp_channel(\(deviceName))")
        }
        // The worker drains the channel and the async events without blocking; one epoll
        // descriptor holding both says when there is something.
        for fd in [ch.pointee.fd, ctx.pointee.async_fd] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let wake = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard wake >= 0 else {
            ibv_destroy_comp_channel(ch)
            ibv_close_device(ctx)
            throw .last("epoll_create1")
        }
        for fd in [ch.pointee.fd, ctx.pointee.async_fd] {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = fd
            _ = epoll_ctl(wake, EPOLL_CTL_ADD, fd, &event)
        }
        wakeEpoll = wake
        self.deviceName = deviceName
        self.port = port
        context = ctx
        channel = ch
        deviceAttributes = attr
        portAttributes = portAttr
    }

    deinit {
        close(wakeEpoll)
        ibv_destroy_comp_channel(channel)
        ibv_close_device(context)
    }

    /// Readable when a CQ armed with `arm()` has a new completion or an async event is waiting.
    public var wakeDescriptor: Int32 { wakeEpoll }

    /// One of the device's async events (ibv_get_async_event), taken and acknowledged.
    public enum AsyncEvent: Sendable, Equatable {
        case queuePair(ibv_event_type, hostQPN: UInt32)
        case completionQueue(ibv_event_type, HostCompletionQueue.ID)
        case sharedReceiveQueue(ibv_event_type)
        case port(ibv_event_type, port: UInt8)
        case device(ibv_event_type)
    }

    /// The next async event, or nil when none waits.
    public func nextAsyncEvent() -> AsyncEvent? {
        var e = ibv_async_event()
        guard ibv_get_async_event(context, &e) == 0 else { return nil }
        defer { ibv_ack_async_event(&e) }
        let type = e.event_type
        switch type {
        case IBV_EVENT_QP_FATAL, IBV_EVENT_QP_REQ_ERR, IBV_EVENT_QP_ACCESS_ERR, IBV_EVENT_COMM_EST, IBV_EVENT_SQ_DRAINED,
             IBV_EVENT_PATH_MIG, IBV_EVENT_PATH_MIG_ERR, IBV_EVENT_QP_LAST_WQE_REACHED:
            return .queuePair(type, hostQPN: e.element.qp.pointee.qp_num)
        case IBV_EVENT_CQ_ERR:
            return .completionQueue(type, HostCompletionQueue.ID(e.element.cq))
        case IBV_EVENT_SRQ_ERR, IBV_EVENT_SRQ_LIMIT_REACHED:
            return .sharedReceiveQueue(type)
        case IBV_EVENT_DEVICE_FATAL:
            return .device(type)
        default:
            return .port(type, port: UInt8(truncatingIfNeeded: e.element.port_num))
        }
    }

    /// Takes every pending completion event off the channel (and acknowledges it, so CQs can be
    /// destroyed at any time). Returns how many there were.
    @discardableResult
    public func drainCompletionEvents() -> Int {
        var n = 0
        var cq: UnsafeMutablePointer<ibv_cq>?
        var user: UnsafeMutableRawPointer?
        while ibv_get_cq_event(channel, &cq, &user) == 0 {
            if let cq { ibv_ack_cq_events(cq, 1) }
            n += 1
        }
        return n
    }

    /// The port's GID table as the host has it now (empty entries left out).
    /// Entries past 255 cannot be named: an address vector's sgid_index is 8 bits.
    var usableGIDTableLength: Int { min(Int(portAttributes.gid_tbl_len), 256) }

    public func gidTable() -> [HostGID] {
        var out: [HostGID] = []
        for i in 0..<usableGIDTableLength {
            var gid = ibv_gid()
            guard ibv_query_gid(context, port, Int32(i), &gid) == 0 else { continue }
            let bytes = withUnsafeBytes(of: gid.raw) { Array($0) }
            if bytes.allSatisfy({ $0 == 0 }) { continue }
            out.append(HostGID(index: i, bytes: bytes))
        }
        return out
    }

    /// The GID at `index`, or an error if the index is outside the table or the entry is empty.
    public func gid(at index: Int) throws(HostVerbsError) -> HostGID {
        guard index >= 0, index < usableGIDTableLength, let g = gidTable().first(where: { $0.index == index }) else {
            throw .badGIDIndex(device: deviceName, index: index, length: usableGIDTableLength)
        }
        return g
    }
}
