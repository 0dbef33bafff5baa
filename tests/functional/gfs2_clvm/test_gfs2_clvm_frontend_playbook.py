"""The gfs2_clvm role's front-end part through real ansible-playbook on localhost, against copies of the
OpenNebula 7.4 and 3.0 oned.conf fixtures: drivers registered, installed, idempotent, 3.x TM_MAD block."""
from __future__ import annotations

import os
import re
import subprocess
import textwrap

import pytest

from tests.conftest import FIXTURES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")


def converge(tmp_path, version, *extra):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(textwrap.dedent("""\
        all:
          children:
            frontend:
              hosts:
                localhost:
                  ansible_connection: local
                  ansible_python_interpreter: %(python)s
        """ % {"python": os.path.join(ROOT, ".venv", "bin", "python")}))
    play = tmp_path / "play.yml"
    play.write_text(textwrap.dedent("""\
        - name: gfs2_clvm front-end
          hosts: frontend
          gather_facts: false
          roles:
            - role: nebula.storage.gfs2_clvm
              vars:
                gfs2_clvm_one_version: "%(version)s"
                gfs2_clvm_oned_conf: %(tmp)s/oned.conf
                gfs2_clvm_oned_service: no-such-oned-in-this-test
                gfs2_clvm_remotes_dir: %(tmp)s/remotes
                gfs2_clvm_legacy_dir: %(tmp)s/tm_commands
                gfs2_clvm_legacy_conf_dir: %(tmp)s/etc
                gfs2_clvm_oneadmin_user: root
                gfs2_clvm_oneadmin_group: root
                gfs2_clvm_vg_name: vg-san
        """ % {"version": version, "tmp": tmp_path}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([PLAYBOOK, "-i", str(inventory), str(play)] + list(extra), capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600, check=False)


def recap(stdout):
    line = next(line for line in stdout.splitlines() if line.startswith("localhost") and "ok=" in line)
    return int(line.split("changed=")[1].split()[0])


@pytest.mark.parametrize("version,fixture", [("7.4", "oned-7.4.0.conf"), ("3.0", "oned-3.0.conf")])
def test_frontend_converges_and_is_idempotent(tmp_path, version, fixture):
    source = FIXTURES / "oned" / fixture
    if not source.exists():
        pytest.skip("fixture %s missing" % source)
    original = source.read_text()
    (tmp_path / "oned.conf").write_text(original)
    res = converge(tmp_path, version)
    assert res.returncode == 0, res.stdout[-4000:]
    assert recap(res.stdout) > 0
    text = (tmp_path / "oned.conf").read_text()
    if version == "3.0":
        assert re.search(r'^TM_MAD = \[\n\s+name\s+= "tm_gfs2clvm",\n\s+executable = "one_tm",\n'
                         r'\s+arguments\s+= "tm_gfs2clvm/tm_gfs2clvm.conf" \]', text, re.M), text
        assert (tmp_path / "tm_commands" / "gfs2clvm" / "tm_clone.sh").is_file()
        rc = (tmp_path / "etc" / "tm_gfs2clvm" / "tm_gfs2clvmrc").read_text()
        assert not (tmp_path / "remotes" / "datastore").exists()
    else:
        assert "purefa,gfs2clvm" in text
        assert 'NAME = "gfs2clvm", LN_TARGET = "NONE"' in text
        rc = (tmp_path / "remotes" / "tm" / "gfs2clvm" / "gfs2clvmrc").read_text()
        for action in ("cp", "mkfs", "rm", "mv", "monitor", "stat"):
            assert os.access(tmp_path / "remotes" / "datastore" / "gfs2clvm" / action, os.X_OK)
    assert "VG_NAME=vg-san" in rc.splitlines()
    # every line of the original is still there (edits only add or extend)
    assert len(text.splitlines()) > len(original.splitlines())
    again = converge(tmp_path, version)
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap(again.stdout) == 0


def test_bad_setting_fails_before_any_change(tmp_path):
    source = FIXTURES / "oned" / "oned-7.4.0.conf"
    if not source.exists():
        pytest.skip("fixture missing")
    (tmp_path / "oned.conf").write_text(source.read_text())
    res = converge(tmp_path, "7.4", "-e", "gfs2_clvm_dd_bs=lots")
    assert res.returncode != 0
    assert "gfs2_clvm_dd_bs must be a dd block size" in res.stdout
    assert (tmp_path / "oned.conf").read_text() == source.read_text()
    assert not (tmp_path / "remotes").exists()
