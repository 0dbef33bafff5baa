"""Incremental backups with INCREMENT_MODE=CBT (changed block tracking), powered off: stock OpenNebula 7.4.0 against
ours.

The chain of ``test_backup_incremental`` (a full backup, LAST_INCREMENT_ID -1, then two increments, the guest writing
to its disk with qemu-io in between, each through ``prebackup``, the stock rsync ``backup`` and ``postbackup``; then
``restore`` of the last increment and of the first one), with INCREMENT_MODE=CBT: stock's ``backup_full`` (bitmaps
removed, ``one-<VM_ID>-0`` added) and ``backup_nbd`` (qemu-nbd with the last bitmap, nbdinfo --map, qemu-io
copy-on-read). Stock runs unmodified, with the real qemu-nbd, nbdinfo and qemu-io.

Compared after every step, besides what ``test_backup_incremental`` compares: the qcow2 bitmaps of every qcow2 file
(name, flags, granularity), and for an increment file the guest data it holds alone (its clusters over nothing).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from cases import VMID
from harness import MACHINES
from test_backup import BACKUP_DS, LAYOUTS
from test_backup_incremental import _labels, _record, compare

pytestmark = pytest.mark.skipif(not all(shutil.which(tool) for tool in ("qemu-nbd", "nbdinfo", "qemu-io")),
                                reason="CBT backups need qemu-nbd, qemu-io and nbdinfo (Debian: qemu-utils, libnbd-bin)")

NBD_BACKING = ("stock leaves in each increment file (backup/disk.N.<id>, then in the backup datastore) the backing "
               "file it pulled the changes through, nbd+unix:///?socket=<disk>.socket (format raw): the qemu-nbd that "
               "served it is gone, so the file alone cannot be read, and a qemu-nbd that listens there later would "
               "be read in its place; ours drops it (qemu-img rebase -u -b \"\"), as its SNAPSHOT-mode increments: "
               "the rsync datastore's restore rebases each increment onto the previous one anyway")


def _qcow2_extras(path):
    """``(bitmaps, hash of the data the file holds alone or None)`` of a qcow2 file."""
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                                     text=True, check=True).stdout)
    bitmaps = sorted((b["name"], sorted(b.get("flags") or []), b.get("granularity"))
                     for b in ((info.get("format-specific") or {}).get("data") or {}).get("bitmaps") or [])
    alone = None
    if (info.get("backing-filename") or "").startswith("nbd+unix:"):
        with tempfile.TemporaryDirectory() as tmp:
            copy, raw = os.path.join(tmp, "copy"), os.path.join(tmp, "raw")
            shutil.copyfile(path, copy)
            subprocess.run(["qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-b", "", copy], check=True)
            subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", copy, raw], check=True)
            with open(raw, "rb") as handle:
                alone = hashlib.sha256(handle.read()).hexdigest()
    return [list(b) for b in bitmaps], alone


def _record_cbt(runner, proc, ids):
    record = _record(runner, proc, ids)
    world = runner.world
    tops = [(m, world.disk(m)) for m in MACHINES] + [("nfs", world.base / "nfs")]
    extras = {}
    for label, top in tops:
        for root, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(root, name)
                if os.path.islink(path):
                    continue
                with open(path, "rb") as handle:
                    if handle.read(4) != b"QFI\xfb":
                        continue
                key = "%s:%s" % (label, os.path.relpath(path, top))
                for index, backup_id in enumerate(ids):
                    key = key.replace("/%s" % backup_id, "/BACKUP%d" % index)
                extras[key] = _qcow2_extras(path)
    for key, (bitmaps, alone) in extras.items():
        entry = record["files"].get(key)
        if entry and "qemu" in entry:
            entry["qemu"]["bitmaps"] = bitmaps
            if alone is not None:
                entry["qemu"]["alone"] = alone
    return record


def _drop_nbd_backing(stock, ours):
    """Stock's increment files as ours: no backing file, their data what they hold alone."""
    files = {}
    for key, entry in stock["files"].items():
        qemu = entry.get("qemu") or {}
        if "alone" in qemu:
            qemu = dict(qemu, **{"backing-filename": None, "backing-filename-format": None, "data": qemu["alone"]})
            del qemu["alone"]
            entry = dict(entry, qemu=qemu)
        files[key] = entry
    return dict(stock, files=files), ours


def _guest(pattern, offset, size=8 << 20, length=64 << 10):
    data = bytearray(size)
    data[offset:offset + length] = bytes([pattern]) * length
    return hashlib.sha256(bytes(data)).hexdigest()


@pytest.mark.parametrize("driver", sorted(LAYOUTS))
def test_cbt_chain_powered_off_and_restore_agree(runner, driver):
    """Full backup, two increments, powered off, INCREMENT_MODE=CBT; restore of the last increment, then of the
    first (the full)."""
    steps = ["prebackup[%d]", "ds:rsync/backup[%d]", "postbackup[%d]"]
    intended = {step % n: (NBD_BACKING, _drop_nbd_backing) for n in (1, 2) for step in steps}
    steps, stock, ours = compare(runner, driver, "backup-increment-cbt", intended, restores=(2, 0), inc_mode="CBT",
                                 record=_record_cbt)
    label = _labels(driver)
    disk = label + ("/disk.1.snap/0" if driver == "shared" else "/disk.1")
    for n in range(3):
        pre = ours[steps.index("prebackup[%d]" % n)]["files"]
        # the disk keeps its layout; its bitmaps: the last backup's and this one's
        expected = ["one-%d-%d" % (VMID, n)] + (["one-%d-%d" % (VMID, n - 1)] if n else [])
        assert sorted(b[0] for b in pre[disk]["qemu"]["bitmaps"]) == sorted(expected), pre[disk]
        assert not [k for k in pre if k.startswith(label + "/disk.1.snap/") and not k.endswith("/0")
                    and not k.endswith("/disk.1.snap")]
        assert not [k for k in pre if k.endswith(".socket")]
        bck = pre[label + "/backup/disk.1.%d" % n]
        assert bck["qemu"]["format"] == "qcow2" and bck["qemu"]["backing-filename"] is None
        if n:   # an increment holds the guest's write since the last backup alone (stock's as well)
            assert bck["qemu"]["data"] == _guest(0x40 + n, (512 << 10) * (1 + n))
            stock_bck = stock[steps.index("prebackup[%d]" % n)]["files"][label + "/backup/disk.1.%d" % n]
            assert stock_bck["qemu"]["alone"] == bck["qemu"]["data"]
            assert stock_bck["qemu"]["backing-filename"].startswith("nbd+unix:///?socket=")
    post = ours[steps.index("postbackup[2]")]["files"]
    for n in range(3):
        names = sorted(k.rsplit("/", 1)[1] for k in post if "/BACKUP%d/" % n in k)
        assert names == ["disk.1.%d" % n, "vm.xml"], names
    # restore of the last increment: the disk as the guest saw it at that backup; of increment 0: the full backup
    at_backup = ours[steps.index("prebackup[2]")]["files"][disk]["qemu"]["data"]
    after_last, after_first = ours[steps.index("restore[2]")]["files"], ours[steps.index("restore[0]")]["files"]
    assert after_last[disk]["qemu"]["data"] == at_backup and after_last[disk]["qemu"]["bitmaps"] == []
    full = "fe:datastores/%d/%d/BACKUP0/disk.1.0" % (BACKUP_DS, VMID)
    assert after_first[disk]["qemu"]["data"] == ours[-1]["files"][full]["qemu"]["data"] != at_backup
