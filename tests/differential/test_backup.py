"""Backups and restores, stock OpenNebula 7.4.0 against ours, through the stock rsync backup datastore (issue 13).

oned's KVM driver runs a backup as ``prebackup`` (``prebackup_live`` for a running VM) of the system datastore's
TM driver, the backup datastore's ``backup``, then ``postbackup`` (``_live``); ``onevm restore`` runs the TM's
``restore``, which reads the backup back through the backup datastore's ``ls`` and ``downloader.sh``. Here the
backup datastore is the stock ``rsync`` driver with the front-end machine as its rsync host, so both sides' backups
travel the same way and restore reads what the other side of the comparison wrote the same way. Stock's Ruby parts
run unmodified: the front-end actions call oned through OpenNebula's Ruby API (answered by the XML-RPC test
double), the hosts run ``/var/tmp/one/tm/lib/backup_qcow2.rb``, and ``virsh`` is the recording test double.

After every step the exit status, the virsh calls and every file of every machine are compared, as in
``test_differential``; the rsync driver's random backup id is the one thing renamed (``BACKUP``).
"""
from __future__ import annotations

import subprocess
import tempfile

import pytest

from cases import VMID, ds_xml, make_file, vm_xml
from harness import ROWS
from test_differential import diff, normal_stdout, virsh_calls

BACKUP_DS, IMAGE = 200, 300

# (driver, sequence, step index) -> reason; each is in the README's driver section.
GUEST_HEADER = ("stock lets qemu-img probe each disk's format, so a raw disk whose guest wrote a qcow2 header naming "
                "a host file as backing file is backed up with that file's content; ours reads a disk the template "
                "says is raw as raw, so the backup holds the disk's bytes")
INTENDED = {("shared", "guest-qcow2-header", step): GUEST_HEADER for step in (0, 1, 2)}

LAYOUTS = {
    # stock driver: (ours, system datastore id, disk.1 is an overlay on the image (shared) or a file (ssh))
    "shared": ("nfs_shared", 100, True),
    "ssh": ("onestor", 0, False),
}


def _disks(driver, sys_ds, persistent=False):
    img_ds = 101 if driver == "shared" else 1
    common = {"DATASTORE_ID": img_ds, "TM_MAD": driver, "TYPE": "FILE", "CLONE": "YES"}
    first = {"CLONE": "NO", "SAVE": "YES", "PERSISTENT": "YES"} if persistent else {}
    return [
        dict(common, DISK_ID=0, TARGET="vda", FORMAT="raw", DRIVER="raw", SIZE=8,
             SOURCE="{M}/datastores/%d/img0" % img_ds, **first),
        dict(common, DISK_ID=1, TARGET="vdb", FORMAT="qcow2", DRIVER="qcow2", SIZE=8,
             SOURCE="{M}/datastores/%d/img1" % img_ds),
        {"DISK_ID": 2, "TARGET": "vdc", "FORMAT": "raw", "DRIVER": "raw", "SIZE": 4, "TYPE": "fs",
         "TM_MAD": driver, "DATASTORE_ID": sys_ds},
    ]


def _vm(driver, sys_ds, state, lcm_state, freeze="NONE", persistent=False):
    xml = vm_xml(disks=_disks(driver, sys_ds, persistent), sys_ds=sys_ds, state=state, lcm_state=lcm_state,
                 deploy_id="one-%d" % VMID)
    return xml.replace("</VM>", "<BACKUPS><BACKUP_CONFIG><BACKUP_VOLATILE>NO</BACKUP_VOLATILE><FS_FREEZE>%s</FS_FREEZE>"
                                "<KEEP_LAST/><LAST_DATASTORE_ID>%d</LAST_DATASTORE_ID><MODE>FULL</MODE>"
                                "</BACKUP_CONFIG><BACKUP_IDS/></BACKUPS></VM>" % (freeze, BACKUP_DS))


