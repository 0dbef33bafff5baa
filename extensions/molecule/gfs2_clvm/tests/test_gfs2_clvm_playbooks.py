"""ansible-playbook runs against the lab machines: bad variables fail with a clear message and leave
every file untouched; real oned 7.4 (lab/oned) accepts a gfs2clvm datastore, registers, monitors and deletes an
image in it through our datastore driver (down to a recording fake of LVM); a VG on a loop device."""
import base64
import os
import subprocess
import sys
import textwrap

import testinfra

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from lab_oned import OneCLI, wait  # noqa: E402  pylint: disable=wrong-import-position

testinfra_hosts = ["podman://gfs-fe"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
WATCHED = {
    "gfs-fe": ["/etc/one/oned.conf", "/var/lib/one/remotes/tm/gfs2clvm/gfs2clvmrc"],
    "gfs-h1": ["/etc/sudoers.d/oneadmin-lvm", "/etc/udev/rules.d/99-opennebula-lvm.rules", "/etc/libvirt/qemu.conf",
               "/etc/lvm/lvm.conf", "/etc/polkit-1/rules.d/50-opennebula-libvirt.rules", "/usr/local/sbin/one-gfs2clvm-lvm"],
}
INVENTORY = textwrap.dedent("""\
    all:
      vars:
        ansible_connection: containers.podman.podman
        ansible_python_interpreter: /usr/bin/python3
        gfs2_clvm_oned_service: opennebula
        gfs2_clvm_manage_services: false
        gfs2_clvm_vg_name: vg-one-san
        gfs2_clvm_gfs2_lv: lv-gfs2
        gfs2_clvm_dd_bs: 16M
      children:
        frontend: {hosts: {gfs-fe: {}}}
        hosts: {hosts: {gfs-h1: {}, gfs-h2: {}}}
        gfs2_clvm: {children: {frontend: {}, hosts: {}}}
    """)


def run_playbook(tmp_path, play, *extra):
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    (tmp_path / "play.yml").write_text(textwrap.dedent(play))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([PLAYBOOK, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")] + list(extra),
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)


ROLE_PLAY = """\
    - name: gfs2_clvm
      hosts: gfs2_clvm
      gather_facts: false
      roles:
        - role: nebula.storage.gfs2_clvm
    """


def checksums():
    return {(name, path): testinfra.get_host("podman://" + name).file(path).sha256sum
            for name, paths in WATCHED.items() for path in paths}


def test_bad_vg_name_fails_and_changes_nothing(tmp_path):
    before = checksums()
    res = run_playbook(tmp_path, ROLE_PLAY, "-e", "gfs2_clvm_vg_name='vg one'")
    assert res.returncode != 0
    assert "gfs2_clvm_vg_name: \"vg one\" is not a valid LVM volume group name" in res.stdout
    assert checksums() == before


def test_bad_locking_choice_fails_and_changes_nothing(tmp_path):
    before = checksums()
    res = run_playbook(tmp_path, ROLE_PLAY, "-e", "gfs2_clvm_locking=sanlock")
    assert res.returncode != 0
    assert "gfs2_clvm_locking" in res.stdout and "lvmlockd, clvmd" in res.stdout
    assert checksums() == before


def test_a_wrapper_in_a_world_writable_directory_fails_and_changes_nothing(tmp_path):
    before = checksums()
    res = run_playbook(tmp_path, ROLE_PLAY, "-e", "gfs2_clvm_lvm_wrapper=/var/tmp/one-gfs2clvm-lvm")
    assert res.returncode != 0
    words = " ".join(res.stdout.replace("'", " ").split())
    assert "gfs2_clvm_lvm_wrapper: /var/tmp must be a directory owned by root and writable by root only" in words
    assert "fatal: [gfs-fe]" in res.stdout  # the front-end stops too: its rc file names the wrapper
    assert checksums() == before
    h1 = testinfra.get_host("podman://gfs-h1")
    assert not h1.file("/var/tmp/one-gfs2clvm-lvm").exists


def test_a_relative_wrapper_path_fails_and_changes_nothing(tmp_path):
    before = checksums()
    res = run_playbook(tmp_path, ROLE_PLAY, "-e", "gfs2_clvm_lvm_wrapper=bin/lvm-wrapper")
    assert res.returncode != 0
    assert "must be absolute paths of letters, digits" in " ".join(res.stdout.split())
    assert checksums() == before


def test_check_mode_of_a_converged_lab_changes_nothing(tmp_path):
    before = checksums()
    res = run_playbook(tmp_path, ROLE_PLAY, "--check", "--diff")
    assert res.returncode == 0, res.stdout[-3000:]
    # Only the TM runtime may differ: other engineers edit plugins/module_utils/tm while the lab runs.
    task = None
    for line in res.stdout.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed: ["):
            assert "Install the gfs2clvm TM driver" in task, (task, line)
        elif line.startswith("changed: /"):
            assert "/lib/nebula_tm/" in line, line
    assert checksums() == before


def test_the_role_restarted_oned_after_editing_oned_conf():
    fe = testinfra.get_host("podman://gfs-fe")
    started = int(fe.check_output("date -d \"$(systemctl show -p ActiveEnterTimestamp --value opennebula)\" +%s"))
    edited = int(fe.check_output("stat -c %Y /etc/one/oned.conf"))
    assert started >= edited


def test_oned_accepts_a_gfs2clvm_datastore(tmp_path):
    # The role restarted oned (real oned 7.4) after its oned.conf edit; oned reads TM_MAD_CONF/DS_MAD_CONF at
    # start, so the new drivers must be known now (oned refuses a datastore whose TM_MAD has no TM_MAD_CONF).
    fe = testinfra.get_host("podman://gfs-fe")
    play = """\
        - name: Datastore with the gfs2clvm drivers
          hosts: frontend
          gather_facts: false
          become: true
          become_user: oneadmin
          tasks:
            - name: Image datastore on the SAN
              nebula.storage.one_datastore:
                name: san_images
                type: image
                template: {DS_MAD: gfs2clvm, TM_MAD: gfs2clvm, VG_NAME: vg-one-san, BRIDGE_LIST: gfs-h1 gfs-h2}
              register: created
            - name: It was created
              ansible.builtin.assert:
                that: [created.changed, created.datastore.tm_mad == 'gfs2clvm']
            - name: Remove it again
              nebula.storage.one_datastore:
                name: san_images
                state: absent
        """
    res = run_playbook(tmp_path, play)
    assert res.returncode == 0, res.stdout[-3000:]


VG_PLAY = """\
    - name: Volume group tasks of the role
      hosts: gfs-h1
      gather_facts: false
      tasks:
        - name: The role's VG tasks
          ansible.builtin.include_role:
            name: nebula.storage.gfs2_clvm
            tasks_from: vg.yml
    """


def test_volume_group_on_a_loop_device(tmp_path):
    """pvcreate/vgcreate work on a loop device of the privileged gfs-h1; a shared VG needs a running lvmlockd
    (not in this kernel); the installed datastore monitor runs the real vgs through the real sudoers rule."""
    h1 = testinfra.get_host("podman://gfs-h1")
    fe = testinfra.get_host("podman://gfs-fe")
    image = "/root/gfs2clvm-pv.img"
    h1.check_output("truncate -s 64M %s", image)
    dev = h1.check_output("losetup -f --show %s", image)
    try:
        res = run_playbook(tmp_path, VG_PLAY, "-e", '{"gfs2_clvm_vg_pvs": ["%s"]}' % dev)
        assert res.returncode != 0
        assert "pvcreate" in res.stdout and "check that lvmlockd is running" in res.stdout
        h1.check_output("pvcreate --config global/use_lvmlockd=0 %s", dev)
        h1.check_output("vgcreate --config global/use_lvmlockd=0 vg-one-san %s", dev)
        # what `onehost sync` does: the front-end's remotes on the host
        tar = subprocess.run(["podman", "exec", "gfs-fe", "tar", "-C", "/var/lib/one/remotes", "-cf", "-", "tm/gfs2clvm",
                              "datastore/gfs2clvm"], capture_output=True, check=True)
        subprocess.run(["podman", "exec", "-i", "gfs-h1", "sh", "-c", "mkdir -p /tmp/g8-remotes && tar -C /tmp/g8-remotes -xf -"],
                       input=tar.stdout, check=True)
        action = base64.b64encode(b"<DS_DRIVER_ACTION_DATA><DATASTORE><TEMPLATE><VG_NAME>vg-one-san</VG_NAME>"
                                  b"<BRIDGE_LIST>localhost</BRIDGE_LIST></TEMPLATE></DATASTORE>"
                                  b"</DS_DRIVER_ACTION_DATA>").decode()
        monitor = h1.run("su oneadmin -s /bin/sh -c '/tmp/g8-remotes/datastore/gfs2clvm/monitor %s 100'", action)
        assert monitor.rc == 0, monitor.stderr
        assert monitor.stdout.split() == ["USED_MB=0", "TOTAL_MB=60", "FREE_MB=60"]
        assert fe.file("/var/lib/one/remotes/datastore/gfs2clvm/monitor").exists
        # the wrapper as oneadmin through the real sudo, on the real VG
        wrapper = "/usr/local/sbin/one-gfs2clvm-lvm"
        vgs = h1.run("su oneadmin -s /bin/sh -c %s", "sudo -n %s vgs --noheadings --nosuffix --units m "
                     "-o vg_size,vg_free vg-one-san" % wrapper)
        assert vgs.rc == 0, vgs.stderr
        assert vgs.stdout.split() == ["60.00", "60.00"]
        lvs = h1.run("su oneadmin -s /bin/sh -c %s", "sudo -n %s lvs --noheadings -o lv_name vg-one-san" % wrapper)
        assert lvs.rc == 0 and lvs.stdout.strip() == "", lvs.stderr
        # lvcreate passes the wrapper and reaches LVM, which needs device-mapper (not in this kernel)
        create = h1.run("su oneadmin -s /bin/sh -c %s", "sudo -n %s lvcreate -L 4M -n lv-one-5-0 vg-one-san" % wrapper)
        assert create.rc != 0 and "refused" not in create.stderr and "not allowed" not in create.stderr, create.stderr
        for hostile in ("lvremove -f vg-one-san", "lvremove -f othervg/x", "vgs --config global/use_lvmlockd=0 vg-one-san",
                        "lvcreate -L 4M -n root vg-one-san"):
            res = h1.run("su oneadmin -s /bin/sh -c %s", "sudo -n %s %s" % (wrapper, hostile))
            assert res.rc == 64 and "one-gfs2clvm-lvm: refused" in res.stderr, (hostile, res.stderr)
        raw = h1.run("su oneadmin -s /bin/sh -c %s", "sudo -n /usr/sbin/vgs vg-one-san")
        assert raw.rc != 0 and "60" not in raw.stdout
        assert h1.check_output("vgs --noheadings -o vg_name vg-one-san").strip() == "vg-one-san"
    finally:
        h1.run("rm -rf /tmp/g8-remotes")
        h1.run("vgremove -f --config global/use_lvmlockd=0 vg-one-san")
        h1.run("pvremove -f --config global/use_lvmlockd=0 %s", dev)
        h1.run("losetup -d %s", dev)
        h1.run("rm -f %s", image)


# A RECORDING FAKE of the four LVM commands the wrapper runs (this kernel has no device-mapper, so lvcreate
# cannot run): a logical volume is a plain file /dev/<vg>/<lv>; every call is logged with its argv.
FAKE_LVM = """#!/bin/sh
# TEST DOUBLE (recording fake of LVM, installed by test_gfs2_clvm_playbooks.py): not LVM.
echo "$(basename "$0") $*" >> /var/log/lvm-fake.log
case "$(basename "$0") $1" in
  "vgs "*) echo "  1024.00 1008.00" ;;
  "lvs --noheadings")
    if [ "$2" = -o ]; then ls "/dev/$4" 2>/dev/null | sed 's/^/  /'
    else echo "  $(( $(stat -c %s "$7") / 1048576 )).00"; fi ;;
  "lvcreate -L") mkdir -p "/dev/$5" && truncate -s "${2%M}M" "/dev/$5/$4" ;;
  "lvremove -f") rm -f "/dev/$2" ;;
  *) echo "lvm fake: unexpected call" >&2; exit 3 ;;
esac
"""
FAKE_DIR = "/usr/local/lib/one-lvm-fake"


def test_oned_registers_and_deletes_an_image_through_our_datastore_driver(tmp_path):
    """Real oned 7.4 registers a datablock in a gfs2clvm datastore: oned runs our datastore ``mkfs`` on the
    BRIDGE_LIST host, which goes through sudo and the role's wrapper to LVM (the recording fake: no
    device-mapper here), once it has monitored the datastore through our ``monitor`` (the fake's vgs);
    ``oneimage delete`` runs our ``rm`` (lvs, lvremove)."""
    fe, h1 = testinfra.get_host("podman://gfs-fe"), testinfra.get_host("podman://gfs-h1")
    hosts = (h1, testinfra.get_host("podman://gfs-h2"))
    for node in hosts:   # the role points both hosts' wrappers at the fake
        node.check_output("install -d -o root -g root -m 0755 %s && rm -f /var/log/lvm-fake.log", FAKE_DIR)
        for name in ("lvcreate", "lvremove", "lvs", "vgs"):
            node.check_output("printf '%%s' %s > %s/%s && chmod 0755 %s/%s", FAKE_LVM, FAKE_DIR, name, FAKE_DIR, name)
    cli = OneCLI(fe)
    play = """\
        - name: The role with the recording fake of LVM on gfs-h1, and a datastore whose bridge is gfs-h1
          hosts: gfs2_clvm
          gather_facts: false
          roles:
            - role: nebula.storage.gfs2_clvm
          post_tasks:
            - name: Image datastore on the SAN
              nebula.storage.one_datastore:
                name: san_fake
                type: image
                template: {DS_MAD: gfs2clvm, TM_MAD: gfs2clvm, VG_NAME: vg-one-san, BRIDGE_LIST: gfs-h1}
              become: true
              become_user: oneadmin
              when: inventory_hostname == 'gfs-fe'
        """
    cli.remove_stale("oneimage", "g-fake")   # left by an interrupted run
    res = run_playbook(tmp_path, play, "-e", "gfs2_clvm_lvm_bin_dir=%s" % FAKE_DIR)
    assert res.returncode == 0, res.stdout[-3000:]
    try:
        # oned allocates an image only in a datastore it has monitored (FREE_MB, here from the fake's vgs)
        try:
            wait("FREE_MB from the datastore monitor",
                 lambda: cli.xml("onedatastore", "show", "san_fake").findtext("FREE_MB") == "1008", 240)
        except AssertionError as exc:
            raise AssertionError("%s; FREE_MB %s; oned.log: %s; lvm-fake.log: %s" % (
                exc, cli.xml("onedatastore", "show", "san_fake").findtext("FREE_MB"),
                fe.run("grep -i -e datastore -e monitor /var/log/one/oned.log | tail -15").stdout,
                h1.run("cat /var/log/lvm-fake.log").stdout)) from None
        iid = str(cli.new_id("oneimage", "create", "-d", "san_fake", "--name", "g-fake", "--type", "DATABLOCK",
                             "--size", "16", "--format", "raw"))
        wait("image READY", lambda: cli.xml("oneimage", "show", iid).findtext("STATE") == "1", 120)
        source = cli.xml("oneimage", "show", iid).findtext("SOURCE")
        lv = os.path.basename(source)
        assert source == "/dev/vg-one-san/" + lv and lv.startswith("lv-oneimg-"), source
        assert h1.file(source).size == 16 << 20
        assert "lvcreate -L 16M -n %s vg-one-san" % lv in h1.file("/var/log/lvm-fake.log").content_string
        cli.one("oneimage", "delete", iid)
        wait("image deleted", lambda: cli.one("oneimage", "show", iid, check=False).rc != 0, 120)
        assert not h1.file(source).exists
        assert "lvremove -f vg-one-san/%s" % lv in h1.file("/var/log/lvm-fake.log").content_string
    finally:
        cli.remove_stale("oneimage", "g-fake")
        cli.one("onedatastore", "delete", "san_fake", check=False)
        res = run_playbook(tmp_path, ROLE_PLAY)   # the real LVM again
        assert res.returncode == 0, res.stdout[-3000:]
        for node in hosts:
            node.run("rm -rf %s /dev/vg-one-san /var/log/lvm-fake.log", FAKE_DIR)
