// SPDX-License-Identifier: Apache-2.0
// Framing over a Unix stream socket: a 12-byte header (descriptors ride with its first bytes, as
// QEMU sends them), then exactly `size` payload bytes. Used by both ends: the daemon and the
// in-process front-end.
import CLinuxShims
import Glibc
import LinuxSystem

public final class VhostUserConnection {
    /// The most descriptors one message may carry (SET_MEM_TABLE's 8 regions). More is a protocol
    /// error; the shim still receives up to 32 so the excess is closed, not leaked.
    public static let maxDescriptors = 8

    public let socket: OwnedFileDescriptor

    public init(socket: OwnedFileDescriptor) { self.socket = socket }

    /// Receives one whole message. Returns nil when the peer closed the connection between messages.
    /// Header syntax is not checked here: the caller decides what a bad header means for it.
    public func receive() throws(VhostUserError) -> ReceivedMessage? {
        var headerBytes = [UInt8](repeating: 0, count: MessageHeader.size)
        var raw = [Int32](repeating: -1, count: 32)
        var count: Int32 = 0
        var truncated: Int32 = 0
        let n = headerBytes.withUnsafeMutableBytes { buf in
            CLinuxShims_recv_with_fds(socket.rawValue, buf.baseAddress, buf.count, &raw, Int32(raw.count), &count, &truncated)
        }
        if n < 0 { throw .system(.last("recvmsg")) }
        let descriptors = raw.prefix(Int(count)).map { OwnedFileDescriptor(adopting: $0) }
        if n == 0 { return nil }
        if truncated != 0 { throw .descriptorsTruncated }
        if n < MessageHeader.size {
            try readRest(&headerBytes, from: n)
        }
        let header = MessageHeader(decoding: headerBytes)
        guard header.size <= MessageHeader.maxPayloadSize else { throw .payloadTooLarge(header.size) }
        var payload = [UInt8](repeating: 0, count: Int(header.size))
        if header.size > 0 { try readRest(&payload, from: 0) }
        guard descriptors.count <= Self.maxDescriptors else {
            throw .tooManyDescriptors(request: header.request, count: descriptors.count)
        }
        return ReceivedMessage(header: header, payload: payload, descriptors: descriptors)
    }

    private func readRest(_ bytes: inout [UInt8], from start: Int) throws(VhostUserError) {
        var done = start
        let total = bytes.count
        while done < total {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(socket.rawValue, $0.baseAddress! + done, total - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(.last("read"))
            }
            if n == 0 { throw .truncatedMessage(expected: total, received: done) }
            done += n
        }
    }

    /// Sends header and payload in one write, with `descriptors` attached. The numbers are raw
    /// (a hostile test may send any); the caller keeps their owners alive until this returns.
    public func send(request: UInt32, flags: UInt32, payload: [UInt8], descriptors: [Int32] = []) throws(VhostUserError) {
        let bytes = MessageHeader(request: request, flags: flags, size: UInt32(payload.count)).encoded + payload
        var sent = 0
        while sent < bytes.count {
            let fds = sent == 0 ? descriptors : []
            let n = bytes.withUnsafeBytes { buf in
                fds.withUnsafeBufferPointer { f in
                    CLinuxShims_send_with_fds(socket.rawValue, buf.baseAddress! + sent, buf.count - sent, f.baseAddress, Int32(f.count))
                }
            }
            if n < 0 { throw .system(.last("sendmsg")) }
            sent += n
        }
    }

    /// Sends a reply to `request`: flags exactly REPLY|VERSION, as QEMU insists.
    public func reply(to request: UInt32, payload: [UInt8], descriptors: [Int32] = []) throws(VhostUserError) {
        try send(request: request, flags: MessageHeader.replyFlag | MessageHeader.version, payload: payload, descriptors: descriptors)
    }
}
