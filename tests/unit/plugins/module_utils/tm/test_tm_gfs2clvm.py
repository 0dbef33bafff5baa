"""gfs2clvm actions at the process boundary: LVM commands go through the role's real LVM wrapper (the role's
template rendered around module_utils/_lvm_wrapper.py) to a recording FAKE of the LVM commands (fake_lvm), host
commands through the fake ssh test double. The fake sudo enforces the role's sudoers rule (only the wrapper,
non-interactive); the wrapper checks every call and runs the fake LVM commands with its fixed environment; the fake
LVM commands keep a volume group as a directory of files, and read their settings from a file (the wrapper passes no
environment on)."""
from __future__ import annotations

import base64
import filecmp
import http.server
import io
import json
import os
import re
import stat
import sys
import threading

import pytest
import yaml

from ansible_collections.nebula.storage.plugins.module_utils.tm import registry
from ansible_collections.nebula.storage.plugins.module_utils.tm.common import Context
from ansible_collections.nebula.storage.plugins.module_utils.tm.drivers import gfs2clvm
from tests.unit.roles.gfs2_clvm.lvm_wrapper_install import install_wrapper
from tm_helpers import make_sparse, ssh_hosts

MiB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))))

FAKE_SUDO = r"""#!/bin/sh
# FAKE sudo (test double): records its argv and allows exactly what the role's
# sudoers rule allows: non-interactive (-n) runs of the listed absolute paths
# (the LVM wrapper).
printf 'sudo %s\n' "$*" >> "$FAKE_LVM_LOG"
[ "$1" = "-n" ] || { echo "sudo: a password is required" >&2; exit 1; }
shift
case ":$FAKE_SUDO_ALLOWED:" in
  *":$1:"*) exec "$@" ;;
esac
echo "Sorry, user oneadmin is not allowed to execute '$*' as root" >&2
exit 1
"""

FAKE_LVM = r"""#!%(python)s
# FAKE LVM command (test double): records its argv in the log and its environment
# in the env log, and keeps volume group VG as the directory <dev>/VG with one
# file per LV. Its settings come from the JSON file %(conf)s.
import json, os, shutil, sys
with open(%(conf)r) as handle:
    conf = json.load(handle)
cmd = os.path.basename(sys.argv[0]); args = sys.argv[1:]
dev = conf["dev"]
with open(conf["log"], "a") as log:
    log.write(json.dumps([cmd] + args) + "\n")
with open(conf["env_log"], "a") as log:
    log.write(json.dumps(dict(os.environ)) + "\n")
def die(msg, rc=5):
    sys.stderr.write(msg + "\n"); sys.exit(rc)
def size_of(path):
    return os.path.getsize(path) // 1048576
def vg_total():
    return int(conf.get("vg_size_mb", 4096))
fail_on = conf.get("fail", "")
if fail_on and fail_on == cmd:
    die("  %%s: simulated failure" %% cmd)
if cmd == "lvcreate":
    snap = "-s" in args
    size = int(args[args.index("-L") + 1].rstrip("M")); name = args[args.index("-n") + 1]
    target = args[-1]
    vg = os.path.basename(os.path.dirname(target)) if snap else target
    vgdir = os.path.join(dev, vg)
    if not os.path.isdir(vgdir):
        die('  Volume group "%%s" not found' %% vg)
    path = os.path.join(vgdir, name)
    if os.path.exists(path):
        die('  Logical Volume "%%s" already exists in volume group "%%s"' %% (name, vg))
    used = sum(size_of(os.path.join(vgdir, n)) for n in os.listdir(vgdir))
    if used + size > vg_total():
        die('  Volume group "%%s" has insufficient free space' %% vg)
    if snap:
        if not os.path.exists(target):
            die('  Failed to find logical volume "%%s"' %% target)
        shutil.copyfile(target, path)
    with open(path, "ab") as handle:
        handle.truncate(size * 1048576)
    print('  Logical volume "%%s" created.' %% name)
elif cmd == "lvremove":
    vg, name = args[-1].split("/")
    path = os.path.join(dev, vg, name)
    if not os.path.exists(path):
        die('  Failed to find logical volume "%%s/%%s"' %% (vg, name))
    os.unlink(path)
    print('  Logical volume "%%s" successfully removed.' %% name)
elif cmd == "lvs":
    target = args[-1]
    if args[args.index("-o") + 1] == "lv_name":
        vgdir = os.path.join(dev, target)
        if not os.path.isdir(vgdir):
            die('  Volume group "%%s" not found' %% target)
        for name in sorted(os.listdir(vgdir)):
            print("  " + name)
    else:
        if not os.path.exists(target):
            die('  Failed to find logical volume "%%s"' %% target)
        print("  %%d.00" %% size_of(target))
elif cmd == "vgs":
    vgdir = os.path.join(dev, args[-1])
    if not os.path.isdir(vgdir):
        die('  Volume group "%%s" not found' %% args[-1])
    used = sum(size_of(os.path.join(vgdir, n)) for n in os.listdir(vgdir))
    print("  %%d.00 %%d.00" %% (vg_total(), vg_total() - used))
"""


