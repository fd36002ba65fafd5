// SPDX-License-Identifier: Apache-2.0
// The IBTA QP state machine as ib_modify_qp_is_ok states it for RC and UD: which transitions are
// legal and which attributes each one requires and allows. Pure values, tested on their own.
// Differences (docs/virtio-rdma.md §14.2): no ALT_PATH (no path migration), no CAP (no resize),
// no RATE_LIMIT.
import CVRDMAABI

enum QPState: UInt8, CustomStringConvertible, CaseIterable, Sendable {
    case reset = 0, initialized = 1, readyToReceive = 2, readyToSend = 3, sendQueueDrain = 4, sendQueueError = 5, error = 6

    var description: String {
        switch self {
        case .reset: "RESET"
        case .initialized: "INIT"
        case .readyToReceive: "RTR"
        case .readyToSend: "RTS"
        case .sendQueueDrain: "SQD"
        case .sendQueueError: "SQE"
        case .error: "ERR"
        }
    }

    /// Whether the responder accepts packets in this state.
    var receives: Bool { self == .readyToReceive || self == .readyToSend || self == .sendQueueDrain }
}

enum QPType: UInt8, CustomStringConvertible, Sendable {
    /// QP1: a datagram QP with a fixed number, for management datagrams (RoCE connection setup).
    case generalServices = 1
    case reliableConnected = 2, unreliableDatagram = 4

    var description: String {
        switch self {
        case .generalServices: "GSI"
        case .reliableConnected: "RC"
        case .unreliableDatagram: "UD"
        }
    }

    /// UD and GSI: no connection, no acknowledgements, one MTU per message, a GRH on receive.
    var isDatagram: Bool { self != .reliableConnected }
}

enum QPTransitions {
    static let state = UInt32(VIRTIO_RDMA_QP_STATE)
    static let curState = UInt32(VIRTIO_RDMA_QP_CUR_STATE)
    static let sqdNotify = UInt32(VIRTIO_RDMA_QP_EN_SQD_ASYNC_NOTIFY)
    static let access = UInt32(VIRTIO_RDMA_QP_ACCESS_FLAGS)
    static let pkey = UInt32(VIRTIO_RDMA_QP_PKEY_INDEX)
    static let port = UInt32(VIRTIO_RDMA_QP_PORT)
    static let qkey = UInt32(VIRTIO_RDMA_QP_QKEY)
    static let av = UInt32(VIRTIO_RDMA_QP_AV)
    static let mtu = UInt32(VIRTIO_RDMA_QP_PATH_MTU)
    static let timeout = UInt32(VIRTIO_RDMA_QP_TIMEOUT)
    static let retry = UInt32(VIRTIO_RDMA_QP_RETRY_CNT)
    static let rnrRetry = UInt32(VIRTIO_RDMA_QP_RNR_RETRY)
    static let rqPSN = UInt32(VIRTIO_RDMA_QP_RQ_PSN)
    static let maxReadAtomic = UInt32(VIRTIO_RDMA_QP_MAX_QP_RD_ATOMIC)
    static let altPath = UInt32(VIRTIO_RDMA_QP_ALT_PATH)
    static let minRNRTimer = UInt32(VIRTIO_RDMA_QP_MIN_RNR_TIMER)
    static let sqPSN = UInt32(VIRTIO_RDMA_QP_SQ_PSN)
    static let maxDestReadAtomic = UInt32(VIRTIO_RDMA_QP_MAX_DEST_RD_ATOMIC)
    static let pathMigration = UInt32(VIRTIO_RDMA_QP_PATH_MIG_STATE)
    static let destQPN = UInt32(VIRTIO_RDMA_QP_DEST_QPN)
    static let rateLimit = UInt32(VIRTIO_RDMA_QP_RATE_LIMIT)

    struct Rule { var required: UInt32; var optional: UInt32 }

