// SPDX-License-Identifier: Apache-2.0
// The device figures: a real daemon (the release binary next to this one) serving two devices,
// and two model guests driving them through the in-process front-end, as the tests do. One bench
// thread plays both guests, so the machine's two cores hold the guest and the daemon's one worker.
import CVRDMAABI
import Glibc
import LinuxSystem
import VRDMATestSupport

enum DeviceName {
    static let pollingRoundTrip = "device.rc-rtt-polling"
    static let interruptRoundTrip = "device.rc-rtt-interrupt"
    static let interruptRoundTripIdleWorker = "device.rc-rtt-interrupt-idle-worker"
    static let writeBandwidth = "device.write-bw-1MiB"
    static let writeRate = "device.write-rate-64B"
    static let registration = "device.mr-reg-1GiB"
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
}

/// One daemon with two devices, a guest on each, and an RC QP pair between them.
final class TwoGuests {
    let daemon: DaemonProcess
    let a: VerbsDevice
    let b: VerbsDevice
    let pdA: ProtectionDomain
    let pdB: ProtectionDomain
    let cqA: CompletionQueue
    let cqB: CompletionQueue
    let qpA: QueuePair
    let qpB: QueuePair
    let mrA: MemoryRegion
    let mrB: MemoryRegion

    init(pollMicroseconds: Int, bufferBytes: Int, lowMiB: UInt64 = 48) throws {
        daemon = try DaemonProcess(devices: 2, extraArguments: ["--workers", "1", "--poll-us", "\(pollMicroseconds)", "--log-level", "warning"])
        a = try VerbsDevice(socketPath: daemon.socketPaths[0], lowMiB: lowMiB, roceGID: GID.ipv4Mapped(10, 0, 0, 1))
        b = try VerbsDevice(socketPath: daemon.socketPaths[1], lowMiB: 48, roceGID: GID.ipv4Mapped(10, 0, 0, 2))
        let ctxA = try a.createContext(), ctxB = try b.createContext()
        pdA = try ctxA.allocPD()
        pdB = try ctxB.allocPD()
        cqA = try ctxA.createCQ(depth: 1024)
        cqB = try ctxB.createCQ(depth: 1024)
        let sq = WorkQueueCaps(depth: 256, maxSGE: 1, maxInline: 64), rq = WorkQueueCaps(depth: 256, maxSGE: 1)
        qpA = try ctxA.createQP(pd: pdA, sendCQ: cqA, recvCQ: cqA, type: .rc, sq: sq, rq: rq, srq: nil, sqSigAll: false)
        qpB = try ctxB.createQP(pd: pdB, sendCQ: cqB, recvCQ: cqB, type: .rc, sq: sq, rq: rq, srq: nil, sqSigAll: false)
        var p = RCParameters()
        p.timeout = 18  // a second: a descheduled worker is not a lost packet
        try QueuePair.connect(qpA, qpB, p)
        mrA = try pdA.registerMR(length: bufferBytes)
        mrB = try pdB.registerMR(length: bufferBytes)
    }

    deinit { daemon.terminate() }

    /// Polls `cq` until one completion arrives; it must be a success.
    @inline(__always)
    func pollOne(_ cq: CompletionQueue) throws -> VRDMATestSupport.Completion {
        var spins = 0
        while true {
            if let c = cq.pollOne() {
                guard c.status == .success else { throw BenchError(description: "completion \(c)") }
                return c
            }
            spins += 1
            if spins & 0xfffff == 0 && !daemon.isRunning { throw BenchError(description: "daemon died") }
        }
    }
}

