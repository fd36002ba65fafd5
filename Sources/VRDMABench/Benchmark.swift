// SPDX-License-Identifier: Apache-2.0
// The model: a benchmark measures one figure; its comparisons say which same-run baselines it is
// held to and what ratio the issue asks for. Targets are data here, not prose in a log.
import Glibc

/// Which way a figure improves.
enum Direction: String, Sendable {
    case lowerIsBetter = "lower"
    case higherIsBetter = "higher"
}

/// A bound on a figure: on `value / baseline` when the comparison names a baseline, on the value
/// itself (in the figure's unit) when it does not.
struct Target: Sendable, CustomStringConvertible {
    enum Relation: String, Sendable {
        case atMost = "<="
        case atLeast = ">="
    }

    let relation: Relation
    let bound: Double

    static func atMost(_ bound: Double) -> Target { Target(relation: .atMost, bound: bound) }
    static func atLeast(_ bound: Double) -> Target { Target(relation: .atLeast, bound: bound) }
    /// For lower-is-better figures: "at least `factor` times faster than the baseline".
    static func fasterThanBaseline(by factor: Double) -> Target { .atMost(1 / factor) }

    func isMet(by x: Double) -> Bool {
        switch relation {
        case .atMost: x <= bound
        case .atLeast: x >= bound
        }
    }

    var description: String {
        "\(relation == .atMost ? "≤" : "≥") \(Format.number(bound))"
    }
}

/// One thing a figure is compared with: a baseline (by benchmark name), a target, or both.
/// A baseline without a target is reported as a plain ratio; a target without a baseline is absolute.
struct Comparison: Sendable {
    let baseline: String?
    let target: Target?

    init(baseline: String? = nil, target: Target? = nil) {
        precondition(baseline != nil || target != nil, "a comparison needs a baseline or a target")
        self.baseline = baseline
        self.target = target
    }
}

/// Order statistics of the samples behind a value (a sample may average several operations,
/// so that reading the clock does not dominate very short operations).
struct Statistics: Sendable {
    let samples: Int
    let operationsPerSample: Int
    let median: Double
    let p99: Double
    let p1: Double
    let min: Double
    let max: Double
    let mean: Double

    init(_ values: [Double], operationsPerSample: Int = 1) {
        precondition(!values.isEmpty, "statistics of no samples")
        let sorted = values.sorted()
        // Nearest rank: the smallest sample with at least q of the samples at or below it.
        func rank(_ q: Double) -> Double {
            let index = Int((q * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.min(Swift.max(index, 0), sorted.count - 1)]
        }
        samples = sorted.count
        self.operationsPerSample = operationsPerSample
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        p99 = rank(0.99)
        p1 = rank(0.01)
        min = sorted.first!
        max = sorted.last!
        mean = sorted.reduce(0, +) / Double(sorted.count)
    }
}

/// What running a benchmark produced. "Not measured" carries its reason: a missing figure is
/// never replaced by a number.
enum Outcome: Sendable {
    /// The value is the median of the samples for latencies and throughputs alike.
    case measured(Double, Statistics?)
    case notMeasured(reason: String)

    static func median(of s: Statistics) -> Outcome { .measured(s.median, s) }
}

/// A benchmark: what it measures, what it is held to, and the function that measures it.
struct Benchmark: Sendable {
    enum Group: String, Sendable {
        case baseline
        case device
    }

    let name: String
    let group: Group
    let unit: String
    let direction: Direction
    let comparisons: [Comparison]
    let note: String
    let run: @Sendable (BenchContext) throws -> Outcome

    init(
        _ name: String, group: Group, unit: String, _ direction: Direction, comparisons: [Comparison] = [],
        note: String, run: @escaping @Sendable (BenchContext) throws -> Outcome
    ) {
        self.name = name
        self.group = group
        self.unit = unit
        self.direction = direction
        self.comparisons = comparisons
        self.note = note
        self.run = run
    }

    /// The benchmarks this one's ratios need.
    var baselineNames: [String] { comparisons.compactMap(\.baseline) }
}

/// The result of one benchmark: the model's `Measurement` (name, value, unit, direction,
/// comparisons with baselines and targets, note).
struct Measurement: Sendable {
    let benchmark: Benchmark
    let outcome: Outcome
    let seconds: Double
    /// True when the benchmark threw: the run then exits non-zero, unlike a declared "not measured".
    let failed: Bool

    var name: String { benchmark.name }
    var unit: String { benchmark.unit }
    var direction: Direction { benchmark.direction }
    var note: String { benchmark.note }
    var value: Double? {
        guard case .measured(let v, _) = outcome else { return nil }
        return v
    }
}

/// Passed to every benchmark: how hard to try, and where to say what is going on.
struct BenchContext: Sendable {
    let quick: Bool

    /// `full` repetitions normally, `quick` with --quick.
    func count(_ full: Int, quick q: Int) -> Int { quick ? q : full }

    /// Progress goes to standard error so the table on standard output stays clean.
    func log(_ message: String) {
        var line = message + "\n"
        line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// All benchmarks by name, checked once at start-up so that a mistyped baseline or a unit mismatch
/// is a crash in development, not a silent "not measured".
struct Registry: Sendable {
    let benchmarks: [Benchmark]

    init(_ benchmarks: [Benchmark]) {
        var byName: [String: Benchmark] = [:]
        for b in benchmarks {
            precondition(byName[b.name] == nil, "benchmark \(b.name) registered twice")
            byName[b.name] = b
        }
        for b in benchmarks {
            for name in b.baselineNames {
                guard let base = byName[name] else { preconditionFailure("\(b.name): unknown baseline \(name)") }
                precondition(base.unit == b.unit, "\(b.name) is in \(b.unit) but its baseline \(name) is in \(base.unit)")
                // `select` pulls in one level of baselines, so chains would leave ratios unmeasured.
                precondition(base.baselineNames.isEmpty, "\(b.name): baseline \(name) has baselines itself")
            }
        }
        self.benchmarks = benchmarks
    }

    /// Benchmarks whose name contains one of `filters`, plus the baselines those need, in
    /// registration order. No filter selects everything.
    func select(_ filters: [String]) -> [Benchmark] {
        if filters.isEmpty { return benchmarks }
        var wanted = Set(benchmarks.filter { b in filters.contains { b.name.contains($0) } }.map(\.name))
        for b in benchmarks where wanted.contains(b.name) { wanted.formUnion(b.baselineNames) }
        return benchmarks.filter { wanted.contains($0.name) }
    }

    /// Runs `selected` in order. A benchmark that throws becomes "not measured" with the error, so
    /// one broken figure does not hide the others.
    func run(_ selected: [Benchmark], context: BenchContext) -> [Measurement] {
        selected.map { b in
            context.log("== \(b.name)")
            let start = Clock.now()
            let outcome: Outcome
            var failed = false
            do {
                outcome = try b.run(context)
            } catch {
                outcome = .notMeasured(reason: "failed: \(error)")
                failed = true
            }
            let seconds = Double(Clock.now() - start) / 1e9
            switch outcome {
            case .measured(let v, _): context.log("   \(Format.number(v)) \(b.unit) (\(Format.seconds(seconds)))")
            case .notMeasured(let reason): context.log("   not measured: \(reason)")
            }
            return Measurement(benchmark: b, outcome: outcome, seconds: seconds, failed: failed)
        }
    }
}