def _backup_ds(limits=None):
    """The rsync backup datastore; ``limits``: its confinement (``{"CPU_QUOTA": 50, ...}``: RSYNC_CPU_QUOTA...)."""
    extra = {"RSYNC_%s" % key: value for key, value in (limits or {}).items()}
    xml = ds_xml(BACKUP_DS, "-", "BACKUP_DS", RSYNC_HOST="fe", RSYNC_USER="root", DS_MAD="rsync", RSYNC_NICE=5,
                 **extra)
    return xml.replace("<TM_MAD>-</TM_MAD>", "<DS_MAD>rsync</DS_MAD><TM_MAD>-</TM_MAD>", 1)


def _image(backup_id):
    return ("<IMAGE><ID>%d</ID><UID>0</UID><GID>0</GID><NAME>vm-backup</NAME><TYPE>6</TYPE><DISK_TYPE>0</DISK_TYPE>"
            "<PERSISTENT>0</PERSISTENT><SOURCE>%s</SOURCE><PATH/><FORMAT>raw</FORMAT><SIZE>16</SIZE><STATE>1</STATE>"
            "<DATASTORE_ID>%d</DATASTORE_ID><DATASTORE>backups</DATASTORE><VMS><ID>%d</ID></VMS>"
            "<TEMPLATE/><BACKUP_INCREMENTS/></IMAGE>" % (IMAGE, backup_id, BACKUP_DS, VMID))


def _prepare(runner, driver, vm, persistent=False, guest_header=False, ds_limits=None):
    world = runner.world
    world.reset()
    _ours, sys_ds, overlay = LAYOUTS[driver]
    mnt = str(world.mnt)
    img_ds = 101 if driver == "shared" else 1
    vm_dir = "%s/datastores/%d/%d" % (mnt, sys_ds, VMID)
    if persistent:   # stock shared's ln of a raw image: disk.0 is a link to the image itself
        make_file(runner, "fe", "%s/datastores/%d/img0" % (mnt, img_ds), "raw", 8)
        runner.on("host-a", 'mkdir -p "$1" && ln -s "$2" "$1/disk.0"', vm_dir, "%s/datastores/%d/img0" % (mnt, img_ds))
    elif guest_header:   # a raw disk whose guest wrote a qcow2 header naming a file of the host as its backing file
        runner.on("host-a", 'set -e; mkdir -p "$1"; printf "host secret" >"$2"; chmod 600 "$2"\n'
                  'qemu-img create -q -f qcow2 -F raw -b "$2" "$1/disk.0" 8M\n', vm_dir, mnt + "/secret")
    else:
        make_file(runner, "host-a", vm_dir + "/disk.0", "raw", 8)
    make_file(runner, "host-a", vm_dir + "/disk.2", "raw", 4)
    if overlay:   # stock shared's clone of a qcow2 image: disk.1 -> disk.1.snap/0, an overlay on the image
        make_file(runner, "fe", "%s/datastores/%d/img1" % (mnt, img_ds), "qcow2", 8)
        runner.on("host-a", 'set -e; cd "$1"; mkdir disk.1.snap; ln -s . disk.1.snap/disk.1.snap\n'
                  'qemu-img create -q -f qcow2 -F qcow2 -b "$2" disk.1.snap/0\n'
                  'qemu-io -c "write -P 0x33 1M 64k" disk.1.snap/0 >/dev/null; ln -s disk.1.snap/0 disk.1\n',
                  vm_dir, "%s/datastores/%d/img1" % (mnt, img_ds))
    else:
        make_file(runner, "host-a", vm_dir + "/disk.1", "qcow2", 8)
    (world.real("fe", "%s/datastores/%d" % (mnt, BACKUP_DS))).mkdir(parents=True, exist_ok=True)
    (world.fake / ("onevm-%d.xml" % VMID)).write_text(vm.replace("{M}", mnt))
    (world.fake / ("onedatastore-%d.xml" % BACKUP_DS)).write_text(_backup_ds(ds_limits).replace("{M}", mnt))
    (world.fake / ("onedatastore-%d.xml" % sys_ds)).write_text(ds_xml(sys_ds, driver).replace("{M}", mnt))
    return vm_dir


