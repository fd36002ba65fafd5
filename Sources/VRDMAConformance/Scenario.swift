// SPDX-License-Identifier: Apache-2.0
// The provider conformance suite: the data-path behaviour a guest sees, which must be the same
// whichever provider moves the bytes (the software fabric, or libibverbs on a real HCA). Each
// scenario gets a fresh daemon with two devices; `IntegrationTests` runs them all against the
// software fabric, `vrdma-conformance` against any daemon and provider.

public struct Scenario: Sendable {
    public let name: String
    public let run: @Sendable (Harness) throws -> Void

    public init(_ name: String, run: @escaping @Sendable (Harness) throws -> Void) {
        self.name = name
        self.run = run
    }

    /// Every scenario, in the order the tool runs them.
    public static let all: [Scenario] = messageScenarios + rdmaScenarios + datagramScenarios + flowScenarios + errorScenarios

    /// What only a provider with a host NIC can show (the NIC moving bytes with the daemon stopped).
    public static let hostNIC: [Scenario] = hostNICScenarios

    /// The scenarios for a daemon command line.
    public static func suite(for configuration: HarnessConfiguration) -> [Scenario] {
        all + (configuration.softwareProvider ? [] : hostNIC)
    }

    /// Runs the scenario against a fresh daemon, then checks that the daemon survived it.
    public func result(against configuration: HarnessConfiguration) -> ScenarioResult {
        let checks = Checks()
        var daemonLogTail = ""
        do {
            let harness = try Harness(configuration, checks: checks)
            do {
                try run(harness)
            } catch is RequirementFailed {
                // Recorded where it was required.
            } catch {
                checks.record("stopped by an error: \(error)")
            }
            harness.expectAlive()
            if !checks.failures.isEmpty { daemonLogTail = harness.vms.logTail }
        } catch {
            checks.record("set-up failed: \(error)")
        }
        return ScenarioResult(name: name, failures: checks.failures, daemonLogTail: daemonLogTail)
    }
}

public struct ScenarioResult: Sendable {
    public let name: String
    public let failures: [Failure]
    /// The end of the daemon's log when something failed (empty otherwise).
    public let daemonLogTail: String
    public var passed: Bool { failures.isEmpty }
}
