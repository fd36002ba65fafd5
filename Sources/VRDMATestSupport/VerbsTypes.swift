// SPDX-License-Identifier: Apache-2.0
// The model guest driver's verbs vocabulary: typed Swift names for the numbers abi/virtio_rdma.h
// defines (statuses, opcodes, flags, states, events) and the plain values the verbs layer passes
// around (work requests, completions, events, attributes). Every raw value comes from the header's
// own constants, so the test driver cannot drift from the contract. Test double only.
import CVRDMAABI

// MARK: numbers from the header

/// A control command opcode (enum virtio_rdma_opcode). A struct, so hostile tests can send any number.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ c: virtio_rdma_opcode) { rawValue = c.rawValue }

    public static let queryDevice = Opcode(VIRTIO_RDMA_CMD_QUERY_DEVICE)
    public static let queryPort = Opcode(VIRTIO_RDMA_CMD_QUERY_PORT)
    public static let queryPKey = Opcode(VIRTIO_RDMA_CMD_QUERY_PKEY)
    public static let addGID = Opcode(VIRTIO_RDMA_CMD_ADD_GID)
    public static let delGID = Opcode(VIRTIO_RDMA_CMD_DEL_GID)
    public static let createUContext = Opcode(VIRTIO_RDMA_CMD_CREATE_UCONTEXT)
    public static let destroyUContext = Opcode(VIRTIO_RDMA_CMD_DESTROY_UCONTEXT)
    public static let allocPD = Opcode(VIRTIO_RDMA_CMD_ALLOC_PD)
    public static let deallocPD = Opcode(VIRTIO_RDMA_CMD_DEALLOC_PD)
    public static let regMR = Opcode(VIRTIO_RDMA_CMD_REG_MR)
    public static let deregMR = Opcode(VIRTIO_RDMA_CMD_DEREG_MR)
    public static let createCQ = Opcode(VIRTIO_RDMA_CMD_CREATE_CQ)
    public static let resizeCQ = Opcode(VIRTIO_RDMA_CMD_RESIZE_CQ)
    public static let destroyCQ = Opcode(VIRTIO_RDMA_CMD_DESTROY_CQ)
    public static let createQP = Opcode(VIRTIO_RDMA_CMD_CREATE_QP)
    public static let modifyQP = Opcode(VIRTIO_RDMA_CMD_MODIFY_QP)
    public static let queryQP = Opcode(VIRTIO_RDMA_CMD_QUERY_QP)
    public static let destroyQP = Opcode(VIRTIO_RDMA_CMD_DESTROY_QP)
    public static let createSRQ = Opcode(VIRTIO_RDMA_CMD_CREATE_SRQ)
    public static let modifySRQ = Opcode(VIRTIO_RDMA_CMD_MODIFY_SRQ)
    public static let querySRQ = Opcode(VIRTIO_RDMA_CMD_QUERY_SRQ)
    public static let destroySRQ = Opcode(VIRTIO_RDMA_CMD_DESTROY_SRQ)
    public static let createAH = Opcode(VIRTIO_RDMA_CMD_CREATE_AH)
    public static let destroyAH = Opcode(VIRTIO_RDMA_CMD_DESTROY_AH)

    public static let all: [Opcode] = [
        .queryDevice, .queryPort, .queryPKey, .addGID, .delGID, .createUContext, .destroyUContext, .allocPD, .deallocPD,
        .regMR, .deregMR, .createCQ, .resizeCQ, .destroyCQ, .createQP, .modifyQP, .queryQP, .destroyQP, .createSRQ,
        .modifySRQ, .querySRQ, .destroySRQ, .createAH, .destroyAH,
    ]

    public var description: String {
        let names = ["QUERY_DEVICE", "QUERY_PORT", "QUERY_PKEY", "ADD_GID", "DEL_GID", "CREATE_UCONTEXT", "DESTROY_UCONTEXT",
                     "ALLOC_PD", "DEALLOC_PD", "REG_MR", "DEREG_MR", "CREATE_CQ", "RESIZE_CQ", "DESTROY_CQ", "CREATE_QP",
                     "MODIFY_QP", "QUERY_QP", "DESTROY_QP", "CREATE_SRQ", "MODIFY_SRQ", "QUERY_SRQ", "DESTROY_SRQ",
                     "CREATE_AH", "DESTROY_AH"]
        return (1...UInt32(names.count)).contains(rawValue) ? names[Int(rawValue) - 1] : "opcode \(rawValue)"
    }
}

