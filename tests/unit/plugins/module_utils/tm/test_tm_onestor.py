"""The onestor (ssh + replica cache) driver in-process; host commands go through the fake ssh TEST DOUBLE.

The fake ssh runs every "remote" command locally, so the front-end, the
replica and the hypervisors share this machine's filesystem; which host was
reached is read from the double's log. Real ssh between machines is tested in
the lab (extensions/molecule/onestor_replica).
"""
from __future__ import annotations

import os
import filecmp
import io
import json
import threading
import time

import pytest

from ansible_collections.nebula.storage.plugins.module_utils.tm import registry
from ansible_collections.nebula.storage.plugins.module_utils.tm.common import Context, flock
from ansible_collections.nebula.storage.plugins.module_utils.tm.drivers import onestor
from tm_helpers import Result, allocated, make_sparse, ssh_hosts

MiB = 1 << 20


@pytest.fixture
def ds(tmp_path):
    root = tmp_path / "datastores"
    (root / "1").mkdir(parents=True)
    (root / "100").mkdir()
    make_sparse(str(root / "1" / "img-a"), 16 * MiB, data_at=(0, 8 * MiB))
    make_sparse(str(root / "1" / "img-b"), 4 * MiB, data_at=(0, 2 * MiB))
    make_sparse(str(root / "1" / "img-c"), 4 * MiB, data_at=(0, 2 * MiB))
    return root


@pytest.fixture
def tm(rc, tmp_path):
    base = dict(rc)
    base.update({"ONE_LOOKUP": "no", "DS_100_REPLICA_HOST": "replica1", "TUNING_RC": str(tmp_path / "sshrc"),
                 "REPLICA_CACHE_DIR": str(tmp_path / "cache")})

    def run(action, *args, **overrides):
        settings = dict(base)
        settings.update(overrides)
        err = io.StringIO()
        ctx = Context(action, settings, stderr=err)
        code = registry.run_action(ctx, registry.load_driver("onestor").ACTIONS[action], list(args))
        return Result(code, err.getvalue())

    return run


def cache_files(tmp_path):
    top = tmp_path / "cache"
    if not top.exists():
        return []
    return sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file())


def test_driver_contract():
    driver = registry.load_driver("onestor")
    for action in ("clone", "ln", "mv", "mvds", "cpds", "delete", "context", "mkimage", "mkswap", "resize",
                   "premigrate", "postmigrate", "snap_create", "snap_delete", "snap_revert", "monitor", "monitor_ds"):
        assert callable(driver.ACTIONS[action])
    assert "REPLICA_CACHE_DIR" in dict(driver.DEFAULT_RC)


def test_clone_goes_through_the_replica_and_keeps_holes(tm, ds, tmp_path, fake_ssh):
    src, dst = ds / "1" / "img-a", ds / "100" / "7" / "disk.0"
    res = tm("clone", "fe:%s" % src, "host2:%s" % dst, "7", "100")
    assert res.rc == 0, res
    assert filecmp.cmp(src, dst, shallow=False)
    assert allocated(dst) <= allocated(src) * 1.01
    assert cache_files(tmp_path) == ["1/img-a", "1/img-a.sum"]
    assert allocated(tmp_path / "cache" / "1" / "img-a") <= allocated(src) * 1.01
    hosts = ssh_hosts(fake_ssh)
    assert "replica1" in hosts and "host2" in hosts
    assert "Copying %s to the replica replica1:" % src in res.err


def test_second_clone_reuses_the_replica_copy_and_the_cached_checksum(tm, ds, tmp_path):
    src = ds / "1" / "img-a"
    assert tm("clone", "fe:%s" % src, "host2:%s" % (ds / "100" / "7" / "disk.0"), "7", "100").rc == 0
    cached = tmp_path / "cache" / "1" / "img-a"
    inode = cached.stat().st_ino
    sums = json.loads((ds / "1" / ".img-a.onestor-sum").read_text())
    res = tm("clone", "fe:%s" % src, "host3:%s" % (ds / "100" / "8" / "disk.0"), "8", "100")
    assert res.rc == 0, res
    assert "is current" in res.err and "Copying %s to the replica" % src not in res.err
    assert cached.stat().st_ino == inode
    assert json.loads((ds / "1" / ".img-a.onestor-sum").read_text()) == sums
    assert filecmp.cmp(src, ds / "100" / "8" / "disk.0", shallow=False)


