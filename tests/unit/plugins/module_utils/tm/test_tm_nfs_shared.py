"""Each nfs_shared action against temp dirs; host commands go through the fake ssh test double."""
from __future__ import annotations

import filecmp
import os
import shutil
import subprocess

import pytest
from xml.sax.saxutils import escape

from ansible_collections.nebula.storage.plugins.module_utils.tm import registry
from tm_helpers import allocated, make_sparse, qemu_info, ssh_hosts

MiB = 1 << 20


@pytest.fixture
def ds(tmp_path):
    """A datastore tree: image DS 1 with a sparse raw image, system DS 0."""
    root = tmp_path / "datastores"
    (root / "1").mkdir(parents=True)
    (root / "0").mkdir()
    make_sparse(str(root / "1" / "raw.img"), 32 * MiB, data_at=(0, 20 * MiB))
    return root


def qcow2_image(path, size="64M"):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 1M", str(path)], check=True, capture_output=True)
    return path


def test_driver_contract():
    driver = registry.load_driver("nfs_shared")
    for action in ("clone", "ln", "mv", "mvds", "cpds", "delete", "mkimage", "mkswap", "context", "resize",
                   "premigrate", "postmigrate", "failmigrate", "snap_create", "snap_delete", "snap_revert"):
        assert callable(driver.ACTIONS[action])
    assert set(driver.LEGACY_ACTIONS) == {"clone", "ln", "mkswap", "mkimage", "delete", "mv", "context"}
    assert dict(driver.DEFAULT_RC)["QCOW2_OVERLAY"] == "no"
    with pytest.raises(KeyError):
        registry.load_driver("shared")


# --------------------------------------------------------------------------- clone / ln

def test_clone_raw_streams_to_the_host_keeping_holes(tm, ds, fake_ssh):
    src, dst = ds / "1" / "raw.img", ds / "0" / "5" / "disk.0"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "1")
    assert res.rc == 0, res
    assert filecmp.cmp(src, dst, shallow=False)
    assert allocated(dst) <= allocated(src) * 1.01
    assert "INFO: clone: Cloning %s in node1:%s" % (src, dst) in res.err
    assert ssh_hosts(fake_ssh) == ["node1"]  # one ssh connection: the receiver makes the directory


def test_clone_to_the_local_host_uses_no_ssh(tm, ds, fake_ssh):
    dst = ds / "0" / "5" / "disk.0"
    res = tm("clone", "fe:%s" % (ds / "1" / "raw.img"), "localhost:%s" % dst, "5", "1", LOCAL_SHORTCUT="yes")
    assert res.rc == 0, res
    assert filecmp.cmp(ds / "1" / "raw.img", dst, shallow=False)
    assert ssh_hosts(fake_ssh) == []


def test_clone_host_copy_mode(tm, ds, fake_ssh):
    dst = ds / "0" / "5" / "disk.0"
    res = tm("clone", "fe:%s" % (ds / "1" / "raw.img"), "node1:%s" % dst, "5", "1", CLONE_COPY="host")
    assert res.rc == 0, res
    assert filecmp.cmp(ds / "1" / "raw.img", dst, shallow=False)
    assert allocated(dst) <= allocated(ds / "1" / "raw.img") * 1.01
    assert not [p for p in os.listdir(dst.parent) if "tmcopy" in p]


def test_clone_qcow2_overlay_when_rc_asks(tm, ds):
    src = qcow2_image(ds / "1" / "base.qcow2")
    dst = ds / "0" / "5" / "disk.0"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "1", QCOW2_OVERLAY="yes")
    assert res.rc == 0, res
    assert os.readlink(dst) == "disk.0.snap/0"
    info = qemu_info(dst)
    assert info["format"] == "qcow2" and info["backing-filename"] == str(src)
    assert os.readlink(ds / "0" / "5" / "disk.0.snap" / "disk.0.snap") == "."
    # the overlay sees the base's data
    out = subprocess.run(["qemu-io", "-r", "-c", "read -P 0x5a 0 1M", str(dst)], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout


def test_clone_qcow2_without_overlay_copies(tm, ds):
    src = qcow2_image(ds / "1" / "base.qcow2")
    dst = ds / "0" / "5" / "disk.0"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "1")
    assert res.rc == 0, res
    assert not os.path.islink(dst) and filecmp.cmp(src, dst, shallow=False)


