"""Verify gfs2_clvm on the lab machines: the files are there and valid, and the drivers are installed."""
import shlex

import pytest

testinfra_hosts = ["podman://gfs-fe", "podman://gfs-h1", "podman://gfs-h2"]

HOSTS = ("gfs-h1", "gfs-h2")
FRONTENDS = ("gfs-fe",)
SUDOERS = "/etc/sudoers.d/oneadmin-lvm"
WRAPPER = "/usr/local/sbin/one-gfs2clvm-lvm"
LVM = ("/usr/sbin/lvcreate", "/usr/sbin/lvremove", "/usr/sbin/lvs", "/usr/sbin/vgs")
HOSTILE = "/var/tmp/gfs2clvm-hostile.log"


def as_oneadmin(host, command):
    return host.run("su oneadmin -s /bin/sh -c %s", command)


def sudo_as_oneadmin(host, argv):
    return as_oneadmin(host, "sudo -n " + " ".join(shlex.quote(a) for a in argv))


def only(host, names):
    if host.backend.get_hostname() not in names:
        pytest.skip("not for %s" % host.backend.get_hostname())


# --------------------------------------------------------------------------- hosts

def test_sudoers_is_valid_and_allows_only_the_wrapper(host):
    only(host, HOSTS)
    sudoers = host.file(SUDOERS)
    assert (sudoers.user, sudoers.group, sudoers.mode) == ("root", "root", 0o440)
    assert host.run("visudo -cf %s", SUDOERS).rc == 0
    listed = host.check_output("sudo -l -U oneadmin")
    assert "(root) NOPASSWD: %s" % WRAPPER in listed
    for raw in LVM + ("/bin/echo",):
        assert raw not in listed and raw not in sudoers.content_string


def test_the_wrapper_is_root_owned_in_a_root_owned_directory(host):
    only(host, HOSTS)
    wrapper = host.file(WRAPPER)
    assert (wrapper.user, wrapper.group, wrapper.mode) == ("root", "root", 0o755)
    assert wrapper.content_string.startswith("#!/usr/bin/python3 -I\n")
    assert '\nCONFIG = {"vgs": ["vg-one-san"], "lvm_bin_dir": "/usr/sbin", "dev_dir": "/dev"}\n' in wrapper.content_string
    directory = host.file("/usr/local/sbin")
    assert directory.user == "root" and directory.mode & 0o022 == 0


def test_oneadmin_runs_the_wrapper_through_sudo_and_nothing_else(host):
    only(host, HOSTS)
    # accepted by sudo and by the wrapper: LVM itself answers (the VG exists only in the loop-device test)
    ok = as_oneadmin(host, "sudo -n %s lvs --noheadings -o lv_name vg-one-san" % WRAPPER)
    assert 'Volume group "vg-one-san" not found' in ok.stderr, ok.stderr
    assert "refused" not in ok.stderr and "password is required" not in ok.stderr
    for command in ("sudo -n /usr/sbin/lvs --noheadings", "sudo -n /usr/sbin/lvextend --help", "sudo -n /bin/echo hi",
                    "sudo -n /usr/sbin/vgs"):
        refused = as_oneadmin(host, command)
        assert refused.rc != 0 and "refused" not in refused.stderr, command


def test_the_hostile_calls_of_issue_14_are_refused_and_leave_no_file(host):
    only(host, HOSTS)
    host.run("rm -f %s", HOSTILE)
    hostile = [
        [WRAPPER, "lvs", "--config", 'log{file="%s" level=7 overwrite=1}' % HOSTILE, "x\n/lib/evil.so\n"],
        [WRAPPER, "lvremove", "-f", "othervg/x"],
        [WRAPPER, "lvremove", "-f", "vg-one-san/lv-one-5-0", "--yes"],
        [WRAPPER, "vgs", "--profile", "x", "vg-one-san"],
        [WRAPPER, "lvs", "--commandprofile", "x", "--noheadings", "-o", "lv_name", "vg-one-san"],
        [WRAPPER, "lvs", "--noheadings", "-o", "lv_name", "vg-one-san\n"],
    ]
    for argv in hostile:
        res = sudo_as_oneadmin(host, argv)
        assert res.rc == 64, (argv, res.stderr)
        assert "one-gfs2clvm-lvm: refused: " in res.stderr, (argv, res.stderr)
    assert not host.file(HOSTILE).exists


def test_udev_rule_gives_oneadmin_the_lvs(host):
    only(host, HOSTS)
    rule = host.file("/etc/udev/rules.d/99-opennebula-lvm.rules")
    assert rule.mode == 0o644
    text = rule.content_string
    assert 'ENV{DM_NAME}=="vg--one--san-lv--one--[0-9]*", OWNER="oneadmin"' in text
    assert 'ENV{DM_NAME}=="vg--one--san-lv--oneimg--[0-9a-f]*", OWNER="oneadmin"' in text
    assert 'KERNEL=="dm-*", ACTION=="add|change"' in text


