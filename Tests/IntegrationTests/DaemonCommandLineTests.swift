// SPDX-License-Identifier: Apache-2.0
// The executable's contract with QEMU and operators: --print-capabilities JSON, --fd, usage
// errors, signals and exit codes (QEMU docs/interop/vhost-user.rst, "Backend program conventions").
import Foundation
import Glibc
import LinuxSystem
import Testing
import VRDMATestSupport

@Suite("vhost-user-rdma command line", .serialized)
struct DaemonCommandLineTests {
    /// Runs the daemon to completion with `args`; returns (exit status, stdout + stderr).
    func run(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: DaemonProcess.binaryPath)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("--print-capabilities prints a JSON object of type rdma")
    func capabilities() throws {
        let (status, output) = try run(["--print-capabilities"])
        #expect(status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(json["type"] as? String == "rdma")
        #expect((json["features"] as? [String])?.contains("dirty-log") == true)
    }

    @Test("usage errors exit with 64 and say what is wrong", arguments: [
        ([], "socket-path"), (["--socket-path", "/tmp/x", "--node-guid", "zz"], "hexadecimal"),
        (["--socket-path", "/tmp/x", "--node-guid", "0"], "must not be zero"), (["--socket-path", "/tmp/x", "--mac", "1:2"], "aa:bb"),
        (["--socket-path", "/tmp/x", "--mac", "02:00:00:00:00:01", "--mac", "02:00:00:00:00:02"], "2 --mac for 1 devices"),
        (["--socket-path", "/tmp/x", "--queue-size", "1000"], "power of two"), (["--socket-path", "/tmp/x", "--bogus"], "bogus"),
        (["--socket-path", "/tmp/x", "--provider", "rdma"], "unknown provider 'rdma'"),
        (["--socket-path", "/tmp/x", "--provider", "verbs"], "needs --ib-device"),
        (["--socket-path", "/tmp/x", "--ib-device", "mlx5_0"], "belong to --provider verbs"),
        (["--socket-path", "/tmp/x", "--provider", "verbs", "--provider-option", "colour=red"], "unknown --provider-option 'colour'"),
        (["--socket-path", "/tmp/x", "--provider", "verbs", "--provider-option", "port=x", "--ib-device", "a"], "not a port number"),
    ])
    func usageErrors(args: [String], message: String) throws {
        let (status, output) = try run(args)
        #expect(status == 64)
        #expect(output.contains(message), "\(output)")
    }

    @Test("--provider verbs with an RDMA device the host lacks: exit 1, naming what is there")
    func absentHostDevice() throws {
        let name = "vrdma-absent-device"
        for args in [["--provider", "verbs", "--ib-device", name], ["--provider", "verbs", "--provider-option", "ib-device=\(name)"]] {
            let (status, output) = try run(["--socket-path", "/tmp/vrdma-absent.sock"] + args)
            #expect(status == 1, "\(output)")
            #expect(output.contains("no RDMA device '\(name)'"), "\(output)")
            #expect(output.contains("present: ") || output.contains("this host has no RDMA devices"), "\(output)")
        }
        let (_, caps) = try run(["--print-capabilities"])
        #expect(caps.contains("\"verbs\""), "\(caps)")
    }

    @Test("--help documents the options and the exit status")
    func help() throws {
        let (status, output) = try run(["--help"])
        #expect(status == 0)
        for word in ["--socket-path", "--fd", "--print-capabilities", "--log-level", "EXIT STATUS", "SIGTERM"] {
            #expect(output.contains(word), "help lacks \(word)")
        }
    }

    @Test("the node GUID may be written with or without 0x")
    func guidPrefix() throws {
        let daemon = try DaemonProcess(extraArguments: ["--node-guid", "0x1234abcd"])
        let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
        try driver.bringUp()
        #expect(UInt64(littleEndian: try driver.queryDevice().node_guid) == 0x1234abcd)
        #expect(daemon.terminate() == 0)
    }

    @Test("each device gets its own --mac, in order; a device without one reports none")
    func macPerDevice() throws {
        let daemon = try DaemonProcess(devices: 3, extraArguments: ["--mac", "52:54:00:76:72:01", "--mac", "52:54:00:76:72:02"])
        var seen: [[UInt8]] = []
        for path in daemon.socketPaths {
            let device = try VerbsDevice(socketPath: path)
            seen.append(withUnsafeBytes(of: device.config.mac) { Array($0) })
        }
        #expect(seen == [[0x52, 0x54, 0, 0x76, 0x72, 1], [0x52, 0x54, 0, 0x76, 0x72, 2], [0, 0, 0, 0, 0, 0]])
        #expect(daemon.terminate() == 0)
    }

    @Test("a system error at start-up exits with 1")
    func startupFailure() throws {
        let (status, output) = try run(["--socket-path", "/nonexistent-dir/vrdma.sock"])
        #expect(status == 1)
        #expect(output.contains("bind"))
    }

    @Test("SIGTERM stops the daemon cleanly and removes its socket, even with a session open")
    func sigterm() throws {
        let daemon = try DaemonProcess()
        let driver = try ModelDriver(frontend: try TestFrontend(path: daemon.socketPaths[0]))
        try driver.bringUp()
        _ = try driver.queryDevice()
        #expect(daemon.terminate() == 0)
        #expect(access(daemon.socketPaths[0], F_OK) != 0, "socket file left behind")
        #expect(daemon.log.contains("stopped"))
    }

    @Test("--fd serves an inherited connected socket and exits when it closes")
    func inheritedConnectedSocket() throws {
        let p = Process()
        // Our end lives only inside this function: closing it is what ends the daemon.
        func talk() throws {
            let (mine, theirs) = try UnixSocket.pair()
            p.executableURL = URL(fileURLWithPath: DaemonProcess.binaryPath)
            // Process passes descriptors 0-2 only; hand the socket over as standard input.
            p.arguments = ["--fd=0", "--log-level", "error"]
            p.standardInput = FileHandle(fileDescriptor: theirs.rawValue, closeOnDealloc: false)
            try p.run()
            let driver = try ModelDriver(frontend: try TestFrontend(socket: mine))
            try driver.bringUp()
            _ = try driver.queryDevice()
        }
        try talk()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    @Test("--fd serves an inherited listening socket")
    func inheritedListeningSocket() throws {
        let dir = DaemonProcess.makeTemporaryDirectory()
        let path = dir + "/listen.sock"
        let listener = try UnixSocket.listen(path: path)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: DaemonProcess.binaryPath)
        p.arguments = ["--fd=0", "--log-level", "error"]
        p.standardInput = FileHandle(fileDescriptor: listener.rawValue, closeOnDealloc: false)
        try p.run()
        let driver = try ModelDriver(frontend: try TestFrontend(path: path))
        try driver.bringUp()
        _ = try driver.queryDevice()
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }
}
