// SPDX-License-Identifier: Apache-2.0
// The checking API of the conformance scenarios. Swift Testing's macros work only inside test
// targets, and the scenarios also run from the standalone `vrdma-conformance` executable, so they
// record failures here; the test target turns each into an issue at the same source line.
import VRDMATestSupport

/// One failed expectation, with where the scenario made it.
public struct Failure: Sendable, CustomStringConvertible {
    public let message: String
    public let fileID: String
    public let filePath: String
    public let line: Int

    public var description: String { "\(fileID):\(line): \(message)" }
}

/// Thrown by `Checks.require` after it recorded its failure: the scenario cannot go on.
public struct RequirementFailed: Error {}

/// Records the failed expectations of one scenario run.
public final class Checks {
    public private(set) var failures: [Failure] = []

    public init() {}

    public func record(_ message: String, fileID: String = #fileID, filePath: String = #filePath, line: Int = #line) {
        failures.append(Failure(message: message, fileID: fileID, filePath: filePath, line: line))
    }

    /// Records `message` unless `condition` holds; returns `condition`.
    @discardableResult
    public func expect(_ condition: Bool, _ message: @autoclosure () -> String, fileID: String = #fileID, filePath: String = #filePath,
                       line: Int = #line) -> Bool {
        if !condition { record(message(), fileID: fileID, filePath: filePath, line: line) }
        return condition
    }

    /// Records "what: got X, expected Y" unless the two are equal.
    @discardableResult
    public func expectEqual<T: Equatable>(_ actual: T, _ expected: T, _ what: @autoclosure () -> String, fileID: String = #fileID,
                                          filePath: String = #filePath, line: Int = #line) -> Bool {
        expect(actual == expected, "\(what()): got \(actual), expected \(expected)", fileID: fileID, filePath: filePath, line: line)
    }

    /// As `expect`, but a failure ends the scenario.
    public func require(_ condition: Bool, _ message: @autoclosure () -> String, fileID: String = #fileID, filePath: String = #filePath,
                        line: Int = #line) throws(RequirementFailed) {
        if !expect(condition, message(), fileID: fileID, filePath: filePath, line: line) { throw RequirementFailed() }
    }

    /// One completion's identity and status; the opcode is checked only on success, where the
    /// ABI defines it.
    public func expectWC(_ wc: Completion, wrId: UInt64, status: WCStatus, opcode: WCOpcode? = nil, qpn: UInt32? = nil,
                         byteLen: UInt32? = nil, fileID: String = #fileID, filePath: String = #filePath, line: Int = #line) {
        var wrong: [String] = []
        if wc.wrId != wrId { wrong.append("wr_id, expected \(wrId)") }
        if wc.status != status { wrong.append("status, expected \(status)") }
        if let opcode, status == .success, wc.opcode != opcode { wrong.append("opcode, expected \(opcode)") }
        if let qpn, wc.qpNum != qpn { wrong.append("qp_num, expected \(qpn)") }
        if let byteLen, wc.byteLen != byteLen { wrong.append("byte_len, expected \(byteLen)") }
        if !wrong.isEmpty { record("\(wc): wrong \(wrong.joined(separator: "; "))", fileID: fileID, filePath: filePath, line: line) }
    }

    /// Like expectWC, for a status that may be any of `statuses` (what different HCAs report).
    public func expectWC(_ wc: Completion, wrId: UInt64, statusIn statuses: [WCStatus], qpn: UInt32? = nil,
                         fileID: String = #fileID, filePath: String = #filePath, line: Int = #line) {
        var wrong: [String] = []
        if wc.wrId != wrId { wrong.append("wr_id, expected \(wrId)") }
        if !statuses.contains(wc.status) { wrong.append("status, expected one of \(statuses)") }
        if let qpn, wc.qpNum != qpn { wrong.append("qp_num, expected \(qpn)") }
        if !wrong.isEmpty { record("\(wc): wrong \(wrong.joined(separator: "; "))", fileID: fileID, filePath: filePath, line: line) }
    }

    /// The QP's state as QUERY_QP reports it (nil, with a failure recorded, if the query fails).
    public func stateOf(_ qp: QueuePair, fileID: String = #fileID, filePath: String = #filePath, line: Int = #line) -> QPState? {
        do { return try qp.state() } catch {
            record("QUERY_QP \(qp.qpn): \(error)", fileID: fileID, filePath: filePath, line: line)
            return nil
        }
    }

    /// QUERY_QP reaches `state` within two seconds (errors reach a QP asynchronously).
    public func expectState(_ qp: QueuePair, _ state: QPState, _ what: @autoclosure () -> String, fileID: String = #fileID,
                            filePath: String = #filePath, line: Int = #line) {
        let reached = waitForState(qp, state)
        expect(reached == state, "\(what()): QP \(qp.qpn) is \(reached.map { "\($0)" } ?? "unknown"), expected \(state)",
               fileID: fileID, filePath: filePath, line: line)
    }
}
