// SPDX-License-Identifier: Apache-2.0
// Descriptor ownership, eventfd, epoll and memfd mappings, on the real kernel objects.
import Glibc
import LinuxSystem
import Testing

/// A pipe as two owned ends. Reading the read end tells, without racing other threads over
/// descriptor numbers, whether every copy of the write end is closed (EOF) or not (EAGAIN).
func makePipe() throws -> (read: OwnedFileDescriptor, write: OwnedFileDescriptor) {
    var fds: [Int32] = [-1, -1]
    _ = try retryingInterrupts("pipe") { pipe(&fds) }
    let ends = (read: OwnedFileDescriptor(adopting: fds[0]), write: OwnedFileDescriptor(adopting: fds[1]))
    try ends.read.setNonBlocking(true)
    return ends
}

/// 0 at end of file, -1 (EAGAIN) while a writer is still open.
func readOne(_ fd: OwnedFileDescriptor) -> Int {
    var byte: UInt8 = 0
    return Glibc.read(fd.rawValue, &byte, 1)
}

@Suite("Owned file descriptors")
struct OwnedFileDescriptorTests {
    @Test("releasing the owner closes the descriptor")
    func closesOnRelease() throws {
        var (r, writer): (OwnedFileDescriptor, OwnedFileDescriptor?) = try makePipe()
        #expect(readOne(r) == -1 && errno == EAGAIN)
        writer = nil
        _ = writer
        #expect(readOne(r) == 0, "the write end is still open somewhere")
    }

    @Test("creating and releasing owners leaves the process descriptor count unchanged")
    func countUnchanged() throws {
        var deltas: [Int] = []
        for _ in 0..<8 {  // other suites open descriptors in parallel: retry on noise
            let before = openFileDescriptorCount()
            do { _ = try (0..<16).map { _ in try EventFD() } }
            deltas.append(openFileDescriptorCount() - before)
            if deltas.last == 0 { break }
        }
        #expect(deltas.last == 0, "\(deltas)")
        let held = try (0..<4).map { _ in try EventFD() }
        #expect(openFileDescriptorCount() >= held.count)
    }

    @Test("duplicate() is a new close-on-exec descriptor for the same file, with its own lifetime")
    func duplicate() throws {
        let event = try EventFD()
        var copy: OwnedFileDescriptor? = try event.descriptor.duplicate()
        #expect(copy!.rawValue != event.descriptor.rawValue)
        #expect(fcntl(copy!.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        EventFD(copy!).signal()
        #expect(event.drain() == 1)

        var (r, w): (OwnedFileDescriptor, OwnedFileDescriptor?) = try makePipe()
        copy = try w!.duplicate()
        w = nil
        _ = w
        #expect(readOne(r) == -1, "the duplicate keeps the pipe open")
        copy = nil
        #expect(readOne(r) == 0)
    }

    @Test("readExactly fills the buffer across short writes")
    func readExactlyWhole() throws {
        let (r, w) = try makePipe()
        try r.setNonBlocking(false)
        // The last byte comes later, so the first read returns short and readExactly must loop.
        let writer = try PosixThread(name: "late-writer") {
            try? [UInt8]([1, 2, 3]).withUnsafeBytes { try w.writeAll($0) }
            usleep(20_000)
            try? [UInt8]([4]).withUnsafeBytes { try w.writeAll($0) }
        }
        var buffer = [UInt8](repeating: 0, count: 4)
        #expect(try buffer.withUnsafeMutableBytes { try r.readExactly(into: $0) })
        #expect(buffer == [1, 2, 3, 4])
        writer.join()
    }

    @Test("readExactly returns false at end of file before any byte")
    func readExactlyCleanEOF() throws {
        var (r, w): (OwnedFileDescriptor, OwnedFileDescriptor?) = try makePipe()
        w = nil
        _ = w
        var buffer = [UInt8](repeating: 0, count: 4)
        #expect(try buffer.withUnsafeMutableBytes { try r.readExactly(into: $0) } == false)
    }

    @Test("readExactly throws at end of file in the middle of the buffer")
    func readExactlyShort() throws {
        var (r, w): (OwnedFileDescriptor, OwnedFileDescriptor?) = try makePipe()
        try [UInt8]([9, 9]).withUnsafeBytes { try w!.writeAll($0) }
        w = nil
        _ = w
        var buffer = [UInt8](repeating: 0, count: 4)
        let error = #expect(throws: SystemError.self) { try buffer.withUnsafeMutableBytes { try r.readExactly(into: $0) } }
        #expect(error?.errno == EPIPE)
    }

