"""nebula.storage.one_rc through AnsibleModule (in-process), on copies of the real rc fixtures."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from tests.conftest import FIXTURES

RC = FIXTURES / "rc"


@pytest.fixture
def rc(tmp_path):
    def copy(name):
        p = tmp_path / name
        shutil.copyfile(RC / name, p)
        os.chmod(p, 0o600)
        os.chown(p, 9869, 9869)
        return p
    return copy


def sourced(path, key):
    return subprocess.run(["sh", "-c", '. "$1"; printf %s "$' + key + '"', "sh", str(path)],
                          capture_output=True, text=True, check=True).stdout


def test_sshrc_changed_then_idempotent(run_module, rc):
    p = rc("sshrc")
    args = {"path": str(p), "set": {"REPLICA_COPY_LOCK_TIMEOUT": 900, "REPLICA_SSH_OPTS": "-c aes128-gcm@openssh.com"},
            "unset": ["REPLICA_MAX_SIZE_MB"], "validate": "sh -n %s"}
    res = run_module("one_rc", args)
    assert res["failed"] is False and res["changed"] is True
    assert len(res["changes"]) == 3
    assert sourced(p, "REPLICA_COPY_LOCK_TIMEOUT") == "900"
    assert sourced(p, "REPLICA_SSH_OPTS") == "-c aes128-gcm@openssh.com"
    assert "REPLICA_MAX_SIZE_MB=" not in p.read_text()
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (9869, 9869)
    again = run_module("one_rc", args)
    assert again["changed"] is False and again["changes"] == []
    assert os.stat(p).st_mtime_ns == st.st_mtime_ns


def test_words_check_mode_and_diff(run_module, rc):
    p = rc("vmm_execrc")
    before = p.read_bytes()
    args = {"path": str(p), "words": [{"name": "LIVE_DISK_SNAPSHOTS", "add": ["kvm-storpool"]}]}
    res = run_module("one_rc", args, check_mode=True, diff=True)
    assert res["changed"] and "kvm-storpool" in res["diff"]["after"] and p.read_bytes() == before
    res = run_module("one_rc", args)
    assert res["changed"] and sourced(p, "LIVE_DISK_SNAPSHOTS").split()[-1] == "kvm-storpool"


def test_tricky_values_through_the_module(run_module, rc):
    p = rc("addon-storpoolrc")
    values = {"A_SPACES": "a b  c", "A_QUOTES": "it's \"x\"", "A_DOLLAR": "$HOME/`id`", "A_BACKSLASH": "c:\\dir\\"}
    res = run_module("one_rc", {"path": str(p), "set": values, "backup": True})
    assert res["changed"] and os.path.exists(res["backup_file"])
    for k, v in values.items():
        assert sourced(p, k) == v
    assert run_module("one_rc", {"path": str(p), "set": values})["changed"] is False


def test_create(run_module, tmp_path):
    p = tmp_path / "new.conf"
    res = run_module("one_rc", {"path": str(p), "set": {"DD_BLOCK_SIZE": "64k"}})
    assert res["failed"] and "cannot read" in res["msg"] and not p.exists()
    res = run_module("one_rc", {"path": str(p), "set": {"DD_BLOCK_SIZE": "64k"}, "create": True})
    assert res["changed"] and p.read_text() == "DD_BLOCK_SIZE=64k\n"
    assert run_module("one_rc", {"path": str(p), "set": {"DD_BLOCK_SIZE": "64k"}, "create": True})["changed"] is False


def test_bad_input_untouched(run_module, tmp_path):
    p = tmp_path / "rc"
    p.write_text('A=1\nB="open\n')
    res = run_module("one_rc", {"path": str(p), "set": {"A": 2}})
    assert res["failed"] and res["msg"].startswith("%s:2:3: expected a closing \"" % p)
    assert p.read_text() == 'A=1\nB="open\n'


@pytest.mark.parametrize("args,msg", [
    ({"words": [{"name": "X"}]}, "add or remove"),
    ({"words": [{"name": "X", "add": ["a"], "sep": ","}]}, "sep"),
    ({"set": {"X": 1}, "unset": ["X"]}, "both"),
    ({"set": {"X-Y": 1}}, "valid shell variable"),
])
def test_rejected(run_module, rc, args, msg):
    p = rc("fs.conf")
    res = run_module("one_rc", {"path": str(p), **args})
    assert res["failed"] and msg in res["msg"], res
    assert p.read_text() == (RC / "fs.conf").read_text()


def planted_link(tmp_path, secret_text):
    secret = tmp_path / "secret"
    secret.write_text(secret_text)
    os.chmod(secret, 0o600)
    home = tmp_path / "one"
    home.mkdir()
    os.chown(home, 9869, 9869)
    link = home / "sshrc"
    link.symlink_to(secret)
    os.lchown(link, 9869, 9869)
    return secret, link


@pytest.mark.parametrize("create", [False, True])
def test_symlink_planted_at_the_path_is_refused(run_module, tmp_path, create):
    secret, link = planted_link(tmp_path, 'TOKEN="s3cr3t"\nA=1\n')
    res = run_module("one_rc", {"path": str(link), "set": {"A": "2"}, "create": create}, diff=True)
    assert res["failed"] and "symbolic link" in res["msg"] and "follow: true" in res["msg"]
    assert "s3cr3t" not in repr(res) and "diff" not in res
    assert secret.read_text() == 'TOKEN="s3cr3t"\nA=1\n' and link.is_symlink()
    assert sorted(os.listdir(link.parent)) == ["sshrc"]


def test_follow_true_edits_the_link_target(run_module, tmp_path):
    secret, link = planted_link(tmp_path, "A=1\n")
    res = run_module("one_rc", {"path": str(link), "set": {"A": "2"}, "follow": True})
    assert not res["failed"] and res["changed"]
    assert link.is_symlink() and secret.read_text() == "A=2\n"


@pytest.mark.parametrize("word,sep", [("kvm storpool", " "), ("", " "), ("a,b", ","), ("x\ty", " ")])
def test_words_that_would_split_are_refused(run_module, rc, word, sep):
    p = rc("vmm_execrc")
    before = p.read_bytes()
    res = run_module("one_rc", {"path": str(p), "words": [{"name": "LIVE_DISK_SNAPSHOTS", "add": [word], "separator": sep}]})
    assert res["failed"] and "words[LIVE_DISK_SNAPSHOTS].add" in res["msg"] and p.read_bytes() == before
