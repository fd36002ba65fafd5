// SPDX-License-Identifier: Apache-2.0
// Request numbers of the vhost-user protocol (QEMU docs/interop/vhost-user.rst), with the spec's
// spelling for logs, so a log line greps straight into the specification.

/// Front-end → back-end requests.
public enum FrontendRequest: UInt32, CaseIterable, Sendable {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setLogBase = 6
    case setLogFD = 7
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18
    case sendRARP = 19
    case netSetMTU = 20
    case setBackendReqFD = 21
    case iotlbMessage = 22
    case setVringEndian = 23
    case getConfig = 24
    case setConfig = 25
    case createCryptoSession = 26
    case closeCryptoSession = 27
    case postcopyAdvise = 28
    case postcopyListen = 29
    case postcopyEnd = 30
    case getInflightFD = 31
    case setInflightFD = 32
    case gpuSetSocket = 33
    case resetDevice = 34
    case vringKick = 35
    case getMaxMemSlots = 36
    case addMemReg = 37
    case remMemReg = 38
    case setStatus = 39
    case getStatus = 40
    case getSharedObject = 41
    case setDeviceStateFD = 42
    case checkDeviceState = 43

    public var specName: String {
        switch self {
        case .getFeatures: "VHOST_USER_GET_FEATURES"
        case .setFeatures: "VHOST_USER_SET_FEATURES"
        case .setOwner: "VHOST_USER_SET_OWNER"
        case .resetOwner: "VHOST_USER_RESET_OWNER"
        case .setMemTable: "VHOST_USER_SET_MEM_TABLE"
        case .setLogBase: "VHOST_USER_SET_LOG_BASE"
        case .setLogFD: "VHOST_USER_SET_LOG_FD"
        case .setVringNum: "VHOST_USER_SET_VRING_NUM"
        case .setVringAddr: "VHOST_USER_SET_VRING_ADDR"
        case .setVringBase: "VHOST_USER_SET_VRING_BASE"
        case .getVringBase: "VHOST_USER_GET_VRING_BASE"
        case .setVringKick: "VHOST_USER_SET_VRING_KICK"
        case .setVringCall: "VHOST_USER_SET_VRING_CALL"
        case .setVringErr: "VHOST_USER_SET_VRING_ERR"
        case .getProtocolFeatures: "VHOST_USER_GET_PROTOCOL_FEATURES"
        case .setProtocolFeatures: "VHOST_USER_SET_PROTOCOL_FEATURES"
        case .getQueueNum: "VHOST_USER_GET_QUEUE_NUM"
        case .setVringEnable: "VHOST_USER_SET_VRING_ENABLE"
        case .sendRARP: "VHOST_USER_SEND_RARP"
        case .netSetMTU: "VHOST_USER_NET_SET_MTU"
        case .setBackendReqFD: "VHOST_USER_SET_BACKEND_REQ_FD"
        case .iotlbMessage: "VHOST_USER_IOTLB_MSG"
        case .setVringEndian: "VHOST_USER_SET_VRING_ENDIAN"
        case .getConfig: "VHOST_USER_GET_CONFIG"
        case .setConfig: "VHOST_USER_SET_CONFIG"
        case .createCryptoSession: "VHOST_USER_CREATE_CRYPTO_SESSION"
        case .closeCryptoSession: "VHOST_USER_CLOSE_CRYPTO_SESSION"
        case .postcopyAdvise: "VHOST_USER_POSTCOPY_ADVISE"
        case .postcopyListen: "VHOST_USER_POSTCOPY_LISTEN"
        case .postcopyEnd: "VHOST_USER_POSTCOPY_END"
        case .getInflightFD: "VHOST_USER_GET_INFLIGHT_FD"
        case .setInflightFD: "VHOST_USER_SET_INFLIGHT_FD"
        case .gpuSetSocket: "VHOST_USER_GPU_SET_SOCKET"
        case .resetDevice: "VHOST_USER_RESET_DEVICE"
        case .vringKick: "VHOST_USER_VRING_KICK"
        case .getMaxMemSlots: "VHOST_USER_GET_MAX_MEM_SLOTS"
        case .addMemReg: "VHOST_USER_ADD_MEM_REG"
        case .remMemReg: "VHOST_USER_REM_MEM_REG"
        case .setStatus: "VHOST_USER_SET_STATUS"
        case .getStatus: "VHOST_USER_GET_STATUS"
        case .getSharedObject: "VHOST_USER_GET_SHARED_OBJECT"
        case .setDeviceStateFD: "VHOST_USER_SET_DEVICE_STATE_FD"
        case .checkDeviceState: "VHOST_USER_CHECK_DEVICE_STATE"
        }
    }
}

/// Back-end → front-end requests (over the SET_BACKEND_REQ_FD channel). QEMU 7.2 handles 1-3.
public enum BackendRequest: UInt32, Sendable {
    case iotlbMessage = 1
    case configChange = 2
    case vringHostNotifier = 3
}
