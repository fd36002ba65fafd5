// SPDX-License-Identifier: Apache-2.0
// The control virtqueue: pop a chain, read the command header and request, check, act, write the
// response header and body, push the used entry. A malformed command gets a status, never a
// broken queue: only a malformed *ring* (QueueError) stops the queue.
import CVRDMAABI
import Logging
import VhostUserBackend
import VirtQueue

final class ControlQueue: QueueHandler {
    /// The largest request any command has; longer readable parts are not read past this.
    static let maxRequestSize = 512  // the largest request (MODIFY_QP) is 160 bytes
    private unowned let device: VRDMADevice
    private let logger: Logger
    private var request = [UInt8](repeating: 0, count: ControlQueue.maxRequestSize)

    init(device: VRDMADevice, logger: Logger) {
        self.device = device
        self.logger = logger
    }

    func process(_ queue: SplitQueue) throws(QueueError) -> Int {
        var completed = 0
        while let chain = try queue.popChain() {
            let written = execute(chain, memory: queue.memory)
            queue.pushUsed(head: chain.head, writtenLength: UInt32(written))
            completed += 1
        }
        return completed
    }

    /// Runs one command and returns the bytes written into the chain.
    private func execute(_ chain: DescriptorChain, memory: GuestMemory) -> Int {
        let headerSize = MemoryLayout<virtio_rdma_cmd_hdr>.size
        let responseHeaderSize = MemoryLayout<virtio_rdma_resp_hdr>.size
        // Without room for a status the driver cannot be told anything: used length 0 says so.
        guard chain.writableLength >= responseHeaderSize else {
            logger.warning("control command without room for a response (\(chain.writableLength) bytes)")
            return 0
        }
        let length = request.withUnsafeMutableBytes { chain.gather(into: $0) }
        guard length >= headerSize else {
            return respond(chain, memory: memory, status: VIRTIO_RDMA_S_INVALID, body: [])
        }
        let opcode = load(UInt32.self, at: 0)
        let body = headerSize..<length
        guard load(UInt32.self, at: 4) == 0 else {  // virtio_rdma_cmd_hdr.reserved
            return respond(chain, memory: memory, status: VIRTIO_RDMA_S_INVALID, body: [])
        }
        // Room for the response is checked before acting: a create whose handle cannot be
        // returned must not create anything.
        guard chain.writableLength >= responseHeaderSize + Self.responseSize(opcode) else {
            return respond(chain, memory: memory, status: VIRTIO_RDMA_S_INVALID, body: [])
        }
        let (status, response) = dispatch(opcode: opcode, request: body, memory: memory)
        precondition(status != VIRTIO_RDMA_S_OK || response.count == Self.responseSize(opcode), "response size table is wrong")
        return respond(chain, memory: memory, status: status, body: status == VIRTIO_RDMA_S_OK ? response : [])
    }

    /// The response body each opcode has on success (abi/virtio_rdma.h).
    static func responseSize(_ opcode: UInt32) -> Int {
        switch opcode {
        case VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue: MemoryLayout<virtio_rdma_rsp_query_device>.size
        case VIRTIO_RDMA_CMD_QUERY_PORT.rawValue: MemoryLayout<virtio_rdma_rsp_query_port>.size
        case VIRTIO_RDMA_CMD_QUERY_PKEY.rawValue: MemoryLayout<virtio_rdma_rsp_query_pkey>.size
        case VIRTIO_RDMA_CMD_CREATE_UCONTEXT.rawValue: MemoryLayout<virtio_rdma_rsp_create_ucontext>.size
        case VIRTIO_RDMA_CMD_ALLOC_PD.rawValue: MemoryLayout<virtio_rdma_rsp_alloc_pd>.size
        case VIRTIO_RDMA_CMD_REG_MR.rawValue: MemoryLayout<virtio_rdma_rsp_reg_mr>.size
        case VIRTIO_RDMA_CMD_CREATE_CQ.rawValue, VIRTIO_RDMA_CMD_RESIZE_CQ.rawValue: MemoryLayout<virtio_rdma_rsp_create_cq>.size
        case VIRTIO_RDMA_CMD_CREATE_QP.rawValue: MemoryLayout<virtio_rdma_rsp_create_qp>.size
        case VIRTIO_RDMA_CMD_QUERY_QP.rawValue: MemoryLayout<virtio_rdma_qp_attr>.size
        case VIRTIO_RDMA_CMD_CREATE_SRQ.rawValue: MemoryLayout<virtio_rdma_rsp_create_srq>.size
        case VIRTIO_RDMA_CMD_QUERY_SRQ.rawValue: MemoryLayout<virtio_rdma_srq_attr>.size
        case VIRTIO_RDMA_CMD_CREATE_AH.rawValue: MemoryLayout<virtio_rdma_rsp_create_ah>.size
        default: 0
        }
    }