def role_defaults():
    with open(os.path.join(ROOT, "roles", "gfs2_clvm", "defaults", "main.yml")) as handle:
        return yaml.safe_load(handle)


def _script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class Lab:
    """The fake LVM world: DEV_DIR with VG directories, the fake commands, their settings and their log, the role's
    LVM wrapper (configured for this VG, the fake commands and this DEV_DIR) and the fake sudo that allows only it."""

    def __init__(self, tmp_path, fake_ssh, vgs=("vg-one",)):
        self.tmp = tmp_path
        self.dev = tmp_path / "dev"
        self.vg = "vg-one"
        (self.dev / self.vg).mkdir(parents=True)
        self.bin = tmp_path / "lvmbin"
        self.bin.mkdir()
        self.log = tmp_path / "fake_lvm.log"
        self.log.touch()
        self.env_log = tmp_path / "fake_lvm_env.log"
        self.conf = tmp_path / "fake_lvm.json"
        self.settings = {"dev": str(self.dev), "log": str(self.log), "env_log": str(self.env_log)}
        self.conf.write_text(json.dumps(self.settings))
        for name in gfs2clvm.LVM_COMMANDS:
            _script(self.bin / name, FAKE_LVM % {"python": sys.executable, "conf": str(self.conf)})
        self.wrapper = self.install_wrapper(vgs)
        self.sudo = _script(tmp_path / "fake_sudo", FAKE_SUDO)
        (tmp_path / "locks").mkdir()
        self.env = {"FAKE_LVM_LOG": str(self.log), "FAKE_SUDO_ALLOWED": str(self.wrapper)}
        self.rc = {"SSH": str(fake_ssh), "SSH_OPTS": "-o BatchMode=yes", "LOCAL_SHORTCUT": "no",
                   "LOCK_DIR": str(tmp_path / "locks"), "LOCK_TIMEOUT": "5", "VG_NAME": self.vg,
                   "DATASTORE_LOCATION": str(tmp_path / "datastores"), "VM_DIR": str(tmp_path / "one"),
                   "DEV_DIR": str(self.dev), "LVM_WRAPPER": str(self.wrapper), "SUDO": "%s -n" % self.sudo,
                   "DD_BS": "1M", "DEFAULT_LV_SIZE": "8", "DS_HOST": "node1"}
        self.fake_ssh = fake_ssh

    def install_wrapper(self, vgs):
        return install_wrapper(self.tmp / "one-gfs2clvm-lvm", vgs=vgs, lvm_bin_dir=str(self.bin), dev_dir=str(self.dev))

    def set(self, key, value):
        """Change a setting of the fake LVM commands (vg_size_mb, fail)."""
        self.settings[key] = value
        self.conf.write_text(json.dumps(self.settings))

    def lvm_envs(self):
        return [json.loads(line) for line in self.env_log.read_text().splitlines()] if self.env_log.exists() else []

    def calls(self):
        """The recorded calls: ``["sudo", ...]`` strings and ``[cmd, args...]`` lists of the LVM fakes."""
        result = []
        for line in self.log.read_text().splitlines():
            result.append(line.split(" ") if line.startswith("sudo ") else json.loads(line))
        return result

    def lvm_calls(self):
        """The fake LVM commands' lines only (a sudo line may hold a newline of a hostile argument)."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("[")]

    def lv(self, name):
        return self.dev / self.vg / name

    def lvs(self):
        return sorted(os.listdir(self.dev / self.vg))


@pytest.fixture
def lab(tmp_path, fake_ssh, monkeypatch):
    world = Lab(tmp_path, fake_ssh)
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


class Result:
    def __init__(self, rc, err, out=""):
        self.rc, self.err, self.out = rc, err, out

    def __repr__(self):
        return "Result(rc=%r, err=%r, out=%r)" % (self.rc, self.err, self.out)


@pytest.fixture
def tm(lab):
    def run(action, *args, protocol="7", **overrides):
        settings = dict(lab.rc)
        settings.update(overrides)
        err = io.StringIO()
        ctx = Context(action, settings, legacy=protocol == "3", stderr=err)
        table = registry.actions_of(registry.load_driver("gfs2clvm"), protocol)
        return Result(registry.run_action(ctx, table[action], list(args)), err.getvalue())
    return run


@pytest.fixture
def ds(lab, tmp_path, capsys, monkeypatch):
    """Run a datastore action as OpenNebula 7's one_datastore.rb does: ``<action> ID``, the action on stdin
    (``legacy=True``: ``<action> DRV_ACTION ID``)."""
    rc_path = tmp_path / "gfs2clvmrc"
    rc_path.write_text("".join("%s=%s\n" % (k, json.dumps(v)) for k, v in lab.rc.items()))

    def run(action, image=None, datastore=None, legacy=False):
        xml = "<DS_DRIVER_ACTION_DATA><IMAGE>%s</IMAGE><DATASTORE><TEMPLATE>%s</TEMPLATE></DATASTORE>" \
              "</DS_DRIVER_ACTION_DATA>" % (
                  "".join("<%s>%s</%s>" % (k, v, k) for k, v in (image or {}).items()),
                  "".join("<%s>%s</%s>" % (k, v, k) for k, v in (datastore or {}).items()))
        err = io.StringIO()
        capsys.readouterr()
        encoded = base64.b64encode(xml.encode()).decode()
        monkeypatch.setattr(sys, "stdin", io.StringIO("" if legacy else encoded + "\n"))
        code = gfs2clvm.datastore_main(action, [encoded, "7"] if legacy else ["7"], rc_path=str(rc_path),
                                       stderr=err)
        return Result(code, err.getvalue(), capsys.readouterr().out)
    return run


def vm_dir(tmp_path, vmid=5):
    return tmp_path / "datastores" / "0" / str(vmid)


# --------------------------------------------------------------------------- contract

def test_driver_contract():
    driver = registry.load_driver("gfs2clvm")
    for action in ("clone", "ln", "mkimage", "mkswap", "delete", "mv", "context"):
        assert callable(driver.ACTIONS[action])
    assert set(driver.LEGACY_ACTIONS) == {"clone", "ln", "mkswap", "mkimage", "delete", "mv", "context"}
    assert set(driver.DS_ACTIONS) == {"cp", "mkfs", "rm", "mv", "monitor", "stat"}
    rc = dict(driver.DEFAULT_RC)
    assert {"VG_NAME", "DEFAULT_LV_SIZE", "DD_BS"} <= set(rc)


def test_lvm_commands_match_the_role_sudoers_rule():
    """The driver's default sudo form is exactly what the role's sudoers template allows: its LVM wrapper."""
    defaults = role_defaults()
    rc = dict(gfs2clvm.DEFAULT_RC)
    ctx = Context("clone", rc)
    for command in gfs2clvm.LVM_COMMANDS:
        assert gfs2clvm.lvm(ctx, command) == ["sudo", "-n", defaults["gfs2_clvm_lvm_wrapper"], command]
    assert rc["LVM_WRAPPER"] == defaults["gfs2_clvm_lvm_wrapper"]
    assert "LVM_BIN_DIR" not in rc


def test_a_relative_lvm_wrapper_is_refused(tm, lab, tmp_path):
    res = tm("mkimage", "4", "raw", "node1:%s" % (vm_dir(tmp_path) / "disk.0"), "5", "0", LVM_WRAPPER="lvm-wrapper")
    assert res.rc != 0 and "LVM_WRAPPER='lvm-wrapper' is not an absolute path" in res.err
    assert lab.calls() == []


def test_lv_names():
    assert gfs2clvm.vm_lv("12", "3") == "lv-one-12-3"
    name = gfs2clvm.image_lv()
    assert name.startswith("lv-oneimg-") and len(name) == len("lv-oneimg-") + 32
    assert gfs2clvm.image_lv() != name


# --------------------------------------------------------------------------- clone

def test_clone_from_an_image_lv(tm, lab, tmp_path):
    src = lab.lv("lv-oneimg-" + "a" * 32)
    make_sparse(str(src), 3 * MiB, data_at=(0, 2 * MiB))
    dst = vm_dir(tmp_path) / "disk.0"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert lab.lvm_calls() == [
        ["lvs", "--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size", str(src)],
        ["lvcreate", "-L", "3M", "-n", "lv-one-5-0", "vg-one"],
    ]
    sudo = [c for c in lab.calls() if c[0] == "sudo"]
    assert [c[1:4] for c in sudo] == [["-n", str(lab.wrapper), "lvs"], ["-n", str(lab.wrapper), "lvcreate"]]
    assert lab.lvm_envs() == [{"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}] * 2
    assert os.readlink(dst) == str(lab.lv("lv-one-5-0"))
    assert filecmp.cmp(src, dst, shallow=False)
    assert set(ssh_hosts(lab.fake_ssh)) == {"node1"}


def test_clone_from_a_raw_file_streams_it_into_the_lv(tm, lab, tmp_path):
    src = tmp_path / "image.raw"
    make_sparse(str(src), 2 * MiB + 5, data_at=(0, MiB))
    dst = vm_dir(tmp_path) / "disk.1"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert lab.lvm_calls() == [["lvcreate", "-L", "3M", "-n", "lv-one-5-1", "vg-one"]]
    with open(src, "rb") as a, open(dst, "rb") as b:
        data = a.read()
        assert b.read(len(data)) == data


def test_clone_from_qcow2_converts_to_raw(tm, lab, tmp_path):
    import subprocess
    src = tmp_path / "image.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(src), "4M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 1M", str(src)], check=True, capture_output=True)
    dst = vm_dir(tmp_path) / "disk.0"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert lab.lvm_calls() == [["lvcreate", "-L", "4M", "-n", "lv-one-5-0", "vg-one"]]
    with open(dst, "rb") as handle:
        assert handle.read(MiB) == b"\x5a" * MiB


def _hostile_qcow2(tmp_path, kind):
    """A user's qcow2 that reads a 0600 file of oneadmin: as its backing file, or as its external data file."""
    import subprocess
    secret = tmp_path / "one_auth"
    secret.write_bytes(b"oneadmin:s3cr3t\n".ljust(MiB, b"\0"))
    secret.chmod(0o600)
    src = tmp_path / ("upload-%s.qcow2" % kind)
    if kind == "backing":
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw", str(src)], check=True)
        return src, "a backing file"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=%s" % (tmp_path / "data.raw"),
                    str(src), "1M"], check=True)
    return src, "an external data file"


