"""Real oned 7.4 on the front-end, after the nfs_shared role ran against it.

oned is OpenNebula's own daemon (lab/oned/image.sh), not the test double: the
datastores are read back through its API (`onedatastore show -x`, i.e.
one.datastore.info), and its own monitoring fills in the sizes.
"""
import pytest

from conftest import FE, H1, H2, one, wait, xml


def test_real_oned_runs_after_the_roles_oned_conf_edit():
    assert FE.service("opennebula").is_running
    assert one("onevm", "--version").rc == 0
    version = xml("onezone", "show", "0")  # any authenticated call through the real API
    assert version.findtext("NAME") == "OpenNebula"
    # oned was (re)started after the role's last oned.conf edit, and is still up.
    started = int(FE.check_output(
        "date -d \"$(systemctl show -P ActiveEnterTimestamp opennebula)\" +%s"))
    edited = int(FE.check_output("stat -c %Y /etc/one/oned.conf"))
    assert started >= edited
    assert "nfs_shared" in FE.check_output("grep -E '^ *ARGUMENTS.*-d .*nfs_shared' /etc/one/oned.conf")


def test_oned_refuses_a_bad_oned_conf_and_the_unit_says_so():
    """The check above means something: a bad edit makes the restart fail."""
    FE.check_output("cp -p /etc/one/oned.conf /root/oned.conf.good")
    try:
        FE.check_output("printf 'TM_MAD_CONF = [ NAME = \"broken\"\\n' >> /etc/one/oned.conf")
        assert FE.run("systemctl restart opennebula").rc != 0
        assert not FE.service("opennebula").is_running
    finally:
        FE.check_output("cp -p /root/oned.conf.good /etc/one/oned.conf")
        FE.check_output("systemctl restart opennebula")
    assert FE.service("opennebula").is_running
    for h in ("olc-h1", "olc-h2"):
        wait("%s monitored again" % h, lambda h=h: xml("onehost", "show", h).findtext("STATE") == "2")


@pytest.mark.parametrize("name", ["olc-h1", "olc-h2"])
def test_hosts_are_dummy_hypervisors_monitored_over_ssh(name):
    host = xml("onehost", "show", name)
    assert host.findtext("IM_MAD") == "dummy" and host.findtext("VM_MAD") == "dummy"
    assert host.findtext("STATE") == "2"  # MONITORED: oned's dummy IM ran on the host over ssh
    assert host.findtext("CLUSTER_ID") == "0"
    # onehost sync (the role's handler) put our driver on the host under SCRIPTS_REMOTE_DIR
    node = {"olc-h1": H1, "olc-h2": H2}[name]
    assert node.file("/var/tmp/one/tm/nfs_shared/clone").exists


def test_datastores_as_oned_sees_them():
    pool = {d.findtext("NAME"): d for d in xml("onedatastore", "list").iter("DATASTORE")}
    system, images = pool["nfs_system"], pool["nfs_images"]
    assert system.findtext("TYPE") == "1" and system.findtext("TM_MAD") == "nfs_shared"
    assert images.findtext("TYPE") == "0" and images.findtext("TM_MAD") == "nfs_shared"
    assert images.findtext("DS_MAD") == "fs"
    assert [c.text for c in system.findall("CLUSTERS/ID")] == ["0"]
    assert [c.text for c in images.findall("CLUSTERS/ID")] == ["0"]
    assert images.findtext("TEMPLATE/SAFE_DIRS") == "/var/tmp/olc"
    assert system.findtext("BASE_PATH") == "/var/lib/one/datastores/%s" % system.findtext("ID")


def test_oned_monitors_the_image_datastore():
    """oned's own monitoring (MONITORING_INTERVAL_DATASTORE=60 in the lab) through DS_MAD fs's monitor."""
    free = wait("FREE_MB of nfs_images", lambda: int(xml("onedatastore", "show", "nfs_images").findtext("FREE_MB")))
    assert free > 0


def test_oned_monitors_the_system_datastore_through_our_driver():
    """The role put nfs_shared in DATASTORE_MAD's -s list: oned monitors the shared system datastore with our
    monitor action (without it oned logs "System datastore driver 'nfs_shared' not available" every minute)."""
    free = wait("FREE_MB of nfs_system", lambda: int(xml("onedatastore", "show", "nfs_system").findtext("FREE_MB")))
    assert free > 0
    log = FE.run("grep -c \"System datastore driver 'nfs_shared' not available\" /var/lib/one/oned.log").stdout.strip()
    since = FE.run("grep -n 'Log level' /var/lib/one/oned.log | tail -n 1 | cut -d: -f1").stdout.strip()
    after = FE.run("tail -n +%s /var/lib/one/oned.log | grep -c \"System datastore driver 'nfs_shared' not available\"",
                   since or "1").stdout.strip()
    assert after == "0", (log, after)