def _ds_backup(runner, args, vm, ds_limits=None):
    """The stock rsync datastore's backup action, as oned's KVM driver runs it (the same for both sides)."""
    world = runner.world
    stdin = "<DS_DRIVER_ACTION_DATA>%s%s</DS_DRIVER_ACTION_DATA>" % (_backup_ds(ds_limits), vm)
    script = runner.stock.location / "var" / "remotes" / "datastore" / "rsync" / "backup"
    argv = world.mount_prefix("fe") + [str(script)] + [str(a) for a in args]
    return subprocess.run(argv, input=stdin.replace("{M}", str(world.mnt)).encode(), capture_output=True,
                          env=runner.env(), timeout=120, check=False)


def _record(runner, proc, backup_id=None):
    files = runner.world.snapshot()
    if backup_id:
        files = {k.replace(backup_id, "BACKUP"): v for k, v in files.items()}
    stdout = normal_stdout(proc.stdout.decode(errors="replace"))
    return {"rc": proc.returncode, "ok": proc.returncode == 0, "virsh": virsh_calls(runner.world),
            "stdout": stdout.replace(backup_id, "BACKUP") if backup_id else stdout,
            "stderr": proc.stderr.decode(errors="replace").strip()[-600:], "files": files,
            "units": runner.world.user_units()}


def play(runner, driver, side, live=False, persistent=False, guest_header=False, restore_disk=-1, ds_limits=None):
    ours, sys_ds, _overlay = LAYOUTS[driver]
    name = driver if side == "stock" else ours
    vm = _vm(driver, sys_ds, 3 if live else 8, 69 if live else 0, "AGENT" if live else "NONE", persistent)
    vm_dir = _prepare(runner, driver, vm, persistent, guest_header, ds_limits)
    mnt = str(runner.world.mnt)
    args = ["host-a:" + vm_dir, "0:1", "one-%d" % VMID, "-", VMID, sys_ds]
    stdin = vm.replace("{M}", mnt).encode()
    suffix = "_live" if live else ""
    records, steps = [], []
    proc = runner.run(side, name, "prebackup" + suffix, args, stdin)
    for broken in (b"LoadError", b"cannot load such file", b"NameError", b"NoMethodError"):
        assert broken not in proc.stderr, "the harness is broken: %s: %s" % (side, proc.stderr[-1500:])
    records.append(_record(runner, proc))
    steps.append("prebackup" + suffix)
    if not records[-1]["ok"]:
        return steps, records
    proc = _ds_backup(runner, args, vm, ds_limits)
    assert proc.returncode == 0, "the stock rsync backup failed: %s" % proc.stderr[-1500:]
    backup_id = proc.stdout.decode().split()[0]
    records.append(_record(runner, proc, backup_id))
    steps.append("ds:rsync/backup")
    proc = runner.run(side, name, "postbackup" + suffix, args, stdin)
    records.append(_record(runner, proc, backup_id))
    steps.append("postbackup" + suffix)
    if live:
        return steps, records
    if guest_header:   # what the guest would see in the backup's disk.0
        backup = runner.world.real("fe", "%s/datastores/%d/%d/%s/disk.0.0" % (mnt, BACKUP_DS, VMID, backup_id))
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(backup), tmp + "/raw"], check=True)
            with open(tmp + "/raw", "rb") as handle:
                records[1]["disk0"] = handle.read(1 << 16)
        return steps, records
    # the VM's disks change, then the backup comes back
    runner.on("host-a", 'set -e; printf changed | dd of="$1/disk.0" conv=notrunc status=none\n'
              'qemu-io -c "write -P 0x55 0 64k" "$1/disk.1" >/dev/null\n', vm_dir)
    (runner.world.fake / ("oneimage-%d.xml" % IMAGE)).write_text(_image(backup_id))
    proc = runner.run(side, name, "restore", ["host-a:" + vm_dir, VMID, IMAGE, -1, restore_disk])
    records.append(_record(runner, proc, backup_id))
    steps.append("restore")
    return steps, records


