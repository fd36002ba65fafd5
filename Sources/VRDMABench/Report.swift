// SPDX-License-Identifier: Apache-2.0
// The report: an aligned table for people and JSON for tools, from the same evaluated rows, so the
// two cannot disagree about a ratio or a verdict.
import Glibc
import LinuxSystem

/// One comparison of one measurement, evaluated.
struct Verdict: Sendable {
    enum Status: Sendable {
        case met, missed, reported
        case notMeasured(String)

        var text: String {
            switch self {
            case .met: "met"
            case .missed: "missed"
            case .reported: "reported"
            case .notMeasured(let reason): "not measured: \(reason)"
            }
        }
    }

    let baseline: String?
    let baselineValue: Double?
    let ratio: Double?
    let target: Target?
    let status: Status
}

struct Report: Sendable {
    let machine: Machine
    let quick: Bool
    let filters: [String]
    let seconds: Double
    let measurements: [Measurement]

    /// Every comparison of `m` with its ratio and status; a measurement without comparisons gets
    /// one verdict so it still has a status.
    func verdicts(_ m: Measurement) -> [Verdict] {
        let comparisons = m.benchmark.comparisons.isEmpty ? [nil] : m.benchmark.comparisons.map(Optional.some)
        let value: Double
        switch m.outcome {
        case .measured(let v, _):
            value = v
        case .notMeasured(let reason):
            return comparisons.map { c in
                Verdict(baseline: c?.baseline, baselineValue: baselineValue(c), ratio: nil, target: c?.target,
                        status: .notMeasured(reason))
            }
        }
        return comparisons.map { c in
            guard let c else { return Verdict(baseline: nil, baselineValue: nil, ratio: nil, target: nil, status: .reported) }
            var ratio: Double?
            if let name = c.baseline {
                guard let base = baselineValue(c), base != 0 else {
                    return Verdict(baseline: name, baselineValue: nil, ratio: nil, target: c.target,
                                   status: .notMeasured("baseline \(name) not measured or zero"))
                }
                ratio = value / base
            }
            let status: Verdict.Status = c.target.map { $0.isMet(by: ratio ?? value) ? .met : .missed } ?? .reported
            return Verdict(baseline: c.baseline, baselineValue: baselineValue(c), ratio: ratio, target: c.target, status: status)
        }
    }

    private func baselineValue(_ c: Comparison?) -> Double? {
        guard let name = c?.baseline else { return nil }
        return measurements.first { $0.name == name }?.value
    }

    // MARK: Table

    func table() -> String {
        var rows: [[String]] = [["figure", "value", "p99", "unit", "baseline", "ratio", "target", "result"]]
        for m in measurements {
            var lead = [m.name, "—", "—", m.unit]
            if case .measured(let value, let s) = m.outcome {
                lead[1] = Format.number(value)
                // The slow tail of a latency; throughputs list their spread in the JSON.
                if let s, m.direction == .lowerIsBetter { lead[2] = Format.number(s.p99) }
            }
            for v in verdicts(m) {
                var target = "—"
                if let t = v.target { target = v.baseline == nil ? "\(t) \(m.unit)" : Format.ratio(t) }
                rows.append(lead + [v.baseline ?? "—", v.ratio.map { Format.ratio($0) } ?? "—", target, v.status.text])
                // Further comparisons of the same figure leave its name and value blank.
                lead = ["", "", "", ""]
            }
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max()! }
        let numeric: Set<Int> = [1, 2, 5]
        var lines = rows.map { row in
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                // The last column is not padded: a long reason should not widen the whole table.
                if column == row.count - 1 { return cell }
                return numeric.contains(column) ? pad + cell : cell + pad
            }.joined(separator: "  ")
        }
        lines.insert(String(repeating: "-", count: lines[0].count), at: 1)
        let statuses = measurements.flatMap { verdicts($0) }.map(\.status)
        let met = statuses.filter { if case .met = $0 { true } else { false } }.count
        let missed = statuses.filter { if case .missed = $0 { true } else { false } }.count
        let notMeasured = statuses.filter { if case .notMeasured = $0 { true } else { false } }.count
        lines.append("")
        lines.append("targets: \(met) met, \(missed) missed, \(notMeasured) not measured; "
            + "\(machine.cpus) CPUs, kernel \(machine.kernelRelease), \(machine.build) build, "
            + "load \(machine.loadAverage.map(Format.number).joined(separator: " ")), "
            + "\(quick ? "quick run, " : "")\(Format.seconds(seconds))")
        if machine.build != "release" { lines.append("warning: a debug build; the figures mean little") }
        return lines.joined(separator: "\n")
    }

    // MARK: JSON

    func json() -> JSON {
        .object([
            ("schema", .string("vrdma-bench/1")),
            ("machine", .object([
                ("cpus", .number(Double(machine.cpus))),
                ("kernelRelease", .string(machine.kernelRelease)),
                ("date", .string(machine.date)),
                ("architecture", .string(machine.architecture)),
                ("cpuModel", machine.cpuModel.map(JSON.string) ?? .null),
                ("l2CacheBytes", machine.l2CacheBytes.map { .number(Double($0)) } ?? .null),
                ("l3CacheBytes", machine.l3CacheBytes.map { .number(Double($0)) } ?? .null),
                ("clockSource", machine.clockSource.map(JSON.string) ?? .null),
                ("clockOverheadNs", .number(machine.clockOverheadNanoseconds)),
                ("loadAverage", .array(machine.loadAverage.map(JSON.number))),
                ("build", .string(machine.build)),
            ])),
            ("run", .object([
                ("quick", .bool(quick)),
                ("only", .array(filters.map(JSON.string))),
                ("seconds", .number(seconds)),
            ])),
            ("measurements", .array(measurements.map(json))),
        ])
    }

    private func json(_ m: Measurement) -> JSON {
        var fields: [(String, JSON)] = [
            ("name", .string(m.name)),
            ("group", .string(m.benchmark.group.rawValue)),
            ("unit", .string(m.unit)),
            ("better", .string(m.direction.rawValue)),
        ]
        switch m.outcome {
        case .measured(let value, let s):
            fields.append(("measured", .bool(true)))
            fields.append(("value", .number(value)))
            if let s {
                fields.append(("statistics", .object([
                    ("samples", .number(Double(s.samples))),
                    ("operationsPerSample", .number(Double(s.operationsPerSample))),
                    ("median", .number(s.median)),
                    ("p99", .number(s.p99)),
                    ("p1", .number(s.p1)),
                    ("min", .number(s.min)),
                    ("max", .number(s.max)),
                    ("mean", .number(s.mean)),
                ])))
            }
        case .notMeasured(let reason):
            fields.append(("measured", .bool(false)))
            fields.append(("value", .null))
            fields.append(("reason", .string(reason)))
            // A benchmark that threw, as opposed to one that declares it cannot measure yet.
            fields.append(("failed", .bool(m.failed)))
        }
        fields.append(("comparisons", .array(verdicts(m).filter { $0.baseline != nil || $0.target != nil }.map { v in
            .object([
                ("baseline", v.baseline.map(JSON.string) ?? .null),
                ("baselineValue", v.baselineValue.map(JSON.number) ?? .null),
                ("ratio", v.ratio.map(JSON.number) ?? .null),
                ("target", v.target.map { t in
                    .object([
                        ("relation", .string(t.relation.rawValue)),
                        ("bound", .number(t.bound)),
                        ("of", .string(v.baseline == nil ? "value" : "ratio")),
                    ])
                } ?? .null),
                ("status", .string(v.status.json)),
            ])
        })))
        fields.append(("note", .string(m.note)))
        fields.append(("seconds", .number(m.seconds)))
        return .object(fields)
    }

    /// Writes the JSON to `path` (creating its directory), through a temporary file and a rename so
    /// that a reader never sees half a report.
    func writeJSON(to path: String) throws(SystemError) {
        if let slash = path.lastIndex(of: "/") { try makeDirectories(String(path[..<slash])) }
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError.last("open(\(temporary))") }
        var text = json().serialized() + "\n"
        let written: Result<Void, SystemError> = text.withUTF8 { bytes in
            Result { () throws(SystemError) in try writeFully(fd, bytes.baseAddress!, bytes.count) }
        }
        close(fd)
        try written.get()
        guard rename(temporary, path) == 0 else { throw SystemError.last("rename(\(temporary), \(path))") }
    }
}

