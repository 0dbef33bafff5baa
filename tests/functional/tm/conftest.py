"""Fixtures of the TM functional tests (helpers live in tm_functional.py)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tm_functional import LoopbackSshd


@pytest.fixture
def playbook(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "play.yml"
        path.write_text(text)
        return path
    return write


@pytest.fixture(scope="module")
def loopback_sshd(tmp_path_factory):
    if not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")):
        pytest.skip("sshd (openssh-server) is not installed: the real ssh test needs it")
    if os.geteuid() != 0:
        pytest.skip("the loopback sshd test logs in as root and needs root to start sshd")
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()
