#!/usr/bin/env python3
"""vrdma-reboot-traffic: a guest reboots in the middle of RC traffic; its peer's QP fails cleanly.

    testbed/scenarios/vrdma-reboot-traffic.py --daemon-bin $(swift build --show-bin-path)

Builds what is missing (the guest driver module, rdma-core with the provider and the test program
vrdma-peer-loss beside it; both cached), starts one daemon serving two guests, and:

  guest a  (10.0.0.1, QEMU without -no-reboot, a scratch disk telling its boots apart) serves an
           RC QP; b streams RDMA WRITEs and SENDs to it; a `reboot -f`s while its QP is live.
  guest b  (10.0.0.2) sees its QP fail as the spec says for a vanished peer: RETRY_EXC_ERR for the
           oldest WR, WR_FLUSH_ERR for every later one, nothing lost or doubled, state ERR, later
           posts flushed, clean teardown. Then ibv_rc_pingpong with a's second boot.
  host     the reboot reset a's device on the same connection, a's second boot started the
           device again (every queue running), a's shutdown printed no kernel trouble; at the end
           the daemon is the same process, its log has no error or crash, and SIGTERM ends it
           with status 0.

Guest checks are in vrdma-reboot-traffic.sh and vrdma-peer-loss (guest-driver/rdma-core/tests);
the last line is run.py's "N passed, M failed".
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import run  # noqa: E402
import vrdma_guests  # noqa: E402

QUEUES = 6
RDMA_PROPS = "num-queues=%d,page-per-vq=on" % QUEUES
KERNEL_TROUBLE = re.compile(r"BUG:|WARNING:|Oops|general protection|Call Trace|refcount_t:|UBSAN|KASAN")
# A daemon log line at level error or critical, or what a Swift trap or a signal leaves on stderr.
DAEMON_TROUBLE = re.compile(r"^\S+ (error|critical) |fatal|trap|Segmentation|stack trace|core dumped",
                            re.IGNORECASE)


def watch_reboot(tb):
    """a's reboot as the daemon and a's console saw it, then both guests to their end."""
    t0 = time.time()
    a, b = tb.guest("a"), tb.guest("b")
    # The daemon's lines about a's connection name its socket.
    of_a = lambda text: [l for l in text.splitlines() if "socket=%s " % a.sock in l]

    a.wait_for("VRDMA-PEER-LOSS: rebooting", 600)
    t_reboot = time.time()
    mark = len(tb.daemon_log())
    a.wait_for("driver-load-boot2", 300)   # its PASS or FAIL line: the driver started the device
    t_boot2 = time.time()
    after = of_a(tb.daemon_log()[mark:])
    reset = next((i for i, l in enumerate(after) if "device reset" in l), None)
    running = set()
    for l in after[reset or 0:]:
        m = re.search(r"queue (\d+) running", l)
        if m:
            running.add(int(m.group(1)))
    tb.check("reboot-device-reset", reset is not None, "" if reset is not None else "none on a's connection")
    ended = [l for l in after if "front-end connected" in l or "session ended" in l]
    tb.check("reboot-same-connection", not ended, " | ".join(ended))
    tb.check("boot2-device-started", reset is not None and running == set(range(QUEUES)),
             "queues running after the reset: %s" % sorted(running))

    # a's shutdown ran with the device reset under a live QP: the kernel said nothing alarming
    # (the script raised the console log level for it).
    serial = a.serial()
    shutdown = serial[serial.index("VRDMA-PEER-LOSS: rebooting"):]
    end = shutdown.find("reboot: Restarting system")
    trouble = KERNEL_TROUBLE.findall(shutdown[:end])
    tb.check("reboot-shutdown-clean", end >= 0 and not trouble,
             "no 'Restarting system'" if end < 0 else " ".join(trouble))

    b.wait_for("VRDMA-DONE", 600)
    a.wait_for("VRDMA-DONE", 600)
    print("timings: reboot asked %.0fs after the guests started, a's driver up again %.0fs "
          "later, both done %.0fs later" % (t_reboot - t0, t_boot2 - t_reboot, time.time() - t_boot2))


def during(tb):
    """Host side, while the guests run (run.Testbed on_running). The daemon's health is checked
    however far the guests got."""
    daemon = tb.daemons[0]
    pids = tb.daemon_pids()
    try:
        watch_reboot(tb)
    finally:
        tb.check("daemon-same-process", daemon.poll() is None and tb.daemon_pids() == pids,
                 "pids %s, now %s" % (pids, tb.daemon_pids()))
        log = tb.daemon_log().splitlines()
        trouble = [l for l in log if DAEMON_TROUBLE.search(re.sub(r"socket=\S+", "", l))]
        tb.check("daemon-log-clean", not trouble, " | ".join(trouble[:5]))
        for l in log:
            if " warning " in l:
                print("daemon warning: " + l)


def main():
    a, parts, results = vrdma_guests.arguments("vrdma-reboot-traffic", __doc__.split("\n\n")[0])
    # build.sh leaves its test programs beside the overlay.
    program = os.path.join(os.path.dirname(os.path.abspath(parts["rdma_core"])), "tests", "vrdma-peer-loss")
    if not os.path.isfile(program):
        sys.exit("vrdma-reboot-traffic: no %s (guest-driver/rdma-core/build.sh builds it)" % program)
    tb = run.Testbed(results=results, timeout=a.timeout, on_running=during, daemon_exit_status=0,
                     daemon=vrdma_guests.daemon_command(a.daemon_bin, ["a", "b"], "--log-level " + a.log_level))
    script = os.path.join(HERE, "vrdma-reboot-traffic.sh")
    files = {"/test/vrdma-peer-loss": program}
    tb.add_guest("a", ip="10.0.0.1/24", script=script, params={"role": "server"}, rdma_props=RDMA_PROPS,
                 reboot=True, disk="1M", **vrdma_guests.guest_options(parts, files))
    tb.add_guest("b", ip="10.0.0.2/24", script=script, params={"role": "client", "peer": "10.0.0.1"},
                 rdma_props=RDMA_PROPS, **vrdma_guests.guest_options(parts, files))
    ok = tb.run()
    for g in tb.guests:
        print("\n==== guest %s (%s)" % (g.name, g.log_path))
        with open(g.log_path, errors="replace") as f:
            for line in f:
                if vrdma_guests.RESULT_LINES.match(line) or line.startswith("VRDMA-PEER-LOSS:"):
                    print("  " + line.rstrip())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
