// SPDX-License-Identifier: Apache-2.0
// Framing over a real socket pair: descriptors ride with the header, short reads are reassembled,
// the peer going away is told apart from a message cut short.
import CLinuxShims
import LinuxSystem
import Testing
import VhostUser

@Suite("Connection framing")
struct ConnectionTests {
    let front: VhostUserConnection
    let back: VhostUserConnection

    init() throws {
        let (a, b) = try UnixSocket.pair()
        front = VhostUserConnection(socket: a)
        back = VhostUserConnection(socket: b)
    }

    @Test("three attached descriptors arrive as three new descriptors for the same files")
    func descriptorsTravel() throws {
        let events = try (0..<3).map { _ in try EventFD() }
        try front.send(request: FrontendRequest.setMemTable.rawValue, flags: 1, payload: [1, 2, 3],
                       descriptors: events.map(\.descriptor.rawValue))
        let m = try #require(try back.receive())
        #expect(m.header == MessageHeader(request: 5, flags: 1, size: 3))
        #expect(m.payload == [1, 2, 3])
        try #require(m.descriptors.count == 3)
        for (original, received) in zip(events, m.descriptors) {
            #expect(received.rawValue != original.descriptor.rawValue)
            EventFD(received).signal()
            #expect(original.drain() == 1, "the received copy refers to another file")
        }
    }

    @Test("a header split across two writes is reassembled")
    func splitHeader() throws {
        let event = try EventFD()
        let bytes = MessageHeader(request: 2, flags: 1, size: 8).encoded + encodeU64(0xABCD)
        // The kernel ends a read at a chunk that carries descriptors, so the first recvmsg sees
        // exactly these 5 bytes and the connection must read the rest of the header itself.
        var fd = event.descriptor.rawValue
        #expect(bytes.withUnsafeBytes { CLinuxShims_send_with_fds(front.socket.rawValue, $0.baseAddress, 5, &fd, 1) } == 5)
        try bytes.dropFirst(5).withUnsafeBytes { try front.socket.writeAll($0) }
        let m = try #require(try back.receive())
        #expect(m.header == MessageHeader(request: 2, flags: 1, size: 8))
        #expect(m.payload == encodeU64(0xABCD))
        #expect(m.descriptors.count == 1)
    }

    @Test("the peer closing in the middle of a payload is a truncated message")
    func truncatedPayload() throws {
        let bytes = MessageHeader(request: 9, flags: 1, size: 40).encoded + Array(repeating: 7, count: 10)
        try bytes.withUnsafeBytes { try front.socket.writeAll($0) }
        UnixSocket.shutdown(front.socket)
        #expect(throws: VhostUserError.truncatedMessage(expected: 40, received: 10)) { try back.receive() }
    }

    @Test("the peer closing in the middle of a header is a truncated message")
    func truncatedHeader() throws {
        try [UInt8](repeating: 1, count: 7).withUnsafeBytes { try front.socket.writeAll($0) }
        UnixSocket.shutdown(front.socket)
        #expect(throws: VhostUserError.truncatedMessage(expected: 12, received: 7)) { try back.receive() }
    }

    @Test("the peer closing between messages ends the stream without an error")
    func closeBetweenMessages() throws {
        try front.send(request: 1, flags: 1, payload: [])
        UnixSocket.shutdown(front.socket)
        #expect(try back.receive()?.header.request == 1)
        #expect(try back.receive() == nil)
    }

    @Test("a payload size above 4096 is refused before reading it")
    func oversizedPayload() throws {
        try MessageHeader(request: 5, flags: 1, size: 5000).encoded.withUnsafeBytes { try front.socket.writeAll($0) }
        #expect(throws: VhostUserError.payloadTooLarge(5000)) { try back.receive() }
    }

    @Test("nine descriptors on one message are refused, and all nine are closed")
    func tooManyDescriptors() throws {
        try expectNoDescriptorLeak {
            let events = try (0..<9).map { _ in try EventFD() }
            try front.send(request: FrontendRequest.setMemTable.rawValue, flags: 1, payload: [0],
                           descriptors: events.map(\.descriptor.rawValue))
            do {
                _ = try back.receive()
                Issue.record("nine descriptors were accepted")
            } catch {
                #expect(error as? VhostUserError == .tooManyDescriptors(request: 5, count: 9))
            }
        }
    }

    @Test("32 descriptors, as many as the receive buffer takes, are refused and all closed")
    func fullDescriptorBuffer() throws {
        try expectNoDescriptorLeak {
            let event = try EventFD()
            try front.send(request: 5, flags: 1, payload: [0], descriptors: Array(repeating: event.descriptor.rawValue, count: 32))
            do {
                _ = try back.receive()
                Issue.record("32 descriptors were accepted")
            } catch {
                #expect((error as? VhostUserError)?.kind == "tooManyDescriptors")
            }
        }
    }

    @Test("reply(to:) sends flags exactly REPLY|VERSION for the same request")
    func reply() throws {
        try back.reply(to: FrontendRequest.getFeatures.rawValue, payload: encodeU64(1 << 30))
        let m = try #require(try front.receive())
        #expect(m.header.flags == 0x5)
        try m.header.validateAsReply(to: FrontendRequest.getFeatures.rawValue)
        #expect(m.payload == encodeU64(1 << 30))
    }

    @Test("consecutive messages stay in step, descriptors with the message they were sent with")
    func consecutive() throws {
        let event = try EventFD()
        try front.send(request: 3, flags: 1, payload: [])
        try front.send(request: 13, flags: 1, payload: encodeU64(0), descriptors: [event.descriptor.rawValue])
        try front.send(request: 24, flags: 9, payload: Array(repeating: 0, count: 16))
        let a = try #require(try back.receive()), b = try #require(try back.receive()), c = try #require(try back.receive())
        #expect([a.header.request, b.header.request, c.header.request] == [3, 13, 24])
        #expect([a.descriptors.count, b.descriptors.count, c.descriptors.count] == [0, 1, 0])
        #expect(c.payload.count == 16)
    }
}