def test_changed_image_refreshes_the_replica(tm, ds, tmp_path):
    src = ds / "1" / "img-b"
    assert tm("clone", "fe:%s" % src, "host2:%s" % (ds / "100" / "7" / "disk.0"), "7", "100").rc == 0
    with open(src, "r+b") as handle:
        handle.write(b"changed")
    res = tm("clone", "fe:%s" % src, "host2:%s" % (ds / "100" / "9" / "disk.0"), "9", "100")
    assert res.rc == 0, res
    assert "Copying %s to the replica" % src in res.err
    assert filecmp.cmp(src, tmp_path / "cache" / "1" / "img-b", shallow=False)
    assert (ds / "100" / "9" / "disk.0").read_bytes()[:7] == b"changed"


def test_without_replica_host_it_is_a_plain_copy(tm, ds, tmp_path, fake_ssh):
    src, dst = ds / "1" / "img-b", ds / "0" / "3" / "disk.0"
    res = tm("clone", "fe:%s" % src, "host2:%s" % dst, "3", "0")
    assert res.rc == 0, res
    assert filecmp.cmp(src, dst, shallow=False)
    assert cache_files(tmp_path) == []
    assert ssh_hosts(fake_ssh) == ["host2"] * ssh_hosts(fake_ssh).count("host2")


def test_replica_is_the_hypervisor_copies_locally_there(tm, ds, tmp_path, fake_ssh):
    src, dst = ds / "1" / "img-b", ds / "100" / "4" / "disk.0"
    res = tm("clone", "fe:%s" % src, "replica1:%s" % dst, "4", "100")
    assert res.rc == 0, res
    assert "on the replica itself" in res.err
    assert filecmp.cmp(src, dst, shallow=False)


def test_lru_eviction_with_a_small_max_size(tm, ds, tmp_path):
    for n, name in enumerate(("img-b", "img-c")):
        assert tm("clone", "fe:%s" % (ds / "1" / name), "host2:%s" % (ds / "100" / str(n) / "disk.0"), str(n), "100",
                  REPLICA_MAX_SIZE_MB="5").rc == 0
        time.sleep(0.05)
    assert cache_files(tmp_path) == ["1/img-b", "1/img-b.sum", "1/img-c", "1/img-c.sum"]
    # img-b used again: img-c becomes the least recently used
    assert tm("clone", "fe:%s" % (ds / "1" / "img-b"), "host2:%s" % (ds / "100" / "5" / "disk.0"), "5", "100",
              REPLICA_MAX_SIZE_MB="5").rc == 0
    make_sparse(str(ds / "1" / "img-d"), 2 * MiB, data_at=(0, MiB))
    res = tm("clone", "fe:%s" % (ds / "1" / "img-d"), "host2:%s" % (ds / "100" / "6" / "disk.0"), "6", "100",
             REPLICA_MAX_SIZE_MB="5")
    assert res.rc == 0, res
    assert "Evicted %s" % (tmp_path / "cache" / "1" / "img-c") in res.err
    assert cache_files(tmp_path) == ["1/img-b", "1/img-b.sum", "1/img-d", "1/img-d.sum"]


def test_tuning_keys_come_from_the_sshrc(tm, ds, tmp_path):
    (tmp_path / "sshrc").write_text('REPLICA_MAX_SIZE_MB="1"\nREPLICA_COPY_LOCK_TIMEOUT=600\n')
    res = tm("clone", "fe:%s" % (ds / "1" / "img-a"), "host2:%s" % (ds / "100" / "1" / "disk.0"), "1", "100")
    assert res.rc == 0, res
    assert "does not fit in the replica cache" in res.err
    assert cache_files(tmp_path) == []
    assert filecmp.cmp(ds / "1" / "img-a", ds / "100" / "1" / "disk.0", shallow=False)