def _at_most_stock_allocation(stock, ours):
    """``ours`` with the allocation of each restored file that is sparser than stock's set to stock's.

    Stock restores through ``dd bs=64k conv=sparse`` from a pipe, which leaves a hole only where one whole read
    is zeros: how sparse the file comes out varies from run to run. Ours leaves a hole at every 4 KiB block of
    zeros, so it allocates at most what stock does; that is what is compared.
    """
    files = dict(ours["files"])
    for key, entry in files.items():
        other = stock["files"].get(key)
        if entry.get("type") == "file" and other and other.get("type") == "file" and \
                entry.get("alloc_kib", 0) < other.get("alloc_kib", 0):
            files[key] = dict(entry, alloc_kib=other["alloc_kib"])
    return dict(ours, files=files)


def _check(driver, sequence, steps, stock, ours):
    problems = []
    for index, (step, a, b) in enumerate(zip(steps, stock, ours)):
        key = (driver, sequence, index)
        detail = diff(a, _at_most_stock_allocation(a, b) if step == "restore" else b)
        if key in INTENDED:
            if not detail:
                problems.append("step %d %s: intended difference (%s) is not there" % (index, step, INTENDED[key]))
            status, detail = "intended-difference", INTENDED[key]
        else:
            status = "same" if not detail else "different"
            if detail:
                problems.append("step %d %s: %s" % (index, step, detail))
        ROWS.append((driver, sequence, "%d:%s" % (index, step), status, detail if status != "same" else ""))
        if not a["ok"] or not b["ok"]:
            problems.append("step %d %s failed: stock rc %d (%s) ours rc %d (%s)" % (
                index, step, a["rc"], a["stderr"][-400:], b["rc"], b["stderr"][-400:]))
    return problems


def compare(runner, driver, sequence, **options):
    """Play the sequence with stock's driver, then ours, from the same start; fail on any unexplained difference.
    Returns both sides' records."""
    steps, stock = play(runner, driver, "stock", **options)
    _steps, ours = play(runner, driver, "ours", **options)
    problems = _check(driver, sequence, steps, stock, ours)
    assert not problems, "\n".join(problems)
    return stock, ours


@pytest.mark.parametrize("driver", sorted(LAYOUTS))
def test_full_backup_and_restore_agree(runner, driver):
    _stock, ours = compare(runner, driver, "backup-restore", live=False)
    # what the comparison stands on: the backup holds the disks as they were, the restore brought them back
    after = ours[-1]["files"]
    vm_dir = "datastores/%d/%d" % (LAYOUTS[driver][1], VMID)
    label = "nfs:" + vm_dir[len("datastores/"):] if driver == "shared" else "host-a:" + vm_dir
    backup = {k: v for k, v in ours[1]["files"].items() if "/BACKUP/" in k}
    assert sorted(k.rsplit("/", 1)[1] for k in backup) == ["disk.0.0", "disk.1.0", "vm.xml"], backup
    assert backup["fe:datastores/%d/%d/BACKUP/disk.0.0" % (BACKUP_DS, VMID)]["qemu"]["format"] == "qcow2"
    disk0 = label + ("/disk.0.snap/0" if driver == "shared" else "/disk.0")
    assert after[disk0]["qemu"]["data"] == backup["fe:datastores/%d/%d/BACKUP/disk.0.0" % (BACKUP_DS, VMID)][
        "qemu"]["data"]
    assert not [k for k in after if k.startswith(label + "/backup")], "the backup directory was left behind"