/// 64-byte SEND A -> B then B -> A, each side's receive pre-posted: one round trip.
private func pingPong(_ g: TwoGuests, iterations: Int, wait: (CompletionQueue, VerbsDevice) throws -> VRDMATestSupport.Completion) throws {
    let sendA = SendWR(wrId: 1, opcode: .send, flags: .signaled, sges: [g.mrA.sge(offset: 0, length: 64)])
    let sendB = SendWR(wrId: 2, opcode: .send, flags: .signaled, sges: [g.mrB.sge(offset: 0, length: 64)])
    let recvA = RecvWR(wrId: 3, sges: [g.mrA.sge(offset: 4096, length: 64)])
    let recvB = RecvWR(wrId: 4, sges: [g.mrB.sge(offset: 4096, length: 64)])
    for _ in 0..<iterations {
        try g.qpB.postRecv(recvB)
        try g.qpA.postRecv(recvA)
        try g.qpA.postSend(sendA)
        // B sees its receive (and A's send completes meanwhile), then answers.
        var got = 0
        while got < 1 { if try wait(g.cqB, g.b).wrId == 4 { got += 1 } }
        try g.qpB.postSend(sendB)
        got = 0
        while got < 1 { if try wait(g.cqA, g.a).wrId == 3 { got += 1 } }
        // Drain the two send completions so the CQs never fill.
        while g.cqA.pollOne() != nil {}
        while g.cqB.pollOne() != nil {}
    }
}

private func pollingRoundTrip(_ c: BenchContext) throws -> Outcome {
    let g = try TwoGuests(pollMicroseconds: 1000, bufferBytes: 1 << 16)
    let s = try Sampler.latency(warmup: 2000, samples: c.count(200, quick: 20), batch: 50) { n in
        try pingPong(g, iterations: n) { cq, _ in try g.pollOne(cq) }
    }
    return .median(of: s)
}

/// Guests sleep on armed CQ events. With `pollMicroseconds` 0 the worker sleeps too, so each
/// direction costs a kick wake-up as well as an interrupt wake-up: twice the baseline's wake-ups.
private func interruptRoundTrip(_ c: BenchContext, pollMicroseconds: Int) throws -> Outcome {
    let g = try TwoGuests(pollMicroseconds: pollMicroseconds, bufferBytes: 1 << 16)
    // Arm, sleep on the event queue's call eventfd, then poll: what an interrupt-driven guest does.
    let wait: (CompletionQueue, VerbsDevice) throws -> VRDMATestSupport.Completion = { cq, device in
        while true {
            if let done = cq.pollOne() { return done }
            cq.arm(.next)
            if let done = cq.pollOne() { return done }
            guard try device.waitForEvent(.cqCompletion, handle: cq.handle, timeoutMilliseconds: 5000) != nil else {
                throw BenchError(description: "no completion event")
            }
        }
    }
    let s = try Sampler.latency(warmup: 200, samples: c.count(100, quick: 10), batch: 10) { n in
        try pingPong(g, iterations: n, wait: wait)
    }
    return .median(of: s)
}

/// RDMA WRITEs of `size` from A's MR into B's, `depth` in flight, every `signalEvery`-th signaled.
private func writeStream(_ g: TwoGuests, size: Int, count: Int, depth: Int, signalEvery: Int) throws {
    var posted = 0, completed = 0
    var wr = SendWR(wrId: 0, opcode: .rdmaWrite, flags: [], sges: [g.mrA.sge(offset: 0, length: size)],
                    remoteAddr: g.mrB.address(0), rkey: g.mrB.rkey)
    while completed < count {
        while posted < count && posted - completed < depth {
            wr.wrId = UInt64(posted)
            wr.flags = (posted + 1) % signalEvery == 0 || posted + 1 == count ? .signaled : []
            try g.qpA.postSend(wr)
            posted += 1
        }
        let c = try g.pollOne(g.cqA)
        completed = Int(c.wrId) + 1
    }
}

private func writeBandwidth(_ c: BenchContext) throws -> Outcome {
    let size = 1 << 20
    let g = try TwoGuests(pollMicroseconds: 1000, bufferBytes: size)
    let n = c.count(64, quick: 8)
    let s = try Sampler.throughput(warmup: 2, repetitions: c.count(10, quick: 3), unitsPerRepetition: Double(size * n)) {
        try writeStream(g, size: size, count: n, depth: 4, signalEvery: 1)
    }
    return .median(of: s)
}

