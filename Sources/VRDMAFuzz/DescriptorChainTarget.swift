// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a hostile guest owns the descriptor table, the avail ring and the indirect tables.
// Whatever it writes, popping must either yield chains whose every segment can be touched, or
// throw a QueueError; a crash, a sanitizer report or a broken invariant below is a bug.
import LinuxSystem
import VirtQueue

private let fuzzBase: UInt64 = 0x10000
private let fuzzSize: UInt64 = 0x10000  // 64 KiB at GPA 0x10000
private let descGPA: UInt64 = 0x10000, availGPA: UInt64 = 0x10800, usedGPA: UInt64 = 0x11000
private let indirectGPA: UInt64 = 0x12000, dataGPA: UInt64 = 0x13000

/// The guest RAM, mapped once per process (libFuzzer calls the target millions of times). The
/// second table adds a dirty log that covers only half of guest memory, to exercise dropped marks.
private struct FuzzGuest: Sendable {
    let plain: GuestMemory
    let logged: GuestMemory
    var host: UnsafeMutableRawPointer { plain.regions[0].base }
}

private let fuzzGuest: FuzzGuest = {
    do {
        let fd = try MemFD.create(name: "fuzz-guest", size: Int(fuzzSize))
        let region = try MappedGuestRegion(
            region: GuestMemoryRegion(guestPhysicalAddress: fuzzBase, size: fuzzSize, userAddress: 0x7f00_0001_0000, mmapOffset: 0),
            descriptor: fd)
        let plain = try GuestMemory(regions: [region])
        let logFD = try MemFD.create(name: "fuzz-log", size: 2)
        let log = try DirtyLog(mapping: MemoryMapping(descriptor: logFD, length: 2), offset: 0, size: 2)  // 16 pages: to GPA 0x10000
        return FuzzGuest(plain: plain, logged: plain.withLog(log))
    } catch {
        fatalError("fuzz setup: \(error)")
    }
}()

/// Reads fuzz bytes in order; zeros once the input is exhausted.
private struct ByteReader {
    let data: UnsafeRawBufferPointer
    var at = 0
    mutating func next<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size where at < data.count {
            v |= T(truncatingIfNeeded: data[at]) << (8 * i)
            at += 1
        }
        return v
    }
}

/// A descriptor address biased toward interesting places: the indirect area, data, anywhere, or raw.
private func fuzzAddress(_ r: inout ByteReader) -> UInt64 {
    let mode: UInt8 = r.next()
    let off = UInt64(r.next(UInt16.self))
    switch mode % 8 {
    case 0: return r.next(UInt64.self)
    case 1: return fuzzBase &+ off
    case 2, 3: return indirectGPA + off % 0x1000 / 16 * 16
    default: return dataGPA + off % (fuzzBase + fuzzSize - dataGPA + 0x20)
    }
}

private func writeDescriptor(_ m: GuestMemory, at gpa: UInt64, _ r: inout ByteReader, size: UInt16) {
    let lengthMode: UInt8 = r.next()
    m.store(fuzzAddress(&r), at: gpa)
    // Mostly lengths that fit, so that chains get long enough to reach the deeper checks.
    let length: UInt32 = switch lengthMode & 3 {
    case 0: UInt32(r.next(UInt8.self))
    case 1: UInt32(r.next(UInt16.self) % 0x1000)
    case 2: UInt32(r.next(UInt16.self))
    default: r.next(UInt32.self)
    }
    m.store(length, at: gpa + 8)
    m.store(lengthMode & 4 == 0 ? UInt16(r.next(UInt8.self) & 7) : r.next(UInt16.self), at: gpa + 12)
    m.store(UInt16(r.next(UInt8.self)) % (size + 2), at: gpa + 14)
}

func descriptorChainFuzzTarget(_ data: UnsafeRawBufferPointer) -> Int32 {
    let guest = fuzzGuest
    // SAFETY: host is the base of the fuzzBase region, which is fuzzSize bytes long and lives forever.
    guest.host.initializeMemory(as: UInt8.self, repeating: 0, count: Int(fuzzSize))
    var r = ByteReader(data: data)
    let config: UInt8 = r.next()
    let size: UInt16 = config & 1 == 0 ? 8 : 16
    let memory = config & 8 == 0 ? guest.plain : guest.logged
    let m = guest.plain  // the guest's own writes are not logged

    for i in 0..<UInt64(size) { writeDescriptor(m, at: descGPA + 16 * i, &r, size: size) }
    for i in 0..<UInt64(32) { writeDescriptor(m, at: indirectGPA + 16 * i, &r, size: size) }
    let nextAvail: UInt16 = r.next()
    let pending = UInt16(r.next(UInt8.self)) % (size + 4)  // sometimes more than size: an index jump
    for i in 0..<UInt64(size) { m.store(UInt16(r.next(UInt8.self)) % (size + 2), at: availGPA + 4 + 2 * i) }
    m.store(r.next(UInt16.self), at: availGPA)  // flags
    m.store(r.next(UInt16.self), at: availGPA + 4 + 2 * UInt64(size))  // used_event
    m.store(r.next(UInt16.self), at: usedGPA + 2)  // used.idx the device resumes from
    m.store(nextAvail &+ pending, at: availGPA + 2)

    let addresses = VringAddresses(descriptorTable: descGPA, availRing: availGPA, usedRing: usedGPA,
                                   logUsed: config & 16 != 0, usedLogAddress: config & 32 == 0 ? usedGPA : r.next(UInt64.self))
    guard let queue = try? SplitQueue(size: size, addresses: addresses, memory: memory, nextAvail: nextAvail,
                                      eventIndex: config & 2 != 0, indirect: config & 4 != 0)
    else { fatalError("valid ring rejected") }

    withUnsafeTemporaryAllocation(byteCount: 512, alignment: 16) { scratch in
        scratch.initializeMemory(as: UInt8.self, repeating: 0xA5)
        if config & 64 != 0 { queue.disableNotifications() }
        while true {
            let chain: DescriptorChain
            do {
                guard let c = try queue.popChain() else { break }
                chain = c
            } catch {
                break  // a guest error: the queue is now broken, as in the daemon
            }
            for offset in [0, chain.readableLength / 2, max(0, chain.readableLength - 1)] {
                let n = chain.gather(into: scratch, from: offset)
                precondition(n == min(scratch.count, max(0, chain.readableLength - offset)), "gather count")
            }
            var written = 0
            for offset in [0, chain.writableLength / 3, chain.writableLength + 1] {
                let n = chain.scatter(from: UnsafeRawBufferPointer(scratch), at: offset, memory: queue.memory)
                precondition(n == min(scratch.count, max(0, chain.writableLength - offset)), "scatter count")
                written = max(written, offset + n)
            }
            queue.pushUsed(head: chain.head, writtenLength: UInt32(written))
            _ = queue.needsNotification()
            if r.next(UInt8.self) & 1 != 0 { try? queue.updateMemory(queue.memory === guest.plain ? guest.logged : guest.plain) }
        }
        _ = queue.enableNotifications()
    }
    return 0
}
