"""nebula.storage.tm_driver through AnsibleModule: install, idempotence, check/diff, rc edits, legacy, absent."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest

from ansible_collections.nebula.storage.plugins.module_utils.tm import rc as tm_rc
from ansible_collections.nebula.storage.plugins.module_utils.tm.drivers import nfs_shared
from tests.conftest import FIXTURES, ROOT

RUNTIME = ROOT / "plugins" / "module_utils" / "tm"


def snapshot(root):
    result = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            with open(path, "rb") as handle:
                result[path] = (handle.read(), stat.S_IMODE(st.st_mode))
    return result


def test_actions_without_a_system_python_use_env(monkeypatch):
    from ansible_collections.nebula.storage.plugins.modules import tm_driver
    monkeypatch.setattr(tm_driver, "SYSTEM_PYTHON", "/nonexistent/python3")
    assert tm_driver.interpreter() == "/usr/bin/env python3"


def test_install_remotes_layout(run_module, tmp_path):
    res = run_module("tm_driver", {"name": "nfs_shared", "dest": str(tmp_path)})
    assert not res["failed"], res
    assert res["changed"] is True
    base = tmp_path / "tm" / "nfs_shared"
    assert sorted(res["actions"]) == sorted(nfs_shared.ACTIONS)
    for action in nfs_shared.ACTIONS:
        path = base / action
        assert str(path) in res["files"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
        # the system Python without site (the runtime is standard library only): about 20 ms less per action
        assert path.read_text().startswith("#!/usr/bin/python3 -S\n")
    # the installed runtime is byte-for-byte the tested code
    lib = base / "lib" / "nebula_tm"
    for rel in ("__init__.py", "actions.py", "common.py", "copy.py", "rc.py", "registry.py", "drivers/__init__.py",
                "drivers/nfs_shared.py"):
        assert (lib / rel).read_bytes() == (RUNTIME / rel).read_bytes(), rel
        assert stat.S_IMODE((lib / rel).stat().st_mode) == 0o644
    settings = tm_rc.read_rc(str(base / "nfs_sharedrc"))
    assert settings == dict(nfs_shared.DEFAULT_RC)
    assert sorted(res["changed_files"]) == sorted(res["files"])


def test_second_run_changes_nothing(run_module, tmp_path):
    args = {"name": "nfs_shared", "dest": str(tmp_path), "settings": {"QCOW2_OVERLAY": "yes"}}
    assert run_module("tm_driver", args)["changed"]
    before = snapshot(tmp_path)
    res = run_module("tm_driver", args, diff=True)
    assert res["changed"] is False and res["changed_files"] == [] and "diff" not in res
    assert snapshot(tmp_path) == before


def test_check_mode_writes_nothing_and_diff_lists_files(run_module, tmp_path):
    dest = tmp_path / "remotes"
    res = run_module("tm_driver", {"name": "nfs_shared", "dest": str(dest)}, check_mode=True, diff=True)
    assert res["changed"] is True
    assert not dest.exists()
    prepared = res["diff"][0]["prepared"]
    assert "added: %s/tm/nfs_shared/clone" % dest in prepared
    assert "added: %s/tm/nfs_shared/lib/nebula_tm/copy.py" % dest in prepared
    rc_diff = res["diff"][1]
    assert rc_diff["before"] == "" and "QCOW2_OVERLAY=no" in rc_diff["after"]


def test_changed_file_is_detected_by_hash_and_restored(run_module, tmp_path):
    args = {"name": "nfs_shared", "dest": str(tmp_path)}
    run_module("tm_driver", args)
    clone = tmp_path / "tm" / "nfs_shared" / "clone"
    good = clone.read_bytes()
    clone.write_bytes(good.replace(b"clone", b"cl0ne"))
    os.utime(clone, (1, 1))
    res = run_module("tm_driver", args, check_mode=True, diff=True)
    assert res["changed"] and res["changed_files"] == [str(clone)]
    assert res["diff"][0]["prepared"] == "changed: %s\n" % clone
    assert clone.read_bytes() != good
    assert run_module("tm_driver", args)["changed"]
    assert clone.read_bytes() == good


def test_mode_drift_is_fixed(run_module, tmp_path):
    args = {"name": "nfs_shared", "dest": str(tmp_path)}
    run_module("tm_driver", args)
    ln = tmp_path / "tm" / "nfs_shared" / "ln"
    ln.chmod(0o700)
    res = run_module("tm_driver", args)
    assert res["changed"] and res["changed_files"] == [str(ln)]
    assert stat.S_IMODE(ln.stat().st_mode) == 0o755


def test_operator_rc_edits_are_kept_only_given_settings_enforced(run_module, tmp_path):
    args = {"name": "nfs_shared", "dest": str(tmp_path), "settings": {"SSH_OPTS": "-p 2222"}}
    run_module("tm_driver", args)
    rc_path = tmp_path / "tm" / "nfs_shared" / "nfs_sharedrc"
    text = rc_path.read_text().replace("QCOW2_OVERLAY=no", "QCOW2_OVERLAY=yes  # operator")
    text += "# site note\nCUSTOM_KEY=1\n"
    rc_path.write_text(text)
    assert run_module("tm_driver", args)["changed"] is False
    assert rc_path.read_text() == text
    args["settings"] = {"SSH_OPTS": "-p 2200 -i /var/lib/one/.ssh/id_tm", "LOCK_TIMEOUT": 30, "NEW": True}
    res = run_module("tm_driver", args, diff=True)
    assert res["changed"] and res["changed_files"] == [str(rc_path)]
    settings = tm_rc.read_rc(str(rc_path))
    assert settings["SSH_OPTS"] == "-p 2200 -i /var/lib/one/.ssh/id_tm"
    assert settings["LOCK_TIMEOUT"] == "30" and settings["NEW"] == "yes"
    assert settings["QCOW2_OVERLAY"] == "yes" and settings["CUSTOM_KEY"] == "1"
    assert "# site note" in rc_path.read_text()
    assert res["diff"][1]["before"] == text


def test_bad_input_fails_and_leaves_files_untouched(run_module, tmp_path):
    args = {"name": "nfs_shared", "dest": str(tmp_path)}
    run_module("tm_driver", args)
    before = snapshot(tmp_path)
    res = run_module("tm_driver", dict(args, settings={"BAD KEY": "x"}))
    assert res["failed"] and "BAD KEY" in res["msg"]
    res = run_module("tm_driver", dict(args, settings={"K": "a\nb"}))
    assert res["failed"] and "settings.K" in res["msg"]
    res = run_module("tm_driver", dict(args, mode="rwx"))
    assert res["failed"] and "mode" in res["msg"]
    rc_path = tmp_path / "tm" / "nfs_shared" / "nfs_sharedrc"
    rc_path.write_text("A=1\nnot an assignment\n")
    before[str(rc_path)] = (rc_path.read_bytes(), before[str(rc_path)][1])
    res = run_module("tm_driver", dict(args, settings={"A": "2"}))
    assert res["failed"] and "line 2" in res["msg"] and str(rc_path) in res["msg"]
    assert snapshot(tmp_path) == before
    res = run_module("tm_driver", {"name": "shared", "dest": str(tmp_path)})
    assert res["failed"] and "shared" in res["msg"]


def test_legacy_layout_writes_mapping_like_opennebula_3(run_module, tmp_path):
    args = {"name": "nfs_shared", "layout": "legacy", "dest": str(tmp_path / "tm_commands"),
            "legacy_conf_dir": str(tmp_path / "etc")}
    res = run_module("tm_driver", args)
    assert res["changed"], res
    conf = tmp_path / "etc" / "tm_nfs_shared" / "tm_nfs_shared.conf"
    mapping = tm_rc.parse_mapping(conf.read_text())
    real = tm_rc.parse_mapping((FIXTURES / "rc" / "tm_shared-3.0.conf").read_text())
    assert set(mapping) == set(real)
    assert mapping == dict((k, v.replace("shared/", "nfs_shared/")) for k, v in real.items())
    for script in mapping.values():
        assert os.access(tmp_path / "tm_commands" / script, os.X_OK)
    assert (tmp_path / "etc" / "tm_nfs_shared" / "tm_nfs_sharedrc").exists()
    assert run_module("tm_driver", args)["changed"] is False


def test_installed_executables_run(run_module, tmp_path):
    dest = tmp_path / "remotes"
    run_module("tm_driver", {"name": "nfs_shared", "dest": str(dest),
                             "settings": {"LOCK_DIR": str(tmp_path / "locks")}})
    src = tmp_path / "img"
    src.write_bytes(b"\1" * 4096)
    dst = tmp_path / "ds" / "0" / "5" / "disk.0"
    proc = subprocess.run([sys.executable, str(dest / "tm" / "nfs_shared" / "clone"), "fe:%s" % src,
                           "localhost:%s" % dst, "5", "1"], capture_output=True, text=True, cwd=str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stderr
    assert dst.read_bytes() == src.read_bytes()
    assert "INFO: clone: Cloning" in proc.stderr
    # the backup actions (module_utils/tm/backup.py) are installed too: an interactive backup is refused
    proc = subprocess.run([sys.executable, str(dest / "tm" / "nfs_shared" / "prebackup_live"), "x:/a/b", "0", "d", "-",
                           "5", "100"], capture_output=True, text=True, check=False,
                          input="<VM><ID>5</ID><BACKUPS><BACKUP_CONFIG><MODE>INCREMENT</MODE><INTERACTIVE>YES"
                                "</INTERACTIVE></BACKUP_CONFIG></BACKUPS></VM>")
    assert proc.returncode == 1 and "interactive backups (BACKUP_CONFIG INTERACTIVE=YES) are not " \
        "supported" in proc.stderr, proc.stderr


def test_absent_removes_everything_and_is_idempotent(run_module, tmp_path):
    args = {"name": "nfs_shared", "layout": "legacy", "dest": str(tmp_path / "cmd"), "legacy_conf_dir": str(tmp_path / "etc")}
    run_module("tm_driver", args)
    res = run_module("tm_driver", dict(args, state="absent"), check_mode=True)
    assert res["changed"] and (tmp_path / "cmd" / "nfs_shared").exists()
    res = run_module("tm_driver", dict(args, state="absent"), diff=True)
    assert res["changed"] and "removed: %s" % (tmp_path / "cmd" / "nfs_shared") in res["diff"][0]["prepared"]
    assert not (tmp_path / "cmd" / "nfs_shared").exists() and not (tmp_path / "etc" / "tm_nfs_shared").exists()
    assert run_module("tm_driver", dict(args, state="absent"))["changed"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="changing ownership needs root")
def test_owner_and_group(run_module, tmp_path):
    res = run_module("tm_driver", {"name": "nfs_shared", "dest": str(tmp_path), "owner": "nobody", "group": "nogroup"})
    assert not res["failed"], res
    import pwd
    st = (tmp_path / "tm" / "nfs_shared" / "clone").stat()
    assert st.st_uid == pwd.getpwnam("nobody").pw_uid
    assert (tmp_path / "tm" / "nfs_shared" / "lib").stat().st_uid == pwd.getpwnam("nobody").pw_uid
    res = run_module("tm_driver", {"name": "nfs_shared", "dest": str(tmp_path), "owner": "nobody", "group": "nogroup"})
    assert res["changed"] is False


# -- links oneadmin may plant in remotes/ (issue 14, item 3) ------------------

TOKEN = "SP_AUTH_TOKEN=4242424242424242424\n"
ONEADMIN = 9869


def plant(path, target):
    path.symlink_to(target)
    os.lchown(path, ONEADMIN, ONEADMIN)


def everything(root):
    """Every file's content under root (links not followed)."""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                with open(p, "rb") as handle:
                    found.append(handle.read())
    return b"".join(found)


