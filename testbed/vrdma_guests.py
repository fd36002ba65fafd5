"""What every scenario with the vrdma guest driver needs: the driver module and the rdma-core
build (each built or taken from its cache by its own script), and a daemon command line serving
several guests, each paired with its NIC's MAC.

    import vrdma_guests
    parts = vrdma_guests.build()          # {"ko": ..., "rdma_core": ...}
    tb = run.Testbed(daemon=vrdma_guests.daemon_command(bin, ["a", "b"]), ...)
    tb.add_guest("a", ip=..., script=..., **vrdma_guests.guest_options(parts))
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _last_line(script):
    """Runs a build script (its progress goes to our stderr) and returns its last stdout line."""
    out = subprocess.run([os.path.join(ROOT, script)], stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit("%s failed (exit %d)" % (script, out.returncode))
    lines = out.stdout.strip().splitlines()
    if not lines:
        sys.exit("%s printed nothing" % script)
    return lines[-1]


def build():
    """The guest driver module and the rdma-core install tree, built when missing."""
    return {"ko": _last_line("guest-driver/linux/build.sh"),
            "rdma_core": _last_line("guest-driver/rdma-core/build.sh")}


def mac(index):
    """The MAC run.py gives guest number index (0-based) on the shared segment."""
    return "52:54:00:76:72:%02x" % (index + 1)


def daemon_command(daemon_bin, names, extra=""):
    """One daemon serving the RDMA guests `names` (in run.py's guest order), each device
    reporting its guest's NIC MAC, so the guest driver pairs with that NIC."""
    daemon = daemon_bin
    if os.path.isdir(daemon):
        daemon = os.path.join(daemon, "vhost-user-rdma")
    if not os.access(daemon, os.X_OK):
        sys.exit("no executable %s" % daemon)
    args = " ".join("--socket-path={sockdir}/%s.sock --mac %s" % (n, mac(i)) for i, n in enumerate(names))
    return "%s %s %s" % (os.path.abspath(daemon), args, extra)


def guest_options(parts, extra_files=None):
    """add_guest() options for a guest that uses the vrdma driver and our rdma-core."""
    files = {"/test/virtio_rdma.ko": parts["ko"]}
    files.update(extra_files or {})
    return {"rdma": True, "files": files, "overlays": [parts["rdma_core"]]}


# The tools' result lines worth repeating after a run (pingpong, perftest tables, rping, ibv_devinfo).
RESULT_LINES = re.compile(r"^(== |VRDMA-TEST: FAIL|\s*(hca_id|port:|state:|link_layer|active_mtu)|.*ping data:|"
                          r".*(bytes in .* seconds|iters in .* usec/iter)|"
                          r"\s*#bytes|\s*\d+\s+\d+\s+[\d.]+\s+[\d.]+)")


_HEADER = re.compile(r"^== (\S+)")
_PINGPONG = re.compile(r"\d+ iters in [\d.]+ seconds = ([\d.]+) (usec/iter)")
_STREAM = re.compile(r"bytes in [\d.]+ seconds = ([\d.]+) (Gb/sec)")   # tcp-pingpong -b
_PERFTEST_ROW = re.compile(r"^\s*\d+\s+\d+\s+[\d.]+\s")


def tool_numbers(log_path):
    """Each tool's headline number in a guest's serial log, as {check name: (value, unit)}, the
    name taken from the "== NAME" line before it: the pingpongs' (and tcp-pingpong's) usec per
    round trip, perftest _lat's t_typical (the median, which TCG's stalls move less than the
    mean), perftest _bw's BW average, tcp-pingpong -b's Gb/sec. The first number after a header
    counts (a loopback run prints its client's before its server's)."""
    numbers, name, column = {}, None, None
    with open(log_path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            m = _HEADER.match(line)
            if m:
                name, column = m.group(1), None
                continue
            if name is None or name in numbers:
                continue
            m = _PINGPONG.search(line) or _STREAM.search(line)
            if m:
                numbers[name] = (float(m.group(1)), m.group(2))
            elif "#bytes" in line:
                # "BW peak[Gb/sec]" and "99% percentile[usec]" are one column each.
                heads = re.sub(r"(BW|%) ", r"\1_", line).split()
                column = next(((i, h) for i, h in enumerate(heads)
                               if h.startswith(("t_typical[", "BW_average["))), None)
            elif column and _PERFTEST_ROW.match(line):
                fields = line.split()
                if len(fields) > column[0]:
                    numbers[name] = (float(fields[column[0]]), column[1].split("[")[1].rstrip("]"))
    return numbers


def arguments(name, description):
    """The command line every two-guest scenario takes; returns the parsed options, the driver
    and rdma-core parts (given, or built), and the results directory."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--daemon-bin", required=True, help="vhost-user-rdma binary, or the directory holding it")
    ap.add_argument("--results")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--log-level", default="info", help="daemon --log-level")
    ap.add_argument("--ko", help="virtio_rdma.ko to use (default: guest-driver/linux/build.sh)")
    ap.add_argument("--rdma-core", help="rdma-core overlay directory (default: guest-driver/rdma-core/build.sh)")
    a = ap.parse_args()
    parts = {"ko": a.ko, "rdma_core": a.rdma_core} if a.ko and a.rdma_core else build()
    parts.update({k: v for k, v in (("ko", a.ko), ("rdma_core", a.rdma_core)) if v})
    results = a.results or os.path.join(os.environ.get("TMPDIR", "/tmp"), "vrdma-results",
                                        "%s-%s" % (name, time.strftime("%Y%m%d-%H%M%S")))
    return a, parts, results


def run_pair(name, description, script, extra_files=lambda parts, results: {},
             rdma_props="num-queues=6,page-per-vq=on", report=None):
    """The shape of every two-guest scenario with our driver and rdma-core: guest a (10.0.0.1,
    role server) and b (10.0.0.2, role client, peer a) run `script` against one daemon; then
    each guest's result lines are printed, and report({guest name: serial log path}) runs if
    given. extra_files(parts, results directory) gives the files both guests get. Exits with
    the run's verdict, which the report cannot change."""
    sys.path.insert(0, HERE)
    import run  # noqa: E402
    a, parts, results = arguments(name, description)
    # The daemon must end cleanly too: a crash after both guests finished is still a failure.
    tb = run.Testbed(results=results, timeout=a.timeout, daemon_exit_status=0,
                     daemon=daemon_command(a.daemon_bin, ["a", "b"], "--log-level " + a.log_level))
    files = extra_files(parts, tb.results)
    for guest, ip, params in (("a", "10.0.0.1/24", {"role": "server"}),
                              ("b", "10.0.0.2/24", {"role": "client", "peer": "10.0.0.1"})):
        opts = guest_options(parts, files)
        opts["rdma_props"] = rdma_props
        tb.add_guest(guest, ip=ip, script=script, params=params, **opts)
    ok = tb.run()
    for g in tb.guests:
        print("\n==== guest %s (%s)" % (g.name, g.log_path))
        with open(g.log_path, errors="replace") as f:
            for line in f:
                if RESULT_LINES.match(line):
                    print("  " + line.rstrip())
    if report:
        try:
            report({g.name: g.log_path for g in tb.guests})
        except Exception as e:   # numbers are reported, never asserted
            print("\n%s: no report: %r" % (name, e))
    sys.exit(0 if ok else 1)
