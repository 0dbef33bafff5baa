"""The installed nfs_shared transfer driver, run as oneadmin on the front-end against host2 over real ssh.

These are the executables `nebula.storage.tm_driver` installed under
/var/lib/one/remotes/tm/nfs_shared, called the way oned's one_tm calls them
(7.x arguments). ssh between frontend and host2 is the oneadmin mesh of the
onestor_replica role in this scenario. Results are checked on host2.
"""
import testinfra

FE = testinfra.get_host("podman://fe")
H2 = testinfra.get_host("podman://host2")
TM = "/var/lib/one/remotes/tm/nfs_shared"
IMG = "/var/lib/one/datastores/1/lab-image.qcow2"
VMDIR = "/var/lib/one/datastores/0/42"


def oneadmin(host, cmd):
    return host.run("su - oneadmin -s /bin/sh -c %s", cmd)


def action(*args):
    out = oneadmin(FE, " ".join(["'%s'" % a for a in (TM + "/" + args[0],) + args[1:]]))
    assert out.rc == 0, (args, out.stdout, out.stderr)
    return out


def test_actions_between_frontend_and_host2():
    setup = oneadmin(FE, "install -d %s && rm -f %s && qemu-img create -q -f qcow2 %s 64M && "
                         "qemu-io -c 'write -P 0xab 0 1M' %s >/dev/null" % (IMG.rsplit("/", 1)[0], IMG, IMG, IMG))
    assert setup.rc == 0, setup.stderr
    oneadmin(H2, "rm -rf %s" % VMDIR)
    oneadmin(FE, "rm -rf %s" % VMDIR)

    # clone: a full copy (QCOW2_OVERLAY=no), same bytes, still qcow2
    action("clone", "fe:" + IMG, "host2:%s/disk.0" % VMDIR, "42", "1")
    assert H2.file(VMDIR + "/disk.0").sha256sum == FE.file(IMG).sha256sum
    assert '"format": "qcow2"' in H2.check_output("qemu-img info --output=json %s/disk.0", VMDIR)

    # ln of a qcow2 image: stock shared/ln's snapshot layout, disk.1 -> IMG.snap/0 -> IMG
    # (IMG.snap is made where the datastore is, here on host2, which does not mount it)
    action("ln", "fe:" + IMG, "host2:%s/disk.1" % VMDIR, "42", "1")
    assert H2.check_output("readlink %s/disk.1", VMDIR) == IMG + ".snap/0"
    assert H2.check_output("readlink %s.snap/0", IMG) == IMG

    # mkswap: a 16 MiB swap area
    action("mkswap", "16", "host2:%s/disk.2" % VMDIR, "42", "0")
    assert "swap" in H2.check_output("blkid -o value -s TYPE %s/disk.2", VMDIR)
    assert H2.file(VMDIR + "/disk.2").size == 16 * 1024 * 1024

    # context: files into an ISO on the host
    oneadmin(FE, "printf 'ETH0_IP=198.18.0.50\\n' > /tmp/context.sh")
    action("context", "/tmp/context.sh", "host2:%s/disk.3" % VMDIR, "42", "0")
    assert "ISO 9660" in H2.check_output("file -b %s/disk.3", VMDIR)

    # mv of the same path: a no-op, as stock shared/mv (the datastore is shared: cold migration, undeploy)
    action("mv", "host2:" + VMDIR, "fe:" + VMDIR, "42", "0")
    assert H2.file(VMDIR + "/disk.0").exists and not FE.file(VMDIR).exists

    # mv between machines to another system datastore: host2's VM directory lands on the front-end
    moved = VMDIR.replace("/datastores/0/", "/datastores/100/")
    action("mv", "host2:" + VMDIR, "fe:" + moved, "42", "100")
    assert not H2.file(VMDIR).exists
    assert FE.file(moved + "/disk.0").sha256sum == FE.file(IMG).sha256sum

    # delete
    action("delete", "fe:" + moved, "42", "100")
    assert not FE.file(moved).exists


def test_a_missing_source_fails_clearly_and_leaves_nothing():
    out = oneadmin(FE, "'%s/clone' fe:/var/lib/one/datastores/1/missing host2:%s/disk.9 42 1" % (TM, VMDIR))
    assert out.rc != 0
    assert "source does not exist" in out.stderr
    assert not H2.file(VMDIR + "/disk.9").exists
