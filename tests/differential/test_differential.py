"""OpenNebula 7.4.0's stock TM scripts and ours, step by step on identical inputs.

Each step of each case runs with the stock driver, then (from the same start)
with ours. After every step the exit status (success or failure), stdout and
every file of every machine (see ``harness.describe``) are compared. A step is
``same``, an ``intended`` difference (``INTENDED`` below names it, with the
reason, and the test asserts the difference is really there) or ``different``
(the test fails).
"""
from __future__ import annotations

import json
import re

import pytest

from cases import CASES, make_file
from harness import ROWS

# (driver, sequence, step index) -> reason. Each is listed in the README's driver section.
INJECTION = ("stock pastes the image path into a remote shell command line, so `;`, `$()` and backquotes in it run "
             "as commands; ours passes paths as data (sh -c with positional parameters) and copies the file named so")
MONITOR_DS_BUG = ("stock bug: ssh/monitor_ds splits the SNAPSHOT_SIZE line so that bash runs it as a command "
                  "('[ ID=0, ...]: command not found'); snapshot sizes never reach oned. Ours reports them")
# steps where a stock script fails in a way the harness would take for its own breakage
STOCK_BUGS = {("ssh", "monitor", 3)}
INTENDED = {
    ("ssh", "monitor", 3): MONITOR_DS_BUG,
    ("shared", "injection-semicolon", 0): INJECTION,
    ("shared", "injection-dollar-paren", 0): INJECTION,
    ("shared", "injection-backquote", 0): INJECTION,
}


def _clone_is_exact(case, ours):
    """Ours succeeded and disk.0 is a copy of the image named with shell syntax."""
    files = ours["files"]
    image = [k for k in files if k.startswith("nfs:101/img")]
    return ours["ok"] and len(image) == 1 and files["nfs:100/7/disk.0"].get("sha256") == files[image[0]]["sha256"]


def _reports_snapshot_sizes(case, ours):
    import base64  # pylint: disable=import-outside-toplevel
    monitor = re.search(r'MONITOR = "([^"]*)"', ours["stdout"])
    text = base64.b64decode(monitor.group(1)).decode() if monitor else ""
    return ours["ok"] and "DISK_SIZE = [ ID=0, SIZE=" in text and "SNAPSHOT_SIZE = [ ID=0, DISK_ID=0, SIZE=" in text


# what ours must do where it differs on purpose: (driver, sequence, step) -> check(case, our record)
INTENDED_CHECKS = {key: _clone_is_exact for key in INTENDED if key[1].startswith("injection-")}
INTENDED_CHECKS[("ssh", "monitor", 3)] = _reports_snapshot_sizes


def _fmt(value, mnt):
    return str(value).replace("{M}", str(mnt))


def _prepare(runner, case):
    world = runner.world
    world.reset()
    for machine, path, kind, size in case.files:
        make_file(runner, machine, _fmt(path, world.mnt), kind, size)
    for vmid, xml in case.vm.items():
        (world.fake / ("onevm-%s.xml" % vmid)).write_text(_fmt(xml, world.mnt))
    for dsid, xml in case.ds.items():
        (world.fake / ("onedatastore-%s.xml" % dsid)).write_text(_fmt(xml, world.mnt))


def play(runner, case, side):
    """Run the case's steps with ``side`` ("stock" or "ours"); one record per step."""
    _prepare(runner, case)
    driver = case.driver if side == "stock" else case.ours_driver
    records = []
    for index, step in enumerate(case.steps):
        action, args = step[0], [_fmt(a, runner.world.mnt) for a in step[1]]
        stdin = step[2] if len(step) > 2 else ""
        stdin = (stdin(runner.world.mnt) if callable(stdin) else _fmt(stdin, runner.world.mnt)).encode()
        proc = runner.run(side, driver, action, args, stdin)
        for broken in (b"LoadError", b"unary operator expected", b"command not found", b"remotes/etc/"):
            if (case.driver, case.name, index) in STOCK_BUGS and side == "stock":
                continue
            assert broken not in proc.stderr, "the harness is broken: %s %s: %s" % (side, action, proc.stderr[-800:])
        records.append({"rc": proc.returncode, "ok": proc.returncode == 0, "virsh": virsh_calls(runner.world),
                        "stdout": normal_stdout(proc.stdout.decode(errors="replace")),
                        "stderr": proc.stderr.decode(errors="replace").strip()[-600:],
                        "files": runner.world.snapshot()})
    return records