private func writeRate(_ c: BenchContext) throws -> Outcome {
    let g = try TwoGuests(pollMicroseconds: 1000, bufferBytes: 1 << 16)
    let n = c.count(200_000, quick: 20_000)
    // The daemon runs one worker: operations per second of it are per daemon core.
    let s = try Sampler.throughput(warmup: 1, repetitions: c.count(5, quick: 2), unitsPerRepetition: Double(n), scale: 1000) {
        try writeStream(g, size: 64, count: n, depth: 192, signalEvery: 32)
    }
    return .median(of: s)
}

private func registration(_ c: BenchContext) throws -> Outcome {
    let bytes = 1 << 30
    let g = try TwoGuests(pollMicroseconds: 1000, bufferBytes: 4096, lowMiB: 1100)
    let repetitions = c.count(5, quick: 2)
    var values: [Double] = []
    // The guest's pages and its page list are built once; each repetition registers them anew.
    let pages = g.a.pages(bytes / 4096)
    var r = virtio_rdma_cmd_reg_mr()
    r.pd_handle = g.pdA.handle.littleEndian
    r.access = Access.all.rawValue.littleEndian
    r.iova = UInt64(0x7f00_0000_0000).littleEndian
    r.length = UInt64(bytes).littleEndian
    r.pages = g.a.writePageList(pages.gpas, indirect: true)
    for _ in 0..<repetitions {
        let start = Clock.now()
        let keys = try g.pdA.registerMR(r)
        values.append(Double(Clock.now() - start) / 1e6)
        _ = try g.a.handleCommand(.deregMR, keys.lkey)
    }
    return .median(of: Statistics(values, operationsPerSample: 1))
}

let deviceBenchmarks: [Benchmark] = [
    Benchmark(
        DeviceName.pollingRoundTrip, group: .device, unit: "ns", .lowerIsBetter,
        comparisons: [
            Comparison(baseline: BaselineName.cacheLine, target: .atMost(10)),
            Comparison(baseline: BaselineName.tcp, target: .fasterThanBaseline(by: 50)),
        ],
        note: "64 B RC SEND/RECV ping-pong between two guests' QPs, guests and daemon worker polling",
        run: pollingRoundTrip),
    Benchmark(
        DeviceName.interruptRoundTrip, group: .device, unit: "ns", .lowerIsBetter,
        comparisons: [Comparison(baseline: BaselineName.eventFD, target: .atMost(1.3))],
        note: "64 B RC SEND/RECV ping-pong, guests asleep on armed CQ events (call eventfd), daemon at its "
            + "default --poll-us 50: the guest's doorbell needs no kick while the worker polls",
        run: { try interruptRoundTrip($0, pollMicroseconds: 50) }),
    Benchmark(
        DeviceName.interruptRoundTripIdleWorker, group: .device, unit: "ns", .lowerIsBetter,
        comparisons: [Comparison(baseline: BaselineName.eventFD)],
        note: "as above with --poll-us 0: every doorbell is a kick that wakes the worker, so a round trip "
            + "has four sleeping wake-ups where the eventfd baseline has two",
        run: { try interruptRoundTrip($0, pollMicroseconds: 0) }),
    Benchmark(
        DeviceName.writeBandwidth, group: .device, unit: "GB/s", .higherIsBetter,
        comparisons: [Comparison(baseline: BaselineName.memcpy, target: .atLeast(0.8))],
        note: "RDMA WRITE of 1 MiB between two guests' MRs, 4 in flight, payload bytes per second",
        run: writeBandwidth),
    Benchmark(
        DeviceName.writeRate, group: .device, unit: "M/s", .higherIsBetter,
        comparisons: [Comparison(target: .atLeast(5))],
        note: "64-byte RDMA WRITEs completed per second with one daemon worker (millions)",
        run: writeRate),
    Benchmark(
        DeviceName.registration, group: .device, unit: "ms", .lowerIsBetter,
        note: "REG_MR of 1 GiB of guest memory (indirect page list), command sent to completion seen",
        run: registration),
]
