"""Recovery snapshots of the onestor replica, against OpenNebula 7.4.0's own ssh driver (issue 13 item 17).

A disk with ``RECOVERY_SNAPSHOT_FREQ`` on a system datastore with a ``REPLICA_HOST`` gets stock's recovery layout
on its host (``disk.N -> disk.N.snap/base.1``, a qcow2 overlay of ``disk.N.snap/base``), and the replica keeps its
base in ``REPLICA_RECOVERY_SNAPS_DIR/<VMID>``. The KVM probe runs ``recovery_snap_create_live`` on the host every
FREQ seconds: the replica then gets ``base.1`` too. A VM recreated with its id (delete with history ACTION 14) is
cloned from there; any other delete removes the directory. Disk snapshots are copied there as well
(``disk.N.replica_snap``).

The world is the differential suite's: three machines over real ssh (host-b is the replica), the CLI doubles, the
recording fake of virsh (answering ``domstate running`` and the domain's disk list here). Every step runs with the
stock driver, then from the same start with ours; exit status, stdout, virsh calls and every file of every machine
are compared (``test_differential.diff``).
"""
from __future__ import annotations

import os
import re

import pytest

from cases import L_IMG, L_SYS, VMID, Case, disk, ds_xml, vm_xml
from test_differential import _fmt, _prepare, compare, normal_stdout, virsh_calls

FREQ = 600
A7 = "host-a:" + L_SYS + "/7"
DISK0 = L_SYS + "/7/disk.0"
SNAPS = "{M}/datastores/replica_snaps"
REVERT_BUG = ("stock bug: ssh/snap_revert of a recovery-layout disk removes disk.N.snap/base, which a snapshot taken "
              "powered off (a copy of the overlay base.1) still reads as its backing file, then copies that snapshot "
              "over base: the new base backs onto itself and the disk is lost. Ours flattens the snapshot into the "
              "new base before the old one goes")
# steps where stock fails in a way the harness would take for its own breakage
STOCK_BUGS = {("ssh", "recovery-revert", 2)}
INTENDED = {("ssh", "recovery-revert", 2): REVERT_BUG}


def _vm(action=None, **extra):
    """VM 7 on host-a, system datastore 0, one qcow2 disk with recovery snapshots; ``action`` in its history."""
    xml = vm_xml(disks=[disk(0, ds=1, tm="ssh", FORMAT="qcow2", RECOVERY_SNAPSHOT_FREQ=FREQ, **extra)], sys_ds=0,
                 deploy_id="one-7")
    if action is not None:
        xml = xml.replace("<TM_MAD>x</TM_MAD></HISTORY>", "<TM_MAD>x</TM_MAD><ACTION>%d</ACTION></HISTORY>" % action)
    return xml


DS = {0: ds_xml(0, "ssh", REPLICA_HOST="host-b"), 1: ds_xml(1, "ssh", "IMAGE_DS")}
IMAGE = ("fe", L_IMG + "/img0", "qcow2", 16)


def _set_vm(xml):
    def hook(world):
        (world.fake / ("onevm-%d.xml" % VMID)).write_text(_fmt(xml, world.mnt))
    return hook


def _running(world):
    """The domain runs and uses disk.0's overlay: the fake virsh's answers for the probe's script."""
    mnt = str(world.mnt)
    (world.fake / "virsh-domstate.out").write_text("running\n\n")
    (world.fake / "virsh-domblklist.out").write_text(
        " Target   Source\n-----------------------------------------\n vda      %s/datastores/0/7/disk.0.snap/base.1\n"
        " hda      %s/datastores/0/7/disk.1\n" % (mnt, mnt))


CASES = [
    Case("ssh", "recovery-recreate", files=[IMAGE], vm={VMID: _vm(0)}, ds=DS, steps=[
        ("clone", ["fe:" + L_IMG + "/img0", A7 + "/disk.0", VMID, 1]),
        ("recovery_snap_create_live@host-a", [VMID, DISK0, FREQ, "host-b"], _running),
        ("recovery_snap_create_live@host-a", [VMID, DISK0, FREQ, "host-b"]),
        ("snap_create", [A7 + "/disk.0", 0, VMID, 0]),
        ("delete", [A7, VMID, 0], _set_vm(_vm(14))),      # onevm recover --recreate: the recovery data stay
        ("clone", ["fe:" + L_IMG + "/img0", A7 + "/disk.0", VMID, 1], _set_vm(_vm(0))),
        ("delete", [A7, VMID, 0], _set_vm(_vm(20))),      # terminate: they go
    ]),
    Case("ssh", "recovery-revert", files=[IMAGE], vm={VMID: _vm(0, SIZE=32)}, ds=DS, steps=[
        ("clone", ["fe:" + L_IMG + "/img0", A7 + "/disk.0", VMID, 1]),   # grown to SIZE 32 on the overlay
        ("snap_create", [A7 + "/disk.0", 0, VMID, 0]),
        ("snap_revert", [A7 + "/disk.0", 0, VMID, 0]),
    ]),
    Case("ssh", "recovery-mvds", files=[IMAGE], vm={VMID: _vm(0, CLONE="NO", PERSISTENT="YES")}, ds=DS, steps=[
        ("ln", ["fe:" + L_IMG + "/img0", A7 + "/disk.0", VMID, 1]),
        ("mvds", [A7 + "/disk.0", "fe:" + L_IMG + "/img0", VMID, 1]),
    ]),
]


