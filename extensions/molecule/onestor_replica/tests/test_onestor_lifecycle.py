"""VM life-cycles through our onestor transfer driver and its replica, driven by real oned 7.4.

Cluster 100 has two dummy hypervisors, ost-rep (the REPLICA_HOST of
onestor_system_100) and ost-h2, with local datastore directories: every move
between machines is a real copy over ssh. oned calls the driver the role
installed with its real arguments. After each step the files on the machines
(presence, checksums, the replica's cache) and oned's state are checked; at
the end no VM directory is left on any machine (the replica's cache stays, by
design).

Issue 13 items checked here: 9 (undeploy, stop and cold migration move each
disk, then the VM directory, without losing a disk), 14 (REPLICA_HOST read
from the VM's system datastore) and the backups (a full backup through the
stock rsync backup datastore, restored by ``onevm restore``).
"""
import pytest

from conftest import ACTIVE, CLI, DONE, NODES, POWEROFF, RUNNING, STOPPED, UNDEPLOYED, md5, wait

FE, REP, H2 = NODES["ost-fe"], NODES["ost-rep"], NODES["ost-h2"]
DATASTORES = "/var/lib/one/datastores"
CACHE = DATASTORES + "/replica_cache"
MiB = 1 << 20
one, xml, wait_vm = CLI.one, CLI.xml, CLI.wait_vm
USED = []  # every VM id, for the final check


@pytest.fixture(scope="module")
def system_ds():
    return CLI.ds_id("onestor_system_100")


@pytest.fixture(scope="module")
def image():
    """An 8 MiB raw datablock of onestor_images (DS_MAD fs) filled with 4 MiB of random data, then a hole."""
    CLI.remove_stale("oneimage", "ost-base")
    iid = CLI.new_id("oneimage", "create", "-d", "onestor_images", "--name", "ost-base", "--type", "DATABLOCK",
                     "--size", "8", "--format", "raw")
    wait("image READY", lambda: xml("oneimage", "show", str(iid)).findtext("STATE") == "1", 300)
    source = xml("oneimage", "show", str(iid)).findtext("SOURCE")
    FE.check_output("runuser -u oneadmin -- sh -c 'head -c 4M /dev/urandom | dd of=%s conv=notrunc status=none'",
                    source)
    yield {"id": iid, "source": source, "md5": md5(FE, source)}
    one("oneimage", "delete", str(iid))
    wait("image gone", lambda: one("oneimage", "show", str(iid), check=False).rc != 0)
    assert not FE.file(source).exists


@pytest.fixture(scope="module")
def template(image):
    CLI.remove_stale("onetemplate", "ost-vm")
    tmpl = ('NAME="ost-vm"\nCPU="0.1"\nMEMORY="64"\n'
            'DISK=[IMAGE_ID="%d"]\nDISK=[TYPE="fs",SIZE="16",FORMAT="raw"]\n' % image["id"])
    FE.check_output("install -d -o oneadmin -g oneadmin /var/tmp/ost && printf %s > /var/tmp/ost/vm.tmpl && "
                    "chown oneadmin: /var/tmp/ost/vm.tmpl", tmpl)
    tid = CLI.new_id("onetemplate", "create", "/var/tmp/ost/vm.tmpl")
    yield tid
    one("onetemplate", "delete", str(tid))
    FE.check_output("rm -rf /var/tmp/ost")


def vm_dir(system_ds, vmid):
    return "%s/%d/%d" % (DATASTORES, system_ds, vmid)


def check_disks(system_ds, vmid, image, host):
    """The VM's disks on the host it runs on, and on no other machine: disk.0 a copy of the image (data and
    size), disk.1 the 16 MiB volatile disk."""
    d = vm_dir(system_ds, vmid)
    node = NODES[host]
    assert md5(node, d + "/disk.0") == image["md5"]
    assert node.file(d + "/disk.0").size == 8 * MiB
    assert node.file(d + "/disk.1").size == 16 * MiB
    for name, other in NODES.items():
        if name != host:
            assert not other.file(d).exists, (name, d)


