"""The demo's closing report (playbooks/report.yml -> nebula.storage.storage_report): the datastores come
from a real XML-RPC answer of the oned TEST DOUBLE, the exports from the nfs_shared role's own templates'
output format, and the columns line up."""
from __future__ import annotations

import re
import urllib.request
from xml.sax.saxutils import escape

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nebula.storage.plugins.filter.storage_report import FilterModule
from tests.oned_double.testing import DEFAULT_SEED, EXTRA_TM_MAD, running_double

# the double knows the drivers its oned.conf has: ours as the roles register them
SEED = dict(DEFAULT_SEED, tm_mad_conf=dict(EXTRA_TM_MAD, onestor={
    "LN_TARGET": "SYSTEM", "CLONE_TARGET": "SYSTEM", "SHARED": "NO", "DS_MIGRATE": "YES"}))

report = FilterModule().filters()["storage_report"]

GANESHA = """# Ansible managed
EXPORT {
    Export_Id = 100;
    Path = "/var/lib/one/datastores";
    Pseudo = "/var/lib/one/datastores";
    Access_Type = None;
    Squash = No_Root_Squash;
    FSAL {
        Name = VFS;
    }
    CLIENT {
        Clients = 198.18.0.0/24, 203.0.113.7;
        Access_Type = RW;
        Squash = No_Root_Squash;
    }
}
NFSv4 { Graceless = true; }
"""
EXPORTS = "# managed\n/srv/one/images 198.18.0.0/24(rw,sync,no_subtree_check,no_root_squash)\n"
FSTAB = "proc /proc proc defaults 0 0\nfe:/var/lib/one/datastores /var/lib/one/datastores nfs rw,_netdev,hard 0 0\n"


def dspool_answer(seed_datastores):
    """oned's (double's) raw answer to one.datastorepool.info, as the report's uri task receives it."""
    with running_double(seed=SEED) as d:
        for name, tmpl, cluster in seed_datastores:
            body = ("<?xml version='1.0'?><methodCall><methodName>one.datastore.allocate</methodName><params>"
                    "<param><value><string>%s</string></value></param><param><value><string>%s</string></value></param>"
                    "<param><value><int>%d</int></value></param></params></methodCall>"
                    % (escape(d.auth), escape('NAME="%s"\n%s' % (name, tmpl)), cluster))
            with urllib.request.urlopen(urllib.request.Request(d.url, body.encode(), {"Content-Type": "text/xml"}),
                                        timeout=10) as r:
                assert "<boolean>1</boolean>" in r.read().decode(), name
        body = ("<?xml version='1.0'?><methodCall><methodName>one.datastorepool.info</methodName><params>"
                "<param><value><string>%s</string></value></param></params></methodCall>" % escape(d.auth))
        with urllib.request.urlopen(urllib.request.Request(d.url, body.encode(), {"Content-Type": "text/xml"}), timeout=10) as r:
            return r.read().decode()


@pytest.fixture(scope="module")
def collected():
    answer = dspool_answer([
        ("nfs_system", 'TYPE="SYSTEM_DS"\nTM_MAD="nfs_shared"', -1),
        ("nfs_images", 'TM_MAD="nfs_shared"\nDS_MAD="fs"', -1),
        ("onestor_system_100", 'TYPE="SYSTEM_DS"\nTM_MAD="onestor"\nREPLICA_HOST="host2"', 100),
    ])
    return {
        "fe": {"frontend": True, "backends": ["nfs_shared", "onestor_replica"], "ganesha": GANESHA, "exports": EXPORTS,
               "fstab": "", "datastores": answer,
               "tm_files": [{"path": "/var/lib/one/remotes/tm/nfs_shared/clone", "checksum": "aa"},
                            {"path": "/var/lib/one/remotes/tm/nfs_shared/tm.rc", "checksum": "bb"},
                            {"path": "/var/lib/one/remotes/tm/onestor/clone", "checksum": "cc"}]},
        "host1": {"frontend": False, "backends": ["nfs_shared"], "fstab": FSTAB},
        "host2": {"frontend": False, "backends": ["onestor_replica"], "fstab": "proc /proc proc defaults 0 0\n"},
    }