def test_lock_timeout_gives_a_clear_error(tm, ds, tmp_path, rc):
    src = ds / "1" / "img-a"
    lock = onestor.copy_lock_path(Context("clone", rc), "replica1", str(src))
    assert lock.startswith(rc["LOCK_DIR"])
    with flock(lock, timeout=1):
        res = tm("clone", "fe:%s" % src, "host2:%s" % (ds / "100" / "7" / "disk.0"), "7", "100",
                 REPLICA_COPY_LOCK_TIMEOUT="1")
    assert res.rc != 0
    assert "Timeout after 1s (REPLICA_COPY_LOCK_TIMEOUT) waiting for the replica copy lock" in res.err
    assert not (ds / "100" / "7" / "disk.0").exists()


def test_concurrent_clones_copy_to_the_replica_once(tm, ds, tmp_path):
    src = ds / "1" / "img-a"
    results = {}

    def one(n):
        results[n] = tm("clone", "fe:%s" % src, "host%d:%s" % (n, ds / "100" / str(n) / "disk.0"), str(n), "100")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.rc == 0 for r in results.values()), results
    assert sum("Copying %s to the replica" % src in r.err for r in results.values()) == 1
    for n in range(4):
        assert filecmp.cmp(src, ds / "100" / str(n) / "disk.0", shallow=False)
    assert not list((tmp_path / "cache").rglob(".*"))


def test_replica_unreachable_fails_clearly_and_leaves_no_file(tm, ds, tmp_path):
    res = tm("clone", "fe:%s" % (ds / "1" / "img-a"), "host2:%s" % (ds / "100" / "7" / "disk.0"), "7", "100",
             SSH="false")
    assert res.rc != 0
    # as stock ssh/clone, the host's VM directory and .monitor come first: the first host that fails is named
    assert "host2" in res.err
    assert cache_files(tmp_path) == []
    assert not (ds / "100" / "7").exists() or not list((ds / "100" / "7").iterdir())


def test_bad_arguments(tm, ds):
    assert "expected arguments" in tm("clone", "fe:/x").err
    res = tm("clone", "fe:%s" % (ds / "1" / "img-a"), "host2:%s" % (ds / "100" / "1" / "disk.0"), "1", "x")
    assert res.rc != 0 and "datastore id 'x' is not a number" in res.err
    res = tm("clone", "fe:%s" % (ds / "1" / "img-a"), "bad;host:/x/y/disk.0", "1", "100")
    assert res.rc != 0 and "Invalid host" in res.err


def test_mv_delete_snapshots_and_mkimage_on_a_host(tm, ds, tmp_path):
    vm = ds / "100" / "3"
    assert tm("clone", "fe:%s" % (ds / "1" / "img-b"), "host2:%s/disk.0" % vm, "3", "0").rc == 0
    assert tm("snap_create", "host2:%s/disk.0" % vm, "0", "3").rc == 0
    with open(vm / "disk.0", "r+b") as handle:
        handle.write(b"after")
    assert tm("snap_revert", "host2:%s/disk.0" % vm, "0", "3").rc == 0
    assert filecmp.cmp(ds / "1" / "img-b", vm / "disk.0", shallow=False)
    assert tm("snap_delete", "host2:%s/disk.0" % vm, "0", "3").rc == 0
    assert not (vm / "disk.0.snap" / "0").exists()
    assert tm("mkimage", "8", "raw", "host2:%s/disk.1" % vm, "3", "100").rc == 0
    assert (vm / "disk.1").stat().st_size == 8 * MiB
    dst = ds / "101" / "33"   # another directory: the same one seen from two hosts does not move (stock ssh/mv)
    assert tm("mv", "host2:%s" % vm, "host3:%s" % dst, "3", "100").rc == 0
    assert (dst / "disk.1").exists() and not vm.exists()
    assert tm("delete", "host3:%s" % dst, "33", "101").rc == 0
    assert not dst.exists()


