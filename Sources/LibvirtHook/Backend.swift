// SPDX-License-Identifier: Apache-2.0
// Running a domain's vhost-user-rdma: as a systemd template unit (vrdma-backend@<uuid>.service)
// when systemd is the init system, otherwise as a supervised process (this executable's
// `supervise` mode: its own session, restarts a crashed daemon, stops it on SIGTERM). Either way
// the daemon's command line is the file <state dir>/backend.args, the hook waits until every
// socket accepts a connection, and gives QEMU's group access to the sockets.
//
// libvirt reads the hook's stdout and stderr until they close, so nothing started here may keep
// them: the supervisor gets /dev/null and a log file only.
import Glibc
import LinuxSystem

public protocol BackendControl {
    func start(_ plan: BackendPlan, stateDirectory: String, uuid: String) throws(HookError) -> StateRecord.Backend
    func stop(_ backend: StateRecord.Backend, stateDirectory: String) throws(HookError)
    /// "a supervised process" / "systemd unit vrdma-backend@<uuid>.service", for --dry-run.
    func describe(uuid: String) -> String
}

public struct BackendLauncher: BackendControl {
    public let settings: HookSettings
    public let useSystemd: Bool
    /// This program, run again as the supervisor (tests name the built hook binary).
    public let hookExecutable: String

    public init(settings: HookSettings, hookExecutable: String = currentExecutable()) {
        self.settings = settings
        self.hookExecutable = hookExecutable
        switch settings.serviceManager {
        case .systemd: useSystemd = true
        case .process: useSystemd = false
        case .auto: useSystemd = fileExists("/run/systemd/system")
        }
    }

    public static func argumentsPath(_ stateDirectory: String) -> String { stateDirectory + "/backend.args" }
    public static func logPath(_ stateDirectory: String) -> String { stateDirectory + "/backend.log" }

    func unit(_ uuid: String) -> String { "\(settings.systemdUnit)@\(uuid).service" }

    public func describe(uuid: String) -> String {
        useSystemd ? "systemd unit \(unit(uuid))" : "a supervised process (log \(Self.logPath(settings.runDirectory + "/" + uuid)))"
    }

    public func start(_ plan: BackendPlan, stateDirectory: String, uuid: String) throws(HookError) -> StateRecord.Backend {
        let argv = [settings.daemon] + plan.arguments
        do throws(SystemError) {
            try writeTextFile(Self.argumentsPath(stateDirectory), argv.joined(separator: "\n") + "\n")
            for socket in plan.sockets where directoryName(socket).hasPrefix(stateDirectory) {
                try makeDirectories(directoryName(socket))
            }
        } catch { throw .system(error) }
        for socket in plan.sockets where !fileExists(directoryName(socket)) {
            throw .backend("the directory of socket \(socket) does not exist")
        }
        let record: StateRecord.Backend
        var supervisor: pid_t?
        if useSystemd {
            try systemctl("start", unit(uuid))
            record = .systemd(unit: unit(uuid))
        } else {
            let pid: pid_t
            do throws(SystemError) {
                pid = try spawn([hookExecutable, "supervise", stateDirectory, String(settings.stopTimeout)],
                                logPath: Self.logPath(stateDirectory))
            } catch { throw .system(error) }
            supervisor = pid
            record = .process(pid: pid, startTime: processStartTime(pid) ?? 0)
        }
        do throws(HookError) {
            try waitUntilAccepting(plan.sockets, supervisor: supervisor, stateDirectory: stateDirectory)
            try grantSocketAccess(plan.sockets)
        } catch {
            try? stop(record, stateDirectory: stateDirectory)
            throw error
        }
        return record
    }

