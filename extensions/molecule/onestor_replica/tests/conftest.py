"""The onestor_replica scenario's machines, and the shared real-oned helpers (../../shared/lab_oned.py) bound
to ost-fe."""
import os
import sys

import testinfra

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from lab_oned import (ACTIVE, DONE, POWEROFF, RUNNING, STOPPED, UNDEPLOYED,  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
                      OneCLI, wait)

NODES = {name: testinfra.get_host("podman://" + name) for name in ("ost-fe", "ost-rep", "ost-h2")}
CLI = OneCLI(NODES["ost-fe"])


def md5(node, path):
    """md5sum of ``path`` on ``node`` (a testinfra host); fails naming the machine and the path."""
    res = node.run("md5sum %s", path)
    assert res.rc == 0, (node.backend.hostname, path, res.stderr)
    return res.stdout.split()[0]
