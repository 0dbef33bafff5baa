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


def test_oned_double_answers_on_frontend(host):
    """The lab's oned TEST DOUBLE serves the XML-RPC API with oneadmin's credentials."""
    if host.backend.get_hostname() != "fe":
        pytest.skip("front-end only")
    assert host.service("oned-double").is_running
    script = (
        "import xmlrpc.client;"
        "auth=open('/var/lib/one/.one/one_auth').read().strip();"
        "r=xmlrpc.client.ServerProxy('http://localhost:2633/RPC2').one.hostpool.info(auth,-2,-1,-1);"
        "print(r[0], 'host1' in r[1], 'host2' in r[1])"
    )
    out = host.check_output("python3 -c \"%s\"" % script)
    assert out == "True True True"


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


def test_datastores_exist_in_oned(host):
    """Through the oned TEST DOUBLE's API, as the CLI would list them."""
    _frontend_only(host)
    script = (
        "import xmlrpc.client;"
        "auth=open('/var/lib/one/.one/one_auth').read().strip();"
        "r=xmlrpc.client.ServerProxy('http://localhost:2633/RPC2').one.datastorepool.info(auth,-2,-1,-1);"
        "print(r[1])"
    )
    pool = host.check_output("python3 -c \"%s\"" % script)
    for name in ("nfs_system", "nfs_images", "onestor_system_100"):
        assert "<NAME>%s</NAME>" % name in pool, name
    assert "<REPLICA_HOST><![CDATA[host2]]></REPLICA_HOST>" in pool or "REPLICA_HOST>host2<" in pool


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