    private func respond(_ chain: DescriptorChain, memory: GuestMemory, status: virtio_rdma_status, body: [UInt8]) -> Int {
        var header = virtio_rdma_resp_hdr()
        header.status = status.rawValue.littleEndian
        let bytes = withUnsafeBytes(of: &header) { Array($0) } + body
        return bytes.withUnsafeBytes { chain.scatter(from: $0, memory: memory) }
    }

    /// Little-endian field of the request buffer (the caller checked the length).
    private func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        request.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    private func dispatch(opcode: UInt32, request body: Range<Int>, memory: GuestMemory) -> (virtio_rdma_status, [UInt8]) {
        let engine = device.engine
        engine.update(memory: memory)
        return request.withUnsafeBytes { raw -> (virtio_rdma_status, [UInt8]) in
            let b = RequestBody(bytes: UnsafeRawBufferPointer(rebasing: raw[body]))
            do {
                let response: [UInt8]
                switch opcode {
                case VIRTIO_RDMA_CMD_QUERY_DEVICE.rawValue: response = queryDevice()
                case VIRTIO_RDMA_CMD_QUERY_PORT.rawValue:
                    let request = try b.decode(virtio_rdma_cmd_query_port.self)
                    try requireZeroReserved(UInt64(request.reserved))
                    let port = UInt32(littleEndian: request.port)
                    guard port == 1 else { throw CommandError.invalid("port \(port)") }
                    response = queryPort()
                case VIRTIO_RDMA_CMD_QUERY_PKEY.rawValue: response = try engine.queryPKey(b)
                case VIRTIO_RDMA_CMD_ADD_GID.rawValue: response = try engine.addGID(b)
                case VIRTIO_RDMA_CMD_DEL_GID.rawValue: response = try engine.deleteGID(b)
                case VIRTIO_RDMA_CMD_CREATE_UCONTEXT.rawValue: response = try engine.createContext()
                case VIRTIO_RDMA_CMD_DESTROY_UCONTEXT.rawValue: response = try engine.destroyContext(b)
                case VIRTIO_RDMA_CMD_ALLOC_PD.rawValue: response = try engine.allocPD(b)
                case VIRTIO_RDMA_CMD_DEALLOC_PD.rawValue: response = try engine.deallocPD(b)
                case VIRTIO_RDMA_CMD_REG_MR.rawValue: response = try engine.registerMR(b)
                case VIRTIO_RDMA_CMD_DEREG_MR.rawValue: response = try engine.deregisterMR(b)
                case VIRTIO_RDMA_CMD_CREATE_CQ.rawValue: response = try engine.createCQ(b)
                case VIRTIO_RDMA_CMD_RESIZE_CQ.rawValue: response = try engine.resizeCQ(b)
                case VIRTIO_RDMA_CMD_DESTROY_CQ.rawValue: response = try engine.destroyCQ(b)
                case VIRTIO_RDMA_CMD_CREATE_QP.rawValue: response = try engine.createQP(b)
                case VIRTIO_RDMA_CMD_MODIFY_QP.rawValue: response = try engine.modifyQP(b)
                case VIRTIO_RDMA_CMD_QUERY_QP.rawValue: response = try engine.queryQP(b)
                case VIRTIO_RDMA_CMD_DESTROY_QP.rawValue: response = try engine.destroyQP(b)
                case VIRTIO_RDMA_CMD_CREATE_SRQ.rawValue: response = try engine.createSRQ(b)
                case VIRTIO_RDMA_CMD_MODIFY_SRQ.rawValue: response = try engine.modifySRQ(b)
                case VIRTIO_RDMA_CMD_QUERY_SRQ.rawValue: response = try engine.querySRQ(b)
                case VIRTIO_RDMA_CMD_DESTROY_SRQ.rawValue: response = try engine.destroySRQ(b)
                case VIRTIO_RDMA_CMD_CREATE_AH.rawValue: response = try engine.createAH(b)
                case VIRTIO_RDMA_CMD_DESTROY_AH.rawValue: response = try engine.destroyAH(b)
                default: throw CommandError.unsupported
                }
                return (VIRTIO_RDMA_S_OK, response)
            } catch let error as CommandError {
                logger.debug("command \(opcode): \(error)")
                return (error.status, [])
            } catch {
                return (VIRTIO_RDMA_S_INVALID, [])
            }
        }
    }