def test_live_migration_leaves_the_copy_to_kvm(tm, ds):
    """Stock ssh/premigrate removes the destination's stale directory (KVM's migrate copies the disks),
    postmigrate removes the source's, failmigrate does nothing."""
    vm = ds / "100" / "12"
    vm.mkdir()
    make_sparse(str(vm / "disk.0"), 4 * MiB, data_at=(MiB,))
    assert tm("premigrate", "host3", "host3", str(vm), "12", "100").rc == 0
    assert (vm / "disk.0").exists()   # same host: nothing to do
    assert tm("failmigrate", "host3", "host2", str(vm), "12", "100").rc == 0
    assert (vm / "disk.0").exists()
    assert tm("premigrate", "host3", "host2", str(vm), "12", "100").rc == 0
    assert not vm.exists()            # the destination (sharing this filesystem here) had a stale copy
    vm.mkdir()
    assert tm("postmigrate", "host2", "host2", str(vm), "12", "100").rc == 0
    assert vm.exists()
    assert tm("postmigrate", "host2", "host3", str(vm), "12", "100").rc == 0
    assert not vm.exists()


def test_mv_of_a_disk_and_of_one_storage_under_two_names_do_nothing(tm, ds):
    """Stock ssh/mv: disks move with the VM directory; a directory both hosts see is not moved (or deleted)."""
    vm = ds / "100" / "4"
    vm.mkdir()
    (vm / "disk.0").write_text("data")
    assert tm("mv", "host2:%s/disk.0" % vm, "host3:%s/disk.0" % vm, "4", "1").rc == 0
    res = tm("mv", "host2:%s" % vm, "host3:%s" % vm, "4", "100")
    assert res.rc == 0 and "they are the same path" in res.err, res
    assert (vm / "disk.0").read_text() == "data"
    assert [p.name for p in vm.parent.iterdir() if p.name.startswith("tmp")] == []


FAKE_ONE_CLI = """#!/bin/sh
# Recording test double of OpenNebula's CLI: prints the XML the test wrote for "show -x ID".
echo "$(basename "$0") $*" >>"%(dir)s/calls.log"
cat "%(dir)s/$(basename "$0")-$3.xml"
"""


def test_replica_host_comes_from_the_vms_system_datastore(tm, ds, tmp_path, monkeypatch):
    """As stock ssh/clone: REPLICA_HOST of the VM's system datastore (last history DS_ID), not of DSID (the image ds)."""
    fake = tmp_path / "one-cli"
    fake.mkdir()
    for name in ("onevm", "onedatastore"):
        (fake / name).write_text(FAKE_ONE_CLI % {"dir": fake})
        (fake / name).chmod(0o755)
    (fake / "onevm-7.xml").write_text("<VM><ID>7</ID><LCM_STATE>3</LCM_STATE><TEMPLATE/><HISTORY_RECORDS><HISTORY>"
                                      "<DS_ID>100</DS_ID></HISTORY></HISTORY_RECORDS></VM>")
    (fake / "onedatastore-100.xml").write_text("<DATASTORE><ID>100</ID><TEMPLATE><REPLICA_HOST>replica1</REPLICA_HOST>"
                                               "</TEMPLATE></DATASTORE>")
    (fake / "onedatastore-1.xml").write_text("<DATASTORE><ID>1</ID><TEMPLATE/></DATASTORE>")
    monkeypatch.setenv("PATH", "%s:%s" % (fake, os.environ["PATH"]))
    dst = ds / "100" / "7" / "disk.0"
    res = tm("clone", "fe:%s" % (ds / "1" / "img-b"), "host2:%s" % dst, "7", "1",
             ONE_LOOKUP="yes", DS_100_REPLICA_HOST="")
    assert res.rc == 0, res
    assert "to the replica" in res.err, res
    assert filecmp.cmp(ds / "1" / "img-b", dst, shallow=False)
    assert "onedatastore show -x 100" in (fake / "calls.log").read_text()


# --------------------------------------------------------------------------- live snapshots (virsh blockcopy)

FAKE_VIRSH = """#!/bin/sh
# Recording TEST DOUBLE of virsh: logs its argv; the first $VIRSH_FAILS calls fail with $VIRSH_ERROR.
printf '%s\\n' "$*" >>"$VIRSH_LOG"
n=$(wc -l <"$VIRSH_LOG")
if [ "$n" -le "${VIRSH_FAILS:-0}" ]; then echo "error: $VIRSH_ERROR" >&2; exit 1; fi
exit 0
"""


