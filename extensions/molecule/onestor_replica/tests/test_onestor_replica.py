"""Verify onestor_replica in the lab: real ssh between containers as oneadmin, real files.

The front-end (ost-fe) runs the installed onestor TM actions by hand, as oned
would (as oneadmin, with OpenNebula 7.x arguments), for what oned cannot be
made to do on demand (a given VM id, a killed sshd mid-copy, a held lock).
REPLICA_HOST and REPLICA_STORAGE_IP come from real oned 7.4 (lab/oned), which
the role filled with the datastores and host attributes. test_onestor_lifecycle.py
drives VMs through oned itself.
"""
import json
import os
import re
import shlex
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import testinfra

from conftest import md5

testinfra_hosts = ["podman://ost-fe"]

MACHINES = ["ost-fe", "ost-rep", "ost-h2"]
ACTIONS = "/var/lib/one/remotes/tm/onestor"
CACHE = "/var/lib/one/datastores/replica_cache"
FAULT = "/tmp/onestor-fault"
FAULT_CACHE = "/var/lib/one/datastores/replica_cache_fault"
EVICT = "/tmp/onestor-evict"
EVICT_CACHE = "/var/lib/one/datastores/replica_cache_evict"
STOCK = "/tmp/onestor-stock"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
MiB = 1 << 20


def machine(name):
    return testinfra.get_host("podman://" + name)


FE, REP, H2 = (machine(n) for n in MACHINES)


def as_oneadmin(node, script):
    return node.run("runuser -u oneadmin -- bash -c %s" % shlex.quote(script))


def ok(result):
    assert result.rc == 0, "rc=%s\nstdout=%s\nstderr=%s" % (result.rc, result.stdout, result.stderr)
    return result


def one_call(method, *args):
    script = (
        "import json, xmlrpc.client;"
        "auth = open('/var/lib/one/.one/one_auth').read().strip();"
        "print(json.dumps(xmlrpc.client.ServerProxy('http://localhost:2633/RPC2').%s(auth, %s)))"
        % (method, ", ".join(repr(a) for a in args))
    )
    answer = json.loads(ok(FE.run("python3 -c %s" % shlex.quote(script))).stdout)
    assert answer[0], answer
    return answer[1]


def datastore_ids():
    pool = ET.fromstring(one_call("one.datastorepool.info", -2, -1, -1))
    return {ds.findtext("NAME"): int(ds.findtext("ID")) for ds in pool.findall("DATASTORE")}


def oned_objects():
    """What the role may change in oned: each datastore's template and clusters, each host's REPLICA_STORAGE_IP
    (monitoring values left out: they change on their own)."""
    pool = ET.fromstring(one_call("one.datastorepool.info", -2, -1, -1))
    datastores = {ds.findtext("NAME"): (sorted((a.tag, a.text) for a in ds.find("TEMPLATE")),
                                        sorted(c.text for c in ds.findall("CLUSTERS/ID")))
                  for ds in pool.findall("DATASTORE")}
    hosts = ET.fromstring(one_call("one.hostpool.info", -2, -1, -1))
    return datastores, {h.findtext("NAME"): h.findtext("TEMPLATE/REPLICA_STORAGE_IP") for h in hosts.findall("HOST")}


@pytest.fixture(scope="module")
def ds():
    ids = datastore_ids()
    return {"system": ids["onestor_system_100"], "plain": ids["onestor_system_plain"], "image": ids["onestor_images"]}


def make_image(ds, mib, name=None):
    """A new image with ``mib`` MiB of random data followed by a hole, on the front-end."""
    name = name or "img-" + uuid.uuid4().hex[:10]
    path = "/var/lib/one/datastores/%d/%s" % (ds["image"], name)
    ok(as_oneadmin(FE, "mkdir -p %s && head -c %dM /dev/urandom > %s && truncate -s %dM %s"
                   % (os.path.dirname(path), mib, path, mib * 2, path)))
    return path


def vm_disk(ds, vmid, key="system"):
    return "/var/lib/one/datastores/%d/%d/disk.0" % (ds[key], vmid)


def clone(ds, src, host, vmid, key="system", actions=ACTIONS):
    dst = vm_disk(ds, vmid, key)
    return as_oneadmin(FE, "%s/clone ost-fe:%s %s:%s %d %d" % (actions, src, host, dst, vmid, ds[key]))


def cache_of(src, top=CACHE):
    return "%s/%s/%s" % (top, os.path.basename(os.path.dirname(src)), os.path.basename(src))