@pytest.mark.parametrize("kind", ["backing", "data_file"])
def test_clone_and_ds_cp_refuse_images_that_read_other_files(tm, ds, lab, tmp_path, kind):
    """Issue 14 item 2: stock fs/cp and qemu-img convert follow a backing file; ours refuses before any lvcreate."""
    src, what = _hostile_qcow2(tmp_path, kind)
    dst = vm_dir(tmp_path) / "disk.0"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "0")
    assert res.rc == 1 and "Refusing image %s: it has %s" % (src, what) in res.err, res
    res = ds("cp", {"PATH": str(src)}, {"BRIDGE_LIST": "node1"})
    assert res.rc == 1 and "Refusing image %s: it has %s" % (src, what) in res.err, res
    assert res.out == "" and lab.calls() == [] and lab.lvs() == []
    assert not os.path.lexists(dst)


def test_clone_of_an_iso_gets_its_own_lv(tm, lab, tmp_path):
    src = tmp_path / "install.iso"
    src.write_bytes(b"CD001" * 1000)
    dst = vm_dir(tmp_path) / "disk.2"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert "gets its own logical volume lv-one-5-2" in res.err
    assert lab.lvs() == ["lv-one-5-2"]


def test_clone_from_http_streams_into_the_lv(tm, lab, tmp_path):
    body = os.urandom(3 * MiB)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self):  # noqa: N802
            self.do_HEAD()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dst = vm_dir(tmp_path) / "disk.0"
        res = tm("clone", "fe:http://127.0.0.1:%d/img" % server.server_port, "node1:%s" % dst, "5", "0")
    finally:
        server.shutdown()
        server.server_close()
    assert res.rc == 0, res
    assert lab.lvm_calls() == [["lvcreate", "-L", "3M", "-n", "lv-one-5-0", "vg-one"]]
    assert dst.read_bytes() == body


