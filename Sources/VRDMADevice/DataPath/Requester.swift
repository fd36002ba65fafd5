// SPDX-License-Identifier: Apache-2.0
// The requester and completer of a QP: take WQEs from the send ring, check and translate them,
// send them in PSN order, and retire them in order when their ACKs (or NAKs) come back. Go-back-N
// on an RNR NAK or an ACK timeout, as on the wire.
import CVRDMAABI
import VirtQueue

extension Engine {
    static let wqeHeaderSize = MemoryLayout<virtio_rdma_send_wqe>.size
    static let sgeSize = MemoryLayout<virtio_rdma_sge>.size

    /// Runs one QP's send side; returns the work done.
    func runRequester(_ qp: QueuePair, now: UInt64) -> Int {
        switch qp.state {
        case .error:
            return flushSendQueue(qp) + flushReceiveQueue(qp)
        case .readyToSend, .sendQueueDrain:
            break
        default:
            return 0  // WQEs wait in the ring until the QP can send
        }
        var work = 0
        if qp.ackDeadline != 0 && now >= qp.ackDeadline { work += ackTimedOut(qp, now: now) }
        if qp.resumeAt != 0 {
            guard now >= qp.resumeAt else { return work }
            qp.resumeAt = 0
        }
        if qp.state == .readyToSend {
            while qp.windowCount < qp.sq.depth {
                guard let waiting = sendWQEWaiting(qp) else { return work + 1 }
                if !waiting { break }
                // A responder still reads what the slot held (a stale packet of the WQE that
                // retired from it): take the WQE on a later pass.
                guard qp.slotWritable(qp.sqConsumer) else { work += 1; break }
                fetch(qp)
                work += 1
            }
        } else if qp.windowCount == 0 && !qp.drainedNotified {
            qp.drainedNotified = true
            if qp.attributes.sqdNotify != 0 { postEvent(Int32(VIRTIO_RDMA_EV_SQ_DRAINED), handle: qp.qpn) }
        }
        work += transmit(qp, now: now)
        retire(qp)
        return work
    }

    /// Whether the SQ holds a WQE to take; nil if its producer index is impossible (more than a
    /// ring ahead), which breaks the QP.
    func sendWQEWaiting(_ qp: QueuePair) -> Bool? {
        let posted = qp.sqDoorbell.driverIndex &- qp.sqConsumer
        if posted == 0 { return false }
        stopKicks(qp)
        guard posted <= qp.sq.depth else {
            logger.warning("QP \(qp.qpn): SQ producer index \(qp.sqDoorbell.driverIndex) is \(posted) ahead of the consumer")
            fatal(qp, event: Int32(VIRTIO_RDMA_EV_QP_FATAL))
            return nil
        }
        return true
    }

    /// Takes the WQE at the consumer index into the window, checked and translated. A bad WQE is
    /// recorded as done with its error status; it completes in order and then fails the QP.
    func fetch(_ qp: QueuePair) {
        let sequence = qp.sqConsumer
        let wqe = qp.sq.slot(sequence)
        // SAFETY: the slot is 2^wqe_shift >= 64 bytes inside a checked ring page.
        let header = wqe.loadUnaligned(as: virtio_rdma_send_wqe.self)
        var w = InflightWork()
        w.wrID = UInt64(littleEndian: header.wr_id)
        w.opcode = header.opcode
        let flags = UInt32(UInt16(littleEndian: header.send_flags))
        w.signaled = qp.signalAll || flags & VIRTIO_RDMA_SEND_SIGNALED != 0
        w.solicited = flags & VIRTIO_RDMA_SEND_SOLICITED != 0
        w.fence = flags & VIRTIO_RDMA_SEND_FENCE != 0
        w.imm = UInt32(littleEndian: header.imm_data)
        w.remoteAddress = UInt64(littleEndian: header.remote_addr)
        w.rkey = UInt32(littleEndian: header.rkey)
        w.compareAdd = UInt64(littleEndian: header.compare_add)
        w.swap = UInt64(littleEndian: header.swap)
        w.remoteQPN = UInt32(littleEndian: header.remote_qpn)
        w.remoteQKey = UInt32(littleEndian: header.remote_qkey)
        w.status = checkAndTranslate(qp, &w, wqe: wqe, header: header, flags: flags, sequence: sequence)
        if w.status != UInt8(VIRTIO_RDMA_WC_SUCCESS) { w.phase = .done }
        if qp.type == .reliableConnected && w.phase != .done {
            w.packets = w.isReadOrAtomic ? 1 : max(1, (w.length + qp.attributes.mtuBytes - 1) / qp.attributes.mtuBytes)
            w.psn = qp.nextPSN
            qp.nextPSN = (qp.nextPSN &+ w.packets) & 0xff_ffff
        }
        qp.inflight[qp.slot(sequence)] = w
        qp.own(sequence)
        qp.sqConsumer &+= 1
        qp.sqDoorbell.setDeviceIndex(qp.sqConsumer)
    }

