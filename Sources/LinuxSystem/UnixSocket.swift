// SPDX-License-Identifier: Apache-2.0
// AF_UNIX stream sockets: the vhost-user listener (QEMU connects as client by default), the
// front-end side used by tests, and socket pairs for --fd hand-over.
import CLinuxShims
import Glibc

public enum UnixSocket {
    private static func address(_ path: String) throws(SystemError) -> (sockaddr_un, socklen_t) {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw SystemError(errno: ENAMETOOLONG, operation: "socket path '\(path)' must be 1-\(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
        return (addr, socklen_t(MemoryLayout<sockaddr_un>.size))
    }

    private static func stream() throws(SystemError) -> OwnedFileDescriptor {
        let fd = try retryingInterrupts("socket(AF_UNIX)") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        return OwnedFileDescriptor(adopting: fd)
    }

    /// Binds and listens on `path`, replacing a stale socket file left by a previous run.
    public static func listen(path: String, backlog: Int32 = 8) throws(SystemError) -> OwnedFileDescriptor {
        let sock = try stream()
        var (addr, len) = try address(path)
        var st = stat()
        if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
        _ = try retryingInterrupts("bind(\(path))") {
            withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock.rawValue, $0, len) } }
        }
        _ = try retryingInterrupts("listen(\(path))") { Glibc.listen(sock.rawValue, backlog) }
        return sock
    }

    public static func connect(path: String) throws(SystemError) -> OwnedFileDescriptor {
        let sock = try stream()
        var (addr, len) = try address(path)
        _ = try retryingInterrupts("connect(\(path))") {
            withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(sock.rawValue, $0, len) } }
        }
        return sock
    }

    public static func accept(_ listener: OwnedFileDescriptor) throws(SystemError) -> OwnedFileDescriptor {
        let fd = try retryingInterrupts("accept4") { CLinuxShims_accept_cloexec(listener.rawValue) }
        return OwnedFileDescriptor(adopting: fd)
    }

    public static func pair() throws(SystemError) -> (OwnedFileDescriptor, OwnedFileDescriptor) {
        var fds: [Int32] = [-1, -1]
        _ = try retryingInterrupts("socketpair") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
        return (OwnedFileDescriptor(adopting: fds[0]), OwnedFileDescriptor(adopting: fds[1]))
    }

    /// Wakes a thread blocked reading `socket` (used to stop connection threads on shutdown).
    public static func shutdown(_ socket: OwnedFileDescriptor) {
        _ = Glibc.shutdown(socket.rawValue, Int32(SHUT_RDWR))
    }

    /// Whether `fd` is a socket (checks a --fd argument before use).
    public static func isSocket(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK
    }
}

/// Blocks SIGINT/SIGTERM for the whole process and delivers them through a descriptor, so the
/// main loop sees signals as ordinary readable events (no async-signal-safety puzzles).
public struct SignalDescriptor: Sendable {
    public let descriptor: OwnedFileDescriptor

    /// Call before starting any thread so every thread inherits the blocked mask.
    public init(signals: [Int32] = [SIGINT, SIGTERM]) throws(SystemError) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in signals { sigaddset(&mask, s) }
        let rc = pthread_sigmask(SIG_BLOCK, &mask, nil)
        if rc != 0 { throw SystemError(errno: rc, operation: "pthread_sigmask") }
        let fd = try retryingInterrupts("signalfd") { signalfd(-1, &mask, Int32(SFD_CLOEXEC) | Int32(SFD_NONBLOCK)) }
        descriptor = OwnedFileDescriptor(adopting: fd)
        // A peer that disappears mid-write must become EPIPE, not a process-killing signal.
        signal(SIGPIPE, SIG_IGN)
    }

    /// The pending signal number, if any.
    public func take() -> Int32? {
        var info = signalfd_siginfo()
        let n = Glibc.read(descriptor.rawValue, &info, MemoryLayout<signalfd_siginfo>.size)
        return n == MemoryLayout<signalfd_siginfo>.size ? Int32(info.ssi_signo) : nil
    }
}
