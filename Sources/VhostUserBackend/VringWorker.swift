// SPDX-License-Identifier: Apache-2.0
// A data-plane thread. It owns the rings handed to it: nobody else touches a ring while it is
// attached. The control plane talks to it only through its mailbox (commands + an eventfd), and
// waits for the answer where the protocol needs one (GET_VRING_BASE, memory-table changes).
//
// Idle, the worker sleeps in epoll on the kick descriptors. After doing work it keeps polling its
// rings for `pollBudgetNanoseconds` with guest notifications off, so a busy guest need not kick.
import CLinuxShims
import Glibc
import LinuxSystem
import Logging
import Synchronization
import VirtQueue

/// A ring's name across the daemon: workers are shared by every device (session) it serves.
public struct RingKey: Hashable, Sendable, CustomStringConvertible {
    public var session: UInt32
    public var index: Int
    public init(session: UInt32, index: Int) { self.session = session; self.index = index }
    /// The epoll token: session in the high half, queue index in the low.
    var token: UInt64 { UInt64(session) << 32 | UInt64(index) }
    init(token: UInt64) { session = UInt32(token >> 32); index = Int(token & 0xffff_ffff) }
    public var description: String { "session \(session) queue \(index)" }
}

/// Everything a worker needs to run one started ring.
public struct RingAttachment: @unchecked Sendable {
    // @unchecked: the queue and handler move to the worker thread and are used only there.
    public var key: RingKey
    public var queue: SplitQueue
    public var handler: any QueueHandler
    public var kick: OwnedFileDescriptor?
    public var call: OwnedFileDescriptor?
    public var err: OwnedFileDescriptor?
}

enum WorkerCommand: @unchecked Sendable {
    case attach(RingAttachment, Completion<Bool>)
    /// Stops the ring and reports its next available index (GET_VRING_BASE).
    case detach(RingKey, Completion<UInt16?>)
    case setCall(RingKey, OwnedFileDescriptor?, Completion<Bool>)
    case setErr(RingKey, OwnedFileDescriptor?, Completion<Bool>)
    case updateMemory(UInt32, GuestMemory, Completion<Bool>)
    case setUsedLogging(RingKey, Bool, UInt64)
    case exit
}

public final class VringWorker: @unchecked Sendable {
    // @unchecked: `rings` and `epoll` belong to the worker thread; `mailbox` is lock-protected.
    public let id: Int
    private let logger: Logger
    private let pollBudgetNanoseconds: UInt64
    private let wakeup: EventFD
    private let mailbox = Mutex<[WorkerCommand]>([])
    private var thread: PosixThread?

    private var epoll: Epoll
    private var rings: [RingKey: RingAttachment] = [:]
    private var broken: Set<RingKey> = []
    /// Rings whose guest kicks are suppressed while this worker polls them.
    private var quiet: Set<RingKey> = []
    /// Rings whose front-end gave no kick descriptor (NOFD): looked at every millisecond.
    private var unkicked: Set<RingKey> = []
    private var exitRequested = false
    private static let wakeupToken: UInt64 = .max
    /// Set in a token's queue-index half for a handler's own wake descriptor.
    private static let handlerWakeBit: UInt64 = 0x8000_0000

    public init(id: Int, pollBudgetNanoseconds: UInt64, logger: Logger) throws(SystemError) {
        self.id = id
        self.pollBudgetNanoseconds = pollBudgetNanoseconds
        self.logger = logger
        wakeup = try EventFD()
        epoll = try Epoll()
        try epoll.add(wakeup.descriptor.rawValue, token: Self.wakeupToken)
        thread = try PosixThread(name: "vring-worker-\(id)") { [self] in run() }
    }

    // MARK: control-plane side

    func post(_ command: WorkerCommand) {
        mailbox.withLock { $0.append(command) }
        wakeup.signal()
    }

    /// Starts running a ring; false if the worker refused it (it should not).
    public func attach(_ ring: RingAttachment) -> Bool {
        let done = Completion<Bool>()
        post(.attach(ring, done))
        return done.wait()
    }

    /// Stops a ring after the chain in progress and returns its next available index.
    public func detach(_ key: RingKey) -> UInt16? {
        let done = Completion<UInt16?>()
        post(.detach(key, done))
        return done.wait()
    }

    /// Swaps a ring's interrupt descriptor; once this returns the old one is never signalled
    /// again (QEMU swaps to its masked notifier and then inspects the old one).
    public func setCall(_ index: Int, session: UInt32, _ fd: OwnedFileDescriptor?) {
        let done = Completion<Bool>()
        post(.setCall(RingKey(session: session, index: index), fd, done))
        _ = done.wait()
    }
    public func setErr(_ index: Int, session: UInt32, _ fd: OwnedFileDescriptor?) {
        let done = Completion<Bool>()
        post(.setErr(RingKey(session: session, index: index), fd, done))
        _ = done.wait()
    }
    public func setUsedLogging(_ index: Int, session: UInt32, on: Bool, address: UInt64) {
        post(.setUsedLogging(RingKey(session: session, index: index), on, address))
    }