    /// Validates one WQE (opcode, SGE count, keys, access, lengths) and fills the slot's segments.
    private func checkAndTranslate(_ qp: QueuePair, _ w: inout InflightWork, wqe: UnsafeMutableRawPointer,
                                   header: virtio_rdma_send_wqe, flags: UInt32, sequence: UInt32) -> UInt8 {
        let opcode = Int32(w.opcode)
        let ud = qp.type.isDatagram
        switch opcode {
        case VIRTIO_RDMA_WR_SEND, VIRTIO_RDMA_WR_SEND_WITH_IMM:
            w.withImm = opcode == VIRTIO_RDMA_WR_SEND_WITH_IMM
        case VIRTIO_RDMA_WR_RDMA_WRITE, VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM:
            guard !ud else { return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR) }
            w.withImm = opcode == VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM
        case VIRTIO_RDMA_WR_RDMA_READ, VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP, VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD:
            guard !ud, flags & VIRTIO_RDMA_SEND_INLINE == 0 else { return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR) }
        default:
            return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR)
        }
        let segments = qp.segments(of: sequence)
        if flags & VIRTIO_RDMA_SEND_INLINE != 0 {
            let length = UInt32(littleEndian: header.inline_length)
            guard UInt32(littleEndian: header.num_sge) == 0, length <= qp.sqMaxInline,
                  Self.wqeHeaderSize + Int(length) <= 1 << Int(qp.sq.shift) else {
                return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR)
            }
            // Inline bytes are copied out: the slot may be reused once the consumer index moves.
            let buffer = qp.inline(of: sequence)
            buffer.copyMemory(from: wqe + Self.wqeHeaderSize, byteCount: Int(length))
            segments[0] = DataSegment(mr: nil, address: 0, length: length, inline: buffer)
            w.segmentCount = 1
            w.length = length
        } else {
            let count = UInt32(littleEndian: header.num_sge)
            guard count <= qp.sqMaxSGE else { return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR) }
            let localWrite = w.isReadOrAtomic
            var total: UInt64 = 0
            for i in 0..<Int(count) {
                // SAFETY: create checked 64 + 16 * max_sge <= 2^wqe_shift, and count <= max_sge.
                let sge = (wqe + Self.wqeHeaderSize + i * Self.sgeSize).loadUnaligned(as: virtio_rdma_sge.self)
                let address = UInt64(littleEndian: sge.addr)
                let length = UInt32(littleEndian: sge.length)
                let key = UInt32(littleEndian: sge.lkey)
                guard let mr = mrs.get(key), mr.lkey == key, mr.pd === qp.pd, mr.contains(address, UInt64(length)),
                      !localWrite || mr.access & VIRTIO_RDMA_ACCESS_LOCAL_WRITE != 0,
                      !mr.dma || mr.isGuestRAM(address, UInt64(length), memory: memory)
                else { return UInt8(VIRTIO_RDMA_WC_LOC_PROT_ERR) }
                segments[i] = DataSegment(mr: mr, address: address, length: length, inline: nil)
                total += UInt64(length)
            }
            guard total <= UInt64(Int32.max) else { return UInt8(VIRTIO_RDMA_WC_LOC_LEN_ERR) }
            w.segmentCount = Int32(count)
            w.length = UInt32(total)
        }
        if w.isReadOrAtomic && opcode != VIRTIO_RDMA_WR_RDMA_READ {
            guard w.length == 8 else { return UInt8(VIRTIO_RDMA_WC_LOC_LEN_ERR) }
        }
        if ud {
            guard w.remoteQPN <= 0xff_ffff, let ah = ahs.get(UInt32(littleEndian: header.ah)), ah.pd === qp.pd else {
                return UInt8(VIRTIO_RDMA_WC_LOC_QP_OP_ERR)
            }
            guard w.length <= 1 << (UInt32(activeMTU) + 7) else { return UInt8(VIRTIO_RDMA_WC_LOC_LEN_ERR) }
            w.av = ah.av
            w.ah = ah.handle
            let sgidIndex = Int(ah.av.sgid_index)
            if gids.indices.contains(sgidIndex), let gid = gids[sgidIndex] {
                w.sourceGID = gid
                w.sourceMAC = Self.packedMAC(gidMACs[sgidIndex])
            } else {
                w.sourceMAC = Self.packedMAC(configuration.mac)
            }
            if w.remoteQKey & 0x8000_0000 != 0 { w.remoteQKey = qp.attributes.qkey }
        }
        return UInt8(VIRTIO_RDMA_WC_SUCCESS)
    }

    var activeMTU: UInt8 { 3 }

    static func packedMAC(_ mac: [UInt8]) -> UInt64 {
        var packed: UInt64 = 0
        for (i, byte) in mac.prefix(6).enumerated() { packed |= UInt64(byte) << (8 * i) }
        return packed
    }

    /// Sends what the window holds from nextToSend on, within the fence and READ/atomic limits.
    private func transmit(_ qp: QueuePair, now: UInt64) -> Int {
        var sent = 0
        while qp.nextToSend != qp.sqConsumer && qp.resumeAt == 0 {
            let sequence = qp.nextToSend
            let w = qp.inflight[qp.slot(sequence)]
            if w.phase == .done {
                // A WQE that failed its checks ends the stream: nothing after it goes out.
                guard w.status == UInt8(VIRTIO_RDMA_WC_SUCCESS) else { break }
                qp.nextToSend &+= 1
                continue
            }
            if w.fence && qp.outstandingReadAtomic > 0 { break }
            if w.isReadOrAtomic && qp.outstandingReadAtomic >= max(1, Int(qp.attributes.maxReadAtomic)) { break }
            let destination: Engine?
            let qpn: UInt32
            if qp.type.isDatagram {
                destination = fabric.resolve(GID(bytes: w.av.dgid))
                qpn = w.remoteQPN
            } else {
                destination = routeOf(qp)
                qpn = qp.attributes.destQPN & 0xff_ffff
            }
            qp.inflight[qp.slot(sequence)].phase = .sent
            if w.isReadOrAtomic { qp.outstandingReadAtomic += 1 }
            qp.nextToSend &+= 1
            sent += 1
            let packet = Packet(kind: .request, requester: qp, slot: Int32(bitPattern: sequence), destinationQPN: qpn, psn: w.psn,
                                incarnation: qp.incarnation.load(ordering: .relaxed), memory: memory)
            if let destination {
                destination.deliver(packet)
            } else if qp.type.isDatagram {
                qp.inflight[qp.slot(sequence)].phase = .done  // a datagram to nowhere is lost, not failed
            }
            if qp.type == .reliableConnected && qp.ackDeadline == 0, let t = Timers.ackTimeoutNanoseconds(qp.attributes.timeout) {
                qp.ackDeadline = now + t
            }
        }
        return sent
    }

    /// The destination engine of an RC QP's path, cached until the fabric's routes change.
    private func routeOf(_ qp: QueuePair) -> Engine? {
        let generation = fabric.generation.load(ordering: .acquiring)
        if qp.routeGeneration != generation {
            qp.route = fabric.resolve(GID(bytes: qp.attributes.av.dgid))
            qp.routeGeneration = generation
        }
        return qp.route
    }

    /// No ACK in time: resend everything unacknowledged, or give up after retry_cnt attempts.
    private func ackTimedOut(_ qp: QueuePair, now: UInt64) -> Int {
        qp.ackDeadline = 0
        // Find the oldest WQE still waiting for an answer.
        var sequence = qp.oldest
        while sequence != qp.nextToSend && qp.inflight[qp.slot(sequence)].phase != .sent { sequence &+= 1 }
        guard sequence != qp.nextToSend else { return 0 }
        if qp.retriesLeft == 0 {
            qp.inflight[qp.slot(sequence)].phase = .done
            qp.inflight[qp.slot(sequence)].status = UInt8(VIRTIO_RDMA_WC_RETRY_EXC_ERR)
            retire(qp)
            return 1
        }
        qp.retriesLeft -= 1
        rewind(qp, to: sequence)
        return 1
    }

    /// Go-back-N: everything from `sequence` on that is not done is sent again.
    private func rewind(_ qp: QueuePair, to sequence: UInt32) {
        var s = qp.oldest
        var outstanding = 0
        while s != qp.sqConsumer {
            let i = qp.slot(s)
            if qp.inflight[i].phase == .sent && s &- qp.oldest >= sequence &- qp.oldest { qp.inflight[i].phase = .pending }
            if qp.inflight[i].phase == .sent && qp.inflight[i].isReadOrAtomic { outstanding += 1 }
            s &+= 1
        }
        qp.outstandingReadAtomic = outstanding
        qp.nextToSend = sequence
    }

    /// An answer from a responder (possibly this engine's own).
    func complete(_ packet: Packet, now: UInt64) {
        let qp = packet.requester
        guard qp.engine === self, qp.state != .reset, qp.state != .error, qpIsLive(qp),
              packet.incarnation == qp.incarnation.load(ordering: .relaxed) else { return }
        let sequence = UInt32(bitPattern: packet.slot)
        guard sequence &- qp.oldest < qp.windowCount else { return }  // already retired: a duplicate
        let i = qp.slot(sequence)
        guard qp.inflight[i].phase == .sent else { return }
        if qp.inflight[i].isReadOrAtomic { qp.outstandingReadAtomic -= 1 }
        switch (packet.kind, packet.syndrome) {
        case (.acknowledge, _):
            qp.inflight[i].phase = .done
            qp.retriesLeft = qp.attributes.retryCount
            qp.rnrRetriesLeft = qp.attributes.rnrRetry
        case (_, .receiverNotReady):
            if qp.rnrRetriesLeft == 0 {
                qp.inflight[i].phase = .done
                qp.inflight[i].status = UInt8(VIRTIO_RDMA_WC_RNR_RETRY_EXC_ERR)
            } else {
                if qp.attributes.rnrRetry != 7 { qp.rnrRetriesLeft -= 1 }
                qp.inflight[i].phase = .sent
                rewind(qp, to: sequence)
                qp.resumeAt = now + Timers.rnrNanoseconds(UInt8(truncatingIfNeeded: packet.psn >> 24))
            }
        case (_, let syndrome):
            qp.inflight[i].phase = .done
            qp.inflight[i].status = switch syndrome {
            case .remoteAccess: UInt8(VIRTIO_RDMA_WC_REM_ACCESS_ERR)
            case .invalidRequest: UInt8(VIRTIO_RDMA_WC_REM_INV_REQ_ERR)
            default: UInt8(VIRTIO_RDMA_WC_REM_OP_ERR)
            }
        }
        qp.ackDeadline = 0
        retire(qp)
        // Restart the ACK timer if something is still waiting for an answer.
        if qp.state == .readyToSend || qp.state == .sendQueueDrain, qp.type == .reliableConnected,
           let t = Timers.ackTimeoutNanoseconds(qp.attributes.timeout) {
            var s = qp.oldest
            while s != qp.nextToSend {
                if qp.inflight[qp.slot(s)].phase == .sent { qp.ackDeadline = now + t; break }
                s &+= 1
            }
        }
    }

    /// The QP is still in its table (not destroyed).
    @inline(__always) func qpIsLive(_ qp: QueuePair) -> Bool { qps.get(qp.qpn) === qp }

    /// Writes completions for finished WQEs in order; an error completion fails the QP.
    func retire(_ qp: QueuePair) {
        while qp.oldest != qp.sqConsumer {
            let i = qp.slot(qp.oldest)
            let w = qp.inflight[i]
            guard w.phase == .done else { return }
            let failed = w.status != UInt8(VIRTIO_RDMA_WC_SUCCESS)
            if w.signaled || failed {
                var cqe = virtio_rdma_cqe()
                cqe.wr_id = w.wrID.littleEndian
                cqe.status = w.status
                cqe.opcode = completionOpcode(w.opcode)
                cqe.qp_num = qp.qpn.littleEndian
                if w.opcode == UInt8(VIRTIO_RDMA_WR_RDMA_READ) { cqe.byte_len = w.length.littleEndian }
                if w.isReadOrAtomic && w.opcode != UInt8(VIRTIO_RDMA_WR_RDMA_READ) { cqe.byte_len = UInt32(8).littleEndian }
                writeCompletion(qp.sendCQ, &cqe, solicited: false)
            }
            qp.disown(qp.oldest)
            qp.oldest &+= 1
            if qp.nextToSend &- qp.oldest > qp.sqConsumer &- qp.oldest { qp.nextToSend = qp.oldest }
            if failed {
                moveToError(qp)
                return
            }
        }
    }

    func completionOpcode(_ wr: UInt8) -> UInt8 {
        switch Int32(wr) {
        case VIRTIO_RDMA_WR_RDMA_WRITE, VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM: UInt8(VIRTIO_RDMA_WC_RDMA_WRITE)
        case VIRTIO_RDMA_WR_RDMA_READ: UInt8(VIRTIO_RDMA_WC_RDMA_READ)
        case VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP: UInt8(VIRTIO_RDMA_WC_COMP_SWAP)
        case VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD: UInt8(VIRTIO_RDMA_WC_FETCH_ADD)
        default: UInt8(VIRTIO_RDMA_WC_SEND)
        }
    }

    /// The QP enters ERR: everything outstanding and everything posted later is flushed.
    func moveToError(_ qp: QueuePair) {
        guard qp.state != .error else { return }
        qp.enter(.error)
        if host != nil { hostEnterError(qp) }
        qp.resumeAt = 0
        qp.ackDeadline = 0
        if qp.srq != nil { postEvent(Int32(VIRTIO_RDMA_EV_QP_LAST_WQE_REACHED), handle: qp.qpn) }
        _ = flushSendQueue(qp)
        _ = flushReceiveQueue(qp)
    }

    /// A guest error that breaks the QP: ERR plus an affiliated async event.
    func fatal(_ qp: QueuePair, event: Int32) {
        guard qp.state != .error else { return }
        let detail: Int32 = switch event {
        case VIRTIO_RDMA_EV_QP_ACCESS_ERR: VIRTIO_RDMA_WC_REM_ACCESS_ERR
        case VIRTIO_RDMA_EV_QP_REQ_ERR: VIRTIO_RDMA_WC_REM_INV_REQ_ERR
        default: VIRTIO_RDMA_WC_LOC_QP_OP_ERR
        }
        postEvent(event, handle: qp.qpn, detail: UInt32(detail))
        moveToError(qp)
    }

    /// WR_FLUSH_ERR for the window and for every WQE posted since (at most one ring's worth per pass).
    func flushSendQueue(_ qp: QueuePair) -> Int {
        var flushed = 0
        while qp.oldest != qp.sqConsumer {
            let w = qp.inflight[qp.slot(qp.oldest)]
            flushCompletion(qp.sendCQ, qp: qp, wrID: w.wrID, opcode: completionOpcode(w.opcode))
            qp.disown(qp.oldest)
            qp.oldest &+= 1
            flushed += 1
        }
        qp.nextToSend = qp.oldest
        qp.outstandingReadAtomic = 0
        // An impossible producer index (more than a ring ahead) takes nothing.
        let posted = qp.sqDoorbell.driverIndex &- qp.sqConsumer
        guard posted <= qp.sq.depth else { return flushed }
        if posted > 0 { stopKicks(qp) }
        for _ in 0..<posted {
            // SAFETY: a slot of a checked ring.
            let header = qp.sq.slot(qp.sqConsumer).loadUnaligned(as: virtio_rdma_send_wqe.self)
            flushCompletion(qp.sendCQ, qp: qp, wrID: UInt64(littleEndian: header.wr_id), opcode: completionOpcode(header.opcode))
            qp.sqConsumer &+= 1
            flushed += 1
        }
        qp.oldest = qp.sqConsumer
        qp.nextToSend = qp.sqConsumer
        if flushed > 0 { qp.sqDoorbell.setDeviceIndex(qp.sqConsumer) }
        return flushed
    }

    func flushReceiveQueue(_ qp: QueuePair) -> Int {
        // WQEs the NIC holds (verbs provider) complete flushed first: receives complete in order.
        guard let rq = qp.ownReceive, rq.hostHeld == 0 else { return 0 }
        let posted = rq.doorbell.driverIndex &- rq.consumer
        guard posted > 0, posted <= rq.ring.depth else { return 0 }
        stopKicks(qp)
        var flushed = 0
        for _ in 0..<posted {
            // SAFETY: a slot of a checked ring (>= 16 bytes).
            let wrID = UInt64(littleEndian: rq.ring.slot(rq.consumer).loadUnaligned(as: UInt64.self))
            flushCompletion(qp.recvCQ, qp: qp, wrID: wrID, opcode: UInt8(VIRTIO_RDMA_WC_RECV))
            rq.consumer &+= 1
            flushed += 1
        }
        rq.doorbell.setDeviceIndex(rq.consumer)
        return flushed
    }

    private func flushCompletion(_ cq: CompletionQueue, qp: QueuePair, wrID: UInt64, opcode: UInt8) {
        var cqe = virtio_rdma_cqe()
        cqe.wr_id = wrID.littleEndian
        cqe.status = UInt8(VIRTIO_RDMA_WC_WR_FLUSH_ERR)
        cqe.opcode = opcode
        cqe.qp_num = qp.qpn.littleEndian
        writeCompletion(cq, &cqe, solicited: false)
    }
}
