"""Issue 14 hardening of the TM runtime: signals, locks, the delete guard, renames, user images, the replica pin.

Every test runs real processes (the action in its own Python process where a
signal is involved), real files and real qemu-img; host commands go through
the fake ssh TEST DOUBLE of conftest.py (a local ``sh -c``).
"""
from __future__ import annotations

import io
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ansible_collections.nebula.storage.plugins.module_utils.tm import registry
from ansible_collections.nebula.storage.plugins.module_utils.tm.common import Context, TMError, lock_dir, lock_key
from tests.conftest import ROOT
from tm_helpers import Result, make_sparse

MiB = 1 << 20


@pytest.fixture
def run(rc):
    """``run(driver, action, *args, **rc_overrides) -> Result``, in-process."""

    def go(driver, action, *args, **overrides):
        settings = dict(rc)
        settings.update(overrides)
        err = io.StringIO()
        ctx = Context(action, settings, stderr=err)
        code = registry.run_action(ctx, registry.load_driver(driver).ACTIONS[action], list(args))
        return Result(code, err.getvalue())

    return go


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead; only its parent has not reaped it yet
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- item 7: signals

ACTION = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import tests.conftest
    from ansible_collections.nebula.storage.plugins.module_utils.tm import registry
    sys.exit(registry.main({driver!r}, {action!r}, sys.argv[1:], rc_path={rc_path!r}))
