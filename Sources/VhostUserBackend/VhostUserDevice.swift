// SPDX-License-Identifier: Apache-2.0
// What a device type gives the vhost-user framework. The framework owns the protocol, memory,
// rings and threads; the device owns its features, config space and what a chain means.
import VhostUser
import VirtQueue

public protocol VhostUserDevice: AnyObject, Sendable {
    /// Virtio feature bits the device supports (transport bits such as VERSION_1 and EVENT_IDX
    /// included). The framework adds VHOST_USER_F_PROTOCOL_FEATURES and VHOST_F_LOG_ALL.
    var features: UInt64 { get }
    /// Protocol features the device needs on top of the framework's (CONFIG for a config space).
    var protocolFeatures: ProtocolFeatures { get }
    /// The most virtqueues the device accepts (GET_QUEUE_NUM).
    var maxQueues: Int { get }
    var maxQueueSize: UInt16 { get }

    /// Bytes of config space at `offset`, or nil if the range is outside it.
    func readConfig(offset: Int, count: Int) -> [UInt8]?
    /// Applies a driver write to config space; false if the range or field is not writable.
    func writeConfig(offset: Int, bytes: [UInt8]) -> Bool

    /// The worker thread (0..<workerCount) that runs queue `index`. Queues that share state
    /// must share a worker, so the data plane never needs locks between them.
    func worker(forQueue index: Int, workerCount: Int) -> Int
    /// The handler for queue `index`, created when the ring starts and used only on its worker.
    func makeQueueHandler(queue index: Int, features: UInt64) -> any QueueHandler

    /// The guest reset the device (RESET_DEVICE) or the front-end went away: every guest
    /// resource is dropped. All rings are already stopped when this is called.
    func reset()
}

/// Processes one virtqueue's chains; lives on the queue's worker thread.
public protocol QueueHandler: AnyObject {
    /// Handles what is available; returns how much work it did (0: nothing to do). The worker
    /// signals the guest if used entries were pushed. Throwing a `QueueError` marks the ring
    /// broken (the guest must reset the device).
    func process(_ queue: SplitQueue) throws(QueueError) -> Int
    /// True when the handler has work of its own (not from the ring's avail side) and wants
    /// `process` called soon, e.g. events produced by another queue's handler.
    var hasPendingWork: Bool { get }
    /// An eventfd, besides the ring's kick, that wakes the worker for this ring (work arriving
    /// from another thread). The handler drains it itself.
    var wakeDescriptor: Int32? { get }
    /// The worker is about to sleep: ask for notifications again, and return true if work
    /// arrived meanwhile (the worker then keeps going instead of sleeping).
    func prepareToSleep() -> Bool
    /// Asked after `prepareToSleep`: the monotonic time (ns) at which the handler has work that
    /// waits only for time to pass (a retry timer), or nil. The worker sleeps no longer.
    var wakeDeadline: UInt64? { get }
}

extension QueueHandler {
    public var hasPendingWork: Bool { false }
    public var wakeDescriptor: Int32? { nil }
    public func prepareToSleep() -> Bool { false }
    public var wakeDeadline: UInt64? { nil }
}