/// virtio_rdma_resp_hdr.status (enum virtio_rdma_status).
public struct CommandStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ c: virtio_rdma_status) { rawValue = c.rawValue }

    public static let ok = CommandStatus(VIRTIO_RDMA_S_OK)
    public static let unsupported = CommandStatus(VIRTIO_RDMA_S_UNSUPPORTED)
    public static let invalid = CommandStatus(VIRTIO_RDMA_S_INVALID)
    public static let noResources = CommandStatus(VIRTIO_RDMA_S_NO_RESOURCES)
    public static let badHandle = CommandStatus(VIRTIO_RDMA_S_BAD_HANDLE)
    public static let busy = CommandStatus(VIRTIO_RDMA_S_BUSY)
    public static let badState = CommandStatus(VIRTIO_RDMA_S_BAD_STATE)
    public static let access = CommandStatus(VIRTIO_RDMA_S_ACCESS)
    public static let provider = CommandStatus(VIRTIO_RDMA_S_PROVIDER)
    public static let fault = CommandStatus(VIRTIO_RDMA_S_FAULT)

    public var description: String {
        let names = ["OK", "UNSUPPORTED", "INVALID", "NO_RESOURCES", "BAD_HANDLE", "BUSY", "BAD_STATE", "ACCESS", "PROVIDER", "FAULT"]
        return rawValue < names.count ? names[Int(rawValue)] : "status \(rawValue)"
    }
}

/// Completion status (VIRTIO_RDMA_WC_*: the ibv_wc_status values).
public struct WCStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    init(_ v: some BinaryInteger) { rawValue = UInt8(v) }

    public static let success = WCStatus(VIRTIO_RDMA_WC_SUCCESS)
    public static let locLenErr = WCStatus(VIRTIO_RDMA_WC_LOC_LEN_ERR)
    public static let locQPOpErr = WCStatus(VIRTIO_RDMA_WC_LOC_QP_OP_ERR)
    public static let locProtErr = WCStatus(VIRTIO_RDMA_WC_LOC_PROT_ERR)
    public static let wrFlushErr = WCStatus(VIRTIO_RDMA_WC_WR_FLUSH_ERR)
    public static let badRespErr = WCStatus(VIRTIO_RDMA_WC_BAD_RESP_ERR)
    public static let locAccessErr = WCStatus(VIRTIO_RDMA_WC_LOC_ACCESS_ERR)
    public static let remInvReqErr = WCStatus(VIRTIO_RDMA_WC_REM_INV_REQ_ERR)
    public static let remAccessErr = WCStatus(VIRTIO_RDMA_WC_REM_ACCESS_ERR)
    public static let remOpErr = WCStatus(VIRTIO_RDMA_WC_REM_OP_ERR)
    public static let retryExcErr = WCStatus(VIRTIO_RDMA_WC_RETRY_EXC_ERR)
    public static let rnrRetryExcErr = WCStatus(VIRTIO_RDMA_WC_RNR_RETRY_EXC_ERR)
    public static let generalErr = WCStatus(VIRTIO_RDMA_WC_GENERAL_ERR)

    public var description: String {
        switch self {
        case .success: "SUCCESS"
        case .locLenErr: "LOC_LEN_ERR"
        case .locQPOpErr: "LOC_QP_OP_ERR"
        case .locProtErr: "LOC_PROT_ERR"
        case .wrFlushErr: "WR_FLUSH_ERR"
        case .badRespErr: "BAD_RESP_ERR"
        case .locAccessErr: "LOC_ACCESS_ERR"
        case .remInvReqErr: "REM_INV_REQ_ERR"
        case .remAccessErr: "REM_ACCESS_ERR"
        case .remOpErr: "REM_OP_ERR"
        case .retryExcErr: "RETRY_EXC_ERR"
        case .rnrRetryExcErr: "RNR_RETRY_EXC_ERR"
        case .generalErr: "GENERAL_ERR"
        default: "wc status \(rawValue)"
        }
    }
}

