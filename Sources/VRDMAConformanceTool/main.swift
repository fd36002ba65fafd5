// SPDX-License-Identifier: Apache-2.0
// vrdma-conformance: runs the provider conformance scenarios against a daemon (any provider) and
// prints PASS/FAIL per scenario, then "N passed, M failed". Exit status 0 only if none failed.
import ArgumentParser
import Glibc
import VRDMAConformance
import VRDMATestSupport

struct ConformanceTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vrdma-conformance",
        abstract: "Run the vrdma provider conformance scenarios against a vhost-user-rdma daemon.",
        discussion: """
            Each scenario starts the daemon with two device sockets (plus the arguments after --), \
            drives both devices with the model guest driver and checks what a guest would see.

            Against libibverbs on rxe, for example:
              vrdma-conformance --gid 192.168.1.10 --gid 192.168.1.11 -- --provider verbs --ib-device rxe0

            EXIT STATUS
              0   every scenario passed
              1   a scenario failed
              64  a usage error
            """)

    @Option(name: .customLong("daemon"), help: ArgumentHelp(
        "The daemon binary (default: $VRDMA_DAEMON, else vhost-user-rdma next to this program).", valueName: "PATH"))
    var daemonPath: String?

    @Option(name: .customLong("gid"), help: ArgumentHelp(
        "The RoCE GID the first, then the second device adds at index 1: an IPv4 address (as ::ffff:a.b.c.d) or an IPv6 one. "
            + "Give both or neither (default ::ffff:10.0.0.1 and ::ffff:10.0.0.2).", valueName: "GID"))
    var gidTexts: [String] = []

    @Option(name: .customLong("filter"), help: ArgumentHelp("Run only scenarios whose name contains SUBSTRING.", valueName: "SUBSTRING"))
    var filter: String?

    @Flag(name: .customLong("list"), help: "Print the scenario names and exit.")
    var list = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("Extra daemon arguments, after --.", valueName: "DAEMON-ARGS"))
    var daemonArguments: [String] = []

    @Option(name: .customLong("measure-registration"), help: ArgumentHelp(
        "Instead of the scenarios: time REG_MR and DEREG_MR of one MR of MIB MiB on one device, and print it.", valueName: "MIB"))
    var measureRegistration: Int?

    @Option(name: .customLong("port-events"), help: ArgumentHelp(
        "Instead of the scenarios: on one device, run COMMAND with sh -c (it should take the host port down and up) and "
            + "check that the guest gets PORT_ERR, then PORT_ACTIVE, for port 1.", valueName: "COMMAND"))
    var portEventsCommand: String?

    /// The host port's state changes reach the guest as port events, in order.
    func checkPortEvents(while command: String, _ configuration: HarnessConfiguration) throws {
        let daemon = try DaemonProcess(binary: configuration.daemonPath, devices: 1, extraArguments: configuration.daemonArguments)
        defer { daemon.terminate() }
        let device = try VerbsDevice(socketPath: daemon.socketPaths[0], roceGID: configuration.gids[0])
        _ = try device.takeEvents()
        let status = try shell(command)
        print("sh -c '\(command)': exit \(status)")
        var seen: [EventType] = []
        let deadline = monotonicMilliseconds() + 10_000
        while monotonicMilliseconds() < deadline && !(seen.contains(.portErr) && seen.last == .portActive) {
            seen += try device.takeEvents(waitingMilliseconds: 200).filter { $0.handle == 1 && ($0.type == .portErr || $0.type == .portActive) }
                .map(\.type)
        }
        print("port events: \(seen.map { $0 == .portErr ? "PORT_ERR" : "PORT_ACTIVE" }.joined(separator: ", "))")
        guard let down = seen.firstIndex(of: .portErr), seen[down...].contains(.portActive), status == 0 else { throw ExitCode.failure }
    }

    /// REG_MR of a large MR: the command's round trip as the guest sees it (pinning and, on the
    /// verbs provider, the window and the NIC's registration).
    func measure(registrationMiB mib: Int, _ configuration: HarnessConfiguration) throws {
        let daemon = try DaemonProcess(binary: configuration.daemonPath, devices: 1, extraArguments: configuration.daemonArguments)
        defer { daemon.terminate() }
        let device = try VerbsDevice(socketPath: daemon.socketPaths[0], lowMiB: UInt64(mib + 64), roceGID: configuration.gids[0])
        let pd = try device.createContext().allocPD()
        let start = monotonicMilliseconds()
        let mr = try pd.registerMR(length: mib << 20, timeoutMilliseconds: 600_000)
        let registered = monotonicMilliseconds()
        try mr.deregister()
        let done = monotonicMilliseconds()
        print("REG_MR of \(mib) MiB: \(registered - start) ms; DEREG_MR: \(done - registered) ms")
    }

    func validate() throws {
        guard gidTexts.isEmpty || gidTexts.count == 2 else { throw ValidationError("give --gid twice (one per device) or not at all") }
        for text in gidTexts where parseGID(text) == nil { throw ValidationError("not an IPv4 or IPv6 address: \(text)") }
    }

    func run() throws {
        var configuration = HarnessConfiguration(daemonArguments: daemonArguments)
        if let daemonPath { configuration.daemonPath = daemonPath }
        if !gidTexts.isEmpty { configuration.gids = gidTexts.compactMap(parseGID) }
        if let measureRegistration {
            try measure(registrationMiB: measureRegistration, configuration)
            return
        }
        if let portEventsCommand {
            try checkPortEvents(while: portEventsCommand, configuration)
            return
        }
        let scenarios = Scenario.suite(for: configuration).filter { filter.map($0.name.contains) ?? true }
        if list {
            for scenario in scenarios { print(scenario.name) }
            return
        }
        var failed = 0
        for scenario in scenarios {
            let result = scenario.result(against: configuration)
            if result.passed {
                print("PASS \(result.name)")
            } else {
                failed += 1
                print("FAIL \(result.name)")
                for failure in result.failures { print("  \(failure)") }
                if !result.daemonLogTail.isEmpty {
                    print("  daemon log (tail):")
                    for line in result.daemonLogTail.split(separator: "\n", omittingEmptySubsequences: false) { print("    \(line)") }
                }
            }
            fflush(nil)  // every stream: naming `stdout` is not concurrency-safe in Swift 6
        }
        print("\(scenarios.count - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode.failure }
    }
}

/// Runs `command` with /bin/sh -c and returns its exit status.
func shell(_ command: String) throws -> Int32 {
    let words: [String] = ["/bin/sh", "-c", command]
    var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ)
    guard rc == 0 else {
        print("posix_spawn(/bin/sh): \(String(cString: strerror(rc)))")
        throw ExitCode.failure
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// A GID from an address: IPv4 becomes the IPv4-mapped GID RoCEv2 uses, IPv6 is the GID itself.
func parseGID(_ text: String) -> GID? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 {
        return withUnsafeBytes(of: &v4) { GID.ipv4Mapped($0[0], $0[1], $0[2], $0[3]) }
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { GID(Array($0)) } }
    return nil
}

ConformanceTool.main()
