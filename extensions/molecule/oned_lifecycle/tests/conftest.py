"""The real-oned scenario's machines, and the shared real-oned helpers (../../shared/lab_oned.py) bound to olc-fe."""
import os
import sys

import testinfra

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from lab_oned import (ACTIVE, DONE, FAILURE_LCM, HOLD, PENDING, POWEROFF, RUNNING,  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
                      STOPPED, UNDEPLOYED, OneCLI, wait)

FE = testinfra.get_host("podman://olc-fe")
H1 = testinfra.get_host("podman://olc-h1")
H2 = testinfra.get_host("podman://olc-h2")
HOSTS = {"olc-h1": H1, "olc-h2": H2}
DATASTORES = "/var/lib/one/datastores"
CLI = OneCLI(FE)
one, xml, remove_stale, vm_state, wait_vm = CLI.one, CLI.xml, CLI.remove_stale, CLI.vm_state, CLI.wait_vm