def test_clone_missing_source_fails_without_partial_file(tm, ds):
    dst = ds / "0" / "5" / "disk.0"
    res = tm("clone", "fe:%s" % (ds / "1" / "nope"), "node1:%s" % dst, "5", "1")
    assert res.rc != 0
    assert "source does not exist" in res.err
    assert not dst.exists()


def test_clone_rejects_relative_paths_and_bad_hosts(tm, ds, fake_ssh):
    assert "not absolute" in tm("clone", "fe:relative/img", "node1:%s" % (ds / "0" / "d"), "5", "1").err
    res = tm("clone", "fe:%s" % (ds / "1" / "raw.img"), "-oProxyCommand=id:%s" % (ds / "0" / "d"), "5", "1")
    assert res.rc == 1 and "Invalid host" in res.err
    assert ssh_hosts(fake_ssh) == []


def test_clone_wrong_argument_count(tm):
    res = tm("clone", "fe:/a", "node1:/b")
    assert res.rc == 1 and "expected arguments fe:SRC host:DST VMID DSID, got 2" in res.err


def test_ln_makes_a_symlink(tm, ds, fake_ssh):
    src, dst = ds / "1" / "raw.img", ds / "0" / "5" / "disk.1"
    res = tm("ln", "fe:%s" % src, "node1:%s" % dst, "5", "1")
    assert res.rc == 0, res
    assert ssh_hosts(fake_ssh) == ["node1"]
    assert os.readlink(dst) == str(src)
    assert tm("ln", "fe:%s" % src, "node1:%s" % dst, "5", "1").rc == 0  # replaces the link


# --------------------------------------------------------------------------- mv / mvds / cpds / delete

def test_mv_vm_directory_on_the_target_host(tm, ds):
    vm = ds / "0" / "5"
    vm.mkdir()
    (vm / "disk.0").write_text("data")
    res = tm("mv", "node1:%s" % vm, "node2:%s" % (ds / "100" / "5"), "5", "0", MV_TRANSFER="no")
    assert res.rc == 0, res
    assert (ds / "100" / "5" / "disk.0").read_text() == "data" and not vm.exists()


def test_mv_of_a_disk_or_same_path_is_a_no_op(tm, ds, fake_ssh):
    assert tm("mv", "node1:%s/0/5/disk.0" % ds, "node2:%s/0/5/disk.0" % ds, "5", "0").rc == 0
    # cold migration, undeploy, stop, resume: oned names the same directory on two hosts (stock: no-op)
    for src_host, dst_host in (("node1", "node1"), ("node1", "node2"), ("node1", "fe")):
        res = tm("mv", "%s:%s/0/5" % (src_host, ds), "%s:%s/0/5" % (dst_host, ds), "5", "0")
        assert res.rc == 0 and "the same path on a shared datastore" in res.err
    assert ssh_hosts(fake_ssh) == []


def test_mv_between_hosts_transfers_with_tar(tm, ds, fake_ssh):
    vm = ds / "0" / "5"
    vm.mkdir()
    make_sparse(str(vm / "disk.0"), 16 * MiB, data_at=(4 * MiB,))
    os.symlink("disk.0", vm / "disk.link")
    original = (vm / "disk.0").read_bytes()
    dst = ds / "other" / "0" / "5"
    res = tm("mv", "node1:%s" % vm, "node2:%s" % dst, "5", "0", MV_TRANSFER="always")
    assert res.rc == 0, res
    assert (dst / "disk.0").read_bytes() == original and os.readlink(dst / "disk.link") == "disk.0"
    assert allocated(dst / "disk.0") <= 2 * MiB
    assert not vm.exists()
    assert {"node1", "node2"} <= set(ssh_hosts(fake_ssh))
    assert not [p for p in os.listdir(dst.parent) if "tmmv" in p]


