// SPDX-License-Identifier: Apache-2.0
// RC SEND and RECV: ping-pong with and without immediate, sends in flight completing in order,
// gather/scatter, inline and zero-length sends.
import VRDMATestSupport

let messageScenarios: [Scenario] = [
    Scenario("RC ping-pong: SEND and RECV both ways, with and without immediate, 200 round trips") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        let size = 1500  // more than the 1024-byte path MTU: two packets
        for i in 0..<200 {
            let (tx, rx) = i % 2 == 0 ? (a, b) : (b, a)
            let withImm = (i / 2) % 2 == 1
            let data = pattern(size, seed: UInt8(truncatingIfNeeded: i))
            try rx.postRecv(wrId: UInt64(10_000 + i), offset: 8192, length: 4096)
            tx.mr.write(data, at: 0)
            let imm = withImm ? UInt32(0xc0de_0000) | UInt32(i) : 0
            try tx.send(wrId: UInt64(i), length: size, opcode: withImm ? .sendWithImm : .send, imm: imm)
            let r = try rx.recvCQ.waitOne()
            try check.require(r.status == .success, "round \(i): \(r)")
            check.expectWC(r, wrId: UInt64(10_000 + i), status: .success, opcode: .recv, qpn: rx.qp.qpn, byteLen: UInt32(size))
            check.expect(r.flags.contains(.withImm) == withImm, "round \(i): WITH_IMM flag wrong: \(r)")
            if withImm { check.expectEqual(r.imm, imm, "round \(i): imm_data") }
            check.expectWC(try tx.sendCQ.waitOne(), wrId: UInt64(i), status: .success, opcode: .send, qpn: tx.qp.qpn)
            try check.require(rx.mr.read(size, at: 8192) == data, "round \(i): payload differs")
        }
    },

    Scenario("RC: 48 sends in flight complete in post order on both sides") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        let n = 48
        for i in 0..<n { try b.postRecv(wrId: UInt64(500 + i), offset: i * 1024, length: 1024) }
        for i in 0..<n { a.mr.write(pattern(700, seed: UInt8(i)), at: i * 1024) }
        for i in 0..<n { try a.send(wrId: UInt64(i), offset: i * 1024, length: 700) }
        let sends = try a.sendCQ.wait(for: n)
        let recvs = try b.recvCQ.wait(for: n)
        check.expectEqual(sends.map(\.wrId), (0..<n).map { UInt64($0) }, "send completions")
        check.expectEqual(recvs.map(\.wrId), (0..<n).map { UInt64(500 + $0) }, "receive completions")
        check.expect(sends.allSatisfy { $0.status == .success }, "a send failed: \(sends)")
        check.expect(recvs.allSatisfy { $0.status == .success && $0.byteLen == 700 }, "a receive failed: \(recvs)")
        for i in 0..<n { check.expect(b.mr.read(700, at: i * 1024) == pattern(700, seed: UInt8(i)), "message \(i) differs") }
    },

    Scenario("RC: gather from three SGEs into two, inline sends, a zero-length send") { h in
        let check = h.checks
        let (a, b) = try h.connectedPair()
        let parts = [pattern(100, seed: 1), pattern(300, seed: 2), pattern(200, seed: 3)]
        a.mr.write(parts[0], at: 0)
        a.mr.write(parts[1], at: 5000)
        a.mr.write(parts[2], at: 9000)
        try b.qp.postRecv(RecvWR(wrId: 1, sges: [b.mr.sge(offset: 0, length: 256), b.mr.sge(offset: 4096, length: 1024)]))
        try a.qp.postSend(SendWR(wrId: 2, opcode: .send, sges: [a.mr.sge(offset: 0, length: 100), a.mr.sge(offset: 5000, length: 300),
                                                               a.mr.sge(offset: 9000, length: 200)]))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 2, status: .success, opcode: .send)
        check.expectWC(try b.recvCQ.waitOne(), wrId: 1, status: .success, opcode: .recv, byteLen: 600)
        let all = parts[0] + parts[1] + parts[2]
        check.expect(b.mr.read(256, at: 0) == Array(all[0..<256]), "first receive SGE differs")
        check.expect(b.mr.read(344, at: 4096) == Array(all[256...]), "second receive SGE differs")

        // Inline: the data travels in the WQE; the source buffer is not read (there is none).
        let inline = pattern(60, seed: 9)
        try b.postRecv(wrId: 3, offset: 16384, length: 128)
        try a.qp.postSend(SendWR(wrId: 4, opcode: .send, flags: [.signaled, .inline], inlineData: inline))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 4, status: .success, opcode: .send)
        check.expectWC(try b.recvCQ.waitOne(), wrId: 3, status: .success, opcode: .recv, byteLen: 60)
        check.expect(b.mr.read(60, at: 16384) == inline, "inline payload differs")
        // A zero-length send consumes a receive and reports 0 bytes. UD-only WQE fields on an RC
        // send are ignored: the receive CQE's src_qp stays 0 ("fields that do not apply are zero").
        try b.postRecv(wrId: 5, offset: 0, length: 64)
        try a.qp.postSend(SendWR(wrId: 6, opcode: .send, ah: 77, remoteQPN: 0x1234, remoteQKey: 9))
        check.expectWC(try a.sendCQ.waitOne(), wrId: 6, status: .success, opcode: .send)
        let zero = try b.recvCQ.waitOne()
        check.expectWC(zero, wrId: 5, status: .success, opcode: .recv, byteLen: 0)
        check.expect(zero.srcQP == 0, "an RC receive CQE carries the sender's WQE remote_qpn: \(zero)")
    },
]
