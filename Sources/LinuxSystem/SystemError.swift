// SPDX-License-Identifier: Apache-2.0
// The one error type for failed system calls: the errno and what was being done. Every wrapper in
// this module throws it, so callers above never read errno themselves.
import Glibc

public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    public let errno: Int32
    public let operation: String

    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    /// Captures the current errno; call immediately after the failing libc call.
    @inline(never)
    public static func last(_ operation: String) -> SystemError {
        SystemError(errno: Glibc.errno, operation: operation)
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs a libc call, retrying EINTR, and throws `SystemError` for -1.
@inline(__always)
public func retryingInterrupts<T: FixedWidthInteger>(_ operation: @autoclosure () -> String, _ call: () -> T) throws(SystemError) -> T {
    while true {
        let result = call()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(errno: code, operation: operation())
    }
}
