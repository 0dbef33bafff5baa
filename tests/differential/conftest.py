"""Fixtures of the differential suite: the machines, the stock tree, ours; the closing table."""
from __future__ import annotations

import os
import shutil

import pytest

from harness import FIXTURE, ROWS, OursTree, Runner, StockTree, World


@pytest.fixture(scope="session")
def runner(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the differential suite needs root (mount namespaces, sshd logging in as root)")
    missing = [tool for tool in ("sshd", "unshare", "ruby", "qemu-img") if not (
        shutil.which(tool) or os.path.exists("/usr/sbin/" + tool))]
    if missing:
        pytest.skip("the differential suite needs %s" % ", ".join(missing))
    if not FIXTURE.exists():
        pytest.skip("fixture %s is missing" % FIXTURE)
    base = tmp_path_factory.mktemp("dt")
    world = World(base)
    stock = StockTree(base)
    ours = OursTree(base, {"SSH": world.ssh, "LOCK_DIR": str(world.locks), "ONE_LOOKUP": "no",
                           "REPLICA_CACHE_DIR": "%s/datastores/replica_cache" % world.mnt,
                           "DATASTORE_LOCATION": "%s/datastores" % world.mnt,
                           "TUNING_RC": str(stock.location / "var/remotes/etc/tm/ssh/sshrc")}, stock)
    world.remotes = stock.location / "var" / "remotes"
    world.ruby_lib = str(stock.location / "lib" / "ruby")
    world.start()
    yield Runner(world, stock, ours)
    world.stop()


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    write = terminalreporter.write_line
    write("")
    write("differential suite: OpenNebula 7.4.0 stock TM vs ours (action x sequence)")
    width = max(len("%s/%s" % (d, s)) for d, s, _a, _st, _x in ROWS)
    write("%-*s  %-22s %s" % (width, "driver/sequence", "action", "result"))
    for driver, seq, action, status, detail in ROWS:
        write("%-*s  %-22s %s%s" % (width, "%s/%s" % (driver, seq), action, status, (": " + detail) if detail else ""))
    counts = {}
    for row in ROWS:
        counts[row[3]] = counts.get(row[3], 0) + 1
    write("totals: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
