// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the VhostUser suites: real descriptors, messages built from parts, and a leak
// check that tolerates other suites opening descriptors in parallel.
import LinuxSystem
import Testing
import VhostUser

/// `count` fresh eventfds, each wrapped in its owner, as if they had arrived over the socket.
func eventDescriptors(_ count: Int) throws -> [OwnedFileDescriptor] {
    try (0..<count).map { _ in try EventFD().descriptor }
}

func message(_ request: FrontendRequest, _ payload: [UInt8] = [], descriptors: [OwnedFileDescriptor] = [],
             flags: UInt32 = MessageHeader.version) -> ReceivedMessage {
    ReceivedMessage(header: MessageHeader(request: request.rawValue, flags: flags, size: UInt32(payload.count)),
                    payload: payload, descriptors: descriptors)
}

/// The error `decode` throws, or nil when it accepts the message. The message is consumed here, so
/// every descriptor it carried is released by the time this returns.
func decodeError(_ m: consuming ReceivedMessage) -> VhostUserError? {
    do {
        _ = try FrontendMessage.decode(m)
        return nil
    } catch {
        return error
    }
}

extension VhostUserError {
    /// The case name alone: tests assert which rule fired, not the wording of its details.
    var kind: String {
        switch self {
        case .badVersion: "badVersion"
        case .reservedFlags: "reservedFlags"
        case .payloadTooLarge: "payloadTooLarge"
        case .unexpectedReply: "unexpectedReply"
        case .truncatedMessage: "truncatedMessage"
        case .descriptorsTruncated: "descriptorsTruncated"
        case .wrongPayloadSize: "wrongPayloadSize"
        case .wrongDescriptorCount: "wrongDescriptorCount"
        case .tooManyDescriptors: "tooManyDescriptors"
        case .invalidField: "invalidField"
        case .system: "system"
        }
    }
}

/// Runs `body` and checks that the process holds as many descriptors afterwards as before. Other
/// suites open and close descriptors concurrently, so a mismatch is retried: a real leak shows up
/// on every attempt, background noise does not.
func expectNoDescriptorLeak(attempts: Int = 8, sourceLocation: SourceLocation = #_sourceLocation,
                            _ body: () throws -> Void) rethrows {
    var deltas: [Int] = []
    for _ in 0..<attempts {
        let before = openFileDescriptorCount()
        try body()
        let delta = openFileDescriptorCount() - before
        if delta == 0 { return }
        deltas.append(delta)
    }
    Issue.record("descriptor count changed on every attempt: \(deltas)", sourceLocation: sourceLocation)
}