@pytest.fixture
def recovery_world(runner):
    """REPLICA_RECOVERY_SNAPS_DIR on the machines' own disks (stock sshrc, which ours reads too); ours reads oned's
    documents as stock does and keeps the replica cache in stock's layout."""
    world = runner.world
    sshrc = runner.stock.location / "var/remotes/etc/tm/ssh/sshrc"
    rc = runner.ours.base / "tm" / "onestor" / "onestorrc"
    saved = sshrc.read_text(), rc.read_text()
    sshrc.write_text(saved[0] + "REPLICA_RECOVERY_SNAPS_DIR=%s\n" % _fmt(SNAPS, world.mnt))
    rc.write_text(saved[1] + "ONE_LOOKUP=yes\nREPLICA_CACHE_LAYOUT=stock\n")
    yield runner
    sshrc.write_text(saved[0])
    rc.write_text(saved[1])


def _run(runner, side, action, args):
    import subprocess  # pylint: disable=import-outside-toplevel
    world = runner.world
    if "@" in action:   # run on a host, as the KVM probe does
        action, machine = action.split("@")
        # stock's from where oned copies the remotes on the hosts (the world's /var/tmp/one)
        path = "/var/tmp/one/tm/ssh/" + action if side == "stock" else runner.ours.action("onestor", action)
        argv = world.mount_prefix(machine) + [str(path)] + args
        return subprocess.run(argv, capture_output=True, env=runner.env(), timeout=120, check=False)
    return runner.run(side, "ssh" if side == "stock" else "onestor", action, args)


def _files(world):
    """Every machine's files, without the front-end's checksum files: stock's ``<image>.md5sum``, ours
    ``.<image>.onestor-sum`` (the replica freshness check, a difference on purpose listed in the README; the
    replica's ``.md5sum`` is compared, and test_replica_cache shows each side reuses the other's cache)."""
    return {k: v for k, v in world.snapshot().items()
            if not (k.startswith("fe:") and (k.endswith(".onestor-sum") or k.endswith(".md5sum")))}


def _sparser(stock, ours):
    """Ours' files with the allocation of stock's where ours allocates less (ours copies with
    ``--sparse=always``: a hole at every block of zeros, where stock's ``cp`` writes some of them)."""
    files = dict(ours["files"])
    for key, entry in files.items():
        other = stock["files"].get(key)
        if other and entry.get("type") == other.get("type") == "file" and entry["alloc_kib"] < other["alloc_kib"]:
            files[key] = dict(entry, alloc_kib=other["alloc_kib"])
    return dict(ours, files=files)


def play(runner, case, side):
    _prepare(runner, case)
    records = []
    for index, step in enumerate(case.steps):
        action, args = step[0], [_fmt(a, runner.world.mnt) for a in step[1]]
        if len(step) > 2:
            step[2](runner.world)
        proc = _run(runner, side, action, args)
        if (case.driver, case.name, index) not in STOCK_BUGS or side != "stock":
            for broken in (b"LoadError", b"unary operator expected", b"command not found"):
                assert broken not in proc.stderr + proc.stdout, "the harness is broken: %s %s: %s" % (
                    side, action, (proc.stderr + proc.stdout)[-800:])
        stdout = proc.stdout.decode(errors="replace")
        records.append({"rc": proc.returncode, "ok": proc.returncode == 0, "virsh": virsh_calls(runner.world),
                        "stdout": re.sub(r"^[0-9]{9,}$", "TIME", normal_stdout(stdout)),
                        "raw_stdout": stdout, "stderr": proc.stderr.decode(errors="replace").strip()[-600:],
                        "files": _files(runner.world)})
    return records


