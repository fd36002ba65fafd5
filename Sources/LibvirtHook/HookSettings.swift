// SPDX-License-Identifier: Apache-2.0
// The host's own settings (/etc/vrdma/libvirt-hook.conf): where the daemon binary is, where
// per-domain state lives, how the back-end is run. Host facts, not domain facts: a domain XML
// cannot choose which binary root runs.

public struct HookSettings: Sendable, Equatable {
    public static let defaultPath = "/etc/vrdma/libvirt-hook.conf"

    public enum ServiceManager: String, Sendable {
        /// systemd when it is the init system (/run/systemd/system exists), else process.
        case auto
        case systemd
        case process
    }

    public var daemon = "/usr/local/bin/vhost-user-rdma"
    /// Per-domain state, logs and default sockets: `<run-dir>/<domain uuid>/`.
    public var runDirectory = "/run/vrdma"
    public var serviceManager = ServiceManager.auto
    /// Template unit name without "@.service": started as `<unit>@<uuid>.service`.
    public var systemdUnit = "vrdma-backend"
    public var startTimeout = 10.0
    public var stopTimeout = 5.0
    /// Group given access to the sockets (QEMU's group). nil: the `group` of
    /// /etc/libvirt/qemu.conf, else "libvirt-qemu" if it exists.
    public var socketGroup: String?
    /// Root of sysfs (tests point it at a fake tree).
    public var sysfsRoot = "/sys"

    public init() {}

    /// Reads `path`; a missing file at the default path means defaults.
    public static func load(path: String?) throws(HookError) -> HookSettings {
        let p = path ?? defaultPath
        guard let text = readTextFile(p) else {
            if path == nil { return HookSettings() }
            throw .settings("settings file \(p) cannot be read")
        }
        return try parse(text, source: p)
    }

    /// `key = value` lines; '#' starts a comment.
    public static func parse(_ text: String, source: String = "settings") throws(HookError) -> HookSettings {
        var s = HookSettings()
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").trimmed
            if line.isEmpty { continue }
            guard let eq = line.firstIndex(of: "=") else { throw .settings("\(source):\(n + 1): expected key = value") }
            let key = String(line[..<eq]).trimmed
            let value = String(line[line.index(after: eq)...]).trimmed
            func bad(_ what: String) -> HookError { .settings("\(source):\(n + 1): \(key) \(what)") }
            switch key {
            case "daemon":
                guard value.hasPrefix("/") else { throw bad("must be an absolute path") }
                s.daemon = value
            case "run-dir":
                guard value.hasPrefix("/"), value.utf8.count < 60 else { throw bad("must be an absolute path shorter than 60 bytes (sockets live below it)") }
                s.runDirectory = value
            case "service-manager":
                guard let m = ServiceManager(rawValue: value) else { throw bad("must be auto, systemd or process") }
                s.serviceManager = m
            case "systemd-unit":
                guard !value.isEmpty, value.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else { throw bad("must be a unit name without @.service") }
                s.systemdUnit = value
            case "start-timeout", "stop-timeout":
                guard let v = Double(value), v > 0, v <= 300 else { throw bad("must be seconds in (0, 300]") }
                if key == "start-timeout" { s.startTimeout = v } else { s.stopTimeout = v }
            case "socket-group":
                guard !value.isEmpty else { throw bad("must name a group") }
                s.socketGroup = value
            case "sysfs":
                guard value.hasPrefix("/") else { throw bad("must be an absolute path") }
                s.sysfsRoot = value
            default:
                throw .settings("\(source):\(n + 1): unknown setting '\(key)'")
            }
        }
        return s
    }
}