@pytest.mark.parametrize("driver", sorted(LAYOUTS))
def test_live_full_backup_agrees(runner, driver):
    _stock, ours = compare(runner, driver, "backup-live", live=True)
    calls = ours[0]["virsh"] + ours[2]["virsh"]
    assert any(" snapshot-create-as " in c and "--diskspec vdc,snapshot=no" in c for c in calls), calls
    assert sum(" blockcommit " in c for c in calls) == 2 and calls[0].endswith("domfsfreeze one-%d" % VMID), calls


LIMITS = {"CPU_QUOTA": 50, "MEMORY_MAX_MB": 256, "MAX_WIOPS": 100}


@pytest.mark.parametrize("driver, live", [("shared", True), ("ssh", False)])
def test_a_backup_confined_in_a_systemd_slice_agrees(runner, driver, live):
    """The backup datastore sets RSYNC_CPU_QUOTA, _MEMORY_MAX_MB and _MAX_WIOPS: the prebackup runs in the systemd
    user slice backup.<DS_ID>.slice (stock's systemd_cmd: the unit file written under ~/.config/systemd/user, the
    user manager reloaded, the backup run by ``systemd-run --user ... --wait --slice=``), nice/ionice left out.
    systemd-run and systemctl are recording test doubles; each machine's ~/.config is its own."""
    _stock, ours = compare(runner, driver, "backup-slice" + ("-live" if live else ""), live=live, ds_limits=LIMITS)
    vm_dir = "%s/datastores/%d/%d" % (runner.world.mnt, LAYOUTS[driver][1], VMID)
    assert ours[0]["units"]["host-a"] == {
        "systemd/user/backup.%d.slice" % BACKUP_DS: "[Slice]\nCPUQuota=50%%\nMemoryMax=256M\nIOReadIOPSMax=\n"
                                                    "IOWriteIOPSMax=%s 100\n\n" % vm_dir,
        "systemd/user/.lock": ""}
    assert ours[0]["virsh"][:2] == ["systemctl --user daemon-reload", "systemd-run --user --quiet --pipe --collect "
                                    "--wait --slice=backup.%d.slice" % BACKUP_DS], ours[0]["virsh"]
    # the stock rsync datastore's backup (both sides) confines its upload from the host in the same slice
    assert any(c.startswith("systemd-run ") and "--slice=backup.%d.slice" % BACKUP_DS in c for c in ours[1]["virsh"])


def test_restore_of_one_disk_agrees(runner):
    """``onevm restore --disk-id 1``: only that disk comes back (the other keeps its changes)."""
    _stock, ours = compare(runner, "ssh", "backup-restore-disk1", restore_disk=1)
    after, before = ours[-1]["files"], ours[0]["files"]
    disk0 = "host-a:datastores/0/%d/disk.0" % VMID
    assert after[disk0]["sha256"] != before[disk0]["sha256"], "disk.0 was restored too"


def test_restore_of_a_persistent_disk_agrees(runner):
    """A persistent disk (disk.0 a link to the image): restore replaces the image itself (stock's replace_p)."""
    _stock, ours = compare(runner, "shared", "backup-restore-persistent", persistent=True)
    after = ours[-1]["files"]
    assert after["nfs:100/%d/disk.0" % VMID] == {"type": "link", "target": "%s/datastores/101/img0.snap/0" % (
        runner.world.mnt), "uid": 0}
    assert after["nfs:101/img0"]["qemu"]["format"] == "qcow2"


def test_a_guest_written_qcow2_header_does_not_leak_a_host_file(runner):
    """The intended difference: stock's backup of such a raw disk holds the host file, ours the disk's bytes."""
    stock, ours = compare(runner, "shared", "guest-qcow2-header", guest_header=True)
    assert stock[1]["disk0"][:11] == b"host secret", "stock no longer leaks: the intended difference is gone"
    assert ours[1]["disk0"][:4] == b"QFI\xfb" and b"host secret" not in ours[1]["disk0"]