def test_clone_lvm_source_is_a_snapshot_of_the_suspended_vm_disk(tm, lab, tmp_path):
    origin = lab.lv("lv-one-4-0")
    make_sparse(str(origin), 2 * MiB, data_at=(0,))
    dst = vm_dir(tmp_path, 9) / "disk.0"
    res = tm("clone", "fe:lvm://4/0", "node1:%s" % dst, "9", "0")
    assert res.rc == 0, res
    assert lab.lvm_calls()[-1] == ["lvcreate", "-s", "-L", "2M", "-n", "lv-one-9-0", str(origin)]
    assert filecmp.cmp(origin, dst, shallow=False)


def test_clone_fill_failure_removes_the_new_lv(tm, lab, tmp_path):
    src = tmp_path / "image.raw"
    make_sparse(str(src), 6 * MiB, data_at=(0,))
    dst = vm_dir(tmp_path) / "disk.0"
    res = tm("clone", "fe:%s" % src, "node1:%s" % dst, "5", "0", DD_BS="bogus")
    assert res.rc != 0
    assert "DD_BS" in res.err
    assert lab.lvm_calls()[-1] == ["lvremove", "-f", "vg-one/lv-one-5-0"]
    assert lab.lvs() == []
    assert not os.path.lexists(dst)


def test_clone_lvcreate_failure_is_reported(tm, lab, tmp_path, monkeypatch):
    src = tmp_path / "image.raw"
    make_sparse(str(src), 8 * MiB, data_at=(0,))
    lab.set("vg_size_mb", 4)
    res = tm("clone", "fe:%s" % src, "node1:%s" % (vm_dir(tmp_path) / "disk.0"), "5", "0")
    assert res.rc == 5
    assert "insufficient free space" in res.err
    assert "Error creating logical volume vg-one/lv-one-5-0 on node1" in res.err


