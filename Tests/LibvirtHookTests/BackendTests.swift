// SPDX-License-Identifier: Apache-2.0
// The back-end as a supervised process, with the real vhost-user-rdma and the real hook binary:
// started, accepting, restarted after a crash, stopped; a daemon that cannot start is reported
// with its own last words. And the hook executable as libvirt calls it.
import Glibc
import LinuxSystem
import Testing

@testable import LibvirtHook

@Suite("back-end and executable", .serialized)
final class BackendTests {
    let root = temporaryDirectory()
    var settings = HookSettings()
    let hookBinary = productsDirectory + "/vrdma-libvirt-hook"

    init() {
        settings.runDirectory = root + "/run"
        settings.daemon = productsDirectory + "/vhost-user-rdma"
        settings.serviceManager = .process
        settings.startTimeout = 10
        settings.stopTimeout = 3
    }

    deinit { removeTree(root) }

    func children(of pid: pid_t) -> [pid_t] {
        directoryEntries("/proc").compactMap(Int32.init).filter { p in
            guard let stat = readTextFile("/proc/\(p)/stat"), let close = stat.lastIndex(of: ")") else { return false }
            let f = stat[stat.index(after: close)...].split(separator: " ")
            return f.count > 2 && Int32(f[1]) == pid && f[0] != "Z"   // f[1]: ppid
        }
    }

