// SPDX-License-Identifier: Apache-2.0
// Fuzz driver, one executable for every target. Two builds:
//  - plain (`swift build`): `VRDMAFuzz <target> [--runs N] [--seed S] [--max-len L] [--emit-seeds DIR] [files…]`
//    replays the files, then runs N inputs from a seeded PRNG: half random bytes, half mutations
//    of valid messages. Deterministic for a given seed, so CI smoke runs are reproducible.
//  - libFuzzer (`-Xswiftc -sanitize=fuzzer,address -Xswiftc -DLIBFUZZER`, see scripts/fuzz.sh):
//    runs libFuzzer's driver on the target named by $VRDMA_FUZZ_TARGET (default: message); with
//    $VRDMA_FUZZ_SEEDS=DIR it first writes the valid seed messages into DIR (the corpus).
import Glibc
import LinuxSystem
import VhostUser

typealias FuzzTarget = @Sendable (UnsafeRawBufferPointer) -> Int32

let fuzzTargets: [String: FuzzTarget] = [
    "message": messageDecoderFuzzTarget,
    "descriptor-chain": descriptorChainFuzzTarget,
]

/// Valid inputs to mutate from, in each target's input format (see MessageDecoderTarget.swift).
func seedInputs(for target: String) -> [[UInt8]] {
    guard target == "message" else {
        // The chain target reads its bytes as ring contents; all-zero and all-ones rings are the
        // two extremes (empty chains, and every flag and index maxed out).
        return [Array(repeating: 0, count: 600), Array(repeating: 0xff, count: 600)]
    }
    func m(_ r: FrontendRequest, _ payload: [UInt8] = [], fds: UInt8 = 0, flags: UInt32 = 1) -> [UInt8] {
        [fds] + MessageHeader(request: r.rawValue, flags: flags, size: UInt32(payload.count)).encoded + payload
    }
    let region = MemoryRegionDescription(guestPhysicalAddress: 0, size: 0x10_0000, userAddress: 0x7f00_0000_0000, mmapOffset: 0)
    let inflight = InflightDescription(mmapSize: 0x1000, mmapOffset: 0, queueCount: 2, queueSize: 64)
    return [
        m(.getFeatures),
        m(.setFeatures, encodeU64(VirtioFeature.version1 | VirtioFeature.protocolFeatures), flags: 9),
        m(.setProtocolFeatures, encodeU64(ProtocolFeatures([.multipleQueues, .replyAck, .config]).rawValue)),
        m(.setMemTable, MemoryTablePayload.encode([region]), fds: 1),
        m(.setMemTable, MemoryTablePayload.encode(Array(repeating: region, count: 8)), fds: 8),
        m(.setVringAddr, VringAddress(index: 0, flags: 1, descriptorUserAddress: 0x7f00_0000_1000, usedUserAddress: 0x7f00_0000_3000,
                                      availUserAddress: 0x7f00_0000_2000, logGuestAddress: 0x3000).encoded),
        m(.setVringNum, VringState(index: 1, num: 256).encoded),
        m(.setVringKick, encodeU64(1), fds: 1),
        m(.setVringCall, encodeU64(0x100)),
        m(.getConfig, ConfigAccess(offset: 0, size: 16, flags: 0, payload: Array(repeating: 0, count: 16)).encoded),
        m(.setLogBase, LogDescription(mmapSize: 0x1000, mmapOffset: 0).encoded, fds: 1),
        m(.addMemReg, SingleRegionPayload.encode(region), fds: 1),
        m(.remMemReg, SingleRegionPayload.encode(region)),
        m(.getInflightFD, inflight.encoded),
        // Several messages in one stream: the connection path must keep them in step.
        m(.getFeatures) + Array(m(.setOwner).dropFirst()) + Array(m(.setVringEnable, VringState(index: 0, num: 1).encoded).dropFirst()),
    ]
}

