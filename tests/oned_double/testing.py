"""Helpers to run the oned TEST DOUBLE (not oned) from pytest.

``running_double()`` serves it from a thread on 127.0.0.1 with an ephemeral
port; ``spawn_double()`` runs it as a separate process, as the lab does.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.oned_double.server import OnedState, make_server

ROOT = Path(__file__).resolve().parents[2]
AUTH = "oneadmin:secret"

# Drivers that storage models add to oned.conf, as test data:
# OneStor uses stock ssh for system datastores; nfs_shared and storpool are add-ons.
EXTRA_TM_MAD = {
    "nfs_shared": {"LN_TARGET": "NONE", "CLONE_TARGET": "SYSTEM", "SHARED": "YES", "DS_MIGRATE": "YES"},
    "storpool": {"LN_TARGET": "NONE", "CLONE_TARGET": "SELF", "SHARED": "YES", "DS_MIGRATE": "NO", "ALLOW_ORPHANS": "YES"},
}
EXTRA_DS_MAD = {"storpool": {"REQUIRED_ATTRS": "DISK_TYPE", "PERSISTENT_ONLY": "NO"}}

DEFAULT_SEED = {
    "tm_mad_conf": EXTRA_TM_MAD,
    "ds_mad_conf": EXTRA_DS_MAD,
    "clusters": [{"id": 100, "name": "cluster100"}, {"id": 101, "name": "cluster101"}],
    "hosts": [
        {"id": 0, "name": "cluster100-host1", "cluster_id": 100},
        {"id": 1, "name": "cluster100-host2", "cluster_id": 100},
    ],
}


@dataclass
class Double:
    url: str
    state: OnedState
    auth: str = AUTH

    @property
    def user(self):
        return self.auth.split(":", 1)[0]

    @property
    def password(self):
        return self.auth.split(":", 1)[1]

    def api(self):
        return {"api_url": self.url, "api_username": self.user, "api_password": self.password}

    def ds_by_name(self, name):
        return [(oid, ds) for oid, ds in self.state.datastores.items() if ds["name"] == name]


@contextmanager
def running_double(seed=None, auth=AUTH, state_file=None):
    state = OnedState(auth, state_file=state_file)
    state.seed(DEFAULT_SEED if seed is None else seed)
    server = make_server(state, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield Double(f"http://127.0.0.1:{server.server_address[1]}/RPC2", state, auth)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def spawn_double(tmp_path, args=(), auth=AUTH):
    """Run ``python -m tests.oned_double`` as a process; yields (url, state_file)."""
    port_file = tmp_path / "oned-double.port"
    state_file = tmp_path / "oned-double.json"
    if port_file.exists():
        port_file.unlink()  # a stale port from an earlier run
    cmd = [sys.executable, "-m", "tests.oned_double", "--port", "0", "--port-file", str(port_file),
           "--auth", auth, "--state", str(state_file), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"oned double did not start: {proc.stdout.read() if proc.poll() is not None else 'timeout'}")
            time.sleep(0.05)
        port = int(port_file.read_text())
        yield f"http://127.0.0.1:{port}/RPC2", state_file
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
