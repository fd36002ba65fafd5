// SPDX-License-Identifier: Apache-2.0
// The responder: a request from some requester (any device of this daemon) arrives in this
// engine's inbox. It is checked against this device's QP, receive queue and memory regions, the
// bytes move once between the two guests' memories, and an ACK or NAK goes back.
import CLinuxShims
import CVRDMAABI
import VirtQueue

/// Walks a list of segments as host chunks, page run by page run.
struct SegmentCursor {
    let segments: UnsafeMutablePointer<DataSegment>
    let count: Int
    let memory: GuestMemory
    var index = 0
    var offset: UInt32 = 0

    init(_ segments: UnsafeMutablePointer<DataSegment>, count: Int, memory: GuestMemory) {
        self.segments = segments; self.count = count; self.memory = memory
    }

    /// The next host chunk of at most `limit` bytes, its guest-physical address (0 for inline
    /// bytes) and length; nil at the end or if a page is no longer guest RAM.
    mutating func next(limit: Int) -> (UnsafeMutableRawPointer, UInt64, Int)? {
        while index < count && offset >= segments[index].length { index += 1; offset = 0 }
        guard index < count else { return nil }
        let s = segments[index]
        let want = min(limit, Int(s.length - offset))
        if let inline = s.inline {
            offset += UInt32(want)
            return (inline + Int(offset) - want, 0, want)
        }
        guard let (p, gpa, n) = s.mr!.chunk(at: s.address + UInt64(offset), count: want, memory: memory) else { return nil }
        offset += UInt32(n)
        return (p, gpa, n)
    }
}

/// Copies `bytes` from one segment list to another; false if either side ran out or left RAM.
func copySegments(from source: inout SegmentCursor, to destination: inout SegmentCursor, bytes: Int) -> Bool {
    var left = bytes
    while left > 0 {
        guard let (d, gpa, n) = destination.next(limit: left) else { return false }
        var filled = 0
        while filled < n {
            guard let (s, _, m) = source.next(limit: n - filled) else { return false }
            (d + filled).copyMemory(from: s, byteCount: m)
            filled += m
        }
        if gpa != 0 { destination.memory.markDirty(gpa: gpa, length: UInt64(n)) }
        left -= n
    }
    return true
}

/// RoCEv2 over IPv4: the GRH slot holds 20 zero bytes, then the IPv4 header with its checksum.
func writeIPv4Header(into grh: inout [UInt8], source: UInt32, destination: UInt32, tos: UInt8, ttl: UInt8, payload: UInt32) {
    // IP + UDP + BTH + DETH + payload + ICRC, as the datagram would be on the wire.
    let total = UInt16(truncatingIfNeeded: 20 + 8 + 12 + 8 + payload + 4)
    var h = [UInt8](repeating: 0, count: 20)
    h[0] = 0x45
    h[1] = tos
    h[2] = UInt8(total >> 8); h[3] = UInt8(total & 0xff)
    h[6] = 0x40  // don't fragment
    h[8] = ttl
    h[9] = 17  // UDP
    for i in 0..<4 {
        h[12 + i] = UInt8(truncatingIfNeeded: source >> (24 - 8 * i))
        h[16 + i] = UInt8(truncatingIfNeeded: destination >> (24 - 8 * i))
    }
    var sum: UInt32 = 0
    for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(h[i]) << 8 | UInt32(h[i + 1]) }
    while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
    let checksum = ~UInt16(sum)
    h[10] = UInt8(checksum >> 8); h[11] = UInt8(checksum & 0xff)
    grh.replaceSubrange(20..<40, with: h)
}

extension Engine {
    static let grhSize = 40
    static let recvHeaderSize = MemoryLayout<virtio_rdma_recv_wqe>.size