/// Completion opcode (VIRTIO_RDMA_WC_*: the ibv_wc_opcode values).
public struct WCOpcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    init(_ v: some BinaryInteger) { rawValue = UInt8(v) }

    public static let send = WCOpcode(VIRTIO_RDMA_WC_SEND)
    public static let rdmaWrite = WCOpcode(VIRTIO_RDMA_WC_RDMA_WRITE)
    public static let rdmaRead = WCOpcode(VIRTIO_RDMA_WC_RDMA_READ)
    public static let compSwap = WCOpcode(VIRTIO_RDMA_WC_COMP_SWAP)
    public static let fetchAdd = WCOpcode(VIRTIO_RDMA_WC_FETCH_ADD)
    public static let recv = WCOpcode(VIRTIO_RDMA_WC_RECV)
    public static let recvRDMAWithImm = WCOpcode(VIRTIO_RDMA_WC_RECV_RDMA_WITH_IMM)

    public var description: String {
        switch self {
        case .send: "SEND"
        case .rdmaWrite: "RDMA_WRITE"
        case .rdmaRead: "RDMA_READ"
        case .compSwap: "COMP_SWAP"
        case .fetchAdd: "FETCH_ADD"
        case .recv: "RECV"
        case .recvRDMAWithImm: "RECV_RDMA_WITH_IMM"
        default: "wc opcode \(rawValue)"
        }
    }
}

/// Send work request opcode (VIRTIO_RDMA_WR_*). A struct, so hostile tests can post any byte.
public struct SendOpcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    init(_ v: some BinaryInteger) { rawValue = UInt8(v) }

    public static let rdmaWrite = SendOpcode(VIRTIO_RDMA_WR_RDMA_WRITE)
    public static let rdmaWriteWithImm = SendOpcode(VIRTIO_RDMA_WR_RDMA_WRITE_WITH_IMM)
    public static let send = SendOpcode(VIRTIO_RDMA_WR_SEND)
    public static let sendWithImm = SendOpcode(VIRTIO_RDMA_WR_SEND_WITH_IMM)
    public static let rdmaRead = SendOpcode(VIRTIO_RDMA_WR_RDMA_READ)
    public static let cmpAndSwp = SendOpcode(VIRTIO_RDMA_WR_ATOMIC_CMP_AND_SWP)
    public static let fetchAndAdd = SendOpcode(VIRTIO_RDMA_WR_ATOMIC_FETCH_AND_ADD)

    public var description: String {
        let names = ["RDMA_WRITE", "RDMA_WRITE_WITH_IMM", "SEND", "SEND_WITH_IMM", "RDMA_READ", "CMP_AND_SWP", "FETCH_AND_ADD"]
        return rawValue < names.count ? names[Int(rawValue)] : "wr opcode \(rawValue)"
    }

    /// The completion opcode a successful requester CQE carries for this work request.
    public var completionOpcode: WCOpcode {
        switch self {
        case .rdmaWrite, .rdmaWriteWithImm: .rdmaWrite
        case .send, .sendWithImm: .send
        case .rdmaRead: .rdmaRead
        case .cmpAndSwp: .compSwap
        case .fetchAndAdd: .fetchAdd
        default: WCOpcode(rawValue: 0xff)
        }
    }
}

/// QP state (VIRTIO_RDMA_QPS_*: the ib_qp_state values).
public struct QPState: RawRepresentable, Hashable, Sendable, CustomStringConvertible, CaseIterable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    init(_ v: some BinaryInteger) { rawValue = UInt8(v) }

    public static let reset = QPState(VIRTIO_RDMA_QPS_RESET)
    public static let initialized = QPState(VIRTIO_RDMA_QPS_INIT)
    public static let rtr = QPState(VIRTIO_RDMA_QPS_RTR)
    public static let rts = QPState(VIRTIO_RDMA_QPS_RTS)
    public static let sqd = QPState(VIRTIO_RDMA_QPS_SQD)
    public static let sqe = QPState(VIRTIO_RDMA_QPS_SQE)
    public static let error = QPState(VIRTIO_RDMA_QPS_ERR)
    public static let allCases: [QPState] = [.reset, .initialized, .rtr, .rts, .sqd, .sqe, .error]

    public var description: String {
        rawValue < 7 ? ["RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"][Int(rawValue)] : "state \(rawValue)"
    }
}

/// QP type (VIRTIO_RDMA_QPT_*).
public struct QPType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let rc = QPType(rawValue: UInt8(VIRTIO_RDMA_QPT_RC))
    public static let ud = QPType(rawValue: UInt8(VIRTIO_RDMA_QPT_UD))
    /// QP1, kernel context only.
    public static let gsi = QPType(rawValue: UInt8(VIRTIO_RDMA_QPT_GSI))
    public var description: String { self == .rc ? "RC" : self == .ud ? "UD" : self == .gsi ? "GSI" : "qp type \(rawValue)" }
}

