"""Verify the default scenario: every lab machine is an OpenNebula machine."""
import pytest

testinfra_hosts = ["podman://fe", "podman://host1", "podman://host2"]


def test_oneadmin_has_opennebula_ids(host):
    user = host.user("oneadmin")
    assert user.exists
    assert (user.uid, user.gid) == (9869, 9869)


def test_sshd_listens(host):
    assert host.service("ssh").is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_frontend_has_oned_conf(host):
    if host.backend.get_hostname() != "fe":
        pytest.skip("front-end only")
    conf = host.file("/etc/one/oned.conf")
    assert conf.exists
    assert conf.group == "oneadmin"
    assert 'TM_MAD = [' in conf.content_string


def test_lab_dns_resolves_peers(host):
    for peer in ("fe", "host1", "host2"):
        out = host.run("getent hosts %s", peer)
        assert out.rc == 0, out.stderr
        assert out.stdout.startswith("198.18.0."), out.stdout


def test_real_oned_answers_on_frontend(host):
    """Real oned 7.4 (lab/oned) serves the XML-RPC API with oneadmin's credentials; both hosts are its
    (dummy) hypervisors."""
    if host.backend.get_hostname() != "fe":
        pytest.skip("front-end only")
    assert host.service("opennebula").is_running
    hosts = {h.findtext("NAME"): h for h in one_xml(host, "one.hostpool.info", -2, -1, -1).findall("HOST")}
    assert sorted(hosts) == ["host1", "host2"]
    assert hosts["host1"].findtext("CLUSTER_ID") == "0" and hosts["host2"].findtext("CLUSTER_ID") == "100"


def one_xml(host, method, *args):
    """The answer of an XML-RPC call to oned on the front-end, parsed."""
    import xml.etree.ElementTree as ET
    script = (
        "import xmlrpc.client;"
        "auth=open('/var/lib/one/.one/one_auth').read().strip();"
        "r=xmlrpc.client.ServerProxy('http://localhost:2633/RPC2').%s(auth,%s);"
        "assert r[0], r[1];"
        "print(r[1])" % (method, ",".join(repr(a) for a in args))
    )
    return ET.fromstring(host.check_output("python3 -c \"%s\"" % script))


def _frontend_only(host):
    if host.backend.get_hostname() != "fe":
        pytest.skip("front-end only")


def test_oned_conf_knows_both_backends_once(host):
    _frontend_only(host)
    conf = host.file("/etc/one/oned.conf").content_string
    for driver in ("nfs_shared", "onestor"):
        assert conf.count('NAME = "%s"' % driver) + conf.count('NAME="%s"' % driver) == 1, driver
    tm_mad = conf[conf.index("TM_MAD = ["):]
    tm_mad = tm_mad[:tm_mad.index("]")]
    assert ",nfs_shared" in tm_mad and ",onestor" in tm_mad


def datastore_pool(host):
    return {d.findtext("NAME"): d for d in one_xml(host, "one.datastorepool.info", -2, -1, -1).findall("DATASTORE")}


def test_datastores_as_oned_sees_them(host):
    """After site.yml, oned's own datastore pool (what `onedatastore list` shows) has each role's datastores with
    their drivers, clusters and REPLICA_HOST."""
    _frontend_only(host)
    pool = datastore_pool(host)
    want = {  # name: (TYPE, TM_MAD, DS_MAD, clusters, REPLICA_HOST)
        "nfs_system": ("1", "nfs_shared", "-", ["0"], None),
        "nfs_images": ("0", "nfs_shared", "fs", ["0"], None),
        "onestor_system_100": ("1", "onestor", "-", ["100"], "host2"),
        "onestor_images": ("0", "onestor", "fs", ["100"], None),
    }
    for name, (kind, tm_mad, ds_mad, clusters, replica) in want.items():
        assert name in pool, sorted(pool)
        ds = pool[name]
        got = (ds.findtext("TYPE"), ds.findtext("TM_MAD"), ds.findtext("DS_MAD"),
               [c.text for c in ds.findall("CLUSTERS/ID")], ds.findtext("TEMPLATE/REPLICA_HOST"))
        assert got == (kind, tm_mad, ds_mad, clusters, replica), (name, got)


@pytest.mark.parametrize("name", ["nfs_system", "nfs_images", "onestor_images"])
def test_oned_monitors_the_datastores(host, name):
    """oned's own monitoring fills FREE_MB: the image datastores through DS_MAD fs, the shared system datastore
    through our nfs_shared driver's monitor (the role puts it in DATASTORE_MAD's -s list). onestor_system_100 is
    not shared: oned expects its hosts' KVM probes to report it, and the lab's hosts are dummy hypervisors."""
    _frontend_only(host)
    import time
    for _attempt in range(150):
        free = int(datastore_pool(host)[name].findtext("FREE_MB") or 0)
        if free > 0:
            return
        time.sleep(2)
    raise AssertionError("oned reports no FREE_MB for %s" % name)


def test_nfs_export_and_fstab(host):
    name = host.backend.get_hostname()
    if name == "fe":
        assert "/var/lib/one/datastores" in host.file("/etc/ganesha/opennebula.conf").content_string
        assert host.service("nfs-ganesha").is_running
    elif name == "host1":
        assert "fe:/var/lib/one/datastores" in host.file("/etc/fstab").content_string
    else:
        assert "nfs" not in host.file("/etc/fstab").content_string


def test_onestor_mesh_between_frontend_and_replica(host):
    name = host.backend.get_hostname()
    if name == "host1":
        pytest.skip("host1 is in the NFS cluster, outside the OneStor mesh")
    for peer in ("fe", "host2"):
        out = host.run("su - oneadmin -s /bin/sh -c 'ssh -o BatchMode=yes %s hostname'" % peer)
        assert out.rc == 0 and out.stdout.strip() == peer, out.stderr
