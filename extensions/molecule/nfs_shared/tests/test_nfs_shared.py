# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify the nfs_shared scenario with real NFS traffic.

nfs-fe runs nfs-ganesha (a real userspace NFS server); the host containers
talk to it with libnfs-utils (nfs-cp, nfs-ls), a real userspace NFS client,
because the lab's kernel has no NFS client. nfs-out is outside the allowed
clients, and its oneadmin has uid 9870 (molecule.yml).

The negative cases run the role again with ansible-playbook and bad inputs,
and check that every file the role manages is byte-identical afterwards. More
input checks (IPv6, netmasks, options, paths) run on the controller only, in
tests/functional/nfs_shared.
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import re
import subprocess
import tempfile
import uuid

import pytest
import testinfra
import yaml

testinfra_hosts = ["podman://nfs-fe"]

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SCENARIO = os.path.join(ROOT, "extensions", "molecule", "nfs_shared")
HOSTS = ("nfs-h1", "nfs-h2")
DATASTORES = "/var/lib/one/datastores"
SQUASHED = "/srv/nfs-squashed"
GANESHA_CONF = "/etc/ganesha/opennebula.conf"
EXPORTS_FILE = "/etc/exports.d/opennebula.exports"
ONED_CONF = "/etc/one/oned.conf"


def machine(name):
    return testinfra.get_host("podman://" + name)


def address(name):
    out = machine("nfs-fe").check_output("getent hosts %s", name)
    return out.split()[0]