/// Memory and QP access flags (VIRTIO_RDMA_ACCESS_*).
public struct Access: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let localWrite = Access(rawValue: UInt32(VIRTIO_RDMA_ACCESS_LOCAL_WRITE))
    public static let remoteWrite = Access(rawValue: UInt32(VIRTIO_RDMA_ACCESS_REMOTE_WRITE))
    public static let remoteRead = Access(rawValue: UInt32(VIRTIO_RDMA_ACCESS_REMOTE_READ))
    public static let remoteAtomic = Access(rawValue: UInt32(VIRTIO_RDMA_ACCESS_REMOTE_ATOMIC))
    public static let all: Access = [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic]
    public var hasRemote: Bool { !intersection([.remoteWrite, .remoteRead, .remoteAtomic]).isEmpty }
}

/// Send work request flags (VIRTIO_RDMA_SEND_*).
public struct SendFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let fence = SendFlags(rawValue: UInt16(VIRTIO_RDMA_SEND_FENCE))
    public static let signaled = SendFlags(rawValue: UInt16(VIRTIO_RDMA_SEND_SIGNALED))
    public static let solicited = SendFlags(rawValue: UInt16(VIRTIO_RDMA_SEND_SOLICITED))
    public static let inline = SendFlags(rawValue: UInt16(VIRTIO_RDMA_SEND_INLINE))
}

/// Completion flags (VIRTIO_RDMA_WC_F_*).
public struct WCFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let grh = WCFlags(rawValue: UInt16(VIRTIO_RDMA_WC_F_GRH))
    public static let withImm = WCFlags(rawValue: UInt16(VIRTIO_RDMA_WC_F_WITH_IMM))
    public static let solicited = WCFlags(rawValue: UInt16(VIRTIO_RDMA_WC_F_SOLICITED))
}

/// MODIFY_QP attribute mask (VIRTIO_RDMA_QP_*).
public struct QPAttrMask: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let state = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_STATE))
    public static let curState = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_CUR_STATE))
    public static let enSQDAsyncNotify = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_EN_SQD_ASYNC_NOTIFY))
    public static let accessFlags = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_ACCESS_FLAGS))
    public static let pkeyIndex = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_PKEY_INDEX))
    public static let port = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_PORT))
    public static let qkey = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_QKEY))
    public static let av = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_AV))
    public static let pathMTU = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_PATH_MTU))
    public static let timeout = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_TIMEOUT))
    public static let retryCnt = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_RETRY_CNT))
    public static let rnrRetry = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_RNR_RETRY))
    public static let rqPSN = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_RQ_PSN))
    public static let maxQPRdAtomic = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_MAX_QP_RD_ATOMIC))
    public static let altPath = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_ALT_PATH))
    public static let minRNRTimer = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_MIN_RNR_TIMER))
    public static let sqPSN = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_SQ_PSN))
    public static let maxDestRdAtomic = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_MAX_DEST_RD_ATOMIC))
    public static let pathMigState = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_PATH_MIG_STATE))
    public static let cap = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_CAP))
    public static let destQPN = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_DEST_QPN))
    public static let rateLimit = QPAttrMask(rawValue: UInt32(VIRTIO_RDMA_QP_RATE_LIMIT))
}

/// Event types on the event queue (VIRTIO_RDMA_EV_*).
public struct EventType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ v: some BinaryInteger) { rawValue = UInt32(v) }

    public static let cqCompletion = EventType(VIRTIO_RDMA_EV_CQ_COMPLETION)
    public static let cqErr = EventType(VIRTIO_RDMA_EV_CQ_ERR)
    public static let qpFatal = EventType(VIRTIO_RDMA_EV_QP_FATAL)
    public static let qpReqErr = EventType(VIRTIO_RDMA_EV_QP_REQ_ERR)
    public static let qpAccessErr = EventType(VIRTIO_RDMA_EV_QP_ACCESS_ERR)
    public static let commEst = EventType(VIRTIO_RDMA_EV_COMM_EST)
    public static let sqDrained = EventType(VIRTIO_RDMA_EV_SQ_DRAINED)
    public static let qpLastWQEReached = EventType(VIRTIO_RDMA_EV_QP_LAST_WQE_REACHED)
    public static let srqLimitReached = EventType(VIRTIO_RDMA_EV_SRQ_LIMIT_REACHED)
    public static let portActive = EventType(VIRTIO_RDMA_EV_PORT_ACTIVE)
    public static let portErr = EventType(VIRTIO_RDMA_EV_PORT_ERR)
    public static let gidChange = EventType(VIRTIO_RDMA_EV_GID_CHANGE)

    public var description: String {
        let names = ["CQ_COMPLETION", "CQ_ERR", "QP_FATAL", "QP_REQ_ERR", "QP_ACCESS_ERR", "COMM_EST", "SQ_DRAINED",
                     "QP_LAST_WQE_REACHED", "SRQ_LIMIT_REACHED", "PORT_ACTIVE", "PORT_ERR", "GID_CHANGE"]
        return rawValue < names.count ? names[Int(rawValue)] : "event \(rawValue)"
    }
}