@pytest.fixture
def virsh(tmp_path, monkeypatch):
    tools = tmp_path / "virsh-bin"
    tools.mkdir()
    (tools / "virsh").write_text(FAKE_VIRSH)
    (tools / "virsh").chmod(0o755)
    (tools / "onevm").write_text("#!/bin/sh\necho '<VM><ID>5</ID><DEPLOY_ID>one-5</DEPLOY_ID></VM>'\n")
    (tools / "onevm").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tools, os.environ["PATH"]))
    log = tmp_path / "virsh.log"
    log.touch()
    monkeypatch.setenv("VIRSH_LOG", str(log))
    return log


def test_live_snapshot_is_a_blockcopy_retried_while_another_block_job_runs(tm, ds, virsh, monkeypatch):
    vm_dir = ds / "0" / "5"
    vm_dir.mkdir(parents=True)
    make_sparse(str(vm_dir / "disk.0"), 4 * MiB, data_at=(0,))
    monkeypatch.setenv("VIRSH_FAILS", "1")
    monkeypatch.setenv("VIRSH_ERROR", "block copy still active: disk 'vda' already in active block job")
    res = tm("snap_create_live", "node1:%s/disk.0" % vm_dir, "0", "5", ONE_LOOKUP="yes")
    assert res.rc == 0, res
    call = "-q -c qemu:///system blockcopy one-5 --path %s/disk.0 --dest %s/disk.0.snap/0 --wait --finish" % (
        vm_dir, vm_dir)
    assert virsh.read_text().splitlines() == [call, call]


def test_live_snapshot_fails_at_once_on_another_libvirt_error(tm, ds, virsh, monkeypatch):
    vm_dir = ds / "0" / "5"
    vm_dir.mkdir(parents=True)
    make_sparse(str(vm_dir / "disk.0"), 4 * MiB, data_at=(0,))
    monkeypatch.setenv("VIRSH_FAILS", "9")
    monkeypatch.setenv("VIRSH_ERROR", "failed to get domain 'one-5'")
    res = tm("snap_create_live", "node1:%s/disk.0" % vm_dir, "0", "5", ONE_LOOKUP="yes")
    assert res.rc != 0 and "failed to get domain" in res.err
    assert len(virsh.read_text().splitlines()) == 1


VIA_SSH = """#!/bin/sh
# TEST DOUBLE around fake_ssh: logs "FROM>TO" for every ssh, FROM being the host whose shell ran it ("fe" for the
# front-end), then runs the command as fake_ssh does.
to=""; prev=""
for a in "$@"; do [ "$prev" = "--" ] && to=$a; prev=$a; done
printf '%%s>%%s\\n' "${VIA:-fe}" "$to" >> "%(log)s"
printf '%%s>%%s %%s\\n' "${VIA:-fe}" "$to" "$*" >> "%(log)s.args"
# CUT=HOST: an ssh that HOST runs passes on only the first 64 KiB of its input (a link cut mid-stream)
if [ -n "$CUT" ] && [ "${VIA:-fe}" = "$CUT" ]; then
  head -c 65536 | VIA=$to "%(ssh)s" "$@"
  exit $?
fi
VIA=$to exec "%(ssh)s" "$@"
"""


@pytest.fixture
def via_ssh(tmp_path, fake_ssh):
    path = tmp_path / "tools" / "via_ssh"
    log = tmp_path / "tools" / "via.log"
    path.write_text(VIA_SSH % {"log": log, "ssh": fake_ssh})
    path.chmod(0o755)
    return path, log


def _vm_with_disks(ds, vmid):
    vm = ds / "100" / str(vmid)
    vm.mkdir()
    make_sparse(str(vm / "disk.0"), 4 * MiB, data_at=(MiB,))
    (vm / "disk.1").write_bytes(b"volatile")
    return vm