    /// The rule for `from` -> `to`, or nil if the transition is illegal for this QP type.
    static func rule(from: QPState, to: QPState, type: QPType) -> Rule? {
        let rc = type == .reliableConnected
        switch (from, to) {
        case (_, .reset), (_, .error):
            return Rule(required: 0, optional: 0)
        case (.reset, .initialized):
            // QP1 is bound to its port from birth: the IBTA lists no PORT attribute for it.
            if type == .generalServices { return Rule(required: pkey | qkey, optional: port) }
            return Rule(required: pkey | port | (rc ? access : qkey), optional: 0)
        case (.initialized, .initialized):
            return Rule(required: 0, optional: pkey | port | (rc ? access : qkey))
        case (.initialized, .readyToReceive):
            return rc ? Rule(required: av | mtu | destQPN | rqPSN | maxDestReadAtomic | minRNRTimer,
                             optional: access | pkey)
                      : Rule(required: 0, optional: pkey | qkey)
        case (.readyToReceive, .readyToSend):
            return rc ? Rule(required: sqPSN | timeout | retry | rnrRetry | maxReadAtomic,
                             optional: curState | access | minRNRTimer | pathMigration)
                      : Rule(required: sqPSN, optional: curState | qkey)
        case (.readyToSend, .readyToSend), (.sendQueueDrain, .readyToSend):
            return rc ? Rule(required: 0, optional: curState | access | pathMigration | minRNRTimer)
                      : Rule(required: 0, optional: curState | qkey)
        case (.readyToSend, .sendQueueDrain):
            return Rule(required: 0, optional: sqdNotify)
        case (.sendQueueDrain, .sendQueueDrain):
            return rc ? Rule(required: 0, optional: av | port | access | pkey | minRNRTimer | pathMigration
                                                    | timeout | retry | rnrRetry | maxReadAtomic | maxDestReadAtomic)
                      : Rule(required: 0, optional: pkey | qkey)
        case (.sendQueueError, .readyToSend):
            return rc ? nil : Rule(required: 0, optional: curState | qkey)
        default:
            return nil
        }
    }
}

/// Every attribute ibv_modify_qp sets, as the device keeps it (QUERY_QP reports it back).
struct QPAttributes: Sendable {
    var qkey: UInt32 = 0
    var rqPSN: UInt32 = 0
    var sqPSN: UInt32 = 0
    var destQPN: UInt32 = 0
    var accessFlags: UInt32 = 0
    var pkeyIndex: UInt16 = 0
    var altPkeyIndex: UInt16 = 0
    var pathMTU: UInt8 = 3
    var pathMigrationState: UInt8 = 0
    var sqdNotify: UInt8 = 0
    var maxReadAtomic: UInt8 = 0
    var maxDestReadAtomic: UInt8 = 0
    var minRNRTimer: UInt8 = 0
    var port: UInt8 = 1
    var timeout: UInt8 = 0
    var retryCount: UInt8 = 0
    var rnrRetry: UInt8 = 0
    var altPort: UInt8 = 0
    var altTimeout: UInt8 = 0
    var rateLimit: UInt32 = 0
    var av = virtio_rdma_av()
    var altAV = virtio_rdma_av()

    /// Bytes in one packet of the path MTU (IB enum 1..5 = 256..4096).
    var mtuBytes: UInt32 { 128 << UInt32(pathMTU) }
}

enum Timers {
    /// IB RNR timer enum (0..31) in nanoseconds (IBTA table 45; 0 means 655.36 ms).
    static func rnrNanoseconds(_ code: UInt8) -> UInt64 {
        let microseconds: [UInt64] = [655_360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920,
                                      2560, 3840, 5120, 7680, 10240, 15360, 20480, 30720, 40960, 61440, 81920,
                                      122_880, 163_840, 245_760, 327_680, 491_520]
        return microseconds[Int(code & 31)] * 1000
    }

    /// Local ACK timeout: 4.096 us * 2^timeout; 0 means infinite (nil).
    static func ackTimeoutNanoseconds(_ code: UInt8) -> UInt64? {
        code == 0 ? nil : 4096 << UInt64(min(code, 31))
    }
}
