// SPDX-License-Identifier: Apache-2.0
// vrdma-demo: plays QEMU and a guest driver against a running vhost-user-rdma (the in-process
// front-end), and prints what travelled: negotiation, config space, commands on the control ring,
// a pause/resume and a guest reset. `make demo` runs it; once guests boot it gives way to them.
import CVRDMAABI
import Glibc
import VRDMATestSupport
import VhostUser

func printError(_ s: String) {
    let line = s + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

guard CommandLine.arguments.count == 2 else {
    printError("usage: vrdma-demo SOCKET-PATH")
    exit(64)
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

do {
    let frontend = try TestFrontend(path: CommandLine.arguments[1])
    let driver = try ModelDriver(frontend: frontend)
    try driver.bringUp()
    print("negotiated features   \(hex(frontend.features))")
    print("protocol features     \(frontend.protocolFeatures)")
    print("guest RAM             \(frontend.regions.map { "\(hex($0.guestPhysicalAddress))+\(hex($0.size))" }.joined(separator: ", "))")
    let cfg = driver.config.withUnsafeBytes { $0.loadUnaligned(as: virtio_rdma_config.self) }
    print("config space          abi \(UInt32(littleEndian: cfg.abi_version)), node GUID \(hex(UInt64(littleEndian: cfg.node_guid))), port state \(cfg.port_state)")
    let dev = try driver.queryDevice()
    print("QUERY_DEVICE          max_qp \(UInt32(littleEndian: dev.max_qp)), max_cq \(UInt32(littleEndian: dev.max_cq)), max_mr \(UInt32(littleEndian: dev.max_mr)), vendor \(hex(UInt64(UInt32(littleEndian: dev.vendor_id))))")
    let (_, port) = try driver.queryPort()
    if let port { print("QUERY_PORT 1          state \(port.state), active MTU enum \(port.active_mtu), link layer \(port.link_layer)") }
    let bases = try frontend.stop(queues: Array(0..<driver.queueCount))
    print("VM paused             control ring stopped at avail index \(bases[0] ?? 0)")
    try frontend.start(features: frontend.features & ~VirtioFeature.protocolFeatures, queues: Array(0..<driver.queueCount))
    _ = try driver.queryDevice()
    print("VM resumed            one more command completed")
    try frontend.guestReset(queues: Array(0..<driver.queueCount))
    print("guest reset           RESET_DEVICE sent; device state dropped")
    print("demo: OK")
} catch {
    printError("demo failed: \(error)")
    exit(1)
}
