"""The storpool_addon role's front-end part run by a real ansible-playbook on localhost.

Everything the role writes goes to a temp directory: a FIXTURE addon tree
(the layout of OpenNebula/addon-storpool with trivial files, and no systemd or
tmpfiles.d files so that nothing lands in /etc), a temp ONE_VAR, and temp
copies of the real oned.conf and vmm_execrc fixtures. Packages, timers, the
hook, the host sync and datastores are switched off (the lab scenario covers
them). Checks: the kvm VM_MAD -l list merge into an existing list, the files,
idempotence, and clear failures that leave the files untouched.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess

from tests.conftest import FIXTURES, ROOT

FIXTURE_FILES = [
    "datastore/storpool/cp", "datastore/xpath_multi.py", "tm/storpool/clone", "hooks/volumecare/volumecare",
    "misc/volumecare.hook", "misc/reserved.sh", "vmm/kvm/deploy-tweaks", "vmm/kvm/deploy-tweaks.d.example/volatile2dev.py",
    "vmm/kvm/deploy-tweaks.d.example/persistent-cdrom.py", "vmm/kvm/tmsave", "vmm/kvm/save.storpool", "install.sh",
]
# an existing -l list: another action kept, a stale deploy entry replaced
OLD_ARGS = "-t 15 -r 0 kvm -p -l migrate=migrate-tweaks,deploy=deploy-old"
NEW_ARGS = ("-t 15 -r 0 kvm -p -l migrate=migrate-tweaks,deploy=deploy-tweaks,attach_disk=attach_disk.storpool,"
            "save=tmsave,restore=tmrestore")


def make_tree(tmp_path):
    src = tmp_path / "addon-storpool-fixture"
    for rel in FIXTURE_FILES:
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/bash\n# FIXTURE stand-in for addon-storpool's %s\nexit 0\n" % rel)
    shutil.copy(FIXTURES / "rc" / "addon-storpoolrc", src / "addon-storpoolrc")
    one_var = tmp_path / "one"
    (one_var / "remotes").mkdir(parents=True)
    oned = (FIXTURES / "oned" / "oned-7.4.0.conf").read_text()
    assert oned.count('ARGUMENTS      = "-t 15 -r 0 kvm -p",') == 1
    (tmp_path / "oned.conf").write_text(oned.replace('ARGUMENTS      = "-t 15 -r 0 kvm -p",',
                                                     'ARGUMENTS      = "%s",' % OLD_ARGS))
    shutil.copy(FIXTURES / "rc" / "vmm_execrc", tmp_path / "vmm_execrc")
    return src, one_var


def run(tmp_path, src, one_var, check=False, **extra):
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout.strip()
    variables = {
        "storpool_addon_src": str(src),
        "storpool_addon_one_var": str(one_var),
        "storpool_addon_oned_conf": str(tmp_path / "oned.conf"),
        "storpool_addon_vmm_execrc": str(tmp_path / "vmm_execrc"),
        "storpool_addon_one_user": user,
        "storpool_addon_one_group": group,
        "storpool_addon_oned_service": "no-such-oned-service",
        "storpool_addon_manage_packages": False,
        "storpool_addon_timers": False,
        "storpool_addon_register_hook": False,
        "storpool_addon_onehost_sync": False,
        "storpool_addon_oned_conf_backup": False,
        "storpool_addon_vm_mad_tweaks": True,
        "storpool_addon_rc": {"ONE_PX": "one2", "DELAY_DELETE": "12h"},
    }
    variables.update(extra)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    (tmp_path / "play.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  roles: [nebula.storage.storpool_addon]\n")
    (tmp_path / "inv.yml").write_text(
        "all:\n  children:\n    frontend:\n      hosts:\n        localhost:\n"
        "          ansible_connection: local\n          ansible_python_interpreter: %s\n" % (ROOT / ".venv" / "bin" / "python"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"))
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "inv.yml"),
           "-e", "@" + str(tmp_path / "vars.json"), "-e", "ansible_become=false", str(tmp_path / "play.yml")]
    if check:
        cmd += ["--check", "--diff"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), check=False, timeout=300)


def recap(out):
    return {k: int(v) for k, v in re.findall(r"(ok|changed|failed)=(\d+)", out.split("PLAY RECAP")[-1])}


def digest(*paths):
    out = {}
    for base in paths:
        for dirpath, dirnames, filenames in os.walk(str(base)):
            dirnames.sort()
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                with open(p, "rb") as f:
                    out[p] = (oct(os.stat(p).st_mode & 0o7777), hashlib.sha256(f.read()).hexdigest())
    return out


def test_installs_merges_the_vm_mad_list_and_is_idempotent(tmp_path):
    src, one_var = make_tree(tmp_path)
    targets = (one_var, tmp_path / "oned.conf", tmp_path / "vmm_execrc")
    before = digest(*targets)

    check = run(tmp_path, src, one_var, check=True)
    assert check.returncode == 0, check.stdout[-3000:]
    assert NEW_ARGS in check.stdout  # the diff shows the merged list
    assert digest(*targets) == before
    assert sorted(os.listdir(str(one_var / "remotes"))) == []

    first = run(tmp_path, src, one_var)
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap(first.stdout)["changed"] > 0
    oned = (tmp_path / "oned.conf").read_text()
    assert oned.count(NEW_ARGS) == 1 and OLD_ARGS not in oned
    assert len(re.findall(r'(?m)^(TM_MAD_CONF|DS_MAD_CONF)\s*=\s*\[\s*NAME\s*=\s*"storpool"', oned)) == 2
    remotes = one_var / "remotes"
    for rel in ("datastore/storpool/cp", "tm/storpool/clone", "vmm/kvm/tmsave", "vmm/kvm/deploy-tweaks.d/volatile2dev.py",
                "reserved.sh", "hooks/volumecare/volumecare"):
        assert oct((remotes / rel).stat().st_mode & 0o777) == "0o755", rel
    assert not (remotes / "vmm/kvm/save.storpool").exists() and not (remotes / "install.sh").exists()
    rc = (remotes / "addon-storpoolrc").read_text()
    assert "\nONE_PX=one2\n" in rc and "\nDELAY_DELETE=12h\n" in rc
    assert "kvm-storpool" in (tmp_path / "vmm_execrc").read_text()

    installed = digest(*targets)
    second = run(tmp_path, src, one_var)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)["changed"] == 0, second.stdout[-3000:]
    assert digest(*targets) == installed

    # a changed source file is updated, a file the operator edited in addon-storpoolrc is kept
    (src / "tm/storpool/clone").write_text("#!/bin/bash\n# FIXTURE, version 2\nexit 0\n")
    with open(remotes / "addon-storpoolrc", "a", encoding="utf-8") as f:
        f.write("# operator's note\nVM_TAG=mytag\n")
    third = run(tmp_path, src, one_var)
    assert third.returncode == 0, third.stdout[-3000:]
    assert (remotes / "tm/storpool/clone").read_text().endswith("version 2\nexit 0\n")
    assert (remotes / "addon-storpoolrc").read_text().endswith("# operator's note\nVM_TAG=mytag\n")


def test_missing_remotes_fails_clearly(tmp_path):
    src, one_var = make_tree(tmp_path)
    (one_var / "remotes").rmdir()
    before = digest(tmp_path / "oned.conf", tmp_path / "vmm_execrc")
    result = run(tmp_path, src, one_var)
    assert result.returncode != 0
    assert "is not an OpenNebula front-end: %s/remotes does not exist" % one_var in " ".join(result.stdout.split())
    assert digest(tmp_path / "oned.conf", tmp_path / "vmm_execrc") == before
    assert not (one_var / "remotes").exists()


def test_bad_sources_fail_clearly(tmp_path):
    src, one_var = make_tree(tmp_path)
    before = digest(one_var, tmp_path / "oned.conf", tmp_path / "vmm_execrc")
    cases = [
        (str(tmp_path / "nope"), "storpool_addon_src: %s is not a directory on the controller (it does not exist)" % (tmp_path / "nope")),
        (str(src / "tm"), "does not look like the StorPool addon (OpenNebula/addon-storpool): it has no datastore/storpool or tm/storpool"),
    ]
    for value, message in cases:
        result = run(tmp_path, src, one_var, storpool_addon_src=value)
        assert result.returncode != 0, value
        assert message in " ".join(result.stdout.split()), result.stdout[-2000:]
    result = run(tmp_path, src, one_var, storpool_addon_deploy_tweaks=["nope.py"])
    assert result.returncode != 0
    assert "storpool_addon_deploy_tweaks: %s has no vmm/kvm/deploy-tweaks.d.example/nope.py" % src in " ".join(result.stdout.split())
    assert digest(one_var, tmp_path / "oned.conf", tmp_path / "vmm_execrc") == before


def test_node_without_storpool_fails_clearly(tmp_path):
    """On a node, a missing StorPool CLI / storpool_block service stops the run with a clear message."""
    (tmp_path / "play.yml").write_text("- hosts: all\n  gather_facts: false\n  roles: [nebula.storage.storpool_addon]\n")
    (tmp_path / "inv.yml").write_text(
        "all:\n  children:\n    hosts:\n      hosts:\n        localhost:\n"
        "          ansible_connection: local\n          ansible_python_interpreter: %s\n" % (ROOT / ".venv" / "bin" / "python"))
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    variables = {"storpool_addon_manage_packages": False, "storpool_addon_one_user": user,
                 "storpool_addon_node_groups": [], "storpool_addon_node_optional_groups": [],
                 "storpool_addon_storpool_cli": "storpool-cli-that-is-not-installed",
                 "storpool_addon_storpool_block_service": "storpool_block_not_installed"}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"))
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(tmp_path / "inv.yml"),
           "-e", "@" + str(tmp_path / "vars.json"), "-e", "ansible_become=false", str(tmp_path / "play.yml")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), check=False, timeout=300)
    out = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "localhost is not a StorPool client: the storpool-cli-that-is-not-installed CLI is missing, " \
           "the storpool_block_not_installed service is missing." in out, out[-2000:]
    assert "storpool_addon_check_storpool_installed: false" in out
