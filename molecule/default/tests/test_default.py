"""Verify the default scenario: every lab machine is an OpenNebula machine."""
import pytest

testinfra_hosts = ["podman://frontend", "podman://host1", "podman://host2"]


def test_oneadmin_has_opennebula_ids(host):
    user = host.user("oneadmin")
    assert user.exists
    assert (user.uid, user.gid) == (9869, 9869)


def test_sshd_listens(host):
    assert host.service("ssh").is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_frontend_has_oned_conf(host):
    if host.backend.get_hostname() != "frontend":
        pytest.skip("front-end only")
    conf = host.file("/etc/one/oned.conf")
    assert conf.exists
    assert conf.group == "oneadmin"
    assert 'TM_MAD = [' in conf.content_string


def test_lab_dns_resolves_peers(host):
    for peer in ("frontend", "host1", "host2"):
        out = host.run("getent hosts %s", peer)
        assert out.rc == 0, out.stderr
        assert out.stdout.startswith("198.18.0."), out.stdout


def test_oned_double_answers_on_frontend(host):
    """The lab's oned TEST DOUBLE serves the XML-RPC API with oneadmin's credentials."""
    if host.backend.get_hostname() != "frontend":
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
