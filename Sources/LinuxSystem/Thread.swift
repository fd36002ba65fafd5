// SPDX-License-Identifier: Apache-2.0
// Plain POSIX threads for the control and data planes (no executor: workers block in epoll_wait).
import CLinuxShims
import Glibc

public final class PosixThread: @unchecked Sendable {
    // @unchecked: `handle` is written once by pthread_create before any other thread can see self.
    private var handle = pthread_t()
    private var joined = false

    private final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) { self.name = name; self.body = body }
    }

    /// Starts `body` on a new thread named `name` (the kernel keeps 15 characters).
    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        let box = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
        let rc = pthread_create(&handle, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            CLinuxShims_set_thread_name(box.name)
            box.body()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError(errno: rc, operation: "pthread_create(\(name))")
        }
    }

    /// Detaches the calling thread: its resources go back to the system when it returns.
    /// For threads that end on their own and that nobody will join.
    public static func detachCurrent() {
        pthread_detach(pthread_self())
    }

    /// Waits for the thread to finish. Call at most once.
    public func join() {
        precondition(!joined, "thread joined twice")
        joined = true
        pthread_join(handle, nil)
    }
}

/// A one-shot hand-off between threads: one side `fulfil`s, the other `wait`s.
public final class Completion<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `value` is guarded by `mutex`. The pthread objects live on the heap because
    // they must not move, which Swift does not promise for stored properties.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var value: Value?

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func fulfil(_ v: Value) {
        pthread_mutex_lock(mutex)
        value = v
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    public func wait() -> Value {
        pthread_mutex_lock(mutex)
        while value == nil { pthread_cond_wait(condition, mutex) }
        let v = value!
        pthread_mutex_unlock(mutex)
        return v
    }
}
