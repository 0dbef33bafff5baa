"""Real ansible-playbook runs of one_datastore/one_host_attributes against the oned TEST DOUBLE.

The double (not oned: oned has no Debian/PyPI package) runs as a separate
process on 127.0.0.1 with an ephemeral port; the modules find it through
ONE_XMLRPC and ONE_AUTH, as on a front-end.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT
from tests.oned_double.testing import AUTH, spawn_double

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    replica_host: cluster100-host1
    extra: {}
    mode: merge
    sys_clusters: [100]
    exclusive: false
  tasks:
    - name: OneStor system datastore
      nebula.storage.one_datastore:
        name: system_replica_1
        type: system
        template: "{{ {'TM_MAD': 'ssh', 'REPLICA_HOST': replica_host} | combine(extra) }}"
        clusters: "{{ sys_clusters }}"
        clusters_exclusive: "{{ exclusive }}"
        attributes: "{{ mode }}"
        enabled: true
    - name: StorPool image datastore
      nebula.storage.one_datastore:
        name: storpool_images
        type: image
        template: {DS_MAD: storpool, TM_MAD: storpool, DISK_TYPE: block, BRIDGE_LIST: "node1 node2"}
        clusters: [100]
    - name: shared system datastore
      nebula.storage.one_datastore:
        name: shared_system
        type: system
        template: {TM_MAD: shared}
    - name: shared image datastore
      nebula.storage.one_datastore:
        name: shared_images
        type: image
        template: {DS_MAD: fs, TM_MAD: shared}
    - name: replica storage IP
      nebula.storage.one_host_attributes:
        name: cluster100-host1
        attributes: {REPLICA_STORAGE_IP: 198.18.5.21}
"""

