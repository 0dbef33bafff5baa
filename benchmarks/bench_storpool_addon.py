# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the storpool_addon role against the addon's own install.sh, on the same tree, in one run.

The real addon (../shared/fixtures/addon-storpool, extracted to a temp dir) is installed on two
copies of the same generated OpenNebula front-end layout (tests/functional/storpool_addon/addon_layout.py):

baseline: install.sh (AUTOCONF=1) in a private mount namespace, as the parity test runs it;
role:     ansible-playbook with the storpool_addon role on localhost, first run then second run.

systemctl, systemd-tmpfiles, onehook, onehost and crontab are the parity test's logging TEST DOUBLES.
Goals (issue 17): first run <= 5 x install.sh + 20 s; second run <= 10 s with changed=0. Usage:

    .venv/bin/python benchmarks/bench_storpool_addon.py [--release 6.10.5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# tests.conftest makes the collection importable
import tests.conftest  # noqa: E402,F401  pylint: disable=unused-import
from tests.functional.storpool_addon import test_storpool_addon_parity as parity  # noqa: E402
from tests.functional.storpool_addon.addon_layout import extract_addon  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--release", default="6.10.5", choices=sorted(parity.RELEASES))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_storpool_addon.") as tmp:
        tmp = Path(tmp)
        addon = extract_addon(parity.TARBALL, tmp / "addon")
        lens = tmp / "oned.aug"
        import tarfile
        with tarfile.open(parity.FIXTURES / "opennebula" / "opennebula-7.4.0-src.tar.gz") as tar:
            lens.write_bytes(tar.extractfile("opennebula-7.4.0/share/augeas/oned.aug").read())
        bindir = parity.stubs(tmp / "bin")
        sh_root, role_root = tmp / "sh", tmp / "role"
        parity.layout(sh_root, args.release, addon)
        parity.layout(role_root, args.release, addon)
        for d in ("sh-cron", "role-cron", "role-tmp"):
            (tmp / d).mkdir()

        t = time.monotonic()
        sh = parity.run_install_sh(addon, sh_root, bindir, tmp / "sh.log", tmp / "sh-cron", lens)
        sh_time = time.monotonic() - t
        if sh.returncode != 0:
            sys.exit("install.sh failed: %s" % (sh.stdout[-2000:] + sh.stderr[-2000:]))

        times, changed = [], []
        for _round in range(2):
            t = time.monotonic()
            r = parity.run_role(addon, role_root, bindir, tmp / "role.log", tmp / "role-cron", tmp / "role-tmp")
            times.append(time.monotonic() - t)
            if r.returncode != 0:
                sys.exit("the role failed: %s" % r.stdout[-3000:])
            changed.append(parity.recap(r.stdout)["changed"])
        first, second = times
        # the floor on this machine now: the same number of module calls (15 in a second run of the role) as trivial stat tasks
        floor_play = tmp / "floor.yml"
        floor_play.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                              + "    - ansible.builtin.stat: {path: /}\n" * 15)
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        t = time.monotonic()
        subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(tmp / "role-tmp" / "inv.yml"), str(floor_play)],
                       capture_output=True, env=env, cwd=str(ROOT), check=True, timeout=600)
        floor = time.monotonic() - t
        files = len(parity.snapshot(role_root / "var/lib/one"))
        print("OpenNebula %s layout, real addon tree, %d files under ONE_VAR after install" % (args.release, files))
        print("install.sh (AUTOCONF=1):   %6.2fs" % sh_time)
        print("role, first run:           %6.2fs  changed=%d" % (first, changed[0]))
        print("role, second run:          %6.2fs  changed=%d" % (second, changed[1]))
        budget = 5 * sh_time + 20
        print("first run / install.sh = %.1f; first run / goal (5 x install.sh + 20 s = %.1fs) = %.2f"
              % (first / sh_time, budget, first / budget))
        print("second run / goal (10 s) = %.2f; second run changed=%d (goal 0)" % (second / 10.0, changed[1]))
        print("floor now (ansible-playbook with 15 trivial stat tasks, same machine, same minute): %.2fs; "
              "second run / floor = %.2f" % (floor, second / floor))
        ok = first <= budget and second <= 10.0 and changed[1] == 0
        print("goals met" if ok else "GOALS MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
