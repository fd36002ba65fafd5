// SPDX-License-Identifier: Apache-2.0
// The device figures and the targets for them. This is the extension point: replace a
// placeholder `run` with a measurement (use `Sampler` so it is sampled like its baseline) and
// leave the names, units and comparisons alone unless the targets change.

enum DeviceName {
    static let pollingRoundTrip = "device.rc-rtt-polling"
    static let interruptRoundTrip = "device.rc-rtt-interrupt"
    static let writeBandwidth = "device.write-bw-1MiB"
    static let writeRate = "device.write-rate-64B"
    static let registration = "device.mr-reg-1GiB"
}

private let notImplemented = Outcome.notMeasured(reason: "the device data path is not implemented yet")

let deviceBenchmarks: [Benchmark] = [
    Benchmark(
        DeviceName.pollingRoundTrip, group: .device, unit: "ns", .lowerIsBetter,
        comparisons: [
            Comparison(baseline: BaselineName.cacheLine, target: .atMost(10)),
            Comparison(baseline: BaselineName.tcp, target: .fasterThanBaseline(by: 50)),
        ],
        note: "RC SEND/RECV ping-pong between two guests' QPs, workers polling the rings",
        run: { _ in notImplemented }),
    Benchmark(
        DeviceName.interruptRoundTrip, group: .device, unit: "ns", .lowerIsBetter,
        comparisons: [Comparison(baseline: BaselineName.eventFD, target: .atMost(1.3))],
        note: "RC SEND/RECV ping-pong with idle workers: kick eventfd in, call eventfd out",
        run: { _ in notImplemented }),
    Benchmark(
        DeviceName.writeBandwidth, group: .device, unit: "GB/s", .higherIsBetter,
        comparisons: [Comparison(baseline: BaselineName.memcpy, target: .atLeast(0.8))],
        note: "RDMA WRITE of 1 MiB between two guests' MRs, payload bytes per second",
        run: { _ in notImplemented }),
    Benchmark(
        DeviceName.writeRate, group: .device, unit: "M/s", .higherIsBetter,
        comparisons: [Comparison(target: .atLeast(5))],
        note: "64-byte RDMA WRITEs completed per second per daemon core (millions)",
        run: { _ in notImplemented }),
    Benchmark(
        DeviceName.registration, group: .device, unit: "ms", .lowerIsBetter,
        note: "REG_MR of 1 GiB of guest memory, command sent to completion seen; reported, no target",
        run: { _ in notImplemented }),
]
