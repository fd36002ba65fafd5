// SPDX-License-Identifier: Apache-2.0
// Pure values of the device: the QP transition table, identifier minting, timers.
import CVRDMAABI
import Testing
@testable import VRDMADevice

@Suite("QP state machine and identifiers")
struct StateMachineTests {
    typealias T = QPTransitions

    @Test("the legal RC path needs exactly the IBTA attributes")
    func rcPath() throws {
        let initRule = try #require(T.rule(from: .reset, to: .initialized, type: .reliableConnected))
        #expect(initRule.required == T.pkey | T.port | T.access)
        let rtr = try #require(T.rule(from: .initialized, to: .readyToReceive, type: .reliableConnected))
        #expect(rtr.required == T.av | T.mtu | T.destQPN | T.rqPSN | T.maxDestReadAtomic | T.minRNRTimer)
        let rts = try #require(T.rule(from: .readyToReceive, to: .readyToSend, type: .reliableConnected))
        #expect(rts.required == T.sqPSN | T.timeout | T.retry | T.rnrRetry | T.maxReadAtomic)
        let udInit = try #require(T.rule(from: .reset, to: .initialized, type: .unreliableDatagram))
        #expect(udInit.required == T.pkey | T.port | T.qkey)
        #expect(T.rule(from: .initialized, to: .readyToReceive, type: .unreliableDatagram)?.required == 0)
    }

    @Test("every state may go to RESET and ERR; skipping states is illegal")
    func table() {
        for from in QPState.allCases {
            for type in [QPType.reliableConnected, .unreliableDatagram] {
                #expect(T.rule(from: from, to: .reset, type: type) != nil)
                #expect(T.rule(from: from, to: .error, type: type) != nil)
            }
        }
        #expect(T.rule(from: .reset, to: .readyToSend, type: .reliableConnected) == nil)
        #expect(T.rule(from: .reset, to: .readyToReceive, type: .reliableConnected) == nil)
        #expect(T.rule(from: .initialized, to: .readyToSend, type: .reliableConnected) == nil)
        #expect(T.rule(from: .error, to: .readyToSend, type: .reliableConnected) == nil)
        #expect(T.rule(from: .error, to: .initialized, type: .reliableConnected) == nil)
        #expect(T.rule(from: .readyToSend, to: .readyToReceive, type: .reliableConnected) == nil)
        // SQE exists for UD only.
        #expect(T.rule(from: .sendQueueError, to: .readyToSend, type: .reliableConnected) == nil)
        #expect(T.rule(from: .sendQueueError, to: .readyToSend, type: .unreliableDatagram) != nil)
        #expect(QPState.allCases.map(\.description) == ["RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"])
    }

    @Test("handles are minted, never reused while live, and quota-bounded")
    func handles() throws {
        final class Box {}
        var table = HandleTable<Box>(name: "thing", limit: 3, first: 2, mask: 5)
        var ids: [UInt32] = []
        for _ in 0..<3 {
            let id = try table.reserve()
            table.insert(id, Box())
            ids.append(id)
        }
        #expect(ids == [2, 3, 4])
        #expect(throws: CommandError.self) { try table.reserve() }
        table.remove(3)
        // The counter moves on before coming back to a freed id.
        let next = try table.reserve()
        #expect(next == 5)
        table.insert(next, Box())
        table.remove(2)
        #expect(try table.reserve() == 2)
        #expect(table.get(99) == nil)
        #expect(throws: CommandError.self) { try table.lookup(99) }
    }

    @Test("timers follow the IB encodings")
    func timers() {
        #expect(Timers.rnrNanoseconds(0) == 655_360_000)
        #expect(Timers.rnrNanoseconds(1) == 10_000)
        #expect(Timers.rnrNanoseconds(31) == 491_520_000)
        #expect(Timers.ackTimeoutNanoseconds(0) == nil)
        #expect(Timers.ackTimeoutNanoseconds(8) == 4096 << 8)
    }

    @Test("GIDs read the ABI's network-order bytes")
    func gids() {
        let gid = GID.linkLocal(guid: 0x0102_0304_0506_0708)
        #expect(gid.bytes == [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        var raw = virtio_rdma_av()
        withUnsafeMutableBytes(of: &raw.dgid) { $0.copyBytes(from: gid.bytes) }
        #expect(GID(bytes: raw.dgid) == gid)
        #expect(gid.description == "fe80:0:0:0:102:304:506:708")
    }
}
