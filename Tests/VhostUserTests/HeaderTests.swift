// SPDX-License-Identifier: Apache-2.0
// The 12-byte header: request syntax as rust-vmm applies it, reply syntax as QEMU applies it.
import Testing
import VhostUser

@Suite("Message header")
struct HeaderTests {
    @Test("a version-1 request header, with or without NEED_REPLY, is accepted", arguments: [UInt32(0x1), 0x9])
    func validRequest(flags: UInt32) throws {
        try MessageHeader(request: 1, flags: flags, size: 0).validateAsRequest()
        try MessageHeader(request: 5, flags: flags, size: MessageHeader.maxPayloadSize).validateAsRequest()
    }

    @Test("a request header with version 0, 2 or 3 is rejected", arguments: [UInt32(0), 2, 3, 0xA])
    func badVersion(flags: UInt32) {
        #expect(throws: VhostUserError.badVersion(flags)) {
            try MessageHeader(request: 1, flags: flags, size: 0).validateAsRequest()
        }
    }

    @Test("a request carrying REPLY or any reserved flag bit is rejected",
          arguments: [2] + Array(4..<32))
    func reservedBit(bit: Int) {
        let flags = MessageHeader.version | UInt32(1) << bit
        #expect(throws: VhostUserError.reservedFlags(flags)) {
            try MessageHeader(request: 1, flags: flags, size: 0).validateAsRequest()
        }
    }

    @Test("a payload size above 4096 is rejected", arguments: [MessageHeader.maxPayloadSize + 1, UInt32.max])
    func tooLarge(size: UInt32) {
        #expect(throws: VhostUserError.payloadTooLarge(size)) {
            try MessageHeader(request: 5, flags: 1, size: size).validateAsRequest()
        }
    }

    @Test("encoding then decoding a header gives it back, little-endian on the wire")
    func roundTrip() {
        let header = MessageHeader(request: 0x0102_0304, flags: 0x9, size: 0xA0B0_C0D0)
        #expect(header.encoded == [4, 3, 2, 1, 9, 0, 0, 0, 0xD0, 0xC0, 0xB0, 0xA0])
        #expect(MessageHeader(decoding: header.encoded) == header)
        #expect(header.needsReply)
        #expect(!MessageHeader(request: 1, flags: 1, size: 0).needsReply)
    }

    @Test("a reply is accepted only with flags exactly 0x5", arguments: [UInt32(0x5), 0x1, 0x4, 0x6, 0x7, 0xD, 0x15])
    func replyFlags(flags: UInt32) {
        let header = MessageHeader(request: 11, flags: flags, size: 8)
        if flags == 0x5 {
            #expect(throws: Never.self) { try header.validateAsReply(to: 11) }
        } else {
            #expect(throws: VhostUserError.badVersion(flags)) { try header.validateAsReply(to: 11) }
        }
    }

    @Test("a reply to another request is rejected")
    func replyToOtherRequest() {
        #expect(throws: VhostUserError.unexpectedReply(1)) {
            try MessageHeader(request: 1, flags: 0x5, size: 8).validateAsReply(to: 15)
        }
    }

    @Test("a reply larger than 4096 bytes is rejected")
    func replyTooLarge() {
        #expect(throws: VhostUserError.payloadTooLarge(4097)) {
            try MessageHeader(request: 24, flags: 0x5, size: 4097).validateAsReply(to: 24)
        }
    }
}