    @Test("supervised daemon: accepts, is restarted after SIGKILL, stops on release, sockets get QEMU's group")
    func supervised() throws {
        let state = settings.runDirectory + "/" + "00000000-0000-4000-8000-000000000001"
        try makeDirectories(state)
        let socket = state + "/rdma0.sock"
        let plan = BackendPlan(provider: "soft", arguments: ["--socket-path", socket, "--log-level", "info"], sockets: [socket])
        let launcher = BackendLauncher(settings: settings, hookExecutable: hookBinary)
        let record = try launcher.start(plan, stateDirectory: state, uuid: "00000000-0000-4000-8000-000000000001")
        guard case .process(let supervisor, let start) = record else { Issue.record("\(record)"); return }
        #expect(start > 0 && isSameProcess(supervisor, startTime: start))
        _ = try UnixSocket.connect(path: socket)
        var st = stat()
        #expect(stat(socket, &st) == 0 && st.st_mode & 0o777 == (launcher.socketGroup() == nil ? 0o666 : 0o660))

        let daemon = try #require(children(of: supervisor).first)
        kill(daemon, SIGKILL)
        var restarted: pid_t?
        for _ in 0..<100 where restarted == nil {
            sleepSeconds(0.1)
            restarted = children(of: supervisor).first { $0 != daemon }
        }
        #expect(restarted != nil, "supervisor did not restart the daemon")
        var accepted = false
        for _ in 0..<100 where !accepted {
            accepted = (try? UnixSocket.connect(path: socket)) != nil
            if !accepted { sleepSeconds(0.1) }
        }
        #expect(accepted)

        try launcher.stop(record, stateDirectory: state)
        #expect(!isSameProcess(supervisor, startTime: start))
        if let restarted { #expect(kill(restarted, 0) != 0 || processStartTime(restarted) == nil) }
        let log = readTextFile(BackendLauncher.logPath(state)) ?? ""
        #expect(log.contains("back-end ended with signal 9") && log.contains("back-end stopped (exit status 0)"), "\(log)")
    }

    @Test("a daemon whose supervisor was killed is still stopped by release")
    func orphanedDaemon() throws {
        let uuid = "00000000-0000-4000-8000-000000000003"
        let state = settings.runDirectory + "/" + uuid
        try makeDirectories(state)
        let socket = state + "/rdma0.sock"
        let plan = BackendPlan(provider: "soft", arguments: ["--socket-path", socket], sockets: [socket])
        let launcher = BackendLauncher(settings: settings, hookExecutable: hookBinary)
        let record = try launcher.start(plan, stateDirectory: state, uuid: uuid)
        guard case .process(let supervisor, _) = record else { Issue.record("\(record)"); return }
        let daemon = try #require(children(of: supervisor).first)
        kill(supervisor, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(supervisor, &status, 0)
        #expect(processStartTime(daemon) != nil, "the daemon outlives its supervisor")
        try launcher.stop(record, stateDirectory: state)
        #expect(processStartTime(daemon) == nil)
    }

    @Test("a daemon that exits at once is reported with its last output, within the start timeout")
    func failingDaemon() throws {
        let state = settings.runDirectory + "/00000000-0000-4000-8000-000000000002"
        try makeDirectories(state)
        let socket = state + "/rdma0.sock"
        // The real daemon with an argument it refuses: it prints why and exits 64, three times.
        let plan = BackendPlan(provider: "soft", arguments: ["--socket-path", socket, "--log-level", "loud"], sockets: [socket])
        let launcher = BackendLauncher(settings: settings, hookExecutable: hookBinary)
        let t0 = monotonicSeconds()
        #expect {
            _ = try launcher.start(plan, stateDirectory: state, uuid: "00000000-0000-4000-8000-000000000002")
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("back-end: \(settings.daemon) stopped before accepting on \(socket): ")
                && text.contains("loud") && !text.contains("\n")
        }
        #expect(monotonicSeconds() - t0 < settings.startTimeout)
    }

    @Test("systemd mode: the unit name, and run-backend (the unit's ExecStart) execs the recorded command line")
    func systemdPath() throws {
        var s = settings
        s.serviceManager = .systemd
        let uuid = "00000000-0000-4000-8000-000000000004"
        #expect(BackendLauncher(settings: s).describe(uuid: uuid) == "systemd unit vrdma-backend@\(uuid).service")
        s.serviceManager = .auto
        #expect(BackendLauncher(settings: s).useSystemd == fileExists("/run/systemd/system"))
        let state = settings.runDirectory + "/" + uuid
        try makeDirectories(state)
        try writeTextFile(BackendLauncher.argumentsPath(state), "\(settings.daemon)\n--print-capabilities\n")
        let r = try runHook(["run-backend", uuid], xml: "")
        #expect(r.status == 0 && r.output.contains("\"providers\": [\"soft\", \"verbs\"]"), "\(r)")
        let missing = try runHook(["run-backend", "00000000-0000-4000-8000-00000000dead"], xml: "")
        #expect(missing.status == 1 && missing.output.hasPrefix("vrdma-libvirt-hook: no back-end arguments at "))
    }

    /// Runs the hook binary as libvirt does: arguments, the XML on stdin.
    func runHook(_ args: [String], xml: String) throws -> (status: Int32, output: String) {
        let input = root + "/input.xml"
        try writeTextFile(input, xml)
        let conf = root + "/hook.conf"
        try writeTextFile(conf, "run-dir = \(settings.runDirectory)\ndaemon = \(settings.daemon)\nservice-manager = process\n")
        let quoted = ([hookBinary, "--config", conf] + args).map { "'\($0)'" }.joined(separator: " ")
        return try runHelper(["/bin/sh", "-c", "exec \(quoted) < '\(input)'"], timeout: 30)
    }

    @Test("executable: unknown operations and domains without metadata exit 0 silently; a refusal is one line and status 1")
    func executable() throws {
        let eth = Fixture.xml("hostdev-interface")
        for op in [["started", "begin", "-"], ["stopped", "end", "-"], ["reconnect", "begin", "-"], ["attach", "begin", "-"], ["frobnicate", "x", "y"]] {
            let r = try runHook(["vm-sriov-eth"] + op, xml: eth)
            #expect(r.status == 0 && r.output.isEmpty, "\(op): \(r)")
        }
        let plain = try runHook(["vm-plain", "prepare", "begin", "-"], xml: Fixture.xml("no-metadata"))
        #expect(plain.status == 0 && plain.output.isEmpty)
        let bad = try runHook(["vm-rdma", "prepare", "begin", "-"], xml: Fixture.replacing(Fixture.xml("several-devices"), "vf=\"2\"", "vf=\"-1\""))
        #expect(bad.status == 1)
        #expect(bad.output == "vrdma-libvirt-hook: vm-rdma: vrdma metadata line 11: vf='-1' must be an integer in 0...65535\n")
        let missing = try runHook(["vm-sriov-eth", "prepare", "begin", "-"], xml: Fixture.replacing(eth, "pf=\"enp3s0f0\"", "pf=\"vrdmanope0\""))
        #expect(missing.output == "vrdma-libvirt-hook: vm-sriov-eth: hostdev ua-sriov0: PF vrdmanope0 does not exist on this host\n")
        let notXML = try runHook(["vm", "prepare", "begin", "-"], xml: "<domain>")
        #expect(notXML.status == 1 && notXML.output.hasPrefix("vrdma-libvirt-hook: vm: domain XML: XML line 1, column 9:"))
        let release = try runHook(["vm-sriov-eth", "release", "end", "destroyed"], xml: eth)
        #expect(release.status == 0 && release.output.isEmpty)
        let usage = try runHook(["only-two", "args"], xml: eth)
        #expect(usage.status == 2)
    }

    @Test("executable: a vRDMA-only domain is prepared (real daemon) and released")
    func executableLifecycle() throws {
        let uuid = "3e9a0d2c-5b71-4c88-a0f4-1d2e3f405162"
        let sock = settings.runDirectory + "/" + uuid + "/rdma0.sock"
        var xml = Fixture.xml("several-devices")
        for (old, new) in [("      <vrdma:hostdev alias=\"ua-sriov0\" pf=\"enp3s0f0\" vf=\"2\"/>\n", ""),
                           ("      <vrdma:hostdev alias=\"ua-ib0\" pf=\"ibp129s0f0\" vf=\"1\"/>\n", ""),
                           ("      <vrdma:device chardev=\"rdma1\" socket=\"/run/vrdma/sockets/vm-rdma-1.sock\"/>\n", ""),
                           ("/run/vrdma/sockets/vm-rdma-0.sock", sock)] {
            xml = Fixture.replacing(xml, old, new)
        }
        let dry = try runHook(["--dry-run", "-"], xml: xml)   // "-": the XML on stdin
        #expect(dry.status == 0 && dry.output.contains("--socket-path \(sock) --node-guid "), "\(dry.output)")
        let prepared = try runHook(["vm-rdma", "prepare", "begin", "-"], xml: xml)
        #expect(prepared.status == 0 && prepared.output.isEmpty, "\(prepared.output)")
        _ = try UnixSocket.connect(path: sock)
        let record = try #require(try StateRecord.load(stateDirectory: settings.runDirectory + "/" + uuid))
        guard case .process(let pid, let start)? = record.backend else { Issue.record("\(record)"); return }
        let released = try runHook(["vm-rdma", "release", "end", "destroyed"], xml: xml)
        #expect(released.status == 0 && released.output.isEmpty, "\(released.output)")
        #expect(!isSameProcess(pid, startTime: start))
        #expect(!fileExists(settings.runDirectory + "/" + uuid))
    }
}