def test_mv_between_hosts_missing_source_fails_and_keeps_target_clean(tm, ds):
    dst = ds / "other" / "5"
    res = tm("mv", "node1:%s/0/404" % ds, "node2:%s" % dst, "5", "0", MV_TRANSFER="always")
    assert res.rc != 0 and "Error moving" in res.err
    assert not dst.exists()
    assert not [p for p in os.listdir(dst.parent) if "tmmv" in p]


def test_mvds_is_a_no_op_on_shared_storage(tm, ds, fake_ssh):
    res = tm("mvds", "node1:%s/0/5/disk.0" % ds, "fe:%s/1/abc" % ds, "5", "1")
    assert res.rc == 0 and "shared" in res.err
    assert ssh_hosts(fake_ssh) == []


def test_cpds_raw_qcow2_and_snapshot(tm, ds):
    vm = ds / "0" / "5"
    vm.mkdir()
    make_sparse(str(vm / "disk.0"), 8 * MiB, data_at=(MiB,))
    res = tm("cpds", "node1:%s" % (vm / "disk.0"), "fe:%s" % (ds / "1" / "saved"), "-1", "5", "1")
    assert res.rc == 0, res
    assert filecmp.cmp(vm / "disk.0", ds / "1" / "saved", shallow=False)
    qcow2_image(vm / "disk.1")
    assert tm("cpds", "node1:%s" % (vm / "disk.1"), "fe:%s" % (ds / "1" / "saved2"), "-1", "5", "1").rc == 0
    assert qemu_info(ds / "1" / "saved2")["format"] == "qcow2"
    (vm / "disk.1.snap").mkdir()
    qcow2_image(vm / "disk.1.snap" / "3")
    assert tm("cpds", "node1:%s" % (vm / "disk.1"), "fe:%s" % (ds / "1" / "snap3"), "3", "5", "1").rc == 0
    assert qemu_info(ds / "1" / "snap3")["format"] == "qcow2"
    res = tm("cpds", "node1:%s" % (vm / "nope"), "fe:%s" % (ds / "1" / "x"), "-1", "5", "1")
    assert res.rc != 0 and not (ds / "1" / "x").exists()
    assert "Cannot read image %s" % (vm / "nope") in res.err


def test_delete_removes_a_tree_and_tolerates_missing(tm, ds):
    vm = ds / "0" / "5"
    (vm / "disk.0.snap").mkdir(parents=True)
    (vm / "disk.0").write_text("x")
    res = tm("delete", "node1:%s" % vm, "5", "0")
    assert res.rc == 0 and not vm.exists()
    assert "INFO: delete: Deleting %s" % vm in res.err
    assert tm("delete", "node1:%s" % vm, "5", "0").rc == 0


def test_delete_refuses_top_level_paths(tm):
    for path in ("/", "/var", "//var//", "/var/lib", "/srv/"):
        res = tm("delete", "node1:%s" % path, "5", "0")
        assert res.rc == 1 and "Refusing to delete" in res.err


def test_delete_failure_is_reported(tm, ds):
    vm = ds / "0" / "5"
    vm.mkdir()
    (vm / "f").write_text("x")
    os.chmod(vm, 0o500)
    try:
        if os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "+i", str(vm / "f")], check=False, capture_output=True)
        res = tm("delete", "node1:%s" % vm, "5", "0")
        if res.rc == 0:
            pytest.skip("this filesystem lets root delete an immutable file (chattr unsupported)")
        assert "Error deleting %s" % vm in res.err
    finally:
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(vm / "f")], check=False, capture_output=True)
        os.chmod(vm, 0o755)