""")

SLOW_SSH = """#!/bin/sh
# TEST DOUBLE: the fake ssh, after writing its pid and sleeping (a slow link).
echo $$ >> {pids}
sleep {delay}
exec {fake} "$@"
"""


def _slow_ssh(tmp_path, fake_ssh, delay):
    pids = tmp_path / "ssh.pids"
    path = tmp_path / "tools" / "slow_ssh"
    path.write_text(SLOW_SSH.format(pids=shlex.quote(str(pids)), delay=delay, fake=shlex.quote(str(fake_ssh))))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path, pids


def _rc_file(tmp_path, settings):
    path = tmp_path / "driver.rc"
    path.write_text("".join("%s=%s\n" % (k, shlex.quote(v)) for k, v in settings.items()))
    return path


@pytest.mark.parametrize("driver,sig", [("nfs_shared", signal.SIGTERM), ("onestor", signal.SIGINT)])
def test_a_signal_stops_the_transfer_of_mv(tmp_path, rc, fake_ssh, sig, driver):
    """Killing ``mv`` between two hosts stops both tar ends: no child survives, no destination appears later."""
    ds = tmp_path / "datastores"
    vm = ds / "0" / "5"
    vm.mkdir(parents=True)
    make_sparse(str(vm / "disk.0"), 8 * MiB, data_at=(0,))
    dst = ds / "0" / "6"
    slow, pids = _slow_ssh(tmp_path, fake_ssh, 3)
    settings = dict(rc, SSH=str(slow), MV_TRANSFER="always", ONE_LOOKUP="no")
    code = ACTION.format(root=str(ROOT), driver=driver, action="mv", rc_path=str(_rc_file(tmp_path, settings)))
    proc = subprocess.Popen([sys.executable, "-c", code, "node1:%s" % vm, "node2:%s" % dst, "5", "0"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and not (pids.exists() and len(pids.read_text().split()) >= 2):
        time.sleep(0.05)
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2, "both ends of the transfer were started"
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert "interrupted by signal %d" % sig in err
    assert not [pid for pid in children if _alive(pid)], "a transfer process outlived the action"
    time.sleep(4)  # longer than the slow link: a surviving transfer would have landed by now
    assert not dst.exists()
    assert not [n for n in os.listdir(dst.parent) if "tmmv" in n]
    assert (vm / "disk.0").exists(), "the source stays when the move is interrupted"


def _tree(tmp_path):
    src = tmp_path / "src" / "7"
    src.mkdir(parents=True)
    (src / "disk.0").write_bytes(os.urandom(3 * MiB))
    (src / "disk.1").write_bytes(os.urandom(2 * MiB))
    old = tmp_path / "dst" / "7"
    old.mkdir(parents=True)
    (old / "deployment.0").write_text("old")
    return src, old


def _send(src):
    from ansible_collections.nebula.storage.plugins.module_utils.tm.actions import SCRIPT_SEND_TREE
    return subprocess.run(["sh", "-c", SCRIPT_SEND_TREE, "sh", str(src.parent), src.name], capture_output=True,
                          check=True).stdout


def _receive(stream, dst, name):
    from ansible_collections.nebula.storage.plugins.module_utils.tm.actions import SCRIPT_RECV_TREE
    return subprocess.run(["sh", "-c", SCRIPT_RECV_TREE, "sh", str(dst), name], input=stream, capture_output=True,
                          check=False)


def test_a_tree_stream_commits_only_after_its_end_line(tmp_path):
    """A tar stream cut between two files unpacks without an error (GNU tar's own rc is 0): the receiver must not
    replace the destination then. It used to: the first disk landed alone and the old directory was gone."""
    src, old = _tree(tmp_path)
    stream = _send(src)
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        second = [m for m in tar.getmembers() if m.isfile()][1]
    cut = stream[:second.offset]  # every byte of the first file, nothing of the second
    assert subprocess.run(["tar", "-b", "2048", "-B", "-tf", "-"], input=cut, capture_output=True,
                          check=False).returncode == 0
    res = _receive(cut, old, src.name)
    assert res.returncode == 1 and b"ended early" in res.stderr, res
    assert sorted(os.listdir(old)) == ["deployment.0"], "the destination stays as it was"
    assert [n for n in os.listdir(old.parent) if "tmmv" in n] == []
    # the whole stream without its end line (the sender's tar failed, or it was stopped before printing it)
    res = _receive(stream[:-len(b"TM-TREE-END\n")], old, src.name)
    assert res.returncode == 1 and sorted(os.listdir(old)) == ["deployment.0"]
    # the whole stream: committed
    res = _receive(stream, old, src.name)
    assert res.returncode == 0, res
    assert sorted(os.listdir(old)) == ["disk.0", "disk.1"]
    assert (old / "disk.1").read_bytes() == (src / "disk.1").read_bytes()


def test_a_failing_sender_sends_no_end_line(tmp_path):
    """tar -c failing (here: a file that vanished) ends the sender before the end line."""
    from ansible_collections.nebula.storage.plugins.module_utils.tm.actions import SCRIPT_SEND_TREE
    src, _old = _tree(tmp_path)
    res = subprocess.run(["sh", "-c", SCRIPT_SEND_TREE, "sh", str(src.parent), "missing"], capture_output=True,
                         check=False)
    assert res.returncode != 0 and not res.stdout.endswith(b"TM-TREE-END\n")


# --------------------------------------------------------------------------- item 10: lock keys

def test_lock_key_is_the_resolved_path_whatever_the_host(tmp_path):
    real = tmp_path / "ds" / "0" / "5"
    real.mkdir(parents=True)
    os.symlink(str(tmp_path / "ds"), str(tmp_path / "link"))
    keys = {lock_key("vm:%s/disk.0" % real), lock_key("localhost:%s/disk.0" % real), lock_key("%s//disk.0" % real),
            lock_key("node1:%s/0/5/../5/disk.0" % (tmp_path / "link")), lock_key("[::1]:%s/disk.0" % real)}
    assert keys == {str(real / "disk.0")}


def test_clone_to_vm_and_localhost_take_one_lock(run, rc, tmp_path):
    """A clone to ``node1:P`` waits for the lock a clone to ``localhost:P`` holds (it used to take another)."""
    ds = tmp_path / "datastores"
    (ds / "1").mkdir(parents=True)
    make_sparse(str(ds / "1" / "img"), MiB, data_at=(0,))
    dst = ds / "0" / "5" / "disk.0"
    ctx = Context("clone", dict(rc))
    from ansible_collections.nebula.storage.plugins.module_utils.tm.common import lock_for
    with lock_for(ctx, "localhost:%s" % dst):
        res = run("nfs_shared", "clone", "fe:%s" % (ds / "1" / "img"), "node1:%s" % dst, "5", "1", LOCK_TIMEOUT="1")
    assert res.rc != 0 and "Could not acquire exclusive lock" in res.err, res
    assert not dst.exists()
    assert run("nfs_shared", "clone", "fe:%s" % (ds / "1" / "img"), "node1:%s" % dst, "5", "1").rc == 0


# --------------------------------------------------------------------------- item 11: lock directory

def test_lock_dir_is_created_private(tmp_path):
    path = tmp_path / "run" / "lock" / "one"
    assert lock_dir(Context("clone", {"LOCK_DIR": str(path)})) == str(path)
    info = os.lstat(path)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()


def test_lock_dir_of_our_user_loses_group_and_world_write(tmp_path):
    path = tmp_path / "one"
    path.mkdir()
    path.chmod(0o777)
    lock_dir(Context("clone", {"LOCK_DIR": str(path)}))
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user needs root")
def test_lock_dir_of_another_user_is_refused(run, rc, tmp_path):
    ds = tmp_path / "datastores"
    (ds / "1").mkdir(parents=True)
    make_sparse(str(ds / "1" / "img"), MiB, data_at=(0,))
    planted = tmp_path / "lock"
    planted.mkdir(mode=0o777)
    os.chown(planted, 65534, 65534)
    dst = ds / "0" / "5" / "disk.0"
    res = run("nfs_shared", "clone", "fe:%s" % (ds / "1" / "img"), "node1:%s" % dst, "5", "1", LOCK_DIR=str(planted))
    assert res.rc != 0
    assert "Lock directory %s is owned by uid 65534, not by the driver's user (uid 0)" % planted in res.err
    assert not dst.exists() and os.listdir(planted) == []


def test_lock_dir_that_is_a_symlink_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    os.symlink(str(tmp_path / "elsewhere"), str(tmp_path / "one"))
    with pytest.raises(TMError, match="is not a directory"):
        lock_dir(Context("clone", {"LOCK_DIR": str(tmp_path / "one")}))


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user needs root")
def test_lock_dir_fallback_under_tmp_is_checked_too(tmp_path, monkeypatch):
    """LOCK_DIR cannot be made (its parent is a file): the /tmp fallback is used only when it is ours."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "file").write_text("")
    ctx = Context("clone", {"LOCK_DIR": str(tmp_path / "file" / "one")})
    fallback = tmp_path / ("one-tm-locks-%d" % os.geteuid())
    assert lock_dir(ctx) == str(fallback) and stat.S_IMODE(fallback.stat().st_mode) == 0o700
    os.chown(fallback, 65534, 65534)
    with pytest.raises(TMError, match="owned by uid 65534"):
        lock_dir(ctx)


# --------------------------------------------------------------------------- item 6: the delete guard

def test_safe_to_delete_wants_a_vm_directory():
    from ansible_collections.nebula.storage.plugins.module_utils.tm.actions import safe_to_delete
    assert not safe_to_delete("/var/lib/one", 3)  # deep enough for the old slash count
    assert not safe_to_delete("/var/lib/one/datastores")
    assert not safe_to_delete("/var/lib/one/datastores/0")
    assert not safe_to_delete("/var/lib/one/datastores/0/7/../../../victim")
    assert not safe_to_delete("/var/lib/one/datastores/0/7/./disk.0")
    assert not safe_to_delete("/var/lib/one/datastores/0/x")
    assert not safe_to_delete("var/lib/one/datastores/0/7")
    assert safe_to_delete("/var/lib/one//datastores/0/7", 0, 7)  # the path oned sends (remote_system_ds)
    assert not safe_to_delete("/var/lib/one/datastores/0/7", 1, 7)  # the VM directory of another datastore
    assert not safe_to_delete("/var/lib/one/datastores/0/7", 0, 8)
    # oned deletes a disk with the id of its image datastore: only the VM id must match
    assert safe_to_delete("/var/lib/one/datastores/0/7/disk.0", 1, 7)
    assert not safe_to_delete("/var/lib/one/datastores/0/7/disk.0", 1, 8)
    assert safe_to_delete("/srv/one/100/7", 100, 7, locations=("/var/lib/one/datastores", "/srv/one"))
    assert safe_to_delete("/var/lib/one/7/images", vmid=7, locations=("/var/lib/one",), levels=1)  # 3.x


@pytest.mark.parametrize("driver", ["nfs_shared", "onestor"])
def test_delete_refuses_dot_dot_out_of_the_vm_directory(run, tmp_path, driver):
    """Stock delete removes any path it is given; ours only a VM directory of DATASTORE_LOCATION, or below."""
    ds = tmp_path / "datastores"
    (ds / "0" / "7").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    for target, ids in (("%s/0/7/../../../victim" % ds, ("7", "0")), (str(victim), ("7", "0")),
                        ("%s/0/7" % ds, ("7", "1")), ("%s/0/7" % ds, ("8", "0")), ("%s/0" % ds, ("7", "0")),
                        ("/var/lib/one", ("7", "0"))):
        res = run(driver, "delete", "node1:%s" % target, *ids, ONE_LOOKUP="no")
        assert res.rc == 1 and "Refusing to delete" in res.err and "DATASTORE_LOCATION/<ds id>/<vm id>" in res.err, res
    assert (victim / "keep").exists() and (ds / "0" / "7").is_dir()
    (ds / "0" / "7" / "disk.0").write_text("x")
    assert run(driver, "delete", "node1:%s//0/7/disk.0" % ds, "7", "1", ONE_LOOKUP="no").rc == 0
    assert not (ds / "0" / "7" / "disk.0").exists()
    assert run(driver, "delete", "node1:%s/0/7" % ds, "7", "0", ONE_LOOKUP="no").rc == 0
    assert not (ds / "0" / "7").exists()


def test_stock_delete_follows_dot_dot_ours_refuses(run, tmp_path, fake_ssh):
    """The oracle: OpenNebula 7.4's shared delete (tm_mad/common/delete) run for real removes ``.../0/7/../../../victim``."""
    import tarfile
    from tests.conftest import FIXTURES
    one = tmp_path / "one"
    wanted = {"src/tm_mad/common/delete": tmp_path / "delete", "src/tm_mad/tm_common.sh": one / "var/remotes/tm/tm_common.sh",
              "src/mad/sh/scripts_common.sh": one / "lib/sh/scripts_common.sh"}
    with tarfile.open(str(FIXTURES / "opennebula" / "opennebula-7.4.0-drivers.tar.gz")) as tar:
        for member in tar.getmembers():
            target = wanted.get(member.name.split("/", 1)[-1])
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    ds = tmp_path / "datastores"
    for victim in (tmp_path / "victim", tmp_path / "victim2"):
        victim.mkdir()
        (victim / "keep").write_text("x")
    (ds / "0" / "7").mkdir(parents=True)
    hostile = "node1:%s/0/7/../../../victim" % ds
    for driver in ("nfs_shared", "onestor"):
        res = run(driver, "delete", hostile, "7", "0", ONE_LOOKUP="no")
        assert res.rc == 1 and "Refusing to delete" in res.err
    assert (tmp_path / "victim" / "keep").exists()
    stock = subprocess.run(["bash", str(tmp_path / "delete"), "node1:%s/0/7/../../../victim2" % ds, "7", "0"],
                           env=dict(os.environ, ONE_LOCATION=str(one), SSH=str(fake_ssh)), capture_output=True,
                           text=True, check=False)
    assert stock.returncode == 0, stock.stderr
    assert not (tmp_path / "victim2").exists(), "stock deletes outside the VM directory"


def test_mv_never_deletes_a_source_outside_the_datastores(run, tmp_path):
    """After a transfer between hosts, the source is deleted only when it is a VM directory."""
    ds = tmp_path / "datastores"
    outside = tmp_path / "outside" / "0" / "7"
    outside.mkdir(parents=True)
    (outside / "disk.0").write_text("x")
    res = run("nfs_shared", "mv", "node1:%s" % outside, "node2:%s" % (ds / "0" / "7"), "7", "0", MV_TRANSFER="always")
    assert res.rc == 1 and "Refusing to delete %s" % outside in res.err
    assert (outside / "disk.0").exists()


# --------------------------------------------------------------------------- item 9: renames never follow a planted link

def _planted(tmp_path):
    ds = tmp_path / "datastores"
    (ds / "1").mkdir(parents=True)
    src = make_sparse(str(ds / "1" / "img"), 2 * MiB, data_at=(0,))
    outside = tmp_path / "outside"
    outside.mkdir()
    vm = ds / "0" / "5"
    vm.mkdir(parents=True)
    os.symlink(str(outside), str(vm / "disk.0"))
    return src, vm, outside


@pytest.mark.parametrize("driver,action,extra", [
    ("nfs_shared", "clone", {"CLONE_COPY": "host"}),
    ("onestor", "clone", {"ONE_LOOKUP": "no", "DS_0_REPLICA_HOST": "replica1"}),
    ("nfs_shared", "mkimage", {}),
    ("onestor", "snap_revert", {"ONE_LOOKUP": "no"}),
])
def test_a_planted_disk_link_to_a_directory_is_replaced_not_followed(run, tmp_path, driver, action, extra):
    """``disk.0 -> <outside dir>``: the new disk replaces the link; nothing lands in the outside directory."""
    src, vm, outside = _planted(tmp_path)
    extra = dict(extra, REPLICA_CACHE_DIR=str(tmp_path / "cache"), TUNING_RC=str(tmp_path / "none"))
    if action == "clone":
        args = ("fe:%s" % src, "node1:%s/disk.0" % vm, "5", "0")
    elif action == "mkimage":
        args = ("2", "raw", "node1:%s/disk.0" % vm, "5", "0")
    else:
        (vm / "disk.0.snap").mkdir()
        make_sparse(str(vm / "disk.0.snap" / "0"), MiB, data_at=(0,))
        args = ("node1:%s/disk.0" % vm, "0", "5")
    res = run(driver, action, *args, **extra)
    assert res.rc == 0, res
    assert os.listdir(outside) == []
    assert not os.path.islink(vm / "disk.0") and (vm / "disk.0").is_file()


def test_mv_onto_a_planted_link_to_a_directory(run, tmp_path):
    """nfs_shared ``mv`` on one host onto ``<dst> -> <outside dir>``: fails (a directory does not replace a link),
    never moves the VM directory into the link's target as ``mv -f`` did."""
    ds = tmp_path / "datastores"
    vm = ds / "0" / "5"
    vm.mkdir(parents=True)
    (vm / "disk.0").write_text("data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (ds / "100").mkdir()
    os.symlink(str(outside), str(ds / "100" / "5"))
    res = run("nfs_shared", "mv", "node1:%s" % vm, "node1:%s" % (ds / "100" / "5"), "5", "0", MV_TRANSFER="no")
    assert res.rc == 1 and "Error moving VM files" in res.err, res
    assert os.listdir(outside) == []
    assert (vm / "disk.0").read_text() == "data"


# --------------------------------------------------------------------------- item 2: images that read other files

SECRET = b"oneadmin:s3cr3t-token\n"


def _qemu_img(*args):
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True)


@pytest.fixture
def hostile_images(tmp_path):
    """Images a user could upload that read a 0600 file of the driver's user (one_auth here)."""
    secret = tmp_path / "one_auth"
    secret.write_bytes(SECRET.ljust(4096, b"\0"))
    secret.chmod(0o600)
    images = tmp_path / "datastores" / "1"
    images.mkdir(parents=True)
    backing = images / "backing.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", backing)
    data_file = images / "datafile.qcow2"
    stolen = tmp_path / "stolen.raw"
    _qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=%s" % stolen, data_file, "1M")
    stolen.write_bytes(SECRET.ljust(MiB, b"\0"))
    stolen.chmod(0o600)
    vmdk = images / "extent.vmdk"
    vmdk.write_text('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
                    'RW 8 FLAT "%s" 0\n' % secret)
    return {"backing": (backing, "a backing file"), "data_file": (data_file, "an external data file"),
            "vmdk": (vmdk, "an external data file")}