@pytest.fixture
def remotes(run_module, tmp_path):
    """An installed onestor driver in a remotes/ tree owned by oneadmin, and a root-only secret."""
    secret = tmp_path / "root" / "storpool.conf"
    secret.parent.mkdir(mode=0o700)
    secret.write_text(TOKEN)
    os.chmod(secret, 0o600)
    dest = tmp_path / "remotes"
    assert not run_module("tm_driver", {"name": "onestor", "dest": str(dest)})["failed"]
    for dirpath, dirs, names in os.walk(dest):
        for n in dirs + names:
            os.lchown(os.path.join(dirpath, n), ONEADMIN, ONEADMIN)
    os.chown(dest, ONEADMIN, ONEADMIN)
    return dest, secret


def test_rc_symlink_to_a_root_only_file_is_refused(run_module, remotes):
    dest, secret = remotes
    rc = dest / "tm" / "onestor" / "onestorrc"
    rc.unlink()
    plant(rc, secret)
    before = snapshot(dest)
    for check in (True, False):
        res = run_module("tm_driver", {"name": "onestor", "dest": str(dest), "settings": {"REPLICA_HOST": "fe"}},
                         check_mode=check, diff=True)
        assert res["failed"] and "onestorrc is a symbolic link" in res["msg"] and "follow: true" in res["msg"]
        assert "4242424242" not in repr(res) and "diff" not in res
    assert rc.is_symlink() and secret.read_text() == TOKEN and stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.stat().st_uid == 0
    assert snapshot(dest) == before and b"4242424242" not in everything(dest)


