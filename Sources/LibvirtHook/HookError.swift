// SPDX-License-Identifier: Apache-2.0
// The hook's one error type. Every refusal is one line: libvirt shows the hook's stderr to the
// operator in "Hook script execution failed: ...". Case = the layer that refused.
import LinuxSystem

public enum HookError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The domain XML is not well-formed.
    case xml(XMLError)
    /// The domain XML or its vrdma metadata says something invalid or inconsistent.
    case configuration(String)
    /// The host does not have what the configuration names (a PF, a VF, the daemon binary).
    case host(String)
    /// The kernel refused a netlink request.
    case netlink(NetlinkError)
    /// A system call failed.
    case system(SystemError)
    /// The back-end could not be started or stopped.
    case backend(String)
    /// The hook's own settings file is invalid.
    case settings(String)

    public var description: String {
        switch self {
        case .xml(let e): "domain XML: \(e)"
        case .configuration(let m): m
        case .host(let m): m
        case .netlink(let e): e.description
        case .system(let e): e.description
        case .backend(let m): "back-end: \(m)"
        case .settings(let m): m
        }
    }
}