/// CQ arm kinds (VIRTIO_RDMA_CQ_ARM_*).
public enum ArmKind: UInt32, Sendable {
    case next = 1
    case solicited = 2
}

// MARK: errors

/// What a verbs call can fail with. `.command` carries the device's status for the command that
/// failed, so hostile tests can assert it exactly (see `statusOf`).
public enum VerbsError: Error, Equatable, CustomStringConvertible {
    /// The device answered the command with a status other than OK.
    case command(Opcode, CommandStatus)
    /// The virtio transport failed (no completion, the connection closed...).
    case frontend(FrontendError)
    /// Nothing arrived in time (completions, events).
    case timeout(String)
    /// The device broke the contract (e.g. wrong used length, a doorbell queue not offered).
    case protocolViolation(String)
    /// The driver refused, as ibverbs would (queue full, WQE larger than its slot).
    case refused(String)

    public var status: CommandStatus? {
        if case .command(_, let s) = self { return s }
        return nil
    }

    public var description: String {
        switch self {
        case .command(let op, let s): "\(op) failed with \(s)"
        case .frontend(let e): "transport: \(e)"
        case .timeout(let what): "timed out: \(what)"
        case .protocolViolation(let what): "device broke the ABI: \(what)"
        case .refused(let what): "driver refused: \(what)"
        }
    }
}

/// The status of the command `body` issues: `.ok` if it returns, the device's status if a command
/// fails; other failures (transport, timeouts) are rethrown.
public func statusOf(_ body: () throws -> Void) throws -> CommandStatus {
    do {
        try body()
        return .ok
    } catch let error as VerbsError {
        if case .command(_, let s) = error { return s }
        throw error
    }
}

// MARK: values

/// A 16-byte GID.
public struct GID: Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }
    public static let zero = GID([UInt8](repeating: 0, count: 16))

    /// ::ffff:a.b.c.d, the RoCEv2 GID of an IPv4 address.
    public static func ipv4Mapped(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> GID {
        GID([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d])
    }

    /// fe80::<interface id>, the interface id being the 8 bytes of `guid` in network order. The
    /// semantics notes call the default GID "fe80::<EUI-64 of the node GUID>"; a node GUID is
    /// already an EUI-64, so no universal/local bit is flipped here.
    public static func linkLocal(guid: UInt64) -> GID {
        var b: [UInt8] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0]
        for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: guid >> (56 - 8 * UInt64(i)))) }
        return GID(b)
    }

    public var description: String {
        stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    }
}

/// A scatter/gather entry (struct virtio_rdma_sge).
public struct SGE: Hashable, Sendable {
    public var addr: UInt64
    public var length: UInt32
    public var lkey: UInt32
    public init(addr: UInt64, length: UInt32, lkey: UInt32) {
        self.addr = addr
        self.length = length
        self.lkey = lkey
    }
}

/// A send work request: every field of struct virtio_rdma_send_wqe. `sges` is read, not copied, on
/// post, so a preallocated request posts without allocating.
public struct SendWR: Sendable {
    public var wrId: UInt64
    public var opcode: SendOpcode
    public var flags: SendFlags
    public var sges: [SGE]
    /// With `.inline`: the bytes that follow the header.
    public var inlineData: [UInt8]
    /// imm_data as the WQE carries it (opaque: the CQE must show the same 32 bits).
    public var imm: UInt32
    public var remoteAddr: UInt64
    public var rkey: UInt32
    public var compareAdd: UInt64
    public var swap: UInt64
    public var ah: UInt32
    public var remoteQPN: UInt32
    public var remoteQKey: UInt32
    /// Hostile tests: the num_sge field written instead of `sges.count` (the SGEs written stay `sges`).
    public var numSGEOverride: UInt32?

