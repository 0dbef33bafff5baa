"""nebula.storage.oned_conf and one_rc run by a real ansible-playbook on localhost.

Each run uses a temp copy of the real oned-7.4.0.conf and vmm_execrc fixtures:
changed, then idempotent (changed=0), --check --diff writes nothing, and bad
input fails with the file untouched.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap

import pytest

from tests.conftest import FIXTURES, ROOT

PLAYBOOK = textwrap.dedent("""\
    - hosts: all
      gather_facts: false
      tasks:
        - name: StorPool in oned.conf
          nebula.storage.oned_conf:
            path: "{{ oned_path }}"
            backup: true
            drivers:
              - {attribute: TM_MAD, add: [storpool]}
              - {attribute: DATASTORE_MAD, add: [storpool]}
              - {attribute: DATASTORE_MAD, option: -s, add: [storpool]}
            blocks:
              - attribute: TM_MAD_CONF
                match: {NAME: storpool}
                set: {LN_TARGET: NONE, CLONE_TARGET: SELF, SHARED: "yes", DS_MIGRATE: "yes"}
            lists:
              - {name: VM_RESTRICTED_ATTR, add: [VMSNAPSHOT_LIMIT, DISKSNAPSHOT_LIMIT]}
            attributes:
              - {name: DEFAULT_DEVICE_PREFIX, value: "{{ prefix | default('sd') }}"}
          register: oned

        - name: Live snapshots on StorPool
          nebula.storage.one_rc:
            path: "{{ rc_path }}"
            words: [{name: LIVE_DISK_SNAPSHOTS, add: [kvm-storpool]}]
            validate: sh -n %s

        - name: The module reports what it changed
          ansible.builtin.assert:
            that:
              - oned.changes is sequence
              - not oned.changed or oned.changes | length > 0
""")


def run(tmp_path, *extra, extra_vars=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"))
    ev = "oned_path=%s rc_path=%s" % (tmp_path / "oned.conf", tmp_path / "vmm_execrc")
    if extra_vars:
        ev += " " + extra_vars
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % (ROOT / ".venv" / "bin" / "python"), "-e", ev,
           *extra, str(tmp_path / "play.yml")]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    m = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", p.stdout)
    assert m, p.stdout + p.stderr
    return p, dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups())))


@pytest.fixture
def files(tmp_path):
    shutil.copyfile(FIXTURES / "oned" / "oned-7.4.0.conf", tmp_path / "oned.conf")
    shutil.copyfile(FIXTURES / "rc" / "vmm_execrc", tmp_path / "vmm_execrc")
    os.chmod(tmp_path / "oned.conf", 0o640)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    return tmp_path


@pytest.mark.slow
def test_playbook_changed_idempotent_check_diff_and_bad_input(files):
    tmp = files
    oned = tmp / "oned.conf"
    original = oned.read_text()

    p, recap = run(tmp)
    assert recap["failed"] == 0 and recap["changed"] == 2, p.stdout
    text = oned.read_text()
    assert 'NAME = "storpool", LN_TARGET = "NONE"' in text and "iscsi_libvirt,netapp,purefa,storpool\"" in text
    assert "kvm-storpool" in (tmp / "vmm_execrc").read_text()
    backups = [f for f in os.listdir(tmp) if f.startswith("oned.conf.") and f.endswith("~")]
    assert len(backups) == 1 and (tmp / backups[0]).read_text() == original
    assert oct(os.stat(oned).st_mode & 0o777) == "0o640"

    p, recap = run(tmp)
    assert recap["failed"] == 0 and recap["changed"] == 0, p.stdout
    assert oned.read_text() == text

    p, recap = run(tmp, "--check", "--diff", extra_vars="prefix=vd")
    assert recap["failed"] == 0 and recap["changed"] == 1, p.stdout
    assert '-DEFAULT_DEVICE_PREFIX    = "sd"' in p.stdout and '+DEFAULT_DEVICE_PREFIX    = "vd"' in p.stdout
    assert oned.read_text() == text

    broken = text.replace('    EXECUTABLE = "one_tm",\n', '    EXECUTABLE = "one_tm",,\n', 1)
    oned.write_text(broken)
    p, recap = run(tmp)
    assert recap["failed"] == 1, p.stdout
    assert "%s:552:27: expected an attribute name after ','" % oned in p.stdout
    assert oned.read_text() == broken
