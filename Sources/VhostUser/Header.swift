// SPDX-License-Identifier: Apache-2.0
// The 12-byte message header and its syntax rules (vhost-user spec, "Message Specification").

public struct MessageHeader: Equatable, Sendable {
    public static let size = 12
    /// Bits 0-1: protocol version, always 1.
    public static let version: UInt32 = 0x1
    public static let replyFlag: UInt32 = 0x4
    public static let needReplyFlag: UInt32 = 0x8
    /// The largest payload any request of this protocol carries is a 256-byte config access plus
    /// its 12-byte header; rust-vmm uses 4096 too. Anything larger is garbage, not a big message.
    public static let maxPayloadSize: UInt32 = 4096

    public var request: UInt32
    public var flags: UInt32
    public var size: UInt32

    public init(request: UInt32, flags: UInt32, size: UInt32) {
        self.request = request
        self.flags = flags
        self.size = size
    }

    public var needsReply: Bool { flags & Self.needReplyFlag != 0 }

    public init(decoding bytes: [UInt8]) {
        var r = ByteReader(bytes)
        request = r.read()
        flags = r.read()
        size = r.read()
    }

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.write(request)
        w.write(flags)
        w.write(size)
        return w.bytes
    }

    /// Syntax check of a request header from the front-end: version 1, only NEED_REPLY besides the
    /// version bits, payload within bounds. A failure means the stream cannot be trusted any more.
    public func validateAsRequest() throws(VhostUserError) {
        guard flags & 0x3 == Self.version else { throw .badVersion(flags) }
        guard flags & ~(0x3 | Self.needReplyFlag) == 0 else { throw .reservedFlags(flags) }
        guard size <= Self.maxPayloadSize else { throw .payloadTooLarge(size) }
    }

    /// Syntax check of a reply, as QEMU applies it: flags exactly REPLY|VERSION.
    public func validateAsReply(to request: UInt32) throws(VhostUserError) {
        guard flags == Self.replyFlag | Self.version else { throw .badVersion(flags) }
        guard self.request == request else { throw .unexpectedReply(self.request) }
        guard size <= Self.maxPayloadSize else { throw .payloadTooLarge(size) }
    }
}
