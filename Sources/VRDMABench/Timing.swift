// SPDX-License-Identifier: Apache-2.0
// Timing helpers shared by baselines and device benchmarks, so that every figure and the baseline it
// is divided by are sampled the same way: warm-up first, then many samples, order statistics.
import Glibc
import LinuxSystem

enum Clock {
    /// CLOCK_MONOTONIC in nanoseconds (vDSO: no system call).
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The median cost of one `now()` in nanoseconds: what a sample of one operation overstates.
    static func overheadNanoseconds() -> Double {
        let calls = 1000
        var perCall = [Double]()
        perCall.reserveCapacity(200)
        for _ in 0..<200 {
            let start = now()
            var sink: UInt64 = 0
            for _ in 0..<calls { sink &+= now() }
            let end = now()
            if sink == 0 { perCall.append(0) }  // keeps the loop from being optimised away
            perCall.append(Double(end - start) / Double(calls))
        }
        return Statistics(perCall).median
    }
}

enum Sampler {
    /// Latency: `warmup` operations untimed, then `samples` timings of `batch` operations each,
    /// recorded as nanoseconds per operation. `operations(n)` must perform exactly n operations.
    /// Batching keeps the clock's own cost (see `Clock.overheadNanoseconds`) small next to
    /// sub-microsecond operations; a batch of one keeps single-operation tails visible.
    static func latency(
        warmup: Int, samples: Int, batch: Int, _ operations: (Int) throws -> Void
    ) rethrows -> Statistics {
        precondition(samples > 0 && batch > 0)
        if warmup > 0 { try operations(warmup) }
        var values = [Double](repeating: 0, count: samples)
        for i in 0..<samples {
            let start = Clock.now()
            try operations(batch)
            values[i] = Double(Clock.now() - start) / Double(batch)
        }
        return Statistics(values, operationsPerSample: batch)
    }

    /// Throughput: `warmup` untimed repetitions, then `repetitions` timed ones, each moving
    /// `unitsPerRepetition` (bytes, operations); recorded as units per nanosecond times `scale`
    /// (bytes per nanosecond is GB/s, so the scale is 1 for GB/s and 1000 for M/s).
    static func throughput(
        warmup: Int, repetitions: Int, unitsPerRepetition: Double, scale: Double = 1, _ repetition: () throws -> Void
    ) rethrows -> Statistics {
        precondition(repetitions > 0)
        for _ in 0..<warmup { try repetition() }
        var values = [Double](repeating: 0, count: repetitions)
        for i in 0..<repetitions {
            let start = Clock.now()
            try repetition()
            values[i] = unitsPerRepetition / Double(Clock.now() - start) * scale
        }
        return Statistics(values, operationsPerSample: 1)
    }
}

/// Runs `partner` on its own thread while `body` runs on this one. `stop` must make the partner
/// return (it is called after `body`, also when `body` throws) so that the join cannot hang.
func withPartnerThread<T>(
    name: String, partner: @escaping @Sendable () -> Void, stop: () -> Void, _ body: () throws -> T
) throws -> T {
    let thread = try PosixThread(name: name, partner)
    defer {
        stop()
        thread.join()
    }
    return try body()
}

/// Reads exactly `count` bytes from a blocking descriptor; false on end of file.
func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> Bool {
    var done = 0
    while done < count {
        let n = try retryingInterrupts("read") { Glibc.read(fd, buffer + done, count - done) }
        if n == 0 { return false }
        done += n
    }
    return true
}

/// Writes all `count` bytes to a blocking descriptor.
func writeFully(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) throws(SystemError) {
    var done = 0
    while done < count {
        done += try retryingInterrupts("write") { Glibc.write(fd, buffer + done, count - done) }
    }
}
