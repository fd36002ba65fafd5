// SPDX-License-Identifier: Apache-2.0
// Connection helpers of the model guest driver: the MODIFY_QP sequences ibverbs applications use
// to bring an RC pair to RTS (RESET -> INIT -> RTR -> RTS, addressed by GID) and a UD QP to RTS,
// and address handles that reach another QP. min_rnr_timer defaults short (1 = 0.01 ms).
import CVRDMAABI

/// The attributes of an RC connection, as ibv_modify_qp takes them.
public struct RCParameters: Sendable {
    public var access: Access = .all
    public var pathMTU: UInt8 = 3
    /// 4.096 us * 2^timeout: 14 is about 67 ms. The software fabric loses nothing, so this only
    /// matters when a peer is gone or starved; tests of retry exhaustion set 8 (about 1 ms).
    public var timeout: UInt8 = 14
    public var retryCount: UInt8 = 7
    /// 7: retry forever.
    public var rnrRetry: UInt8 = 7
    /// IB RNR timer enum: 1 = 0.01 ms.
    public var minRNRTimer: UInt8 = 1
    public var maxRdAtomic: UInt8 = 4
    public var maxDestRdAtomic: UInt8 = 4
    /// nil: the device's defaultGIDIndex.
    public var gidIndex: UInt8?

    public init() {}
}

extension QueuePair {
    /// RESET -> INIT for this QP's type (RC: pkey, port, access; UD: pkey, port, qkey).
    public func initAttributes(access: Access = .all, qkey: UInt32 = 0x1111_1111) -> QPAttributes {
        var a = QPAttributes(state: .initialized)
        a.pkeyIndex = 0
        a.port = 1
        if type == .rc { a.accessFlags = access } else { a.qkey = qkey }
        return a
    }

    /// INIT -> RTR towards `remote` (RC: AV, MTU, destination QPN, rq_psn, responder resources, RNR timer).
    public func rtrAttributes(remote: QueuePair, _ p: RCParameters = RCParameters()) -> QPAttributes {
        var a = QPAttributes(state: .rtr)
        guard type == .rc else { return a }
        let sgid = p.gidIndex ?? device.defaultGIDIndex
        a.av = AddressVector(dgid: remote.device.gid(at: remote.device.defaultGIDIndex), sgidIndex: sgid)
        a.pathMTU = p.pathMTU
        a.destQPN = remote.qpn
        a.rqPSN = remote.initialPSN
        a.maxDestRdAtomic = p.maxDestRdAtomic
        a.minRNRTimer = p.minRNRTimer
        return a
    }

    /// RTR -> RTS (RC: sq_psn, timeout, retry counts, initiator depth; UD: sq_psn).
    public func rtsAttributes(_ p: RCParameters = RCParameters()) -> QPAttributes {
        var a = QPAttributes(state: .rts)
        a.sqPSN = initialPSN
        guard type == .rc else { return a }
        a.timeout = p.timeout
        a.retryCount = p.retryCount
        a.rnrRetry = p.rnrRetry
        a.maxRdAtomic = p.maxRdAtomic
        return a
    }

    /// This side of an RC connection to `remote`: RESET -> INIT -> RTR -> RTS.
    public func connect(to remote: QueuePair, _ p: RCParameters = RCParameters()) throws(VerbsError) {
        try modify(initAttributes(access: p.access))
        try modify(rtrAttributes(remote: remote, p))
        try modify(rtsAttributes(p))
    }

    /// Both sides of an RC connection.
    public static func connect(_ a: QueuePair, _ b: QueuePair, _ pa: RCParameters = RCParameters(),
                               _ pb: RCParameters? = nil) throws(VerbsError) {
        try a.connect(to: b, pa)
        try b.connect(to: a, pb ?? pa)
    }

    /// A UD QP to RTS with `qkey`.
    public func bringUpUD(qkey: UInt32 = 0x1111_1111) throws(VerbsError) {
        try modify(initAttributes(qkey: qkey))
        try modify(QPAttributes(state: .rtr))
        try modify(rtsAttributes())
    }
}

extension ProtectionDomain {
    /// An address handle that reaches `remote`'s device (its default GID) from this device's default GID.
    public func createAH(to remote: QueuePair) throws(VerbsError) -> AddressHandle {
        try createAH(AddressVector(dgid: remote.device.gid(at: remote.device.defaultGIDIndex), sgidIndex: device.defaultGIDIndex))
    }
}