def scenario_vars():
    with open(os.path.join(SCENARIO, "molecule.yml"), encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    return conf["provisioner"]["inventory"]["group_vars"]["nfs_shared"]


def run_play(extra_vars, hosts=HOSTS, frontend="nfs-fe"):
    """Run the scenario's converge playbook with the lab's vars plus extra_vars."""
    group_vars = scenario_vars()
    group_vars.update(extra_vars)
    machines = {name: {"ansible_connection": "containers.podman.podman"} for name in (frontend,) + tuple(hosts)}
    inventory = {
        "all": {
            "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
            "children": {
                "frontend": {"hosts": {frontend: machines[frontend]}},
                "hosts": {"hosts": {h: machines[h] for h in hosts}},
                "nfs_shared": {"children": {"frontend": {}, "hosts": {}}, "vars": group_vars},
            },
        }
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(inventory, f)
        inv = f.name
    try:
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0")
        proc = subprocess.run(
            [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inv, os.path.join(SCENARIO, "converge.yml")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    finally:
        os.unlink(inv)
    return proc.returncode, re.sub(r"\s+", " ", proc.stdout + proc.stderr)


def checksums():
    """sha256 of every file the role manages, on every machine it touches."""
    out = {}
    for name, paths in (("nfs-fe", (GANESHA_CONF, "/etc/ganesha/ganesha.conf", EXPORTS_FILE, ONED_CONF,
                                    "/var/lib/one/remotes/tm/nfs_shared/nfs_sharedrc", "/etc/fstab")),
                        ("nfs-h1", ("/etc/fstab",)), ("nfs-h2", ("/etc/fstab",)), ("nfs-out", ("/etc/fstab",))):
        h = machine(name)
        for path in paths:
            f = h.file(path)
            out[name + ":" + path] = f.sha256sum if f.exists else None
    return out


def nfs_cp(client, url):
    """Copy a small file as root from a host container to an NFS URL with libnfs."""
    h = machine(client)
    src = "/tmp/nfs-probe-%s" % uuid.uuid4().hex
    h.check_output("echo probe > %s", src)
    try:
        return h.run("nfs-cp %s %s", src, url)
    finally:
        h.run("rm -f %s", src)


# -- rendered configuration ------------------------------------------------

def test_ganesha_export_blocks(host):
    conf = host.file(GANESHA_CONF)
    assert conf.mode == 0o644
    text = conf.content_string
    clients = "Clients = %s/32, %s/32;" % tuple(sorted((address(h) for h in HOSTS), key=lambda a: tuple(map(int, a.split(".")))))
    blocks = re.findall(r"EXPORT \{(.*?)\n\}", text, re.S)
    assert len(blocks) == 2
    assert 'Path = "%s";' % DATASTORES in blocks[0]
    assert 'Pseudo = "%s";' % DATASTORES in blocks[0]
    assert blocks[0].count("Squash = No_Root_Squash;") == 2
    assert clients in blocks[0]
    assert "Access_Type = RW;" in blocks[0]
    assert 'Path = "%s";' % SQUASHED in blocks[1]
    assert blocks[1].count("Squash = Root_Squash;") == 2
    assert "Anonymous_Uid = 65534;" in blocks[1]
    assert host.file("/etc/ganesha/ganesha.conf").content_string.count('%%include "%s"' % GANESHA_CONF) == 1


def test_ganesha_serves_the_exports(host):
    assert host.service("nfs-ganesha").is_running
    assert host.service("nfs-ganesha").is_enabled
    for client in HOSTS:
        for version in (3, 4):
            out = machine(client).run("nfs-ls %s", "nfs://nfs-fe%s?version=%d" % (DATASTORES, version))
            assert out.rc == 0, out.stderr


@pytest.mark.parametrize("client", HOSTS)
@pytest.mark.parametrize("version", [3, 4])
def test_root_write_lands_as_root(host, client, version):
    """no_root_squash: a root write from a host is owned by uid 0 on the front-end."""
    name = "probe-%s-v%d-%s" % (client, version, uuid.uuid4().hex[:8])
    out = nfs_cp(client, "nfs://nfs-fe%s/%s?version=%d" % (DATASTORES, name, version))
    assert out.rc == 0, out.stderr
    f = host.file("%s/%s" % (DATASTORES, name))
    try:
        assert f.exists
        assert (f.uid, f.gid) == (0, 0)
        assert f.content_string == "probe\n"
    finally:
        host.run("rm -f %s/%s", DATASTORES, name)


@pytest.mark.parametrize("client", HOSTS)
def test_root_squashed_control_lands_as_nobody(host, client):
    """Control: the root_squash export maps the same root write to 65534."""
    name = "probe-%s-%s" % (client, uuid.uuid4().hex[:8])
    out = nfs_cp(client, "nfs://nfs-fe%s/%s?version=3" % (SQUASHED, name))
    assert out.rc == 0, out.stderr
    f = host.file("%s/%s" % (SQUASHED, name))
    try:
        assert (f.uid, f.gid) == (65534, 65534)
    finally:
        host.run("rm -f %s/%s", SQUASHED, name)


@pytest.mark.parametrize("version", [3, 4])
def test_client_outside_the_allowed_networks_is_refused(host, version):
    name = "probe-out-%s" % uuid.uuid4().hex[:8]
    out = nfs_cp("nfs-out", "nfs://nfs-fe%s/%s?version=%d" % (DATASTORES, name, version))
    assert out.rc != 0
    assert "ACCES" in out.stderr or "NOENT" in out.stderr or "PERM" in out.stderr, out.stderr
    assert not host.file("%s/%s" % (DATASTORES, name)).exists


@pytest.mark.parametrize("client", HOSTS)
def test_hosts_record_the_mounts(client):
    """LAB ONLY (nfs_shared_mount_state: present): fstab entries, no kernel mount."""
    h = machine(client)
    fstab = h.file("/etc/fstab").content_string
    for path in (DATASTORES, SQUASHED):
        assert fstab.count("nfs-fe:%s %s nfs rw,hard,_netdev 0 0" % (path, path)) == 1
        d = h.file(path)
        assert d.is_directory and d.user == "oneadmin" and d.group == "oneadmin"
    assert h.file(DATASTORES).mode == 0o750
    assert h.file(SQUASHED).mode == 0o1777


def test_oned_conf_blocks_present_once(host):
    text = host.file(ONED_CONF).content_string
    live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    tm_mad = re.search(r"^TM_MAD\s*=\s*\[(.*?)\]", live, re.M | re.S).group(1)
    drivers = re.search(r"-d\s+([\w,]+)", tm_mad).group(1).split(",")
    assert drivers.count("nfs_shared") == 1
    blocks = [b for b in re.findall(r"^TM_MAD_CONF\s*=\s*\[(.*?)\]", live, re.M | re.S) if '"nfs_shared"' in b]
    assert len(blocks) == 1
    attrs = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', blocks[0]))
    assert attrs == {
        "NAME": "nfs_shared", "LN_TARGET": "NONE", "CLONE_TARGET": "SYSTEM", "SHARED": "YES", "DS_MIGRATE": "YES",
        "TM_MAD_SYSTEM": "ssh", "LN_TARGET_SSH": "SYSTEM", "CLONE_TARGET_SSH": "SYSTEM", "DISK_TYPE_SSH": "FILE",
        "ALLOW_ORPHANS": "FORMAT", "DS_LIVE_MIGRATE": "YES", "DS_MIGRATE_SNAP": "YES",
    }


def test_driver_installed(host):
    base = "/var/lib/one/remotes/tm/nfs_shared"
    for action in ("clone", "ln", "mv", "delete", "mkimage", "context"):
        f = host.file("%s/%s" % (base, action))
        assert f.is_file and f.mode == 0o755 and f.user == "oneadmin", action
    rc = host.file(base + "/nfs_sharedrc")
    assert rc.user == "oneadmin" and "QCOW2_OVERLAY=" in rc.content_string


def test_datastores_use_the_driver(host):
    """Real oned accepted both datastores with TM_MAD nfs_shared."""
    script = (
        "import xmlrpc.client, json, xml.etree.ElementTree as E;"
        "auth=open('/var/lib/one/.one/one_auth').read().strip();"
        "r=xmlrpc.client.ServerProxy('http://localhost:2633/RPC2').one.datastorepool.info(auth,-2,-1,-1);"
        "print(json.dumps({d.findtext('NAME'): [d.findtext('TEMPLATE/TM_MAD'), d.findtext('TEMPLATE/SHARED')]"
        " for d in E.fromstring(r[1]).findall('DATASTORE')}))"
    )
    pool = json.loads(host.check_output("python3 -c \"%s\"" % script))
    assert pool["nfs_system"] == ["nfs_shared", "YES"]
    assert pool["nfs_images"][0] == "nfs_shared"


# -- the kernel backend (rendered and validated, not served: no nfsd here) ---

def test_kernel_backend_exports_file_passes_exportfs(host):
    rc, out = run_play({"nfs_shared_server_backend": "kernel", "nfs_shared_server_service_manage": False})
    assert rc == 0, out
    a1, a2 = sorted((address(h) for h in HOSTS), key=lambda a: tuple(map(int, a.split("."))))
    f = host.file(EXPORTS_FILE)
    assert (f.user, f.mode) == ("root", 0o644)
    lines = [line for line in f.content_string.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "%s %s/32(rw,sync,no_subtree_check,no_root_squash) %s/32(rw,sync,no_subtree_check,no_root_squash)" % (DATASTORES, a1, a2),
        "%s %s/32(rw,sync,no_subtree_check,root_squash) %s/32(rw,sync,no_subtree_check,root_squash)" % (SQUASHED, a1, a2),
    ]
    assert host.run("exportfs -ra").rc == 0
    etab = host.file("/var/lib/nfs/etab").content_string
    assert "%s\t%s/32(" % (DATASTORES, a1) in etab
    assert not host.file("/etc/exports").contains("opennebula")


def test_kernel_backend_rejected_file_is_rolled_back(host):
    before = checksums()
    assert before["nfs-fe:" + EXPORTS_FILE] is not None
    rc, out = run_play({"nfs_shared_server_backend": "kernel", "nfs_shared_server_service_manage": False,
                        "nfs_shared_export_options": "rw,sync,no_subtree_check,no_root_squash,bogus_option"})
    assert rc != 0
    assert "exportfs -ra refused %s" % EXPORTS_FILE in out
    assert 'unknown keyword "bogus_option"' in out
    assert checksums() == before
    assert not host.run("ls %s.*~ 2>/dev/null || ls /etc/exports.d | grep -v '^opennebula.exports$'", EXPORTS_FILE).stdout


# -- refusals: a failing play, the message, every file untouched -----------

@pytest.mark.parametrize("extra,messages", [
    ({"nfs_shared_clients": ["*"]},
     ["refusing to export with no_root_squash (or anonuid/anongid=0) to * (every machine) (from nfs_shared_clients)",
      "nfs_shared_allow_wide_no_root_squash: true"]),
    ({"nfs_shared_clients": ["*"], "nfs_shared_export_options": "rw,sync,no_subtree_check,all_squash,anonuid=0,anongid=0"},
     ["refusing to export with no_root_squash (or anonuid/anongid=0) to * (every machine) (from nfs_shared_clients)"]),
    ({"nfs_shared_clients": ["198.18.0.0/1"]},
     ["refusing to export with no_root_squash (or anonuid/anongid=0) to 128.0.0.0/1 (wider than /16) (from nfs_shared_clients)"]),
    ({"nfs_shared_clients": ["::ffff:0.0.0.0/96"]},
     ["to ::ffff:0.0.0.0/96 (IPv4 0.0.0.0/0) (wider than /16) (from nfs_shared_clients)"]),
    ({"nfs_shared_exports": ["/var/lib/one/datastores/../../../"]},
     ['nfs_shared_exports[0].path: refusing to export /var: it is / or a system directory',
      '(given as "/var/lib/one/datastores/../../../")']),
    ({"nfs_shared_clients": ["198.18.1.0/33"]},
     ["nfs_shared_clients[0]: invalid network", "198.18.1.0/33"]),
    ({"nfs_shared_server_host": "nas.example.org"},
     ["BACKEND = ", "sqlite", "nfs-fe would be an NFS client", "SQLite relies on POSIX locks"]),
], ids=["world", "anonuid-0", "half-space", "v4-mapped", "system-dir", "bad-cidr", "sqlite-on-nfs-client"])
def test_refusals_leave_files_untouched(extra, messages):
    before = checksums()
    rc, out = run_play(extra)
    assert rc != 0, out
    for message in messages:
        assert message in out, out
    assert checksums() == before


def test_uid_mismatch_fails_before_anything_is_mounted():
    """nfs-out's oneadmin has uid 9870 (molecule.yml); as a host it must stop the play everywhere."""
    before = checksums()
    rc, out = run_play({}, hosts=("nfs-h1", "nfs-out"))
    assert rc != 0, out
    assert "oneadmin must have the same uid and gid on the front-end and every host" in out
    assert "nfs-fe uid=9869 gid=9869, nfs-h1 uid=9869 gid=9869, nfs-out uid=9870 gid=9869" in out
    assert checksums() == before
    assert "nfs-fe:" not in machine("nfs-out").file("/etc/fstab").content_string


def test_networks_mode_prints_the_networks_it_exports_to():
    """networks is an explicit choice, and the play says which networks it exports to (here before a refusal)."""
    before = checksums()
    rc, out = run_play({"nfs_shared_client_networks_mode": "networks",
                        "nfs_shared_exports": [DATASTORES, {"path": "/srv/x", "mode": "999"}]})
    assert rc != 0, out
    assert "nfs_shared_client_networks_mode=networks exports to the whole networks of the hosts of group hosts" in out, out
    # the message is shown YAML-quoted: '' around each string
    assert re.search(r"'+/var/lib/one/datastores'+: \['+198\.1[89]\.\d+\.0/\d+'+\]", out), out
    assert 'nfs_shared_exports[1].mode: "999" is not an octal mode' in out
    assert checksums() == before


# -- nfs_shared_mount_by: role | opennebula (OpenNebula 7.0+ NFS auto-mount) ------
#
# OpenNebula's own sudoers (share/pkgs/sudoers of the 7.4.0 source fixture:
# debian/opennebula with the Cmnd_Alias lines, opennebula-node-kvm and
# opennebula-server with the grants) are installed by these tests, as the
# opennebula packages would. Real oned stores NFS_AUTO_* and refuses their
# change on a datastore holding images (Datastore::post_update_template).

ONE_SRC = os.path.join(os.environ.get("NEBULA_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures"),
                       "opennebula", "opennebula-7.4.0-src.tar.gz")
LAYOUT = ("nfs-fe",) + HOSTS
AUTO = ("NFS_AUTO_ENABLE", "NFS_AUTO_HOST", "NFS_AUTO_PATH", "NFS_AUTO_OPTS")


def stock_sudoers():
    import tarfile
    out = {}
    with tarfile.open(ONE_SRC) as tar:
        for member in tar.getmembers():
            for name in ("share/pkgs/sudoers/debian/opennebula", "share/pkgs/sudoers/opennebula-node-kvm"):
                if member.name.endswith(name):
                    out[name.rsplit("/", 1)[1]] = tar.extractfile(member).read().decode()
    return out


def install_sudoers(names=LAYOUT, extra=None):
    files = stock_sudoers()
    for name in names:
        h = machine(name)
        for fname, text in files.items():
            path = "/etc/sudoers.d/%s" % fname.replace("-", "_")
            h.check_output("printf '%%s' %s > %s && chmod 0440 %s", text, path, path)
        if extra:
            h.check_output("printf '%%s' %s > /etc/sudoers.d/zz_test && chmod 0440 /etc/sudoers.d/zz_test", extra)
        assert h.run("visudo -c").rc == 0


def remove_sudoers(names=LAYOUT):
    for name in names:
        machine(name).run("rm -f /etc/sudoers.d/opennebula /etc/sudoers.d/opennebula_node_kvm /etc/sudoers.d/zz_test")


def datastores():
    script = (
        "import xmlrpc.client, json, xml.etree.ElementTree as E;"
        "auth=open('/var/lib/one/.one/one_auth').read().strip();"
        "r=xmlrpc.client.ServerProxy('http://localhost:2633/RPC2').one.datastorepool.info(auth,-2,-1,-1);"
        "print(json.dumps({d.findtext('NAME'): {'id': int(d.findtext('ID')), 'images': [i.text for i in d.findall('IMAGES/ID')],"
        " 'template': {c.tag: c.text for c in d.find('TEMPLATE')}} for d in E.fromstring(r[1]).findall('DATASTORE')}))"
    )
    return json.loads(machine("nfs-fe").check_output("python3 -c \"%s\"" % script))


def one(*argv):
    """The OpenNebula CLI as oneadmin on nfs-fe."""
    return machine("nfs-fe").check_output("runuser -u oneadmin -- env HOME=/var/lib/one ONE_XMLRPC_TIMEOUT=600 "
                                          + " ".join(["%s"] * len(argv)), *argv)


def hold_image(name):
    """Register an image in datastore ``name`` without a copy (a SOURCE, as for volumes that exist already: oned
    calls no driver and the image is READY at once); returns its id. The NFS_AUTO_* datastore needs no mount."""
    if machine("nfs-fe").run("runuser -u oneadmin -- env HOME=/var/lib/one oneimage show nfs-held").rc == 0:
        drop_image("nfs-held")   # left by an interrupted run
    out = one("oneimage", "create", "-d", name, "--name", "nfs-held", "--type", "DATABLOCK", "--size", "1",
              "--format", "raw", "--source", "%s/%d/held-by-test" % (DATASTORES, datastores()[name]["id"]))
    return int(out.split(":")[1])


def drop_image(iid):
    """``oneimage delete --force``: the fs driver's rm first mounts an NFS_AUTO datastore on the front-end (its
    autonfs_tmpsetup_command), which this kernel cannot; with --force oned drops the image whatever the driver
    answers. There is no file to remove: the image was registered by SOURCE only."""
    one("oneimage", "delete", "--force", str(iid))
    for unused in range(120):
        if machine("nfs-fe").run("runuser -u oneadmin -- env HOME=/var/lib/one oneimage show %s", str(iid)).rc != 0:
            return
        import time
        time.sleep(1)
    raise AssertionError("image %s was not deleted" % iid)


def fstab(name):
    return machine(name).file("/etc/fstab").content_string


def test_mount_by_opennebula_needs_one_nfs_in_sudoers():
    """Without OpenNebula's sudoers, every machine of the layout fails, named, and nothing changes."""
    remove_sudoers()
    before, pool = checksums(), datastores()
    rc, out = run_play({"nfs_shared_mount_by": "opennebula"})
    assert rc != 0, out
    for name in LAYOUT:
        assert "%s: sudo does not let oneadmin run /usr/bin/mount; /usr/bin/umount; /usr/bin/sed -i -f /proc/self/fd/0 " \
               "/etc/fstab (OpenNebula mounts NFS_AUTO datastores through the ONE_NFS sudo alias" % name in out, out
    assert checksums() == before and datastores() == pool


def test_mount_by_opennebula_needs_nopasswd():
    """A later PASSWD rule for umount on nfs-h2 wins in sudoers: nfs-h2 is named."""
    install_sudoers()
    install_sudoers(("nfs-h2",), extra="oneadmin ALL=(ALL) PASSWD: /usr/bin/umount\n")
    before = checksums()
    try:
        rc, out = run_play({"nfs_shared_mount_by": "opennebula"})
    finally:
        machine("nfs-h2").run("rm -f /etc/sudoers.d/zz_test")
    assert rc != 0, out
    assert "nfs-h2: sudo asks oneadmin for a password for /usr/bin/umount (ONE_NFS must be NOPASSWD" in out, out
    assert "nfs-h1: sudo" not in out and "nfs-fe: sudo" not in out
    assert checksums() == before


def test_mount_by_opennebula_sets_nfs_auto_and_writes_no_fstab_line():
    install_sudoers()
    rc, out = run_play({"nfs_shared_mount_by": "opennebula"})
    assert rc == 0, out
    pool = datastores()
    fe = machine("nfs-fe")
    for name in ("nfs_system", "nfs_images"):
        ds = pool[name]
        path = "%s/%d" % (DATASTORES, ds["id"])
        assert {k: ds["template"].get(k) for k in AUTO} == {
            "NFS_AUTO_ENABLE": "YES", "NFS_AUTO_HOST": "nfs-fe", "NFS_AUTO_PATH": path, "NFS_AUTO_OPTS": "rw,hard,_netdev"}
        d = fe.file(path)
        assert d.is_directory and d.user == "oneadmin"
        # what OpenNebula will mount (NFS_AUTO_HOST:NFS_AUTO_PATH) is served to the hosts, over NFSv4
        for client in HOSTS:
            res = machine(client).run("nfs-ls %s", "nfs://nfs-fe%s?version=4" % path)
            assert res.rc == 0, res.stderr
    for client in HOSTS:
        assert "nfs-fe:" not in fstab(client), fstab(client)  # the role's own lines are gone, no new one
    # the line OpenNebula's driver writes (scripts_common.sh autonfs_mount_command), through the stock ONE_NFS
    # sudo rule, as oneadmin and without a terminal
    ds = pool["nfs_images"]
    line = "nfs-fe:%s %s/%d nfs rw,hard,_netdev 0 0" % (ds["template"]["NFS_AUTO_PATH"], DATASTORES, ds["id"])
    res = machine("nfs-h1").run("su -s /bin/sh oneadmin -c %s",
                                "printf '$a\\\\\\n%s\\n' | flock -w 5 /etc/fstab sudo -n sed -i -f /proc/self/fd/0 /etc/fstab" % line)
    assert res.rc == 0, res.stderr
    assert fstab("nfs-h1").count(line + "\n") == 1
    # a second run changes nothing, OpenNebula's line included
    text = fstab("nfs-h1")
    rc, out = run_play({"nfs_shared_mount_by": "opennebula"})
    assert rc == 0, out
    assert re.findall(r"(nfs-\w+) : ok=\d+ changed=(\d+)", out) and \
        all(c == "0" for unused, c in re.findall(r"(nfs-\w+) : ok=\d+ changed=(\d+)", out)), out
    assert fstab("nfs-h1") == text


def test_datastore_holding_images_keeps_nfs_auto():
    """As oned: no NFS_AUTO_* change on a datastore with images, in either direction; nothing changes."""
    iid = hold_image("nfs_images")
    try:
        before, pool = checksums(), datastores()
        assert pool["nfs_images"]["images"] == [str(iid)]
        rc, out = run_play({})  # back to role: would remove NFS_AUTO_*
        assert rc != 0, out
        assert "datastore nfs_images (ID %d) holds images (%d), and OpenNebula refuses to change NFS_AUTO_ENABLE" \
               % (pool["nfs_images"]["id"], iid) in out, out
        assert "nfs_shared_mount_by=role would change NFS_AUTO_ENABLE" in out
        rc, out = run_play({"nfs_shared_mount_by": "opennebula", "nfs_shared_mount_options": "rw,soft"})
        assert rc != 0, out
        assert 'NFS_AUTO_OPTS ("rw,hard,_netdev" -> "rw,soft")' in out, out
        assert checksums() == before and datastores() == pool
        # what the role's check stands in for: oned itself refuses the change
        ds = pool["nfs_images"]["id"]
        fe = machine("nfs-fe")
        fe.check_output("printf 'NFS_AUTO_OPTS=\"rw,soft\"\\n' > /tmp/nfs-auto.tmpl && chmod 644 /tmp/nfs-auto.tmpl")
        res = fe.run("runuser -u oneadmin -- env HOME=/var/lib/one onedatastore update %s /tmp/nfs-auto.tmpl --append",
                     str(ds))
        assert res.rc != 0 and "NFS_AUTO_OPTS" in res.stdout + res.stderr, res
        assert datastores() == pool
    finally:
        drop_image(iid)


def test_mount_by_role_removes_nfs_auto_and_restores_the_mounts():
    rc, out = run_play({})
    assert rc == 0, out
    for name, ds in datastores().items():
        if name in ("nfs_system", "nfs_images"):
            assert not set(AUTO) & set(ds["template"]), ds
    for client in HOSTS:
        text = fstab(client)
        for path in (DATASTORES, SQUASHED):
            assert text.count("nfs-fe:%s %s nfs rw,hard,_netdev 0 0" % (path, path)) == 1
    # OpenNebula's own line stays for OpenNebula to clean (its drivers drop lines of datastores no longer enabled)
    machine("nfs-h1").check_output("sed -i '\\|^nfs-fe:%s/[0-9]* |d' /etc/fstab" % DATASTORES)
    remove_sudoers()
