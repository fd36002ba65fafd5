// SPDX-License-Identifier: Apache-2.0
// eventfd(2): the doorbell between threads and between QEMU and us (kick and call descriptors).
import CLinuxShims
import Glibc

public struct EventFD: Sendable {
    public let descriptor: OwnedFileDescriptor

    public init(nonBlocking: Bool = true) throws(SystemError) {
        let flags = Int32(EFD_CLOEXEC) | (nonBlocking ? Int32(EFD_NONBLOCK) : 0)
        let fd = try retryingInterrupts("eventfd") { eventfd(0, flags) }
        descriptor = OwnedFileDescriptor(adopting: fd)
    }

    /// Wraps a descriptor received from the front-end (kick/call/err).
    public init(_ descriptor: OwnedFileDescriptor) { self.descriptor = descriptor }

    /// Adds one to the counter. A full counter (EAGAIN) already means "signalled", so it is not an error.
    public func signal() {
        EventFD.signal(rawDescriptor: descriptor.rawValue)
    }

    /// The same as `signal()` for a descriptor owned elsewhere (the data path keeps raw numbers).
    @inline(__always)
    public static func signal(rawDescriptor fd: Int32) {
        var one: UInt64 = 1
        while Glibc.write(fd, &one, 8) < 0 && errno == EINTR {}
    }

    /// Reads and resets the counter; nil when it was zero (non-blocking descriptors only).
    @discardableResult
    public func drain() -> UInt64? {
        var value: UInt64 = 0
        while true {
            let n = Glibc.read(descriptor.rawValue, &value, 8)
            if n == 8 { return value }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// Blocks until signalled (blocking descriptors), returning the counter.
    public func wait() throws(SystemError) -> UInt64 {
        var value: UInt64 = 0
        _ = try retryingInterrupts("read(eventfd)") { Glibc.read(descriptor.rawValue, &value, 8) }
        return value
    }
}
