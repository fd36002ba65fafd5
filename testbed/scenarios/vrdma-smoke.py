#!/usr/bin/env python3
"""vrdma smoke test: QEMU guests against the real vhost-user-rdma daemon.

    testbed/scenarios/vrdma-smoke.py --daemon-bin $(swift build --show-bin-path)

One daemon (started here, debug log) serves one socket for the whole test:

  guest a  boots (vhost-user-rdma-pci, num-queues=6), checks the PCI function
           and reads queue count + config space with virtio-probe; reboots
           itself (reboot -f; a scratch disk tells boot 2 from boot 1) and
           checks again; powers off.
  host     checks the daemon log: the full handshake on the first
           connection, RESET_DEVICE and no new connection across the reboot,
           the connection ending at power-off; the daemon keeps its PID.
  guest b  boots next on the same socket (a second connection to the same
           daemon) and repeats the checks; the host checks that handshake.
  host     SIGTERM to the daemon: exit status 0.

Guest checks are in vrdma-smoke.sh; all results are VRDMA-TEST lines, the
last line is run.py's "N passed, M failed".
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.dirname(HERE)
sys.path.insert(0, TESTBED)
import run  # noqa: E402

GUID = "5652534d4f4b4531"    # "VRSMOKE1": every byte distinct, so a byte-order slip shows
MAC = "52:54:00:76:72:01"    # handed to the daemon (--mac), expected in the config space
QUEUES = 6                   # not QEMU's default (4), so the guest's count is meaningful
# Debian's kernel has CONFIG_IO_STRICT_DEVMEM: a BAR claimed by a driver
# (virtio_pci holds its regions) cannot be mmapped from user space unless
# iomem=relaxed. virtio-probe only reads.
KERNEL_ARGS = ["iomem=relaxed"]


def handshake_check(tb, name, log):
    """The realize sequence of one connection (testbed/README.md, "vhost-user
    message traces"), in order, with one SET_VRING_CALL + SET_VRING_ERR pair
    per queue between SET_OWNER and GET_CONFIG."""
    seq = ["VHOST_USER_GET_FEATURES", "VHOST_USER_GET_PROTOCOL_FEATURES",
           "VHOST_USER_SET_PROTOCOL_FEATURES", "VHOST_USER_GET_QUEUE_NUM",
           "VHOST_USER_SET_OWNER"] + \
          ["VHOST_USER_SET_VRING_CALL", "VHOST_USER_SET_VRING_ERR"] * QUEUES + \
          ["VHOST_USER_GET_CONFIG"]
    missing = run.log_sequence(log, seq)
    if missing is None:   # exactly one pair per queue (the log does not name the queue)
        lines = log.splitlines()
        own = next(i for i, l in enumerate(lines) if "VHOST_USER_SET_OWNER" in l)
        cfg = next(i for i, l in enumerate(lines) if i > own and "VHOST_USER_GET_CONFIG" in l)
        part = lines[own:cfg]
        calls = sum("VHOST_USER_SET_VRING_CALL" in l for l in part)
        errs = sum("VHOST_USER_SET_VRING_ERR" in l for l in part)
        if (calls, errs) != (QUEUES, QUEUES):
            missing = "%d SET_VRING_CALL and %d SET_VRING_ERR before GET_CONFIG, want %d each" % (
                calls, errs, QUEUES)
    return tb.check(name, missing is None, missing or "")


def wait_until(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def during(tb):
    """Host side, run while the guests run (run.Testbed on_running)."""
    daemon = tb.daemons[0]
    pids = tb.daemon_pids()
    alive = lambda: daemon.poll() is None and tb.daemon_pids() == pids
    a = tb.guest("a")

    # (d) reboot: RESET_DEVICE on the same connection, same daemon process.
    a.wait_for("VRDMA-SMOKE: rebooting", 120)
    mark = len(tb.daemon_log())
    a.wait_for("VRDMA-SMOKE: start-boot2", 120)
    # Boot 2 may finish and power off before this reads the log, so the connection may
    # already have ended here; it must not have been the daemon that ended it, and no
    # new connection may have been made.
    after = tb.daemon_log()[mark:]
    ended = after.find("session ended")
    reason = after[ended:].split("\n")[0] if ended >= 0 else ""
    tb.check("reboot-reset-device", "VHOST_USER_RESET_DEVICE" in after[:ended if ended >= 0 else None])
    tb.check("reboot-same-connection", "front-end connected" not in after
             and (ended < 0 or "front-end closed the connection" in reason), reason)
    tb.check("reboot-daemon-same-pid", alive(), "pids %s, now %s" % (pids, tb.daemon_pids()))

    # (e) power-off: the connection ends, the daemon serves the next one.
    try:
        a.proc.wait(120)
    except subprocess.TimeoutExpired:
        raise RuntimeError("guest a did not power off")
    first = tb.daemon_log()
    tb.check("poweroff-session-ended", wait_until(lambda: "session ended" in tb.daemon_log(), 10))
    tb.check("poweroff-daemon-same-pid", alive(), "pids %s, now %s" % (pids, tb.daemon_pids()))
    # (c) the handshake of the first connection (everything up to its end).
    handshake_check(tb, "handshake-first-connection", first.split("session ended")[0])

    b = tb.add_guest("b", script=os.path.join(HERE, "vrdma-smoke.sh"), rdma=True,
                     rdma_props="num-queues=%d" % QUEUES, socket="a",
                     files={"/test/virtio-probe": tb.probe}, kernel_args=KERNEL_ARGS,
                     params={"queues": QUEUES, "guid": GUID, "mac": MAC})
    b.start()
    b.wait_for("VRDMA-DONE", 120)
    log = tb.daemon_log()
    handshake_check(tb, "handshake-second-connection", log[log.index("session ended"):])
    tb.check("second-guest-daemon-same-pid", alive(), "pids %s, now %s" % (pids, tb.daemon_pids()))


def build_probe(out):
    src = os.path.join(TESTBED, "guest", "virtio-probe.c")
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", out, src], check=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon-bin", required=True,
                    help="vhost-user-rdma binary, or the directory holding it")
    ap.add_argument("--results", help="results directory")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--qemu")
    ap.add_argument("--guest-dir")
    ap.add_argument("--accel")
    a = ap.parse_args()
    daemon = a.daemon_bin
    if os.path.isdir(daemon):
        daemon = os.path.join(daemon, "vhost-user-rdma")
    if not os.access(daemon, os.X_OK):
        sys.exit("vrdma-smoke: no executable %s" % daemon)
    results = a.results or os.path.join(os.environ.get("TMPDIR", "/tmp"), "vrdma-results",
                                        "vrdma-smoke-" + time.strftime("%Y%m%d-%H%M%S"))
    tb = run.Testbed(
        results=results, qemu=a.qemu, guest_dir=a.guest_dir, accel=a.accel,
        timeout=a.timeout, on_running=during, daemon_exit_status=0,
        daemon="%s --socket-path={sock} --log-level debug --node-guid %s --mac %s"
               % (os.path.abspath(daemon), GUID, MAC))
    tb.probe = build_probe(os.path.join(tb.results, "virtio-probe"))
    tb.add_guest("a", script=os.path.join(HERE, "vrdma-smoke.sh"), rdma=True,
                 rdma_props="num-queues=%d" % QUEUES, reboot=True, disk="1M",
                 files={"/test/virtio-probe": tb.probe}, kernel_args=KERNEL_ARGS,
                 params={"queues": QUEUES, "guid": GUID, "mac": MAC, "reboot": 1})
    sys.exit(0 if tb.run() else 1)


if __name__ == "__main__":
    main()
