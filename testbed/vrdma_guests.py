"""What every scenario with the vrdma guest driver needs: the driver module and the rdma-core
build (each built or taken from its cache by its own script), and a daemon command line serving
several guests, each paired with its NIC's MAC.

    import vrdma_guests
    parts = vrdma_guests.build()          # {"ko": ..., "rdma_core": ...}
    tb = run.Testbed(daemon=vrdma_guests.daemon_command(bin, ["a", "b"]), ...)
    tb.add_guest("a", ip=..., script=..., **vrdma_guests.guest_options(parts))
"""
import os
import subprocess
import sys

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