    func respond(to packet: Packet) {
        let requester = packet.requester
        let sequence = UInt32(bitPattern: packet.slot)
        // A requester reset or destroyed since it sent this must not see its memory touched; a
        // stale duplicate of a retired WQE has nothing left to read. Registered as a reader, the
        // slot's segments stay as they are until this returns (QueuePair.swift).
        guard requester.beginReading(sequence, incarnation: packet.incarnation) else { return }
        defer { requester.endReading(sequence) }
        let w = requester.inflight[requester.slot(sequence)]
        // A datagram is answered whatever becomes of it: UD has no retries, and the requester's
        // slot must not wait for an answer that never comes.
        if requester.type.isDatagram {
            if let qp = qps.get(packet.destinationQPN), qp.state.receives, qp.type.isDatagram {
                receiveDatagram(qp, packet: packet, work: w)
            }
            answer(packet, .acknowledge, .none)
            return
        }
        // An RC packet for a QP that does not exist or cannot receive is dropped; the requester
        // times out and retries, as on the wire.
        guard let qp = qps.get(packet.destinationQPN), qp.state.receives, qp.type == requester.type else { return }
        if qp.state == .readyToReceive && !qp.communicationEstablished {
            qp.communicationEstablished = true
            postEvent(Int32(VIRTIO_RDMA_EV_COMM_EST), handle: qp.qpn)
        }
        let offset = (packet.psn &- qp.expectedPSN) & 0xff_ffff
        if offset != 0 {
            // Older than expected: a duplicate of something done, ACK it again. Newer: go-back-N
            // drops it, the requester resends after its NAK or timeout.
            if offset >= 0x80_0000 { answer(packet, .acknowledge, .none) }
            return
        }
        let syndrome = execute(qp, packet: packet, work: w)
        switch syndrome {
        case .none:
            qp.expectedPSN = (qp.expectedPSN &+ w.packets) & 0xff_ffff
            answer(packet, .acknowledge, .none)
        case .receiverNotReady:
            var nak = packet
            nak.psn = packet.psn | UInt32(qp.attributes.minRNRTimer) << 24  // the AETH's timer field
            answer(nak, .negativeAcknowledge, .receiverNotReady)
        default:
            answer(packet, .negativeAcknowledge, syndrome)
        }
    }

    private func answer(_ packet: Packet, _ kind: Packet.Kind, _ syndrome: Packet.Syndrome) {
        var reply = packet
        reply.kind = kind
        reply.syndrome = syndrome
        packet.requester.engine.deliver(reply)
    }

    /// Runs one RC request; returns the NAK syndrome, or .none for an ACK.
    private func execute(_ qp: QueuePair, packet: Packet, work w: InflightWork) -> Packet.Syndrome {
        let requester = packet.requester
        let sequence = UInt32(bitPattern: packet.slot)
        var source = SegmentCursor(requester.segments(of: sequence), count: Int(w.segmentCount), memory: packet.memory)
        switch Int32(w.opcode) {
        case VIRTIO_RDMA_WR_SEND, VIRTIO_RDMA_WR_SEND_WITH_IMM:
            return receiveMessage(qp, source: &source, work: w, immediateOnly: false)
        case VIRTIO_RDMA_WR_RDMA_WRITE, VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM:
            if w.withImm {
                guard let available = qp.receive.available ?? (qp.srq != nil ? 0 : nil) else { return receiveQueueBroken(qp) }
                guard available > 0 else { return .receiverNotReady }
            }
            guard let mr = remoteRegion(qp, rkey: w.rkey, address: w.remoteAddress, length: w.length,
                                        access: VIRTIO_RDMA_ACCESS_REMOTE_WRITE) else { return remoteAccessError(qp) }
            var target = DataSegment(mr: mr, address: w.remoteAddress, length: w.length, inline: nil)
            let copied = withUnsafeMutablePointer(to: &target) { (t: UnsafeMutablePointer<DataSegment>) -> Bool in
                var destination = SegmentCursor(t, count: 1, memory: memory)
                return copySegments(from: &source, to: &destination, bytes: Int(w.length))
            }
            guard copied else { return remoteAccessError(qp) }
            if w.withImm { return receiveMessage(qp, source: &source, work: w, immediateOnly: true) }
            return .none
        case VIRTIO_RDMA_WR_RDMA_READ:
            guard let mr = remoteRegion(qp, rkey: w.rkey, address: w.remoteAddress, length: w.length,
                                        access: VIRTIO_RDMA_ACCESS_REMOTE_READ) else { return remoteAccessError(qp) }
            var origin = DataSegment(mr: mr, address: w.remoteAddress, length: w.length, inline: nil)
            var destination = SegmentCursor(requester.segments(of: sequence), count: Int(w.segmentCount), memory: packet.memory)
            let copied = withUnsafeMutablePointer(to: &origin) { (o: UnsafeMutablePointer<DataSegment>) -> Bool in
                var from = SegmentCursor(o, count: 1, memory: memory)
                return copySegments(from: &from, to: &destination, bytes: Int(w.length))
            }
            return copied ? .none : remoteAccessError(qp)
        default:
            return atomic(qp, packet: packet, work: w)
        }
    }