def h2_address():
    return ok(FE.run("getent hosts ost-h2")).stdout.split()[0]


def tx_bytes():
    return int(ok(FE.run("cat /sys/class/net/eth0/statistics/tx_bytes")).stdout)


def leftovers(node, directory):
    out = node.run("find %s -name '.*tmcopy-*' -o -name '.*tmmv-*' -o -name '.sum-*'", directory)
    return out.stdout.split()


# --------------------------------------------------------------------------- mesh

@pytest.mark.parametrize("src", MACHINES)
@pytest.mark.parametrize("dst", MACHINES)
def test_ssh_mesh_full_matrix(src, dst):
    out = as_oneadmin(machine(src), "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes %s hostname" % dst)
    assert ok(out).stdout.strip() == dst


@pytest.mark.parametrize("name", MACHINES)
def test_keys_and_known_hosts(name):
    node = machine(name)
    key = node.file("/var/lib/one/.ssh/id_ed25519")
    assert key.exists and key.mode == 0o600 and key.user == "oneadmin"
    known = node.file("/var/lib/one/.ssh/known_hosts").content_string
    for peer in MACHINES:
        host_key = machine(peer).file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
        assert re.search(r"^%s[ ,].*%s" % (re.escape(peer), re.escape(host_key)), known, re.M), peer
    assert "StrictHostKeyChecking" not in node.run("cat /var/lib/one/.ssh/config 2>/dev/null").stdout


# --------------------------------------------------------------------------- role results

def test_driver_oned_conf_and_rc_files():
    assert FE.file(ACTIONS + "/clone").mode == 0o755
    conf = FE.file("/etc/one/oned.conf").content_string
    assert re.search(r'ARGUMENTS = "-t 15 -d [^"]*,onestor"', conf)
    block = re.search(r'TM_MAD_CONF = \[\s*NAME = "onestor",(.*?)\]', conf, re.S).group(1)
    for pair in ('LN_TARGET = "SYSTEM"', 'CLONE_TARGET = "SYSTEM"', 'SHARED = "NO"', 'DS_MIGRATE = "YES"',
                 'DRIVER = "raw"', 'ALLOW_ORPHANS = "YES"'):
        assert pair in block
    assert re.search(r"^REPLICA_CACHE_LAYOUT=['\"]?own['\"]?$", FE.file(ACTIONS + "/onestorrc").content_string, re.M)
    sshrc = FE.file("/var/lib/one/remotes/etc/tm/ssh/sshrc").content_string
    assert "REPLICA_COPY_LOCK_TIMEOUT=600" in sshrc and "REPLICA_MAX_USED_PERC=90" in sshrc
    dsconf = FE.file("/var/lib/one/remotes/etc/datastore/datastore.conf").content_string
    assert 'SUPPORTED_FS=ext2,ext3,ext4,xfs' in dsconf.replace('"', "")
    assert re.search(r"^FS_OPTS_ext4=[\"']-b 4096[\"']$", dsconf, re.M)
    assert "DD_BLOCK_SIZE=64k" in FE.file("/var/lib/one/remotes/etc/datastore/fs/fs.conf").content_string


def test_datastores_and_replica_host_attributes(ds):
    system = one_call("one.datastore.info", ds["system"])
    assert "<REPLICA_HOST><![CDATA[ost-rep]]></REPLICA_HOST>" in system or "<REPLICA_HOST>ost-rep</REPLICA_HOST>" in system
    assert re.search(r"<TM_MAD>(<!\[CDATA\[)?onestor", system)
    assert re.search(r"<CLUSTERS><ID>100</ID></CLUSTERS>", system)
    image = one_call("one.datastore.info", ds["image"])
    assert re.search(r"<DS_MAD>(<!\[CDATA\[)?fs", image)
    plain = one_call("one.datastore.info", ds["plain"])
    assert "REPLICA_HOST" not in plain
    # REPLICA_STORAGE_IP on the destination host, where stock 7.4's clone.replica reads it
    assert oned_objects()[1] == {"ost-rep": None, "ost-h2": h2_address()}
    assert REP.file(CACHE).user == "oneadmin"


# --------------------------------------------------------------------------- caching