/// Writes the seeds as files `seed-N` into `directory` (a starting corpus for libFuzzer).
func writeSeeds(for target: String, into directory: String) -> Bool {
    for (i, seed) in seedInputs(for: target).enumerated() {
        let fd = open("\(directory)/seed-\(i)", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        do { try seed.withUnsafeBytes { try OwnedFileDescriptor(adopting: fd).writeAll($0) } } catch { return false }
    }
    return true
}

#if LIBFUZZER

private let selectedTarget: FuzzTarget = {
    let name = getenv("VRDMA_FUZZ_TARGET").map { String(cString: $0) } ?? "message"
    guard let target = fuzzTargets[name] else { fatalError("VRDMA_FUZZ_TARGET: unknown target '\(name)'") }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func llvmFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selectedTarget(UnsafeRawBufferPointer(start: data, count: size))
}

/// libFuzzer's own entry point (FuzzerDriver.cpp). SwiftPM links executables with main aliased
/// to this module's top-level code, so libFuzzer's `main` is never pulled from the archive: the
/// top-level code hands control to the driver instead (no -parse-as-library needed).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<Int32>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

_ = selectedTarget  // an unknown target fails now, not on the first input
if let dir = getenv("VRDMA_FUZZ_SEEDS").map({ String(cString: $0) }) {
    guard writeSeeds(for: getenv("VRDMA_FUZZ_TARGET").map { String(cString: $0) } ?? "message", into: dir) else {
        fatalError("VRDMA_FUZZ_SEEDS: cannot write seeds into \(dir)")
    }
}
var fuzzerArgc = CommandLine.argc
var fuzzerArgv = CommandLine.unsafeArgv
exit(runFuzzerDriver(&fuzzerArgc, &fuzzerArgv) { llvmFuzzerTestOneInput($0, $1) })

#else

/// SplitMix64: tiny, fast and fully determined by its seed.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

/// A few byte-level edits, biased toward the values that sit on the decoder's boundaries.
func mutate(_ seed: [UInt8], _ rng: inout SplitMix64, maxLength: Int) -> [UInt8] {
    let interesting: [UInt32] = [0, 1, 7, 8, 9, 12, 31, 32, 40, 0xff, 0x100, 0x101, 256, 257, 4096, 4097, 0x7fff_ffff, 0xffff_ffff]
    var b = seed
    for _ in 0...rng.below(4) {
        let at = rng.below(max(b.count, 1))
        switch rng.below(8) {
        case 0 where !b.isEmpty: b[at] ^= 1 << UInt8(rng.below(8))
        case 1 where !b.isEmpty: b[at] = UInt8(truncatingIfNeeded: interesting[rng.below(interesting.count)])
        case 2: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: min(at, b.count))
        case 3 where !b.isEmpty: b.remove(at: at)
        case 4: b = Array(b.prefix(rng.below(b.count + 1)))
        case 5 where b.count >= 4:  // a whole little-endian field: request, flags, size, count…
            let v = interesting[rng.below(interesting.count)], o = rng.below(b.count - 3)
            for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
        case 6: b += rng.bytes(rng.below(48))
        default: if !b.isEmpty { b[0] = UInt8(rng.below(10)) }  // descriptor count
        }
    }
    return Array(b.prefix(maxLength))
}

// The input being run, written out by the crash handler so that a plain-driver crash leaves a
// file to replay (`VRDMAFuzz <target> crash-<target>`).
nonisolated(unsafe) var currentInput = UnsafeRawBufferPointer(start: nil, count: 0)
nonisolated(unsafe) var crashPath: UnsafeMutablePointer<CChar>? = nil
nonisolated(unsafe) var previousActions: [Int32: sigaction] = [:]

func installCrashHandler(target: String) {
    crashPath = strdup("crash-\(target)")
    for sig in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE] {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            // Only async-signal-safe calls here: open/write/close, then the previous handler
            // (Swift's backtracer) gets the signal once this handler returns.
            let fd = open(crashPath!, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd >= 0, let base = currentInput.baseAddress { _ = write(fd, base, currentInput.count) }
            if fd >= 0 { close(fd) }
            var previous = previousActions[sig] ?? sigaction()
            sigaction(sig, &previous, nil)
        }
        var old = sigaction()
        sigaction(sig, &action, &old)
        previousActions[sig] = old
    }
}

func fail(_ message: String) -> Never {
    let text = "VRDMAFuzz: \(message)\nusage: VRDMAFuzz message|descriptor-chain [--runs N] [--seed S] [--max-len L] [--emit-seeds DIR] [files…]\n"
    _ = text.withCString { write(2, $0, strlen($0)) }  // stderr the global is not concurrency-safe
    exit(2)
}

func readFile(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { fail("cannot open \(path): \(String(cString: strerror(errno)))") }
    let owned = OwnedFileDescriptor(adopting: fd)
    do {
        var bytes = [UInt8](repeating: 0, count: try owned.fileSize())
        _ = try bytes.withUnsafeMutableBytes { try owned.readExactly(into: $0) }
        return bytes
    } catch {
        fail("\(path): \(error)")
    }
}

var arguments = CommandLine.arguments.dropFirst()
guard let targetName = arguments.popFirst(), let target = fuzzTargets[targetName] else { fail("unknown or missing target") }
var runs = 10_000, seed: UInt64 = 1, maxLength = 1024, files: [String] = [], seedDirectory: String? = nil
while let arg = arguments.popFirst() {
    func value<T: LosslessStringConvertible>() -> T {
        guard let text = arguments.popFirst(), let v = T(text) else { fail("\(arg) needs a valid value") }
        return v
    }
    switch arg {
    case "--runs": runs = value()
    case "--seed": seed = value()
    case "--max-len": maxLength = value()
    case "--emit-seeds": seedDirectory = value() as String
    default: if arg.hasPrefix("-") { fail("unknown option \(arg)") } else { files.append(arg) }
    }
}

let seeds = seedInputs(for: targetName)
if let dir = seedDirectory {
    guard writeSeeds(for: targetName, into: dir) else { fail("cannot write seeds into \(dir)") }
    exit(0)
}

installCrashHandler(target: targetName)
func run(_ input: [UInt8]) {
    input.withUnsafeBytes { buffer in
        currentInput = buffer
        _ = target(buffer)
    }
}

var count = 0
for path in files { run(readFile(path)); count += 1 }
for s in seeds { run(s); count += 1 }
var rng = SplitMix64(state: seed)
for i in 0..<runs {
    if i % 2 == 0 {
        // Mostly short inputs: that is where headers and small payloads meet their bounds.
        let length = rng.below(4) == 0 ? rng.below(maxLength + 1) : rng.below(min(64, maxLength) + 1)
        run(rng.bytes(length))
    } else {
        run(mutate(seeds[rng.below(seeds.count)], &rng, maxLength: maxLength))
    }
    count += 1
}
print("fuzz \(targetName): \(count) inputs, 0 crashes")

#endif
