// SPDX-License-Identifier: Apache-2.0
// Baselines: what this machine can do without the device, measured in the same run as the device
// figures, so that targets are ratios that survive a change of machine or a noisy neighbour.
import Glibc
import LinuxSystem
import Synchronization

enum BaselineName {
    static let cacheLine = "baseline.cacheline-rtt"
    static let eventFD = "baseline.eventfd-rtt"
    static let memcpy = "baseline.memcpy-1MiB"
    static let memcpyLarge = "baseline.memcpy-1MiB-64MiB-set"
    static let tcp = "baseline.tcp-64B-rtt"
}

let baselineBenchmarks: [Benchmark] = [
    Benchmark(
        BaselineName.cacheLine, group: .baseline, unit: "ns", .lowerIsBetter,
        note: "one word on its own cache line bounced between two unpinned threads with acquire/release "
            + "atomics; a sample averages 64 round trips so the clock's cost stays out",
        run: { ctx in .median(of: try cacheLineRoundTrip(ctx)) }),
    Benchmark(
        BaselineName.eventFD, group: .baseline, unit: "ns", .lowerIsBetter,
        note: "two threads, each blocked in read() on its own eventfd, writing the other's; one round trip per sample",
        run: { ctx in .median(of: try eventFDRoundTrip(ctx)) }),
    Benchmark(
        BaselineName.memcpy, group: .baseline, unit: "GB/s", .higherIsBetter,
        note: "memcpy of 1 MiB blocks cycling over \(MemcpyBaseline.smallWorkingSet >> 20) MiB (source + destination, "
            + "at least 4x L2) so it is not one cached buffer; bytes copied per second, 1e9 bytes per GB",
        run: { ctx in .median(of: MemcpyBaseline.run(workingSet: MemcpyBaseline.smallWorkingSet, ctx)) }),
    Benchmark(
        BaselineName.memcpyLarge, group: .baseline, unit: "GB/s", .higherIsBetter,
        comparisons: [Comparison(baseline: BaselineName.memcpy)],
        note: "memcpy of 1 MiB blocks cycling over 64 MiB (source + destination): mostly beyond the caches",
        run: { ctx in .median(of: MemcpyBaseline.run(workingSet: 64 << 20, ctx)) }),
    Benchmark(
        BaselineName.tcp, group: .baseline, unit: "ns", .lowerIsBetter,
        note: "64-byte request and echo over TCP on 127.0.0.1 between two threads, TCP_NODELAY; one round trip per sample",
        run: { ctx in .median(of: try tcpRoundTrip(ctx)) }),
]

// MARK: - Cache-line ping-pong

/// A word alone on its cache line (and on the adjacent one, which the prefetcher pairs with it).
private struct SharedWord: @unchecked Sendable {
    // @unchecked: the pointee is an Atomic; the pointer itself is never written after init.
    let word: UnsafeMutablePointer<Atomic<UInt64>>

    init() {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
        word = raw.bindMemory(to: Atomic<UInt64>.self, capacity: 1)
        word.initialize(to: Atomic(0))
    }

    func deallocate() {
        word.deinitialize(count: 1)
        UnsafeMutableRawPointer(word).deallocate()
    }
}

private func cacheLineRoundTrip(_ ctx: BenchContext) throws -> Statistics {
    let shared = SharedWord()
    defer { shared.deallocate() }
    let stop = UInt64.max
    // The main thread stores odd values, the partner answers with the next even one.
    let echo: @Sendable () -> Void = {
        var expected: UInt64 = 1
        while true {
            var seen = shared.word.pointee.load(ordering: .acquiring)
            while seen != expected && seen != stop { seen = shared.word.pointee.load(ordering: .acquiring) }
            if seen == stop { return }
            shared.word.pointee.store(expected + 1, ordering: .releasing)
            expected += 2
        }
    }
    var value: UInt64 = 0
    return try withPartnerThread(name: "bench-cacheline", partner: echo,
                                 stop: { shared.word.pointee.store(stop, ordering: .releasing) }) {
        Sampler.latency(warmup: 200_000, samples: ctx.count(50_000, quick: 5_000), batch: 64) { n in
            for _ in 0..<n {
                value += 1
                shared.word.pointee.store(value, ordering: .releasing)
                value += 1
                while shared.word.pointee.load(ordering: .acquiring) != value {}
            }
        }
    }
}

// MARK: - eventfd ping-pong

private func eventFDRoundTrip(_ ctx: BenchContext) throws -> Statistics {
    let mine = try EventFD(nonBlocking: false)
    let theirs = try EventFD(nonBlocking: false)
    let (wait, ring) = (mine.descriptor.rawValue, theirs.descriptor.rawValue)
    // A counter of 2 or more cannot be a ping (the main thread waits for each answer): it means stop.
    let echo: @Sendable () -> Void = {
        // Holding the descriptors here keeps both open until this thread is joined.
        withExtendedLifetime((mine, theirs)) {
            while true {
                var count: UInt64 = 0
                guard (try? readFully(ring, &count, 8)) == true, count == 1 else { return }
                EventFD.signal(rawDescriptor: wait)
            }
        }
    }
    return try withPartnerThread(name: "bench-eventfd", partner: echo, stop: {
        var stopValue: UInt64 = 2
        try? writeFully(ring, &stopValue, 8)
    }) {
        try Sampler.latency(warmup: ctx.count(5_000, quick: 500), samples: ctx.count(50_000, quick: 3_000), batch: 1) {
            n throws(SystemError) in
            for _ in 0..<n {
                EventFD.signal(rawDescriptor: ring)
                var count: UInt64 = 0
                _ = try readFully(wait, &count, 8)
            }
        }
    }
}

