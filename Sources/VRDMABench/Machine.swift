// SPDX-License-Identifier: Apache-2.0
// Facts about the machine, recorded with the figures: a ratio means little without knowing what
// it was measured on and how busy the machine was.
import Glibc

struct Machine: Sendable {
    let cpus: Int
    let kernelRelease: String
    let architecture: String
    let cpuModel: String?
    let l2CacheBytes: Int?
    let l3CacheBytes: Int?
    let clockSource: String?
    let clockOverheadNanoseconds: Double
    /// 1-, 5- and 15-minute load averages when the run started: other work skews every figure.
    let loadAverage: [Double]
    let date: String
    let build: String

    static func current() -> Machine {
        var names = utsname()
        uname(&names)
        let cpuModel = readText("/proc/cpuinfo")?
            .split(separator: "\n")
            .first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { String($0.drop { $0 == " " }) }
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        return Machine(
            cpus: sysconf(Int32(_SC_NPROCESSORS_ONLN)),
            kernelRelease: cString(names.release),
            architecture: cString(names.machine),
            cpuModel: cpuModel,
            l2CacheBytes: cacheBytes(level: 2),
            l3CacheBytes: cacheBytes(level: 3),
            clockSource: readText("/sys/devices/system/clocksource/clocksource0/current_clocksource")
                .map { String($0.filter { !$0.isWhitespace }) },
            clockOverheadNanoseconds: Clock.overheadNanoseconds(),
            loadAverage: readText("/proc/loadavg").map { $0.split(separator: " ").prefix(3).compactMap { Double($0) } } ?? [],
            date: utcNow(),
            build: build)
    }

    /// The size of CPU 0's data or unified cache at `level`, from sysfs ("1024K").
    static func cacheBytes(level: Int) -> Int? {
        for index in 0..<8 {
            let dir = "/sys/devices/system/cpu/cpu0/cache/index\(index)"
            guard let l = readText("\(dir)/level"), Int(l.filter(\.isNumber)) == level,
                  let type = readText("\(dir)/type"), !type.hasPrefix("Instruction"),
                  let size = readText("\(dir)/size")?.filter({ !$0.isWhitespace }) else { continue }
            let scale = size.hasSuffix("K") ? 1 << 10 : size.hasSuffix("M") ? 1 << 20 : 1
            return Int(size.filter(\.isNumber)).map { $0 * scale }
        }
        return nil
    }
}

/// The current time as ISO 8601 in UTC.
func utcNow() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var text = [CChar](repeating: 0, count: 32)
    let n = strftime(&text, text.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
    return String(decoding: text.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A small text file (procfs, sysfs), or nil when it cannot be read.
func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk.prefix(n)
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// A fixed-size C character array (utsname fields) as a String.
private func cString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}
