#!/usr/bin/env python3
"""vrdma guest test runner (Python 3 standard library only).

Boots one or more test guests (testbed/build-guest.sh) under the patched
QEMU (qemu/build.sh), optionally with a vhost-user-rdma device each and a
back-end daemon, on one private Ethernet segment, and collects the
"VRDMA-TEST: PASS|FAIL name" lines each guest prints on its serial console.

Command line:  run.py SCENARIO.json [--daemon CMD] [--timeout S] ...
Library:       import run; tb = run.Testbed(...); tb.add_guest(...); tb.run()
See testbed/README.md.
"""

import argparse
import json
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULT_RE = re.compile(r"VRDMA-TEST: (PASS|FAIL) (\S+)")
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc|\r")


def log(msg):
    print("run.py: " + msg, file=sys.stderr, flush=True)


def last_line(cmd):
    """Run a build script (output to our stderr), return its last stdout line."""
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub(threading.Thread):
    """An Ethernet hub on loopback UDP: QEMU's `-netdev socket,udp=` sends
    each frame to us and we repeat it to every other guest. Unprivileged,
    any number of guests, no frames echoed back to the sender (unlike
    `mcast=`, which loops a guest's own frames back and upsets IPv6 DAD).
    Records the frames to results/net.pcap (first 64 MiB) for debugging."""

    PCAP_LIMIT = 64 << 20   # stop recording after 64 MiB

    def __init__(self, pcap_path=None):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.ports = []
        self.stopped = False
        self.pcap = open(pcap_path, "wb") if pcap_path else None
        if self.pcap:  # pcap global header, LINKTYPE_ETHERNET
            self.pcap.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def run(self):
        while not self.stopped:
            try:
                frame, (_, src) = self.sock.recvfrom(65536)
            except OSError:
                return
            if self.pcap and self.pcap.tell() < self.PCAP_LIMIT:
                t = time.time()
                self.pcap.write(struct.pack("<IIII", int(t), int(t % 1 * 1e6),
                                            len(frame), len(frame)) + frame)
            for p in self.ports:
                if p != src:
                    try:
                        self.sock.sendto(frame, ("127.0.0.1", p))
                    except OSError:
                        pass   # a guest not up yet or gone: like a cable pulled

    def stop(self):
        self.stopped = True
        self.sock.close()
        if self.pcap:
            self.pcap.close()


