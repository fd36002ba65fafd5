// SPDX-License-Identifier: Apache-2.0
// Small file-system and process helpers for the hook (sysfs reads and writes, state files,
// running a helper program with a time limit). Thin wrappers over libc that throw SystemError.
import Glibc
import LinuxSystem

func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    let owner = OwnedFileDescriptor(adopting: fd)
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(owner.rawValue, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return n == 0 ? String(decoding: out, as: UTF8.self) : nil }
        out += chunk[..<n]
    }
}

/// Replaces `path` atomically (write a temporary file beside it, then rename).
func writeTextFile(_ path: String, _ text: String, mode: mode_t = 0o644) throws(SystemError) {
    let temporary = path + ".tmp"
    let fd = try retryingInterrupts("open(\(temporary))") { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode) }
    let owner = OwnedFileDescriptor(adopting: fd)
    var failure: SystemError?
    Array(text.utf8).withUnsafeBytes { b in
        do throws(SystemError) { try owner.writeAll(b) } catch { failure = error }
    }
    if let failure { throw failure }
    _ = try retryingInterrupts("rename(\(path))") { rename(temporary, path) }
}

/// Writes `text` into an existing (sysfs) file, in one write.
func writeSysfs(_ path: String, _ text: String) throws(SystemError) {
    let fd = try retryingInterrupts("open(\(path))") { open(path, O_WRONLY | O_CLOEXEC) }
    let owner = OwnedFileDescriptor(adopting: fd)
    let bytes = Array(text.utf8)
    let n = try retryingInterrupts("write(\(path))") { bytes.withUnsafeBytes { write(owner.rawValue, $0.baseAddress, $0.count) } }
    guard n == bytes.count else { throw SystemError(errno: EIO, operation: "write(\(path)): short write") }
}

func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
    var prefix = ""
    for part in path.split(separator: "/") {
        prefix += "/" + part
        if mkdir(prefix, mode) != 0 && errno != EEXIST { throw SystemError.last("mkdir(\(prefix))") }
    }
}

func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

func isExecutableFile(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
}

func directoryEntries(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Removes the regular files and sockets in `path`, then the directory (never recursive).
func removeStateDirectory(_ path: String) {
    for name in directoryEntries(path) { unlink(path + "/" + name) }
    rmdir(path)
}

func lastPathComponent(_ path: String) -> String {
    String(path.split(separator: "/").last ?? Substring(path))
}

func directoryName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// The running executable's path (the supervisor and the systemd unit run it again).
public func currentExecutable() -> String {
    readLink("/proc/self/exe") ?? CommandLine.arguments[0]
}

/// Writes to file descriptor 2 directly (Swift 6 forbids touching C's `stderr` global).
public func writeStandardError(_ text: String) {
    let bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        done += n
    }
}

/// Blocks for `seconds` (fractions allowed).
func sleepSeconds(_ seconds: Double) {
    var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var left = timespec()
    while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// posix_spawn with stdin from /dev/null and stdout/stderr to the given descriptors (or a
/// file path), default signal dispositions and an empty signal mask in the child.
func spawn(_ argv: [String], stdout: Int32? = nil, stderr: Int32? = nil, logPath: String? = nil) throws(SystemError) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    if let logPath {
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    } else {
        if let stdout { posix_spawn_file_actions_adddup2(&actions, stdout, 1) } else { posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0) }
        if let stderr { posix_spawn_file_actions_adddup2(&actions, stderr, 2) } else { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGPIPE, SIGTERM, SIGINT, SIGCHLD, SIGHUP] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cargs, environ)
    if rc != 0 { throw SystemError(errno: rc, operation: "posix_spawn(\(argv[0]))") }
    return pid
}

/// Runs a helper to completion within `timeout` seconds, capturing its output.
/// Returns the exit status (128 + signal if killed) and stdout + stderr.
func runHelper(_ argv: [String], timeout: Double) throws(SystemError) -> (status: Int32, output: String) {
    var fds: [Int32] = [-1, -1]
    _ = try retryingInterrupts("pipe") { pipe(&fds) }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    let reader = OwnedFileDescriptor(adopting: fds[0])
    var writer: OwnedFileDescriptor? = OwnedFileDescriptor(adopting: fds[1])
    let pid = try spawn(argv, stdout: writer!.rawValue, stderr: writer!.rawValue)
    writer = nil
    _ = writer
    try reader.setNonBlocking(true)
    var output: [UInt8] = []
    let deadline = monotonicSeconds() + timeout
    var chunk = [UInt8](repeating: 0, count: 4096)
    var open = true
    while open {
        var p = pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0)
        let left = deadline - monotonicSeconds()
        if left <= 0 { break }
        _ = poll(&p, 1, Int32(min(left, 1) * 1000) + 1)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(reader.rawValue, $0.baseAddress, $0.count) }
            if n > 0 { output += chunk[..<n]; continue }
            if n == 0 { open = false }
            break
        }
    }
    var status: Int32 = 0
    if open {
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
        throw SystemError(errno: ETIMEDOUT, operation: "\(argv[0]) did not finish within \(Int(timeout)) s")
    }
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, String(decoding: output, as: UTF8.self))
}
