"""VM life-cycles through our onestor transfer driver and its replica, driven by real oned 7.4.

Cluster 100 has two dummy hypervisors, ost-rep (the REPLICA_HOST of
onestor_system_100) and ost-h2, with local datastore directories: every move
between machines is a real copy over ssh. oned calls the driver the role
installed with its real arguments. After each step the files on the machines
(presence, checksums, the replica's cache) and oned's state are checked; at
the end no VM directory is left on any machine (the replica's cache stays, by
design).

Issue 13 items checked here: 9 (undeploy, stop and cold migration move each
disk, then the VM directory, without losing a disk) and 14 (REPLICA_HOST read
from the VM's system datastore).
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