    public init(wrId: UInt64, opcode: SendOpcode, flags: SendFlags = .signaled, sges: [SGE] = [], inlineData: [UInt8] = [],
                imm: UInt32 = 0, remoteAddr: UInt64 = 0, rkey: UInt32 = 0, compareAdd: UInt64 = 0, swap: UInt64 = 0,
                ah: UInt32 = 0, remoteQPN: UInt32 = 0, remoteQKey: UInt32 = 0) {
        self.wrId = wrId
        self.opcode = opcode
        self.flags = flags
        self.sges = sges
        self.inlineData = inlineData
        self.imm = imm
        self.remoteAddr = remoteAddr
        self.rkey = rkey
        self.compareAdd = compareAdd
        self.swap = swap
        self.ah = ah
        self.remoteQPN = remoteQPN
        self.remoteQKey = remoteQKey
    }
}

/// A receive work request (struct virtio_rdma_recv_wqe + SGEs).
public struct RecvWR: Sendable {
    public var wrId: UInt64
    public var sges: [SGE]
    public var numSGEOverride: UInt32?
    public init(wrId: UInt64, sges: [SGE]) {
        self.wrId = wrId
        self.sges = sges
    }
}

/// One CQE as the driver reads it (struct virtio_rdma_cqe).
public struct Completion: Hashable, Sendable, CustomStringConvertible {
    public var wrId: UInt64
    public var status: WCStatus
    public var opcode: WCOpcode
    public var flags: WCFlags
    public var vendorErr: UInt32
    public var byteLen: UInt32
    public var imm: UInt32
    public var qpNum: UInt32
    public var srcQP: UInt32
    public var pkeyIndex: UInt16
    public var sl: UInt8
    public var networkHdrType: UInt8
    /// smac as a 48-bit number, first byte most significant.
    public var smac: UInt64
    public var vlanID: UInt16

    public init(_ c: virtio_rdma_cqe) {
        wrId = UInt64(littleEndian: c.wr_id)
        status = WCStatus(rawValue: c.status)
        opcode = WCOpcode(rawValue: c.opcode)
        flags = WCFlags(rawValue: UInt16(littleEndian: c.wc_flags))
        vendorErr = UInt32(littleEndian: c.vendor_err)
        byteLen = UInt32(littleEndian: c.byte_len)
        imm = UInt32(littleEndian: c.imm_data)
        qpNum = UInt32(littleEndian: c.qp_num)
        srcQP = UInt32(littleEndian: c.src_qp)
        pkeyIndex = UInt16(littleEndian: c.pkey_index)
        sl = c.sl
        networkHdrType = c.network_hdr_type
        let m = c.smac
        smac = UInt64(m.0) << 40 | UInt64(m.1) << 32 | UInt64(m.2) << 24 | UInt64(m.3) << 16 | UInt64(m.4) << 8 | UInt64(m.5)
        vlanID = UInt16(littleEndian: c.vlan_id)
    }

    public var description: String {
        "wc(wr_id \(wrId), \(status), \(opcode), qp \(qpNum), len \(byteLen), flags 0x\(String(flags.rawValue, radix: 16))"
            + (flags.contains(.withImm) ? ", imm 0x\(String(imm, radix: 16))" : "") + (srcQP != 0 ? ", src_qp \(srcQP)" : "")
            + (vendorErr != 0 ? ", vendor_err \(vendorErr)" : "") + ")"
    }
}

/// One event from the event queue (struct virtio_rdma_event).
public struct DeviceEvent: Hashable, Sendable, CustomStringConvertible {
    public var type: EventType
    public var handle: UInt32
    public var detail: UInt32
    public var reserved: UInt32
    public init(type: EventType, handle: UInt32, detail: UInt32 = 0, reserved: UInt32 = 0) {
        self.type = type
        self.handle = handle
        self.detail = detail
        self.reserved = reserved
    }
    public var description: String { "\(type)(handle \(handle), detail \(detail))" }
}

/// An address vector (struct virtio_rdma_av).
public struct AddressVector: Hashable, Sendable {
    public var dgid: GID
    public var flowLabel: UInt32 = 0
    public var sgidIndex: UInt8
    public var hopLimit: UInt8 = 64
    public var trafficClass: UInt8 = 0
    public var sl: UInt8 = 0
    public var dmac: [UInt8] = [0, 0, 0, 0, 0, 0]
    public var portNum: UInt8 = 1
    public var staticRate: UInt8 = 0

