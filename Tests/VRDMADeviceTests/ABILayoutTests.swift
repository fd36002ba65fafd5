// SPDX-License-Identifier: Apache-2.0
// The ABI as Swift sees abi/virtio_rdma.h: sizes and the offsets docs/virtio-rdma.md and the
// header comments promise. The header asserts sizes for C; this checks the importer agrees.
import CVRDMAABI
import Logging
import Testing
import VRDMADevice

@Suite("ABI layout")
struct ABILayoutTests {
    @Test("struct sizes match the header's assertions")
    func sizes() {
        #expect(MemoryLayout<virtio_rdma_config>.size == 128)
        #expect(MemoryLayout<virtio_rdma_cmd_hdr>.size == 8)
        #expect(MemoryLayout<virtio_rdma_resp_hdr>.size == 8)
        #expect(MemoryLayout<virtio_rdma_rsp_query_device>.size == 136)
        #expect(MemoryLayout<virtio_rdma_cmd_query_port>.size == 8)
        #expect(MemoryLayout<virtio_rdma_rsp_query_port>.size == 32)
        #expect(MemoryLayout<virtio_rdma_page_list>.size == 16)
        #expect(MemoryLayout<virtio_rdma_doorbell>.size == 128)
        #expect(MemoryLayout<virtio_rdma_sge>.size == 16)
        #expect(MemoryLayout<virtio_rdma_send_wqe>.size == 64)
        #expect(MemoryLayout<virtio_rdma_recv_wqe>.size == 16)
        #expect(MemoryLayout<virtio_rdma_cqe>.size == 64)
        #expect(MemoryLayout<virtio_rdma_cmd_reg_mr>.size == 48)
        #expect(MemoryLayout<virtio_rdma_cmd_create_cq>.size == 32)
        #expect(MemoryLayout<virtio_rdma_wq_desc>.size == 40)
        #expect(MemoryLayout<virtio_rdma_cmd_create_qp>.size == 104)
        #expect(MemoryLayout<virtio_rdma_av>.size == 40)
        #expect(MemoryLayout<virtio_rdma_qp_attr>.size == 160)
        #expect(MemoryLayout<virtio_rdma_cmd_create_srq>.size == 56)
        #expect(MemoryLayout<virtio_rdma_cmd_create_ah>.size == 48)
        #expect(MemoryLayout<virtio_rdma_cmd_gid>.size == 36)
        #expect(MemoryLayout<virtio_rdma_event>.size == 16)
    }

    @Test("shared-memory fields sit where the spec says: each side writes its own cache line")
    func sharedMemoryOffsets() {
        typealias D = virtio_rdma_doorbell
        #expect(MemoryLayout<D>.offset(of: \D.driver_index) == 0)
        #expect(MemoryLayout<D>.offset(of: \D.arm_sequence) == 4)
        #expect(MemoryLayout<D>.offset(of: \D.arm_flags) == 8)
        #expect(MemoryLayout<D>.offset(of: \D.device_index) == 64)
        #expect(MemoryLayout<D>.offset(of: \D.need_kick) == 68)
        #expect(MemoryLayout<D>.offset(of: \D.notified_sequence) == 72)
        #expect(MemoryLayout<D>.offset(of: \D.cq_status) == 76)
        typealias W = virtio_rdma_send_wqe
        #expect(MemoryLayout<W>.offset(of: \W.opcode) == 8)
        #expect(MemoryLayout<W>.offset(of: \W.num_sge) == 12)
        #expect(MemoryLayout<W>.offset(of: \W.remote_addr) == 24)
        #expect(MemoryLayout<W>.offset(of: \W.compare_add) == 32)
        #expect(MemoryLayout<W>.offset(of: \W.rkey) == 48)
        #expect(MemoryLayout<W>.offset(of: \W.remote_qkey) == 60)
        typealias C = virtio_rdma_cqe
        #expect(MemoryLayout<C>.offset(of: \C.status) == 8)
        #expect(MemoryLayout<C>.offset(of: \C.byte_len) == 16)
        #expect(MemoryLayout<C>.offset(of: \C.qp_num) == 24)
        #expect(MemoryLayout<C>.offset(of: \C.smac) == 36)
        typealias Q = virtio_rdma_qp_attr
        #expect(MemoryLayout<Q>.offset(of: \Q.ah_attr) == 80)
        #expect(MemoryLayout<Q>.offset(of: \Q.alt_ah_attr) == 120)
    }

    @Test("config space fields sit at their documented offsets")
    func configOffsets() {
        typealias C = virtio_rdma_config
        let expected: [(PartialKeyPath<C>, Int)] = [
            (\C.abi_version, 0x00), (\C.phys_port_cnt, 0x04), (\C.node_guid, 0x08), (\C.sys_image_guid, 0x10),
            (\C.max_mr_size, 0x18), (\C.page_size_cap, 0x20), (\C.max_qp, 0x28), (\C.max_qp_wr, 0x2c),
            (\C.max_sge, 0x30), (\C.max_cq, 0x34), (\C.max_cqe, 0x38), (\C.max_mr, 0x3c), (\C.max_pd, 0x40),
            (\C.max_srq, 0x44), (\C.max_srq_wr, 0x48), (\C.max_ah, 0x4c), (\C.max_qp_rd_atom, 0x50),
            (\C.max_inline_data, 0x54), (\C.mac, 0x58), (\C.port_state, 0x5e), (\C.active_mtu, 0x5f),
            (\C.gid_tbl_len, 0x60), (\C.pkey_tbl_len, 0x62), (\C.reserved0, 0x64), (\C.reserved, 0x68),
        ]
        for (path, offset) in expected {
            #expect(MemoryLayout<C>.offset(of: path) == offset, "\(path)")
        }
    }

    @Test("the device's config space is what its configuration says")
    func configSpaceContents() throws {
        var c = DeviceConfiguration(nodeGUID: 0x1122_3344_5566_7788, mac: [0x52, 0x54, 0, 1, 2, 3])
        c.maxQP = 77
        let device = try VRDMADevice(configuration: c, logger: Logger(label: "test"))
        let bytes = device.configSpace
        #expect(bytes.count == 128)
        let cfg = bytes.withUnsafeBytes { $0.loadUnaligned(as: virtio_rdma_config.self) }
        #expect(UInt64(littleEndian: cfg.node_guid) == 0x1122_3344_5566_7788)
        #expect(UInt32(littleEndian: cfg.max_qp) == 77)
        #expect(Array(bytes[0x58..<0x5e]) == [0x52, 0x54, 0, 1, 2, 3])
        #expect(bytes[0x68...].allSatisfy { $0 == 0 }, "reserved bytes must be zero")
        #expect(device.readConfig(offset: 120, count: 8) != nil)
        #expect(device.readConfig(offset: 121, count: 8) == nil)
        #expect(device.readConfig(offset: -1, count: 1) == nil)
    }

    @Test("configurations the ABI cannot express are refused")
    func invalidConfigurations() {
        #expect(throws: ConfigurationError.zeroGUID) { try DeviceConfiguration(nodeGUID: 0).validate() }
        #expect(throws: ConfigurationError.badMAC(3)) { try DeviceConfiguration(mac: [1, 2, 3]).validate() }
        var c = DeviceConfiguration()
        c.doorbellQueues = 0
        #expect(throws: ConfigurationError.doorbellQueues(0)) { try c.validate() }
        c = DeviceConfiguration()
        c.maxQueueSize = 96
        #expect(throws: ConfigurationError.queueSize(96)) { try c.validate() }
    }
}