def test_mv_between_hosts_goes_host_to_host(tm, ds, via_ssh):
    """Issue 13 item 12: the VM directory streams from the source host straight to the destination host over
    the hosts' own ssh (stock ssh/mv), not through the front-end; HOST_TO_HOST_COPY=no relays as before."""
    ssh, log = via_ssh
    vm = _vm_with_disks(ds, 41)
    dst = ds / "101" / "41"
    assert tm("mv", "host2:%s" % vm, "host3:%s" % dst, "41", "100", SSH=str(ssh)).rc == 0
    assert (dst / "disk.1").read_bytes() == b"volatile" and allocated(str(dst / "disk.0")) < 2 * MiB
    assert not vm.exists()
    # .monitor read on host2, made on host3; the stream host2 -> host3; the source deleted on host2
    assert log.read_text().split() == ["fe>host2", "fe>host3", "fe>host2", "host2>host3", "fe>host2"]
    log.write_text("")
    assert tm("mv", "host3:%s" % dst, "host2:%s" % vm, "41", "100", SSH=str(ssh), HOST_TO_HOST_COPY="no").rc == 0
    # the same, with the stream relayed: sender and receiver both started by the front-end (at once: any order)
    assert sorted(log.read_text().split()) == ["fe>host2", "fe>host2", "fe>host3", "fe>host3", "fe>host3"]
    assert (vm / "disk.1").read_bytes() == b"volatile" and not dst.exists()


def test_mv_host_to_host_that_fails_leaves_both_sides_as_they_were(tm, ds, via_ssh):
    """A stream cut between the two hosts carries no end line: the destination host's receiver keeps its old
    directory, the action fails, and the source is not deleted."""
    ssh, log = via_ssh
    vm = _vm_with_disks(ds, 42)
    dst = ds / "101" / "42"
    dst.mkdir(parents=True)
    (dst / "old").write_text("keep")
    res = tm("mv", "host2:%s" % vm, "host3:%s" % dst, "42", "100", SSH="env CUT=host2 %s" % ssh)
    assert res.rc != 0 and "ended early" in res.err, res
    assert "host2>host3" in log.read_text().split()
    assert sorted(os.listdir(dst)) == ["old"] and (vm / "disk.1").exists()


def test_the_replica_pushes_to_the_hosts_storage_address(tm, ds, tmp_path, via_ssh):
    """Issue 13 item 16, as stock 7.4 ssh/clone.replica: REPLICA_STORAGE_IP is the *destination host's*
    attribute, and the replica pushes the image to it with REPLICA_SSH_OPTS; REPLICA_SSH_FE_OPTS only on the
    front-end's copy to the replica."""
    ssh, log = via_ssh
    (tmp_path / "sshrc").write_text('REPLICA_SSH_OPTS="-o Compression=no"\nREPLICA_SSH_FE_OPTS="-o IPQoS=throughput"\n')
    src, dst = ds / "1" / "img-b", ds / "100" / "7" / "disk.0"
    res = tm("clone", "fe:%s" % src, "host2:%s" % dst, "7", "100", SSH=str(ssh),
             HOST_host2_REPLICA_STORAGE_IP="198.18.9.2")
    assert res.rc == 0, res
    assert filecmp.cmp(src, dst, shallow=False)
    assert "Copying %s:%s to 198.18.9.2:%s" % ("replica1", tmp_path / "cache" / "1" / "img-b", dst) in res.err
    hops = log.read_text().split()
    assert "replica1>198.18.9.2" in hops and "fe>host2" in hops and not any(h.startswith("host2>") for h in hops)
    calls = (tmp_path / "tools" / "via.log.args").read_text().splitlines()
    push = [c for c in calls if c.startswith("replica1>198.18.9.2 ")]
    to_replica = [c for c in calls if c.startswith("fe>replica1 ")]
    assert push and all("-o Compression=no" in c and "IPQoS" not in c for c in push), push
    assert to_replica and all("Compression=no" not in c for c in to_replica), to_replica
    assert any("-o IPQoS=throughput" in c for c in to_replica), to_replica
    # without REPLICA_STORAGE_IP the replica reaches the host by its name
    log.write_text("")
    assert tm("clone", "fe:%s" % src, "host3:%s" % (ds / "100" / "8" / "disk.0"), "8", "100", SSH=str(ssh)).rc == 0
    assert "replica1>host3" in log.read_text().split()


def test_a_push_cut_short_leaves_no_disk_on_the_host(tm, ds, tmp_path, via_ssh):
    ssh, _log = via_ssh
    src, dst = ds / "1" / "img-a", ds / "100" / "7" / "disk.0"
    res = tm("clone", "fe:%s" % src, "host2:%s" % dst, "7", "100", SSH="env CUT=replica1 %s" % ssh)
    assert res.rc != 0 and "ended early" in res.err, res
    assert not dst.exists()
    assert sorted(p.name for p in dst.parent.iterdir()) == []  # no temp directory left either