    public init(dgid: GID, sgidIndex: UInt8) {
        self.dgid = dgid
        self.sgidIndex = sgidIndex
    }

    public var raw: virtio_rdma_av {
        var av = virtio_rdma_av()
        withUnsafeMutableBytes(of: &av.dgid) { $0.copyBytes(from: dgid.bytes) }
        av.flow_label = flowLabel.littleEndian
        av.sgid_index = sgidIndex
        av.hop_limit = hopLimit
        av.traffic_class = trafficClass
        av.sl = sl
        withUnsafeMutableBytes(of: &av.dmac) { $0.copyBytes(from: dmac) }
        av.port_num = portNum
        av.static_rate = staticRate
        return av
    }

    public init(_ av: virtio_rdma_av) {
        dgid = GID(withUnsafeBytes(of: av.dgid) { Array($0) })
        flowLabel = UInt32(littleEndian: av.flow_label)
        sgidIndex = av.sgid_index
        hopLimit = av.hop_limit
        trafficClass = av.traffic_class
        sl = av.sl
        dmac = withUnsafeBytes(of: av.dmac) { Array($0) }
        portNum = av.port_num
        staticRate = av.static_rate
    }
}

/// MODIFY_QP's request (struct virtio_rdma_qp_attr): only the attributes that are set go in the
/// mask, so a transition names exactly what it changes. `extraMask` adds bits without values
/// (hostile tests); `maskOverride` replaces the computed mask.
public struct QPAttributes: Sendable {
    public var state: QPState?
    public var currentState: QPState?
    public var enSQDAsyncNotify: Bool?
    public var accessFlags: Access?
    public var pkeyIndex: UInt16?
    public var port: UInt8?
    public var qkey: UInt32?
    public var av: AddressVector?
    public var pathMTU: UInt8?
    public var timeout: UInt8?
    public var retryCount: UInt8?
    public var rnrRetry: UInt8?
    public var rqPSN: UInt32?
    public var maxRdAtomic: UInt8?
    public var minRNRTimer: UInt8?
    public var sqPSN: UInt32?
    public var maxDestRdAtomic: UInt8?
    public var destQPN: UInt32?
    public var rateLimit: UInt32?
    public var extraMask: QPAttrMask = []
    public var maskOverride: QPAttrMask?

    public init(state: QPState? = nil) { self.state = state }

    public var mask: QPAttrMask {
        if let maskOverride { return maskOverride }
        var m = extraMask
        if state != nil { m.insert(.state) }
        if currentState != nil { m.insert(.curState) }
        if enSQDAsyncNotify != nil { m.insert(.enSQDAsyncNotify) }
        if accessFlags != nil { m.insert(.accessFlags) }
        if pkeyIndex != nil { m.insert(.pkeyIndex) }
        if port != nil { m.insert(.port) }
        if qkey != nil { m.insert(.qkey) }
        if av != nil { m.insert(.av) }
        if pathMTU != nil { m.insert(.pathMTU) }
        if timeout != nil { m.insert(.timeout) }
        if retryCount != nil { m.insert(.retryCnt) }
        if rnrRetry != nil { m.insert(.rnrRetry) }
        if rqPSN != nil { m.insert(.rqPSN) }
        if maxRdAtomic != nil { m.insert(.maxQPRdAtomic) }
        if minRNRTimer != nil { m.insert(.minRNRTimer) }
        if sqPSN != nil { m.insert(.sqPSN) }
        if maxDestRdAtomic != nil { m.insert(.maxDestRdAtomic) }
        if destQPN != nil { m.insert(.destQPN) }
        if rateLimit != nil { m.insert(.rateLimit) }
        return m
    }