def deploy(template, system_ds, host="ost-h2"):
    vmid = CLI.new_id("onetemplate", "instantiate", str(template), "--hold")
    USED.append(vmid)
    one("onevm", "deploy", str(vmid), host, str(system_ds))
    wait_vm(vmid, ACTIVE, RUNNING)
    assert CLI.vm_host(vmid) == host
    return vmid


def terminate(system_ds, vmid):
    one("onevm", "terminate", "--hard", str(vmid))
    wait_vm(vmid, DONE)
    for name, node in NODES.items():
        assert not node.file(vm_dir(system_ds, vmid)).exists, name


def poweroff(vmid):
    one("onevm", "poweroff", "--hard", str(vmid))
    wait_vm(vmid, POWEROFF)


def test_deploy_goes_through_the_replica(image, template, system_ds):
    """clone to ost-h2: the image is copied to the replica's cache once (REPLICA_HOST of the VM's system
    datastore, issue 13 item 14), then from the replica to the host. poweroff and resume move nothing."""
    vmid = deploy(template, system_ds)
    check_disks(system_ds, vmid, image, "ost-h2")
    cached = REP.run("find %s -type f -name %s", CACHE, image["source"].rsplit("/", 1)[1]).stdout.split()
    assert len(cached) == 1, cached
    assert md5(REP, cached[0]) == image["md5"]
    poweroff(vmid)
    one("onevm", "resume", str(vmid))
    wait_vm(vmid, ACTIVE, RUNNING)
    check_disks(system_ds, vmid, image, "ost-h2")
    terminate(system_ds, vmid)


@pytest.mark.parametrize("park, parked_state", [("undeploy", UNDEPLOYED), ("stop", STOPPED)])
def test_park_and_resume_on_the_other_host(image, template, system_ds, park, parked_state):
    """undeploy (or stop): oned moves each disk, then the VM directory, to the front-end; resume moves them
    to the host it is deployed on. No disk is lost on the way (issue 13 item 9: only deployment.0 survived)."""
    vmid = deploy(template, system_ds)
    disk1 = md5(H2, vm_dir(system_ds, vmid) + "/disk.1")
    one("onevm", park, *(["--hard"] if park == "undeploy" else []), str(vmid))
    wait_vm(vmid, parked_state)
    parked = vm_dir(system_ds, vmid)
    assert md5(FE, parked + "/disk.0") == image["md5"]
    assert md5(FE, parked + "/disk.1") == disk1
    assert not H2.file(parked).exists
    host = CLI.resume_on(vmid, "ost-rep", system_ds)
    # oned's scheduler may have placed it first, on any host and system datastore of cluster 100
    now_ds = CLI.vm_ds(vmid)
    check_disks(now_ds, vmid, image, host)
    assert md5(NODES[host], vm_dir(now_ds, vmid) + "/disk.1") == disk1
    assert not FE.file(parked).exists
    terminate(now_ds, vmid)


def rx_bytes(node):
    return int(node.check_output("cat /sys/class/net/eth0/statistics/rx_bytes"))


def test_cold_migrate(image, template, system_ds):
    """Cold migration ost-h2 -> ost-rep: the VM directory streams host to host over the hosts' own ssh, as stock
    ssh/mv (issue 13 item 12): the 4 MiB of disk data never reach the front-end."""
    vmid = deploy(template, system_ds)
    before = rx_bytes(FE)
    one("onevm", "migrate", str(vmid), "ost-rep")
    wait_vm(vmid, ACTIVE, RUNNING)
    received = rx_bytes(FE) - before
    assert received < 2 * MiB, "the front-end received %d bytes during the migration" % received
    assert CLI.vm_host(vmid) == "ost-rep"
    check_disks(system_ds, vmid, image, "ost-rep")
    terminate(system_ds, vmid)


