// SPDX-License-Identifier: Apache-2.0
// A guest error in a control command: it becomes a status in the response and changes nothing.
import CVRDMAABI

enum CommandError: Error, CustomStringConvertible {
    case invalid(String)
    case noResources(String)
    case badHandle(String)
    case busy(String)
    case badState(String)
    case access(String)
    case fault(String)
    case unsupported

    var status: virtio_rdma_status {
        switch self {
        case .invalid: VIRTIO_RDMA_S_INVALID
        case .noResources: VIRTIO_RDMA_S_NO_RESOURCES
        case .badHandle: VIRTIO_RDMA_S_BAD_HANDLE
        case .busy: VIRTIO_RDMA_S_BUSY
        case .badState: VIRTIO_RDMA_S_BAD_STATE
        case .access: VIRTIO_RDMA_S_ACCESS
        case .fault: VIRTIO_RDMA_S_FAULT
        case .unsupported: VIRTIO_RDMA_S_UNSUPPORTED
        }
    }

    var description: String {
        switch self {
        case .invalid(let s): "invalid: \(s)"
        case .noResources(let s): "no resources: \(s)"
        case .badHandle(let s): "bad handle: \(s)"
        case .busy(let s): "busy: \(s)"
        case .badState(let s): "bad state: \(s)"
        case .access(let s): "access: \(s)"
        case .fault(let s): "fault: \(s)"
        case .unsupported: "unsupported"
        }
    }
}
