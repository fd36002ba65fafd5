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
DONE_RE = re.compile(r"VRDMA-DONE(?: failed=(\d+))?")
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc|\r")


def log(msg):
    print("run.py: " + msg, file=sys.stderr, flush=True)


def last_line(cmd):
    """Run a build script (output to our stderr), return its last stdout line."""
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


def static_swift_build(products):
    """Release builds of PRODUCTS with the Swift runtime linked in (guests have no Swift), in the
    scratch directory .build-static (or $VRDMA_STATIC_SCRATCH); returns their directory."""
    repo = os.path.dirname(HERE)
    scratch = os.environ.get("VRDMA_STATIC_SCRATCH", os.path.join(repo, ".build-static"))
    cmd = ["swift", "build", "-c", "release", "--static-swift-stdlib", "--scratch-path", scratch]
    for product in products:
        print("static build: " + product, file=sys.stderr, flush=True)
        subprocess.run(cmd + ["--product", product], cwd=repo, check=True, stdout=sys.stderr)
    return subprocess.run(cmd + ["--show-bin-path"], cwd=repo, check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]


def log_sequence(text, items):
    """Are ITEMS (substrings) found in TEXT's lines in this order, each on a
    later line than the one before? Repeat an item to require it N times.
    Returns None when all were found, else a message naming the first missing
    item."""
    lines = text.splitlines()
    at = 0
    for n, item in enumerate(items):
        while at < len(lines) and item not in lines[at]:
            at += 1
        if at == len(lines):
            return "item %d %r not found (after %d of %d items)" % (n, item, n, len(items))
        at += 1
    return None


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_size(text):
    """'512K', '1M', '4096' -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = str(text).upper()
    return int(t[:-1]) * units[t[-1]] if t[-1] in units else int(t)


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
                 cpus=1, qemu_args=(), socket=None, reboot=False, disk=None,
                 kernel_args=(), overlays=()):
        self.tb, self.index, self.name = tb, index, name
        self.ip, self.script = ip, script
        self.files = dict(files or {})
        # Whole trees (directories, packed as they are, symlinks kept) or ready
        # .cpio.gz archives, laid over the base image before `files`.
        self.overlays = list(overlays)
        self.params = dict(params or {})
        self.rdma, self.rdma_props = rdma, rdma_props
        self.memory, self.cpus, self.qemu_args = memory, cpus, list(qemu_args)
        self.kernel_args = list(kernel_args)   # extra kernel command line words
        self.dir = os.path.join(tb.results, name)
        self.log_path = os.path.join(self.dir, "serial.log")
        # socket: share another guest's vhost-user socket (sequential guests).
        self.sock = os.path.join(tb.sockdir, (socket or name) + ".sock")
        self.reboot = reboot   # False: -no-reboot (a guest reboot ends QEMU)
        self.disk = disk       # e.g. "1M": a zeroed raw virtio-blk disk (/dev/vda)
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
        for i, tree in enumerate(self.overlays):
            if os.path.isdir(tree):
                packed = os.path.join(self.dir, "overlay-%d.cpio.gz" % i)
                subprocess.run([os.path.join(HERE, "mkoverlay.sh"), tree, packed], check=True)
                tree = packed
            with open(tree, "rb") as f:
                base += f.read()
        if files:
            ov = os.path.join(self.dir, "overlay.cpio.gz")
            subprocess.run([os.path.join(HERE, "mkoverlay.sh"), stage, ov], check=True)
            with open(ov, "rb") as f:
                base += f.read()
        with open(initrd, "wb") as f:
            f.write(base)
        return initrd

    def command(self):
        # no_timer_check: under a loaded TCG host the kernel's IO-APIC timer check can time
        # out and panic the boot ("IO-APIC + timer doesn't work!") before any test runs.
        cmdline = ["console=ttyS0", "loglevel=4", "panic=-1", "no_timer_check",
                   "vrdma.name=" + self.name]
        if self.ip:
            cmdline.append("vrdma.ip=" + self.ip)
        cmdline += ["vrdma.%s=%s" % (k, v) for k, v in self.params.items()]
        cmdline += self.kernel_args
        mac = "52:54:00:76:72:%02x" % (self.index + 1)
        cmd = [self.tb.qemu,
               "-machine", "q35,accel=%s,memory-backend=mem" % self.tb.accel,
               "-object", "memory-backend-memfd,id=mem,size=%s,share=on" % self.memory,
               "-m", self.memory, "-smp", str(self.cpus),
               "-nodefaults", "-display", "none"] + \
              ([] if self.reboot else ["-no-reboot"]) + [
               "-serial", "file:" + self.log_path,
               "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
               "-kernel", os.path.join(self.tb.guest_dir, "vmlinuz"),
               "-initrd", self._initrd(),
               "-append", " ".join(cmdline),
               "-netdev", "socket,id=net0,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d"
               % (self.tb.hub.port, self.net_port),
               "-device", "virtio-net-pci,netdev=net0,mac=%s,romfile=" % mac]
        if self.disk:
            img = os.path.join(self.dir, "disk.img")
            with open(img, "wb") as f:
                f.truncate(parse_size(self.disk))
            cmd += ["-drive", "file=%s,format=raw,if=virtio" % img]
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
        done = DONE_RE.findall(text)
        self.done = bool(done)
        # A FAIL line kernel messages garbled still counts: the guest reports its failures.
        reported = max((int(n) for n in done if n), default=0)
        seen = sum(1 for r, _ in self.results if r == "FAIL")
        self.results += [("FAIL", "unreadable-fail-line")] * max(0, reported - seen)
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
        """Block until TEXT appears on the serial console. Raises
        TimeoutError, or RuntimeError as soon as QEMU or a daemon exited."""
        end = time.time() + timeout
        while time.time() < end:
            if text in self.serial():
                return True
            if self.proc.poll() is not None or any(d.poll() is not None for d in self.tb.daemons):
                if text in self.serial():
                    return True
                raise RuntimeError("%s: %r not seen and %s exited" % (
                    self.name, text, "QEMU" if self.proc.poll() is not None else "the daemon"))
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
                 on_running=None, daemon_log_contains=None, daemon_exit_status=None):
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
        self.host_results = []         # [(PASS|FAIL, name)] from checks on the host
        # Checked after the daemons stopped: an ordered list of substrings
        # the (first) daemon log must contain, and the daemons' exit status
        # after SIGTERM.
        self.daemon_log_contains = list(daemon_log_contains or [])
        self.daemon_exit_status = daemon_exit_status
        self.daemon_status = []        # exit status per daemon, after run()

    def add_guest(self, name, **kw):
        """Add a guest. Before run(): started with the others. From an
        on_running callback: call guest.start() yourself (the runner then
        waits for it like for the others)."""
        g = Guest(self, len(self.guests), name, **kw)
        self.guests.append(g)
        self.hub.ports.append(g.net_port)
        return g

    def check(self, name, ok, detail=""):
        """Record a host-side result; counted like a guest's VRDMA-TEST line."""
        r = "PASS" if ok else "FAIL"
        self.host_results.append((r, name))
        print("VRDMA-TEST: %s %s%s" % (r, name, (" (%s)" % detail) if detail else ""),
              flush=True)
        return ok

    def daemon_log(self, i=0):
        """Text of daemon I's log so far ("" if none)."""
        path = os.path.join(self.results, "daemon%s.log" % (i if len(self.daemons) > 1 else ""))
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def daemon_pids(self, i=0):
        """PIDs of the processes in daemon I's process group (the daemon
        itself, and its shell if the command was not a simple command)."""
        d = self.daemons[i]
        pids = []
        for e in os.listdir("/proc"):
            if e.isdigit():
                try:
                    with open("/proc/%s/stat" % e) as f:
                        st = f.read()
                except OSError:
                    continue
                if int(st.rsplit(")", 1)[1].split()[2]) == d.pid:   # field 5: pgrp
                    pids.append(int(e))
        return sorted(pids)

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
            socks = list(dict.fromkeys(g.sock for g in group))
            cmd = self.daemon.format(sock=socks[0], sockdir=self.sockdir,
                                     socks=" ".join(socks))
            if not re.search(r"[;&|<>()`$\n]", cmd):
                cmd = "exec " + cmd   # the daemon is then our child: its PID, its status
            out = open(os.path.join(self.results, "daemon%s.log" %
                                    (i if len(groups) > 1 else "")), "w")
            log("daemon: " + cmd.replace("exec ", "", 1))
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
        # Negative: killed by that signal (-9 = did not stop within 5 s).
        self.daemon_status = [d.returncode for d in self.daemons]

    def _daemon_checks(self, early_exit):
        if not self.daemons:
            return
        if self.daemon_log_contains:
            missing = log_sequence(self.daemon_log(), self.daemon_log_contains)
            self.check("daemon-log-contains", missing is None, missing or "")
        if self.daemon_exit_status is not None:
            ok = not early_exit and all(s == self.daemon_exit_status for s in self.daemon_status)
            self.check("daemon-exit-status-%d" % self.daemon_exit_status, ok,
                       "status %s%s" % (" ".join(map(str, self.daemon_status)),
                                        ", exited before the end" if early_exit else ""))

    def run(self):
        """Run everything; return True when every guest passed."""
        t0 = time.time()
        timed_out = early_exit = False

        def terminated(signum, frame):   # e.g. e2e.sh's time limit: clean up below
            raise SystemExit("run.py: terminated by signal %d" % signum)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, terminated)
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
                try:
                    self.on_running(self)
                except Exception as e:   # a host-side step failed or timed out
                    log("on_running: %s: %s" % (type(e).__name__, e))
                    self.check("on-running", False, str(e))
            while not all(g.poll() for g in self.guests if g.proc):
                if time.time() - t0 > self.timeout:
                    timed_out = True
                    break
                if any(d.poll() is not None for d in self.daemons):
                    early_exit = True
                    log("daemon exited early (rc=%s)" % self.daemons[0].returncode)
                    time.sleep(1)   # let guests log what that did to them
                    break
                time.sleep(0.25)
        finally:
            for g in self.guests:
                if g.proc:
                    g.stop()
                    g.poll()
            early_exit = early_exit or any(d.poll() is not None for d in self.daemons)
            self._stop_daemons()
            self.hub.stop()
        self._daemon_checks(early_exit)
        return self._report(time.time() - t0, timed_out)

    def _report(self, elapsed, timed_out):
        guests = [g for g in self.guests if g.proc]   # those that were started
        results = [r for g in guests for r, _ in g.results] + [r for r, _ in self.host_results]
        passed, failed = results.count("PASS"), results.count("FAIL")
        ok = not timed_out and "FAIL" not in results
        if self.host_results:
            print("%-10s %-4s %s" % ("(host)", "FAIL" if "FAIL" in results[-len(self.host_results):]
                                     else "ok", " ".join("%s:%s" % (n, r) for r, n in self.host_results)))
        for g in guests:
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
                print("---- daemon log tail (%s/daemon%s.log) ----" % (
                    self.results, i if len(self.daemons) > 1 else ""))
                print("\n".join(self.daemon_log(i).splitlines()[-30:]))
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
          "daemon_per_guest": sc.get("daemon_per_guest", False),
          "daemon_log_contains": sc.get("daemon_log_contains"),
          "daemon_exit_status": sc.get("daemon_exit_status")}
    kw.update({k: v for k, v in tb_kwargs.items() if v is not None})
    tb = Testbed(**kw)
    for spec in sc["guests"]:
        spec = dict(spec)
        if "script" in spec:
            spec["script"] = rel(spec["script"])
        spec["files"] = {d: rel(s) for d, s in spec.get("files", {}).items()}
        spec["overlays"] = [rel(o) for o in spec.get("overlays", [])]
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
