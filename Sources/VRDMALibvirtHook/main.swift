// SPDX-License-Identifier: Apache-2.0
// vrdma-libvirt-hook: installed as /etc/libvirt/hooks/qemu.d/vrdma (docs/libvirt.md). Wiring only:
// read libvirt's arguments and the domain XML, call LibvirtHook, print one line on refusal.
import Glibc
import LibvirtHook

let usage = """
    usage: vrdma-libvirt-hook [--config FILE] DOMAIN OPERATION SUB-OPERATION EXTRA   (libvirt; domain XML on stdin)
           vrdma-libvirt-hook --dry-run [--operation prepare|release|migrate|restore] [--config FILE] [XML-FILE]
           vrdma-libvirt-hook run-backend UUID [--config FILE]     (ExecStart of vrdma-backend@.service)
           vrdma-libvirt-hook supervise STATE-DIR STOP-SECONDS      (internal: the supervised back-end)
    Settings: \(HookSettings.defaultPath) (daemon, run-dir, service-manager, systemd-unit, start-timeout,
    stop-timeout, socket-group). Exit status: 0 done or nothing to do, 1 refused (reason on stderr), 2 usage.
    """

func fail(_ message: String, status: Int32 = 1) -> Never {
    let line = message.split(separator: "\n").joined(separator: " ")
    writeStandardError("vrdma-libvirt-hook: \(line)\n")
    exit(status)
}

func readAll(_ fd: Int32) -> String {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += chunk[..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

func printNotices(_ hook: Hook) {
    for n in hook.notices { writeStandardError("vrdma-libvirt-hook: note: \(n)\n") }
}

var args = Array(CommandLine.arguments.dropFirst())
var configPath: String?
if let i = args.firstIndex(of: "--config") {
    guard i + 1 < args.count else { fail("--config needs a FILE", status: 2) }
    configPath = args[i + 1]
    args.removeSubrange(i...(i + 1))
}
if args.first == "--help" || args.first == "-h" {
    print(usage)
    exit(0)
}
if args.first == "supervise" {
    guard args.count == 3, let timeout = Double(args[2]) else { fail("usage: supervise STATE-DIR STOP-SECONDS", status: 2) }
    exit(BackendSupervisor.run(stateDirectory: args[1], stopTimeout: timeout))
}

let settings: HookSettings
do { settings = try HookSettings.load(path: configPath) } catch { fail("\(error)") }

if args.first == "run-backend" {
    guard args.count == 2 else { fail("usage: run-backend UUID", status: 2) }
    exit(BackendSupervisor.execBackend(uuid: args[1], settings: settings))
}

if args.first == "--dry-run" {
    args.removeFirst()
    var operation = Hook.DryRunOperation.prepare
    if let i = args.firstIndex(of: "--operation") {
        guard i + 1 < args.count, let op = Hook.DryRunOperation(rawValue: args[i + 1]) else {
            fail("--operation takes prepare, release, migrate or restore", status: 2)
        }
        operation = op
        args.removeSubrange(i...(i + 1))
    }
    guard args.count <= 1 else { fail("--dry-run takes one XML file (or none: standard input)", status: 2) }
    let xml: String
    if let file = args.first, file != "-" {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { fail("cannot read \(file): \(String(cString: strerror(errno)))") }
        xml = readAll(fd)
        close(fd)
    } else {
        xml = readAll(0)
    }
    let hook = Hook(settings: settings)
    do {
        let domain = try DomainDefinition.parse(xml)
        for line in try hook.dryRun(domain, operation: operation) { print(line) }
        printNotices(hook)
    } catch {
        print("would refuse: \(error)")
        fail("\(error)")
    }
    exit(0)
}

// libvirt: DOMAIN OPERATION SUB-OPERATION EXTRA, the domain XML on stdin (always read whole, so
// libvirt's write never fails, even for operations the hook ignores).
guard args.count == 4, !args[0].hasPrefix("-") else { fail("expected 4 arguments from libvirt\n\(usage)", status: 2) }
let (name, operation, subOperation) = (args[0], args[1], args[2])
let input = readAll(0)
let hook = Hook(settings: settings)
do {
    switch (operation, subOperation) {
    case ("prepare", "begin"):
        try hook.prepare(try DomainDefinition.parse(input))
    case ("release", "end"):
        // Only the UUID is needed; fall back to the name if the XML cannot be read.
        if let domain = try? DomainDefinition.parse(input) {
            try hook.release(uuid: domain.uuid)
        } else if let uuid = Hook.recordedUUID(domainName: name, settings: settings) {
            try hook.release(uuid: uuid)
        }
    case ("migrate", "begin"), ("restore", "begin"):
        if let xml = try hook.filter(try DomainDefinition.parse(input)) { print(xml, terminator: "") }
    default:
        break
    }
} catch {
    printNotices(hook)
    fail("\(name): \(error)")
}
printNotices(hook)
exit(0)
