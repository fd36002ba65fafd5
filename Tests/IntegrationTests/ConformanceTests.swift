// SPDX-License-Identifier: Apache-2.0
// The provider conformance suite (VRDMAConformance) against the default provider, the software
// fabric: one test case per scenario, named by it, each failure reported at the scenario's line.
import Testing
import VRDMAConformance

@Suite("Provider conformance: the software fabric", .serialized)
struct ConformanceTests {
    @Test("scenario", arguments: Scenario.all.map(\.name))
    func scenario(_ name: String) throws {
        let scenario = try #require(Scenario.all.first { $0.name == name })
        let result = scenario.result(against: HarnessConfiguration())
        for failure in result.failures {
            Issue.record(Comment(rawValue: failure.message),
                         sourceLocation: SourceLocation(fileID: failure.fileID, filePath: failure.filePath, line: failure.line, column: 1))
        }
        if !result.passed { Issue.record(Comment(rawValue: "daemon log (tail):\n\(result.daemonLogTail)")) }
    }
}