def test_the_stock_conversion_reads_the_backing_file(tmp_path, hostile_images):
    """Why: fs/cp's CONVERT_CMD (``qemu-img convert -O $DRIVER $DST $DST.tmp``, no -f) puts one_auth in the image."""
    image = hostile_images["backing"][0]
    out = tmp_path / "converted.raw"
    _qemu_img("convert", "-O", "raw", image, out)  # the stock command line, as fs/cp runs it
    assert out.read_bytes().startswith(SECRET)


def _no_files(path):
    return not path.exists() or [p for p in path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("kind", ["backing", "data_file", "vmdk"])
@pytest.mark.parametrize("mode", [{}, {"CLONE_COPY": "host"}, {"LOCAL_SHORTCUT": "yes"}, {"QCOW2_OVERLAY": "yes"}],
                         ids=["stream", "host-copy", "local", "overlay"])
def test_nfs_shared_clone_refuses_images_reading_other_files(run, tmp_path, hostile_images, kind, mode):
    """Stock clone copies (or overlays) whatever qemu-img opens through the image; ours refuses it."""
    image, what = hostile_images[kind]
    vm = tmp_path / "datastores" / "0" / "5"
    host = "localhost" if mode.get("LOCAL_SHORTCUT") else "node1"
    res = run("nfs_shared", "clone", "fe:%s" % image, "%s:%s/disk.0" % (host, vm), "5", "1", **mode)
    assert res.rc == 1 and "Refusing image %s: it has %s" % (image, what) in res.err, res
    assert _no_files(vm)


@pytest.mark.parametrize("kind", ["backing", "data_file", "vmdk"])
@pytest.mark.parametrize("replica", [True, False], ids=["replica", "direct"])
def test_onestor_clone_refuses_images_reading_other_files(run, tmp_path, hostile_images, kind, replica):
    image, what = hostile_images[kind]
    vm = tmp_path / "datastores" / "100" / "5"
    extra = {"ONE_LOOKUP": "no", "REPLICA_CACHE_DIR": str(tmp_path / "cache"), "TUNING_RC": str(tmp_path / "none")}
    if replica:
        extra["DS_100_REPLICA_HOST"] = "replica1"
    res = run("onestor", "clone", "fe:%s" % image, "node1:%s/disk.0" % vm, "5", "100", **extra)
    assert res.rc == 1 and "Refusing image %s: it has %s" % (image, what) in res.err, res
    assert _no_files(vm) and _no_files(tmp_path / "cache")


def _guest_written_header(disk, secret):
    """The bytes a guest can write at the start of its raw disk: a qcow2 header naming a backing file."""
    disk.parent.mkdir(parents=True, exist_ok=True)
    _qemu_img("create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", disk)


@pytest.mark.parametrize("driver,action", [("nfs_shared", "cpds"), ("onestor", "cpds"), ("onestor", "mvds")])
def test_saving_a_disk_that_reads_other_files_is_refused(run, tmp_path, hostile_images, driver, action):
    """cpds/mvds probe the disk like stock does, then refuse a backing or data file: nothing reaches the datastore."""
    vm = tmp_path / "datastores" / "0" / "5"
    _guest_written_header(vm / "disk.0", tmp_path / "one_auth")
    dst = tmp_path / "datastores" / "1" / "saved"
    args = ["node1:%s/disk.0" % vm, "fe:%s" % dst] + (["-1"] if action == "cpds" else []) + ["5", "1"]
    res = run(driver, action, *args, ONE_LOOKUP="no")
    assert res.rc == 1 and "Refusing image %s/disk.0: it has a backing file" % vm in res.err, res
    assert not dst.exists() and (vm / "disk.0").exists()
    shutil_data = hostile_images["data_file"][0]
    res = run(driver, action, "node1:%s" % shutil_data, "fe:%s" % dst, *args[2:], ONE_LOOKUP="no")
    assert res.rc == 1 and "an external data file" in res.err and not dst.exists()


def test_resize_refuses_a_disk_that_reads_other_files_and_passes_the_format(run, tmp_path, hostile_images):
    vm = tmp_path / "datastores" / "0" / "5"
    _guest_written_header(vm / "disk.0", tmp_path / "one_auth")
    res = run("nfs_shared", "resize", "node1:%s/disk.0" % vm, "64", "5")
    assert res.rc == 1 and "Refusing image" in res.err
    make_sparse(str(vm / "disk.1"), MiB)
    assert run("nfs_shared", "resize", "node1:%s/disk.1" % vm, "4", "5").rc == 0
    assert (vm / "disk.1").stat().st_size == 4 * MiB


def test_the_overlay_chain_of_our_own_snapshots_is_accepted(run, tmp_path, hostile_images):
    """QCOW2_OVERLAY disks are chains we made (disk.N -> disk.N.snap/K): cpds flattens them; the source must be clean."""
    ds = tmp_path / "datastores"
    base = ds / "1" / "base.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", base, "8M")
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 1M", str(base)], check=True, capture_output=True)
    vm = ds / "0" / "5"
    assert run("nfs_shared", "clone", "fe:%s" % base, "node1:%s/disk.0" % vm, "5", "1", QCOW2_OVERLAY="yes").rc == 0
    assert run("nfs_shared", "snap_create", "node1:%s/disk.0" % vm, "0", "5").rc == 0
    for snap, name in (("-1", "flat"), ("0", "flat0")):
        res = run("nfs_shared", "cpds", "node1:%s/disk.0" % vm, "fe:%s" % (ds / "1" / name), snap, "5", "1")
        assert res.rc == 0, res
        info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(ds / "1" / name)],
                                         check=True, capture_output=True, text=True).stdout)
        assert "backing-filename" not in info
    assert run("nfs_shared", "resize", "node1:%s/disk.0" % vm, "16", "5").rc == 0
    # the chain's end, the clone source, is a user's image: it gets no backing file later either
    _qemu_img("rebase", "-u", "-f", "qcow2", "-b", tmp_path / "one_auth", "-F", "raw", base)
    res = run("nfs_shared", "cpds", "node1:%s/disk.0" % vm, "fe:%s" % (ds / "1" / "leak"), "-1", "5", "1")
    assert res.rc == 1 and "Refusing image" in res.err and not (ds / "1" / "leak").exists()
    # a disk that is not our overlay link gets no chain: a plain disk.1 pointing into disk.0.snap is refused
    _qemu_img("create", "-q", "-f", "qcow2", "-b", vm / "disk.0.snap" / "0", "-F", "qcow2", vm / "disk.1")
    res = run("nfs_shared", "cpds", "node1:%s/disk.1" % vm, "fe:%s" % (ds / "1" / "leak"), "-1", "5", "1")
    assert res.rc == 1 and "Refusing image" in res.err


