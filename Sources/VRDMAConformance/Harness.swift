// SPDX-License-Identifier: Apache-2.0
// What the scenarios (and the integration tests) stand on: one daemon serving several devices,
// one model guest driver per device (the "VMs"), each with its own RoCE GID at index 1; and
// endpoints (context, PD, CQs, a QP and a registered buffer) that connect and carry traffic.
// Every wait has a timeout.
import Glibc
import VRDMATestSupport

/// The RoCEv2 GID test VM `n` adds at index 1 unless told otherwise: ::ffff:10.0.0.<n+1>.
public func vmGID(_ n: Int) -> GID { GID.ipv4Mapped(10, 0, 0, UInt8(n + 1)) }

/// A daemon with `count` devices and a model driver on each.
public final class VMs {
    public let daemon: DaemonProcess
    public let devices: [VerbsDevice]
    public var a: VerbsDevice { devices[0] }
    public var b: VerbsDevice { devices[1] }

    /// Device `i` adds `gids[i]` at GID index 1, or `vmGID(i)` past the end of `gids`.
    public init(count: Int = 2, arguments: [String] = [], workers: Int = 2, daemonPath: String = DaemonProcess.binaryPath,
                gids: [GID] = []) throws {
        daemon = try DaemonProcess(binary: daemonPath, devices: count, extraArguments: ["--workers", "\(workers)"] + arguments)
        var ds: [VerbsDevice] = []
        for (i, path) in daemon.socketPaths.enumerated() {
            ds.append(try VerbsDevice(socketPath: path, roceGID: i < gids.count ? gids[i] : vmGID(i)))
        }
        devices = ds
    }

    /// The daemon log's last 3000 characters from a line start, for failure messages.
    public var logTail: String {
        let log = daemon.log
        let tail = log.suffix(3000)
        guard tail.startIndex != log.startIndex, let newline = tail.firstIndex(of: "\n") else { return String(tail) }
        return String(tail[tail.index(after: newline)...])
    }

    deinit { daemon.terminate() }
}

/// What one side of a connection needs: a context, PD, CQs, a QP and a registered buffer.
public struct Endpoint {
    public let device: VerbsDevice
    public let ctx: VerbsContext
    public let pd: ProtectionDomain
    public let sendCQ: CompletionQueue
    public let recvCQ: CompletionQueue
    public let qp: QueuePair
    public let mr: MemoryRegion

    public init(_ device: VerbsDevice, type: QPType = .rc, mrSize: Int = 64 << 10, access: Access = .all,
                sq: WorkQueueCaps = WorkQueueCaps(depth: 64, maxSGE: 4, maxInline: 64), rq: WorkQueueCaps = WorkQueueCaps(depth: 64, maxSGE: 4),
                cqDepth: UInt32 = 256, sqSigAll: Bool = false, srq: SharedReceiveQueue? = nil, ctx: VerbsContext? = nil,
                pd: ProtectionDomain? = nil) throws {
        self.device = device
        self.ctx = try ctx ?? device.createContext()
        self.pd = try pd ?? self.ctx.allocPD()
        sendCQ = try self.ctx.createCQ(depth: cqDepth)
        recvCQ = try self.ctx.createCQ(depth: cqDepth)
        qp = try self.ctx.createQP(pd: self.pd, sendCQ: sendCQ, recvCQ: recvCQ, type: type, sq: sq, rq: rq, srq: srq, sqSigAll: sqSigAll)
        mr = try self.pd.registerMR(length: mrSize, access: access)
    }

    /// Another QP on the same context, PD and CQs.
    public func anotherQP(type: QPType = .rc, srq: SharedReceiveQueue? = nil) throws -> QueuePair {
        try ctx.createQP(pd: pd, sendCQ: sendCQ, recvCQ: recvCQ, type: type, sq: WorkQueueCaps(depth: 64, maxSGE: 4, maxInline: 64),
                         rq: WorkQueueCaps(depth: 64, maxSGE: 4), srq: srq)
    }

    public func postRecv(wrId: UInt64, offset: Int = 0, length: Int = 4096) throws {
        try qp.postRecv(RecvWR(wrId: wrId, sges: [mr.sge(offset: offset, length: length)]))
    }

    /// A receive, posted and then waited for until the device has taken it (the verbs provider
    /// takes receives when it hands them to the NIC; docs/virtio-rdma.md §15.6).
    public func postRecvTaken(wrId: UInt64, offset: Int = 0, length: Int = 4096) throws {
        try postRecv(wrId: wrId, offset: offset, length: length)
        guard let rq = qp.rq else { return }
        let deadline = monotonicMilliseconds() + 2000
        while rq.outstanding > 0 {
            guard monotonicMilliseconds() < deadline else { throw VerbsError.timeout("the device did not take receive \(wrId)") }
            usleep(200)
        }
    }

