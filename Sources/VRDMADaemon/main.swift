// SPDX-License-Identifier: Apache-2.0
// vhost-user-rdma: wiring only. Parse the command line, build one device per socket, run the
// server until a signal. Exit codes: 0 after a clean shutdown, 1 on a system error at start-up,
// 64 on a usage error.
import ArgumentParser
import Glibc
import LinuxSystem
import Logging
import VRDMADevice
import VhostUserBackend

struct VhostUserRDMA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vhost-user-rdma",
        abstract: "Serve paravirtual RDMA devices (virtio device 42) to QEMU over vhost-user.",
        discussion: """
            Each --socket-path (or --fd) is one virtio-rdma device. QEMU connects to it with
              -chardev socket,id=rdma0,path=PATH -device vhost-user-rdma-pci,chardev=rdma0
            and guest RAM shared with the daemon (-object memory-backend-memfd,share=on).
            The daemon does not daemonize; it runs until SIGINT or SIGTERM, serving one front-end
            per socket at a time and accepting the next connection when one ends.

            EXIT STATUS
              0   clean shutdown after SIGINT/SIGTERM (or when every inherited --fd connection closed)
              1   a system error at start-up (socket, memory, threads, the host RDMA device)
              64  a usage error
            """)

    @Option(name: .customLong("socket-path"), help: ArgumentHelp("Listen on PATH for a front-end; repeat for several devices.", valueName: "PATH"))
    var socketPaths: [String] = []

    @Option(name: .customLong("fd"), help: ArgumentHelp("Serve an inherited socket (listening or connected); repeatable.", valueName: "FDNUM"))
    var descriptors: [Int32] = []

    @Flag(name: .customLong("print-capabilities"), help: "Print the back-end's capabilities as JSON and exit.")
    var printCapabilities = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(help: "Data-plane worker threads (default: half the CPUs, at least 1).")
    var workers: Int?

    @Option(name: .customLong("poll-us"), help: "Microseconds a busy worker keeps polling rings before sleeping.")
    var pollMicroseconds: UInt64 = 50

    @Option(name: .customLong("node-guid"), help: "Node GUID of the first device, hex; later devices count up from it.")
    var nodeGUID: String = "5652444d41000001"

    @Option(name: .customLong("mac"), help: ArgumentHelp(
        "MAC of the guest's paired virtio-net NIC, for RoCE GIDs; repeat for several devices: the n-th "
            + "goes with the n-th device (--socket-path ones first, then --fd). Devices without one report none.",
        valueName: "aa:bb:cc:dd:ee:ff"))
    var macs: [String] = []

    @Option(name: .customLong("doorbell-queues"), help: "Doorbell virtqueues each device accepts.")
    var doorbellQueues: Int = 62

    @Option(name: .customLong("queue-size"), help: "Largest virtqueue size accepted (power of two).")
    var queueSize: UInt16 = 1024

    @Option(name: .customLong("max-qp"), help: "Quota: queue pairs per device.") var maxQP: UInt32 = 16384
    @Option(name: .customLong("max-cq"), help: "Quota: completion queues per device.") var maxCQ: UInt32 = 32768
    @Option(name: .customLong("max-mr"), help: "Quota: memory regions per device.") var maxMR: UInt32 = 65536
    @Option(name: .customLong("max-pd"), help: "Quota: protection domains per device.") var maxPD: UInt32 = 16384
    @Option(name: .customLong("max-srq"), help: "Quota: shared receive queues per device.") var maxSRQ: UInt32 = 4096
    @Option(name: .customLong("max-ah"), help: "Quota: address handles per device.") var maxAH: UInt32 = 32768
    @Option(name: .customLong("max-pinned-bytes"), help: "Quota: bytes of guest memory registered in MRs per device.")
    var maxPinnedBytes: UInt64 = 1 << 40
    @Option(name: .customLong("max-qp-memory"), help: "Quota: host bytes for the in-flight state of a device's send queues.")
    var maxWindowBytes: UInt64 = 1 << 30

    @Option(name: .customLong("provider"), help: ArgumentHelp(
        "soft: the built-in software fabric between this daemon's devices; verbs: a host RDMA device "
            + "through libibverbs (needs --ib-device), with guest memory registered for zero-copy DMA.", valueName: "soft|verbs"))
    var provider: String = "soft"

    @Option(name: .customLong("ib-device"), help: ArgumentHelp("verbs: the host RDMA device (as ibv_devices lists it).", valueName: "NAME"))
    var ibDevice: String?

    @Option(name: .customLong("port"), help: "verbs: the host device's port.")
    var port: UInt8?

    @Option(name: .customLong("gid-index"), help: "verbs: the host GID that is each guest's GID 0.")
    var gidIndex: Int?

    @Option(name: .customLong("provider-option"), help: ArgumentHelp(
        "A provider setting as NAME=VALUE (what the libvirt hook passes): ib-device, port, gid-index.", valueName: "NAME=VALUE"))
    var providerOptions: [String] = []

    /// The verbs provider's settings from --ib-device/--port/--gid-index and --provider-option.
    func hostVerbsSettings() throws -> DeviceConfiguration.HostVerbsSettings? {
        var device = ibDevice, p = port, g = gidIndex
        for option in providerOptions {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--provider-option '\(option)' is not NAME=VALUE") }
            switch parts[0] {
            case "ib-device": device = parts[1]
            case "port":
                guard let v = UInt8(parts[1]) else { throw ValidationError("--provider-option port=\(parts[1]) is not a port number") }
                p = v
            case "gid-index":
                guard let v = Int(parts[1]), v >= 0 else { throw ValidationError("--provider-option gid-index=\(parts[1]) is not an index") }
                g = v
            default: throw ValidationError("unknown --provider-option '\(parts[0])' (known: ib-device, port, gid-index)")
            }
        }
        switch provider {
        case "soft":
            guard device == nil, p == nil, g == nil, providerOptions.isEmpty else {
                throw ValidationError("--ib-device, --port, --gid-index and --provider-option belong to --provider verbs")
            }
            return nil
        case "verbs":
            guard let device else { throw ValidationError("--provider verbs needs --ib-device NAME") }
            return DeviceConfiguration.HostVerbsSettings(device: device, port: p ?? 1, gidIndex: g ?? 0)
        default:
            throw ValidationError("unknown provider '\(provider)' (soft or verbs)")
        }
    }

    func validate() throws {
        if printCapabilities { return }
        guard !socketPaths.isEmpty || !descriptors.isEmpty else {
            throw ValidationError("give at least one --socket-path or --fd")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level '\(logLevel)'") }
        guard parseGUID(nodeGUID) != nil else { throw ValidationError("--node-guid must be hexadecimal (0x optional)") }
        for mac in macs where parseMAC(mac) == nil { throw ValidationError("--mac '\(mac)' must look like aa:bb:cc:dd:ee:ff") }
        guard macs.count <= socketPaths.count + descriptors.count else {
            throw ValidationError("\(macs.count) --mac for \(socketPaths.count + descriptors.count) devices")
        }
        if let workers, workers < 1 || workers > 64 { throw ValidationError("--workers must be 1...64") }
        _ = try hostVerbsSettings()
    }

    func run() throws {
        if printCapabilities {
            print(capabilitiesJSON)
            return
        }
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "vhost-user-rdma")
        do {
            // Signals are blocked before any thread starts, so only the main loop sees them.
            let signals = try SignalDescriptor()
            let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            let server = try VhostUserServer(
                configuration: ServerConfiguration(workerCount: workers ?? max(1, cpus / 2),
                                                   pollBudgetNanoseconds: pollMicroseconds * 1000),
                logger: logger)
            var guid = parseGUID(nodeGUID)!
            // One fabric for the daemon: its devices (VMs on this host) reach each other by GID;
            // on the verbs provider, the directory of their wire ids.
            let fabric = SoftwareFabric()
            let directory = VerbsDirectory()
            let hostVerbs = try hostVerbsSettings()
            var index = 0
            func nextDevice() throws -> VRDMADevice {
                let mac = index < macs.count ? parseMAC(macs[index])! : parseMAC("00:00:00:00:00:00")!
                var c = DeviceConfiguration(nodeGUID: guid, mac: mac)
                c.doorbellQueues = doorbellQueues
                c.maxQueueSize = queueSize
                c.maxQP = maxQP; c.maxCQ = maxCQ; c.maxMR = maxMR; c.maxPD = maxPD; c.maxSRQ = maxSRQ; c.maxAH = maxAH
                c.maxPinnedBytes = maxPinnedBytes
                c.maxWindowBytes = maxWindowBytes
                c.index = index
                c.hostVerbs = hostVerbs
                guid &+= 1
                index += 1
                return try VRDMADevice(configuration: c, fabric: fabric, directory: directory, logger: logger)
            }
            for path in socketPaths { try server.listen(path: path, device: try nextDevice()) }
            for fd in descriptors { try server.adopt(descriptor: fd, device: try nextDevice()) }
            try server.run(signals: signals)
        } catch let error as ConfigurationError {
            if case .provider = error {
                // Not a usage error: the host lacks what was asked for.
                logger.critical("\(error)")
                throw ExitCode(1)
            }
            throw ValidationError("\(error)")
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
    }

    private var capabilitiesJSON: String {
        """
        {
          "type": "rdma",
          "features": ["socket-path", "fd", "multiple-devices", "dirty-log", "reset-device", "config"],
          "abi-version": 1,
          "providers": ["soft", "verbs"]
        }
        """
    }
}

func parseGUID(_ text: String) -> UInt64? {
    let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? String(text.dropFirst(2)) : text
    return digits.isEmpty ? nil : UInt64(digits, radix: 16)
}

func parseMAC(_ text: String) -> [UInt8]? {
    let parts = text.split(separator: ":")
    guard parts.count == 6 else { return nil }
    let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
    return bytes.count == 6 ? bytes : nil
}

VhostUserRDMA.main()