    private func atomic(_ qp: QueuePair, packet: Packet, work w: InflightWork) -> Packet.Syndrome {
        guard w.remoteAddress % 8 == 0 else { return invalidRequest(qp) }
        guard let mr = remoteRegion(qp, rkey: w.rkey, address: w.remoteAddress, length: 8,
                                    access: VIRTIO_RDMA_ACCESS_REMOTE_ATOMIC),
              let (p, gpa, n) = mr.chunk(at: w.remoteAddress, count: 8, memory: memory), n == 8
        else { return remoteAccessError(qp) }
        // SAFETY: 8 bytes of one mapped page; guest-physical 8-alignment is host alignment too
        // (regions are page-aligned). A real atomic: guests may race on the word with their CPUs.
        let original: UInt64
        if w.opcode == UInt8(VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD) {
            original = UInt64(littleEndian: CLinuxShims_atomic_fetch_add_u64(p, w.compareAdd))
        } else {
            original = UInt64(littleEndian: CLinuxShims_atomic_compare_swap_u64(p, w.compareAdd.littleEndian, w.swap.littleEndian))
        }
        memory.markDirty(gpa: gpa, length: 8)
        var result = original.littleEndian
        let requester = packet.requester
        var destination = SegmentCursor(requester.segments(of: UInt32(bitPattern: packet.slot)), count: Int(w.segmentCount),
                                        memory: packet.memory)
        let copied = withUnsafeMutableBytes(of: &result) { r in
            var value = DataSegment(mr: nil, address: 0, length: 8, inline: r.baseAddress!)
            return withUnsafeMutablePointer(to: &value) { (v: UnsafeMutablePointer<DataSegment>) -> Bool in
                var from = SegmentCursor(v, count: 1, memory: memory)
                return copySegments(from: &from, to: &destination, bytes: 8)
            }
        }
        return copied ? .none : remoteAccessError(qp)
    }

    /// The region an rkey names, if the range and both access checks (MR and QP) allow it.
    private func remoteRegion(_ qp: QueuePair, rkey: UInt32, address: UInt64, length: UInt32, access: UInt32) -> MemoryRegion? {
        let bit = access
        guard rkey != 0, let mr = mrs.get(rkey), mr.rkey == rkey, mr.pd === qp.pd, mr.access & bit != 0,
              qp.attributes.accessFlags & bit != 0, mr.contains(address, UInt64(length)) else { return nil }
        return mr
    }