def test_sudo_refuses_commands_outside_the_rule(tm, lab, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SUDO_ALLOWED", str(lab.bin / "lvs"))
    src = tmp_path / "image.raw"
    make_sparse(str(src), MiB, data_at=(0,))
    res = tm("clone", "fe:%s" % src, "node1:%s" % (vm_dir(tmp_path) / "disk.0"), "5", "0")
    assert res.rc != 0
    assert "is not allowed to execute" in res.err
    assert lab.lvs() == []


@pytest.mark.parametrize("argv", [
    ["lvs", "--config", 'log{file="%(target)s" level=7 overwrite=1}', "x\n/lib/evil.so\n"],
    ["lvremove", "-f", "othervg/x"],
    ["lvremove", "-f", "vg-one/lv-one-5-0", "--yes"],
    ["lvs", "--profile", "x", "--noheadings", "-o", "lv_name", "vg-one"],
    ["lvcreate", "--commandprofile", "x", "-L", "1M", "-n", "lv-one-5-0", "vg-one"],
    ["lvremove", "-f", "vg-one/lv-one-5-0\n"],
])
def test_hostile_calls_through_sudo_are_refused_by_the_wrapper(lab, tmp_path, argv):
    """What oneadmin could do with the old rule (any arguments to the LVM commands) stops at the wrapper: nothing
    runs, no file appears, no LV goes."""
    import subprocess
    lab.lv("lv-one-5-0").write_bytes(b"")
    target = tmp_path / "ld.so.preload"
    argv = [a % {"target": target} if "%(target)s" in a else a for a in argv]
    proc = subprocess.run([str(lab.sudo), "-n", str(lab.wrapper)] + argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 64
    assert proc.stderr.startswith("one-gfs2clvm-lvm: refused: ")
    assert lab.lvm_calls() == [] and not target.exists()
    assert lab.lvs() == ["lv-one-5-0"]


def test_sudo_refuses_the_raw_lvm_commands(lab):
    import subprocess
    proc = subprocess.run([str(lab.sudo), "-n", str(lab.bin / "lvs"), "--noheadings", "-o", "lv_name", "vg-one"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "is not allowed to execute" in proc.stderr
    assert lab.lvm_calls() == []


@pytest.mark.parametrize("args,msg", [
    (["fe:/x", "node1:/d/5/disk.0", "5"], "expected arguments"),
    (["fe:/x", "node1:/d/5/disk.0", "five", "0"], "VMID 'five' is not a number"),
    (["fe:/x", "node1:/d/5/notadisk", "5", "0"], "is not a VM disk"),
    (["fe:/x", "bad host!:/d/5/disk.0", "5", "0"], "Invalid host"),
    (["fe:relative", "node1:/d/5/disk.0", "5", "0"], "is not absolute"),
])
def test_clone_bad_arguments(tm, lab, args, msg):
    res = tm("clone", *args)
    assert res.rc != 0
    assert msg in res.err
    assert lab.calls() == []


def test_bad_vg_name_is_refused(tm, lab, tmp_path):
    res = tm("mkimage", "4", "raw", "node1:%s" % (vm_dir(tmp_path) / "disk.0"), "5", "0", VG_NAME="vg;rm -rf /")
    assert res.rc != 0
    assert "Invalid volume group name" in res.err
    assert lab.calls() == []


# --------------------------------------------------------------------------- ln, mkimage, mkswap

def test_ln_links_the_persistent_image_lv(tm, lab, tmp_path):
    src = lab.lv("lv-oneimg-" + "b" * 32)
    src.write_bytes(b"x")
    dst = vm_dir(tmp_path) / "disk.0"
    res = tm("ln", "fe:%s" % src, "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert os.readlink(dst) == str(src)
    assert lab.calls() == []


def test_mkimage_ext4(tm, lab, tmp_path):
    dst = vm_dir(tmp_path) / "disk.3"
    res = tm("mkimage", "8", "ext4", "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert lab.lvm_calls() == [["lvcreate", "-L", "8M", "-n", "lv-one-5-3", "vg-one"]]
    with open(dst, "rb") as handle:
        handle.seek(1024 + 56)
        assert handle.read(2) == b"\x53\xef"  # ext superblock magic


def test_mkswap(tm, lab, tmp_path):
    dst = vm_dir(tmp_path) / "disk.4"
    res = tm("mkswap", "4", "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert lab.lvm_calls() == [["lvcreate", "-L", "4M", "-n", "lv-one-5-4", "vg-one"]]
    with open(dst, "rb") as handle:
        handle.seek(4096 - 10)
        assert handle.read(10) == b"SWAPSPACE2"


def test_mkimage_rejects_qcow2_and_bad_formats(tm, lab, tmp_path):
    for fmt in ("qcow2", "ext4;reboot"):
        res = tm("mkimage", "8", fmt, "node1:%s" % (vm_dir(tmp_path) / "disk.0"), "5", "0")
        assert res.rc != 0 and "not supported" in res.err
    assert lab.calls() == []


def test_mkimage_mkfs_failure_removes_the_lv(tm, lab, tmp_path):
    res = tm("mkimage", "8", "nosuchfs", "node1:%s" % (vm_dir(tmp_path) / "disk.0"), "5", "0")
    assert res.rc != 0
    assert "Error making a nosuchfs filesystem" in res.err
    assert lab.lvm_calls()[-1] == ["lvremove", "-f", "vg-one/lv-one-5-0"]
    assert lab.lvs() == []


# --------------------------------------------------------------------------- delete, mv, context

def test_delete_removes_only_the_vm_lvs_and_the_directory(tm, lab, tmp_path):
    for name in ("lv-one-5-0", "lv-one-5-1", "lv-one-50-0", "lv-one-6-0", "lv-oneimg-" + "c" * 32):
        lab.lv(name).write_bytes(b"")
    vmdir = vm_dir(tmp_path)
    vmdir.mkdir(parents=True)
    os.symlink(str(lab.lv("lv-one-5-0")), str(vmdir / "disk.0"))
    res = tm("delete", "node1:%s" % vmdir, "5", "0")
    assert res.rc == 0, res
    assert [c for c in lab.lvm_calls() if c[0] == "lvremove"] == [
        ["lvremove", "-f", "vg-one/lv-one-5-0"], ["lvremove", "-f", "vg-one/lv-one-5-1"]]
    assert lab.lvs() == ["lv-one-50-0", "lv-one-6-0", "lv-oneimg-" + "c" * 32]
    assert not vmdir.exists()


def test_delete_of_one_disk(tm, lab, tmp_path):
    for name in ("lv-one-5-0", "lv-one-5-1"):
        lab.lv(name).write_bytes(b"")
    vmdir = vm_dir(tmp_path)
    vmdir.mkdir(parents=True)
    os.symlink(str(lab.lv("lv-one-5-1")), str(vmdir / "disk.1"))
    res = tm("delete", "node1:%s" % (vmdir / "disk.1"), "5", "0")
    assert res.rc == 0, res
    assert lab.lvs() == ["lv-one-5-0"]
    assert not os.path.lexists(vmdir / "disk.1")


def test_delete_lvremove_failure_keeps_the_directory(tm, lab, tmp_path, monkeypatch):
    lab.lv("lv-one-5-0").write_bytes(b"")
    vmdir = vm_dir(tmp_path)
    vmdir.mkdir(parents=True)
    lab.set("fail", "lvremove")
    res = tm("delete", "node1:%s" % vmdir, "5", "0")
    assert res.rc == 5
    assert "Error removing logical volume vg-one/lv-one-5-0 on node1" in res.err
    assert vmdir.exists()


def test_delete_refuses_shallow_paths(tm, lab):
    res = tm("delete", "node1:/var", "5", "0")
    assert res.rc != 0 and "Refusing to delete /var" in res.err
    assert lab.calls() == []


def test_delete_refuses_paths_out_of_the_vm_directory(tm, lab, tmp_path):
    """Issue 14 item 6: stock deletes what it is given; ours only DATASTORE_LOCATION/<ds id>/<vm id> or below."""
    lab.lv("lv-one-5-0").write_bytes(b"")
    vmdir = vm_dir(tmp_path)
    vmdir.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    for target, ids in (("%s/../../../victim" % vmdir, ("5", "0")), (str(victim), ("5", "0")),
                        (str(vmdir), ("6", "0")), (str(vmdir), ("5", "1")), ("/var/lib/one", ("5", "0"))):
        res = tm("delete", "node1:%s" % target, *ids)
        assert res.rc == 1 and "Refusing to delete" in res.err, res
    assert victim.exists() and vmdir.exists()
    assert lab.lvs() == ["lv-one-5-0"] and lab.calls() == []
    res = tm("delete", "node2:%s" % (tmp_path / "elsewhere" / "5"), protocol="3")  # 3.x: <VM_DIR>/<vm id> only
    assert res.rc == 1 and "VM_DIR/<vm id>" in res.err


def test_mv_moves_nothing(tm, lab, tmp_path):
    res = tm("mv", "node1:/d/0/5", "node2:/d/0/5", "5", "0")
    assert res.rc == 0
    assert "INFO: mv: Not moving" in res.err
    assert lab.calls() == [] and ssh_hosts(lab.fake_ssh) == []


def test_context_iso(tm, lab, tmp_path):
    files = tmp_path / "ctx"
    files.mkdir()
    (files / "context.sh").write_text("HOSTNAME=vm5\n")
    dst = vm_dir(tmp_path) / "disk.5"
    res = tm("context", str(files / "context.sh"), "node1:%s" % dst, "5", "0")
    assert res.rc == 0, res
    assert b"CD001" in dst.read_bytes()[32768:32774]
    assert lab.calls() == []


# --------------------------------------------------------------------------- 3.x protocol

def test_legacy_clone_and_delete(tm, lab, tmp_path):
    src = lab.lv("lv-oneimg-" + "d" * 32)
    make_sparse(str(src), 2 * MiB, data_at=(0,))
    dst = tmp_path / "one" / "7" / "images" / "disk.1"
    res = tm("clone", "front:%s" % src, "node2:%s" % dst, protocol="3")
    assert res.rc == 0, res
    assert os.readlink(dst) == str(lab.lv("lv-one-7-1"))
    res = tm("delete", "node2:%s" % dst.parent, protocol="3")
    assert res.rc == 0, res
    assert lab.lvs() == ["lv-oneimg-" + "d" * 32]
    assert ["lvremove", "-f", "vg-one/lv-one-7-1"] in lab.lvm_calls()


def test_legacy_errors_are_wrapped(tm, lab):
    res = tm("clone", "front:/x", "node2:/var/lib/one/7/images/notadisk", protocol="3")
    assert res.rc != 0
    assert "ERROR MESSAGE --8<------" in res.err


# --------------------------------------------------------------------------- datastore actions

def test_ds_cp_creates_an_image_lv_and_prints_its_source(ds, lab, tmp_path):
    src = tmp_path / "upload.raw"
    make_sparse(str(src), 2 * MiB, data_at=(0,))
    res = ds("cp", {"PATH": str(src)}, {"BRIDGE_LIST": "node2 node1"})
    assert res.rc == 0, res
    source, fmt = res.out.split()
    name = os.path.basename(source)
    assert gfs2clvm._IMG_LV.match(name) and fmt == "raw"
    assert source == str(lab.lv(name))
    assert lab.lvm_calls() == [["lvcreate", "-L", "2M", "-n", name, "vg-one"]]
    assert filecmp.cmp(src, source, shallow=False)
    assert ssh_hosts(lab.fake_ssh)[0] == "node2"


def test_ds_cp_uses_the_datastore_vg_only_where_the_wrapper_allows_it(ds, lab, tmp_path):
    (lab.dev / "vg-san").mkdir()
    src = tmp_path / "upload.raw"
    make_sparse(str(src), MiB, data_at=(0,))
    res = ds("cp", {"PATH": str(src)}, {"VG_NAME": "vg-san"})
    assert res.rc == 64, res
    assert "one-gfs2clvm-lvm: refused: lvcreate: volume group 'vg-san' is not the configured one (vg-one)" in res.err
    assert lab.lvm_calls() == [] and os.listdir(lab.dev / "vg-san") == []
    lab.install_wrapper(["vg-one", "vg-san"])
    res = ds("cp", {"PATH": str(src)}, {"VG_NAME": "vg-san"})
    assert res.rc == 0, res
    assert lab.lvm_calls()[0][-1] == "vg-san"


def test_ds_cp_missing_file(ds, lab):
    res = ds("cp", {"PATH": "/nonexistent/image"})
    assert res.rc != 0 and "does not exist" in res.err
    assert res.out == "" and lab.calls() == []


def test_ds_mkfs(ds, lab):
    res = ds("mkfs", {"SIZE": "8", "FSTYPE": "ext4"})
    assert res.rc == 0, res
    source = res.out.strip()   # the answer is the SOURCE alone: oned takes all of it (ImageManager::_mkfs)
    assert source.startswith(str(lab.dev) + "/vg-one/lv-oneimg-") and " " not in source, res
    assert lab.lvm_calls() == [["lvcreate", "-L", "8M", "-n", os.path.basename(source), "vg-one"]]


def test_ds_rm(ds, lab):
    name = "lv-oneimg-" + "e" * 32
    lab.lv(name).write_bytes(b"")
    res = ds("rm", {"SOURCE": str(lab.lv(name))})
    assert res.rc == 0, res
    assert lab.lvm_calls()[-1] == ["lvremove", "-f", "vg-one/" + name]
    assert lab.lvs() == []


def test_ds_rm_refuses_a_vm_disk(ds, lab):
    lab.lv("lv-one-5-0").write_bytes(b"")
    res = ds("rm", {"SOURCE": str(lab.lv("lv-one-5-0"))})
    assert res.rc != 0 and "refusing to remove" in res.err
    assert lab.lvs() == ["lv-one-5-0"] and lab.calls() == []


def test_ds_monitor(ds, lab, monkeypatch):
    lab.set("vg_size_mb", 1000)
    make_sparse(str(lab.lv("lv-one-1-0")), 300 * MiB)
    res = ds("monitor")
    assert res.rc == 0, res
    assert res.out.split() == ["USED_MB=300", "TOTAL_MB=1000", "FREE_MB=700"]
    assert lab.lvm_calls() == [["vgs", "--noheadings", "--nosuffix", "--units", "m", "-o", "vg_size,vg_free", "vg-one"]]


def test_ds_monitor_in_the_older_argument_form(ds, lab):
    """``monitor DRV_ACTION ID`` (the action as the first argument) still works."""
    lab.set("vg_size_mb", 1000)
    res = ds("monitor", legacy=True)
    assert res.rc == 0 and res.out.split() == ["USED_MB=0", "TOTAL_MB=1000", "FREE_MB=1000"], res


def test_ds_action_without_its_driver_action(lab, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    err = io.StringIO()
    assert gfs2clvm.datastore_main("monitor", ["100"], stderr=err) == 1
    assert "monitor: no driver action on stdin" in err.getvalue()


def test_ds_monitor_without_a_host(ds, lab, tmp_path):
    rc_path = tmp_path / "gfs2clvmrc"
    rc_path.write_text(rc_path.read_text().replace('DS_HOST="node1"', 'DS_HOST=""'))
    res = ds("monitor")
    assert res.rc != 0 and "BRIDGE_LIST" in res.err


def test_ds_stat_and_mv(ds, tmp_path):
    src = tmp_path / "upload.raw"
    make_sparse(str(src), 3 * MiB + 1)
    res = ds("stat", {"PATH": str(src)})
    assert res.rc == 0 and res.out.strip() == "4"
    assert ds("mv").rc == 0


def test_ds_bad_driver_action(lab, tmp_path):
    err = io.StringIO()
    assert gfs2clvm.datastore_main("cp", ["!!!notbase64", "1"], stderr=err) == 1
    assert "Cannot decode the driver action" in err.getvalue()
    assert gfs2clvm.datastore_main("export", ["x", "1"], stderr=err) == 1
    assert "Operation not supported" in err.getvalue()


# --------------------------------------------------------------------------- installed by tm_driver

def test_installed_driver_and_datastore_wrapper_run_as_processes(run_module, lab, tmp_path):
    """tm_driver installs gfs2clvm (remotes layout); the installed clone and the role's datastore wrapper run as
    separate processes with the fake LVM commands."""
    import subprocess
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template
    remotes = tmp_path / "remotes"
    settings = dict(lab.rc)
    result = run_module("tm_driver", {"name": "gfs2clvm", "dest": str(remotes), "settings": settings})
    assert not result.get("failed"), result
    assert {"clone", "ln", "mkimage", "mkswap", "delete", "mv", "context"} <= set(result["actions"])
    again = run_module("tm_driver", {"name": "gfs2clvm", "dest": str(remotes), "settings": settings})
    assert not again["changed"]
    src = lab.lv("lv-oneimg-" + "f" * 32)
    make_sparse(str(src), 2 * MiB, data_at=(0,))
    dst = vm_dir(tmp_path) / "disk.0"
    proc = subprocess.run([str(remotes / "tm" / "gfs2clvm" / "clone"), "fe:%s" % src, "node1:%s" % dst, "5", "0"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert filecmp.cmp(src, dst, shallow=False)
    with open(os.path.join(ROOT, "roles", "gfs2_clvm", "templates", "ds_action.j2")) as handle:
        wrapper = Templar(loader=DataLoader(), variables={"item": "monitor"}).template(trust_as_template(handle.read()))
    ds_dir = remotes / "datastore" / "gfs2clvm"
    ds_dir.mkdir(parents=True)
    _script(ds_dir / "monitor", wrapper + "\n")
    action = base64.b64encode(b"<DS_DRIVER_ACTION_DATA><DATASTORE><TEMPLATE><BRIDGE_LIST>node2</BRIDGE_LIST>"
                              b"</TEMPLATE></DATASTORE></DS_DRIVER_ACTION_DATA>").decode()
    proc = subprocess.run([str(ds_dir / "monitor"), action, "100"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["USED_MB=4", "TOTAL_MB=4096", "FREE_MB=4092"]  # image + clone
    assert ssh_hosts(lab.fake_ssh)[-1] == "node2"


def test_legacy_layout_install(run_module, tmp_path):
    result = run_module("tm_driver", {"name": "gfs2clvm", "layout": "legacy", "dest": str(tmp_path / "tm_commands"),
                                      "legacy_conf_dir": str(tmp_path / "etc")})
    assert not result.get("failed"), result
    mapping = (tmp_path / "etc" / "tm_gfs2clvm" / "tm_gfs2clvm.conf").read_text()
    for action in ("CLONE", "LN", "MKSWAP", "MKIMAGE", "DELETE", "MV", "CONTEXT"):
        assert re.search(r"^%s\s*=\s*gfs2clvm/tm_%s\.sh$" % (action, action.lower()), mapping, re.M), action
    rc = (tmp_path / "etc" / "tm_gfs2clvm" / "tm_gfs2clvmrc").read_text()
    assert "VG_NAME=vg-one" in rc and "DD_BS=64M" in rc
