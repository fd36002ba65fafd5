#!/usr/bin/env python3
"""vrdma-kernel-disconnect: the daemon disappears under the guest's kernel driver.

    testbed/scenarios/vrdma-kernel-disconnect.py [--daemon-bin BIN_DIR_OR_FILE]

Needs guest-driver/linux/build.sh to have built build/guest-driver/{virtio_rdma,vrdma_selftest}.ko
(or --ko-dir). The daemon is --daemon-bin, else $VRDMA_DAEMON, else vhost-user-rdma on PATH.

  guest a  loads virtio_rdma (cmd_timeout_ms=3000) and the self test, prints READY-FOR-KILL
  host     SIGKILLs the daemon (a shell wrapper keeps the runner's daemon process alive)
  guest a  adds an IP address (a GID command nobody answers): the driver declares the device
           dead, reports the port down and resets it; the self test and the driver unload;
           prints READY-FOR-RESTART
  host     starts a new daemon on the same socket; QEMU reconnects
  guest a  binds the driver again and passes the self test on the new daemon

Guest checks are in vrdma-kernel-disconnect.sh; the last line is "N passed, M failed".
"""
import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.dirname(HERE)
REPO = os.path.dirname(TESTBED)
sys.path.insert(0, TESTBED)
import run  # noqa: E402

# Under TCG on a loaded host the kernel's early IO-APIC timer check can fail ("IO-APIC + timer
# doesn't work!", a panic before any driver runs); skip it.
KERNEL_ARGS = ["no_timer_check"]

GUID = "5652444b44495331"   # "VRDKDIS1"
MAC = "52:54:00:76:72:01"


def exited(pid):
    """The process has exited (a zombie counts: its parent reaps it later)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True

def daemon_path(arg):
    path = arg or os.environ.get("VRDMA_DAEMON") or shutil.which("vhost-user-rdma")
    if path and os.path.isdir(path):
        path = os.path.join(path, "vhost-user-rdma")
    if not path or not os.access(path, os.X_OK):
        sys.exit("vrdma-kernel-disconnect: no vhost-user-rdma (give --daemon-bin)")
    return os.path.abspath(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon-bin", help="vhost-user-rdma, or the directory holding it")
    ap.add_argument("--ko-dir", default=os.path.join(REPO, "build", "guest-driver"),
                    help="where build.sh put virtio_rdma.ko and vrdma_selftest.ko")
    ap.add_argument("--results", help="results directory")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    daemon = daemon_path(a.daemon_bin)
    args = ["--log-level", "debug", "--node-guid", GUID, "--mac", MAC]

    def during(tb):
        g = tb.guest("a")
        g.wait_for("VRDMA-KERNEL: READY-FOR-KILL", 150)
        with open(os.path.join(tb.sockdir, "daemon.pid")) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 10
        while not exited(pid) and time.time() < deadline:
            time.sleep(0.05)
        tb.check("daemon-killed", exited(pid))
        g.wait_for("VRDMA-KERNEL: READY-FOR-RESTART", 120)
        if os.path.exists(g.sock):
            os.unlink(g.sock)   # SIGKILL left the listening socket's path behind
        log = open(os.path.join(tb.results, "daemon-restarted.log"), "w")
        d2 = subprocess.Popen([daemon, "--socket-path", g.sock] + args, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
        try:
            g.wait_for("VRDMA-DONE", 150)
        finally:
            d2.terminate()
            try:
                d2.wait(5)
            except subprocess.TimeoutExpired:
                d2.kill()
                d2.wait()
        tb.check("restarted-daemon-exit-0", d2.returncode == 0, "status %s" % d2.returncode)

    # The runner's daemon is a shell that outlives the daemon it started, so the run goes on
    # after the kill; the runner's SIGTERM at the end ends the shell.
    wrapper = "%s --socket-path {sock} %s & echo $! > {sockdir}/daemon.pid; wait; " \
              "while sleep 1; do :; done" % (shlex.quote(daemon), " ".join(args))
    tb = run.Testbed(daemon=wrapper, timeout=a.timeout, on_running=during, results=a.results)
    tb.add_guest("a", ip="10.0.0.1/24", script=os.path.join(HERE, "vrdma-kernel-disconnect.sh"),
                 rdma=True, kernel_args=KERNEL_ARGS, rdma_props="num-queues=4",
                 files={"/test/virtio_rdma.ko": os.path.join(a.ko_dir, "virtio_rdma.ko"),
                        "/test/vrdma_selftest.ko": os.path.join(a.ko_dir, "vrdma_selftest.ko")})
    sys.exit(0 if tb.run() else 1)


if __name__ == "__main__":
    main()