def test_polkit_rules_file_for_polkit_122(host):
    only(host, HOSTS)
    assert "pkcheck version 122" in host.check_output("pkcheck --version")
    rules = host.file("/etc/polkit-1/rules.d/50-opennebula-libvirt.rules")
    assert rules.exists and rules.mode == 0o644
    assert 'action.id === "org.libvirt.unix.manage" && subject.user === "oneadmin"' in rules.content_string
    assert not host.file("/etc/polkit-1/localauthority/50-local.d/50-opennebula-libvirt.pkla").exists


def test_qemu_conf_edited_in_place_with_its_comments(host):
    only(host, HOSTS)
    text = host.file("/etc/libvirt/qemu.conf").content_string
    settings = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert sorted(settings) == ['dynamic_ownership = 0', 'group = "oneadmin"', 'user = "oneadmin"']
    assert sum(1 for line in text.splitlines() if line.startswith("#")) > 500
    lines = text.splitlines()
    # each setting replaced its commented default where libvirt documents it
    assert lines[lines.index('dynamic_ownership = 0') - 1].startswith("#")


def test_lvm_conf_uses_lvmlockd(host):
    only(host, HOSTS)
    assert host.check_output("lvmconfig global/use_lvmlockd") == "use_lvmlockd=1"
    text = host.file("/etc/lvm/lvm.conf").content_string
    assert "# Configuration option global/use_lvmlockd." in text
    assert text.count("use_lvmlockd = 1") == 1
    assert host.run("lvmconfig --validate").rc == 0


def test_lock_manager_and_gfs2_packages(host):
    only(host, HOSTS)
    for package in ("lvm2", "lvm2-lockd", "dlm-controld", "gfs2-utils", "sudo", "polkitd", "libvirt-daemon-system"):
        assert host.package(package).is_installed, package


def test_gfs2_is_not_mounted_where_the_kernel_lacks_it(host):
    only(host, HOSTS)
    assert "gfs2" not in host.file("/proc/filesystems").content_string
    assert not host.mount_point("/var/lib/one").exists
    assert "gfs2" not in host.file("/etc/fstab").content_string


# --------------------------------------------------------------------------- front-end

def test_oned_conf_knows_the_driver(host):
    only(host, FRONTENDS)
    text = host.file("/etc/one/oned.conf").content_string
    assert text.count("gfs2clvm") == 4
    assert 'NAME = "gfs2clvm", LN_TARGET = "NONE", CLONE_TARGET = "SELF", SHARED = "YES"' in text
    assert 'NAME = "gfs2clvm", REQUIRED_ATTRS = "", PERSISTENT_ONLY = "NO"' in text


def test_tm_and_datastore_actions_installed(host):
    only(host, FRONTENDS)
    for action in ("clone", "ln", "mkimage", "mkswap", "delete", "mv", "context"):
        path = host.file("/var/lib/one/remotes/tm/gfs2clvm/%s" % action)
        assert path.is_file and path.mode == 0o755 and path.user == "oneadmin"
    for action in ("cp", "mkfs", "rm", "mv", "monitor", "stat"):
        path = host.file("/var/lib/one/remotes/datastore/gfs2clvm/%s" % action)
        assert path.is_file and path.mode == 0o755 and path.user == "oneadmin"
    rc = host.file("/var/lib/one/remotes/tm/gfs2clvm/gfs2clvmrc").content_string
    for line in ("VG_NAME=vg-one-san", "DEFAULT_LV_SIZE=1024", "DD_BS=16M", "LVM_WRAPPER=/usr/local/sbin/one-gfs2clvm-lvm"):
        assert line in rc.splitlines()


def test_installed_actions_run_as_oneadmin(host):
    only(host, FRONTENDS)
    mv = host.run("su oneadmin -s /bin/sh -c '/var/lib/one/remotes/tm/gfs2clvm/mv gfs-h1:/var/lib/one/datastores/0/5 "
                  "gfs-h2:/var/lib/one/datastores/0/5 5 0'")
    assert mv.rc == 0, mv.stderr
    assert "INFO: mv: Not moving" in mv.stderr
    host.run("truncate -s 3M /tmp/gfs2clvm-stat.raw")
    import base64
    action = base64.b64encode(b"<DS_DRIVER_ACTION_DATA><IMAGE><PATH>/tmp/gfs2clvm-stat.raw</PATH></IMAGE>"
                              b"</DS_DRIVER_ACTION_DATA>").decode()
    stat = host.run("su oneadmin -s /bin/sh -c '/var/lib/one/remotes/datastore/gfs2clvm/stat %s 1'" % action)
    assert stat.rc == 0, stat.stderr
    assert stat.stdout.strip() == "3"
    bad = host.run("su oneadmin -s /bin/sh -c '/var/lib/one/remotes/datastore/gfs2clvm/rm bm90IHhtbA== 1'")
    assert bad.rc != 0 and "Cannot decode the driver action" in bad.stderr
