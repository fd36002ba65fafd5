// SPDX-License-Identifier: Apache-2.0
// epoll(7) with caller-chosen 64-bit tokens. Owned by one thread; not Sendable on purpose.
import CLinuxShims
import Glibc

public struct EpollEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = EpollEvents(rawValue: UInt32(EPOLLIN.rawValue))
    public static let hangup = EpollEvents(rawValue: UInt32(EPOLLHUP.rawValue))
    public static let error = EpollEvents(rawValue: UInt32(EPOLLERR.rawValue))
}

public final class Epoll {
    public let descriptor: OwnedFileDescriptor
    private var buffer: [epoll_event]

    public init(capacity: Int = 64) throws(SystemError) {
        let fd = try retryingInterrupts("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        descriptor = OwnedFileDescriptor(adopting: fd)
        buffer = Array(repeating: epoll_event(), count: capacity)
    }

    public func add(_ fd: Int32, token: UInt64, events: EpollEvents = .readable) throws(SystemError) {
        var ev = epoll_event(events: events.rawValue, data: epoll_data_t(u64: token))
        _ = try retryingInterrupts("epoll_ctl(ADD, \(fd))") { epoll_ctl(descriptor.rawValue, EPOLL_CTL_ADD, fd, &ev) }
    }

    /// Removes `fd`; a descriptor that was never added (or already closed) is not an error here.
    public func remove(_ fd: Int32) {
        var ev = epoll_event()
        _ = epoll_ctl(descriptor.rawValue, EPOLL_CTL_DEL, fd, &ev)
    }

    /// Waits up to `timeoutMilliseconds` (-1 = forever) and calls `body` per ready token.
    /// Returns the number of events. Allocates nothing.
    @discardableResult
    public func wait(timeoutMilliseconds: Int32, _ body: (UInt64, EpollEvents) -> Void) throws(SystemError) -> Int {
        let count = buffer.count
        let n = buffer.withUnsafeMutableBufferPointer { buf in
            var r: Int32
            repeat { r = epoll_wait(descriptor.rawValue, buf.baseAddress, Int32(count), timeoutMilliseconds) } while r < 0 && errno == EINTR
            return r
        }
        if n < 0 { throw SystemError.last("epoll_wait") }
        for i in 0..<Int(n) {
            body(buffer[i].data.u64, EpollEvents(rawValue: buffer[i].events))
        }
        return Int(n)
    }
}
