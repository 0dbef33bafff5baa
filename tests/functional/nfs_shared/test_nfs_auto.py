"""nfs_shared_mount_by: the role's datastore tasks (tasks/datastores.yml) against the oned TEST DOUBLE.

The double (tests/oned_double, not oned) stores the NFS_AUTO_* attributes like
any other, reports each datastore's images, and refuses a change of
NFS_AUTO_ENABLE/HOST/PATH/OPTS on a datastore that holds images with oned's
message (Datastore::post_update_template of OpenNebula 7.4.0). The role's own
refusal comes first, so the double's is checked with a direct module call.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap

import pytest

from tests.conftest import ROOT
from tests.oned_double.testing import AUTH, spawn_double

DS = "/var/lib/one/datastores"

PLAYBOOK = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: false
      vars:
        nfs_shared_one_auth_file: "{{ lookup('env', 'ONE_AUTH') }}"
        nfs_shared__exports: [{path: /var/lib/one/datastores, mount_options: ""}]
        nfs_shared__server_address: nfs-fe
        nfs_shared__server: ""
        nfs_shared_datastores:
          - {name: nfs_system, type: system}
          - {name: nfs_images, type: image}
      tasks:
        - name: The role's datastore tasks
          ansible.builtin.include_role:
            name: nebula.storage.nfs_shared
            tasks_from: datastores.yml
    """)

DIRECT = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: false
      tasks:
        - nebula.storage.one_datastore:
            name: nfs_images
            type: image
            template: {NFS_AUTO_ENABLE: "YES"}
    """)


def seed(system_template, images=()):
    return {"datastores": [
        {"id": 100, "name": "nfs_system", "template": dict({"TM_MAD": "nfs_shared", "TYPE": "SYSTEM_DS", "KEEP_ME": "1"},
                                                           **system_template)},
        {"id": 101, "name": "nfs_images", "template": {"TM_MAD": "nfs_shared", "DS_MAD": "fs", "TYPE": "IMAGE_DS"},
         "images": list(images)},
    ]}


@pytest.fixture
def double(tmp_path, request):
    (tmp_path / "seed.json").write_text(json.dumps(request.param))
    with spawn_double(tmp_path, ["--seed", str(tmp_path / "seed.json"), "--tm-mad",
                                 "nfs_shared:LN_TARGET=NONE,CLONE_TARGET=SYSTEM,SHARED=YES,DS_MIGRATE=YES"]) as (url, state):
        auth = tmp_path / "one_auth"
        auth.write_text(AUTH + "\n")
        auth.chmod(0o600)
        (tmp_path / "play.yml").write_text(PLAYBOOK)
        (tmp_path / "direct.yml").write_text(DIRECT)
        yield tmp_path, url, auth, state


def play(double, mount_by, playbook="play.yml"):
    tmp, url, auth, unused = double
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ONE_XMLRPC=url, ONE_AUTH=str(auth),
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"))
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + str(ROOT / ".venv" / "bin" / "python"),
                           "-e", "nfs_shared_mount_by=" + mount_by, str(tmp / playbook)],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, re.sub(r"\s+", " ", proc.stdout + proc.stderr)


def templates(double):
    state = json.loads(double[3].read_text())
    return {ds["name"]: dict((k, v) for k, v in ds["template"]) for ds in state["datastores"].values()}


AUTO = {"NFS_AUTO_ENABLE", "NFS_AUTO_HOST", "NFS_AUTO_PATH", "NFS_AUTO_OPTS"}


@pytest.mark.parametrize("double", [seed({})], indirect=True)
def test_opennebula_sets_nfs_auto_and_converges(double):
    rc, out = play(double, "opennebula")
    assert rc == 0, out
    t = templates(double)
    for name, oid in (("nfs_system", 100), ("nfs_images", 101)):
        want = {"NFS_AUTO_ENABLE": "YES", "NFS_AUTO_HOST": "nfs-fe", "NFS_AUTO_PATH": "%s/%d" % (DS, oid),
                "NFS_AUTO_OPTS": "rw,hard,_netdev"}
        assert {k: t[name][k] for k in AUTO} == want
    assert t["nfs_system"]["KEEP_ME"] == "1"
    rc, out = play(double, "opennebula")
    assert rc == 0 and re.search(r"localhost : ok=\d+ changed=0 ", out), out
    # back to role: every NFS_AUTO_* goes, the rest stays
    rc, out = play(double, "role")
    assert rc == 0, out
    t = templates(double)
    assert not AUTO & set(t["nfs_system"]) and not AUTO & set(t["nfs_images"])
    assert t["nfs_system"]["KEEP_ME"] == "1" and t["nfs_images"]["DS_MAD"] == "fs"
    rc, out = play(double, "role")
    assert rc == 0 and re.search(r"localhost : ok=\d+ changed=0 ", out), out


@pytest.mark.parametrize("double", [seed({"NFS_AUTO_ENABLE": "yes", "NFS_AUTO_HOST": "old-nas"})], indirect=True)
def test_role_never_leaves_nfs_auto_enable(double):
    rc, out = play(double, "role")
    assert rc == 0, out
    t = templates(double)
    assert not AUTO & set(t["nfs_system"]) and t["nfs_system"]["KEEP_ME"] == "1"


@pytest.mark.parametrize("double", [seed({}, images=[7])], indirect=True)
def test_opennebula_refuses_a_datastore_holding_images(double):
    before = double[3].read_text()
    rc, out = play(double, "opennebula")
    assert rc != 0
    assert ("nfs_shared_datastores: datastore nfs_images (ID 101) holds images (7), and OpenNebula refuses to change "
            "NFS_AUTO_ENABLE, NFS_AUTO_HOST, NFS_AUTO_PATH, NFS_AUTO_OPTS in a datastore with existing images") in out, out
    t = templates(double)
    assert not AUTO & set(t["nfs_images"])
    assert json.loads(double[3].read_text())["datastores"]["101"] == json.loads(before)["datastores"]["101"]
    # the double refuses it too, with oned's message, when the role's check is bypassed
    rc, out = play(double, "opennebula", "direct.yml")
    assert rc != 0
    assert "Cannot update template. Cannot update option NFS_AUTO_ENABLE in a datastore with existing images" in out, out


AUTO_ON = {"NFS_AUTO_ENABLE": "YES", "NFS_AUTO_HOST": "nfs-fe", "NFS_AUTO_PATH": DS + "/101", "NFS_AUTO_OPTS": "rw,hard,_netdev"}
IMAGES_AUTO_ON = seed({})
IMAGES_AUTO_ON["datastores"][1]["template"].update(AUTO_ON)
IMAGES_AUTO_ON["datastores"][1]["images"] = [9]


@pytest.mark.parametrize("double", [IMAGES_AUTO_ON], indirect=True)
def test_a_datastore_holding_images_keeps_its_mode(double):
    """With images, opennebula (already set) converges, and role refuses to remove NFS_AUTO_*, as oned would."""
    rc, out = play(double, "opennebula")
    assert rc == 0, out
    before = double[3].read_text()
    rc, out = play(double, "role")
    assert rc != 0
    assert ("datastore nfs_images (ID 101) holds images (9), and OpenNebula refuses to change NFS_AUTO_ENABLE, "
            "NFS_AUTO_HOST, NFS_AUTO_PATH, NFS_AUTO_OPTS in a datastore with existing images; "
            "nfs_shared_mount_by=role would change NFS_AUTO_ENABLE (\"YES\" -> \"\")") in out, out
    assert json.loads(double[3].read_text())["datastores"]["101"] == json.loads(before)["datastores"]["101"]
