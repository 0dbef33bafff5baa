"""VM life-cycles through our nfs_shared transfer driver, driven by real oned 7.4.

oned calls the driver the nfs_shared role installed (/var/lib/one/remotes/tm/
nfs_shared, synced to the hosts) with its real arguments; the hosts are dummy
hypervisors, so no guest runs, but every disk operation is real. After each
step the files on the hosts (presence, qemu-img info, checksums) and oned's
state are checked, and at the end nothing is left behind.

Undeploy, stop, cold migration and disk snapshots are in the sequence since
the issue 13 fixes (mv of the same path on a shared datastore, the qcow2
snapshot layout). A full backup through the stock rsync backup datastore (the
front-end its rsync host) is restored by oned's ``onevm restore`` through our
restore.
"""
import json

import pytest

from conftest import (ACTIVE, CLI, DATASTORES, DONE, FE, HOSTS, POWEROFF, RUNNING, STOPPED, UNDEPLOYED,
                      one, remove_stale, wait, wait_vm, xml)
from lab_oned import as_oneadmin

SRC = "/var/tmp/olc/base.qcow2"
ds_id, vm_host = CLI.ds_id, CLI.vm_host


@pytest.fixture(scope="module")
def image():
    """A qcow2 image with 1 MiB of known data, registered in nfs_images (DS_MAD fs, TM nfs_shared)."""
    remove_stale("oneimage", "olc-base")
    FE.check_output("install -d -o oneadmin -g oneadmin /var/tmp/olc && rm -f %s && "
                    "qemu-img create -q -f qcow2 %s 32M && qemu-io -c 'write -P 0x5a 0 1M' %s >/dev/null && "
                    "chown oneadmin: %s", SRC, SRC, SRC, SRC)
    out = one("oneimage", "create", "-d", "nfs_images", "--name", "olc-base", "--path", SRC,
              "--format", "qcow2", "--type", "OS")
    iid = int(out.stdout.split(":")[1])
    wait("image READY", lambda: xml("oneimage", "show", str(iid)).findtext("STATE") == "1")
    source = xml("oneimage", "show", str(iid)).findtext("SOURCE")
    yield {"id": iid, "source": source, "sha256": FE.file(SRC).sha256sum}
    one("oneimage", "delete", str(iid))
    wait("image gone", lambda: one("oneimage", "show", str(iid), check=False).rc != 0)
    assert not FE.file(source).exists
    FE.check_output("rm -rf /var/tmp/olc")


@pytest.fixture(scope="module")
def template(image):
    remove_stale("onetemplate", "olc-vm")
    tmpl = ('NAME="olc-vm"\nCPU="0.1"\nMEMORY="64"\n'
            'DISK=[IMAGE_ID="%d"]\nDISK=[TYPE="fs",SIZE="16",FORMAT="raw"]\n' % image["id"])
    FE.check_output("printf %s > /var/tmp/olc/vm.tmpl && chown oneadmin: /var/tmp/olc/vm.tmpl", tmpl)
    out = one("onetemplate", "create", "/var/tmp/olc/vm.tmpl")
    tid = int(out.stdout.split(":")[1])
    yield tid
    one("onetemplate", "delete", str(tid))


def vm_dir(vmid):
    return "%s/%d/%d" % (DATASTORES, ds_id("nfs_system"), vmid)


def qemu_info(node, path):
    return json.loads(node.check_output("qemu-img info --output=json %s", path))


def check_disks(vmid, image, host):
    """The VM's disks on the host it runs on: disk.0 a copy of the image, disk.1 the 16 MiB volatile disk."""
    node = HOSTS[host]
    d = vm_dir(vmid)
    assert node.file(d + "/disk.0").exists, d
    assert qemu_info(node, d + "/disk.0")["format"] == "qcow2"
    # same guest data as the image (qemu-img compare reads through any backing chain)
    assert node.run("qemu-img compare -q %s %s/disk.0", image["source"], d).rc == 0
    assert node.file(d + "/disk.1").size == 16 * 1024 * 1024
    assert qemu_info(node, d + "/disk.1")["format"] == "raw"