RECORDED = ("virsh", "lxc-", "systemd-run", "systemctl")


def virsh_calls(world):
    """What the recording virsh (and lxc-freeze/lxc-unfreeze, systemd-run, systemctl) logged during the step (its XML files' paths left
    out), then the log is emptied."""
    log = world.fake / "calls.log"
    if not log.exists():
        return []
    lines = [re.sub(r"--xmlfile \S+", "--xmlfile FILE", line) for line in log.read_text().splitlines()
             if line.startswith(RECORDED)]
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()
                           if not line.startswith(RECORDED)))
    return lines


def normal_stdout(text):
    """stdout without what changes between two runs on a busy machine (used and free MiB of df)."""
    return re.sub(r"\b(USED_MB|FREE_MB)=[0-9]+", r"\1=N", text).strip()


def same_entry(a, b):
    """Equal entries; allocated sizes may differ by 64 KiB + 1% (filesystems round allocations)."""
    if a is None or b is None or a.get("type") != "file" or b.get("type") != "file":
        return a == b
    if "iso" in a and "iso" in b:   # genisoimage and xorriso lay out the same files a few KiB apart
        return a["iso"] == b["iso"] and a["mode"] == b["mode"] and a["uid"] == b["uid"]
    rest_a = {k: v for k, v in a.items() if k != "alloc_kib"}
    rest_b = {k: v for k, v in b.items() if k != "alloc_kib"}
    return rest_a == rest_b and abs(a["alloc_kib"] - b["alloc_kib"]) <= 64 + a["size"] // 1024 // 100


def diff(stock, ours):
    """What differs between two step records: a short text, "" when the same."""
    out = []
    if stock["ok"] != ours["ok"]:
        out.append("exit stock %d ours %d (stock: %s | ours: %s)" % (stock["rc"], ours["rc"], stock["stderr"][-200:],
                                                                     ours["stderr"][-200:]))
    if stock["virsh"] != ours["virsh"]:
        out.append("virsh calls stock %r ours %r" % (stock["virsh"], ours["virsh"]))
    if stock["stdout"] != ours["stdout"]:
        out.append("stdout stock %r ours %r" % (stock["stdout"][:200], ours["stdout"][:200]))
    keys = sorted(set(stock["files"]) | set(ours["files"]))
    for key in keys:
        a, b = stock["files"].get(key), ours["files"].get(key)
        if not same_entry(a, b):
            out.append("%s: stock %s ours %s" % (key, json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)))
    return "; ".join(out)


def compare(case, stock, ours, intended, checks, normal=lambda a, b: b):
    """Step by step: a row of the table per step, and the problems (a ``different`` step, an intended difference
    that is not there or whose ``checks[key](stock record, our record)`` says what is wrong). ``normal(a, b)``
    gives our record as compared with stock's."""
    problems = []
    for index, (step, a, b) in enumerate(zip(case.steps, stock, ours)):
        key = (case.driver, case.name, index)
        detail = diff(a, normal(a, b))
        if key in intended:
            status = "intended-difference"
            if not detail:
                problems.append("step %d %s: intended difference (%s) is not there" % (index, step[0], intended[key]))
            wrong = checks[key](a, b) if key in checks else ""
            if wrong:
                problems.append("step %d %s: %s" % (index, step[0], wrong))
            detail = intended[key]
        else:
            status = "same" if not detail else "different"
            if detail:
                problems.append("step %d %s: %s" % (index, step[0], detail))
        ROWS.append((case.driver, case.name, "%d:%s" % (index, step[0]), status, detail if status != "same" else ""))
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_stock_and_ours_agree(runner, case):
    stock = play(runner, case, "stock")
    ours = play(runner, case, "ours")
    checks = {key: (lambda a, b, check=check: "" if check(case, b) else
                    "ours does not do what the intended difference says") for key, check in INTENDED_CHECKS.items()}
    problems = compare(case, stock, ours, INTENDED, checks)
    assert not problems, "\n".join(problems)
    if case.name.endswith("-lxc"):   # the container was frozen and thawed around the copy, on both sides
        calls = [c for r in ours for c in r["virsh"]]
        assert calls[:2] == ["lxc-freeze -n one-7", "lxc-unfreeze -n one-7"], calls
        assert not ours[-1]["ok"] if case.driver == "shared" else ours[-1]["ok"]   # shared: the qcow2 disk refused
