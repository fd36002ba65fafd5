// SPDX-License-Identifier: Apache-2.0
// The guest driver's side of virtio-rdma, played in Swift: it brings the device up through a
// TestFrontend the way Linux would (feature negotiation, queue set-up, DRIVER_OK) and issues
// control commands on the control virtqueue. Test double only.
import CVRDMAABI
import LinuxSystem
import VhostUser
import VirtQueue
import Glibc

public final class ModelDriver {
    public static let configSize: UInt32 = 128
    public let frontend: TestFrontend
    public let queueCount: Int
    public let eventIndex: Bool
    public private(set) var config: [UInt8] = []
    private var control: TestQueue { frontend.queues[Int(VIRTIO_RDMA_VQ_CONTROL)]! }
    /// One page for command and response buffers, reused by every command.
    public let commandBuffer: UInt64
    public let responseBuffer: UInt64

    public init(frontend: TestFrontend, queueCount: Int = 4, queueSize: UInt16 = 64, eventIndex: Bool = true) throws(FrontendError) {
        self.frontend = frontend
        self.queueCount = queueCount
        self.eventIndex = eventIndex
        commandBuffer = frontend.allocate(4096)
        responseBuffer = frontend.allocate(4096)
        for i in 0..<queueCount { try frontend.makeQueue(i, size: queueSize, eventIndex: eventIndex) }
    }

    /// Realize + driver probe + DRIVER_OK, as QEMU and Linux do it.
    public func bringUp() throws(FrontendError) {
        config = try frontend.realize(queueCount: queueCount, configSize: Self.configSize)
        var guestFeatures = VirtioFeature.version1 | VirtioFeature.indirectDescriptors
        if eventIndex { guestFeatures |= VirtioFeature.eventIndex }
        try frontend.start(features: guestFeatures, queues: Array(0..<queueCount))
    }

    public struct Reply {
        public var status: UInt32
        public var body: [UInt8]
        public var usedLength: UInt32
    }

    /// Sends one command and waits for its completion. With `interrupt` (the Linux driver's way)
    /// it re-arms used_event and sleeps on the call descriptor; without, it leaves interrupts
    /// suppressed and polls the used ring. Buffers default to the driver's own two pages.
    public func command(_ opcode: UInt32, request: [UInt8] = [], responseSize: Int, indirect: Bool = false,
                        interrupt: Bool = true, commandAddress: UInt64? = nil, responseAddress: UInt64? = nil,
                        timeoutMilliseconds: Int32 = 5000, headerReserved: UInt32 = 0) throws(FrontendError) -> Reply {
        let commandBuffer = commandAddress ?? self.commandBuffer
        let responseBuffer = responseAddress ?? self.responseBuffer
        var header = virtio_rdma_cmd_hdr()
        header.opcode = opcode.littleEndian
        header.reserved = headerReserved.littleEndian
        let bytes = withUnsafeBytes(of: &header) { Array($0) } + request
        _ = bytes.withUnsafeBytes { frontend.memory.write(at: commandBuffer, from: $0) }
        let responseLength = MemoryLayout<virtio_rdma_resp_hdr>.size + responseSize
        let buffers = [
            SplitRingDriver.Buffer(address: commandBuffer, length: UInt32(bytes.count), writable: false),
            SplitRingDriver.Buffer(address: responseBuffer, length: UInt32(responseLength), writable: true),
        ]
        // Arm the interrupt for the next used entry before publishing, and look at the used ring
        // before sleeping: a polling device may complete the command before we would have armed
        // it, and then rightly sends no interrupt (Linux: virtqueue_enable_cb_prepare + poll).
        if eventIndex && interrupt { control.ring.setUsedEvent(control.ring.usedIndex) }
        let head = control.ring.add(buffers, indirectTableAddress: indirect ? frontend.allocate(64, alignment: 16) : nil)
        control.kickIfNeeded()
        var used = control.ring.takeUsed()
        var waited: Int32 = 0
        while used.isEmpty {
            if interrupt {
                guard control.waitForCall(milliseconds: timeoutMilliseconds) else { throw .badReply("no completion for command \(opcode)") }
            } else {
                guard waited < timeoutMilliseconds * 10 else { throw .badReply("no completion for command \(opcode)") }
                usleep(100)
                waited += 1
            }
            used = control.ring.takeUsed()
        }
        guard used.count == 1, used[0].id == head else { throw .badReply("unexpected used entries \(used)") }
        var out = [UInt8](repeating: 0, count: responseLength)
        _ = out.withUnsafeMutableBytes { frontend.memory.read(at: responseBuffer, into: $0) }
        let headerSize = MemoryLayout<virtio_rdma_resp_hdr>.size
        let status = out.count >= 4 ? out.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) } : 0
        return Reply(status: status, body: out.count > headerSize ? Array(out[headerSize...]) : [], usedLength: used[0].length)
    }

    public func queryDevice() throws(FrontendError) -> virtio_rdma_rsp_query_device {
        let reply = try command(UInt32(VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue), responseSize: MemoryLayout<virtio_rdma_rsp_query_device>.size)
        guard reply.status == VIRTIO_RDMA_S_OK.rawValue else { throw .badReply("QUERY_DEVICE status \(reply.status)") }
        return reply.body.withUnsafeBytes { $0.loadUnaligned(as: virtio_rdma_rsp_query_device.self) }
    }

    public func queryPort(_ port: UInt32 = 1) throws(FrontendError) -> (UInt32, virtio_rdma_rsp_query_port?) {
        var req = virtio_rdma_cmd_query_port()
        req.port = port.littleEndian
        let reply = try command(UInt32(VIRTIO_RDMA_CMD_QUERY_PORT.rawValue), request: withUnsafeBytes(of: &req) { Array($0) },
                                responseSize: MemoryLayout<virtio_rdma_rsp_query_port>.size)
        guard reply.status == VIRTIO_RDMA_S_OK.rawValue else { return (reply.status, nil) }
        return (reply.status, reply.body.withUnsafeBytes { $0.loadUnaligned(as: virtio_rdma_rsp_query_port.self) })
    }
}
