// SPDX-License-Identifier: Apache-2.0
// The control loop of one connection: receive → syntax check (VhostUser) → meaning check and
// action (Session) → reply. The one place protocol errors become a failure reply or a disconnect.
import LinuxSystem
import Logging
import VhostUser

extension VhostUserConnection {
    /// Requests whose reply is their own payload; every other request gets at most an ack.
    static func hasOwnReply(_ request: FrontendRequest) -> Bool {
        switch request {
        case .getFeatures, .getProtocolFeatures, .getQueueNum, .getMaxMemSlots, .getVringBase, .getConfig,
             .getStatus, .setLogBase, .getInflightFD:
            true
        default:
            false
        }
    }

    /// Serves `session` until the peer closes, breaks the protocol, or `shouldStop` says so.
    /// Returns why the loop ended (for the log).
    func serve(_ session: Session, logger: Logger) -> String {
        while true {
            let received: ReceivedMessage?
            do { received = try receive() } catch { return "protocol error: \(error)" }
            guard let message = received else { return "front-end closed the connection" }
            let header = message.header
            do { try header.validateAsRequest() } catch { return "protocol error: \(error)" }
            let name = FrontendRequest(rawValue: header.request)?.specName ?? "request \(header.request)"

            let decoded: FrontendMessage
            do { decoded = try FrontendMessage.decode(message) } catch { return "protocol error: \(error)" }
            logger.debug("\(name)\(decoded.queueIndex.map { " index=\($0)" } ?? "")",
                         metadata: header.needsReply ? ["need_reply": "true"] : [:])

            let ownReply = decoded.request.map(Self.hasOwnReply) ?? false
            let ackWanted = header.needsReply && session.replyAckEnabled && !ownReply
            do {
                switch try session.handle(decoded) {
                case .reply(let payload):
                    try reply(to: header.request, payload: payload)
                case .done:
                    if ackWanted { try reply(to: header.request, payload: encodeU64(0)) }
                }
            } catch let error as SessionError {
                logger.warning("\(name) rejected: \(error)")
                do {
                    if ackWanted {
                        try reply(to: header.request, payload: encodeU64(1))
                    } else if decoded.request == .getConfig {
                        // GET_CONFIG signals failure with an empty payload.
                        try reply(to: header.request, payload: [])
                    } else {
                        return "\(name) failed and the front-end cannot be told: \(error)"
                    }
                } catch {
                    return "reply failed: \(error)"
                }
            } catch {
                return "reply failed: \(error)"
            }
        }
    }
}