def test_disk_snapshots_resize_and_saveas_in_poweroff(image, template, system_ds):
    vmid = deploy(template, system_ds)
    poweroff(vmid)
    disk0 = vm_dir(system_ds, vmid) + "/disk.0"
    one("onevm", "disk-snapshot-create", str(vmid), "0", "s0")
    wait("snapshot s0", lambda: xml("onevm", "show", str(vmid)).find("SNAPSHOTS/SNAPSHOT") is not None, 120)
    wait_vm(vmid, POWEROFF)
    # change the disk, then revert to the snapshot: the image's data again
    H2.check_output("runuser -u oneadmin -- sh -c 'printf changed | dd of=%s conv=notrunc status=none'", disk0)
    assert md5(H2, disk0) != image["md5"]
    one("onevm", "disk-snapshot-revert", str(vmid), "0", "0")
    wait("disk.0 reverted", lambda: md5(H2, disk0) == image["md5"], 120)
    wait_vm(vmid, POWEROFF)
    one("onevm", "disk-snapshot-delete", str(vmid), "0", "0")
    wait("snapshot deleted", lambda: xml("onevm", "show", str(vmid)).find("SNAPSHOTS/SNAPSHOT") is None, 120)
    wait_vm(vmid, POWEROFF)
    one("onevm", "disk-resize", str(vmid), "1", "32")
    wait("disk.1 32 MiB", lambda: H2.file(vm_dir(system_ds, vmid) + "/disk.1").size == 32 * MiB, 120)
    wait_vm(vmid, POWEROFF)
    # disk-saveas: our cpds copies the host's disk into a new image of onestor_images on the front-end
    iid = CLI.new_id("onevm", "disk-saveas", str(vmid), "0", "ost-saved")
    wait("saved image READY", lambda: xml("oneimage", "show", str(iid)).findtext("STATE") == "1", 300)
    wait_vm(vmid, POWEROFF)
    saved = xml("oneimage", "show", str(iid)).findtext("SOURCE")
    assert md5(FE, saved) == image["md5"]
    terminate(system_ds, vmid)
    one("oneimage", "delete", str(iid))
    wait("saved image gone", lambda: not FE.file(saved).exists)


@pytest.fixture(scope="module")
def backup_ds():
    """A backup datastore of OpenNebula's stock rsync driver whose rsync host is ost-rep."""
    CLI.remove_stale("onedatastore", "ost-backups")
    FE.check_output("install -d -o oneadmin -g oneadmin /var/tmp/ost-bk && printf %s > /var/tmp/ost-bk/ds.tmpl && "
                    "chown oneadmin: /var/tmp/ost-bk/ds.tmpl",
                    'NAME="ost-backups"\nTYPE="BACKUP_DS"\nDS_MAD="rsync"\nTM_MAD="-"\n'
                    'RSYNC_HOST="ost-rep"\nRSYNC_USER="oneadmin"\n')
    dsid = CLI.new_id("onedatastore", "create", "/var/tmp/ost-bk/ds.tmpl")
    yield dsid
    one("onedatastore", "delete", str(dsid))
    FE.check_output("rm -rf /var/tmp/ost-bk")
    REP.check_output("rm -rf %s", "%s/%d" % (DATASTORES, dsid))


def test_backup_and_restore(image, template, system_ds, backup_ds):
    """A full backup of a powered-off VM by our prebackup/postbackup and the stock rsync datastore, then oned's
    ``onevm restore`` through our restore.

    The lab's oned runs the dummy VM driver, whose backup answers at once without the three steps of the KVM
    driver (one_vmm_exec.rb: TM prebackup, the datastore's backup, TM postbackup). So the test runs those steps as
    the KVM driver does (its argv, the VM's XML on stdin) on the front-end, then ``onevm backup`` registers the
    backup image, whose id (``dummy-backup-id``, the dummy driver's answer) is given to the backup on ost-rep.
    ``onevm restore`` is oned's own: our restore reads the backup through the rsync driver's ``ls`` and
    ``downloader.sh`` and replaces the VM's disk on its host.
    """
    vmid = deploy(template, system_ds)
    try:
        _backup_and_restore(image, system_ds, backup_ds, vmid)
    finally:
        if CLI.vm_state(vmid)[0] != DONE:
            terminate(system_ds, vmid)


def _assert_exists(node, path):
    assert node.file(path).exists, (node.backend.hostname, path)


