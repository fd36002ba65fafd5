// SPDX-License-Identifier: Apache-2.0
// Unix sockets by path, threads and hand-offs, and how system errors read.
import Glibc
import LinuxSystem
import Testing

/// A fresh directory for socket files, removed with its contents by `cleanUp`.
private func temporaryDirectory() throws -> String {
    var template = Array("/tmp/vrdma-test-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { throw SystemError.last("mkdtemp") }
    return String(cString: p)
}

private func cleanUp(_ dir: String, _ files: [String]) {
    for f in files { unlink(dir + "/" + f) }
    rmdir(dir)
}

@Suite("Unix sockets")
struct UnixSocketTests {
    @Test("listen, connect and accept by path, then bytes flow both ways")
    func listenConnectAccept() throws {
        let dir = try temporaryDirectory()
        defer { cleanUp(dir, ["s"]) }
        let listener = try UnixSocket.listen(path: dir + "/s")
        #expect(UnixSocket.isSocket(listener.rawValue))
        let client = try UnixSocket.connect(path: dir + "/s")
        let server = try UnixSocket.accept(listener)
        #expect(fcntl(server.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try client.writeAll($0) }
        var got = [UInt8](repeating: 0, count: 3)
        #expect(try got.withUnsafeMutableBytes { try server.readExactly(into: $0) })
        #expect(got == [1, 2, 3])
    }

    @Test("a socket path that does not fit sockaddr_un is refused", arguments: [String(repeating: "x", count: 108), ""])
    func pathTooLong(path: String) {
        let error = #expect(throws: SystemError.self) { try UnixSocket.listen(path: path) }
        #expect(error?.errno == ENAMETOOLONG)
        #expect(throws: SystemError.self) { try UnixSocket.connect(path: path) }
    }

    @Test("a 107-byte path, the longest that fits, is accepted")
    func longestPath() throws {
        let dir = try temporaryDirectory()
        let name = String(repeating: "p", count: 107 - dir.utf8.count - 1)
        defer { cleanUp(dir, [name]) }
        _ = try UnixSocket.listen(path: dir + "/" + name)
    }

    @Test("a stale socket file from an earlier run is replaced")
    func staleSocketReplaced() throws {
        let dir = try temporaryDirectory()
        defer { cleanUp(dir, ["s"]) }
        do { _ = try UnixSocket.listen(path: dir + "/s") }  // closed: the file stays behind
        var st = stat()
        #expect(lstat(dir + "/s", &st) == 0)
        let listener = try UnixSocket.listen(path: dir + "/s")
        let client = try UnixSocket.connect(path: dir + "/s")
        _ = try UnixSocket.accept(listener)
        _ = client
    }

    @Test("a regular file in the socket's place is not deleted")
    func regularFileKept() throws {
        let dir = try temporaryDirectory()
        defer { cleanUp(dir, ["f"]) }
        let fd = open(dir + "/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        close(fd)
        let error = #expect(throws: SystemError.self) { try UnixSocket.listen(path: dir + "/f") }
        #expect(error?.errno == EADDRINUSE)
        var st = stat()
        #expect(lstat(dir + "/f", &st) == 0 && st.st_mode & S_IFMT == S_IFREG)
    }

    @Test("connecting where nobody listens fails with the path in the error")
    func connectNowhere() throws {
        let dir = try temporaryDirectory()
        defer { cleanUp(dir, []) }
        let error = #expect(throws: SystemError.self) { try UnixSocket.connect(path: dir + "/none") }
        #expect(error?.errno == ENOENT)
        #expect(error?.operation.contains(dir + "/none") == true)
    }

    @Test("isSocket tells sockets from other descriptors")
    func isSocket() throws {
        let (a, _) = try UnixSocket.pair()
        #expect(UnixSocket.isSocket(a.rawValue))
        #expect(!UnixSocket.isSocket(try EventFD().descriptor.rawValue))
        #expect(!UnixSocket.isSocket(-1))
    }
}

@Suite("Threads and hand-offs")
struct ThreadTests {
    @Test("a PosixThread runs its body under its name and join waits for it")
    func runsAndJoins() throws {
        let name = Completion<String>()
        let finished = Completion<Bool>()
        let thread = try PosixThread(name: "vrdma-test-thread-long-name") {
            let fd = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC)
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buffer, buffer.count)
            close(fd)
            name.fulfil(String(decoding: buffer.prefix(max(0, n)), as: UTF8.self))
            usleep(20_000)  // join must wait for this, not just for the fulfil above
            finished.fulfil(true)
        }
        // The kernel keeps 15 characters of a thread name.
        #expect(name.wait() == "vrdma-test-thre\n")
        thread.join()
        #expect(finished.wait())
    }

    @Test("Completion hands a value from one thread to a waiter on another")
    func completion() throws {
        let box = Completion<[Int]>()
        let thread = try PosixThread(name: "fulfil") {
            usleep(10_000)  // the waiter is usually already asleep on the condition
            box.fulfil([1, 2, 3])
        }
        #expect(box.wait() == [1, 2, 3])
        #expect(box.wait() == [1, 2, 3], "a fulfilled completion stays fulfilled")
        thread.join()
    }
}

@Suite("System errors")
struct SystemErrorTests {
    @Test("the description names the operation, the errno text and number")
    func description() {
        let e = SystemError(errno: ENOENT, operation: "open(/nowhere)")
        #expect(e.description.contains("open(/nowhere)"))
        #expect(e.description.contains("No such file or directory"))
        #expect(e.description.contains("errno 2"))
    }

    @Test("last() captures errno of the call that just failed")
    func last() {
        #expect(close(-1) == -1)
        #expect(SystemError.last("close(-1)") == SystemError(errno: EBADF, operation: "close(-1)"))
    }

    @Test("retryingInterrupts returns results and throws for -1")
    func retrying() throws {
        #expect(try retryingInterrupts("ok") { Int32(5) } == 5)
        #expect(throws: SystemError(errno: EBADF, operation: "dup(-1)")) { try retryingInterrupts("dup(-1)") { dup(-1) } }
    }
}