    private func queryDevice() -> [UInt8] {
        let c = device.configuration
        var r = virtio_rdma_rsp_query_device()
        r.fw_ver = UInt64(1).littleEndian
        r.node_guid = c.nodeGUID.littleEndian
        r.sys_image_guid = c.systemImageGUID.littleEndian
        r.max_mr_size = c.maxMRSize.littleEndian
        r.page_size_cap = UInt64(4096).littleEndian
        r.vendor_id = UInt32(0x1af4).littleEndian
        r.vendor_part_id = UInt32(0x106a).littleEndian
        r.hw_ver = UInt32(1).littleEndian
        r.max_qp = c.maxQP.littleEndian
        r.max_qp_wr = c.maxQPWorkRequests.littleEndian
        r.device_cap_flags = (VIRTIO_RDMA_DEVICE_RC_RNR_NAK_GEN).littleEndian
        r.max_send_sge = c.maxSGE.littleEndian
        r.max_recv_sge = c.maxSGE.littleEndian
        r.max_sge_rd = c.maxSGE.littleEndian
        r.max_cq = c.maxCQ.littleEndian
        r.max_cqe = c.maxCQE.littleEndian
        r.max_mr = c.maxMR.littleEndian
        r.max_pd = c.maxPD.littleEndian
        r.max_qp_rd_atom = c.maxReadAtomicDepth.littleEndian
        r.max_qp_init_rd_atom = c.maxReadAtomicDepth.littleEndian
        r.max_srq = c.maxSRQ.littleEndian
        r.max_srq_wr = c.maxSRQWorkRequests.littleEndian
        r.max_srq_sge = c.maxSGE.littleEndian
        r.max_ah = c.maxAH.littleEndian
        r.max_inline_data = c.maxInlineData.littleEndian
        r.atomic_cap = UInt32(VIRTIO_RDMA_ATOMIC_HCA).littleEndian
        r.max_pkeys = UInt16(1).littleEndian
        r.local_ca_ack_delay = 15
        r.phys_port_cnt = 1
        return withUnsafeBytes(of: &r) { Array($0) }
    }

    private func queryPort() -> [UInt8] {
        var r = virtio_rdma_rsp_query_port()
        // CM_SUP: connection management MADs travel on the GSI QP (QP1).
        r.port_cap_flags = (VIRTIO_RDMA_PORT_CAP_IP_BASED_GIDS | VIRTIO_RDMA_PORT_CAP_CM_SUP).littleEndian
        r.max_msg_sz = UInt32(1 << 31).littleEndian
        r.gid_tbl_len = UInt32(16).littleEndian
        r.pkey_tbl_len = UInt16(1).littleEndian
        r.state = UInt8(VIRTIO_RDMA_PORT_ACTIVE)
        r.max_mtu = 5
        r.active_mtu = 3
        r.phys_state = 5
        r.active_width = 1
        r.active_speed = 1
        r.link_layer = UInt8(VIRTIO_RDMA_LINK_LAYER_ETHERNET)
        return withUnsafeBytes(of: &r) { Array($0) }
    }
}