def test_clean_images_are_accepted_as_stock_accepts_them(run, tmp_path):
    """qcow2 without backing file, raw: cloned by every driver as before."""
    ds = tmp_path / "datastores"
    (ds / "1").mkdir(parents=True)
    qcow = ds / "1" / "clean.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", qcow, "4M")
    raw = make_sparse(str(ds / "1" / "clean.raw"), 2 * MiB, data_at=(0,))
    extra = {"ONE_LOOKUP": "no", "REPLICA_CACHE_DIR": str(tmp_path / "cache"), "TUNING_RC": str(tmp_path / "none"),
             "DS_100_REPLICA_HOST": "replica1"}
    for n, (driver, src) in enumerate((("nfs_shared", qcow), ("nfs_shared", raw), ("onestor", qcow), ("onestor", raw))):
        res = run(driver, "clone", "fe:%s" % src, "node1:%s/0/5/disk.%d" % (ds, n), "5", "100", **extra)
        assert res.rc == 0, res


@pytest.fixture
def http_dir(tmp_path):
    import functools
    import http.server
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("driver", ["nfs_shared", "onestor"])
def test_a_downloaded_image_that_reads_other_files_is_removed(run, tmp_path, http_dir, driver):
    root, url = http_dir
    _qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", "/var/lib/one/.one/one_auth", "-F", "raw", root / "evil.qcow2", "1M")
    vm = tmp_path / "datastores" / "0" / "5"
    res = run(driver, "clone", "%s/evil.qcow2" % url, "node1:%s/disk.0" % vm, "5", "1", ONE_LOOKUP="no")
    assert res.rc == 1 and "Refusing image %s/disk.0: it has a backing file" % vm in res.err, res
    assert _no_files(vm)


