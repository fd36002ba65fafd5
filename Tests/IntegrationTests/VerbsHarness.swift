// SPDX-License-Identifier: Apache-2.0
// Swift Testing's side of the verbs tests: the VMs, endpoints and waits come from
// VRDMAConformance (shared with the conformance scenarios); here are the checks that record
// issues, and what only the software fabric's tests measure (the daemon's CPU time).
import Glibc
import Testing
import VRDMAConformance
import VRDMATestSupport

extension VMs {
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
}

/// An RC QP of device 0 in RTS whose path leads to a GID nobody answers (192.0.2.99): what it
/// sends is dropped, and it gives up after one retry of 4.096 us * 2^`timeout`.
func unansweredRequester(_ vms: VMs, timeout: UInt8) throws -> Endpoint {
    var p = RCParameters()
    p.timeout = timeout
    p.retryCount = 1
    let e = try Endpoint(vms.devices[0]), f = try Endpoint(vms.devices[1])
    var rtr = e.qp.rtrAttributes(remote: f.qp, p)
    rtr.av = AddressVector(dgid: GID.ipv4Mapped(192, 0, 2, 99), sgidIndex: 1)
    try e.qp.modify(e.qp.initAttributes())
    try e.qp.modify(rtr)
    try e.qp.modify(e.qp.rtsAttributes(p))
    return e
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