def test_clone_goes_through_the_replica_once_and_refreshes_when_the_image_changes(ds):
    src = make_image(ds, 16)
    first = clone(ds, src, "ost-h2", 201)
    ok(first)
    assert "Copying %s to the replica ost-rep:%s" % (src, cache_of(src)) in first.stderr
    # the replica pushes to ost-h2's REPLICA_STORAGE_IP
    assert "Copying ost-rep:%s to %s:" % (cache_of(src), h2_address()) in first.stderr
    assert md5(H2, vm_disk(ds, 201)) == md5(REP, cache_of(src)) == md5(FE, src)
    assert int(H2.run("stat -c %%b %s", vm_disk(ds, 201)).stdout) * 512 < 20 * MiB  # holes kept
    inode = ok(REP.run("stat -c %%i %s", cache_of(src))).stdout.strip()

    before = tx_bytes()
    second = ok(clone(ds, src, "ost-h2", 202))
    sent = tx_bytes() - before
    assert "is current" in second.stderr and "to the replica" not in second.stderr
    assert sent < 2 * MiB, "the front-end sent %d bytes for a cached image" % sent
    assert ok(REP.run("stat -c %%i %s", cache_of(src))).stdout.strip() == inode
    assert md5(H2, vm_disk(ds, 202)) == md5(FE, src)

    ok(as_oneadmin(FE, "printf changed | dd of=%s conv=notrunc status=none" % src))
    third = ok(clone(ds, src, "ost-h2", 203))
    assert "Copying %s to the replica" % src in third.stderr
    assert md5(REP, cache_of(src)) == md5(FE, src) == md5(H2, vm_disk(ds, 203))


def test_clone_onto_the_replica_itself_is_local(ds):
    src = make_image(ds, 4)
    res = ok(clone(ds, src, "ost-rep", 211))
    assert "on the replica itself" in res.stderr
    assert md5(REP, vm_disk(ds, 211)) == md5(FE, src)


def test_plain_system_datastore_copies_straight_to_the_host(ds):
    src = make_image(ds, 4)
    res = ok(clone(ds, src, "ost-h2", 221, key="plain"))
    assert "replica" not in res.stderr
    assert not REP.file(cache_of(src)).exists
    assert md5(H2, vm_disk(ds, 221, "plain")) == md5(FE, src)


def test_four_concurrent_clones_make_one_replica_transfer(ds):
    src = make_image(ds, 32)
    script = ["set -u", "cd /tmp"]
    for n, host in enumerate(("ost-h2", "ost-h2", "ost-rep", "ost-rep")):
        vmid = 231 + n
        script.append("( %s/clone ost-fe:%s %s:%s %d %d > /tmp/conc-%d.log 2>&1; echo $? > /tmp/conc-%d.rc ) &"
                      % (ACTIONS, src, host, vm_disk(ds, vmid), vmid, ds["system"], vmid, vmid))
    script.append("wait")
    ok(as_oneadmin(FE, "\n".join(script)))
    logs = [FE.file("/tmp/conc-%d.log" % (231 + n)).content_string for n in range(4)]
    rcs = [FE.file("/tmp/conc-%d.rc" % (231 + n)).content_string.strip() for n in range(4)]
    assert rcs == ["0"] * 4, logs
    assert sum("Copying %s to the replica" % src in log for log in logs) == 1, logs
    want = md5(FE, src)
    for n, node in enumerate((H2, H2, REP, REP)):
        assert md5(node, vm_disk(ds, 231 + n)) == want
    assert leftovers(REP, CACHE) == []
    for node in (H2, REP):
        assert leftovers(node, "/var/lib/one/datastores/%d" % ds["system"]) == []


# --------------------------------------------------------------------------- eviction

def private_driver(path, settings):
    """A copy of the installed driver with its own rc settings (later assignments win)."""
    lines = "\n".join("%s=%s" % (k, shlex.quote(str(v))) for k, v in settings.items())
    ok(as_oneadmin(FE, "rm -rf %s && cp -a %s %s && printf '%%s\\n' %s >> %s/onestorrc"
                   % (path, ACTIONS, path, shlex.quote(lines), path)))
    return path


def test_least_recently_used_image_is_evicted(ds):
    driver = private_driver(EVICT, {"REPLICA_MAX_SIZE_MB": 20, "REPLICA_CACHE_DIR": EVICT_CACHE})
    a, b, c = (make_image(ds, 8) for _index in range(3))
    ok(clone(ds, a, "ost-h2", 241, actions=driver))
    time.sleep(1.1)
    ok(clone(ds, b, "ost-h2", 242, actions=driver))
    time.sleep(1.1)
    ok(clone(ds, a, "ost-h2", 243, actions=driver))  # a used again: b is now the least recently used
    res = ok(clone(ds, c, "ost-h2", 244, actions=driver))
    assert "Evicted %s" % cache_of(b, EVICT_CACHE) in res.stderr
    assert not REP.file(cache_of(b, EVICT_CACHE)).exists
    assert REP.file(cache_of(a, EVICT_CACHE)).exists and REP.file(cache_of(c, EVICT_CACHE)).exists
    assert md5(H2, vm_disk(ds, 244)) == md5(FE, c)


