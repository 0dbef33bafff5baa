"""nebula.storage.oned_conf through AnsibleModule (in-process), on copies of the real fixtures."""
from __future__ import annotations

import os
import shutil
import stat

import pytest

from tests.conftest import FIXTURES

ONED = FIXTURES / "oned"

STORPOOL = {
    "drivers": [
        {"attribute": "TM_MAD", "add": ["storpool"]},
        {"attribute": "DATASTORE_MAD", "add": ["storpool"]},
        {"attribute": "DATASTORE_MAD", "option": "-s", "add": ["storpool"]},
    ],
    "blocks": [
        {"attribute": "TM_MAD_CONF", "match": {"NAME": "storpool"},
         "set": {"LN_TARGET": "NONE", "CLONE_TARGET": "SELF", "SHARED": "yes", "DS_MIGRATE": "yes"}},
        {"attribute": "DS_MAD_CONF", "match": {"NAME": "storpool"}, "set": {"REQUIRED_ATTRS": "DISK_TYPE", "PERSISTENT_ONLY": "NO"}},
    ],
    "lists": [{"name": "VM_RESTRICTED_ATTR", "add": ["VMSNAPSHOT_LIMIT", "DISKSNAPSHOT_LIMIT"]}],
}


@pytest.fixture
def conf(tmp_path):
    def copy(name="oned-7.4.0.conf"):
        p = tmp_path / "one" / "oned.conf"
        p.parent.mkdir(exist_ok=True)
        shutil.copyfile(ONED / name, p)
        os.chmod(p, 0o640)
        os.chown(p, 9869, 9869)
        return p
    return copy


def test_storpool_changed_then_idempotent(run_module, conf):
    p = conf()
    original = p.read_text()
    res = run_module("oned_conf", {"path": str(p), **STORPOOL})
    assert res["failed"] is False and res["changed"] is True, res
    assert res["changes"][0] == 'TM_MAD: added "storpool" to -d'
    assert len(res["changes"]) == 7
    text = p.read_text()
    assert text != original and 'NAME = "storpool", LN_TARGET = "NONE"' in text
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o640 and (st.st_uid, st.st_gid) == (9869, 9869)
    again = run_module("oned_conf", {"path": str(p), **STORPOOL})
    assert again["failed"] is False and again["changed"] is False and again["changes"] == []
    assert os.stat(p).st_mtime_ns == st.st_mtime_ns


def test_check_and_diff_write_nothing(run_module, conf):
    p = conf()
    original = p.read_bytes()
    res = run_module("oned_conf", {"path": str(p), **STORPOOL}, check_mode=True, diff=True)
    assert res["changed"] is True and res["failed"] is False
    assert res["diff"]["before"] == original.decode() and "storpool" in res["diff"]["after"]
    assert res["diff"]["before_header"] == str(p)
    assert p.read_bytes() == original
    assert sorted(os.listdir(p.parent)) == ["oned.conf"]


def test_backup_and_validate(run_module, conf, tmp_path):
    p = conf()
    seen = tmp_path / "validated"
    res = run_module("oned_conf", {"path": str(p), "backup": True, "validate": "cp %%s %s" % seen,
                                   "attributes": [{"name": "DEFAULT_DEVICE_PREFIX", "value": "vd"}]})
    assert res["changed"] and res["changes"] == ['DEFAULT_DEVICE_PREFIX: set to "vd" (was "sd")']
    assert open(res["backup_file"]).read() == (ONED / "oned-7.4.0.conf").read_text()
    assert seen.read_text() == p.read_text()
    res = run_module("oned_conf", {"path": str(p), "validate": "false %s",
                                   "attributes": [{"name": "DEFAULT_DEVICE_PREFIX", "value": "hd"}]})
    assert res["failed"] and "validate command failed" in res["msg"]
    assert 'DEFAULT_DEVICE_PREFIX    = "vd"' in p.read_text()


def test_bad_file_fails_with_position_and_stays_untouched(run_module, tmp_path):
    p = tmp_path / "oned.conf"
    p.write_text('A = 1\nTM_MAD = [\n  EXECUTABLE = "one_tm",\n  ARGUMENTS = "-d x",\n]\n')
    before = p.read_bytes()
    res = run_module("oned_conf", {"path": str(p), **STORPOOL})
    assert res["failed"] is True
    assert res["msg"] == "%s:5:1: expected an attribute name after ',', found ']'" % p
    assert p.read_bytes() == before