def _backup_and_restore(image, system_ds, backup_ds, vmid):
    poweroff(vmid)
    d = vm_dir(system_ds, vmid)
    iid, source, stored = CLI.backup_through_drivers(
        vmid, tm_mad="onestor", host=("ost-h2", H2), vm_dir=d, system_ds=system_ds, backup_ds=backup_ds,
        rsync_node=REP, workdir="/var/tmp/ost-bk", check_prebackup=lambda path: _assert_exists(H2, path),
        check_stored=lambda path: _assert_exists(REP, path))
    # the disk changes, then oned restores the backup through our restore
    H2.check_output("runuser -u oneadmin -- sh -c 'printf changed | dd of=%s conv=notrunc status=none'", d + "/disk.0")
    one("onevm", "restore", str(vmid), iid)
    wait("disk.0 restored", lambda: H2.run("qemu-img convert -U -O raw %s /tmp/ost-restored && md5sum "
                                           "/tmp/ost-restored", d + "/disk.0").stdout.split()[:1] == [image["md5"]],
         180)
    wait_vm(vmid, POWEROFF)
    assert not H2.file(d + "/disk.0.backup").exists
    H2.check_output("rm -f /tmp/ost-restored")
    one("onevm", "resume", str(vmid))
    wait_vm(vmid, ACTIVE, RUNNING)
    terminate(system_ds, vmid)
    one("oneimage", "delete", iid)   # the rsync driver's rm removes the backup from ost-rep
    wait("backup image gone", lambda: one("oneimage", "show", iid, check=False).rc != 0, 120)
    assert not REP.file("%s/%s" % (stored, source)).exists


SNAPS = DATASTORES + "/replica_snaps"   # REPLICA_RECOVERY_SNAPS_DIR (the role's default)


def _image_ds_template(images_ds):
    """The image datastore's template as ``onedatastore update`` takes it."""
    tpl = xml("onedatastore", "show", str(images_ds)).find("TEMPLATE")
    return "".join('%s="%s"\n' % (e.tag, (e.text or "").replace('"', '\\"')) for e in tpl)