def test_cache_layout_setting_is_checked(tm, ds):
    src, dst = ds / "1" / "img-b", ds / "100" / "7" / "disk.0"
    res = tm("clone", "fe:%s" % src, "host2:%s" % dst, "7", "100", REPLICA_CACHE_LAYOUT="mirror")
    assert res.rc != 0 and "REPLICA_CACHE_LAYOUT='mirror': use own or stock" in res.err, res
    assert not dst.exists()


def test_stock_layout_never_caches_onto_the_front_end_itself(tm, ds, tmp_path):
    """In stock's layout the replica's copy sits at the image's own path: a replica that is this machine would
    hold the image itself (and evict it). It is copied straight to the host instead, the image untouched."""
    src, dst = ds / "1" / "img-b", ds / "100" / "7" / "disk.0"
    before = src.read_bytes()
    res = tm("clone", "fe:%s" % src, "host2:%s" % dst, "7", "100", REPLICA_CACHE_LAYOUT="stock",
             LOCAL_SHORTCUT="yes", DS_100_REPLICA_HOST="localhost")
    assert res.rc == 0, res
    assert "The replica localhost is this machine: the image is not cached" in res.err
    assert filecmp.cmp(src, dst, shallow=False) and src.read_bytes() == before
    # no checksum file, no .monitor marker written into the image datastore
    assert [p.name for p in src.parent.iterdir() if p.name.endswith(".md5sum") or p.name == ".monitor"] == []


# --------------------------------------------------------------------------- recovery snapshots (stock ssh)
# The layouts and the sequences are compared with stock's own scripts in tests/differential/test_recovery_snapshots.py;
# these are the failure paths.

RECOVERY_VIRSH = """#!/bin/sh
# Recording TEST DOUBLE of virsh for the recovery snapshot: the domain runs; logs its argv.
printf '%s\\n' "$*" >>"$VIRSH_LOG"
case " $* " in *" domstate "*) printf 'running\\n\\n' ;; esac
exit 0
"""


@pytest.fixture
def recovery(tmp_path, monkeypatch, ds):
    """VM 5's disk.0 in the recovery layout on this machine, a recording virsh on PATH."""
    tools = tmp_path / "recovery-bin"
    tools.mkdir()
    (tools / "virsh").write_text(RECOVERY_VIRSH)
    (tools / "virsh").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tools, os.environ["PATH"]))
    log = tmp_path / "virsh.log"
    log.touch()
    monkeypatch.setenv("VIRSH_LOG", str(log))
    vm_dir = ds / "0" / "5"
    (vm_dir / "disk.0.snap").mkdir(parents=True)
    make_sparse(str(vm_dir / "disk.0.snap" / "base.1"), 1 * MiB, data_at=(0,))
    (vm_dir / "disk.0").symlink_to("disk.0.snap/base.1")
    return vm_dir, log


def test_recovery_snapshot_is_committed_back_when_the_copy_to_the_replica_fails(tm, tmp_path, recovery):
    vm_dir, log = recovery
    (tmp_path / "not-a-dir").write_text("")
    res = tm("recovery_snap_create_live", "5", "%s/disk.0" % vm_dir, "600", "replica1",
             REPLICA_RECOVERY_SNAPS_DIR=str(tmp_path / "not-a-dir" / "snaps"))
    assert res.rc != 0, res
    calls = log.read_text().splitlines()
    assert any(c.startswith("-c qemu:///system snapshot-create-as one-5 recovery_snap") for c in calls), calls
    # the domain writes to rs_tmp until it is committed: it is, although the copy failed
    assert calls[-1] == ("-c qemu:///system blockcommit one-5 {d}/disk.0.snap/rs_tmp --base {d}/disk.0.snap/base.1 "
                         "--top {d}/disk.0.snap/rs_tmp --active --pivot --wait".format(d=vm_dir)), calls


