"""The storpool_addon role's front-end part run by a real ansible-playbook on localhost, on the REAL addon tree.

Everything the role writes goes to a temp directory: a generated front-end layout of one release
(addon_layout.py: remotes/VERSION and the stock files the addon's patches apply to, made from the
patches themselves), its /etc stand-in (storpool_addon_etc), and copies of the real oned.conf and
vmm_execrc fixtures. onehook, onehost, crontab, systemctl and systemd-tmpfiles are the parity test's
logging TEST DOUBLES; timers are off (the lab scenario covers them). Checks: --check writes nothing,
the kvm VM_MAD -l list merge into an existing list, idempotence, an updated source file, the operator's
rc edits kept, and clear failures that leave the files untouched (unsupported release, no VERSION,
no remotes, bad sources, unknown tweak).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT
from tests.functional.storpool_addon import test_storpool_addon_parity as parity
from tests.functional.storpool_addon.addon_layout import extract_addon

# an existing -l list: another action kept, a stale deploy entry replaced
OLD_ARGS = "-t 15 -r 0 kvm -p -l migrate=migrate-tweaks,deploy=deploy-old"
NEW_ARGS = ("-t 15 -r 0 kvm -p -l migrate=migrate-tweaks,deploy=deploy-tweaks,attach_disk=attach_disk.storpool,"
            "save=tmsave,restore=tmrestore")


@pytest.fixture
def env(tmp_path):
    """(addon source, front-end root, run) for a 6.10.5 front-end whose kvm VM_MAD has an -l list."""
    addon = extract_addon(parity.TARBALL, tmp_path / "src")
    root = tmp_path / "fe"
    parity.layout(root, "6.10.5", addon)
    oned = root / "etc/one/oned.conf"
    text = oned.read_text()
    assert text.count('ARGUMENTS      = "-t 15 -r 0 kvm -p",') == 1
    oned.write_text(text.replace('ARGUMENTS      = "-t 15 -r 0 kvm -p",', 'ARGUMENTS      = "%s",' % OLD_ARGS))
    bindir = parity.stubs(tmp_path / "bin")
    (tmp_path / "cron").mkdir()
    (tmp_path / "run").mkdir()

    def run(check=False, **extra):
        return parity.run_role(addon, root, bindir, tmp_path / "stub.log", tmp_path / "cron", tmp_path / "run",
                               check=check, **dict({"storpool_addon_rc": {"ONE_PX": "one2", "DELAY_DELETE": "12h"}}, **extra))
    return addon, root, run


def digest(*paths):
    out = {}
    for base in paths:
        for dirpath, dirnames, filenames in os.walk(str(base)):
            dirnames.sort()
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                if os.path.islink(p):
                    out[p] = ("link", os.readlink(p))
                    continue
                with open(p, "rb") as f:
                    out[p] = (oct(os.stat(p).st_mode & 0o7777), hashlib.sha256(f.read()).hexdigest())
    return out


def flat(out):
    return " ".join(out.split())


def test_check_then_install_then_idempotent_then_update(env):
    addon, root, run = env
    before = digest(root)

    check = run(check=True)
    assert check.returncode == 0, check.stdout[-3000:]
    assert NEW_ARGS in check.stdout  # the diff shows the merged list
    assert "tm/storpool/clone (added)" in check.stdout  # file_tree's diff lists the files
    assert digest(root) == before

    first = run()
    assert first.returncode == 0, first.stdout[-3000:]
    oned = (root / "etc/one/oned.conf").read_text()
    assert oned.count(NEW_ARGS) == 1 and OLD_ARGS not in oned
    assert len(re.findall(r'(?m)^(TM_MAD_CONF|DS_MAD_CONF)\s*=\s*\[\s*NAME\s*=\s*"storpool"', oned)) == 2
    remotes = root / "var/lib/one/remotes"
    for rel in ("datastore/storpool/cp", "tm/storpool/clone", "vmm/kvm/tmsave", "vmm/kvm/deploy-tweaks.d/volatile2dev.py",
                "reserved.sh", "hooks/volumecare/volumecare"):
        assert oct((remotes / rel).stat().st_mode & 0o777) == "0o755", rel
    assert not (remotes / "vmm/kvm/save.storpool").exists() and not (remotes / "install.sh").exists()
    rc = (remotes / "addon-storpoolrc").read_text()
    assert "\nONE_PX=one2\n" in rc and "\nDELAY_DELETE=12h\n" in rc
    assert "kvm-storpool" in (root / "etc/one/vmm_exec/vmm_execrc").read_text()

    installed = digest(root)
    second = run()
    assert second.returncode == 0, second.stdout[-3000:]
    assert parity.recap(second.stdout)["changed"] == 0, parity.changed_tasks(second.stdout)
    assert digest(root) == installed

    # a changed source file is updated, a file the operator edited in addon-storpoolrc is kept
    (addon / "tm/storpool/clone").write_text("#!/bin/bash\n# version 2\nexit 0\n")
    with open(remotes / "addon-storpoolrc", "a", encoding="utf-8") as f:
        f.write("# operator's note\nVM_TAG=mytag\n")
    third = run()
    assert third.returncode == 0, third.stdout[-3000:]
    assert (remotes / "tm/storpool/clone").read_text().endswith("version 2\nexit 0\n")
    assert (remotes / "addon-storpoolrc").read_text().endswith("# operator's note\nVM_TAG=mytag\n")


def test_unsupported_release_fails_before_any_change(env):
    addon, root, run = env
    (root / "var/lib/one/remotes/VERSION").write_text("7.4.0\n")
    before = digest(root)
    result = run()
    assert result.returncode != 0
    assert ("OpenNebula 7.4.0 is not supported by this StorPool addon: it has no scripts/install-7.4.0.sh nor "
            "scripts/install-7.4.sh (supported: 6.4, 6.6, 6.7, 6.8, 6.10, 7.0, 7.2)") in flat(result.stdout), result.stdout[-2000:]
    assert digest(root) == before


def test_force_version_installs_that_release_with_a_warning(env, tmp_path):
    addon, root, run = env
    # a 7.2 layout (its stock files) whose VERSION says 7.4.0
    root72 = tmp_path / "fe72"
    parity.layout(root72, "7.2.0", addon)
    shutil.rmtree(root / "var")
    shutil.copytree(root72 / "var", root / "var", symlinks=True)
    (root / "var/lib/one/remotes/VERSION").write_text("7.4.0\n")
    result = run(storpool_addon_force_version="7.2.0")
    assert result.returncode == 0, result.stdout[-3000:]
    out = flat(result.stdout + result.stderr)
    assert "[WARNING]: storpool_addon_force_version: installing the files and patches of OpenNebula 7.2.0 on a front-end " \
           "with OpenNebula 7.4.0, as asked" in out
    assert (root / "var/lib/one/remotes/datastore/xpath-sp.rb").read_bytes() != (addon / "datastore/xpath-sp.rb").read_bytes()
    oned = (root / "etc/one/oned.conf").read_text()
    assert re.search(r'NAME\s*=\s*"storpool"[^\]]*DS_LIVE_MIGRATE\s*=\s*"YES"', oned)


def test_missing_version_and_missing_remotes_fail_clearly(env):
    addon, root, run = env
    (root / "var/lib/one/remotes/VERSION").unlink()
    before = digest(root)
    result = run()
    assert result.returncode != 0
    assert "Cannot read OpenNebula's version from %s/var/lib/one/remotes/VERSION" % root in flat(result.stdout)
    assert "set storpool_addon_one_version" in flat(result.stdout)
    assert digest(root) == before
    shutil.rmtree(root / "var/lib/one/remotes")
    result = run()
    assert result.returncode != 0
    assert "is not an OpenNebula front-end: %s/var/lib/one/remotes does not exist" % root in flat(result.stdout)


def test_bad_sources_fail_clearly(env, tmp_path):
    addon, root, run = env
    before = digest(root)
    cases = [
        ({"storpool_addon_src": str(tmp_path / "nope")},
         "storpool_addon_src: %s is not a directory on the controller (it does not exist)" % (tmp_path / "nope")),
        ({"storpool_addon_src": str(addon / "tm")},
         "storpool_addon_src: %s does not look like the StorPool addon (OpenNebula/addon-storpool): it has no "
         "datastore/storpool or tm/storpool" % (addon / "tm")),
        ({"storpool_addon_deploy_tweaks": ["nope.py"]},
         "storpool_addon_deploy_tweaks: %s has no vmm/kvm/deploy-tweaks.d.example/nope.py" % addon),
    ]
    for extra, message in cases:
        result = run(**extra)
        assert result.returncode != 0, extra
        assert message in flat(result.stdout), result.stdout[-2000:]
    assert digest(root) == before


def test_node_without_storpool_fails_clearly(tmp_path):
    """On a node, a missing StorPool CLI / storpool_block service stops the run with a clear message."""
    import json
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
    out = flat(result.stdout)
    assert result.returncode != 0
    assert "localhost is not a StorPool client: the storpool-cli-that-is-not-installed CLI is missing, " \
           "the storpool_block_not_installed service is missing." in out, out[-2000:]
    assert "storpool_addon_check_storpool_installed: false" in out
