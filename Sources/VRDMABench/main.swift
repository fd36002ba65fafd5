// SPDX-License-Identifier: Apache-2.0
// make bench: device figures as ratios of baselines measured in the same run, printed as a table
// and written as JSON. Missed targets are reported, not failures; the exit status is non-zero only
// for bad arguments (2) or a benchmark or the report itself failing (1).
import Glibc

let usage = """
    usage: VRDMABench [--json PATH] [--quick] [--only NAME]... [--list]
      --json PATH   where to write the results (default build/bench/results.json)
      --quick       fewer samples: a smoke test of a few seconds
      --only NAME   run the benchmarks whose name contains NAME (repeatable, or NAME,NAME),
                    with the baselines they are compared with
      --list        print the benchmark names and exit
    """

struct Options {
    var jsonPath = "build/bench/results.json"
    var quick = false
    var only: [String] = []
    var list = false
}

func fail(_ message: String, status: Int32) -> Never {
    var line = "VRDMABench: \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(status)
}

func parseOptions(_ arguments: ArraySlice<String>) -> Options {
    var options = Options()
    var rest = arguments
    func value(of flag: String) -> String {
        guard let v = rest.popFirst(), !v.hasPrefix("--") else { fail("\(flag) needs a value\n\(usage)", status: 2) }
        return v
    }
    while let argument = rest.popFirst() {
        switch argument {
        case "--json": options.jsonPath = value(of: argument)
        case "--quick": options.quick = true
        case "--only": options.only += value(of: argument).split(separator: ",").map(String.init)
        case "--list": options.list = true
        case "--help", "-h":
            print(usage)
            exit(0)
        default: fail("unknown argument \(argument)\n\(usage)", status: 2)
        }
    }
    return options
}

let registry = Registry(baselineBenchmarks + deviceBenchmarks)
let options = parseOptions(CommandLine.arguments.dropFirst())

if options.list {
    for b in registry.benchmarks { print("\(b.name)  (\(b.group.rawValue), \(b.unit))") }
    exit(0)
}

let selected = registry.select(options.only)
if selected.isEmpty {
    fail("--only \(options.only.joined(separator: ",")) matches no benchmark; --list shows them", status: 2)
}

let context = BenchContext(quick: options.quick)
let machine = Machine.current()
let start = Clock.now()
let measurements = registry.run(selected, context: context)
let report = Report(
    machine: machine, quick: options.quick, filters: options.only,
    seconds: Double(Clock.now() - start) / 1e9, measurements: measurements)

print(report.table())
do {
    try report.writeJSON(to: options.jsonPath)
} catch {
    fail("writing the results: \(error)", status: 1)
}
print("results: \(options.jsonPath)")
exit(measurements.contains(where: \.failed) ? 1 : 0)
