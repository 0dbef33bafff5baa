"""Speed at scale: converge the NFS shared backend on 1+3 and 1+9 lab machines.

For each size the lab is created from scratch (extensions/molecule/shared/create.yml and
prepare.yml, outside molecule), then the root site.yml runs twice:
the first run (everything to do) and the idempotent re-run, which must report
changed=0. Printed: wall times, tasks per host, and the ratio 9 hosts / 3 hosts
(goal: at most 1.5x). The baseline is the 3-host lab, measured in the same run.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 3 9] [--forks N] [--keep]

Needs root and podman (it uses the lab, lab/ns and lab/image.sh).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
LAB_NS = str(ROOT / "lab" / "ns")
SCENARIO = "scale"


def lab_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        CONTAINERS_CONF=str(ROOT / "lab" / "containers.conf"),
        MOLECULE_SCENARIO_NAME=SCENARIO,
        MOLECULE_PROJECT_DIRECTORY=str(ROOT),
        ANSIBLE_NOCOLOR="1",
    )
    return env


def playbook(args: list[str], extra_env: dict[str, str] | None = None) -> tuple[float, str]:
    env = lab_env()
    env.update(extra_env or {})
    t0 = time.monotonic()
    proc = subprocess.run([LAB_NS, str(VENV_BIN / "ansible-playbook"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_scale: ansible-playbook {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def recap(output: str) -> dict[str, dict[str, int]]:
    rows = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows


def lab_for(size: int, image: str, workdir: Path) -> tuple[Path, Path]:
    names = ["scale-fe"] + [f"scale-h{i}" for i in range(1, size + 1)]
    molecule_yml = {"platforms": [{"name": n, "image": image, "privileged": n == "scale-fe"} for n in names]}
    extra = workdir / f"molecule-{size}.json"
    extra.write_text(json.dumps({"molecule_yml": molecule_yml}))
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "containers.podman.podman",
                "ansible_python_interpreter": "/usr/bin/python3",
                # Lab settings, as in extensions/molecule/nfs_shared: ganesha is the
                # userspace NFS server, mounts are fstab entries only (no
                # kernel NFS client), and oned is the oned TEST DOUBLE.
                "nfs_shared_server_backend": "ganesha",
                "nfs_shared_mount_state": "present",
                "nfs_shared_oned_service": "oned-double",
            },
            "children": {
                "frontend": {"hosts": {"scale-fe": {}}},
                "hosts": {"hosts": {n: {} for n in names[1:]}},
                "nfs_shared": {"children": {"frontend": {}, "hosts": {}}},
            },
        }
    }
    inv = workdir / f"inventory-{size}.json"
    inv.write_text(json.dumps(inventory))
    return extra, inv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 9])
    ap.add_argument("--forks", type=int, help="ansible forks (default: ansible.cfg's)")
    ap.add_argument("--keep", action="store_true", help="leave the last lab running")
    opts = ap.parse_args()

    image = subprocess.run([str(ROOT / "lab" / "image.sh")], capture_output=True, text=True, check=True).stdout.strip()
    forks = ["--forks", str(opts.forks)] if opts.forks else []
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        for size in opts.sizes:
            extra, inv = lab_for(size, image, workdir)
            playbook(["extensions/molecule/shared/destroy.yml", "-e", f"@{extra}"])
            playbook(["extensions/molecule/shared/create.yml", "-e", f"@{extra}"])
            try:
                playbook(["-i", str(inv), "extensions/molecule/shared/prepare.yml"])
                first_s, first_out = playbook(["-i", str(inv), "site.yml", *forks])
                rerun_s, rerun_out = playbook(["-i", str(inv), "site.yml", *forks])
            finally:
                if not (opts.keep and size == opts.sizes[-1]):
                    playbook(["extensions/molecule/shared/destroy.yml", "-e", f"@{extra}"])
            rows = recap(rerun_out)
            changed = sum(r.get("changed", 0) for r in rows.values())
            host_rows = [r for h, r in recap(first_out).items() if h.startswith("scale-h")]
            tasks_per_host = max(r.get("ok", 0) + r.get("skipped", 0) + r.get("failed", 0) for r in host_rows)
            fe = recap(first_out).get("scale-fe", {})
            fe_tasks = fe.get("ok", 0) + fe.get("skipped", 0)
            results[size] = (first_s, rerun_s, tasks_per_host, fe_tasks, changed)
            print(f"1+{size} hosts: first run {first_s:6.1f} s, re-run {rerun_s:6.1f} s, "
                  f"tasks per host {tasks_per_host}, front-end tasks {fe_tasks}, re-run changed={changed}", flush=True)
            if changed:
                sys.exit(f"bench_scale: the re-run on 1+{size} hosts reported changed={changed}")

    if len(opts.sizes) >= 2:
        small, large = opts.sizes[0], opts.sizes[-1]
        r_first = results[large][0] / results[small][0]
        r_rerun = results[large][1] / results[small][1]
        verdict = "ok" if max(r_first, r_rerun) <= 1.5 else "ABOVE GOAL"
        print(f"ratio {large}/{small} hosts: first run {r_first:.2f}x, re-run {r_rerun:.2f}x (goal <= 1.5x): {verdict}")


if __name__ == "__main__":
    main()
