#!/usr/bin/env python
"""Benchmark: parse + edit + render of the 58 KB oned-7.4.0.conf with nebula.storage's lossless parser.

Prints our best-of-N time, the 25 ms goal, and the ratio to a plain read of the
same file measured in the same run (best of N as well).  One process, one core.

Quoted reference, NOT measured here: issue 3 reports that one-deploy's lossless
parser (cfgtool) takes 236 ms for parse and render of this file on the same machine.

Run:  .venv/bin/python benchmarks/bench_oned_conf.py [--runs N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import FIXTURES  # noqa: E402  (also makes ansible_collections.nebula.storage importable)

from ansible_collections.nebula.storage.plugins.module_utils._oned_template import apply_edits, parse  # noqa: E402

FILE = FIXTURES / "oned" / "oned-7.4.0.conf"
GOAL_MS = 25.0
CFGTOOL_MS = 236.0  # quoted from the issue, not measured here

EDITS = dict(
    drivers=[
        {"attribute": "TM_MAD", "add": ["storpool"]},
        {"attribute": "DATASTORE_MAD", "add": ["storpool"]},
        {"attribute": "DATASTORE_MAD", "option": "-s", "add": ["storpool"]},
    ],
    blocks=[
        {"attribute": "TM_MAD_CONF", "match": {"NAME": "storpool"},
         "set": {"LN_TARGET": "NONE", "CLONE_TARGET": "SELF", "SHARED": "yes", "DS_MIGRATE": "yes"}},
        {"attribute": "DS_MAD_CONF", "match": {"NAME": "storpool"},
         "set": {"REQUIRED_ATTRS": "DISK_TYPE", "PERSISTENT_ONLY": "NO", "MARKETPLACE_ACTIONS": "export"}},
    ],
    attributes=[{"name": "DEFAULT_DEVICE_PREFIX", "value": "sd"}],
    lists=[{"name": "VM_RESTRICTED_ATTR", "add": ["VMSNAPSHOT_LIMIT", "DISKSNAPSHOT_LIMIT"]}],
)


def best(fn, runs):
    times = []
    for _n in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000.0, sorted(times)[len(times) // 2] * 1000.0


def read_only():
    with open(FILE, encoding="utf-8") as f:
        return f.read()


def parse_edit_render():
    text = read_only()
    doc = parse(text, str(FILE))
    changes = apply_edits(doc, **EDITS)
    out = doc.render()
    assert changes and len(out) > len(text)
    return out


def parse_render():
    text = read_only()
    out = parse(text, str(FILE)).render()
    assert out == text
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    read_ms, read_med = best(read_only, args.runs)
    pr_ms, pr_med = best(parse_render, args.runs)
    per_ms, per_med = best(parse_edit_render, args.runs)
    size = FILE.stat().st_size
    print("file: %s (%d bytes), best of %d runs, one core" % (FILE.name, size, args.runs))
    print("plain read:               %7.3f ms (median %.3f)" % (read_ms, read_med))
    print("parse + render:           %7.3f ms (median %.3f)  ratio to plain read: %.0fx" % (pr_ms, pr_med, pr_ms / read_ms))
    print("parse + edit + render:    %7.3f ms (median %.3f)  ratio to plain read: %.0fx" % (per_ms, per_med, per_ms / read_ms))
    print("goal: < %.0f ms -> %s" % (GOAL_MS, "met" if per_ms < GOAL_MS else "NOT met"))
    print("reference (quoted from issue 3, not measured here): one-deploy cfgtool parse+render %.0f ms" % CFGTOOL_MS)
    return 0 if per_ms < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
