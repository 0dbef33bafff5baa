"""Incremental backups with INCREMENT_MODE=CBT of a running VM: stock OpenNebula 7.4.0 against ours.

The chains of ``test_backup_cbt`` (a full backup, then two increments, the guest writing to its disk with qemu-io in
between, each through ``prebackup_live``, the stock rsync ``backup`` and ``postbackup_live``; then, powered off,
``restore`` of the last increment and of the full backup), with the VM running: stock's ``clean_checkpoints``,
``backup_full_live`` with ``:cbt`` (the checkpoint ``one-<VM_ID>-0`` created with the snapshot), ``define_parent``,
``backup_nbd_live`` (libvirt's pull-mode ``backup-begin``, the changes pulled from its NBD export) and
``stop_backup``. A chain taken powered off, live, then powered off again checks that the bitmaps the two kinds of
backup leave serve each other (stock redefines in libvirt the checkpoint a powered-off backup made).

Both sides run with the *emulating test double* of virsh in ``virsh_cbt_double``: it keeps libvirt's checkpoints as
qcow2 bitmaps of the disk files and serves a pull-mode backup with qemu-nbd, so stock's Ruby and our scripts read
real NBD exports and dirty bitmaps. What it does not emulate (a guest, external snapshots, more than one disk a
backup) is listed there. The virsh calls are compared with the checkpoint redefinitions' ``creationTime`` (the clock)
left out.
"""
from __future__ import annotations

import re
import shutil

import pytest

from cases import VMID
from test_backup import LAYOUTS
from test_backup_cbt import NBD_BACKING, _drop_nbd_backing, _guest, _record_cbt
from test_backup_incremental import _labels, compare
from virsh_cbt_double import SCRIPT, stop_all

pytestmark = pytest.mark.skipif(not all(shutil.which(tool) for tool in ("qemu-nbd", "nbdinfo", "qemu-io")),
                                reason="CBT backups need qemu-nbd, qemu-io and nbdinfo (Debian: qemu-utils, libnbd-bin)")

URI = "--connect qemu:///system"
DOM = "one-%d" % VMID


@pytest.fixture
def cbt_virsh(runner):
    world = runner.world
    path = world.bin / "virsh"
    saved = path.read_text()
    path.write_text(SCRIPT % {"log": str(world.fake / "calls.log"), "mnt": str(world.mnt)})
    try:
        yield
    finally:
        stop_all(str(world.fake / "virsh-cbt.json"))
        path.write_text(saved)


def _record_live(runner, proc, ids):
    record = _record_cbt(runner, proc, ids)
    record["virsh"] = [re.sub(r"<creationTime>[0-9]+</creationTime>", "<creationTime>T</creationTime>", call)
                       for call in record["virsh"]]
    return record


LIVE_NBD_BACKING = ("stock leaves in each live increment file (backup/disk.N.<id>, then in the backup datastore) the "
                    "backing file it pulled the changes through, libvirt's export "
                    "nbd+unix:///<TARGET>?socket=<VM_DIR>/backup.socket (format raw), gone with the backup job, so the "
                    "file alone cannot be read; ours drops it (qemu-img rebase -u -b \"\"), as for a powered-off "
                    "increment: the rsync datastore's restore rebases each increment onto the previous one anyway")


def _increments_intended(steps, numbers, reason=LIVE_NBD_BACKING):
    return {step % n: (reason, _drop_nbd_backing) for n in numbers for step in steps}


