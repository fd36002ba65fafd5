// SPDX-License-Identifier: Apache-2.0
// Shared steps of the daemon tests: start a daemon, let a (possibly hostile) front-end do its
// worst, then prove the daemon survived: still running, back to its idle descriptor count, and
// serving a well-behaved front-end.
import Glibc
import Testing
import VRDMATestSupport
import VhostUser

/// The daemon's descriptor count once it stops changing (start-up probes are still closing).
func settledDescriptorCount(_ daemon: DaemonProcess) -> Int {
    var last = -2
    for _ in 0..<100 {
        let now = daemon.openDescriptorCount
        if now == last { return now }
        last = now
        usleep(20_000)
    }
    return last
}

/// A correct front-end brings the device up and gets an answer to a command.
func expectServesCorrectFrontend(_ daemon: DaemonProcess, socket: Int = 0, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[socket]))
    try driver.bringUp()
    let attributes = try driver.queryDevice()
    #expect(attributes.max_qp != 0, sourceLocation: sourceLocation)
}

/// Runs `body` against a fresh daemon, then checks that the daemon is alive, leaked nothing and
/// still serves. Returns the daemon's log for further checks.
@discardableResult
func afterward(expectLog: String? = nil, _ body: (DaemonProcess) throws -> Void,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let daemon = try DaemonProcess()
    let idle = settledDescriptorCount(daemon)
    try body(daemon)
    #expect(daemon.isRunning, "daemon died: \(daemon.log)", sourceLocation: sourceLocation)
    #expect(daemon.waitForDescriptorCount(idle) == idle, "descriptors leaked", sourceLocation: sourceLocation)
    try expectServesCorrectFrontend(daemon, sourceLocation: sourceLocation)
    #expect(daemon.waitForDescriptorCount(idle) == idle, "descriptors leaked by the correct front-end", sourceLocation: sourceLocation)
    let log = daemon.log
    if let expectLog { #expect(log.contains(expectLog), "log lacks '\(expectLog)'", sourceLocation: sourceLocation) }
    #expect(daemon.terminate() == 0, sourceLocation: sourceLocation)
    return log
}

extension TestFrontend {
    /// The first half of realize: features, REPLY_ACK and friends, owner.
    func negotiate() throws {
        _ = try getFeatures()
        try setProtocolFeatures(ProtocolFeatures(rawValue: try getProtocolFeatures().rawValue & Self.qemuProtocolMask))
        try request(.setOwner)
    }
}