    func lastLogLine(_ stateDirectory: String) -> String {
        // The daemon's own reason: its last error line (ArgumentParser prints usage after it).
        let lines = (readTextFile(Self.logPath(stateDirectory)) ?? "").split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("supervisor:") && !$0.trimmed.isEmpty }
        let errorWords = ["error", "Error", "critical", "fatal"]
        return lines.last(where: { l in errorWords.contains { l.contains($0) } }) ?? lines.last ?? "(no output)"
    }

    func waitUntilAccepting(_ sockets: [String], supervisor: pid_t?, stateDirectory: String) throws(HookError) {
        let deadline = monotonicSeconds() + settings.startTimeout
        var pending = sockets
        while !pending.isEmpty {
            pending = pending.filter { (try? UnixSocket.connect(path: $0)) == nil }
            if pending.isEmpty { return }
            if let supervisor {
                var status: Int32 = 0
                if waitpid(supervisor, &status, WNOHANG) == supervisor {
                    throw .backend("\(settings.daemon) stopped before accepting on \(pending[0]): \(lastLogLine(stateDirectory))")
                }
            }
            if monotonicSeconds() > deadline {
                throw .backend("\(settings.daemon) did not accept on \(pending[0]) within \(settings.startTimeout) s: \(lastLogLine(stateDirectory))")
            }
            sleepSeconds(0.05)
        }
    }

    /// The group QEMU runs as: settings, else qemu.conf's `group = "..."`, else libvirt-qemu.
    func socketGroup() -> gid_t? {
        var name = settings.socketGroup
        if name == nil, let conf = readTextFile("/etc/libvirt/qemu.conf") {
            for line in conf.split(separator: "\n") {
                let t = String(line).trimmed
                guard t.hasPrefix("group"), let eq = t.firstIndex(of: "=") else { continue }
                guard String(t[..<eq]).trimmed == "group" else { continue }
                name = String(t[t.index(after: eq)...]).trimmed.filter { $0 != "\"" }
            }
        }
        let group = name ?? "libvirt-qemu"
        if group.hasPrefix("+"), let n = UInt32(group.dropFirst()) { return n }
        guard let g = getgrnam(group) else { return nil }
        return g.pointee.gr_gid
    }

    func grantSocketAccess(_ sockets: [String]) throws(HookError) {
        let gid = socketGroup()
        for s in sockets {
            if let gid, chown(s, uid_t.max, gid) != 0 { throw .system(.last("chown(\(s))")) }   // owner unchanged
            if chmod(s, gid == nil ? 0o666 : 0o660) != 0 { throw .system(.last("chmod(\(s))")) }
        }
    }

    public func stop(_ backend: StateRecord.Backend, stateDirectory: String) throws(HookError) {
        switch backend {
        case .systemd(let unit):
            try systemctl("stop", unit)
        case .process(let pid, let startTime):
            if isSameProcess(pid, startTime: startTime) {
                kill(pid, SIGTERM)   // the supervisor stops the daemon, then itself
                let deadline = monotonicSeconds() + settings.stopTimeout + 2
                while isSameProcess(pid, startTime: startTime) && monotonicSeconds() < deadline { sleepSeconds(0.05) }
            }
            // A daemon left without its supervisor (supervisor killed) is still in the supervisor's
            // process group; a group id is not reused while a member lives, and only processes
            // running the daemon binary are signalled.
            var stragglers = daemonProcesses(inGroup: pid)
            if isSameProcess(pid, startTime: startTime) { stragglers.append(pid) }
            guard !stragglers.isEmpty else { return }
            for p in stragglers { kill(p, SIGTERM) }
            let deadline = monotonicSeconds() + settings.stopTimeout
            while stragglers.contains(where: { processStartTime($0) != nil }) && monotonicSeconds() < deadline { sleepSeconds(0.05) }
            let alive = stragglers.filter { processStartTime($0) != nil }
            for p in alive { kill(p, SIGKILL) }
            if !alive.isEmpty {
                throw .backend("processes \(alive.map(String.init).joined(separator: ", ")) ignored SIGTERM for \(settings.stopTimeout) s; killed")
            }
        }
    }

    /// Processes in process group `group` that run the daemon binary.
    func daemonProcesses(inGroup group: pid_t) -> [pid_t] {
        let binary = readLink(settings.daemon).map { $0.hasPrefix("/") ? $0 : directoryName(settings.daemon) + "/" + $0 } ?? settings.daemon
        return directoryEntries("/proc").compactMap(Int32.init).filter { p in
            guard p != group, let stat = readTextFile("/proc/\(p)/stat"), let close = stat.lastIndex(of: ")") else { return false }
            let f = stat[stat.index(after: close)...].split(separator: " ")
            guard f.count > 3, Int32(f[2]) == group, f[0] != "Z" else { return false }
            return readLink("/proc/\(p)/exe") == binary
        }
    }

    func systemctl(_ verb: String, _ unit: String) throws(HookError) {
        let binary = ["/usr/bin/systemctl", "/bin/systemctl"].first(where: isExecutableFile) ?? "/usr/bin/systemctl"
        let result: (status: Int32, output: String)
        do throws(SystemError) { result = try runHelper([binary, verb, unit], timeout: settings.startTimeout + settings.stopTimeout) } catch { throw .system(error) }
        guard result.status == 0 else {
            let line = result.output.split(separator: "\n").first.map(String.init) ?? "exit status \(result.status)"
            throw .backend("systemctl \(verb) \(unit): \(line)")
        }
    }
}

/// Field 22 of /proc/PID/stat: when the process started (clock ticks since boot). With the PID
/// it names one process for good, so a recycled PID is never signalled.
func processStartTime(_ pid: pid_t) -> UInt64? {
    guard let stat = readTextFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 19 else { return nil }
    if fields[0] == "Z" || fields[0] == "X" { return nil }   // exited, not yet reaped
    return UInt64(fields[19])
}

