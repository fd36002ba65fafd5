// SPDX-License-Identifier: Apache-2.0
// The daemon's front door: one listening socket (or inherited connection) per device, a control
// thread per connection, a shared pool of data-plane workers, and orderly shutdown on a signal.
import Glibc
import LinuxSystem
import Logging
import Synchronization
import VhostUser

public struct ServerConfiguration: Sendable {
    public var workerCount: Int
    /// How long a worker keeps polling its rings after the last work before it sleeps again.
    public var pollBudgetNanoseconds: UInt64
    public init(workerCount: Int, pollBudgetNanoseconds: UInt64) {
        self.workerCount = workerCount
        self.pollBudgetNanoseconds = pollBudgetNanoseconds
    }
}

public final class VhostUserServer: @unchecked Sendable {
    // @unchecked: the endpoint list is built before `run` and then only read; `active` is locked.
    private final class Endpoint: Sendable {
        let name: String
        let listener: OwnedFileDescriptor?
        let connected: OwnedFileDescriptor?
        let path: String?
        let device: any VhostUserDevice
        /// Held for the whole of a connection, so a reconnecting front-end waits for the old
        /// session's clean-up instead of racing it.
        let busy = Mutex(())

        init(name: String, listener: OwnedFileDescriptor? = nil, connected: OwnedFileDescriptor? = nil,
             path: String? = nil, device: any VhostUserDevice) {
            self.name = name; self.listener = listener; self.connected = connected; self.path = path; self.device = device
        }
    }

    private let configuration: ServerConfiguration
    private let logger: Logger
    private var endpoints: [Endpoint] = []
    private let workers: [VringWorker]
    private let nextSession = Atomic<UInt32>(1)
    /// Connections being served. An entry is made before its thread starts, so a connection
    /// that ends at once can never leave a stale entry behind.
    private final class ActiveConnection: @unchecked Sendable {
        // @unchecked: `thread` is set once, under the `active` lock, before anyone reads it.
        let socket: OwnedFileDescriptor
        var thread: PosixThread?
        init(socket: OwnedFileDescriptor) { self.socket = socket }
    }
    private struct Connections {
        var byID: [UInt32: ActiveConnection] = [:]
        /// Set by shutdown, which then joins every thread; before that, threads detach themselves.
        var stopping = false
    }
    private let active = Mutex(Connections())

    public init(configuration: ServerConfiguration, logger: Logger) throws(SystemError) {
        self.configuration = configuration
        self.logger = logger
        var workers: [VringWorker] = []
        for i in 0..<max(1, configuration.workerCount) {
            workers.append(try VringWorker(id: i, pollBudgetNanoseconds: configuration.pollBudgetNanoseconds, logger: logger))
        }
        self.workers = workers
    }

    /// Serves `device` on a socket created at `path`.
    public func listen(path: String, device: any VhostUserDevice) throws(SystemError) {
        let listener = try UnixSocket.listen(path: path)
        endpoints.append(Endpoint(name: path, listener: listener, path: path, device: device))
        logger.info("listening on \(path)")
    }

    /// Serves `device` on an inherited descriptor: a listening socket, or one already connected.
    public func adopt(descriptor fd: Int32, device: any VhostUserDevice) throws(SystemError) {
        guard UnixSocket.isSocket(fd) else { throw SystemError(errno: ENOTSOCK, operation: "--fd=\(fd)") }
        let owned = OwnedFileDescriptor(adopting: fd)
        var accepting: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len)
        if accepting != 0 {
            endpoints.append(Endpoint(name: "fd \(fd)", listener: owned, device: device))
        } else {
            endpoints.append(Endpoint(name: "fd \(fd)", connected: owned, device: device))
        }
        logger.info("serving inherited fd \(fd) (\(accepting != 0 ? "listening" : "connected"))")
    }

    /// Runs until SIGINT/SIGTERM (or, with only inherited connected sockets, until they close).
    /// `signals` must have been created before any thread was started.
    public func run(signals: SignalDescriptor) throws(SystemError) {
        let epoll = try Epoll()
        let signalToken = UInt64.max
        try epoll.add(signals.descriptor.rawValue, token: signalToken)
        for (i, e) in endpoints.enumerated() {
            if let l = e.listener { try epoll.add(l.rawValue, token: UInt64(i)) }
            if let c = e.connected { startConnection(c, endpoint: i) }
        }
        let onlyConnected = endpoints.allSatisfy { $0.listener == nil }
        var running = true
        while running {
            try epoll.wait(timeoutMilliseconds: onlyConnected ? 200 : -1) { token, _ in
                if token == signalToken {
                    if let sig = signals.take() { logger.info("signal \(sig): shutting down") }
                    running = false
                    return
                }
                let i = Int(token)
                guard let listener = endpoints[i].listener else { return }
                do { startConnection(try UnixSocket.accept(listener), endpoint: i) } catch {
                    logger.error("accept on \(endpoints[i].name): \(error)")
                }
            }
            if onlyConnected && active.withLock({ $0.byID.isEmpty }) { running = false }
        }
        shutdown()
    }

    private func startConnection(_ socket: OwnedFileDescriptor, endpoint i: Int) {
        let id = nextSession.wrappingAdd(1, ordering: .relaxed).oldValue
        let endpoint = endpoints[i]
        let log = logger.with(metadata: ["session": "\(id)", "socket": "\(endpoint.name)"])
        let workers = self.workers
        let entry = ActiveConnection(socket: socket)
        active.withLock { $0.byID[id] = entry }
        do {
            let thread = try PosixThread(name: "vhost-ctl-\(id)") { [self] in
                endpoint.busy.withLock { _ in
                    log.info("front-end connected")
                    let session = Session(id: id, device: endpoint.device, workers: workers, logger: log)
                    let why = VhostUserConnection(socket: socket).serve(session, logger: log)
                    session.disconnect()
                    log.info("session ended: \(why)")
                }
                active.withLock { c in
                    guard !c.stopping else { return }  // shutdown joins us
                    c.byID[id] = nil
                    PosixThread.detachCurrent()
                }
            }
            active.withLock { _ in entry.thread = thread }
        } catch {
            active.withLock { $0.byID[id] = nil }
            logger.error("cannot start a control thread: \(error)")
        }
    }

    private func shutdown() {
        // Wake every control thread blocked in recvmsg; each then cleans up its session.
        let sessions = active.withLock { c in
            c.stopping = true
            return Array(c.byID.values)
        }
        for c in sessions { UnixSocket.shutdown(c.socket) }
        for c in sessions { active.withLock { _ in c.thread }?.join() }
        for w in workers { w.stop() }
        for e in endpoints { if let p = e.path { unlink(p) } }
        logger.info("stopped")
    }
}

extension Logger {
    func with(metadata: Logger.Metadata) -> Logger {
        var copy = self
        for (k, v) in metadata { copy[metadataKey: k] = v }
        return copy
    }
}
