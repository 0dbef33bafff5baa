# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the onestor replica path against the plain ssh path, in one run.

N hosts (default 4) clone the same image (default 1 GiB of data) at the same
time, as oned starts the clones of N VMs:

baseline: no REPLICA_HOST: N front-end -> host copies (the stock ssh driver's path);
onestor:  REPLICA_HOST set and its cache warm: the replica pushes to the hosts.

Every "machine" is an address of a private sshd on loopback (front-end: this
process; replica 127.0.0.2; hosts 127.0.0.3...), so all copies really go over
ssh, but they share one disk and two cores: the wall times show the cost of
the extra hop more than the relief of a front-end uplink, which this machine
does not have. The number that carries over is the bytes leaving the
front-end: the sum of ``Transferred: sent N`` of every ssh client the clone
actions start on the front-end (``ssh -v -E``), which excludes the pushes the
replica runs inside its own ssh sessions. Goal: 1 image instead of N. Usage:

    .venv/bin/python benchmarks/bench_onestor_replica.py [--size-mib 1024] [--hosts 4]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
REPLICA = "127.0.0.2"

RUNNER = """
import sys
sys.path.insert(0, {root!r})
from ansible_collections.nebula.storage.plugins.module_utils.tm.registry import main
sys.exit(main("onestor", "clone", sys.argv[1:], rc_path={rc!r}))
"""

# ssh as the driver's SSH: the front-end's own clients (they inherit
# BENCH_SSH_LOG) log their byte counts; the hosts' clients (started by sshd
# sessions, which do not pass the variable) are plain ssh.
SSH_WRAPPER = """#!/bin/sh
if [ -n "$BENCH_SSH_LOG" ]; then exec ssh -v -E "$BENCH_SSH_LOG" "$@"; fi
exec ssh "$@"
"""


class Sshd:
    """A private sshd for root on several loopback addresses, with its own keys."""

    def __init__(self, work: Path, addresses):
        self.dir = work
        self.addresses = addresses
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.key = work / "client_key"
        self.proc = None

    def start(self):
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)], check=True)
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        host_key = (self.dir / "host_key.pub").read_text().split()
        (self.dir / "known_hosts").write_text("".join(
            "[%s]:%d %s %s\n" % (a, self.port, host_key[0], host_key[1]) for a in self.addresses))
        config = self.dir / "sshd_config"
        config.write_text("\n".join(
            ["Port %d" % self.port] + ["ListenAddress %s" % a for a in self.addresses] + [
                "HostKey %s" % (self.dir / "host_key"), "PidFile %s" % (self.dir / "sshd.pid"),
                "AuthorizedKeysFile %s" % (self.dir / "authorized_keys"), "PermitRootLogin prohibit-password",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                "MaxStartups 100", "MaxSessions 100", "LogLevel ERROR", ""]))
        os.makedirs("/run/sshd", exist_ok=True)
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        with open(self.dir / "sshd.log", "w") as log:
            self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection((self.addresses[0], self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("sshd did not start: %s" % (self.dir / "sshd.log").read_text())
                time.sleep(0.1)

    def options(self):
        return "-F /dev/null -p %d -i %s -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s " \
               "-o LogLevel=ERROR" % (self.port, self.key, self.dir / "known_hosts")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def clones(work: Path, image: Path, hosts, dsid: int, round_no: int):
    """Start one clone per host at once; returns (wall seconds, bytes the front-end's ssh clients sent)."""
    log = work / ("ssh-%d-%d.log" % (dsid, round_no))
    env = dict(os.environ, BENCH_SSH_LOG=str(log))
    start = time.monotonic()
    procs = []
    for n, host in enumerate(hosts):
        dst = work / "hosts" / host / str(dsid) / str(round_no) / "disk.0"
        procs.append(subprocess.Popen([sys.executable, str(work / "clone"), "fe:%s" % image, "%s:%s" % (host, dst),
                                       str(n), str(dsid)], env=env, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        err = proc.communicate()[1]
        if proc.returncode != 0:
            raise RuntimeError("clone failed: %s" % err)
    wall = time.monotonic() - start
    sent = sum(int(m) for m in re.findall(r"Transferred: sent (\d+)", log.read_text())) if log.exists() else 0
    return wall, sent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="data in the image (MiB)")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the best wall time counts")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark starts a private sshd")
    hosts = ["127.0.0.%d" % (3 + n) for n in range(args.hosts)]
    work = Path(tempfile.mkdtemp(prefix="bench-onestor-", dir="/var/tmp"))
    sshd = Sshd(work, [REPLICA] + hosts)
    try:
        sshd.start()
        (work / "ssh").write_text(SSH_WRAPPER)
        (work / "ssh").chmod(0o755)
        rc = work / "onestorrc"
        rc.write_text("\n".join([
            "SSH=%s" % (work / "ssh"), "SSH_OPTS='%s'" % sshd.options(), "LOCAL_SHORTCUT=no", "ONE_LOOKUP=no",
            "DS_100_REPLICA_HOST=%s" % REPLICA, "LOCK_DIR=%s" % (work / "locks"), "TUNING_RC=/nonexistent",
            "REPLICA_CACHE_DIR=%s" % (work / "replica_cache"), "REPLICA_MAX_USED_PERC=99", ""]))
        (work / "clone").write_text(RUNNER.format(root=str(ROOT), rc=str(rc)))
        image = work / "images" / "1" / "image"
        image.parent.mkdir(parents=True)
        with open(image, "wb") as handle:
            for _chunk in range(args.size_mib):
                handle.write(os.urandom(MiB))
        print("image: %d MiB of data; %d hosts clone it at once over ssh (loopback sshd)" % (args.size_mib, args.hosts))
        warm_wall, warm_sent = clones(work, image, [hosts[0]], 100, 0)
        print("warming the replica cache (1 clone): %.2fs, front-end sent %.1f MiB" % (warm_wall, warm_sent / MiB))
        best = {}
        for round_no in range(1, args.repeat + 1):
            for name, dsid in (("baseline", 0), ("onestor", 100)) if round_no % 2 else (("onestor", 100), ("baseline", 0)):
                wall, sent = clones(work, image, hosts, dsid, round_no)
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, sent)
                shutil.rmtree(work / "hosts", ignore_errors=True)
        base_wall, base_sent = best["baseline"]
        our_wall, our_sent = best["onestor"]
        size = args.size_mib * MiB
        print("baseline (no replica, %d front-end -> host copies): %.2fs, front-end sent %.1f MiB (%.2f images)"
              % (args.hosts, base_wall, base_sent / MiB, base_sent / size))
        print("onestor  (warm replica cache, the replica pushes to the hosts): %.2fs, front-end sent %.1f MiB (%.2f images)"
              % (our_wall, our_sent / MiB, our_sent / size))
        print("bytes leaving the front-end: onestor/baseline = %.4f (goal: 1/%d of an image at most, warm: ~0)"
              % ((our_sent / base_sent) if base_sent else float("nan"), args.hosts))
        print("wall time: onestor/baseline = %.2f" % (our_wall / base_wall))
    finally:
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