def deploy(template, host="olc-h1"):
    out = one("onetemplate", "instantiate", str(template), "--hold")
    vmid = int(out.stdout.split(":")[1])
    one("onevm", "deploy", str(vmid), host, str(ds_id("nfs_system")))
    wait_vm(vmid, ACTIVE, RUNNING)
    assert vm_host(vmid) == host
    return vmid


def terminate(vmid):
    one("onevm", "terminate", "--hard", str(vmid))
    wait_vm(vmid, DONE)
    for node in HOSTS.values():
        assert not node.file(vm_dir(vmid)).exists


def test_deploy_poweroff_resume_terminate(image, template):
    vmid = deploy(template)
    check_disks(vmid, image, "olc-h1")
    one("onevm", "poweroff", "--hard", str(vmid))
    wait_vm(vmid, POWEROFF)
    check_disks(vmid, image, "olc-h1")
    one("onevm", "resume", str(vmid))
    wait_vm(vmid, ACTIVE, RUNNING)
    check_disks(vmid, image, "olc-h1")
    terminate(vmid)
    # the image itself is untouched by the VM
    assert FE.file(image["source"]).exists


def test_disk_saveas_in_poweroff(image, template):
    """disk-saveas: oned runs our cpds into a new image of nfs_images."""
    vmid = deploy(template)
    one("onevm", "poweroff", "--hard", str(vmid))
    wait_vm(vmid, POWEROFF)
    out = one("onevm", "disk-saveas", str(vmid), "0", "olc-saved")
    iid = int(out.stdout.split(":")[1])
    wait("saved image READY", lambda: xml("oneimage", "show", str(iid)).findtext("STATE") == "1")
    wait_vm(vmid, POWEROFF)
    saved = xml("oneimage", "show", str(iid)).findtext("SOURCE")
    assert FE.run("qemu-img compare -q %s %s", image["source"], saved).rc == 0
    terminate(vmid)
    one("oneimage", "delete", str(iid))
    wait("saved image gone", lambda: not FE.file(saved).exists)


def _resume_on(vmid, host):
    return CLI.resume_on(vmid, host, ds_id("nfs_system"))


def _undeploy_resume(image, template):
    vmid = deploy(template)
    one("onevm", "undeploy", "--hard", str(vmid))
    wait_vm(vmid, UNDEPLOYED)
    check_disks(vmid, image, _resume_on(vmid, "olc-h2"))
    terminate(vmid)


def _stop_resume(image, template):
    vmid = deploy(template)
    one("onevm", "stop", str(vmid))
    wait_vm(vmid, STOPPED)
    check_disks(vmid, image, _resume_on(vmid, "olc-h2"))
    terminate(vmid)


def _cold_migrate(image, template):
    vmid = deploy(template)
    one("onevm", "migrate", str(vmid), "olc-h2")
    wait_vm(vmid, ACTIVE, RUNNING)
    assert vm_host(vmid) == "olc-h2"
    check_disks(vmid, image, "olc-h2")
    terminate(vmid)


def _disk_snapshots(image, template):
    vmid = deploy(template)
    one("onevm", "poweroff", "--hard", str(vmid))
    wait_vm(vmid, POWEROFF)
    one("onevm", "disk-snapshot-create", str(vmid), "0", "s0")
    wait("snapshot s0", lambda: xml("onevm", "show", str(vmid)).find("SNAPSHOTS/SNAPSHOT") is not None, 120)
    wait_vm(vmid, POWEROFF)
    one("onevm", "disk-snapshot-revert", str(vmid), "0", "0")
    wait_vm(vmid, POWEROFF)
    one("onevm", "disk-snapshot-delete", str(vmid), "0", "0")
    wait("snapshot deleted", lambda: xml("onevm", "show", str(vmid)).find("SNAPSHOTS/SNAPSHOT") is None)
    wait_vm(vmid, POWEROFF)
    check_disks(vmid, image, "olc-h1")
    terminate(vmid)


