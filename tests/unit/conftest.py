"""Fixtures for running modules in-process through AnsibleModule."""
from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    """Raised instead of sys.exit: carries the module's JSON result."""

    def __init__(self, result: dict[str, Any]):
        super().__init__(result)
        self.result = result


def _run(module_name: str, args: dict[str, Any], *, check_mode: bool = False, diff: bool = False) -> dict[str, Any]:
    mod = importlib.import_module(f"ansible_collections.nebula.storage.plugins.modules.{module_name}")
    full = dict(args)
    full["_ansible_check_mode"] = check_mode
    full["_ansible_diff"] = diff
    full.setdefault("_ansible_tmpdir", None)
    full.setdefault("_ansible_remote_tmp", "/tmp")
    full.setdefault("_ansible_keep_remote_files", False)
    captured: dict[str, Any] = {}

    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        kwargs["failed"] = False
        captured.update(kwargs)
        raise ModuleExit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["failed"] = True
        kwargs["msg"] = msg
        captured.update(kwargs)
        raise ModuleExit(kwargs)

    from ansible.module_utils import basic

    mp = pytest.MonkeyPatch()
    mp.setattr(basic.AnsibleModule, "exit_json", exit_json)
    mp.setattr(basic.AnsibleModule, "fail_json", fail_json)
    try:
        with patch_module_args(full):
            try:
                mod.main()
            except ModuleExit:
                pass
    finally:
        mp.undo()
    # Results must be JSON-serialisable, as on a real target.
    json.dumps(captured)
    return captured


@pytest.fixture
def run_module():
    """``run_module("oned_conf", {...}, check_mode=False, diff=False) -> result dict``.

    The result has ``failed`` set; assert on it explicitly.
    """
    return _run