    public func send(wrId: UInt64, offset: Int = 0, length: Int, opcode: SendOpcode = .send, imm: UInt32 = 0,
                     flags: SendFlags = .signaled) throws {
        try qp.postSend(SendWR(wrId: wrId, opcode: opcode, flags: flags, sges: [mr.sge(offset: offset, length: length)], imm: imm))
    }
}

/// Two RC endpoints on the first two devices, connected.
public func connectedPair(_ vms: VMs, _ pa: RCParameters = RCParameters(), _ pb: RCParameters? = nil, mrSize: Int = 64 << 10,
                          accessA: Access = .all, accessB: Access = .all) throws -> (Endpoint, Endpoint) {
    let a = try Endpoint(vms.a, mrSize: mrSize, access: accessA)
    let b = try Endpoint(vms.b, mrSize: mrSize, access: accessB)
    try QueuePair.connect(a.qp, b.qp, pa, pb)
    return (a, b)
}

/// Deterministic test bytes.
public func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ ($0 >> 8)) }
}

/// Waits until QUERY_QP reports `state` (errors reach the QP asynchronously); returns the last state seen.
public func waitForState(_ qp: QueuePair, _ state: QPState, milliseconds: Int = 2000) -> QPState? {
    let deadline = monotonicMilliseconds() + milliseconds
    var last: QPState?
    repeat {
        last = try? qp.state()
        if last == state { return last }
        usleep(1000)
    } while monotonicMilliseconds() < deadline
    return last
}

/// What a conformance run is pointed at: the daemon, its extra arguments (the provider), and the
/// RoCE GID each of its two devices adds at index 1. On a real HCA those must be GIDs the host's
/// table holds (on rxe: the host's IP addresses).
public struct HarnessConfiguration: Sendable {
    public var daemonPath: String
    public var daemonArguments: [String]
    public var gids: [GID]

    /// The daemon runs the software fabric (not `--provider verbs`).
    public var softwareProvider: Bool {
        !daemonArguments.contains("verbs") && !daemonArguments.contains { $0.hasPrefix("--provider=verbs") }
    }

    public init(daemonPath: String = DaemonProcess.binaryPath, daemonArguments: [String] = [], gids: [GID] = [vmGID(0), vmGID(1)]) {
        precondition(gids.count == 2, "one GID per device")
        self.daemonPath = daemonPath
        self.daemonArguments = daemonArguments
        self.gids = gids
    }
}

/// What one scenario gets: a fresh daemon with two devices, and the recorder of its failures.
public final class Harness {
    public let vms: VMs
    public let checks: Checks
    /// The GIDs of `a` and `b` at index 1.
    public let gids: [GID]
    public var a: VerbsDevice { vms.a }
    public var b: VerbsDevice { vms.b }
    /// The daemon runs the software fabric (not `--provider verbs`). A few answers come from the
    /// host NIC on the verbs provider and are allowed to be what real HCAs give (docs/virtio-rdma.md,
    /// "Providers").
    public let softwareProvider: Bool

    init(_ configuration: HarnessConfiguration, checks: Checks) throws {
        vms = try VMs(arguments: configuration.daemonArguments, daemonPath: configuration.daemonPath, gids: configuration.gids)
        self.checks = checks
        gids = configuration.gids
        softwareProvider = configuration.softwareProvider
    }

    /// A UD receive the next datagram will find: on the verbs provider it must reach the NIC first
    /// (the software fabric takes receives when a message arrives).
    public func postDatagramReceive(_ e: Endpoint, wrId: UInt64, offset: Int, length: Int) throws {
        if softwareProvider {
            try e.postRecv(wrId: wrId, offset: offset, length: length)
        } else {
            try e.postRecvTaken(wrId: wrId, offset: offset, length: length)
        }
    }

    /// Two RC endpoints, one on each device, connected.
    public func connectedPair(_ pa: RCParameters = RCParameters(), _ pb: RCParameters? = nil, mrSize: Int = 64 << 10,
                              accessA: Access = .all, accessB: Access = .all) throws -> (Endpoint, Endpoint) {
        try VRDMAConformance.connectedPair(vms, pa, pb, mrSize: mrSize, accessA: accessA, accessB: accessB)
    }

    /// The daemon is alive and every device still answers QUERY_DEVICE.
    func expectAlive() {
        checks.expect(vms.daemon.isRunning, "the daemon died")
        for (i, device) in vms.devices.enumerated() {
            do {
                let attributes = try device.queryDevice()
                checks.expect(attributes.max_qp != 0, "device \(i): QUERY_DEVICE reports max_qp 0")
            } catch {
                checks.record("device \(i) does not answer QUERY_DEVICE: \(error)")
            }
        }
    }
}