def _disk_resize(image, template):
    vmid = deploy(template)
    one("onevm", "poweroff", "--hard", str(vmid))
    wait_vm(vmid, POWEROFF)
    one("onevm", "disk-resize", str(vmid), "1", "32")
    wait("disk.1 32 MiB", lambda: HOSTS["olc-h1"].file(vm_dir(vmid) + "/disk.1").size == 32 * 1024 * 1024, 120)
    wait_vm(vmid, POWEROFF)
    terminate(vmid)


def test_disk_resize_in_poweroff(image, template):
    """disk-resize of the volatile disk: oned runs our resize on the host."""
    _disk_resize(image, template)


def test_undeploy_resume(image, template):
    """undeploy and resume: oned moves each disk, then the VM directory, to the same path (issue 13 item 1)."""
    _undeploy_resume(image, template)


def test_stop_resume(image, template):
    """stop and resume: the same moves as undeploy, through the front-end's view of the shared datastore."""
    _stop_resume(image, template)


def test_cold_migrate(image, template):
    """Cold migration to the other host: the same path seen from two hosts, nothing moves (issue 13 item 1)."""
    _cold_migrate(image, template)


def test_disk_snapshots_in_poweroff(image, template):
    """disk-snapshot-create/-revert/-delete on the qcow2 overlay clone (issue 13 item 2: the snapshot layout)."""
    _disk_snapshots(image, template)


BK = "/var/tmp/olc-bk"


@pytest.fixture(scope="module")
def backup_ds():
    """A backup datastore of OpenNebula's stock rsync driver whose rsync host is the front-end, olc-fe (its
    BASE_PATH is in the datastores volume; converge.yml lets the hosts' oneadmin ssh to olc-fe)."""
    remove_stale("onedatastore", "olc-backups")
    FE.check_output("install -d -o oneadmin -g oneadmin %s && printf %%s %s > %s/ds.tmpl && "
                    "chown oneadmin: %s/ds.tmpl",
                    BK, 'NAME="olc-backups"\nTYPE="BACKUP_DS"\nDS_MAD="rsync"\nTM_MAD="-"\n'
                    'RSYNC_HOST="olc-fe"\nRSYNC_USER="oneadmin"\n', BK, BK)
    dsid = CLI.new_id("onedatastore", "create", BK + "/ds.tmpl")
    yield dsid
    # a backup image a failed test left would keep the datastore from being deleted
    for iid in xml("onedatastore", "show", str(dsid)).findall("IMAGES/ID"):
        one("oneimage", "delete", "--force", iid.text, check=False)
    wait("backup datastore empty", lambda: xml("onedatastore", "show", str(dsid)).find("IMAGES/ID") is None, 120)
    one("onedatastore", "delete", str(dsid))
    FE.check_output("rm -rf %s %s", BK, "%s/%d" % (DATASTORES, dsid))


def raw_md5(node, path, check=True):
    """md5 of the guest data of ``path`` on ``node`` (``qemu-img convert`` to raw: any format, through its
    backing chain); None when it cannot be read and not ``check``."""
    res = node.run('t=$(mktemp) && qemu-img convert -U -O raw %s "$t" && md5sum "$t"; rc=$?; rm -f "$t"; exit $rc',
                   path)
    if check:
        assert res.rc == 0, (node.backend.hostname, path, res.stderr)
    return res.stdout.split()[0] if res.rc == 0 else None