    /// The wire form for QP `qpn`.
    public func raw(qpn: UInt32) -> virtio_rdma_qp_attr {
        var a = virtio_rdma_qp_attr()
        a.qpn = qpn.littleEndian
        a.attr_mask = mask.rawValue.littleEndian
        a.qp_state = state?.rawValue ?? 0
        a.cur_qp_state = currentState?.rawValue ?? 0
        a.en_sqd_async_notify = (enSQDAsyncNotify ?? false) ? 1 : 0
        a.qp_access_flags = (accessFlags?.rawValue ?? 0).littleEndian
        a.pkey_index = (pkeyIndex ?? 0).littleEndian
        a.port_num = port ?? 0
        a.qkey = (qkey ?? 0).littleEndian
        if let av { a.ah_attr = av.raw }
        a.path_mtu = pathMTU ?? 0
        a.timeout = timeout ?? 0
        a.retry_cnt = retryCount ?? 0
        a.rnr_retry = rnrRetry ?? 0
        a.rq_psn = (rqPSN ?? 0).littleEndian
        a.max_rd_atomic = maxRdAtomic ?? 0
        a.min_rnr_timer = minRNRTimer ?? 0
        a.sq_psn = (sqPSN ?? 0).littleEndian
        a.max_dest_rd_atomic = maxDestRdAtomic ?? 0
        a.dest_qp_num = (destQPN ?? 0).littleEndian
        a.rate_limit = (rateLimit ?? 0).littleEndian
        return a
    }
}

/// QUERY_QP's answer, decoded.
public struct QPInfo: Sendable {
    public var raw: virtio_rdma_qp_attr
    public init(_ raw: virtio_rdma_qp_attr) { self.raw = raw }
    public var qpn: UInt32 { UInt32(littleEndian: raw.qpn) }
    public var state: QPState { QPState(rawValue: raw.qp_state) }
    public var accessFlags: Access { Access(rawValue: UInt32(littleEndian: raw.qp_access_flags)) }
    public var qkey: UInt32 { UInt32(littleEndian: raw.qkey) }
    public var rqPSN: UInt32 { UInt32(littleEndian: raw.rq_psn) }
    public var sqPSN: UInt32 { UInt32(littleEndian: raw.sq_psn) }
    public var destQPN: UInt32 { UInt32(littleEndian: raw.dest_qp_num) }
    public var pathMTU: UInt8 { raw.path_mtu }
    public var timeout: UInt8 { raw.timeout }
    public var retryCount: UInt8 { raw.retry_cnt }
    public var rnrRetry: UInt8 { raw.rnr_retry }
    public var minRNRTimer: UInt8 { raw.min_rnr_timer }
    public var maxRdAtomic: UInt8 { raw.max_rd_atomic }
    public var maxDestRdAtomic: UInt8 { raw.max_dest_rd_atomic }
    public var pkeyIndex: UInt16 { UInt16(littleEndian: raw.pkey_index) }
    public var port: UInt8 { raw.port_num }
    public var av: AddressVector { AddressVector(raw.ah_attr) }
    public var maxSendWR: UInt32 { UInt32(littleEndian: raw.max_send_wr) }
    public var maxRecvWR: UInt32 { UInt32(littleEndian: raw.max_recv_wr) }
    public var maxSendSGE: UInt32 { UInt32(littleEndian: raw.max_send_sge) }
    public var maxRecvSGE: UInt32 { UInt32(littleEndian: raw.max_recv_sge) }
    public var maxInlineData: UInt32 { UInt32(littleEndian: raw.max_inline_data) }
}

/// What a work queue holds, as the create command describes it.
public struct WorkQueueCaps: Hashable, Sendable {
    public var depth: UInt32
    public var maxSGE: UInt32
    public var maxInline: UInt32
    /// nil: the smallest shift the header's rule allows.
    public var wqeShift: UInt32?
    public init(depth: UInt32, maxSGE: UInt32 = 1, maxInline: UInt32 = 0, wqeShift: UInt32? = nil) {
        self.depth = depth
        self.maxSGE = maxSGE
        self.maxInline = maxInline
        self.wqeShift = wqeShift
    }
}

/// How the pages behind a ring or an MR are laid out in guest RAM.
public enum PageLayout: Sendable, Equatable {
    /// One run of consecutive pages in low RAM.
    case contiguous
    /// Each page on its own, in reverse address order with a hole after each (exercises the page list).
    case scattered
    /// Consecutive pages in the RAM region above 4 GiB.
    case high
}

// MARK: byte helpers

/// The bytes of a C struct value, for command requests.
@inline(__always)
public func bytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// A value of `T` from the front of `body` (zero-filled if short).
public func decode<T: BitwiseCopyable>(_: T.Type, from body: [UInt8]) -> T {
    var padded = body
    if padded.count < MemoryLayout<T>.size { padded += [UInt8](repeating: 0, count: MemoryLayout<T>.size - padded.count) }
    return padded.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
}