func isSameProcess(_ pid: pid_t, startTime: UInt64) -> Bool {
    var status: Int32 = 0
    _ = waitpid(pid, &status, WNOHANG)   // our own child (tests): reap it
    guard let t = processStartTime(pid) else { return false }
    return startTime == 0 || t == startTime
}

/// `vrdma-libvirt-hook supervise STATE-DIR STOP-TIMEOUT`: runs the daemon from STATE-DIR/backend.args,
/// restarts it when it dies (giving up after 3 exits within 5 s of their start), and on SIGTERM
/// stops it (SIGTERM, SIGKILL after STOP-TIMEOUT) and exits 0. Returns the exit status.
public enum BackendSupervisor {
    public static func run(stateDirectory: String, stopTimeout: Double) -> Int32 {
        setsid()
        for name in directoryEntries("/proc/self/fd") { if let fd = Int32(name), fd > 2 { close(fd) } }
        func log(_ s: String) { writeStandardError("supervisor: \(s)\n") }
        guard let text = readTextFile(BackendLauncher.argumentsPath(stateDirectory)) else {
            log("cannot read \(BackendLauncher.argumentsPath(stateDirectory))")
            return 1
        }
        let argv = text.split(separator: "\n").map(String.init)
        guard !argv.isEmpty else { log("empty argument file"); return 1 }
        let signals: SignalDescriptor
        do throws(SystemError) { signals = try SignalDescriptor(signals: [SIGTERM, SIGINT, SIGHUP, SIGCHLD]) } catch {
            log("\(error)")
            return 1
        }
        var quickExits = 0
        while true {
            let started = monotonicSeconds()
            let child: pid_t
            do throws(SystemError) { child = try spawn(argv, stdout: 1, stderr: 2) } catch {
                log("\(error)")
                return 1
            }
            log("started \(argv[0]) as pid \(child)")
            var stopping = false
            var killAt = Double.infinity
            var status: Int32 = 0
            while true {
                var p = pollfd(fd: signals.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, 200)
                while let s = signals.take() {
                    if s != SIGCHLD && !stopping {
                        stopping = true
                        killAt = monotonicSeconds() + stopTimeout
                        kill(child, SIGTERM)
                    }
                }
                if waitpid(child, &status, WNOHANG) == child { break }
                if monotonicSeconds() > killAt {
                    log("\(argv[0]) ignored SIGTERM for \(stopTimeout) s; SIGKILL")
                    kill(child, SIGKILL)
                    killAt = .infinity
                }
            }
            let ran = monotonicSeconds() - started
            let how = status & 0x7f == 0 ? "exit status \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
            if stopping {
                log("back-end stopped (\(how))")
                return 0
            }
            log("back-end ended with \(how) after \(Int(ran * 1000)) ms")
            quickExits = ran < 5 ? quickExits + 1 : 1
            if quickExits >= 3 {
                log("giving up after \(quickExits) exits in a row within 5 s of start")
                return 1
            }
            // Back off one second, still answering SIGTERM.
            var p = pollfd(fd: signals.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 1000) > 0, let s = signals.take(), s != SIGCHLD { return 0 }
        }
    }

    /// `vrdma-libvirt-hook run-backend UUID` (the systemd unit's ExecStart): exec the daemon with
    /// the arguments prepare wrote, so systemd supervises the daemon itself.
    public static func execBackend(uuid: String, settings: HookSettings) -> Int32 {
        let path = BackendLauncher.argumentsPath(settings.runDirectory + "/" + uuid)
        guard DomainDefinition.isUUID(uuid), let text = readTextFile(path) else {
            writeStandardError("vrdma-libvirt-hook: no back-end arguments at \(path)\n")
            return 1
        }
        let argv = text.split(separator: "\n").map(String.init)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        execv(argv[0], &cargs)
        writeStandardError("vrdma-libvirt-hook: exec \(argv[0]): \(String(cString: strerror(errno)))\n")
        return 1
    }
}

/// The providers a daemon binary offers (`--print-capabilities`, "providers": [...]).
func daemonProviders(_ daemon: String) throws(HookError) -> [String] {
    let result: (status: Int32, output: String)
    do throws(SystemError) { result = try runHelper([daemon, "--print-capabilities"], timeout: 5) } catch {
        throw .host("\(daemon) --print-capabilities: \(error)")
    }
    guard result.status == 0 else { throw .host("\(daemon) --print-capabilities exited with status \(result.status)") }
    let text = Array(result.output)
    let key = Array("\"providers\"")
    guard let at = (0...max(0, text.count - key.count)).first(where: { text.count >= key.count && Array(text[$0..<$0 + key.count]) == key }),
          let open = text[at...].firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else {
        throw .host("\(daemon) --print-capabilities names no providers")
    }
    return String(text[(open + 1)..<close]).split(separator: ",").map { String($0).trimmed.filter { $0 != "\"" } }
}
