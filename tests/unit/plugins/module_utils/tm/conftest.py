"""Fixtures for the TM runtime tests: a fake ssh test double and action runners."""
from __future__ import annotations

import io
import stat

import pytest

from ansible_collections.nebula.storage.plugins.module_utils.tm import registry
from ansible_collections.nebula.storage.plugins.module_utils.tm.common import Context
from tm_helpers import Result

FAKE_SSH = r"""#!/bin/sh
# fake_ssh: a TEST DOUBLE standing in for the ssh client. It is only a local
# `sh -c`: it drops the ssh options and the host name (logging the host to
# $FAKE_SSH_LOG) and runs the remote command line with a local shell, exactly
# as sshd hands it to the user's shell on a real host.
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -o|-p|-i|-l|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
host=$1; shift
[ -n "$FAKE_SSH_LOG" ] && printf '%s\n' "$host" >> "$FAKE_SSH_LOG"
exec sh -c "$*"
"""


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """Path of the fake ssh test double (a local ``sh -c``); hosts it was asked for go to ``.log``."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    path = tools / "fake_ssh"
    path.write_text(FAKE_SSH)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    log = tools / "fake_ssh.log"
    log.touch()
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    return path


@pytest.fixture
def rc(tmp_path, fake_ssh):
    """rc settings routing every host command through the fake ssh (no local shortcut)."""
    (tmp_path / "tools" / "locks").mkdir()
    return {"SSH": str(fake_ssh), "SSH_OPTS": "-o BatchMode=yes", "LOCAL_SHORTCUT": "no",
            "LOCK_DIR": str(tmp_path / "tools" / "locks"), "LOCK_TIMEOUT": "5", "DELETE_RETRIES": "2",
            "REMOTE_PYTHON": "python3", "DATASTORE_LOCATION": str(tmp_path / "datastores")}


@pytest.fixture
def tm(rc):
    """``tm(action, *args, protocol="7", **rc_overrides) -> Result`` running the nfs_shared driver in-process."""

    def run(action, *args, protocol="7", **overrides):
        settings = dict(rc)
        settings.update(overrides)
        driver = registry.load_driver("nfs_shared")
        legacy = protocol == "3" or settings.get("LEGACY_ERRORS") == "yes"
        err = io.StringIO()
        ctx = Context(action, settings, legacy=legacy, stderr=err)
        table = registry.actions_of(driver, protocol)
        code = registry.run_action(ctx, table[action], list(args))
        return Result(code, err.getvalue())

    return run
