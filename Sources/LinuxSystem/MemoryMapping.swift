// SPDX-License-Identifier: Apache-2.0
// A shared mmap(2) of a file (guest RAM regions, dirty logs), unmapped when the last owner releases
// it. Readers hold the mapping object, so an unmapped address is never reachable from Swift.
import CLinuxShims
import Glibc

public final class MemoryMapping: @unchecked Sendable {
    // @unchecked: the pointer is immutable; concurrent access to the bytes is the users' protocol.
    public let base: UnsafeMutableRawPointer
    public let length: Int

    /// Maps `length` bytes of `fd` from file offset `offset` read-write, shared.
    public init(descriptor: OwnedFileDescriptor, length: Int, offset: Int = 0) throws(SystemError) {
        guard length > 0 else { throw SystemError(errno: EINVAL, operation: "mmap: zero length") }
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, descriptor.rawValue, off_t(offset))
        guard let p, p != MAP_FAILED else { throw SystemError.last("mmap(\(length) bytes at offset \(offset) of \(descriptor))") }
        base = p
        self.length = length
    }

    deinit {
        munmap(base, length)
    }
}

public enum MemFD {
    /// A sealed-size-free memfd of `size` bytes: guest RAM in the in-process front-end, logs in tests.
    public static func create(name: String, size: Int) throws(SystemError) -> OwnedFileDescriptor {
        let fd = try retryingInterrupts("memfd_create(\(name))") { CLinuxShims_memfd_create(name) }
        let owned = OwnedFileDescriptor(adopting: fd)
        _ = try retryingInterrupts("ftruncate(\(size))") { ftruncate(fd, off_t(size)) }
        return owned
    }
}
