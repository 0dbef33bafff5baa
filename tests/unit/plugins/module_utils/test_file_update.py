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


# -- links a less privileged user may plant (issue 14, item 3) ----------------

SECRET = "STORPOOL_TOKEN=s3cr3t-root-only\n"


@pytest.fixture
def planted(tmp_path):
    """/root-only secret, and a directory owned by 'oneadmin' (uid 9869) holding a link to it."""
    secret = tmp_path / "root" / "secret"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)
    home = tmp_path / "one"
    home.mkdir()
    os.chown(home, 9869, 9869)
    link = home / "x.conf"
    os.symlink(secret, link)
    os.lchown(link, 9869, 9869)
    return secret, link


def test_link_at_the_path_is_refused_and_nothing_is_written(tmp_path, planted):
    secret, link = planted
    with pytest.raises(FileUpdateError) as e:
        read_text(str(link))
    assert "symbolic link" in str(e.value) and "follow" in str(e.value) and "s3cr3t" not in str(e.value)
    with pytest.raises(FileUpdateError, match="symbolic link"):
        read_text(str(link), missing_ok=True)
    with pytest.raises(FileUpdateError, match="symbolic link"):
        update_file(make_module(tmp_path), str(link), "", "A=1\n", exists=False)
    assert secret.read_text() == SECRET and os.path.islink(link) and files(link.parent) == ["x.conf"]


def test_follow_edits_the_target(tmp_path, planted):
    secret, link = planted
    text, exists = read_text(str(link), follow=True)
    assert exists and text == SECRET
    update_file(make_module(tmp_path), str(link), text, "A=2\n", follow=True)
    assert os.path.islink(link) and secret.read_text() == "A=2\n" and stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_link_planted_among_the_parents_is_refused(tmp_path, planted):
    secret, _link = planted
    home = tmp_path / "one"
    (home / "etc").symlink_to(secret.parent)
    os.lchown(home / "etc", 9869, 9869)
    with pytest.raises(FileUpdateError, match=r"one/etc is a symbolic link owned by uid 9869"):
        read_text(str(home / "etc" / "secret"))
    with pytest.raises(FileUpdateError, match="symbolic link owned by uid 9869"):
        update_file(make_module(tmp_path), str(home / "etc" / "secret"), SECRET, "A=1\n")
    assert secret.read_text() == SECRET
    # a link root made (/var/run -> /run style) is followed
    (tmp_path / "rootlink").symlink_to(secret.parent)
    assert read_text(str(tmp_path / "rootlink" / "secret"))[0] == SECRET


def test_link_swapped_in_after_reading_is_replaced_not_followed(tmp_path, planted):
    secret, _link = planted
    target = tmp_path / "one" / "y.conf"
    target.write_text("A=1\n")
    old = read_text(str(target))[0]

    def swap(_text):  # oneadmin replaces the file by a link while the module runs
        target.unlink()
        target.symlink_to(secret)

    update_file(make_module(tmp_path), str(target), old, "A=2\n", reparse=swap)
    assert secret.read_text() == SECRET
    assert not target.is_symlink() and target.read_text() == "A=2\n"


def test_fifo_is_not_read(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileUpdateError, match="not a regular file"):
        read_text(str(fifo))
