// SPDX-License-Identifier: Apache-2.0
// What the session knows about one virtqueue between messages. The ring's live state (indices,
// notifications) is on its worker while it runs; this record holds what is needed to start it.
import LinuxSystem
import VhostUser

struct Ring {
    /// Life cycle per the vhost-user spec ("Ring states"). Printable for logs.
    enum State: String {
        /// No kick yet, or stopped by GET_VRING_BASE.
        case stopped
        /// Kicked (descriptor received) but disabled, or not all of num/addr known yet.
        case started
        /// Started and enabled: attached to a worker, which owns it.
        case running
    }

    var state: State = .stopped
    var size: UInt16?
    /// Next available index to process while stopped (SET_VRING_BASE, or the last stop).
    var nextAvail: UInt16 = 0
    var address: VringAddress?
    var kick: OwnedFileDescriptor?
    var call: OwnedFileDescriptor?
    var err: OwnedFileDescriptor?
    var enabled = false
    var worker: Int?
}