@pytest.mark.parametrize("driver", sorted(LAYOUTS))
def test_cbt_live_chain_and_restore_agree(runner, cbt_virsh, driver):
    """Full live backup, two live increments (INCREMENT_MODE=CBT); restore of the last increment, then of the
    full backup."""
    steps = ["prebackup_live[%d]", "ds:rsync/backup[%d]", "postbackup_live[%d]"]
    steps, stock, ours = compare(runner, driver, "backup-increment-cbt-live", _increments_intended(steps, (1, 2)),
                                 live=True, restores=(2, 0), inc_mode="CBT", record=_record_live)
    label = _labels(driver)
    disk = label + ("/disk.1.snap/0" if driver == "shared" else "/disk.1")
    tmp = "%s/tmp" % label
    # the first backup: every checkpoint deleted, the snapshot, the checkpoint one-<VM>-0 with it
    first = ours[steps.index("prebackup_live[0]")]
    assert [c.split()[3] for c in first["virsh"] if c.startswith("virsh ")] == [
        "checkpoint-list", "domfsfreeze", "snapshot-create-as", "checkpoint-create", "domfsthaw"], first["virsh"]
    # backup N: libvirt's pull-mode backup from checkpoint N-1, creating checkpoint N; the job stopped; the
    # checkpoints before N-1 deleted
    for n in (1, 2):
        calls = [c for c in ours[steps.index("prebackup_live[%d]" % n)]["virsh"] if c.startswith("virsh ")]
        expected = ["virsh %s checkpoint-list --name %s" % (URI, DOM),
                    "virsh %s domfsfreeze %s" % (URI, DOM),
                    "virsh %s backup-begin --reuse-external --backupxml %s --checkpointxml %s %s" % (
                        URI, "MNT/tmp/backup.xml", "MNT/tmp/checkpoint.xml", DOM),
                    "virsh %s domfsthaw %s" % (URI, DOM),
                    "virsh %s domjobinfo %s" % (URI, DOM),
                    "virsh %s domjobabort %s" % (URI, DOM),
                    "virsh %s checkpoint-list --name %s" % (URI, DOM)]
        if n == 2:
            expected.append("virsh %s checkpoint-delete %s one-%d-0" % (URI, DOM, VMID))
        normal = [re.sub(r"(--(?:backup|checkpoint)xml) \S+/tmp/", r"\1 MNT/tmp/", c) for c in calls]
        assert normal == expected, calls
        files = ours[steps.index("prebackup_live[%d]" % n)]["files"]
        bck = files[label + "/backup/disk.1.%d" % n]
        # the increment holds the guest's write since the last backup alone, and reads no other file
        assert bck["qemu"]["data"] == _guest(0x40 + n, (512 << 10) * (1 + n)) and bck["qemu"]["backing-filename"] is None
        assert sorted(b[0] for b in files[disk]["qemu"]["bitmaps"]) == ["one-%d-%d" % (VMID, i) for i in (n - 1, n)]
        assert sorted(k[len(tmp) + 1:] for k in files if k.startswith(tmp + "/")) == [
            "backup.xml", "checkpoint.xml", "scracth.1.qcow2"]
        assert not [k for k in files if k.endswith(".socket")]
        # postbackup_live of an increment merges nothing back (no snapshot was taken) and leaves no temporary file
        post = ours[steps.index("postbackup_live[%d]" % n)]
        assert post["virsh"] == [] and not [k for k in post["files"] if k.startswith(tmp)]
    at_backup = ours[steps.index("prebackup_live[2]")]["files"][disk]["qemu"]["data"]
    assert ours[steps.index("restore[2]")]["files"][disk]["qemu"]["data"] == at_backup


@pytest.mark.parametrize("driver", sorted(LAYOUTS))
def test_cbt_chain_powered_off_live_powered_off_agrees(runner, cbt_virsh, driver):
    """A full backup powered off, an increment live (libvirt does not know checkpoint 0: it is redefined from the
    disk's bitmap), an increment powered off again (from the bitmap libvirt made)."""
    intended = _increments_intended(["prebackup_live[%d]", "ds:rsync/backup[%d]", "postbackup_live[%d]"], (1,))
    intended.update(_increments_intended(["prebackup[%d]", "ds:rsync/backup[%d]", "postbackup[%d]"], (2,),
                                         NBD_BACKING))
    steps, _stock, ours = compare(runner, driver, "backup-increment-cbt-mixed", intended, live=(False, True, False),
                                  restores=(2,), inc_mode="CBT", record=_record_live)
    assert steps[3] == "prebackup_live[1]" and steps[6] == "prebackup[2]"
    calls = ours[3]["virsh"]
    redefine = [c for c in calls if " checkpoint-create " in c]
    assert redefine and redefine[0].endswith("--redefine %s" % DOM), calls
    assert any("<name>one-%d-0</name><creationTime>T</creationTime>" % VMID in c for c in calls), calls
    label = _labels(driver)
    bck = ours[6]["files"][label + "/backup/disk.1.2"]
    assert bck["qemu"]["data"] == _guest(0x42, 1536 << 10)