def _stock_lost_the_disk(stock):
    """Stock: the revert fails, base.1 is gone and the new base backs onto itself (unreadable)."""
    files = stock["files"]
    base = files.get("host-a:datastores/0/7/disk.0.snap/base", {}).get("qemu", {})
    return (not stock["ok"] and "host-a:datastores/0/7/disk.0.snap/base.1" not in files
            and base.get("backing-filename") == "disk.0.snap/base" and base.get("data", "").startswith("unreadable"))


def _revert_is_sound(ours):
    """Ours: disk.0 reads the snapshot's data (the image's), through a new base that backs onto nothing."""
    files = ours["files"]
    base = files["host-a:datastores/0/7/disk.0.snap/base"]
    snap = files["host-a:datastores/0/7/disk.0.snap/0"]
    return (ours["ok"] and base["qemu"]["backing-filename"] is None
            and files["host-a:datastores/0/7/disk.0.snap/base.1"]["qemu"]["data"] == snap["qemu"]["data"]
            and not snap["qemu"]["data"].startswith("unreadable"))


def _revert_check(stock, ours):
    if not _stock_lost_the_disk(stock):
        return "stock no longer shows the bug (%s)" % REVERT_BUG
    return "" if _revert_is_sound(ours) else "ours does not do what the intended difference says"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_recovery_snapshots_agree_with_stock(recovery_world, case):
    runner = recovery_world
    stock = play(runner, case, "stock")
    ours = play(runner, case, "ours")
    problems = compare(case, stock, ours, INTENDED, {key: _revert_check for key in INTENDED}, normal=_sparser)
    assert not problems, "\n".join(problems)
    if case.name == "recovery-recreate":
        _check_recreate(ours)


def _check_recreate(ours):
    """What the sequence is about, on our side (stock's is the same, compared above)."""
    files = [r["files"] for r in ours]
    snaps = "host-b:datastores/replica_snaps/7"
    disk0 = "host-a:datastores/0/7/disk.0"
    # the clone: the layout on the host, the base on the replica
    assert files[0][disk0] == {"type": "link", "target": "disk.0.snap/base.1", "uid": 0}
    assert files[0][disk0 + ".snap/disk.0.snap"]["target"] == "."
    assert files[0][disk0 + ".snap/base.1"]["qemu"]["backing-filename"] == "disk.0.snap/base"
    assert files[0][snaps + "/disk.0"]["target"] == "disk.0.snap/base.1"
    assert files[0][snaps + "/disk.0.snap/base"]["qemu"]["data"] == files[0]["fe:datastores/1/img0"]["qemu"]["data"]
    # the probe's run: libvirt's writes to rs_tmp, base.1 on the replica, committed back
    assert ours[1]["stdout"] == "TIME" and files[1][snaps + "/disk.0.snap/base.1"]["type"] == "file"
    assert any("snapshot-create-as one-7 recovery_snap" in call for call in ours[1]["virsh"])
    assert any(" blockcommit one-7 " in call for call in ours[1]["virsh"])
    assert ours[2]["raw_stdout"] == ours[1]["raw_stdout"] and not ours[2]["virsh"][1:]   # younger than FREQ
    assert files[3][snaps + "/disk.0.replica_snap"]["type"] == "file"
    assert snaps + "/disk.0.snap/base" in files[4]                      # recreate: kept
    assert files[5][disk0] == files[0][disk0] and files[5][disk0 + ".snap/base.1"]["type"] == "file"
    assert not [k for k in files[6] if k.startswith(snaps + "/")]        # terminate: gone


def test_recovery_needs_a_qcow2_image(recovery_world):
    """A raw image cannot have the recovery layout (its overlay names a qcow2 backing file): ours refuses before it
    copies anything; stock copies, then fails in qemu-img create and leaves the copy behind."""
    runner = recovery_world
    case = Case("ssh", "recovery-raw", files=[("fe", L_IMG + "/img0", "raw", 16)],
                vm={VMID: vm_xml(disks=[disk(0, ds=1, tm="ssh", RECOVERY_SNAPSHOT_FREQ=FREQ)], sys_ds=0)}, ds=DS,
                steps=[("clone", ["fe:" + L_IMG + "/img0", A7 + "/disk.0", VMID, 1])])
    ours = play(runner, case, "ours")[0]
    assert not ours["ok"] and "needs a qcow2 image" in ours["stderr"], ours["stderr"]
    assert not [k for k in ours["files"] if k.startswith("host-a:datastores/0/7/disk")], ours["files"]
    assert not os.path.exists(runner.world.real("host-b", _fmt(SNAPS, runner.world.mnt)))