def section(text, backend):
    return text.split("== %s " % backend)[1].split("\n== ")[0]


def test_one_section_per_backend_in_use(collected):
    text = report(collected)
    assert re.findall(r"^== (\w+) =+$", text, re.M) == ["nfs_shared", "onestor_replica"]
    assert "machines: front-end fe; hosts host1" in section(text, "nfs_shared")


def test_exports_mounts_and_driver_hash(collected):
    nfs = section(report(collected), "nfs_shared")
    assert re.search(r"^  fe\s+/var/lib/one/datastores\s+198\.18\.0\.0/24,203\.0\.113\.7\s+RW,No_Root_Squash$", nfs, re.M)
    assert re.search(r"^  fe\s+/srv/one/images\s+198\.18\.0\.0/24\s+rw,sync,no_subtree_check,no_root_squash$", nfs, re.M)
    assert re.search(r"^  host1\s+fe:/var/lib/one/datastores\s+/var/lib/one/datastores\s+rw,_netdev,hard$", nfs, re.M)
    assert re.search(r"^  fe\s+nfs_shared\s+sha256:[0-9a-f]{16}\s+2$", nfs, re.M)


def test_datastores_as_onedatastore_list_shows_them(collected):
    text = report(collected)
    nfs = section(text, "nfs_shared")
    header = next(line for line in nfs.splitlines() if line.strip().startswith("ID "))
    assert header.split() == ["ID", "NAME", "TM", "DS", "CLUSTERS"]  # no REPLICA_HOST column where none is set
    rows = [line for line in nfs.splitlines() if "nfs_s" in line or "nfs_i" in line]
    assert [r.split()[1:4] for r in rows if "nfs_shared " in r + " " and r.split()[0].isdigit()] == \
        [["nfs_system", "nfs_shared", "-"], ["nfs_images", "nfs_shared", "fs"]]
    # aligned: every row's NAME column starts where the header's does
    col = header.index("NAME")
    for r in rows:
        if r.split()[0].isdigit():
            assert r[col - 1] == " " and r[col] != " ", r


def test_replica_host_of_each_cluster(collected):
    one = section(report(collected), "onestor_replica")
    assert re.search(r"^  100\s+host2$", one, re.M)
    assert re.search(r"^  fe\s+onestor\s+sha256:[0-9a-f]{16}\s+1$", one, re.M)


def test_replica_host_column_and_clusters():
    answer = dspool_answer([("onestor_system_100", 'TYPE="SYSTEM_DS"\nTM_MAD="onestor"\nREPLICA_HOST="host2"', 100)])
    text = report({"fe": {"frontend": True, "backends": ["onestor_replica"], "datastores": answer}})
    one = section(text, "onestor_replica")
    assert re.search(r"^  ID\s+NAME\s+TM\s+DS\s+CLUSTERS\s+REPLICA_HOST$", one, re.M)
    assert re.search(r"^  \d+\s+onestor_system_100\s+onestor\s+-\s+100\s+host2$", one, re.M)
    assert re.search(r"^  100\s+host2$", one, re.M)
    assert "onestor not installed" in one


def test_an_error_answer_is_reported():
    fault = ("<?xml version='1.0'?><methodResponse><params><param><value><array><data>"
             "<value><boolean>0</boolean></value><value><string>[one.datastorepool.info] User couldn't be authenticated"
             "</string></value></data></array></value></param></params></methodResponse>")
    with pytest.raises(AnsibleFilterError, match="User couldn't be authenticated"):
        report({"fe": {"frontend": True, "backends": ["nfs_shared"], "datastores": fault}})


def test_no_backend():
    assert report({"a": {"backends": []}}).startswith("no machine is in a backend group")