def test_planted_directory_link_is_refused_nothing_written_there(run_module, remotes, tmp_path):
    dest, secret = remotes
    elsewhere = tmp_path / "etc_like"
    elsewhere.mkdir()
    lib = dest / "tm" / "onestor" / "lib"
    shutil.rmtree(lib)
    plant(lib, elsewhere)
    res = run_module("tm_driver", {"name": "onestor", "dest": str(dest)})
    assert res["failed"] and "lib is a symbolic link owned by uid %d" % ONEADMIN in res["msg"]
    assert os.listdir(elsewhere) == []
    # a link planted in place of the driver's directory: install and removal both refuse it
    base = dest / "tm" / "onestor"
    shutil.rmtree(base)
    plant(base, elsewhere)
    res = run_module("tm_driver", {"name": "onestor", "dest": str(dest)})
    assert res["failed"] and "symbolic link" in res["msg"] and os.listdir(elsewhere) == []
    (elsewhere / "keep").write_text("x")
    res = run_module("tm_driver", {"name": "onestor", "dest": str(dest), "state": "absent"})
    assert res["failed"] and "not a directory" in res["msg"] and (elsewhere / "keep").exists()
    assert secret.read_text() == TOKEN


def test_action_symlink_is_refused(run_module, remotes):
    dest, secret = remotes
    clone = dest / "tm" / "onestor" / "clone"
    clone.unlink()
    plant(clone, secret)
    res = run_module("tm_driver", {"name": "onestor", "dest": str(dest)}, diff=True)
    assert res["failed"] and "clone is a symbolic link" in res["msg"] and "4242424242" not in repr(res)
    assert secret.read_text() == TOKEN and stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_follow_true_allows_an_operator_link(run_module, tmp_path):
    real = tmp_path / "real_remotes"
    real.mkdir()
    link = tmp_path / "remotes"
    plant(link, real)
    args = {"name": "nfs_shared", "dest": str(link)}
    res = run_module("tm_driver", args)
    assert res["failed"] and "remotes is a symbolic link owned by uid" in res["msg"]
    res = run_module("tm_driver", dict(args, follow=True))
    assert not res["failed"] and (real / "tm" / "nfs_shared" / "clone").exists()
    assert run_module("tm_driver", dict(args, follow=True))["changed"] is False