    /// A remote access violation: the responder's QP fails too, with an access-error event.
    private func remoteAccessError(_ qp: QueuePair) -> Packet.Syndrome {
        fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_ACCESS_ERR))
        return .remoteAccess
    }

    private func invalidRequest(_ qp: QueuePair) -> Packet.Syndrome {
        fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_REQ_ERR))
        return .invalidRequest
    }

    private func receiveQueueBroken(_ qp: QueuePair) -> Packet.Syndrome {
        logger.warning("QP \(qp.qpn): receive queue producer index is beyond its depth")
        fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_FATAL))
        return .remoteOperation
    }

    /// Takes a receive WQE and lands the message (or, for WRITE_WITH_IMM, only the immediate).
    private func receiveMessage(_ qp: QueuePair, source: inout SegmentCursor, work w: InflightWork, immediateOnly: Bool) -> Packet.Syndrome {
        let rq = qp.receive
        // An SRQ's impossible index counts as empty (it is shared: no one QP is to blame).
        guard let available = rq.available ?? (qp.srq != nil ? 0 : nil) else { return receiveQueueBroken(qp) }
        guard available > 0 else { return .receiverNotReady }
        let (wrID, status, received) = landInReceiveBuffer(qp, rq: rq, source: &source, length: immediateOnly ? 0 : Int(w.length), prefix: nil)
        rq.take()
        afterSRQTake(qp)
        var cqe = virtio_rdma_cqe()
        cqe.wr_id = wrID.littleEndian
        cqe.status = status
        cqe.opcode = UInt8(immediateOnly ? VIRTIO_RDMA_WC_RECV_RDMA_WITH_IMM : VIRTIO_RDMA_WC_RECV)
        cqe.qp_num = qp.qpn.littleEndian
        cqe.byte_len = (immediateOnly ? w.length : UInt32(received)).littleEndian
        var flags = w.solicited ? UInt32(VIRTIO_RDMA_WC_F_SOLICITED) : 0
        if w.withImm {
            cqe.imm_data = w.imm.littleEndian
            flags |= UInt32(VIRTIO_RDMA_WC_F_WITH_IMM)
        }
        cqe.wc_flags = UInt16(flags).littleEndian
        writeCompletion(qp.recvCQ, &cqe, solicited: w.solicited)
        switch Int32(status) {
        case VIRTIO_RDMA_WC_SUCCESS:
            return .none
        case VIRTIO_RDMA_WC_LOC_LEN_ERR:
            moveToError(qp)
            return .invalidRequest
        default:
            moveToError(qp)
            return .remoteOperation
        }
    }

    /// Reads the receive WQE at the consumer index, checks its SGEs and copies `prefix` then
    /// `length` bytes into them. Returns its wr_id, the completion status and the bytes landed.
    private func landInReceiveBuffer(_ qp: QueuePair, rq: ReceiveQueue, source: inout SegmentCursor, length: Int,
                                     prefix: UnsafeMutableRawBufferPointer?) -> (UInt64, UInt8, Int) {
        let wqe = rq.ring.slot(rq.consumer)
        // SAFETY: a checked ring slot of at least 16 bytes.
        let header = wqe.loadUnaligned(as: virtio_rdma_recv_wqe.self)
        let wrID = UInt64(littleEndian: header.wr_id)
        let count = UInt32(littleEndian: header.num_sge)
        guard count <= rq.maxSGE else { return (wrID, UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR), 0) }
        let segments = receiveSegments
        var capacity: UInt64 = 0
        for i in 0..<Int(count) {
            // SAFETY: create checked 16 + 16 * max_sge <= the slot size, and count <= max_sge.
            let sge = (wqe + Self.recvHeaderSize + i * Self.sgeSize).loadUnaligned(as: virtio_rdma_sge.self)
            let address = UInt64(littleEndian: sge.addr)
            let len = UInt32(littleEndian: sge.length)
            let key = UInt32(littleEndian: sge.lkey)
            guard let mr = mrs.get(key), mr.lkey == key, mr.pd === qp.pd, mr.access & VIRTIO_RDMA_ACCESS_LOCAL_WRITE != 0,
                  mr.contains(address, UInt64(len)) else {
                clearReceiveSegments(Int(count))
                return (wrID, UInt8(VIRTIO_RDMA_WC_LOC_PROT_ERR), 0)
            }
            segments[i] = DataSegment(mr: mr, address: address, length: len, inline: nil)
            capacity += UInt64(len)
        }
        defer { clearReceiveSegments(Int(count)) }
        let total = length + (prefix?.count ?? 0)
        guard UInt64(total) <= capacity else { return (wrID, UInt8(VIRTIO_RDMA_WC_LOC_LEN_ERR), 0) }
        var destination = SegmentCursor(segments, count: Int(count), memory: memory)
        if let prefix {
            var p = DataSegment(mr: nil, address: 0, length: UInt32(prefix.count), inline: prefix.baseAddress!)
            let ok = withUnsafeMutablePointer(to: &p) { (pp: UnsafeMutablePointer<DataSegment>) -> Bool in
                var from = SegmentCursor(pp, count: 1, memory: memory)
                return copySegments(from: &from, to: &destination, bytes: prefix.count)
            }
            guard ok else { return (wrID, UInt8(VIRTIO_RDMA_WC_LOC_PROT_ERR), 0) }
        }
        guard copySegments(from: &source, to: &destination, bytes: length) else {
            return (wrID, UInt8(VIRTIO_RDMA_WC_LOC_PROT_ERR), 0)
        }
        return (wrID, UInt8(VIRTIO_RDMA_WC_SUCCESS), total)
    }

    private func clearReceiveSegments(_ count: Int) {
        for i in 0..<count { receiveSegments[i] = DataSegment() }
    }

    /// SRQ limit: one event when the posted count falls below the limit, which then disarms.
    private func afterSRQTake(_ qp: QueuePair) {
        guard let srq = qp.srq, srq.limit > 0, let available = srq.queue.available, available < srq.limit else { return }
        srq.limit = 0
        postEvent(Int32(VIRTIO_RDMA_EV_SRQ_LIMIT_REACHED), handle: srq.handle)
    }

    /// UD: the Q_Key must match and a receive WQE must be there, or the datagram is dropped.
    private func receiveDatagram(_ qp: QueuePair, packet: Packet, work w: InflightWork) {
        guard w.remoteQKey == qp.attributes.qkey else { return }
        let rq = qp.receive
        guard let available = rq.available, available > 0 else { return }
        let requester = packet.requester
        var source = SegmentCursor(requester.segments(of: UInt32(bitPattern: packet.slot)), count: Int(w.segmentCount),
                                   memory: packet.memory)
        let av = w.av
        let sgid = w.sourceGID.isZero ? nil : w.sourceGID
        let dgid = GID(bytes: av.dgid)
        var grh = [UInt8](repeating: 0, count: Self.grhSize)
        let networkType: UInt8
        if let source = sgid?.ipv4, let destination = dgid.ipv4 {
            writeIPv4Header(into: &grh, source: source, destination: destination, tos: av.traffic_class,
                            ttl: av.hop_limit, payload: w.length)
            networkType = UInt8(VIRTIO_RDMA_NETWORK_IPV4)
        } else {
            // The GRH a RoCE receiver finds in the first 40 bytes: IPv6-shaped, both GIDs.
            grh[0] = 0x60
            grh[4] = UInt8(truncatingIfNeeded: w.length >> 8)
            grh[5] = UInt8(truncatingIfNeeded: w.length)
            grh[6] = 0x11  // UDP: RoCEv2
            grh[7] = av.hop_limit
            if let sgid { grh.replaceSubrange(8..<24, with: sgid.bytes) }
            grh.replaceSubrange(24..<40, with: dgid.bytes)
            networkType = UInt8(VIRTIO_RDMA_NETWORK_IPV6)
        }
        let (wrID, status, received) = grh.withUnsafeMutableBytes {
            landInReceiveBuffer(qp, rq: rq, source: &source, length: Int(w.length), prefix: $0)
        }
        rq.take()
        afterSRQTake(qp)
        var cqe = virtio_rdma_cqe()
        cqe.wr_id = wrID.littleEndian
        cqe.status = status
        cqe.opcode = UInt8(VIRTIO_RDMA_WC_RECV)
        cqe.qp_num = qp.qpn.littleEndian
        cqe.src_qp = requester.qpn.littleEndian
        cqe.byte_len = UInt32(received).littleEndian
        var flags = UInt32(VIRTIO_RDMA_WC_F_GRH) | (w.solicited ? UInt32(VIRTIO_RDMA_WC_F_SOLICITED) : 0)
        if w.withImm {
            cqe.imm_data = w.imm.littleEndian
            flags |= UInt32(VIRTIO_RDMA_WC_F_WITH_IMM)
        }
        cqe.wc_flags = UInt16(flags).littleEndian
        cqe.network_hdr_type = networkType
        cqe.vlan_id = UInt16(0xffff).littleEndian
        withUnsafeMutableBytes(of: &cqe.smac) { smac in
            for i in 0..<min(6, smac.count) { smac[i] = UInt8(truncatingIfNeeded: w.sourceMAC >> (8 * i)) }
        }
        writeCompletion(qp.recvCQ, &cqe, solicited: w.solicited)
        if status != UInt8(VIRTIO_RDMA_WC_SUCCESS) && status != UInt8(VIRTIO_RDMA_WC_LOC_LEN_ERR) { moveToError(qp) }
    }
}
