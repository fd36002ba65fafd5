// SPDX-License-Identifier: Apache-2.0
// The real daemon process driven over a real socket by the in-process front-end, through QEMU
// 7.2's whole life cycle of a device.
import CVRDMAABI
import Glibc
import LinuxSystem
import Testing
import VRDMATestSupport
import VhostUser
import VirtQueue

@Suite("Daemon life cycle", .serialized)
struct DaemonLifecycleTests {
    @Test("QEMU 7.2's realize, start, command, stop, reset and power-off sequence works end to end")
    func fullSequence() throws {
        let daemon = try DaemonProcess()
        let idle = settledDescriptorCount(daemon)
        do {
            let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
            try driver.bringUp()
            #expect(driver.config.count == 128)
            let abi = driver.config.withUnsafeBytes { $0.loadUnaligned(as: virtio_rdma_config.self) }
            #expect(UInt32(littleEndian: abi.abi_version) == UInt32(VIRTIO_RDMA_ABI_VERSION))
            #expect(UInt64(littleEndian: abi.node_guid) != 0)

            let attributes = try driver.queryDevice()
            #expect(UInt64(littleEndian: attributes.node_guid) == UInt64(littleEndian: abi.node_guid))
            #expect(UInt32(littleEndian: attributes.max_qp) == UInt32(littleEndian: abi.max_qp))
            let (status, port) = try driver.queryPort()
            #expect(status == VIRTIO_RDMA_S_OK.rawValue)
            #expect(port?.state == UInt8(VIRTIO_RDMA_PORT_ACTIVE))

            // VM pause: rings stop and report where they are; a later start resumes there.
            let bases = try driver.frontend.stop(queues: Array(0..<driver.queueCount))
            #expect(bases[0] == 2)
            try driver.frontend.start(features: driver.frontend.features & ~VirtioFeature.protocolFeatures,
                                      queues: Array(0..<driver.queueCount))
            _ = try driver.queryDevice()

            // Guest reboot: stop + RESET_DEVICE, then the whole start again from index 0.
            try driver.frontend.guestReset(queues: Array(0..<driver.queueCount))
            let again = try ModelDriver(frontend: driver.frontend)
            try driver.frontend.start(features: VirtioFeature.version1 | VirtioFeature.eventIndex, queues: Array(0..<again.queueCount))
            _ = try again.queryDevice()
        }
        // Power-off: the front-end closes; the daemon cleans up and keeps serving.
        #expect(daemon.waitForDescriptorCount(idle) == idle)
        let next = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
        try next.bringUp()
        _ = try next.queryDevice()
        #expect(daemon.terminate() == 0)
        #expect(daemon.log.contains("VHOST_USER_RESET_DEVICE"))
    }
}