class Guest:
    """One QEMU guest. Public after run(): results, done, log_path."""

    def __init__(self, tb, index, name, ip=None, script=None, files=None,
                 params=None, rdma=False, rdma_props="", memory="512M",
                 cpus=1, qemu_args=()):
        self.tb, self.index, self.name = tb, index, name
        self.ip, self.script = ip, script
        self.files = dict(files or {})
        self.params = dict(params or {})
        self.rdma, self.rdma_props = rdma, rdma_props
        self.memory, self.cpus, self.qemu_args = memory, cpus, list(qemu_args)
        self.dir = os.path.join(tb.results, name)
        self.log_path = os.path.join(self.dir, "serial.log")
        self.sock = os.path.join(tb.sockdir, name + ".sock")
        self.qmp_path = os.path.join(tb.sockdir, name + ".qmp")
        self.net_port = free_udp_port()
        self.proc = None
        self.results = []   # [(PASS|FAIL, name)]
        self.done = False   # saw VRDMA-DONE

    def _initrd(self):
        """Base initramfs + an overlay with /test/run.sh and extra files."""
        stage = os.path.join(self.dir, "overlay")
        files = dict(self.files)
        if self.script:
            files["/test/run.sh"] = self.script
        for dst, src in files.items():
            path = os.path.join(stage, dst.lstrip("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(src, "rb") as fi, open(path, "wb") as fo:
                fo.write(fi.read())
            os.chmod(path, os.stat(src).st_mode & 0o777 |
                     (0o755 if dst == "/test/run.sh" else 0))
        initrd = os.path.join(self.dir, "initrd.cpio.gz")
        with open(os.path.join(self.tb.guest_dir, "initramfs.cpio.gz"), "rb") as f:
            base = f.read()
        if files:
            ov = os.path.join(self.dir, "overlay.cpio.gz")
            subprocess.run([os.path.join(HERE, "mkoverlay.sh"), stage, ov], check=True)
            with open(ov, "rb") as f:
                base += f.read()
        with open(initrd, "wb") as f:
            f.write(base)
        return initrd

    def command(self):
        cmdline = ["console=ttyS0", "loglevel=4", "panic=-1",
                   "vrdma.name=" + self.name]
        if self.ip:
            cmdline.append("vrdma.ip=" + self.ip)
        cmdline += ["vrdma.%s=%s" % (k, v) for k, v in self.params.items()]
        mac = "52:54:00:76:72:%02x" % (self.index + 1)
        cmd = [self.tb.qemu,
               "-machine", "q35,accel=%s,memory-backend=mem" % self.tb.accel,
               "-object", "memory-backend-memfd,id=mem,size=%s,share=on" % self.memory,
               "-m", self.memory, "-smp", str(self.cpus),
               "-nodefaults", "-display", "none", "-no-reboot",
               "-serial", "file:" + self.log_path,
               "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
               "-kernel", os.path.join(self.tb.guest_dir, "vmlinuz"),
               "-initrd", self._initrd(),
               "-append", " ".join(cmdline),
               "-netdev", "socket,id=net0,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d"
               % (self.tb.hub.port, self.net_port),
               "-device", "virtio-net-pci,netdev=net0,mac=%s,romfile=" % mac]
        if self.rdma:
            cmd += ["-chardev", "socket,id=rdma0,path=%s,reconnect=1" % self.sock,
                    "-device", "vhost-user-rdma-pci,chardev=rdma0" +
                    ("," + self.rdma_props if self.rdma_props else "")]
        return cmd + self.qemu_args

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        cmd = self.command()
        with open(os.path.join(self.dir, "qemu-cmdline.txt"), "w") as f:
            f.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(self.dir, "qemu.log"), "w"),
                                     stderr=subprocess.STDOUT)

    def serial(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return ANSI_RE.sub("", f.read())
        except FileNotFoundError:
            return ""

    def poll(self):
        text = self.serial()
        self.results = RESULT_RE.findall(text)
        self.done = "VRDMA-DONE" in text
        return self.done or self.proc.poll() is not None

    def qmp(self, command, **arguments):
        """Send one QMP command to the running guest (e.g. "stop", "cont",
        "system_reset") and return its "return" value."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.qmp_path)
            f = s.makefile("rw")
            f.readline()
            for req in ({"execute": "qmp_capabilities"},
                        {"execute": command, "arguments": arguments}):
                f.write(json.dumps(req) + "\n")
                f.flush()
                while True:
                    r = json.loads(f.readline())
                    if "error" in r:
                        raise RuntimeError("QMP %s: %s" % (command, r["error"]))
                    if "return" in r:
                        break
            return r["return"]

    def wait_for(self, text, timeout=60):
        """Block until TEXT appears on the serial console."""
        end = time.time() + timeout
        while time.time() < end:
            if text in self.serial():
                return True
            time.sleep(0.2)
        raise TimeoutError("%s: %r not seen in %ds" % (self.name, text, timeout))

    def stop(self):
        if self.proc and self.proc.poll() is None and self.done:
            try:   # it printed VRDMA-DONE and is powering off by itself
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def failed(self):
        return not self.done or any(r == "FAIL" for r, _ in self.results)


class Testbed:
    """Guests + optional daemon + the hub, run to completion.

    daemon: command line template; {sock} is the first RDMA guest's socket,
    {socks} all of them (space separated), {sockdir} their directory. With
    daemon_per_guest=True one daemon is started per RDMA guest instead,
    with {sock} that guest's socket."""

    def __init__(self, results=None, qemu=None, guest_dir=None, daemon=None,
                 daemon_per_guest=False, timeout=300, accel=None, pcap=True,
                 on_running=None):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.results = os.path.abspath(results or os.path.join(
            os.environ.get("TMPDIR", "/tmp"), "vrdma-results", stamp))
        os.makedirs(self.results, exist_ok=True)
        # Unix socket paths are limited to 107 bytes: fall back to /tmp.
        self.sockdir = os.path.join(self.results, "sock")
        if len(self.sockdir) > 70:
            self.sockdir = tempfile.mkdtemp(prefix="vrdma-sock-")
        os.makedirs(self.sockdir, exist_ok=True)
        self.qemu = qemu or os.environ.get("VRDMA_QEMU") or \
            last_line([os.path.join(REPO, "qemu", "build.sh")])
        self.guest_dir = guest_dir or os.environ.get("VRDMA_GUEST") or \
            last_line([os.path.join(HERE, "build-guest.sh")])
        self.daemon, self.daemon_per_guest = daemon, daemon_per_guest
        self.timeout = timeout
        self.accel = accel or os.environ.get("VRDMA_ACCEL", "tcg")
        self.hub = Hub(os.path.join(self.results, "net.pcap") if pcap else None)
        self.guests = []
        self.daemons = []
        self.on_running = on_running   # callback(testbed) once all guests run

    def add_guest(self, name, **kw):
        g = Guest(self, len(self.guests), name, **kw)
        self.guests.append(g)
        return g

    def guest(self, name):
        return next(g for g in self.guests if g.name == name)

    def _start_daemons(self):
        rdma = [g for g in self.guests if g.rdma]
        if not rdma:
            return
        if not self.daemon:
            raise RuntimeError("guests %s have a vhost-user-rdma device: give --daemon"
                               % " ".join(g.name for g in rdma))
        groups = [[g] for g in rdma] if self.daemon_per_guest else [rdma]
        for i, group in enumerate(groups):
            cmd = self.daemon.format(sock=group[0].sock, sockdir=self.sockdir,
                                     socks=" ".join(g.sock for g in group))
            out = open(os.path.join(self.results, "daemon%s.log" %
                                    (i if len(groups) > 1 else "")), "w")
            log("daemon: " + cmd)
            self.daemons.append(subprocess.Popen(
                cmd, shell=True, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True))
        # QEMU connects at start-up: wait for the daemon's listening sockets.
        end = time.time() + 20
        while not all(os.path.exists(g.sock) for g in rdma):
            if time.time() > end or any(d.poll() is not None for d in self.daemons):
                raise RuntimeError("daemon did not create %s" %
                                   " ".join(g.sock for g in rdma))
            time.sleep(0.1)

    def _stop_daemons(self):
        for d in self.daemons:
            if d.poll() is None:
                os.killpg(d.pid, signal.SIGTERM)
        for d in self.daemons:
            try:
                d.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(d.pid, signal.SIGKILL)
                d.wait()

    def run(self):
        """Run everything; return True when every guest passed."""
        t0 = time.time()
        timed_out = False
        self.hub.ports = [g.net_port for g in self.guests]
        self.hub.start()
        try:
            try:
                self._start_daemons()
            except RuntimeError as e:
                log(str(e))
                for path in sorted(os.listdir(self.results)):
                    if path.startswith("daemon"):
                        print("---- %s ----\n%s" % (path, open(os.path.join(
                            self.results, path), errors="replace").read()[-3000:]))
                print("0 passed, 1 failed (daemon did not start)")
                return False
            for g in self.guests:
                g.start()
            if self.on_running:
                self.on_running(self)
            while not all(g.poll() for g in self.guests):
                if time.time() - t0 > self.timeout:
                    timed_out = True
                    break
                if any(d.poll() is not None for d in self.daemons):
                    log("daemon exited early (rc=%s)" % self.daemons[0].returncode)
                    time.sleep(1)   # let guests log what that did to them
                    break
                time.sleep(0.25)
        finally:
            for g in self.guests:
                if g.proc:
                    g.stop()
                    g.poll()
            self._stop_daemons()
            self.hub.stop()
        return self._report(time.time() - t0, timed_out)

    def _report(self, elapsed, timed_out):
        passed = sum(1 for g in self.guests for r, _ in g.results if r == "PASS")
        failed = sum(1 for g in self.guests for r, _ in g.results if r == "FAIL")
        ok = not timed_out
        for g in self.guests:
            status = "FAIL" if g.failed() else "ok"
            extra = "" if g.done else " (no VRDMA-DONE: %s)" % (
                "timeout" if timed_out else "qemu rc=%s" % g.proc.returncode)
            print("%-10s %-4s %s%s" % (g.name, status,
                  " ".join("%s:%s" % (n, r) for r, n in g.results), extra))
            if g.failed():
                ok = False
                failed += 0 if any(r == "FAIL" for r, _ in g.results) else 1
                print("---- %s: last serial lines (%s) ----" % (g.name, g.log_path))
                print("\n".join(g.serial().splitlines()[-40:]))
                qlog = open(os.path.join(g.dir, "qemu.log"), errors="replace").read()
                if qlog.strip():
                    print("---- %s: qemu.log ----\n%s" % (g.name, qlog[-3000:]))
        for i, d in enumerate(self.daemons):
            if not ok:
                path = os.path.join(self.results, "daemon%s.log" %
                                    (i if len(self.daemons) > 1 else ""))
                print("---- daemon log tail (%s) ----" % path)
                print("\n".join(open(path, errors="replace").read().splitlines()[-30:]))
        print("%d passed, %d failed%s (%.1fs, results in %s)" % (
            passed, failed, ", TIMEOUT" if timed_out else "", elapsed, self.results))
        return ok


def load_scenario(path, tb_kwargs):
    """Scenario JSON -> Testbed. Paths are relative to the scenario file."""
    with open(path) as f:
        sc = json.load(f)
    base = os.path.dirname(os.path.abspath(path))
    rel = lambda p: p if os.path.isabs(p) else os.path.join(base, p)
    kw = {"timeout": sc.get("timeout", 300), "daemon": sc.get("daemon"),
          "daemon_per_guest": sc.get("daemon_per_guest", False)}
    kw.update({k: v for k, v in tb_kwargs.items() if v is not None})
    tb = Testbed(**kw)
    for spec in sc["guests"]:
        spec = dict(spec)
        if "script" in spec:
            spec["script"] = rel(spec["script"])
        spec["files"] = {d: rel(s) for d, s in spec.get("files", {}).items()}
        tb.add_guest(spec.pop("name"), **spec)
    return tb


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", help="scenario JSON file")
    ap.add_argument("--daemon", help="back-end command template ({sock}, {socks}, {sockdir})")
    ap.add_argument("--timeout", type=float, help="overall timeout in seconds")
    ap.add_argument("--results", help="results directory (default /tmp/vrdma-results/<time>)")
    ap.add_argument("--qemu", help="QEMU binary (default: qemu/build.sh output, or $VRDMA_QEMU)")
    ap.add_argument("--guest-dir", help="guest dir (default: build-guest.sh output, or $VRDMA_GUEST)")
    ap.add_argument("--accel", help="tcg (default) or kvm")
    a = ap.parse_args()
    name = os.path.splitext(os.path.basename(a.scenario))[0]
    results = a.results or os.path.join(os.environ.get("TMPDIR", "/tmp"), "vrdma-results",
                                        "%s-%s" % (name, time.strftime("%Y%m%d-%H%M%S")))
    tb = load_scenario(a.scenario, {"daemon": a.daemon, "timeout": a.timeout,
                                    "results": results, "qemu": a.qemu,
                                    "guest_dir": a.guest_dir, "accel": a.accel})
    sys.exit(0 if tb.run() else 1)


if __name__ == "__main__":
    main()