SINGLE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - nebula.storage.one_datastore: {args}
"""

SEED = {
    "datastores": [
        {"id": 120, "name": "full", "template": {"DS_MAD": "fs", "TM_MAD": "ssh", "TYPE": "IMAGE_DS"}, "images": [3]},
        {"id": 121, "name": "twin", "template": {"TM_MAD": "ssh", "TYPE": "SYSTEM_DS"}},
        {"id": 122, "name": "twin", "template": {"TM_MAD": "ssh", "TYPE": "SYSTEM_DS"}},
    ],
}


@pytest.fixture
def lab(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    args = ["--cluster", "100:cluster100", "--cluster", "101:cluster101", "--host", "cluster100-host1@100",
            "--tm-mad", "storpool:CLONE_TARGET=SELF,DS_MIGRATE=NO", "--ds-mad", "storpool:REQUIRED_ATTRS=DISK_TYPE",
            "--seed", str(seed)]
    with spawn_double(tmp_path, args) as (url, state_file):
        auth = tmp_path / "one_auth"
        auth.write_text(AUTH + "\n")
        auth.chmod(0o600)
        (tmp_path / "site.yml").write_text(PLAYBOOK)
        yield Lab(tmp_path, url, auth, state_file)


class Lab:
    def __init__(self, tmp, url, auth, state_file):
        self.tmp, self.url, self.auth, self.state_file = tmp, url, auth, Path(state_file)

    def state(self):
        return json.loads(self.state_file.read_text())

    def datastores(self, name):
        return [ds for ds in self.state()["datastores"].values() if ds["name"] == name]

    def play(self, playbook="site.yml", *extra, auth=None):
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
                   ONE_XMLRPC=self.url, ONE_AUTH=str(auth or self.auth), ANSIBLE_LOCAL_TEMP=str(self.tmp / "ansible-local"),
                   ANSIBLE_NOCOLOR="1")
        cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=" + str(ROOT / ".venv" / "bin" / "python"), str(self.tmp / playbook), *extra]
        proc = subprocess.run(cmd, cwd=self.tmp, env=env, capture_output=True, text=True, timeout=180, check=False)
        out = json.loads(proc.stdout[proc.stdout.index("{"):])
        stats = out["stats"]["localhost"]
        results = [t["hosts"]["localhost"] for p in out["plays"] for t in p["tasks"]]
        return stats, results

    def single(self, **args):
        (self.tmp / "one.yml").write_text(SINGLE.format(args=json.dumps(args)))
        return self.play("one.yml")


@pytest.mark.slow
def test_create_idempotent_check_diff_exact_clusters(lab):
    stats, results = lab.play()
    assert stats["failures"] == 0 and stats["changed"] == 5, results
    (sp,) = lab.datastores("storpool_images")
    assert sp["ds_mad"] == "storpool" and sp["tm_mad"] == "storpool" and ["BRIDGE_LIST", "node1 node2"] in sp["template"]
    assert ["DISK_TYPE", "BLOCK"] in sp["template"] and sp["clusters"] == [100]
    (rep,) = lab.datastores("system_replica_1")
    assert rep["type"] == 1 and rep["clusters"] == [100] and ["REPLICA_HOST", "cluster100-host1"] in rep["template"]
    host = lab.state()["hosts"]["0"]
    assert ["REPLICA_STORAGE_IP", "198.18.5.21"] in host["template"]

    stats, unused = lab.play()
    assert stats["failures"] == 0 and stats["changed"] == 0

    # --check --diff reports the change and writes nothing
    before = lab.state_file.read_bytes()
    stats, results = lab.play("site.yml", "--check", "--diff", "-e", "replica_host=cluster100-host2")
    assert stats["changed"] == 1 and stats["failures"] == 0
    assert 'REPLICA_HOST = "cluster100-host1"' in results[0]["diff"]["before"]
    assert 'REPLICA_HOST = "cluster100-host2"' in results[0]["diff"]["after"]
    assert lab.state_file.read_bytes() == before

    # merge adds a key; exact removes it again (and keeps oned's own keys)
    stats, unused = lab.play("site.yml", "-e", '{"extra": {"LIMIT_MB": 2048}}')
    assert stats["changed"] == 1
    assert ["LIMIT_MB", "2048"] in lab.datastores("system_replica_1")[0]["template"]
    stats, unused = lab.play("site.yml")
    assert stats["changed"] == 0  # merge leaves unknown keys alone
    stats, results = lab.play("site.yml", "--diff", "-e", "mode=exact")
    assert stats["changed"] == 1 and 'LIMIT_MB = "2048"' in results[0]["diff"]["before"]
    tmpl = dict(map(tuple, lab.datastores("system_replica_1")[0]["template"]))
    assert "LIMIT_MB" not in tmpl and tmpl["SHARED"] == "NO" and tmpl["SAFE_DIRS"] == "/var/tmp"
    stats, unused = lab.play("site.yml", "-e", "mode=exact")
    assert stats["changed"] == 0

    # clusters: add, then exclusive
    stats, unused = lab.play("site.yml", "-e", '{"sys_clusters": [101]}')
    assert stats["changed"] == 1 and lab.datastores("system_replica_1")[0]["clusters"] == [100, 101]
    stats, unused = lab.play("site.yml", "-e", '{"sys_clusters": [101], "exclusive": true}')
    assert stats["changed"] == 1 and lab.datastores("system_replica_1")[0]["clusters"] == [101]
    stats, unused = lab.play("site.yml", "-e", '{"sys_clusters": [101], "exclusive": true}')
    assert stats["changed"] == 0


@pytest.mark.slow
def test_absent_and_clear_errors(lab, tmp_path):
    stats, (r,) = lab.single(name="full", state="absent")
    assert stats["failures"] == 1 and "still holds images 3" in r["msg"]
    stats, (r,) = lab.single(name="full", state="absent", force=True)
    assert stats["failures"] == 1 and "[one.datastore.delete] Cannot delete datastore. Datastore 120 is not empty." in r["msg"]
    assert lab.datastores("full")

    stats, (r,) = lab.single(name="twin", type="system", template={"TM_MAD": "ssh"})
    assert stats["failures"] == 1 and "(IDs 121, 122)" in r["msg"]

    stats, (r,) = lab.single(name="typo", type="system", template={"TM_MAD": "onestor"})
    assert stats["failures"] == 1 and 'TM_MAD named "onestor" is not defined in oned.conf' in r["msg"]
    assert not lab.datastores("typo")

    wrong = tmp_path / "wrong_auth"
    wrong.write_text("oneadmin:wrong\n")
    (tmp_path / "one.yml").write_text(SINGLE.format(args=json.dumps({"name": "x", "state": "absent"})))
    stats, (r,) = lab.play("one.yml", auth=wrong)
    assert stats["failures"] == 1
    assert "[one.datastorepool.info] User couldn't be authenticated, aborting call." in r["msg"]

    stats, (r,) = lab.single(name="created_then_removed", type="system", template={"TM_MAD": "ssh"})
    assert stats["changed"] == 1 and lab.datastores("created_then_removed")
    stats, (r,) = lab.single(name="created_then_removed", state="absent")
    assert stats["changed"] == 1 and not lab.datastores("created_then_removed")


def test_double_keeps_state_across_restarts(tmp_path):
    """The lab runs the double as a service: a restart (SIGTERM) must keep the datastores."""
    import xmlrpc.client

    with spawn_double(tmp_path, ["--cluster", "100:c100"]) as (url, state_file):
        proxy = xmlrpc.client.ServerProxy(url)
        ok, oid, unused = proxy.one.datastore.allocate(AUTH, 'NAME = "kept"\nTYPE = "SYSTEM_DS"\nTM_MAD = "ssh"\n', 100)
        assert ok and oid == 100
    with spawn_double(tmp_path, ["--cluster", "100:c100"]) as (url, unused):
        ok, body, unused = xmlrpc.client.ServerProxy(url).one.datastorepool.info(AUTH)
        assert ok and "<NAME>kept</NAME>" in body
        ok, oid2, unused = xmlrpc.client.ServerProxy(url).one.datastore.allocate(AUTH, 'NAME = "next"\nTYPE = "SYSTEM_DS"\nTM_MAD = "ssh"\n', -1)
        assert ok and oid2 == 101


def test_double_rereads_oned_conf_on_restart(tmp_path):
    """As oned does: a TM_MAD_CONF added to oned.conf is known after a restart, with the datastores kept."""
    import xmlrpc.client

    conf = tmp_path / "oned.conf"
    conf.write_text((FIXTURES / "oned" / "oned-7.4.0.conf").read_text())
    template = 'NAME = "nfs"\nTYPE = "SYSTEM_DS"\nTM_MAD = "nfs_shared"\n'
    with spawn_double(tmp_path, ["--oned-conf", str(conf)]) as (url, unused):
        ok, msg, unused = xmlrpc.client.ServerProxy(url).one.datastore.allocate(AUTH, template, -1)[:3]
        assert not ok and 'TM_MAD named "nfs_shared" is not defined' in msg
        ok, oid, unused = xmlrpc.client.ServerProxy(url).one.datastore.allocate(
            AUTH, 'NAME = "kept"\nTYPE = "SYSTEM_DS"\nTM_MAD = "ssh"\n', -1)[:3]
        assert ok
    conf.write_text(conf.read_text() + '\nTM_MAD_CONF = [\n    NAME = "nfs_shared", LN_TARGET = "NONE", CLONE_TARGET = "SYSTEM", SHARED = "YES"\n]\n')
    with spawn_double(tmp_path, ["--oned-conf", str(conf)]) as (url, unused):
        proxy = xmlrpc.client.ServerProxy(url)
        ok, body, unused = proxy.one.datastorepool.info(AUTH)[:3]
        assert ok and "<NAME>kept</NAME>" in body
        ok, oid, unused = proxy.one.datastore.allocate(AUTH, template, -1)[:3]
        assert ok, oid