    /// Switches the session's rings to `memory`; returns when none uses the old table any more.
    public func updateMemory(_ memory: GuestMemory, session: UInt32) {
        let done = Completion<Bool>()
        post(.updateMemory(session, memory, done))
        _ = done.wait()
    }

    public func stop() {
        post(.exit)
        thread?.join()
        thread = nil
    }

    // MARK: worker thread

    private func run() {
        var kicked: [RingKey] = []
        kicked.reserveCapacity(64)
        // Set when handlers still report work they cannot finish yet (timers, say): look at the
        // descriptors without blocking, so kicks are still seen, and go round again.
        var spinning = false
        // The earliest time a handler's timer falls due (wakeDeadline): sleep until then at most.
        var deadline: UInt64?
        while !exitRequested {
            kicked.removeAll(keepingCapacity: true)
            do {
                try epoll.wait(timeoutMilliseconds: spinning ? 0 : sleepMilliseconds(until: deadline)) { token, _ in
                    if token == Self.wakeupToken { return }
                    kicked.append(RingKey(token: token & ~Self.handlerWakeBit))
                }
            } catch {
                logger.critical("worker \(id): \(error)")
                return
            }
            drainMailbox()
            for key in kicked { drainKick(key) }
            var busy = false
            for key in kicked where service(key) > 0 { busy = true }
            for key in unkicked where service(key) > 0 { busy = true }
            if servicePending() { busy = true }
            if spinning || deadline.map({ monotonicNanoseconds() >= $0 }) == true {
                for key in rings.keys where service(key) > 0 { busy = true }
            }
            spinning = false
            deadline = nil
            // Poll while there is work; before sleeping ask for kicks again. Work that arrived
            // during the switch counts as work: it sends the worker back to polling.
            while !exitRequested {
                if busy { pollWhileBusy() }
                let (raced, handlersWaiting, due) = rearmBeforeSleeping()
                deadline = due
                if raced.isEmpty { break }
                busy = false
                for key in raced where service(key) > 0 { busy = true }
                if !busy {
                    // A ring that raced but gave no work (buffers a handler holds, like event
                    // buffers) has its kicks enabled again: sleep. Only a handler that is
                    // waiting for time to pass keeps the worker going.
                    spinning = handlersWaiting
                    break
                }
            }
        }
        rings.removeAll()
    }

    private func drainKick(_ key: RingKey) {
        guard let fd = rings[key]?.kick?.rawValue else { return }
        var value: UInt64 = 0
        _ = Glibc.read(fd, &value, 8)
    }

    /// Keeps servicing rings, with guest kicks suppressed, until none had work for the budget.
    private func pollWhileBusy() {
        guard pollBudgetNanoseconds > 0 else { return }
        logger.trace("worker \(id): polling")
        defer { logger.trace("worker \(id): polling ends") }
        var deadline = monotonicNanoseconds() + pollBudgetNanoseconds
        while monotonicNanoseconds() < deadline && !exitRequested {
            // Control-plane requests are served without leaving the busy loop: leaving would
            // re-enable guest kicks and delay the request until the guest goes idle.
            if mailboxPending { drainMailbox() }
            var did = 0
            for key in rings.keys where !broken.contains(key) { did += service(key) }
            if did > 0 { deadline = monotonicNanoseconds() + pollBudgetNanoseconds }
        }
    }

    /// Asks every quiet ring for kicks again and returns those that already have work, and the
    /// earliest handler deadline. Enabling re-checks the ring after a full fence, so nothing
    /// published during the switch waits for a kick that will not come. Handlers re-arm their own
    /// sources the same way.
    private func rearmBeforeSleeping() -> (raced: [RingKey], handlersWaiting: Bool, deadline: UInt64?) {
        var raced: [RingKey] = []
        var waiting = false
        var deadline: UInt64?
        for key in quiet where !broken.contains(key) {
            if rings[key]?.queue.enableNotifications() == true { raced.append(key) }
        }
        quiet.removeAll(keepingCapacity: true)
        for (key, ring) in rings where !broken.contains(key) {
            let handlerWork = ring.handler.prepareToSleep()
            if handlerWork { waiting = true }
            if handlerWork || ring.handler.hasPendingWork { raced.append(key) }
            if let due = ring.handler.wakeDeadline { deadline = min(deadline ?? due, due) }
        }
        return (raced, waiting, deadline)
    }