def test_ambiguous_match_fails_naming_lines(run_module, tmp_path):
    p = tmp_path / "oned.conf"
    p.write_text('TM_MAD_CONF = [ NAME = "a" ]\n\nTM_MAD_CONF = [ NAME = "A", SHARED = "yes" ]\n')
    before = p.read_bytes()
    res = run_module("oned_conf", {"path": str(p), "blocks": [{"attribute": "TM_MAD_CONF", "match": {"NAME": "a"}, "set": {"X": "1"}}]})
    assert res["failed"] and "line 1" in res["msg"] and "line 3" in res["msg"]
    assert p.read_bytes() == before


def test_drivers_on_3x_fails_with_hint(run_module, conf):
    p = conf("oned-3.0.conf")
    res = run_module("oned_conf", {"path": str(p), "drivers": [{"attribute": "TM_MAD", "add": ["storpool"]}]})
    assert res["failed"] and "use a blocks entry" in res["msg"]


def test_3x_block_through_module(run_module, conf):
    p = conf("oned-3.0.conf")
    args = {"path": str(p), "blocks": [{"attribute": "TM_MAD", "match": {"NAME": "tm_storpool"},
                                        "set": {"EXECUTABLE": "one_tm", "ARGUMENTS": "tm_storpool/tm_storpool.conf"}}]}
    assert run_module("oned_conf", args)["changed"] is True
    assert '    name       = "tm_storpool",\n    executable = "one_tm",\n' in p.read_text()
    assert run_module("oned_conf", args)["changed"] is False


@pytest.mark.parametrize("args,msg", [
    ({"blocks": [{"attribute": "X", "bogus": 1}]}, "bogus"),
    ({"blocks": [{"attribute": "X", "state": "gone"}]}, "state"),
    ({"blocks": [{"attribute": "X", "state": "absent", "set": {"A": 1}}]}, "state=absent"),
    ({"attributes": [{"name": "X"}]}, "value"),
    ({"attributes": [{"name": "X", "state": "absent", "value": "1"}]}, "state=absent"),
    ({"drivers": [{"attribute": "TM_MAD"}]}, "add or remove"),
    ({"drivers": [{"add": ["x"]}]}, "attribute"),
    ({"nonsense": True}, "nonsense"),
])
def test_option_combinations_are_rejected(run_module, conf, args, msg):
    p = conf()
    before = p.read_bytes()
    res = run_module("oned_conf", {"path": str(p), **args})
    assert res["failed"] is True and msg in res["msg"], res
    assert p.read_bytes() == before


def test_missing_file_fails(run_module, tmp_path):
    res = run_module("oned_conf", {"path": str(tmp_path / "nope.conf"), **STORPOOL})
    assert res["failed"] and "cannot read" in res["msg"]