    @Test("fileSize reports the size of a memfd")
    func fileSize() throws {
        #expect(try MemFD.create(name: "size", size: 12345).fileSize() == 12345)
    }
}

@Suite("eventfd")
struct EventFDTests {
    @Test("signals add up and drain resets the counter")
    func signalDrain() throws {
        let event = try EventFD()
        #expect(event.drain() == nil, "a fresh eventfd is not signalled")
        event.signal()
        event.signal()
        EventFD.signal(rawDescriptor: event.descriptor.rawValue)
        #expect(event.drain() == 3)
        #expect(event.drain() == nil)
    }

    @Test("wait blocks until another thread signals")
    func waitAcrossThreads() throws {
        let event = try EventFD(nonBlocking: false)
        let waited = Completion<UInt64>()
        let thread = try PosixThread(name: "eventfd-wait") { waited.fulfil((try? event.wait()) ?? 0) }
        event.signal()
        #expect(waited.wait() == 1)
        thread.join()
    }
}

@Suite("epoll")
struct EpollTests {
    @Test("ready descriptors are reported by their token, removed ones are not")
    func tokens() throws {
        let epoll = try Epoll()
        let a = try EventFD(), b = try EventFD()
        try epoll.add(a.descriptor.rawValue, token: 0xA)
        try epoll.add(b.descriptor.rawValue, token: 0xB00_0000_0000)

        var seen: [UInt64] = []
        #expect(try epoll.wait(timeoutMilliseconds: 0) { t, _ in seen.append(t) } == 0)
        b.signal()
        var events = EpollEvents()
        #expect(try epoll.wait(timeoutMilliseconds: 1000) { t, e in seen.append(t); events = e } == 1)
        #expect(seen == [0xB00_0000_0000])
        #expect(events.contains(.readable))

        a.signal()
        epoll.remove(b.descriptor.rawValue)
        seen = []
        try epoll.wait(timeoutMilliseconds: 1000) { t, _ in seen.append(t) }
        #expect(seen == [0xA], "level-triggered: a stays ready, b was removed")
        epoll.remove(b.descriptor.rawValue)  // removing twice is harmless
    }

    @Test("adding the same descriptor twice is an error naming the operation")
    func addTwice() throws {
        let epoll = try Epoll()
        let a = try EventFD()
        try epoll.add(a.descriptor.rawValue, token: 1)
        let error = #expect(throws: SystemError.self) { try epoll.add(a.descriptor.rawValue, token: 2) }
        #expect(error?.errno == EEXIST)
        #expect(error?.operation.hasPrefix("epoll_ctl") == true)
    }

    @Test("a hung-up socket peer is reported")
    func hangup() throws {
        let epoll = try Epoll()
        let (a, b) = try UnixSocket.pair()
        try epoll.add(a.rawValue, token: 7)
        UnixSocket.shutdown(b)
        var events = EpollEvents()
        try epoll.wait(timeoutMilliseconds: 1000) { _, e in events = e }
        #expect(events.contains(.readable) || events.contains(.hangup))
    }
}

@Suite("memfd and mmap")
struct MemoryMappingTests {
    @Test("two mappings of one memfd see each other's writes")
    func shared() throws {
        let fd = try MemFD.create(name: "shared", size: 2 * 4096)
        let a = try MemoryMapping(descriptor: fd, length: 2 * 4096)
        let b = try MemoryMapping(descriptor: fd, length: 4096, offset: 4096)
        #expect(a.base != b.base)
        a.base.storeBytes(of: 0xDEAD_BEEF as UInt32, toByteOffset: 4096 + 8, as: UInt32.self)
        #expect(b.base.load(fromByteOffset: 8, as: UInt32.self) == 0xDEAD_BEEF)
        b.base.storeBytes(of: 0x55, as: UInt8.self)
        #expect(a.base.load(fromByteOffset: 4096, as: UInt8.self) == 0x55)
    }

    @Test("a zero-length or unaligned mapping is refused")
    func refused() throws {
        let fd = try MemFD.create(name: "bad", size: 4096)
        #expect(throws: SystemError(errno: EINVAL, operation: "mmap: zero length")) { try MemoryMapping(descriptor: fd, length: 0) }
        let error = #expect(throws: SystemError.self) { try MemoryMapping(descriptor: fd, length: 4096, offset: 1) }
        #expect(error?.errno == EINVAL)
    }
}