    /// epoll's timeout: forever, 1 ms while a ring has no kick descriptor, or until `deadline`
    /// rounded down (under a millisecond left: 0, so the last stretch is polled, not overslept).
    private func sleepMilliseconds(until deadline: UInt64?) -> Int32 {
        var timeout: Int32 = unkicked.isEmpty ? -1 : 1
        if let deadline {
            let now = monotonicNanoseconds()
            let left = deadline > now ? Int32(clamping: (deadline - now) / 1_000_000) : 0
            timeout = timeout < 0 ? left : min(timeout, left)
        }
        return timeout
    }

    /// Services rings whose handlers produced work of their own; true if any did something.
    private func servicePending() -> Bool {
        var did = false
        for (key, ring) in rings where ring.handler.hasPendingWork && !broken.contains(key) {
            if service(key) > 0 { did = true }
        }
        return did
    }

    private var mailboxPending: Bool { mailbox.withLock { !$0.isEmpty } }

    /// Drains ring `key` with guest notifications suppressed (re-armed before the worker sleeps),
    /// then signals the guest if the ring's suppression rules ask for it. Returns the work done.
    @discardableResult
    private func service(_ key: RingKey) -> Int {
        guard let ring = rings[key], !broken.contains(key) else { return 0 }
        if quiet.insert(key).inserted { ring.queue.disableNotifications() }
        var work = 0
        let usedBefore = ring.queue.nextUsed
        do {
            work = try ring.handler.process(ring.queue)
        } catch {
            markBroken(key, error)
        }
        if ring.queue.nextUsed != usedBefore, let call = ring.call, ring.queue.needsNotification() {
            EventFD.signal(rawDescriptor: call.rawValue)
        }
        return work
    }

    /// A guest error on a ring: stop using it and tell the front-end through the error
    /// descriptor. The ring stays stopped until the front-end restarts or resets it.
    private func markBroken(_ key: RingKey, _ error: QueueError) {
        broken.insert(key)
        logger.warning("\(key) broken by the guest: \(error)")
        if let kick = rings[key]?.kick { epoll.remove(kick.rawValue) }
        if let wake = rings[key]?.handler.wakeDescriptor { epoll.remove(wake) }
        if let err = rings[key]?.err { EventFD.signal(rawDescriptor: err.rawValue) }
    }

    private func drainMailbox() {
        wakeup.drain()
        let commands = mailbox.withLock { box in
            defer { box.removeAll(keepingCapacity: true) }
            return box
        }
        for command in commands {
            switch command {
            case .attach(let ring, let done):
                if let old = rings[ring.key]?.kick { epoll.remove(old.rawValue) }
                if let old = rings[ring.key]?.handler.wakeDescriptor { epoll.remove(old) }
                rings[ring.key] = ring
                broken.remove(ring.key)
                if ring.kick == nil { unkicked.insert(ring.key) } else { unkicked.remove(ring.key) }
                var accepted = true
                if let kick = ring.kick {
                    do { try epoll.add(kick.rawValue, token: ring.key.token) } catch {
                        logger.error("\(ring.key): \(error)")
                        accepted = false
                    }
                }
                if let wake = ring.handler.wakeDescriptor {
                    do { try epoll.add(wake, token: ring.key.token | Self.handlerWakeBit) } catch {
                        logger.error("\(ring.key) wake descriptor: \(error)")
                        accepted = false
                    }
                }
                done.fulfil(accepted)
                // Kicks sent before the ring was started are not lost: look at the ring now.
                service(ring.key)
            case .detach(let key, let done):
                if let ring = rings.removeValue(forKey: key) {
                    if let kick = ring.kick { epoll.remove(kick.rawValue) }
                    if let wake = ring.handler.wakeDescriptor { epoll.remove(wake) }
                    broken.remove(key)
                    quiet.remove(key)
                    unkicked.remove(key)
                    done.fulfil(ring.queue.nextAvail)
                } else {
                    done.fulfil(nil)
                }
            case .setCall(let key, let fd, let done):
                rings[key]?.call = fd
                // A new interrupt path may have missed a signal on the old one (see libvhost-user).
                if let fd, rings[key] != nil { EventFD.signal(rawDescriptor: fd.rawValue) }
                done.fulfil(true)
            case .setErr(let key, let fd, let done):
                rings[key]?.err = fd
                done.fulfil(true)
            case .setUsedLogging(let key, let on, let address):
                rings[key]?.queue.setUsedLogging(on, usedLogAddress: address)
            case .updateMemory(let session, let memory, let done):
                for (key, ring) in rings where key.session == session {
                    do { try ring.queue.updateMemory(memory) } catch { markBroken(key, error) }
                }
                done.fulfil(true)
            case .exit:
                exitRequested = true
            }
        }
    }
}

@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
