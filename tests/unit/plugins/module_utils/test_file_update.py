"""Unit tests of the shared safe file-update helper, with a real AnsibleModule and real files."""
from __future__ import annotations

import os
import stat

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.nebula.storage.plugins.module_utils._file_update import (
    FileUpdateError,
    read_text,
    update_file,
)


def make_module(tmp_path, check_mode=False, diff=False) -> AnsibleModule:
    args = {"_ansible_check_mode": check_mode, "_ansible_diff": diff, "_ansible_tmpdir": str(tmp_path),
            "_ansible_remote_tmp": str(tmp_path), "_ansible_keep_remote_files": False}
    with patch_module_args(args):
        return AnsibleModule(argument_spec={}, supports_check_mode=True)


def reject(text: str) -> None:
    if "BAD" in text:
        raise ValueError("x.conf:2:1: expected something")


@pytest.fixture
def target(tmp_path):
    p = tmp_path / "etc" / "x.conf"
    p.parent.mkdir()
    p.write_text("A=1\n")
    os.chmod(p, 0o640)
    os.chown(p, 12345, 23456)
    return p


def files(d):
    return sorted(os.listdir(d))


def test_unchanged_is_not_written(tmp_path, target):
    before = os.stat(target)
    res = update_file(make_module(tmp_path, diff=True), str(target), "A=1\n", "A=1\n")
    assert res["changed"] is False
    assert res["diff"] == {"before": "A=1\n", "after": "A=1\n", "before_header": str(target), "after_header": str(target)}
    after = os.stat(target)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_check_mode_writes_nothing(tmp_path, target):
    before = os.stat(target)
    res = update_file(make_module(tmp_path, check_mode=True, diff=True), str(target), "A=1\n", "A=2\n", backup=True)
    assert res["changed"] is True and res["diff"]["after"] == "A=2\n" and "backup_file" not in res
    assert target.read_text() == "A=1\n" and os.stat(target).st_ino == before.st_ino
    assert files(target.parent) == ["x.conf"]


def test_write_is_atomic_and_keeps_owner_group_mode(tmp_path, target):
    before = os.stat(target)
    res = update_file(make_module(tmp_path), str(target), "A=1\n", "A=2\n", reparse=reject)
    assert res == {"changed": True}
    after = os.stat(target)
    assert target.read_text() == "A=2\n"
    assert after.st_ino != before.st_ino  # replaced by rename, not rewritten in place
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (12345, 23456)
    assert files(target.parent) == ["x.conf"]  # no temp file left


def test_backup(tmp_path, target):
    res = update_file(make_module(tmp_path), str(target), "A=1\n", "A=2\n", backup=True)
    backup = res["backup_file"]
    assert os.path.dirname(backup) == str(target.parent) and open(backup).read() == "A=1\n"


def test_reparse_failure_leaves_file_untouched(tmp_path, target):
    with pytest.raises(FileUpdateError, match="does not parse.*x.conf:2:1"):
        update_file(make_module(tmp_path), str(target), "A=1\n", "A=1\nBAD\n", reparse=reject, backup=True)
    assert target.read_text() == "A=1\n" and files(target.parent) == ["x.conf"]


def test_validate_command_sees_the_new_content(tmp_path, target):
    log = tmp_path / "seen"
    ok = update_file(make_module(tmp_path), str(target), "A=1\n", "A=2\n", validate="sh -c 'cat %%s > %s'" % log)
    assert ok["changed"] and log.read_text() == "A=2\n"
    with pytest.raises(FileUpdateError, match="validate command failed"):
        update_file(make_module(tmp_path), str(target), "A=2\n", "A=3\n", validate="false %s")
    with pytest.raises(FileUpdateError, match="validate command failed"):
        update_file(make_module(tmp_path), str(target), "A=2\n", 'A="3\n', validate="sh -n %s")
    assert target.read_text() == "A=2\n" and files(target.parent) == ["x.conf"]


def test_validate_needs_percent_s(tmp_path, target):
    with pytest.raises(FileUpdateError, match="%s"):
        update_file(make_module(tmp_path), str(target), "A=1\n", "A=2\n", validate="true")
    assert target.read_text() == "A=1\n"


def test_create_missing_file(tmp_path):
    p = tmp_path / "new.rc"
    text, exists = read_text(str(p), missing_ok=True)
    assert (text, exists) == ("", False)
    res = update_file(make_module(tmp_path, diff=True), str(p), "", "A=1\n", exists=False)
    assert res["changed"] and p.read_text() == "A=1\n"
    assert res["diff"]["before_header"].endswith("(absent)")
    with pytest.raises(FileUpdateError, match="cannot read"):
        read_text(str(tmp_path / "missing"))


def test_non_utf8_bytes_survive(tmp_path):
    p = tmp_path / "latin1.conf"
    p.write_bytes(b"# caf\xe9\nA=1\n")
    text = read_text(str(p))[0]
    update_file(make_module(tmp_path), str(p), text, text.replace("A=1", "A=2"))
    assert p.read_bytes() == b"# caf\xe9\nA=2\n"