def test_backup_and_restore(image, template, backup_ds):
    """A full backup of a powered-off VM by our prebackup/postbackup and the stock rsync datastore, then oned's
    ``onevm restore`` through our restore (stock shared's layout: disk.0 -> disk.0.snap/0).

    The lab's oned runs the dummy VM driver, whose backup answers at once without the three steps of the KVM
    driver (one_vmm_exec.rb: TM prebackup, the datastore's backup, TM postbackup). So the test runs those steps as
    the KVM driver does (its argv, the VM's XML on stdin) on the front-end, then ``onevm backup`` registers the
    backup image, whose id (``dummy-backup-id``, the dummy driver's answer) is given to the backup on olc-fe.
    ``onevm restore`` is oned's own: our restore reads the backup through the rsync driver's ``ls`` and
    ``downloader.sh`` and replaces the VM's disk on its host.
    """
    vmid = deploy(template)
    try:
        _backup_and_restore(image, backup_ds, vmid)
    finally:
        if CLI.vm_state(vmid)[0] != DONE:
            terminate(vmid)


def _check_prebackup(h1, path, want):
    """disk.0 (a qcow2 overlay of the image) flattened by prebackup: the image's data, no backing file."""
    assert raw_md5(h1, path) == want
    info = qemu_info(h1, path)
    assert info["format"] == "qcow2" and "backing-filename" not in info, info


def _check_stored(path, want):
    """The backup stored on olc-fe (the rsync host) holds the image's data."""
    assert raw_md5(FE, path) == want


def _backup_and_restore(image, backup_ds, vmid):
    h1 = HOSTS["olc-h1"]
    one("onevm", "poweroff", "--hard", str(vmid))
    wait_vm(vmid, POWEROFF)
    d = vm_dir(vmid)
    system_ds = ds_id("nfs_system")
    want = raw_md5(FE, image["source"])
    assert raw_md5(h1, d + "/disk.0") == want
    iid, source, stored = CLI.backup_through_drivers(
        vmid, tm_mad="nfs_shared", host=("olc-h1", h1), vm_dir=d, system_ds=system_ds, backup_ds=backup_ds,
        rsync_node=FE, workdir=BK, check_prebackup=lambda path: _check_prebackup(h1, path, want),
        check_stored=lambda path: _check_stored(path, want))
    # the disk changes (guest data written into the qcow2 overlay), then oned restores the backup through our restore
    as_oneadmin(h1, "qemu-io -c 'write -P 0xa5 0 64k' %s >/dev/null", d + "/disk.0")
    assert raw_md5(h1, d + "/disk.0") != want
    one("onevm", "restore", str(vmid), iid)
    wait("disk.0 restored", lambda: raw_md5(h1, d + "/disk.0", check=False) == want, 180)
    wait_vm(vmid, POWEROFF)
    # stock shared's layout: disk.0 -> disk.0.snap/0, the downloaded backup; nothing left of the download
    assert h1.check_output("readlink %s", d + "/disk.0") == "disk.0.snap/0"
    assert not h1.file(d + "/disk.0.backup").exists
    check_disks(vmid, image, "olc-h1")
    one("onevm", "resume", str(vmid))
    wait_vm(vmid, ACTIVE, RUNNING)
    assert raw_md5(h1, d + "/disk.0") == want
    terminate(vmid)
    one("oneimage", "delete", iid)   # the rsync driver's rm removes the backup from olc-fe
    wait("backup image gone", lambda: one("oneimage", "show", iid, check=False).rc != 0, 120)
    assert not FE.file("%s/%s" % (stored, source)).exists
    left = FE.check_output("find %s -mindepth 1 ! -type d", "%s/%d" % (DATASTORES, backup_ds))
    assert left == "", left


def test_nothing_left_behind():
    """Last: no VM in oned, no VM directory on any host (module fixtures delete the images after this)."""
    vms = xml("onevm", "list").findall("VM")
    assert vms == [], [v.findtext("ID") for v in vms]
    for name, node in HOSTS.items():
        left = node.check_output("ls -A %s", "%s/%d" % (DATASTORES, ds_id("nfs_system")))
        assert left == "", (name, left)
