// SPDX-License-Identifier: Apache-2.0
// Shared set-up of the verbs tests: one daemon serving two devices, one model guest driver per
// device (two "VMs"), each with its own RoCE GID at index 1; and endpoints (context, PD, CQs, a
// QP and a registered buffer) that tests connect and drive. Every wait has a timeout.
import CVRDMAABI
import Glibc
import Testing
import VRDMATestSupport

/// The RoCEv2 GID each test VM adds at index 1: ::ffff:10.0.0.<n+1>.
func vmGID(_ n: Int) -> GID { GID.ipv4Mapped(10, 0, 0, UInt8(n + 1)) }

/// A daemon with `count` devices and a model driver on each.
final class VMs {
    let daemon: DaemonProcess
    let devices: [VerbsDevice]
    var a: VerbsDevice { devices[0] }
    var b: VerbsDevice { devices[1] }

    init(count: Int = 2, arguments: [String] = [], workers: Int = 2) throws {
        daemon = try DaemonProcess(devices: count, extraArguments: ["--workers", "\(workers)"] + arguments)
        var ds: [VerbsDevice] = []
        for (i, path) in daemon.socketPaths.enumerated() {
            ds.append(try VerbsDevice(socketPath: path, roceGID: vmGID(i)))
        }
        devices = ds
    }

    /// The daemon is alive and every device still answers QUERY_DEVICE.
    func expectAlive(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(daemon.isRunning, "daemon died: \(daemon.log.suffix(4000))", sourceLocation: sourceLocation)
        for (i, d) in devices.enumerated() {
            do {
                let attributes = try d.queryDevice()
                #expect(attributes.max_qp != 0, sourceLocation: sourceLocation)
            } catch {
                Issue.record("device \(i) does not answer QUERY_DEVICE: \(error)", sourceLocation: sourceLocation)
            }
        }
    }

    /// Milliseconds of CPU the daemon uses in `window` milliseconds in which the guests do nothing
    /// (a device with no work must not spin: pollers give up after --poll-us).
    func daemonCPUWhileIdle(window: Int = 300) -> Int {
        let before = cpuMilliseconds(daemon.pid)
        usleep(UInt32(window * 1000))
        return cpuMilliseconds(daemon.pid) - before
    }

    /// The daemon log's tail, for failure messages.
    var logTail: String { String(daemon.log.suffix(3000)) }

    deinit { daemon.terminate() }
}

/// What one side of a connection needs: a context, PD, CQs, a QP and a registered buffer.
struct Endpoint {
    let device: VerbsDevice
    let ctx: VerbsContext
    let pd: ProtectionDomain
    let sendCQ: CompletionQueue
    let recvCQ: CompletionQueue
    let qp: QueuePair
    let mr: MemoryRegion

    init(_ device: VerbsDevice, type: QPType = .rc, mrSize: Int = 64 << 10, access: Access = .all,
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
    func anotherQP(type: QPType = .rc, srq: SharedReceiveQueue? = nil) throws -> QueuePair {
        try ctx.createQP(pd: pd, sendCQ: sendCQ, recvCQ: recvCQ, type: type, sq: WorkQueueCaps(depth: 64, maxSGE: 4, maxInline: 64),
                         rq: WorkQueueCaps(depth: 64, maxSGE: 4), srq: srq)
    }

    func postRecv(wrId: UInt64, offset: Int = 0, length: Int = 4096) throws {
        try qp.postRecv(RecvWR(wrId: wrId, sges: [mr.sge(offset: offset, length: length)]))
    }

    func send(wrId: UInt64, offset: Int = 0, length: Int, opcode: SendOpcode = .send, imm: UInt32 = 0,
              flags: SendFlags = .signaled) throws {
        try qp.postSend(SendWR(wrId: wrId, opcode: opcode, flags: flags, sges: [mr.sge(offset: offset, length: length)], imm: imm))
    }
}

/// Two RC endpoints on two devices, connected.
func connectedPair(_ vms: VMs, _ pa: RCParameters = RCParameters(), _ pb: RCParameters? = nil, mrSize: Int = 64 << 10,
                   accessA: Access = .all, accessB: Access = .all) throws -> (Endpoint, Endpoint) {
    let a = try Endpoint(vms.a, mrSize: mrSize, access: accessA)
    let b = try Endpoint(vms.b, mrSize: mrSize, access: accessB)
    try QueuePair.connect(a.qp, b.qp, pa, pb)
    return (a, b)
}

/// Deterministic test bytes.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ ($0 >> 8)) }
}

/// Asserts one completion's identity and status (opcode only checked on success, as the header says).
func expectWC(_ wc: Completion?, wrId: UInt64, status: WCStatus, opcode: WCOpcode? = nil, qpn: UInt32? = nil,
              byteLen: UInt32? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let wc else {
        Issue.record("no completion for wr_id \(wrId)", sourceLocation: sourceLocation)
        return
    }
    #expect(wc.wrId == wrId, "\(wc)", sourceLocation: sourceLocation)
    #expect(wc.status == status, "\(wc)", sourceLocation: sourceLocation)
    if let opcode, status == .success { #expect(wc.opcode == opcode, "\(wc)", sourceLocation: sourceLocation) }
    if let qpn { #expect(wc.qpNum == qpn, "\(wc)", sourceLocation: sourceLocation) }
    if let byteLen { #expect(wc.byteLen == byteLen, "\(wc)", sourceLocation: sourceLocation) }
}

/// The QP's state as QUERY_QP reports it (nil, with an issue recorded, if the query fails).
func stateOf(_ qp: QueuePair, sourceLocation: SourceLocation = #_sourceLocation) -> QPState? {
    do { return try qp.state() } catch {
        Issue.record("QUERY_QP \(qp.qpn): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Waits until QUERY_QP reports `state` (errors reach the QP asynchronously).
func waitForState(_ qp: QueuePair, _ state: QPState, milliseconds: Int = 2000) -> QPState? {
    let deadline = monotonicMilliseconds() + milliseconds
    var last: QPState?
    repeat {
        last = try? qp.state()
        if last == state { return last }
        usleep(1000)
    } while monotonicMilliseconds() < deadline
    return last
}

/// Expects the command(s) in `body` to fail with `expected` (or succeed, for `.ok`), reporting
/// the status actually returned.
func expectStatus(_ expected: CommandStatus, _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                  _ body: () throws -> Void) {
    do {
        let status = try statusOf(body)
        #expect(status == expected, "\(what): got \(status), expected \(expected)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(what): \(error)", sourceLocation: sourceLocation)
    }
}

/// utime + stime of a process, in milliseconds (from /proc/PID/stat).
func cpuMilliseconds(_ pid: pid_t) -> Int {
    guard let f = fopen("/proc/\(pid)/stat", "r") else { return 0 }
    defer { fclose(f) }
    var buf = [UInt8](repeating: 0, count: 1024)
    let n = fread(&buf, 1, buf.count, f)
    guard n > 0 else { return 0 }
    let line = String(decoding: buf[0..<n], as: UTF8.self)
    // Fields after the command name (which may contain spaces) start after the last ')'.
    guard let close = line.lastIndex(of: ")") else { return 0 }
    let fields = line[line.index(after: close)...].split(separator: " ")
    // state is field 3 overall, so utime (14) and stime (15) are at 11 and 12 here.
    guard fields.count > 12, let u = Int(fields[11]), let s = Int(fields[12]) else { return 0 }
    return (u + s) * 1000 / Int(sysconf(Int32(_SC_CLK_TCK)))
}
