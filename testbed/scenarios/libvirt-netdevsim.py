#!/usr/bin/env python3
"""The libvirt hook against a real kernel's SR-IOV path, in a TCG guest.

    testbed/scenarios/libvirt-netdevsim.py [--hook-bin PATH] [--results DIR]

Builds (cached) netdevsim + psample for the guest kernel (build-netdevsim.sh)
and the hook with the Swift standard library linked in (the guest has no
Swift runtime; its glibc is the host's), unless --hook-bin names one. One
guest loads netdevsim, makes a PF with 4 VFs and runs the hook as libvirt
would (libvirt-netdevsim.sh): VF MACs set and restored as `ip link show`
(iproute2, copied in) reports them, the GUID request refused by the driver
(EOPNOTSUPP) with one clear line and the MAC set before it undone, a back-end
that cannot start undone the same way, a VF in use or out of range refused.
Ends with run.py's "N passed, M failed".
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.dirname(HERE)
sys.path.insert(0, TESTBED)
import run  # noqa: E402


def libraries(binary):
    """Shared libraries BINARY needs beyond glibc (the guest has the host's glibc)."""
    out = subprocess.run(["ldd", binary], check=True, stdout=subprocess.PIPE, text=True).stdout
    libs = {}
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) != 2 or not parts[1].strip().startswith("/"):
            continue
        name, path = parts[0].strip(), parts[1].split()[0]
        if name.startswith(("libc.so", "libm.so", "ld-linux")):
            continue
        libs["/lib/x86_64-linux-gnu/" + name] = os.path.realpath(path)
    return libs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hook-bin", help="vrdma-libvirt-hook built with --static-swift-stdlib")
    ap.add_argument("--results", help="results directory")
    ap.add_argument("--timeout", type=float, default=240)
    a = ap.parse_args()

    modules = run.last_line([os.path.join(TESTBED, "build-netdevsim.sh")])
    hook = a.hook_bin or os.path.join(run.static_swift_build(["vrdma-libvirt-hook"]), "vrdma-libvirt-hook")
    ip = "/bin/ip" if os.path.exists("/bin/ip") else "/usr/sbin/ip"
    if not os.path.exists(ip):
        subprocess.run(["apt-get", "install", "-y", "-qq", "iproute2"], check=True)
    files = {"/test/psample.ko": os.path.join(modules, "psample.ko"),
             "/test/netdevsim.ko": os.path.join(modules, "netdevsim.ko"),
             "/test/ip": ip,
             "/usr/local/bin/vrdma-libvirt-hook": hook}
    files.update(libraries(hook))
    files.update(libraries(ip))

    tb = run.Testbed(results=a.results, timeout=a.timeout)
    tb.add_guest("a", script=os.path.join(HERE, "libvirt-netdevsim.sh"), files=files)
    sys.exit(0 if tb.run() else 1)


if __name__ == "__main__":
    main()
