"""Helpers shared by the TM runtime tests (files with holes, qemu-img info)."""
from __future__ import annotations

import json
import os
import subprocess


def make_sparse(path, size, data_at=(), chunk=1 << 20):
    """A sparse file of ``size`` bytes with random data chunks at the given offsets."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset in data_at:
            handle.seek(offset)
            handle.write(os.urandom(chunk))
    return path


def allocated(path):
    return os.stat(path).st_blocks * 512


def qemu_info(path):
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def ssh_hosts(fake_ssh_path):
    """Hosts the fake ssh test double was asked to reach, in order."""
    with open(str(fake_ssh_path) + ".log") as handle:
        return handle.read().split()


class Result:
    """What an action run in-process returned: its exit code and its stderr."""

    def __init__(self, rc, err):
        self.rc = rc
        self.err = err

    def __repr__(self):
        return "Result(rc=%r, err=%r)" % (self.rc, self.err)