def test_stock_cache_layout_mirrors_the_image_path(ds):
    """REPLICA_CACHE_LAYOUT=stock over real ssh: the replica keeps the image at its front-end path with .md5sum and
    the directory's .monitor marker, as stock 7.4's clone.replica does; the second clone finds it current."""
    driver = private_driver(STOCK, {"REPLICA_CACHE_LAYOUT": "stock"})
    src = make_image(ds, 4)
    first = ok(clone(ds, src, "ost-h2", 261, actions=driver))
    assert "Copying %s to the replica ost-rep:%s" % (src, src) in first.stderr
    assert md5(REP, src) == md5(FE, src) == md5(H2, vm_disk(ds, 261))
    assert ok(REP.run("cat %s.md5sum", src)).stdout.strip() == md5(FE, src)
    assert ok(REP.run("cat %s/.monitor", os.path.dirname(src))).stdout.strip() == "replica"
    second = ok(clone(ds, src, "ost-h2", 262, actions=driver))
    assert "is current" in second.stderr and "to the replica" not in second.stderr
    ok(REP.run("rm -rf %s", os.path.dirname(src)))


# --------------------------------------------------------------------------- faults

SLOW_SSH = """#!/bin/sh
# Test-only slow link: real ssh, with its stdin throttled to about 2.5 MB/s.
python3 -c '
import sys, time
r, w = sys.stdin.buffer, sys.stdout.buffer
while True:
    b = r.read(131072)
    if not b:
        break
    w.write(b)
    w.flush()
    time.sleep(0.05)
' | exec ssh "$@"
"""


@pytest.fixture
def fault_driver():
    yield private_driver(FAULT, {"REPLICA_CACHE_DIR": FAULT_CACHE, "REPLICA_COPY_LOCK_TIMEOUT": 1,
                                 "LOCK_DIR": FAULT + "-locks"})
    ok(REP.run("systemctl start ssh"))


@pytest.fixture
def slow_driver(fault_driver):
    """The fault driver whose front-end ssh goes through a throttled pipe (the copy takes seconds)."""
    ok(as_oneadmin(FE, "cat > %s/slowssh <<'EOF'\n%sEOF\nchmod 0755 %s/slowssh && printf 'SSH=%s/slowssh\\n' >> %s/onestorrc"
                   % (FAULT, SLOW_SSH, FAULT, FAULT, FAULT)))
    return fault_driver


def test_replica_sshd_down_fails_clearly_without_partial_files(ds, fault_driver):
    src = make_image(ds, 4)
    ok(REP.run("systemctl stop ssh"))
    res = clone(ds, src, "ost-h2", 251, actions=fault_driver)
    assert res.rc != 0
    assert "ost-rep" in res.stderr and "Connection refused" in res.stderr, res.stderr
    assert not REP.file(cache_of(src, FAULT_CACHE)).exists
    assert leftovers(REP, FAULT_CACHE) == []
    assert not H2.file(vm_disk(ds, 251)).exists


def test_sshd_killed_mid_copy_fails_clearly_without_partial_files(ds, slow_driver):
    fault_driver = slow_driver
    src = make_image(ds, 24)
    ok(as_oneadmin(FE, "rm -f /tmp/mid.rc; setsid -f bash -c '%s/clone ost-fe:%s ost-h2:%s 252 %d > /tmp/mid.log 2>&1;"
                   " echo $? > /tmp/mid.rc' < /dev/null > /dev/null 2>&1"
                   % (fault_driver, src, vm_disk(ds, 252), ds["system"])))
    pattern = "%s/.%s.tmcopy-*" % (os.path.dirname(cache_of(src, FAULT_CACHE)), os.path.basename(src))
    for _attempt in range(100):
        if REP.run("ls %s" % pattern).rc == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the copy to the replica never started: %s" % FE.run("cat /tmp/mid.log").stdout)
    # sshd goes away: the daemon and every session it serves
    ok(REP.run("systemctl stop ssh"))
    pids = REP.run("pgrep -f '^sshd: oneadmin'").stdout.split()
    assert pids
    REP.run("kill %s" % " ".join(pids))
    for _attempt in range(200):
        if FE.file("/tmp/mid.rc").exists:
            break
        time.sleep(0.1)
    log = FE.file("/tmp/mid.log").content_string
    assert FE.file("/tmp/mid.rc").content_string.strip() != "0", log
    assert "Error copying %s to the replica ost-rep" % src in log
    time.sleep(1)
    assert not REP.file(cache_of(src, FAULT_CACHE)).exists
    assert leftovers(REP, FAULT_CACHE) == []
    assert not H2.file(vm_disk(ds, 252)).exists