extension Verdict.Status {
    /// The status without its reason (the reason is a field of its own in the JSON).
    var json: String {
        switch self {
        case .met: "met"
        case .missed: "missed"
        case .reported: "reported"
        case .notMeasured: "not measured"
        }
    }
}

/// mkdir -p.
private func makeDirectories(_ path: String) throws(SystemError) {
    guard !path.isEmpty else { return }
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        prefix += part
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw SystemError.last("mkdir(\(prefix))") }
        prefix += "/"
    }
}

// MARK: - Number formatting

enum Format {
    /// Three significant digits or so, without trailing zeros: 152, 12.3, 1.25, 0.0213.
    static func number(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        let magnitude = abs(x)
        let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : magnitude >= 0.1 ? 3 : 4
        return fixed(x, decimals: decimals)
    }

    /// A ratio to a baseline: "7.5x", or "1/62x" when far below one (reads as "62 times faster").
    static func ratio(_ x: Double) -> String {
        x >= 0.1 || x <= 0 ? number(x) + "x" : "1/" + number(1 / x) + "x"
    }

    static func ratio(_ t: Target) -> String {
        "\(t.relation == .atMost ? "≤" : "≥") \(ratio(t.bound))"
    }

    static func seconds(_ s: Double) -> String { number(s) + " s" }

    static func fixed(_ x: Double, decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(x) * scale).rounded()
        guard scaled < 9e15 else { return "\(x)" }
        let whole = Int(scaled) / Int(scale)
        var fraction = decimals == 0 ? "" : String(Int(scaled) % Int(scale))
        fraction = String(repeating: "0", count: decimals - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        let sign = x < 0 && scaled != 0 ? "-" : ""
        return sign + String(whole) + (fraction.isEmpty ? "" : "." + fraction)
    }
}

// MARK: - JSON

/// Just enough JSON to write the report (objects keep their field order, which makes diffs readable).
indirect enum JSON: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    func serialized(indent: String = "") -> String {
        let inner = indent + "  "
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let x):
            guard x.isFinite else { return "null" }
            // Whole numbers print without ".0"; others in Swift's shortest round-tripping form.
            if x == x.rounded() && abs(x) < 1e15 { return String(Int(x)) }
            return "\(x)"
        case .string(let s): return JSON.quoted(s)
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { inner + $0.serialized(indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            return "{\n" + fields.map { inner + JSON.quoted($0.0) + ": " + $0.1.serialized(indent: inner) }
                .joined(separator: ",\n") + "\n\(indent)}"
        }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