def test_recovery_snapshot_goes_to_the_replica_and_is_committed(tm, tmp_path, recovery):
    vm_dir, log = recovery
    res = tm("recovery_snap_create_live", "5", "%s/disk.0" % vm_dir, "600", "replica1",
             REPLICA_RECOVERY_SNAPS_DIR=str(tmp_path / "snaps"))
    assert res.rc == 0, res
    assert filecmp.cmp(vm_dir / "disk.0.snap" / "base.1", tmp_path / "snaps" / "5" / "disk.0.snap" / "base.1",
                       shallow=False)
    assert "blockcommit" in log.read_text().splitlines()[-1]
    # younger than FREQ: nothing to do
    log.write_text("")
    res = tm("recovery_snap_create_live", "5", "%s/disk.0" % vm_dir, "600", "replica1",
             REPLICA_RECOVERY_SNAPS_DIR=str(tmp_path / "snaps"))
    assert res.rc == 0 and "snapshot-create-as" not in log.read_text(), res


@pytest.mark.parametrize("args, rc_over, message", [
    (("5", "disk.0", "600", "replica1"), {}, "is not an absolute path to a disk.N"),
    (("5", "/x/../disk.0", "600", "replica1"), {}, "is not an absolute path to a disk.N"),
    (("5", "/x/7/disk.0", "often", "replica1"), {}, "FREQ"),
    (("5", "/x/7/disk.0", "600", "bad host;"), {}, "Invalid host"),
    (("5", "/x/7/disk.0", "600", "replica1"), {"REPLICA_RECOVERY_SNAPS_DIR": "/var/../etc"}, "without '..'"),
])
def test_recovery_snapshot_refuses_bad_input(tm, recovery, args, rc_over, message):
    _vm_dir, log = recovery
    res = tm("recovery_snap_create_live", *args, **rc_over)
    assert res.rc != 0 and message in res.err, res
    assert log.read_text() == ""


def test_delete_keeps_recovery_snapshots_when_the_vm_cannot_be_read(tm, ds, tmp_path, monkeypatch):
    """As stock (its ACTION test fails on an empty value): an unreadable VM never loses its recovery data."""
    snaps = tmp_path / "snaps" / "7"
    snaps.mkdir(parents=True)
    tools = tmp_path / "no-vm"
    tools.mkdir()
    (tools / "onevm").write_text("#!/bin/sh\necho 'no such VM' >&2\nexit 255\n")
    (tools / "onevm").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tools, os.environ["PATH"]))
    (ds / "100" / "7").mkdir()
    res = tm("delete", "host1:%s" % (ds / "100" / "7"), "7", "100", REPLICA_RECOVERY_SNAPS_DIR=str(tmp_path / "snaps"))
    assert res.rc == 0, res
    assert snaps.is_dir() and not (ds / "100" / "7").exists()


@pytest.mark.parametrize("front_end, key", [(False, "REPLICA_SSH_OPTS"), (True, "REPLICA_SSH_FE_OPTS")])
def test_replica_ssh_ctx_adds_the_replica_ssh_options(tmp_path, front_end, key):
    """The copies to and from a replica: SSH_OPTS plus REPLICA_SSH_OPTS (front-end: REPLICA_SSH_FE_OPTS), from the
    driver rc or else TUNING_RC; the action's own context keeps its SSH_OPTS."""
    other = "REPLICA_SSH_OPTS" if front_end else "REPLICA_SSH_FE_OPTS"
    (tmp_path / "sshrc").write_text('%s="-o Rc=1"\n%s="-o Other=1"\n' % (key, other))
    ctx = Context("clone", {"SSH_OPTS": "-o BatchMode=yes", "TUNING_RC": str(tmp_path / "sshrc")})
    sub = onestor.replica_ssh_ctx(ctx, front_end=front_end)
    assert sub.setting("SSH_OPTS") == "-o BatchMode=yes -o Rc=1"
    assert ctx.setting("SSH_OPTS") == "-o BatchMode=yes" and sub.action == "clone"
    ctx.rc[key] = "-o Driver=1"
    assert onestor.replica_ssh_ctx(ctx, front_end=front_end).setting("SSH_OPTS") == "-o BatchMode=yes -o Driver=1"
    bare = Context("clone", {"SSH_OPTS": "-o BatchMode=yes", "TUNING_RC": ""})
    assert onestor.replica_ssh_ctx(bare, front_end=front_end).setting("SSH_OPTS") == "-o BatchMode=yes"
