// SPDX-License-Identifier: Apache-2.0
// Protocol errors: the front-end broke the wire format. Every one of these ends the connection
// (the stream may be out of step, or the peer is not a front-end we can trust to continue).
import LinuxSystem

public enum VhostUserError: Error, Equatable, CustomStringConvertible {
    case badVersion(UInt32)
    case reservedFlags(UInt32)
    case payloadTooLarge(UInt32)
    case unexpectedReply(UInt32)
    /// The peer closed the socket in the middle of a message.
    case truncatedMessage(expected: Int, received: Int)
    /// The kernel dropped descriptors (more than we accept, or our buffer was too small).
    case descriptorsTruncated
    case wrongPayloadSize(FrontendRequest, expected: String, actual: UInt32)
    case wrongDescriptorCount(FrontendRequest, expected: String, actual: Int)
    /// More descriptors than any message may carry, whatever the request.
    case tooManyDescriptors(request: UInt32, count: Int)
    case invalidField(FrontendRequest, String)
    case system(SystemError)

    public var description: String {
        switch self {
        case .badVersion(let f): "bad version/flags 0x\(String(f, radix: 16))"
        case .reservedFlags(let f): "reserved flag bits set in 0x\(String(f, radix: 16))"
        case .payloadTooLarge(let s): "payload of \(s) bytes exceeds \(MessageHeader.maxPayloadSize)"
        case .unexpectedReply(let r): "reply to request \(r) was not expected"
        case .truncatedMessage(let e, let r): "connection closed after \(r) of \(e) bytes"
        case .descriptorsTruncated: "file descriptors were truncated in transit"
        case .wrongPayloadSize(let req, let e, let a): "\(req.specName): payload of \(a) bytes, expected \(e)"
        case .wrongDescriptorCount(let req, let e, let a): "\(req.specName): \(a) file descriptors, expected \(e)"
        case .tooManyDescriptors(let req, let n): "request \(req): \(n) file descriptors, expected at most \(VhostUserConnection.maxDescriptors)"
        case .invalidField(let req, let what): "\(req.specName): \(what)"
        case .system(let e): "\(e)"
        }
    }
}
