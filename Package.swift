// swift-tools-version: 6.2
// vrdma: a paravirtual RDMA device for QEMU guests, served over vhost-user.
// Module layering (each knows only the ones below it) is described in docs/architecture.md.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "vrdma",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vhost-user-rdma", targets: ["VRDMADaemon"]),
        .executable(name: "vrdma-libvirt-hook", targets: ["VRDMALibvirtHook"]),
        .executable(name: "vrdma-conformance", targets: ["VRDMAConformanceTool"]),
        .library(name: "VhostUser", targets: ["VhostUser"]),
        .library(name: "VhostUserBackend", targets: ["VhostUserBackend"]),
        .library(name: "VirtQueue", targets: ["VirtQueue"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Layer 1: the kernel interface.
        .target(name: "CLinuxShims", cSettings: [.define("_GNU_SOURCE")]),
        .target(name: "LinuxSystem", dependencies: ["CLinuxShims"], swiftSettings: strict),
        // Layer 2: guest memory and virtqueues.
        .target(name: "VirtQueue", dependencies: ["CLinuxShims", "LinuxSystem"], swiftSettings: strict),
        // Layer 3: vhost-user, wire format then session/server/workers.
        .target(name: "VhostUser", dependencies: ["LinuxSystem"], swiftSettings: strict),
        .target(
            name: "VhostUserBackend",
            dependencies: ["VhostUser", "VirtQueue", "LinuxSystem", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Layer 4: the device. CVRDMAABI is abi/virtio_rdma.h itself: the device uses its structs
        // directly, so there is no second copy of the ABI to drift.
        .target(name: "CVRDMAABI", path: "abi", sources: ["abi_check.c"], publicHeadersPath: "."),
        // Layer 5, the host verbs provider: libibverbs (libibverbs-dev) in Swift types. The software
        // provider lives in VRDMADevice/Fabric, beside the transport it shares with the device.
        .systemLibrary(name: "CIBVerbs", pkgConfig: "libibverbs", providers: [.apt(["libibverbs-dev"])]),
        .target(name: "HostVerbs", dependencies: ["CIBVerbs", "CLinuxShims"], swiftSettings: strict),
        .target(
            name: "VRDMADevice",
            dependencies: ["CVRDMAABI", "VhostUserBackend", "VhostUser", "VirtQueue", "HostVerbs", "CIBVerbs",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Layer 6: executables.
        .executableTarget(
            name: "VRDMADaemon",
            dependencies: [
                "VRDMADevice", "VhostUserBackend", "LinuxSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // libvirt integration (docs/libvirt.md): the hook's library (domain XML, metadata, rtnetlink
        // VF settings, sysfs rebinds, back-end supervision) and its executable. CRouteNetlink is the
        // kernel's rtnetlink UAPI headers, which Glibc's module does not include.
        .target(name: "CRouteNetlink"),
        .target(name: "LibvirtHook", dependencies: ["CRouteNetlink", "LinuxSystem"], swiftSettings: strict),
        .executableTarget(name: "VRDMALibvirtHook", dependencies: ["LibvirtHook"], swiftSettings: strict),
        // Test doubles: the in-process front-end (a QEMU stand-in). Tests, fuzzing and benchmarks only.
        .target(
            name: "VRDMATestSupport",
            dependencies: ["CVRDMAABI", "VhostUser", "VirtQueue", "LinuxSystem"],
            swiftSettings: strict),
        // The provider conformance suite (docs/architecture.md): scenarios any provider must pass,
        // run by IntegrationTests against the software fabric and by `vrdma-conformance` against any.
        .target(name: "VRDMAConformance", dependencies: ["VRDMATestSupport", "CVRDMAABI"], swiftSettings: strict),
        .executableTarget(
            name: "VRDMAConformanceTool",
            dependencies: ["VRDMAConformance", "VRDMATestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        // Fuzz drivers: one executable, a target per subcommand; built with -sanitize=fuzzer by `make fuzz`.
        .executableTarget(
            name: "VRDMAFuzz",
            dependencies: ["VhostUser", "VirtQueue", "VRDMATestSupport", "LinuxSystem"],
            swiftSettings: strict),

        // make bench: device figures and same-run baselines, written as JSON.
        .executableTarget(
            name: "VRDMABench",
            dependencies: ["VRDMATestSupport", "CVRDMAABI", "VhostUser", "VirtQueue", "LinuxSystem", "CLinuxShims"],
            swiftSettings: strict),

        .testTarget(name: "LinuxSystemTests", dependencies: ["LinuxSystem"], swiftSettings: strict),
        .testTarget(name: "VirtQueueTests", dependencies: ["VirtQueue", "LinuxSystem", "VRDMATestSupport"], swiftSettings: strict),
        .testTarget(name: "VhostUserTests", dependencies: ["VhostUser", "LinuxSystem"], swiftSettings: strict),
        .testTarget(
            name: "VRDMADeviceTests",
            dependencies: ["VRDMADevice", "CVRDMAABI", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Fixtures/ is read from the source tree (#filePath), not bundled.
        .testTarget(name: "LibvirtHookTests", dependencies: ["LibvirtHook", "CRouteNetlink", "LinuxSystem"],
                    exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["VRDMAConformance", "VRDMATestSupport", "CVRDMAABI", "VhostUser", "VirtQueue", "LinuxSystem"],
            swiftSettings: strict),
    ]
)