// MARK: - memcpy bandwidth

enum MemcpyBaseline {
    static let block = 1 << 20

    /// Source plus destination: at least 4x the L2 (so each block comes from further out than L2),
    /// rounded up to whole block pairs.
    static let smallWorkingSet: Int = {
        let l2 = Machine.cacheBytes(level: 2) ?? (2 << 20)
        let pair = 2 * block
        return max(2, (4 * l2 + pair - 1) / pair) * pair
    }()

    static func run(workingSet: Int, _ ctx: BenchContext) -> Statistics {
        let blocks = workingSet / (2 * block)
        let source = UnsafeMutableRawPointer.allocate(byteCount: blocks * block, alignment: 4096)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: blocks * block, alignment: 4096)
        defer {
            source.deallocate()
            destination.deallocate()
        }
        // Touch every page first so that page faults are not counted as copying.
        memset(source, 0x5a, blocks * block)
        memset(destination, 0, blocks * block)
        // Each repetition copies at least 256 MiB (64 MiB with --quick): long enough to time well.
        let bytesPerRepetition = ctx.count(256, quick: 64) << 20
        let passes = max(1, bytesPerRepetition / (blocks * block))
        return Sampler.throughput(
            warmup: 2, repetitions: ctx.count(21, quick: 5), unitsPerRepetition: Double(passes * blocks * block)
        ) {
            for _ in 0..<passes {
                for i in 0..<blocks { memcpy(destination + i * block, source + i * block, block) }
            }
        }
    }
}

// MARK: - TCP loopback ping-pong

private func tcpRoundTrip(_ ctx: BenchContext) throws -> Statistics {
    let (client, server) = try tcpLoopbackPair()
    let message = 64
    // The partner echoes until the main thread shuts its side down (end of file).
    let echo: @Sendable () -> Void = {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: message, alignment: 64)
        defer { buffer.deallocate() }
        while (try? readFully(server.rawValue, buffer, message)) == true {
            guard (try? writeFully(server.rawValue, buffer, message)) != nil else { return }
        }
    }
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: message, alignment: 64)
    defer { buffer.deallocate() }
    memset(buffer, 0x42, message)
    return try withPartnerThread(name: "bench-tcp", partner: echo, stop: { shutdown(client.rawValue, Int32(SHUT_WR)) }) {
        try Sampler.latency(warmup: ctx.count(5_000, quick: 500), samples: ctx.count(50_000, quick: 3_000), batch: 1) {
            n throws(SystemError) in
            for _ in 0..<n {
                try writeFully(client.rawValue, buffer, message)
                guard try readFully(client.rawValue, buffer, message) else {
                    throw SystemError(errno: EPIPE, operation: "read(tcp echo): end of file")
                }
            }
        }
    }
}

/// A connected pair of TCP sockets on 127.0.0.1 with Nagle off on both ends.
private func tcpLoopbackPair() throws(SystemError) -> (client: OwnedFileDescriptor, server: OwnedFileDescriptor) {
    func tcpSocket() throws(SystemError) -> OwnedFileDescriptor {
        let fd = try retryingInterrupts("socket(AF_INET)") {
            socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        return OwnedFileDescriptor(adopting: fd)
    }
    func noDelay(_ fd: OwnedFileDescriptor) throws(SystemError) {
        var on: Int32 = 1
        _ = try retryingInterrupts("setsockopt(TCP_NODELAY)") {
            setsockopt(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
    }
    func withSockaddr<R>(_ address: inout sockaddr_in, _ body: (UnsafeMutablePointer<sockaddr>) -> R) -> R {
        withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
    }
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)

    let listener = try tcpSocket()
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    address.sin_port = 0  // the kernel picks a free port; getsockname tells which
    _ = try retryingInterrupts("bind(127.0.0.1)") { withSockaddr(&address) { bind(listener.rawValue, $0, length) } }
    _ = try retryingInterrupts("listen") { listen(listener.rawValue, 1) }
    var bound = length
    _ = try retryingInterrupts("getsockname") { withSockaddr(&address) { getsockname(listener.rawValue, $0, &bound) } }

    let client = try tcpSocket()
    // Loopback connects complete in the listen backlog, so accepting afterwards cannot deadlock.
    _ = try retryingInterrupts("connect(127.0.0.1)") { withSockaddr(&address) { connect(client.rawValue, $0, length) } }
    let server = OwnedFileDescriptor(adopting: try retryingInterrupts("accept") { accept(listener.rawValue, nil, nil) })
    try noDelay(client)
    try noDelay(server)
    return (client, server)
}