def test_lock_timeout_gives_a_clear_error(ds, fault_driver):
    src = make_image(ds, 2)
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", "ost-rep:%s" % src)[-170:]
    lock = "%s-locks/onestor-%s.lock" % (FAULT, key)
    ok(as_oneadmin(FE, "mkdir -p %s-locks; setsid -f flock" % FAULT + " -x %s sleep 8 < /dev/null > /dev/null 2>&1; sleep 0.5" % lock))
    res = clone(ds, src, "ost-h2", 253, actions=fault_driver)
    assert res.rc != 0
    assert "Timeout after 1s (REPLICA_COPY_LOCK_TIMEOUT) waiting for the replica copy lock of %s on ost-rep" % src \
        in res.stderr
    assert not H2.file(vm_disk(ds, 253)).exists


# --------------------------------------------------------------------------- negative cases

WATCHED = {
    "ost-fe": ["/etc/one/oned.conf", "/var/lib/one/remotes/etc/tm/ssh/sshrc",
               "/var/lib/one/.ssh/known_hosts", "/var/lib/one/.ssh/authorized_keys", ACTIONS + "/onestorrc"],
    "ost-rep": ["/var/lib/one/.ssh/known_hosts", "/var/lib/one/.ssh/authorized_keys"],
    "ost-h2": ["/var/lib/one/.ssh/known_hosts", "/var/lib/one/.ssh/authorized_keys"],
}


def snapshot():
    files = {(name, path): machine(name).file(path).sha256sum for name, paths in WATCHED.items() for path in paths}
    return files, oned_objects()


def run_role(clusters):
    inventory = {
        "all": {
            "vars": {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3",
                     "onestor_replica_oned_service": "opennebula", "onestor_replica_clusters": clusters},
            "children": {
                "frontend": {"hosts": {"ost-fe": {}}},
                "hosts": {"hosts": {"ost-rep": {}, "ost-h2": {}},
                          "vars": {"onestor_replica_cluster_id": 100}},
                "onestor_replica": {"children": {"frontend": {}, "hosts": {}}},
            },
        }
    }
    playbook = ("- hosts: onestor_replica\n  gather_facts: false\n  roles:\n"
                "    - role: nebula.storage.onestor_replica\n")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "inventory.json"), "w") as handle:
            json.dump(inventory, handle)
        with open(os.path.join(tmp, "play.yml"), "w") as handle:
            handle.write(playbook)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        return subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i",
                               os.path.join(tmp, "inventory.json"), os.path.join(tmp, "play.yml")],
                              capture_output=True, text=True, env=env, check=False, timeout=300)


@pytest.mark.parametrize("clusters, message", [
    ([{"cluster_id": 100, "replica_host": "ost-rep"}, {"cluster_id": 100, "replica_host": "ost-h2"}],
     "only one replica host per cluster; cluster(s) 100"),
    ([{"cluster_id": 200, "replica_host": "ost-h2"}],
     "the replica host ost-h2 of cluster 200 is not a host of that cluster (its onestor_replica_cluster_id is 100)"),
    ([{"cluster_id": 100, "replica_host": "ost-fe"}],
     "the replica host ost-fe of cluster 100 is not a host of that cluster (not in the hosts group)"),
    ([{"cluster_id": 100, "replica_host": "ost-rep", "storage_ip": "198.18.2.250"}],
     "onestor_replica_clusters[].storage_ip is no longer used (cluster(s) 100)"),
], ids=["two-replicas-in-one-cluster", "replica-of-another-cluster", "replica-not-a-host", "removed-storage-ip"])
def test_bad_replica_layout_fails_and_changes_nothing(clusters, message):
    before = snapshot()
    result = run_role(clusters)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert message in output, output
    assert snapshot() == before