def test_every_qemu_img_command_names_the_format():
    """Only ``qemu-img info`` probes (it is how the format is learnt); convert/create/resize/rebase get ``-f``."""
    import re
    runtime = ROOT / "plugins" / "module_utils" / "tm"
    found = []
    for path in sorted(runtime.rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"qemu-img\"?,? \"?(convert|create|resize|rebase|commit|dd|amend)\b[^\n]*", text):
            found.append(match.group(0))
            assert re.search(r"-f\"?,? \"?[\"$a-z]", match.group(0)), "%s: %s" % (path.name, match.group(0))
    assert len(found) >= 6


# --------------------------------------------------------------------------- item 8: the replica pin

SLOW_PULL_SSH = """#!/bin/sh
# TEST DOUBLE: the fake ssh; a pull from the replica marked SLOWPULL (in its
# ssh options) first says so, then takes {delay}s.
case "$*" in *SLOWPULL*) touch {marker}; sleep {delay} ;; esac
exec {fake} "$@"
"""


def test_an_image_being_pulled_is_not_evicted(run, tmp_path, fake_ssh):
    """Two clones, a 3 MiB replica cache: B's eviction would remove A's image during A's pull; it is pinned."""
    ds = tmp_path / "datastores"
    (ds / "1").mkdir(parents=True)
    img_a = make_sparse(str(ds / "1" / "img-a"), 16 * MiB, data_at=(0, 8 * MiB))
    img_b = make_sparse(str(ds / "1" / "img-b"), 4 * MiB, data_at=(0, 2 * MiB))
    marker = tmp_path / "pulling"
    ssh = tmp_path / "tools" / "slow_pull_ssh"
    ssh.write_text(SLOW_PULL_SSH.format(marker=shlex.quote(str(marker)), delay=3, fake=shlex.quote(str(fake_ssh))))
    ssh.chmod(0o755)
    settings = {"SSH": str(ssh), "ONE_LOOKUP": "no", "DS_100_REPLICA_HOST": "replica1", "REPLICA_MAX_SIZE_MB": "3",
                "REPLICA_CACHE_DIR": str(tmp_path / "cache"), "TUNING_RC": str(tmp_path / "none")}
    results = {}
    dst_a, dst_b = ds / "100" / "1" / "disk.0", ds / "100" / "2" / "disk.0"

    def clone_a():
        results["a"] = run("onestor", "clone", "fe:%s" % img_a, "host2:%s" % dst_a, "1", "100",
                           REPLICA_SSH_OPTS="-o SetEnv=SLOWPULL=1", **settings)

    thread = threading.Thread(target=clone_a)
    thread.start()
    deadline = time.time() + 30
    while time.time() < deadline and not marker.exists():
        time.sleep(0.02)
    assert marker.exists(), "A never reached its pull: %r" % results
    results["b"] = run("onestor", "clone", "fe:%s" % img_b, "host3:%s" % dst_b, "2", "100", **settings)
    thread.join(60)
    assert results["a"].rc == 0, results["a"]
    assert results["b"].rc == 0, results["b"]
    assert "Not evicting %s from the replica cache of replica1: in use" % (tmp_path / "cache" / "1" / "img-a") \
        in results["b"].err
    assert "does not fit in the replica cache" in results["b"].err
    assert open(dst_a, "rb").read() == open(img_a, "rb").read()
    assert open(dst_b, "rb").read() == open(img_b, "rb").read()
    # once A is done, its image is evictable again
    res = run("onestor", "clone", "fe:%s" % img_b, "host3:%s" % (ds / "100" / "3" / "disk.0"), "3", "100", **settings)
    assert res.rc == 0 and "Evicted %s" % (tmp_path / "cache" / "1" / "img-a") in res.err, res
