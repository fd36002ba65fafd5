// SPDX-License-Identifier: Apache-2.0
// The software provider's wire: every device of this daemon is a port on it, addressed by GID as
// on RoCE. A packet goes into the destination device's inbox; its engine (on that device's
// worker) runs the responder, and the answer comes back the same way. Payload moves once, guest
// memory to guest memory, done by the responder (the only side that knows both ends).
//
// Packets are one per message rather than per MTU: PSNs still advance per MTU-sized packet, so
// the numbering is the wire's, and a later RoCEv2 transport can split them without changing QPs.
import CVRDMAABI
import LinuxSystem
import Synchronization
import VirtQueue

struct GID: Hashable, Sendable, CustomStringConvertible {
    var high: UInt64
    var low: UInt64

    init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    /// From the 16 network-order bytes of the ABI.
    init(bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        var b = bytes
        let (h, l) = withUnsafeBytes(of: &b) { ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        high = UInt64(bigEndian: h)
        low = UInt64(bigEndian: l)
    }

    /// fe80::<node GUID>: the default GID (index 0) of a device.
    static func linkLocal(guid: UInt64) -> GID { GID(high: 0xfe80_0000_0000_0000, low: guid) }

    var isZero: Bool { high == 0 && low == 0 }

    /// ::ffff:a.b.c.d, a RoCEv2 GID made from an IPv4 address.
    var ipv4: UInt32? { high == 0 && low >> 32 == 0xffff ? UInt32(truncatingIfNeeded: low) : nil }

    var bytes: [UInt8] {
        withUnsafeBytes(of: (high.bigEndian, low.bigEndian)) { Array($0) }
    }

    var description: String {
        stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    }
}

/// One message on the fabric, or the answer to one.
struct Packet {
    enum Kind: UInt8 { case request, acknowledge, negativeAcknowledge }
    enum Syndrome: UInt8 { case none, receiverNotReady, invalidRequest, remoteAccess, remoteOperation }

    var kind: Kind
    var syndrome: Syndrome = .none
    /// The requester's QP (kept alive while the packet travels: the payload is its memory).
    var requester: QueuePair
    /// The in-flight slot the packet belongs to.
    var slot: Int32
    var destinationQPN: UInt32
    var psn: UInt32
    /// The requester's incarnation when sent: a reset or destroyed QP's packets are stale.
    var incarnation: UInt32
    /// The requester's memory table when sent: its segments are translated through it (the
    /// requester's engine may switch tables meanwhile; this one stays mapped while referenced).
    var memory: GuestMemory
}

public final class SoftwareFabric: @unchecked Sendable {
    // @unchecked: `routes` is behind its mutex; `generation` is atomic.
    private let routes = Mutex<[GID: Engine]>([:])
    /// Bumped on every route change, so QPs can cache a lookup and notice when it went stale.
    let generation = Atomic<UInt64>(1)

    public init() {}

    func add(_ gid: GID, engine: Engine) throws(CommandError) {
        let taken: Bool = routes.withLock { r in
            if let other = r[gid], other !== engine { return true }
            r[gid] = engine
            return false
        }
        if taken { throw .busy("GID \(gid) belongs to another device") }
        generation.add(1, ordering: .releasing)
    }

    func remove(_ gid: GID, engine: Engine) {
        routes.withLock { r in if r[gid] === engine { r[gid] = nil } }
        generation.add(1, ordering: .releasing)
    }

    func removeAll(engine: Engine) {
        routes.withLock { r in r = r.filter { $0.value !== engine } }
        generation.add(1, ordering: .releasing)
    }

    func resolve(_ gid: GID) -> Engine? { routes.withLock { $0[gid] } }
}