CASES = {
    "storpool-7.4": ("oned-7.4.0.conf", STORPOOL),
    "gfs2clvm-7.4": ("oned-7.4.0.conf", {
        "drivers": [{"attribute": "TM_MAD", "add": ["gfs2clvm"]}, {"attribute": "DATASTORE_MAD", "add": ["gfs2clvm"]}],
        "blocks": [{"attribute": "TM_MAD_CONF", "match": {"NAME": "gfs2clvm"},
                    "set": {"LN_TARGET": "NONE", "CLONE_TARGET": "SYSTEM", "SHARED": "YES", "DRIVER": "qcow2"}}]}),
    "shared-7.4": ("oned-7.4.0.conf", {
        "blocks": [{"attribute": "TM_MAD_CONF", "match": {"NAME": "shared"}, "set": {"DS_MIGRATE": "NO"}}]}),
    "ssh-7.4": ("oned-7.4.0.conf", {
        "blocks": [{"attribute": "TM_MAD_CONF", "match": {"NAME": "ssh"}, "set": {"ALLOW_ORPHANS": "NO"},
                    "unset": ["DS_MIGRATE_SNAP"]}]}),
    "exact-absent-7.4": ("oned-7.4.0.conf", {
        "blocks": [{"attribute": "DS_MAD_CONF", "match": {"NAME": "ceph"}, "set": {"PERSISTENT_ONLY": "NO"}, "state": "exact"},
                   {"attribute": "DS_MAD_CONF", "match": {"NAME": "dev"}, "state": "absent"}],
        "attributes": [{"name": "MAX_BACKUPS_HOST", "state": "absent"}],
        "lists": [{"name": "VM_RESTRICTED_ATTR", "remove": ["NIC/MAC"]}]}),
    "tm_mad-3.0": ("oned-3.0.conf", {
        "blocks": [{"attribute": "TM_MAD", "match": {"NAME": "tm_storpool"},
                    "set": {"EXECUTABLE": "one_tm", "ARGUMENTS": "tm_storpool/tm_storpool.conf"}}]}),
    "storpool-5.12": ("oned-5.12.13.conf", STORPOOL),
    "storpool-4.14": ("oned-4.14.2.conf", STORPOOL),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_module_matches_pure_functions(run_module, conf, case):
    from ansible_collections.nebula.storage.plugins.module_utils._oned_template import edit_text

    name, edits = CASES[case]
    p = conf(name)
    want, want_changes = edit_text(p.read_text(), str(p), **edits)
    res = run_module("oned_conf", {"path": str(p), **edits})
    assert res["failed"] is False and res["changed"] is True, res
    assert res["changes"] == want_changes
    assert p.read_text() == want
    assert run_module("oned_conf", {"path": str(p), **edits})["changed"] is False


def test_symlink_planted_at_the_path_is_refused(run_module, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text('ONE_KEY = "s3cr3t"\n')
    os.chmod(secret, 0o600)
    link = tmp_path / "oned.conf"
    link.symlink_to(secret)
    os.lchown(link, 9869, 9869)
    res = run_module("oned_conf", {"path": str(link), "attributes": [{"name": "PORT", "value": "2634"}]}, diff=True)
    assert res["failed"] and "symbolic link" in res["msg"] and "s3cr3t" not in repr(res) and "diff" not in res
    assert secret.read_text() == 'ONE_KEY = "s3cr3t"\n' and link.is_symlink()
    res = run_module("oned_conf", {"path": str(link), "attributes": [{"name": "PORT", "value": "2634"}], "follow": True})
    assert not res["failed"] and res["changed"] and link.is_symlink()
    assert secret.read_text() == 'ONE_KEY = "s3cr3t"\nPORT = "2634"\n'


@pytest.mark.parametrize("key,word", [("add", "storpool -t 1 -d evil"), ("add", "x,y"), ("add", "my driver"),
                                      ("add", ""), ("remove", "a b"), ("add", "ssh\n")])
def test_driver_names_are_validated(run_module, conf, key, word):
    p = conf()
    before = p.read_bytes()
    drivers = [{"attribute": "TM_MAD", "add": ["storpool"]}, {"attribute": "DATASTORE_MAD", key: [word]}]
    res = run_module("oned_conf", {"path": str(p), "drivers": drivers})
    assert res["failed"] and "drivers[1] (DATASTORE_MAD).%s" % key in res["msg"] and "not a driver name" in res["msg"]
    assert p.read_bytes() == before


def test_driver_option_is_validated(run_module, conf):
    p = conf()
    before = p.read_bytes()
    res = run_module("oned_conf", {"path": str(p), "drivers": [{"attribute": "TM_MAD", "option": "-d x -t", "add": ["a"]}]})
    assert res["failed"] and "drivers[0] (TM_MAD).option" in res["msg"] and p.read_bytes() == before


def test_accepted_driver_names_stay_idempotent(run_module, conf):
    p = conf()
    args = {"path": str(p), "drivers": [{"attribute": "TM_MAD", "add": ["storpool", "my_drv-2.0", "3par"]}]}
    assert run_module("oned_conf", args)["changed"]
    text = p.read_text()
    assert "storpool,my_drv-2.0,3par" in text
    assert run_module("oned_conf", args)["changed"] is False and p.read_text() == text


@pytest.mark.parametrize("text,where", [
    ('PORT = 2633\nLISTEN_ADDRESS = "a]]>b"\nDB = [ BACKEND = "sqlite" ]\n', ":2:"),  # oned silently stops here
    ('PORT = 2633\r\nDB = [ BACKEND = "sqlite" ]\r\n', ":1:12:"),  # oned reads PORT as "2633\r"
    ('PORT = 2633\nA = "x"y\n', ":2:5:"),
    ('PORT = 2633\n# end', ":2:"),
])
def test_file_oned_reads_differently_fails_with_the_line(run_module, tmp_path, text, where):
    p = tmp_path / "oned.conf"
    p.write_bytes(text.encode())
    res = run_module("oned_conf", {"path": str(p), "attributes": [{"name": "PORT", "value": "2633"}]}, diff=True)
    assert res["failed"] and (str(p) + where) in res["msg"], res["msg"]
    assert p.read_bytes() == text.encode()


def test_cdata_end_in_a_value_is_refused_naming_it(run_module, conf):
    p = conf()
    before = p.read_bytes()
    res = run_module("oned_conf", {"path": str(p), "attributes": [{"name": "LISTEN_ADDRESS", "value": "x]]>"}]})
    assert res["failed"] and res["msg"].startswith("LISTEN_ADDRESS: ") and "]]>" in res["msg"]
    assert p.read_bytes() == before