# --------------------------------------------------------------------------- mkimage / mkswap / resize

@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_mkimage(tm, ds, fmt):
    dst = ds / "0" / "5" / "disk.2"
    res = tm("mkimage", "16", fmt, "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    info = qemu_info(dst)
    assert info["format"] == fmt and info["virtual-size"] == 16 * MiB
    assert allocated(dst) < MiB


def test_mkimage_with_a_filesystem(tm, ds):
    dst = ds / "0" / "5" / "disk.3"
    assert tm("mkimage", "8", "ext4", "node1:%s" % dst, "5", "0").rc == 0
    out = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", str(dst)], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ext4"


def test_mkimage_bad_input(tm, ds):
    dst = ds / "0" / "5" / "disk.2"
    assert "is not a number" in tm("mkimage", "16M", "raw", "node1:%s" % dst, "5", "0").err
    assert "not supported" in tm("mkimage", "16", "raw;id", "node1:%s" % dst, "5", "0").err
    res = tm("mkimage", "16", "nosuchfs", "node1:%s" % dst, "5", "0")
    assert res.rc != 0 and "Could not create image" in res.err
    assert not dst.exists() and not [p for p in os.listdir(dst.parent) if "tmcopy" in p]


def test_mkswap(tm, ds):
    dst = ds / "0" / "5" / "disk.1"
    res = tm("mkswap", "10", "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert os.path.getsize(dst) == 10 * MiB
    out = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", str(dst)], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "swap"


def test_resize(tm, ds):
    dst = ds / "0" / "5" / "disk.0"
    dst.parent.mkdir()
    qcow2_image(dst, "16M")
    assert tm("resize", "node1:%s" % dst, "32", "5").rc == 0
    assert qemu_info(dst)["virtual-size"] == 32 * MiB
    assert tm("resize", "node1:%s" % (ds / "nope"), "32", "5").rc != 0


def test_migrate_hooks_are_no_ops(tm):
    for action in ("premigrate", "postmigrate", "failmigrate"):
        res = tm(action, "node1", "node2", "/var/lib/one/datastores/0/5", "5", "0", "template")
        assert res.rc == 0 and res.err.startswith("INFO: %s:" % action)


# --------------------------------------------------------------------------- context

def test_context_builds_an_iso_with_renamed_files(tm, ds, tmp_path):
    files = tmp_path / "ctx"
    files.mkdir()
    (files / "context.sh").write_text("ETH0_IP=1\n")
    (files / "key.pub").write_text("ssh-ed25519 AAAA\n")
    dst = ds / "0" / "5" / "disk.3"
    res = tm("context", str(files / "context.sh"), "%s:renamed.pub" % (files / "key.pub"), "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(dst)], capture_output=True, text=True, check=False).stdout.split()
    assert sorted(listing) == ["/context.sh", "/renamed.pub"]
    label = subprocess.run(["isoinfo", "-d", "-i", str(dst)], capture_output=True, text=True, check=False).stdout
    assert "Volume id: CONTEXT" in label


def test_context_missing_file_fails_and_writes_nothing(tm, ds):
    dst = ds / "0" / "5" / "disk.3"
    res = tm("context", str(ds / "nope.sh"), "node1:%s" % dst, "5", "0")
    assert res.rc == 1 and "no such file" in res.err
    assert not dst.exists()


# --------------------------------------------------------------------------- snapshots

def test_snapshots_create_revert_delete(tm, ds):
    src = qcow2_image(ds / "1" / "base.qcow2")
    disk = ds / "0" / "5" / "disk.0"
    snap = ds / "0" / "5" / "disk.0.snap"
    assert tm("clone", "fe:%s" % src, "node1:%s" % disk, "5", "1", QCOW2_OVERLAY="yes").rc == 0
    # snapshot 0 freezes file 0, the disk now writes to file 1
    res = tm("snap_create", "node1:%s" % disk, "0", "5")
    assert res.rc == 0, res
    assert os.readlink(disk) == "disk.0.snap/1" and qemu_info(snap / "1")["backing-filename"] == "disk.0.snap/0"
    subprocess.run(["qemu-io", "-c", "write -P 0x11 0 64k", str(disk)], check=True, capture_output=True)
    assert tm("snap_create", "node1:%s" % disk, "1", "5").rc == 0
    assert os.readlink(disk) == "disk.0.snap/2"
    assert "already exists" in tm("snap_create", "node1:%s" % disk, "1", "5").err
    # revert to snapshot 0: the active file 2 is replaced by an empty overlay of 0
    assert tm("snap_revert", "node1:%s" % disk, "0", "5").rc == 0
    assert os.readlink(disk) == "disk.0.snap/2" and qemu_info(snap / "2")["backing-filename"] == "disk.0.snap/0"
    out = subprocess.run(["qemu-io", "-r", "-c", "read -P 0x5a 0 64k", str(disk)], capture_output=True, text=True, check=False)
    assert "Pattern verification failed" not in out.stdout
    # delete snapshot 0: merged into its children (1 and 2), which then hang off the base image
    res = tm("snap_delete", "node1:%s" % disk, "0", "5")
    assert res.rc == 0, res
    assert not (snap / "0").exists()
    assert qemu_info(snap / "1")["backing-filename"] == str(src)
    assert qemu_info(snap / "2")["backing-filename"] == str(src)
    out = subprocess.run(["qemu-io", "-r", "-c", "read -P 0x11 0 64k", str(snap / "1")], capture_output=True, text=True, check=False)
    assert "Pattern verification failed" not in out.stdout
    assert "active image" in tm("snap_delete", "node1:%s" % disk, "2", "5").err
    assert tm("snap_delete", "node1:%s" % disk, "7", "5").rc == 0


def test_snapshots_of_a_raw_disk_are_copies(tm, ds):
    """As stock shared/snap_create and snap_revert: a raw disk's snapshot N is a copy in disk.N.snap/N."""
    disk = ds / "0" / "5" / "disk.0"
    assert tm("clone", "fe:%s" % (ds / "1" / "raw.img"), "node1:%s" % disk, "5", "1").rc == 0
    before = disk.read_bytes()
    assert tm("snap_create", "node1:%s" % disk, "0", "5").rc == 0
    assert (ds / "0" / "5" / "disk.0.snap" / "0").read_bytes() == before
    disk.write_bytes(b"changed")
    assert tm("snap_revert", "node1:%s" % disk, "0", "5").rc == 0
    assert disk.read_bytes() == before and oct(disk.stat().st_mode & 0o777) == "0o644"
    assert "is not a number" in tm("snap_create", "node1:%s" % disk, "x", "5").err


# --------------------------------------------------------------------------- 3.x protocol

def test_legacy_protocol_actions(tm, ds, fake_ssh, tmp_path):
    vm = ds / "0" / "9"
    src = ds / "1" / "raw.img"
    assert tm("clone", "fe:%s" % src, "node1:%s/images/disk.0" % vm, protocol="3").rc == 0
    assert filecmp.cmp(src, vm / "images" / "disk.0", shallow=False)
    assert tm("ln", "fe:%s" % src, "node1:%s/images/disk.1" % vm, protocol="3").rc == 0
    assert os.readlink(vm / "images" / "disk.1") == str(src)
    assert tm("mkswap", "4", "node1:%s/images/disk.2" % vm, protocol="3").rc == 0
    assert tm("mkimage", "8", "ext3", "node1:%s/images/disk.3" % vm, protocol="3").rc == 0
    (tmp_path / "context.sh").write_text("X=1\n")
    assert tm("context", str(tmp_path / "context.sh"), "node1:%s/images/disk.4" % vm, protocol="3").rc == 0
    assert tm("mv", "node1:%s/images/disk.0" % vm, "fe:%s/saved" % ds, protocol="3").rc == 0
    assert (ds / "saved").exists() and not (vm / "images" / "disk.0").exists()
    res = tm("mv", "node1:%s/images" % vm, "fe:%s/x" % ds, protocol="3")
    assert res.rc == 0 and "Will not move, is not saving image" in res.err
    assert tm("delete", "node1:%s" % vm, "fe:%s" % vm, protocol="3", VM_DIR=str(ds / "0")).rc == 0
    assert not vm.exists()
    # 3.x shared runs everything on the front-end
    assert ssh_hosts(fake_ssh) == []


def test_legacy_protocol_errors_are_wrapped(tm, ds):
    res = tm("clone", "fe:%s" % (ds / "nope"), "node1:%s/0/9/images/disk.0" % ds, protocol="3")
    assert res.rc == 1
    assert res.err.splitlines()[-3:] == ["ERROR MESSAGE --8<------",
                                         "Error copying %s/nope to %s/0/9/images/disk.0: source does not exist" % (ds, ds),
                                         "ERROR MESSAGE ------>8--"]


def test_legacy_vm_rdir_maps_to_vm_dir(tm, ds):
    res = tm("clone", "fe:%s" % (ds / "1" / "raw.img"), "node1:/remote/vms/9/images/disk.0", protocol="3",
             VM_RDIR="/remote/vms", VM_DIR=str(ds / "vms"))
    assert res.rc == 0, res
    assert (ds / "vms" / "9" / "images" / "disk.0").exists()


# --------------------------------------------------------------------------- live snapshots (virsh)

FAKE_VIRSH = """#!/bin/sh
# Recording TEST DOUBLE of virsh: logs its argv (and the --xmlfile document); fails the commands in $VIRSH_FAIL.
printf '%s\\n' "$*" >>"$VIRSH_LOG"
prev=
for a in "$@"; do
  if [ "$prev" = --xmlfile ]; then cat "$a" >>"$VIRSH_LOG"; echo "$a" >>"$VIRSH_LOG.files"; fi
  prev=$a
done
for c in $VIRSH_FAIL; do
  case " $* " in *" $c "*) exit 1 ;; esac
done
exit 0
"""

FAKE_ONEVM = """#!/bin/sh
# TEST DOUBLE of OpenNebula's onevm: `onevm show -x ID` prints $ONEVM_XML
cat "$ONEVM_XML"
"""


@pytest.fixture
def live(tmp_path, monkeypatch):
    """Fake virsh and onevm on PATH; returns (virsh log, function writing the VM document)."""
    tools = tmp_path / "live-bin"
    tools.mkdir()
    for name, text in (("virsh", FAKE_VIRSH), ("onevm", FAKE_ONEVM)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    log = tmp_path / "virsh.log"
    monkeypatch.setenv("PATH", "%s:%s" % (tools, os.environ["PATH"]))
    monkeypatch.setenv("VIRSH_LOG", str(log))
    monkeypatch.setenv("ONEVM_XML", str(tmp_path / "vm.xml"))

    def vm(targets=("vda", "vdb"), deploy_id="one-5"):
        disks = "".join("<DISK><DISK_ID>%d</DISK_ID><TARGET>%s</TARGET><FORMAT>%s</FORMAT><CLONE>YES</CLONE></DISK>"
                        % (i, escape(t), "qcow2" if i == 0 else "raw") for i, t in enumerate(targets))
        (tmp_path / "vm.xml").write_text("<VM><ID>5</ID><DEPLOY_ID>%s</DEPLOY_ID><TEMPLATE>%s</TEMPLATE></VM>"
                                         % (escape(deploy_id), disks))
    return log, vm


def _overlay_disk(tm, ds):
    src = qcow2_image(ds / "1" / "base.qcow2")
    disk = ds / "0" / "5" / "disk.0"
    assert tm("clone", "fe:%s" % src, "node1:%s" % disk, "5", "1", QCOW2_OVERLAY="yes").rc == 0
    return disk


def test_live_snapshot_falls_back_to_suspend_and_always_resumes(tm, ds, live, monkeypatch):
    log, vm = live
    vm()
    disk = _overlay_disk(tm, ds)
    monkeypatch.setenv("VIRSH_FAIL", "domfsfreeze")   # no guest agent: the domain is suspended instead
    res = tm("snap_create_live", "node1:%s" % disk, "0", "5", LIBVIRT_URI="qemu+ssh://x/system")
    assert res.rc == 0, res
    calls = [line for line in log.read_text().splitlines() if not line.startswith("<")]
    tmp = log.with_name("virsh.log.files").read_text().strip()
    assert calls == ["-c qemu+ssh://x/system domfsfreeze one-5", "-c qemu+ssh://x/system suspend one-5",
                     "-c qemu+ssh://x/system snapshot-create one-5 --disk-only --atomic --no-metadata "
                     "--reuse-external --xmlfile " + tmp,
                     "-c qemu+ssh://x/system resume one-5"]
    assert not os.path.exists(tmp), "the domain snapshot XML is a private temp file, removed after use"
    assert os.readlink(disk) == "disk.0.snap/1"


def test_live_snapshot_refused_by_libvirt_leaves_no_overlay_and_thaws(tm, ds, live, monkeypatch):
    """--atomic: libvirt left the domain on the old file; the new overlay goes (stock leaves it: every retry fails)."""
    log, vm = live
    vm()
    disk = _overlay_disk(tm, ds)
    monkeypatch.setenv("VIRSH_FAIL", "snapshot-create")
    res = tm("snap_create_live", "node1:%s" % disk, "0", "5")
    assert res.rc != 0
    assert os.readlink(disk) == "disk.0.snap/0" and sorted(os.listdir(str(disk) + ".snap")) == ["0", "disk.0.snap"]
    assert log.read_text().splitlines()[-1] == "-c qemu:///system domfsthaw one-5"
    monkeypatch.setenv("VIRSH_FAIL", "")
    assert tm("snap_create_live", "node1:%s" % disk, "0", "5").rc == 0, "a retry works"
    assert os.readlink(disk) == "disk.0.snap/1"


def test_live_snapshot_nothing_happens_when_the_domain_cannot_be_frozen(tm, ds, live, monkeypatch):
    log, vm = live
    vm()
    disk = _overlay_disk(tm, ds)
    monkeypatch.setenv("VIRSH_FAIL", "domfsfreeze suspend")
    res = tm("snap_create_live", "node1:%s" % disk, "0", "5")
    assert res.rc != 0 and "Could not domfsfreeze or suspend domain" in res.err
    assert "snapshot-create" not in log.read_text() and os.readlink(disk) == "disk.0.snap/0"


def test_live_snapshot_xml_holds_targets_as_data(tm, ds, live):
    """A TARGET with quotes and markup is escaped in the domain snapshot XML (stock pastes it in as is)."""
    import xml.etree.ElementTree as ET
    log, vm = live
    vm(targets=("vda", "x'/><disk name='vdz"))
    disk = _overlay_disk(tm, ds)
    assert tm("snap_create_live", "node1:%s" % disk, "0", "5").rc == 0
    doc = ET.fromstring(log.read_text().split("\n", 2)[2].split("\n-c ")[0])
    assert [(d.get("name"), d.get("snapshot")) for d in doc.iter("disk")] == [
        ("vda", "external"), ("x'/><disk name='vdz", "no")]
    assert doc.find("disks/disk/source").get("file") == str(disk) + ".snap/1"


def test_live_snapshot_needs_a_deploy_id(tm, ds, live):
    _log, vm = live
    vm(deploy_id="")
    disk = _overlay_disk(tm, ds)
    res = tm("snap_create_live", "node1:%s" % disk, "0", "5")
    assert res.rc != 0 and "no DEPLOY_ID" in res.err