def test_recovery_snapshots_through_oned(system_ds):
    """Recovery snapshots (issue 13 item 17), as far as the dummy VM driver lets oned go.

    RECOVERY_SNAPSHOT_FREQ on the image datastore reaches the VM's disk through oned's own inheritance (the role
    adds ``INHERIT_DATASTORE_ATTR = "RECOVERY_SNAPSHOT_FREQ"``); oned's clone then gives the disk stock's recovery
    layout on the host and the replica keeps its base; the terminate removes the replica's recovery directory.
    The probe's part (libvirt's external snapshot) needs a real hypervisor: tests/differential runs it with the
    recording fake of virsh, against stock's script.
    """
    assert FE.run("grep -Eq '^INHERIT_DATASTORE_ATTR *= *\"RECOVERY_SNAPSHOT_FREQ\"' /etc/one/oned.conf").rc == 0
    images_ds = CLI.ds_id("onestor_images")
    saved = _image_ds_template(images_ds)
    CLI.remove_stale("oneimage", "ost-recovery")
    CLI.remove_stale("onetemplate", "ost-recovery")
    FE.check_output("install -d -o oneadmin -g oneadmin /var/tmp/ost-rs && printf %s > /var/tmp/ost-rs/ds.tmpl && "
                    "chown oneadmin: /var/tmp/ost-rs/ds.tmpl", 'RECOVERY_SNAPSHOT_FREQ="600"\nCONVERT="NO"\n')
    one("onedatastore", "update", str(images_ds), "/var/tmp/ost-rs/ds.tmpl", "--append")
    iid = tid = vmid = None
    try:
        # a qcow2 image, registered from a file with CONVERT=NO (the role's CONVERT=yes would make it the
        # datastore's DRIVER, raw; so would a new datablock)
        FE.check_output("qemu-img create -q -f qcow2 /var/tmp/ost-rs/base.qcow2 8M && "
                        "qemu-io -c 'write -P 0x5a 0 1M' /var/tmp/ost-rs/base.qcow2 >/dev/null && "
                        "chown oneadmin: /var/tmp/ost-rs/base.qcow2")
        iid = CLI.new_id("oneimage", "create", "-d", "onestor_images", "--name", "ost-recovery", "--path",
                         "/var/tmp/ost-rs/base.qcow2", "--format", "qcow2", "--type", "OS")
        wait("image READY", lambda: xml("oneimage", "show", str(iid)).findtext("STATE") == "1", 300)
        FE.check_output("printf %s > /var/tmp/ost-rs/vm.tmpl && chown oneadmin: /var/tmp/ost-rs/vm.tmpl",
                        'NAME="ost-recovery"\nCPU="0.1"\nMEMORY="64"\nDISK=[IMAGE_ID="%d"]\n' % iid)
        tid = CLI.new_id("onetemplate", "create", "/var/tmp/ost-rs/vm.tmpl")
        vmid = CLI.new_id("onetemplate", "instantiate", str(tid), "--hold")
        USED.append(vmid)
        # (the disk's FORMAT says raw: oned applies the datastore's TM_MAD_CONF DRIVER; the file is qcow2, which is
        # what the layout needs, so the driver reads the file's own format)
        assert xml("onevm", "show", str(vmid)).findtext("TEMPLATE/DISK/RECOVERY_SNAPSHOT_FREQ") == "600"
        one("onevm", "deploy", str(vmid), "ost-h2", str(system_ds))
        wait_vm(vmid, ACTIVE, RUNNING)
        d = vm_dir(system_ds, vmid)
        # stock's layout on the host: disk.0 -> disk.0.snap/base.1, a qcow2 overlay of disk.0.snap/base
        assert H2.file(d + "/disk.0").linked_to == d + "/disk.0.snap/base.1"
        assert H2.file(d + "/disk.0.snap/disk.0.snap").is_symlink
        info = H2.check_output("qemu-img info -U --output=json %s", d + "/disk.0.snap/base.1")
        assert '"backing-filename": "disk.0.snap/base"' in info, info
        # the guest sees the image's data through the overlay
        assert H2.run("qemu-img compare -U %s %s", d + "/disk.0", d + "/disk.0.snap/base").rc == 0
        # the replica keeps the base, the link the probe's copies of base.1 complete
        source = xml("oneimage", "show", str(iid)).findtext("SOURCE")
        rec = "%s/%d" % (SNAPS, vmid)
        assert REP.file(rec + "/disk.0").is_symlink
        assert md5(REP, rec + "/disk.0.snap/base") == md5(FE, source)
        terminate(system_ds, vmid)
        assert not REP.file(rec).exists
    finally:
        if vmid is not None and CLI.vm_state(vmid)[0] != DONE:
            terminate(system_ds, vmid)
        if tid is not None:
            one("onetemplate", "delete", str(tid))
        if iid is not None:
            one("oneimage", "delete", str(iid))
            wait("image gone", lambda: one("oneimage", "show", str(iid), check=False).rc != 0)
        FE.check_output("printf %s > /var/tmp/ost-rs/ds.tmpl", saved)
        one("onedatastore", "update", str(images_ds), "/var/tmp/ost-rs/ds.tmpl")
        FE.check_output("rm -rf /var/tmp/ost-rs")
    assert _image_ds_template(images_ds) == saved


def test_oned_monitors_the_image_datastore():
    free = wait("FREE_MB of onestor_images",
                lambda: int(xml("onedatastore", "show", "onestor_images").findtext("FREE_MB")))
    assert free > 0


def test_nothing_left_behind(system_ds):
    """Last: no VM in oned, and no directory of any VM these tests ran on any machine, in either system datastore
    of cluster 100 (oned's scheduler may place a resumed VM on the plain one)."""
    vms = xml("onevm", "list").findall("VM")
    assert vms == [], [v.findtext("ID") for v in vms]
    assert USED
    for dsid in (system_ds, CLI.ds_id("onestor_system_plain")):
        for name, node in NODES.items():
            for vmid in USED:
                assert not node.file(vm_dir(dsid, vmid)).exists, (name, dsid, vmid)
