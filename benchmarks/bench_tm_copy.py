# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the TM clone copies against their baselines, in one run.

A sparse raw image (default 4 GiB holding 512 MiB of data, under /var/tmp) is
cloned by:

local:  ``cp --sparse=auto``  vs  our ``clone`` action to this host (local shortcut)
        vs OpenNebula's ``tar -cSf - | tar -xSf -``;
remote: ``tar -cSf - | ssh host tar -xSf -``  vs  our ``clone`` action streaming
        over one ssh connection, to a private sshd on 127.0.0.1.

Goals: local clone within 1.2x of cp, remote clone no slower than tar|ssh,
holes kept (allocated size within 1% of the source). Each timing is the best
of ``--repeat`` runs with a warm page cache; the contenders run in turn (order
rotated each round) after an ``os.sync()``, so machine load hits all alike. Usage:

    .venv/bin/python benchmarks/bench_tm_copy.py [--size-gib 4] [--data-mib 512] [--no-remote]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "functional" / "tm"))

# tests.conftest makes the collection importable as ansible_collections.nebula.storage
import tests.conftest  # noqa: E402,F401  pylint: disable=unused-import
from ansible_collections.nebula.storage.plugins.module_utils.tm import copy as tm_copy  # noqa: E402
from ansible_collections.nebula.storage.plugins.module_utils.tm import rc as tm_rc  # noqa: E402

MiB = 1 << 20

# The entry point tm_driver installs (its shebang included): the runtime as a plain package in lib/.
from ansible_collections.nebula.storage.plugins.modules import tm_driver  # noqa: E402


def runner_text(rc_path):
    return tm_driver.EXECUTABLE.format(action="clone", driver="nfs_shared", protocol="7", package="nebula_tm",
                                       rc_path=repr(str(rc_path)), interpreter=tm_driver.interpreter())


def make_image(path: Path, size: int, data: int) -> None:
    chunks = 64
    chunk = data // chunks
    step = size // chunks
    block = os.urandom(chunk)
    with open(path, "wb") as handle:
        handle.truncate(size)
        for i in range(chunks):
            handle.seek(i * step + (step - chunk) // 2)
            handle.write(block[i:] + block[:i])
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm the cache


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def timed(func, repeat: int, cleanup) -> float:
    best = None
    for _attempt in range(repeat):
        cleanup()
        os.sync()
        start = time.perf_counter()
        func()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


def interleaved(funcs: dict, repeat: int, cleanup) -> dict:
    """Best time of each function, running them in turn so machine load hits all alike."""
    best: dict = {}
    names = list(funcs)
    for attempt in range(repeat):
        cleanup()
        for name in names[attempt % len(names):] + names[:attempt % len(names)]:
            func = funcs[name]
            os.sync()  # flush the previous run's writes outside the timing
            start = time.perf_counter()
            func()
            elapsed = time.perf_counter() - start
            best[name] = min(best.get(name, elapsed), elapsed)
    return best


def sh(cmd: str) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)


def report(name: str, seconds: float, path: Path, src_alloc: int, baseline: float | None = None) -> None:
    alloc = allocated(path)
    drift = abs(alloc - src_alloc) / src_alloc * 100
    line = "  %-34s %7.2f s   allocated %8.1f MiB (%+.2f%%)" % (name, seconds, alloc / MiB, drift)
    if baseline:
        line += "   ratio %.2fx" % (seconds / baseline)
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--size-gib", type=float, default=4.0)
    parser.add_argument("--data-mib", type=int, default=512)
    parser.add_argument("--dir", default="/var/tmp")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-remote", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-tm-copy-", dir=args.dir))
    sshd = None
    try:
        src = work / "image.raw"
        size = int(args.size_gib * (1 << 30))
        print("image: %.1f GiB sparse raw with %d MiB of data in %s" % (size / (1 << 30), args.data_mib, work))
        make_image(src, size, args.data_mib * MiB)
        src_alloc = allocated(src)
        rc_file = work / "nfs_sharedrc"
        rc_file.write_text(tm_rc.render_rc({"LOCK_DIR": str(work / "locks")}))
        runner = work / "clone.py"
        runner.write_text(runner_text(rc_file))
        runner.chmod(0o755)
        shutil.copytree(ROOT / "plugins" / "module_utils" / "tm", work / "lib" / "nebula_tm",
                        ignore=shutil.ignore_patterns("__pycache__"))
        out = work / "out"

        def clean():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()

        print("local clone (best of %d, runs interleaved):" % args.repeat)
        local = {
            "cp": lambda: subprocess.run(["cp", "--sparse=auto", str(src), str(out / "cp.img")], check=True),
            "action": lambda: subprocess.run([str(runner), "fe:%s" % src,
                                              "localhost:%s" % (out / "disk.0"), "0", "1"], check=True),
            "engine": lambda: tm_copy.copy_local(str(src), str(out / "engine.img")),
            "start": lambda: subprocess.run([str(runner)], stderr=subprocess.DEVNULL, check=False),
        }
        best = interleaved(local, args.repeat, clean)
        t_cp = best["cp"]
        report("cp --sparse=auto", t_cp, out / "cp.img", src_alloc)
        report("nfs_shared clone action (local)", best["action"], out / "disk.0", src_alloc, t_cp)
        report("copy_local() in-process", best["engine"], out / "engine.img", src_alloc, t_cp)
        overhead = ("action process overhead", best["start"])
        print("  %-34s %7.2f s   (interpreter start + runtime import, no copy)" % overhead)
        # OpenNebula's own method, for reference: one run (it is an order of magnitude slower)
        t_tar = timed(lambda: sh("tar -C %s -cSf - image.raw | tar -C %s -xSf -" % (work, out)), 1, clean)
        report("tar -cSf - | tar -xSf -", t_tar, out / "image.raw", src_alloc, t_cp)
        print("  => local clone action / cp --sparse=auto = %.2fx, copy engine / cp = %.2fx (goal <= 1.2x)"
              % (best["action"] / t_cp, best["engine"] / t_cp))

        if not args.no_remote:
            from tm_functional import LoopbackSshd
            if not shutil.which("sshd") and not os.path.exists("/usr/sbin/sshd"):
                print("remote: skipped, sshd is not installed")
                return 0
            sshd_dir = work / "sshd"
            sshd_dir.mkdir()
            sshd = LoopbackSshd(sshd_dir).start()
            rc_file.write_text(tm_rc.render_rc({"LOCK_DIR": str(work / "locks"), "SSH_OPTS": sshd.options(),
                                                "LOCAL_SHORTCUT": "no"}))
            ssh = "ssh " + sshd.options()
            rounds = max(1, args.repeat - 1)
            print("remote clone to 127.0.0.1 over ssh (best of %d, runs interleaved):" % rounds)
            remote = {
                "tar": lambda: sh("tar -C %s -cSf - image.raw | %s 127.0.0.1 tar -C %s -xSf -" % (work, ssh, out)),
                "ours": lambda: subprocess.run([str(runner), "fe:%s" % src,
                                                "127.0.0.1:%s" % (out / "disk.0"), "0", "1"], check=True),
            }
            best = interleaved(remote, rounds, clean)
            t_rtar, t_rours = best["tar"], best["ours"]
            report("tar -cSf - | ssh host tar -xSf -", t_rtar, out / "image.raw", src_alloc)
            report("nfs_shared clone (ssh stream)", t_rours, out / "disk.0", src_alloc, t_rtar)
            print("  => remote clone / tar|ssh = %.2fx (goal <= 1.0x)" % (t_rours / t_rtar))
    finally:
        if sshd:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
