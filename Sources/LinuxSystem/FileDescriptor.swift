// SPDX-License-Identifier: Apache-2.0
// Ownership of a file descriptor: closed exactly once, when the last reference goes away. Received
// descriptors are wrapped on arrival so that every error path closes them without extra code.
import Glibc

public final class OwnedFileDescriptor: Sendable, CustomStringConvertible {
    public let rawValue: Int32

    /// Takes ownership of `rawValue`; it will be closed when this object is released.
    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "adopting an invalid descriptor")
        self.rawValue = rawValue
    }

    deinit {
        // EINTR on close still releases the descriptor on Linux; retrying would close a reused number.
        _ = Glibc.close(rawValue)
    }

    public var description: String { "fd \(rawValue)" }

    /// A new descriptor for the same open file (for handing a copy to another owner).
    public func duplicate() throws(SystemError) -> OwnedFileDescriptor {
        let fd = try retryingInterrupts("fcntl(F_DUPFD_CLOEXEC)") { fcntl(rawValue, F_DUPFD_CLOEXEC, 0) }
        return OwnedFileDescriptor(adopting: fd)
    }

    public func setNonBlocking(_ on: Bool) throws(SystemError) {
        let flags = try retryingInterrupts("fcntl(F_GETFL)") { fcntl(rawValue, F_GETFL) }
        let updated = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        _ = try retryingInterrupts("fcntl(F_SETFL)") { fcntl(rawValue, F_SETFL, updated) }
    }

    /// Size of the file behind the descriptor (memfd guest RAM, dirty logs).
    public func fileSize() throws(SystemError) -> Int {
        var st = stat()
        _ = try retryingInterrupts("fstat") { fstat(rawValue, &st) }
        return Int(st.st_size)
    }

    /// Writes all of `bytes`, looping over short writes.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let n = try retryingInterrupts("write") { Glibc.write(rawValue, bytes.baseAddress! + done, bytes.count - done) }
            done += n
        }
    }

    /// Reads exactly `buffer.count` bytes; returns false on end of file before any byte.
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Bool {
        var done = 0
        while done < buffer.count {
            let n = try retryingInterrupts("read") { Glibc.read(rawValue, buffer.baseAddress! + done, buffer.count - done) }
            if n == 0 {
                if done == 0 { return false }
                throw SystemError(errno: EPIPE, operation: "read: end of file after \(done) of \(buffer.count) bytes")
            }
            done += n
        }
        return true
    }
}

/// Counts the descriptors open in this process, or in process `pid` (leak checks in tests).
public func openFileDescriptorCount(pid: pid_t? = nil) -> Int {
    guard let dir = opendir(pid.map { "/proc/\($0)/fd" } ?? "/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { count += 1 }
    }
    // The directory stream's own descriptor is ours, not the other process's.
    return pid == nil ? count - 1 : count
}
