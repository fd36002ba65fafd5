// SPDX-License-Identifier: Apache-2.0
// The real vhost-user-rdma binary as a child process: tests talk to it over a real socket, count
// its open descriptors through /proc, and check how it exits.
import Glibc
import LinuxSystem

public final class DaemonProcess {
    public let pid: pid_t
    public let socketPaths: [String]
    public let logPath: String
    private var exited: Int32?

    /// $VRDMA_DAEMON, or the daemon next to the running binary (tests, and the conformance tool,
    /// are built into the same SwiftPM build directory).
    public static var binaryPath: String {
        if let p = getenv("VRDMA_DAEMON") { return String(cString: p) }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        var dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        // The test binary may sit inside a bundle directory (…/vrdmaPackageTests.xctest).
        if dir.last?.hasSuffix(".xctest") == true { dir = dir.dropLast() }
        return dir.joined(separator: "/") + "/vhost-user-rdma"
    }

    /// A fresh directory for sockets and logs.
    public static func makeTemporaryDirectory() -> String {
        var template = Array("/tmp/vrdma-test-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { preconditionFailure("mkdtemp failed") }
        return String(cString: p)
    }

    /// Starts `binary` serving `devices` sockets in `directory`, and waits until they accept.
    public init(binary: String = DaemonProcess.binaryPath, directory: String = DaemonProcess.makeTemporaryDirectory(), devices: Int = 1,
                extraArguments: [String] = [], waitForSockets: Bool = true) throws(SystemError) {
        socketPaths = (0..<devices).map { "\(directory)/vrdma\($0).sock" }
        logPath = "\(directory)/daemon.log"
        let args = [binary] + socketPaths.flatMap { ["--socket-path", $0] } + ["--log-level", "debug"] + extraArguments
        pid = try Self.spawn(args, stderrPath: logPath)
        if waitForSockets {
            for path in socketPaths { try waitUntilAccepting(path) }
        }
    }

    static func spawn(_ args: [String], stderrPath: String) throws(SystemError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, args[0], &actions, nil, &argv, environ)
        if rc != 0 { throw SystemError(errno: rc, operation: "posix_spawn(\(args[0]))") }
        return pid
    }

    private func waitUntilAccepting(_ path: String) throws(SystemError) {
        for _ in 0..<500 {
            if (try? UnixSocket.connect(path: path)) != nil { return }
            if !isRunning { throw SystemError(errno: ESRCH, operation: "daemon exited early: \(log)") }
            usleep(10_000)
        }
        throw SystemError(errno: ETIMEDOUT, operation: "daemon socket \(path) never accepted")
    }

    /// Descriptors the daemon holds open right now.
    public var openDescriptorCount: Int { openFileDescriptorCount(pid: pid) }

    /// Waits until the daemon's descriptor count settles at `expected` (clean-up is asynchronous).
    public func waitForDescriptorCount(_ expected: Int, milliseconds: Int = 3000) -> Int {
        var last = openDescriptorCount
        for _ in 0..<(milliseconds / 10) {
            last = openDescriptorCount
            if last == expected { return last }
            usleep(10_000)
        }
        return last
    }

    public var isRunning: Bool {
        if exited != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { exited = status; return false }
        return r == 0
    }

    public var log: String {
        guard let f = fopen(logPath, "r") else { return "" }
        defer { fclose(f) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Sends SIGTERM and returns the exit status (nil if it had to be killed).
    @discardableResult
    public func terminate(milliseconds: Int = 5000) -> Int32? {
        if let status = exited { return exitCode(status) }
        kill(pid, SIGTERM)
        for _ in 0..<(milliseconds / 10) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { exited = status; return exitCode(status) }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        exited = status
        return nil
    }

    private func exitCode(_ status: Int32) -> Int32? {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil
    }

    deinit { if exited == nil { terminate() } }
}
