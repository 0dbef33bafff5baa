"""The backup actions (module_utils/tm/backup.py) on temp dirs: what they refuse before a file is touched, what a
failure leaves, the confinement, cancelling. Host commands go through the fake ssh test double; ``virsh`` and the
OpenNebula CLI are recording test doubles on PATH. Agreement with stock's backups is in tests/differential."""
from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.nebula.storage.plugins.module_utils.tm import copy, registry
from ansible_collections.nebula.storage.plugins.module_utils.tm.common import Context, TMError
from tm_helpers import Result

VMID = 5


def vm_xml(mode="FULL", disks=(("0", "vda", "raw"), ("1", "vdb", "qcow2")), extra="", config=""):
    disk_xml = "".join("<DISK><DISK_ID>%s</DISK_ID><TARGET>%s</TARGET><DRIVER>%s</DRIVER></DISK>" % d for d in disks)
    return ("<VM><ID>%d</ID><DEPLOY_ID>one-%d</DEPLOY_ID><TEMPLATE>%s%s</TEMPLATE><BACKUPS><BACKUP_CONFIG>"
            "<MODE>%s</MODE>%s</BACKUP_CONFIG></BACKUPS></VM>" % (VMID, VMID, disk_xml, extra, mode, config))


@pytest.fixture
def vm_dir(tmp_path):
    path = tmp_path / "datastores" / "0" / str(VMID)
    path.mkdir(parents=True)
    (path / "disk.0").write_bytes(b"raw disk" + bytes((1 << 20) - 8))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path / "disk.1"), "4M"], check=True)
    return path


@pytest.fixture
def doubles(tmp_path, monkeypatch):
    """Recording test doubles of virsh and onedatastore on PATH; ``virsh`` fails when $VIRSH_FAIL matches."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "virsh").write_text('#!/bin/sh\necho "virsh $*" >>%s\ncase "$*" in *"$VIRSH_FAIL"*) '
                                   '[ -n "$VIRSH_FAIL" ] && { echo "error: failed" >&2; exit 1; } ;; esac\nexit 0\n'
                                   % log)
    (bin_dir / "onedatastore").write_text('#!/bin/sh\necho "onedatastore $*" >>%s\ncat %s/ds-$3.xml\n'
                                          % (log, tmp_path))
    for name in ("virsh", "onedatastore"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.setenv("VIRSH_FAIL", "")
    monkeypatch.delenv("BACKUP_BASE_PATH", raising=False)
    return log


@pytest.fixture
def run(rc, monkeypatch, tmp_path):
    """``run(action, *args, stdin=...)`` of the nfs_shared driver in-process (remotes: tmp_path/remotes)."""
    driver_dir = tmp_path / "remotes" / "tm" / "nfs_shared"
    driver_dir.mkdir(parents=True)

    def go(action, *args, stdin="", **overrides):
        settings = dict(rc, **overrides)
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        err = io.StringIO()
        ctx = Context(action, settings, stderr=err, driver_dir=str(driver_dir))
        code = registry.run_action(ctx, registry.load_driver("nfs_shared").ACTIONS[action], [str(a) for a in args])
        return Result(code, err.getvalue())
    return go


def args_for(vm_dir, disks="0:1"):
    return ["node1:%s" % vm_dir, disks, "one-%d" % VMID, "-", VMID, 0]


@pytest.mark.parametrize("stdin, message", [
    (vm_xml(mode="INCREMENT"), "disk 0 is raw; incremental backups (BACKUP_CONFIG MODE=INCREMENT, "
                               "INCREMENT_MODE=CBT) take qcow2 disks only"),
    (vm_xml(mode="INCREMENT", config="<INCREMENT_MODE>CBT</INCREMENT_MODE><INTERACTIVE>YES</INTERACTIVE>"),
     "interactive backups (BACKUP_CONFIG INTERACTIVE=YES)"),
    (vm_xml(mode="INCREMENT", config="<INCREMENT_MODE>SNAPSHOT</INCREMENT_MODE><INTERACTIVE>YES</INTERACTIVE>"),
     "interactive backups (BACKUP_CONFIG INTERACTIVE=YES)"),
    (vm_xml(mode="INCREMENT", config="<INCREMENT_MODE>SNAPSHOT</INCREMENT_MODE>"),
     "disk 0 is raw; incremental backups (BACKUP_CONFIG MODE=INCREMENT, INCREMENT_MODE=SNAPSHOT) take qcow2 disks"),
    (vm_xml(mode="INCREMENT", config="<INCREMENT_MODE>SNAPSHOT</INCREMENT_MODE><LAST_INCREMENT_ID>x"
                                     "</LAST_INCREMENT_ID>"), "LAST_INCREMENT_ID 'x' is not a number from -1 up"),
    (vm_xml(config="<INTERACTIVE>YES</INTERACTIVE>"), "interactive backups (BACKUP_CONFIG INTERACTIVE=YES)"),
    ("not xml", "cannot read the VM's XML on stdin"),
    ("<IMAGE/>", "expected the VM's XML on stdin, got <IMAGE>"),
    (vm_xml(disks=(("0", "vda", "raw"),)), "disk 1 is not in the VM's template"),
])
def test_refusals_touch_nothing(run, vm_dir, doubles, stdin, message):
    before = sorted(os.listdir(vm_dir))
    res = run("prebackup", *args_for(vm_dir), stdin=stdin)
    assert res.rc == 1 and message in res.err, res
    assert sorted(os.listdir(vm_dir)) == before


def test_a_bad_disk_list_is_refused(run, vm_dir, doubles):
    res = run("prebackup", *args_for(vm_dir, "0:;rm"), stdin=vm_xml())
    assert res.rc == 1 and "bad disk id list '0:;rm'" in res.err


def test_prebackup_writes_what_the_backup_datastore_uploads(run, vm_dir, doubles):
    res = run("prebackup", *args_for(vm_dir), stdin=vm_xml())
    assert res.rc == 0, res
    bck = vm_dir / "backup"
    assert sorted(os.listdir(bck)) == ["disk.0.0", "disk.1.0", "vm.xml"]
    text = (bck / "vm.xml").read_text()
    assert base64.b64decode(text) == vm_xml().encode()
    assert all(len(line) <= 60 for line in text.splitlines()) and text.endswith("\n\n")   # Ruby's encode64 + echo
    info = subprocess.run(["qemu-img", "info", "--output=json", str(bck / "disk.0.0")], capture_output=True,
                          text=True, check=True).stdout
    assert '"format": "qcow2"' in info
    converted = subprocess.run(["qemu-img", "convert", "-O", "raw", str(bck / "disk.0.0"), str(vm_dir / "check")],
                               check=True)
    assert converted.returncode == 0 and (vm_dir / "check").read_bytes() == (vm_dir / "disk.0").read_bytes()
    assert run("postbackup", *args_for(vm_dir), stdin=vm_xml()).rc == 0
    assert not bck.exists()


def test_backup_base_path_from_datastore_conf(run, vm_dir, doubles, tmp_path):
    conf = tmp_path / "remotes" / "etc" / "datastore" / "datastore.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text('# stock datastore.conf\nexport BACKUP_BASE_PATH="%s/bk"\n' % tmp_path)
    assert run("prebackup", *args_for(vm_dir), stdin=vm_xml()).rc == 0
    assert (tmp_path / "bk" / str(VMID) / "backup" / "disk.1.0").exists() and not (vm_dir / "backup").exists()
    assert run("postbackup", *args_for(vm_dir), stdin=vm_xml()).rc == 0
    assert not (tmp_path / "bk" / str(VMID)).exists()
    conf.write_text('BACKUP_BASE_PATH="../bk"\n')
    res = run("prebackup", *args_for(vm_dir), stdin=vm_xml())
    assert res.rc == 1 and "BACKUP_BASE_PATH '../bk' must be an absolute path" in res.err


def test_a_qcow2_chain_that_reads_a_file_outside_the_datastores_is_refused(run, vm_dir, doubles, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"one_auth: oneadmin:secret")
    os.unlink(vm_dir / "disk.1")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(secret), str(vm_dir / "disk.1"),
                    "4M"], check=True)
    res = run("prebackup", *args_for(vm_dir), stdin=vm_xml())
    assert res.rc == 1 and "its chain reads %s, which is outside the datastores" % secret in res.err
    assert not (vm_dir / "backup").exists()


def test_a_raw_disk_is_read_as_raw_whatever_its_guest_wrote(run, vm_dir, doubles, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret")
    os.unlink(vm_dir / "disk.0")   # the guest of a raw disk wrote a qcow2 header naming a host file
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(secret), str(vm_dir / "disk.0"),
                    "4M"], check=True)
    assert run("prebackup", *args_for(vm_dir), stdin=vm_xml()).rc == 0
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(vm_dir / "backup" / "disk.0.0"), str(vm_dir / "check")],
                   check=True)
    data, disk = (vm_dir / "check").read_bytes(), (vm_dir / "disk.0").read_bytes()
    assert data[:len(disk)] == disk and not data[len(disk):].strip(b"\0") and b"host secret" not in data


def test_confinement_comes_from_the_backup_datastore(run, vm_dir, doubles, tmp_path, fake_ssh):
    """The backup datastore's RSYNC_NICE/RSYNC_IONICE reach the host (its PATH puts the system's nice first, so the
    test reads the command line the host got, and the niceness the conversion ran with)."""
    (tmp_path / "ds-100.xml").write_text("<DATASTORE><ID>100</ID><DS_MAD>rsync</DS_MAD><TEMPLATE><RSYNC_NICE>7"
                                         "</RSYNC_NICE><RSYNC_IONICE>3</RSYNC_IONICE></TEMPLATE></DATASTORE>")
    wrapper = tmp_path / "bin" / "logging_ssh"
    wrapper.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >>%s/remote.log\nexec %s "$@"\n' % (tmp_path, fake_ssh))
    wrapper.chmod(0o755)
    config = "<LAST_DATASTORE_ID>100</LAST_DATASTORE_ID>"
    res = run("prebackup", *args_for(vm_dir), stdin=vm_xml(config=config), SSH=str(wrapper))
    assert res.rc == 0, res
    assert doubles.read_text().splitlines()[0] == "onedatastore show -x 100"
    remote = (tmp_path / "remote.log").read_text()
    assert "qemu-img convert" in remote and "%s/backup %s no one-5 7 3 0 raw 1 qcow2\n" % (vm_dir, vm_dir) in remote
    (tmp_path / "ds-100.xml").write_text("<DATASTORE><ID>100</ID><DS_MAD>rsync</DS_MAD><TEMPLATE><RSYNC_NICE>x; rm"
                                         "</RSYNC_NICE></TEMPLATE></DATASTORE>")
    res = run("prebackup", *args_for(vm_dir), stdin=vm_xml(config=config))
    assert res.rc == 1 and "RSYNC_NICE='x; rm' is not a number from -20 to 19" in res.err


def test_slice_limits_confine_the_backup_in_a_systemd_user_slice(run, vm_dir, doubles, tmp_path, fake_ssh,
                                                                 monkeypatch):
    """RSYNC_CPU_QUOTA/_MEMORY_MAX_MB/_MAX_RIOPS set: the backup runs through systemd-run in backup.100.slice,
    whose unit file lands in ~/.config/systemd/user (systemd-run and systemctl: recording test doubles that run the
    command); nice/ionice are left out, as stock. A bad limit is refused naming it."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for name, body in (("systemd-run", 'while [ $# -gt 0 ]; do case $1 in -*) o="$o $1"; shift ;; *) break ;; '
                                       'esac; done\necho "systemd-run$o" >>%s\nexec "$@"\n' % doubles),
                       ("systemctl", 'echo "systemctl $*" >>%s\n' % doubles)):
        (tmp_path / "bin" / name).write_text("#!/bin/sh\n" + body)
        (tmp_path / "bin" / name).chmod(0o755)
    (tmp_path / "ds-100.xml").write_text(
        "<DATASTORE><ID>100</ID><DS_MAD>rsync</DS_MAD><TEMPLATE><RSYNC_NICE>7</RSYNC_NICE><RSYNC_CPU_QUOTA>150"
        "</RSYNC_CPU_QUOTA><RSYNC_MEMORY_MAX_MB>512</RSYNC_MEMORY_MAX_MB><RSYNC_MAX_RIOPS>40</RSYNC_MAX_RIOPS>"
        "<RSYNC_MAX_WIOPS>-1</RSYNC_MAX_WIOPS></TEMPLATE></DATASTORE>")
    config = "<LAST_DATASTORE_ID>100</LAST_DATASTORE_ID>"
    res = run("prebackup", *args_for(vm_dir), stdin=vm_xml(config=config), SSH=str(fake_ssh))
    assert res.rc == 0, res
    assert sorted(os.listdir(vm_dir / "backup")) == ["disk.0.0", "disk.1.0", "vm.xml"]
    unit = home / ".config" / "systemd" / "user" / "backup.100.slice"
    assert unit.read_text() == ("[Slice]\nCPUQuota=150%%\nMemoryMax=512M\nIOReadIOPSMax=%s 40\nIOWriteIOPSMax=\n\n"
                                % vm_dir)
    assert doubles.read_text().splitlines()[1:] == [
        "systemctl --user daemon-reload", "systemd-run --user --quiet --pipe --collect --wait --slice=backup.100.slice"]
    for key, value, message in (("CPU_QUOTA", "50%", "RSYNC_CPU_QUOTA='50%' is not a number from 1 up"),
                                ("MAX_WIOPS", "0", "RSYNC_MAX_WIOPS='0' is not a number from 1 up")):
        (tmp_path / "ds-100.xml").write_text("<DATASTORE><ID>100</ID><DS_MAD>rsync</DS_MAD><TEMPLATE><RSYNC_%s>%s"
                                             "</RSYNC_%s></TEMPLATE></DATASTORE>" % (key, value, key))
        unit.unlink(missing_ok=True)
        res = run("prebackup", *args_for(vm_dir), stdin=vm_xml(config=config), SSH=str(fake_ssh))
        assert res.rc == 1 and message in res.err, res
        assert not unit.exists()


def test_live_backup_and_its_virsh_calls(run, vm_dir, doubles):
    disks = (("0", "vda", "raw"), ("1", "vdb", "qcow2"), ("2", "vdc", "raw"))
    stdin = vm_xml(config="<FS_FREEZE>SUSPEND</FS_FREEZE>", disks=disks)
    (vm_dir / "disk.2").write_bytes(b"not in the backup")
    assert run("prebackup_live", *args_for(vm_dir), stdin=stdin).rc == 0
    tmp = vm_dir / "tmp"
    assert sorted(os.listdir(tmp)) == ["checkpoint.xml", "overlay_0.qcow2", "overlay_1.qcow2"]
    assert sorted(os.listdir(vm_dir / "backup")) == ["disk.0.0", "disk.1.0", "vm.xml"]
    assert run("postbackup_live", *args_for(vm_dir), stdin=stdin).rc == 0
    uri = "--connect qemu:///system"
    assert doubles.read_text().splitlines() == [
        "virsh %s suspend one-5" % uri,
        "virsh %s snapshot-create-as --name one-5-backup --disk-only --atomic --diskspec vda,file=%s/overlay_0.qcow2 "
        "--diskspec vdb,file=%s/overlay_1.qcow2 --diskspec vdc,snapshot=no one-5" % (uri, tmp, tmp),
        "virsh %s resume one-5" % uri,
        "virsh %s blockcommit --base %s/disk.0 --active --pivot --keep-relative one-5 vda" % (uri, vm_dir),
        "virsh %s blockcommit --base %s/disk.1 --active --pivot --keep-relative one-5 vdb" % (uri, vm_dir),
        "virsh %s snapshot-delete --snapshotname one-5-backup --metadata one-5" % uri,
    ]
    assert not tmp.exists() and not (vm_dir / "backup").exists()


def test_a_failed_snapshot_thaws_the_guest(run, vm_dir, doubles, monkeypatch):
    monkeypatch.setenv("VIRSH_FAIL", "snapshot-create-as")
    res = run("prebackup_live", *args_for(vm_dir), stdin=vm_xml(config="<FS_FREEZE>AGENT</FS_FREEZE>"))
    assert res.rc == 1 and "Error preparing disk files" in res.err
    calls = doubles.read_text().splitlines()
    assert [c.split()[3] for c in calls] == ["domfsfreeze", "snapshot-create-as", "domfsthaw"]


def test_a_failed_block_commit_keeps_the_overlays(run, vm_dir, doubles, monkeypatch):
    """The running VM writes to the overlays until blockcommit pivots it back: they must stay when it fails."""
    assert run("prebackup_live", *args_for(vm_dir), stdin=vm_xml()).rc == 0
    monkeypatch.setenv("VIRSH_FAIL", "blockcommit")
    res = run("postbackup_live", *args_for(vm_dir), stdin=vm_xml())
    assert res.rc != 0 and "Error cleaning backup temporal files" in res.err
    assert (vm_dir / "tmp" / "overlay_0.qcow2").exists()


def test_a_failed_cleanup_is_logged_not_failed(run, vm_dir, doubles, tmp_path):
    """As stock: postbackup (not live) logs the error; the next backup or the VM's removal cleans up."""
    res = run("postbackup", *args_for(vm_dir), stdin=vm_xml(), SSH=str(tmp_path / "missing-ssh"))
    assert res.rc == 0 and "ERROR" in res.err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a private mount namespace for the slow qemu-img)")
def _session_ssh(tmp_path, fake_ssh, double, target):
    """A fake ssh whose host side runs in its own session, as under sshd (so stopping the local ssh client does not
    reach it), in a private mount namespace where the test double ``double`` is bound over ``target``."""
    wrapper = tmp_path / "bin" / "session_ssh"
    wrapper.write_text('#!/bin/sh\nexec setsid -w unshare -m --propagation private sh -c '
                       '\'mount --bind "$0" "$1" && shift && exec "$@"\' %s %s %s "$@"\n' % (double, target, fake_ssh))
    wrapper.chmod(0o755)
    return wrapper


def _chain(run, vm_dir, action, xml):
    """The three backups of a chain (LAST_INCREMENT_ID -1, 0, 1) of disk 1: yields ``(last, backup id, the VM's
    XML)`` once each ``action`` (prebackup or prebackup_live) succeeded."""
    for last in (-1, 0, 1):
        stdin = xml(last)
        res = run(action, *args_for(vm_dir, "1"), stdin=stdin)
        assert res.rc == 0, res
        yield last, last + 1, stdin


def test_a_cancelled_backup_stops_on_the_host(run, vm_dir, doubles, tmp_path, fake_ssh):
    """SIGTERM to the action (oned's backup cancel) stops the conversion on the host, not only the ssh client.

    The host side runs in its own session, as under sshd (so stopping the local ssh client does not reach it), with
    a slow qemu-img test double bound over /usr/bin/qemu-img in a private mount namespace.
    """
    marker = tmp_path / "converting"
    slow = tmp_path / "slow-qemu-img"
    slow.write_text('#!/bin/sh\n[ "$1" = convert ] || exit 99\necho $$ >%s\nexec sleep 60\n' % marker)
    slow.chmod(0o755)
    wrapper = _session_ssh(tmp_path, fake_ssh, slow, "/usr/bin/qemu-img")
    timer = threading.Thread(target=_term_when, args=(marker,))
    timer.start()
    res = run("prebackup", *args_for(vm_dir, "0"), stdin=vm_xml(disks=(("0", "vda", "raw"),)), SSH=str(wrapper))
    timer.join()
    assert res.rc == 128 + signal.SIGTERM and "Backup cancelled" in res.err, res
    pid = int(marker.read_text())
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists("/proc/%d" % pid):
        time.sleep(0.1)
    assert not os.path.exists("/proc/%d" % pid), "the conversion goes on on the host"


def _term_when(marker):
    deadline = time.time() + 20
    while time.time() < deadline and not marker.exists():
        time.sleep(0.05)
    if marker.exists():   # else the action is over: the test fails on its result, pytest is not signalled
        os.kill(os.getpid(), signal.SIGTERM)


def test_fetch_command_keeps_holes_and_leaves_nothing_on_failure(rc, tmp_path):
    ctx = Context("restore", rc)
    src = tmp_path / "src"
    with open(src, "wb") as handle:
        handle.write(b"a" * 4096)
        handle.seek(1 << 20)
        handle.write(b"b" * 100)
        handle.truncate(3 << 20)
    dst = tmp_path / "out" / "disk.0.backup"
    copy.fetch_command(ctx, ["cat", str(src)], "node1", str(dst))
    assert dst.read_bytes() == src.read_bytes() and os.stat(dst).st_blocks * 512 <= 16384
    with pytest.raises(TMError) as err:
        copy.fetch_command(ctx, ["sh", "-c", "cat \"$1\"; echo gone >&2; exit 3", "sh", str(src)], "node1",
                           str(tmp_path / "out" / "other"))
    assert "failed (rc=3): gone" in err.value.msg
    assert sorted(os.listdir(tmp_path / "out")) == ["disk.0.backup"]


def test_restore_refuses_a_backup_disk_that_reads_other_files(run, vm_dir, doubles, tmp_path):
    """A backup datastore is another machine: what comes from it is checked before it replaces a disk."""
    remotes = tmp_path / "remotes" / "datastore"
    (remotes / "fake").mkdir(parents=True)
    evil = tmp_path / "evil.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/hostname", str(evil), "1M"],
                   check=True)
    (remotes / "fake" / "ls").write_text('#!/bin/sh\ncat >/dev/null\necho \'{"0": "file://%s"}\'\n' % evil)
    (remotes / "downloader.sh").write_text('#!/bin/sh\n[ "$1 $3" = "--nodecomp -" ] && cat "${2#file://}"\n')
    for path in (remotes / "fake" / "ls", remotes / "downloader.sh"):
        path.chmod(0o755)
    bin_dir = tmp_path / "bin"
    for kind, xml in (("onevm", vm_xml()), ("oneimage", "<IMAGE><ID>9</ID><DATASTORE_ID>100</DATASTORE_ID></IMAGE>")):
        (bin_dir / kind).write_text("#!/bin/sh\ncat <<'EOF'\n%s\nEOF\n" % xml)
        (bin_dir / kind).chmod(0o755)
    (tmp_path / "ds-100.xml").write_text("<DATASTORE><ID>100</ID><DS_MAD>fake</DS_MAD><TEMPLATE/></DATASTORE>")
    before = (vm_dir / "disk.0").read_bytes()
    res = run("restore", "node1:%s" % vm_dir, VMID, 9, -1, -1)
    assert res.rc == 1 and "Refusing image" in res.err and "a backing file (/etc/hostname)" in res.err, res
    assert (vm_dir / "disk.0").read_bytes() == before and not (vm_dir / "disk.0.backup").exists()


# ---------------------------------------------------------------------------
# Incremental backups, INCREMENT_MODE=SNAPSHOT
# ---------------------------------------------------------------------------

def snapshot_xml(last, disks=(("0", "vda", "raw"), ("1", "vdb", "qcow2"))):
    return vm_xml(mode="INCREMENT", disks=disks, config="<INCREMENT_MODE>SNAPSHOT</INCREMENT_MODE><LAST_INCREMENT_ID>"
                  "%d</LAST_INCREMENT_ID><FS_FREEZE>AGENT</FS_FREEZE>" % last)


def _info(path):
    import json  # pylint: disable=import-outside-toplevel
    return json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True,
                                     text=True, check=True).stdout)


def _guest_view(path, fmt="qcow2"):
    out = str(path) + ".view"
    subprocess.run(["qemu-img", "convert", "-U", "-f", fmt, "-O", "raw", str(path), out], check=True)
    with open(out, "rb") as handle:
        data = handle.read()
    os.unlink(out)
    return data


def _assert_rebuilt_chain(saved, views):
    """The saved backups of disk 1 (``disk.1.0`` full, ``disk.1.1``, ``disk.1.2`` increments), rebased into a chain
    up to each increment, give the guest view taken at that backup."""
    for top in (1, 2):   # rebuild the chain up to increment ``top``
        for inc in range(1, top + 1):
            subprocess.run(["qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(saved / ("disk.1.%d" % (inc - 1))), str(saved / ("disk.1.%d" % inc))], check=True)
        assert _guest_view(saved / ("disk.1.%d" % top)) == views[top]
    assert _guest_view(saved / "disk.1.0") == views[0] != views[1]


def _assert_cbt_chain(saved, views):
    """A CBT chain's increments hold what the guest wrote since the last backup (pattern 0x20 + N - 1 at N MiB),
    nothing else; rebuilt, the chain is the disk at each backup."""
    for n in (1, 2):
        alone = _guest_view(saved / ("disk.1.%d" % n))
        assert alone[n << 20:(n << 20) + 65536] == bytes([0x20 + n - 1]) * 65536
        assert alone.count(b"\0") == len(alone) - 65536
    _assert_rebuilt_chain(saved, views)


def _write(path, pattern, offset):
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P %d %d 64k" % (pattern, offset), str(path)],
                   check=True, capture_output=True)


def test_snapshot_mode_chain_powered_off(run, vm_dir, doubles, tmp_path):
    """A full backup then two increments of a disk that is a file (the ssh layout): stock's files, and the chain of
    backup files rebuilt (as the rsync datastore's downloader does) is the disk as it was at each backup."""
    saved = tmp_path / "saved"
    saved.mkdir()
    _write(vm_dir / "disk.1", 0x11, 0)
    views = []
    for last, backup_id, stdin in _chain(run, vm_dir, "prebackup", snapshot_xml):
        bck = vm_dir / "backup"
        assert sorted(os.listdir(bck)) == ["disk.1.%d" % backup_id, "vm.xml"]
        assert os.readlink(vm_dir / "disk.1") == "disk.1.snap/%d" % (backup_id + 1)
        assert sorted(os.listdir(vm_dir / "disk.1.snap")) == ["0", str(backup_id + 1)]
        overlay = _info(vm_dir / "disk.1.snap" / str(backup_id + 1))
        assert overlay["backing-filename"] == "%s/disk.1.snap/0" % os.path.realpath(vm_dir)
        assert "backing-filename" not in _info(bck / ("disk.1.%d" % backup_id))
        os.rename(bck / ("disk.1.%d" % backup_id), saved / ("disk.1.%d" % backup_id))
        views.append(_guest_view(vm_dir / "disk.1"))
        assert run("postbackup", *args_for(vm_dir, "1"), stdin=stdin).rc == 0
        assert not bck.exists()
        _write(vm_dir / "disk.1", 0x20 + backup_id, (1 + backup_id) << 20)
    _assert_rebuilt_chain(saved, views)
    assert b"\x22" * 16 not in views[2] and b"\x21" * 16 in views[2]


def test_snapshot_mode_an_increment_refuses_a_disk_the_chain_does_not_know(run, vm_dir, doubles):
    """After a restore (or anything that moved the disk off the last backup's overlay), an increment would commit
    the wrong file into its backing file (stock's backup_snapshot commits whatever disk.N is): refused instead."""
    before = sorted(os.listdir(vm_dir))
    res = run("prebackup", *args_for(vm_dir, "1"), stdin=snapshot_xml(0))
    assert res.rc == 1 and "disk 1 is not on the overlay the last backup left (%s/disk.1.snap/1)" % vm_dir in res.err
    assert "start a new chain with a full backup" in res.err and sorted(os.listdir(vm_dir)) == before
    assert run("prebackup", *args_for(vm_dir, "1"), stdin=snapshot_xml(-1)).rc == 0
    res = run("prebackup", *args_for(vm_dir, "1"), stdin=snapshot_xml(3))
    assert res.rc == 1 and "LAST_INCREMENT_ID=3" in res.err
    assert os.readlink(vm_dir / "disk.1") == "disk.1.snap/1"


def test_snapshot_mode_live_chain_and_its_virsh_calls(run, vm_dir, doubles):
    """The shared layout (disk.1 -> disk.1.snap/0); the recording virsh does nothing, so the files are those the
    TM made: overlays created, the increment copied, the links moved; postbackup_live leaves the overlay."""
    snap = _shared_layout(vm_dir)
    disks = (("0", "vda", "raw"), ("1", "vdb", "qcow2"), ("2", "vdc", "raw"))
    uri = "--connect qemu:///system"
    for last in (-1, 0):
        stdin = snapshot_xml(last, disks)
        res = run("prebackup_live", *args_for(vm_dir, "1"), stdin=stdin)
        assert res.rc == 0, res
        assert sorted(os.listdir(vm_dir / "backup")) == ["disk.1.%d" % (last + 1), "vm.xml"]
        assert os.readlink(vm_dir / "disk.1") == "disk.1.snap/%d" % (last + 2)
        assert os.listdir(vm_dir / "tmp") == (["checkpoint.xml"] if last < 0 else [])
        assert run("postbackup_live", *args_for(vm_dir, "1"), stdin=stdin).rc == 0
        assert not (vm_dir / "tmp").exists() and not (vm_dir / "backup").exists()
    assert sorted(os.listdir(snap)) == ["0", "2"]   # the recording virsh did not commit 1 into 0
    assert _info(snap / "2")["backing-filename"] == "%s/1" % snap
    assert doubles.read_text().splitlines() == [
        "virsh %s domfsfreeze one-5" % uri,
        "virsh %s snapshot-create-as --name one-5-backup --disk-only --atomic --diskspec vda,snapshot=no "
        "--diskspec vdb,file=%s/1 --diskspec vdc,snapshot=no --no-metadata --reuse-external one-5" % (uri, snap),
        "virsh %s domfsthaw one-5" % uri,
        "virsh %s domfsfreeze one-5" % uri,
        "virsh %s snapshot-create-as --disk-only --atomic --reuse-external --no-metadata --diskspec vda,snapshot=no "
        "--diskspec vdb,file=%s/2 --diskspec vdc,snapshot=no one-5" % (uri, snap),
        "virsh %s domfsthaw one-5" % uri,
        "virsh %s blockcommit --wait --top %s/1 --base %s/0 one-5 vdb" % (uri, snap, snap),
    ]


def _shared_layout(vm_dir):
    """disk.1 -> disk.1.snap/0, as stock shared's clone leaves a disk."""
    snap = vm_dir / "disk.1.snap"
    snap.mkdir()
    os.rename(vm_dir / "disk.1", snap / "0")
    os.symlink("disk.1.snap/0", vm_dir / "disk.1")
    return snap


def test_snapshot_mode_a_failed_snapshot_thaws_the_guest(run, vm_dir, doubles, monkeypatch):
    _shared_layout(vm_dir)
    monkeypatch.setenv("VIRSH_FAIL", "snapshot-create-as")
    for last in (-1, 0):   # the first backup, then (disk.1 moved on as the first would have) an increment
        res = run("prebackup_live", *args_for(vm_dir, "1"), stdin=snapshot_xml(last))
        assert res.rc == 1 and "Error preparing disk files" in res.err
        calls = doubles.read_text().splitlines()
        assert [c.split()[3] for c in calls] == ["domfsfreeze", "snapshot-create-as", "domfsthaw"]
        # the link moves after the snapshot only
        assert os.readlink(vm_dir / "disk.1") == "disk.1.snap/%d" % (last + 1)
        doubles.write_text("")
        os.unlink(vm_dir / "disk.1")
        os.symlink("disk.1.snap/%d" % (last + 2), vm_dir / "disk.1")


def test_snapshot_mode_live_first_backup_of_a_file_disk_copies_it_first(run, vm_dir, doubles):
    """The ssh layout, live: stock's snap_folder blockcopies disk.1 to disk.1.snap/0 and pivots the domain to it
    (the recording virsh copies nothing: the overlay on the empty copy fails, as stock's would)."""
    res = run("prebackup_live", *args_for(vm_dir, "1"), stdin=snapshot_xml(-1))
    assert res.rc == 1
    assert doubles.read_text().splitlines() == [
        "virsh --connect qemu:///system blockcopy --path %s/disk.1 --dest %s/disk.1.snap/0 --pivot --format qcow2 "
        "one-5" % (vm_dir, vm_dir)]


def test_snapshot_mode_commits_a_later_snapshot_first(run, vm_dir, doubles):
    """The first backup of a chain when disk.1 is on a later disk snapshot (disk.1.snap/2 over 0): it is committed
    into its backing file, which the new overlay disk.1.snap/1 then reads (stock's backup_full, name != 0)."""
    snap = _shared_layout(vm_dir)
    os.unlink(vm_dir / "disk.1")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(snap / "0"), str(snap / "2")],
                   check=True)
    os.symlink("disk.1.snap/2", vm_dir / "disk.1")
    _write(vm_dir / "disk.1", 0x42, 0)
    view = _guest_view(vm_dir / "disk.1")
    assert run("prebackup", *args_for(vm_dir, "1"), stdin=snapshot_xml(-1)).rc == 0
    assert sorted(os.listdir(snap)) == ["0", "1"] and os.readlink(vm_dir / "disk.1") == "disk.1.snap/1"
    assert _guest_view(snap / "0") == view == _guest_view(vm_dir / "backup" / "disk.1.0")


@pytest.mark.parametrize("last", ["", "<LAST_INCREMENT_ID/>", "<LAST_INCREMENT_ID>-1</LAST_INCREMENT_ID>"])
def test_snapshot_mode_without_last_increment_id_is_a_first_backup(run, vm_dir, doubles, last):
    """Stock: absent is a Ruby NoMethodError, empty counts as 0 (an increment); ours: the chain's first backup."""
    stdin = vm_xml(mode="INCREMENT", config="<INCREMENT_MODE>snapshot</INCREMENT_MODE>%s" % last)
    res = run("prebackup", *args_for(vm_dir, "1"), stdin=stdin)
    assert res.rc == 0, res
    assert sorted(os.listdir(vm_dir / "backup")) == ["disk.1.0", "vm.xml"]
    assert os.readlink(vm_dir / "disk.1") == "disk.1.snap/1"


# ---------------------------------------------------------------------------
# Incremental backups, INCREMENT_MODE=CBT (powered off)
# ---------------------------------------------------------------------------

def cbt_xml(last, mode=""):
    config = "<INCREMENT_MODE>%s</INCREMENT_MODE>" % mode if mode else ""
    return vm_xml(mode="INCREMENT", disks=(("0", "vda", "raw"), ("1", "vdb", "qcow2")),
                  config="%s<LAST_INCREMENT_ID>%d</LAST_INCREMENT_ID>" % (config, last))


def _bitmaps(path):
    return sorted(b["name"] for b in (_info(path).get("format-specific", {}).get("data", {}).get("bitmaps") or []))


def _cbt_double():
    """The emulating test double of virsh of the differential suite (libvirt's checkpoints as qcow2 bitmaps, its
    pull-mode backup served by qemu-nbd): tests/differential/virsh_cbt_double.py."""
    import importlib.util  # pylint: disable=import-outside-toplevel
    path = os.path.join(os.path.dirname(__file__), *([os.pardir] * 4 + ["differential", "virsh_cbt_double.py"]))
    spec = importlib.util.spec_from_file_location("virsh_cbt_double", os.path.normpath(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cbt_live_xml(last):
    disks = "".join("<DISK><DISK_ID>%s</DISK_ID><TARGET>%s</TARGET><DRIVER>%s</DRIVER><SIZE>4</SIZE></DISK>" % d
                    for d in (("0", "vda", "raw"), ("1", "vdb", "qcow2")))
    return ("<VM><ID>%d</ID><DEPLOY_ID>one-%d</DEPLOY_ID><TEMPLATE>%s</TEMPLATE><HISTORY_RECORDS><HISTORY>"
            "<DS_ID>0</DS_ID></HISTORY></HISTORY_RECORDS><BACKUPS><BACKUP_CONFIG><MODE>INCREMENT</MODE>"
            "<FS_FREEZE>AGENT</FS_FREEZE><LAST_INCREMENT_ID>%d</LAST_INCREMENT_ID></BACKUP_CONFIG></BACKUPS></VM>"
            % (VMID, VMID, disks, last))


@pytest.fixture
def cbt_virsh(tmp_path, doubles):
    """The emulating virsh in place of the recording one; the domain one-5 is the VM of ``cbt_live_xml``."""
    double = _cbt_double()
    (tmp_path / "bin" / "virsh").write_text(double.SCRIPT % {"log": str(doubles), "mnt": str(tmp_path)})
    (tmp_path / ("onevm-%d.xml" % VMID)).write_text(cbt_live_xml(-1))
    yield doubles
    double.stop_all(str(tmp_path / "virsh-cbt.json"))


def _calls(log):
    calls = [" ".join(c.split()[3:]) if c.startswith("virsh ") else c for c in log.read_text().splitlines()
             if c.startswith(("virsh ", "virsh-xml "))]
    log.write_text("")
    return calls


def test_cbt_live_chain_and_its_virsh_calls(run, vm_dir, cbt_virsh, tmp_path):
    """A full live backup then two live increments (stock's clean_checkpoints, backup_full_live with :cbt,
    define_parent, backup_nbd_live): the checkpoints are libvirt's, each increment is pulled from libvirt's
    pull-mode export of the changes since the last checkpoint; the saved chain rebuilt is the disk at each backup."""
    saved = tmp_path / "saved"
    saved.mkdir()
    disk = vm_dir / "disk.1"
    subprocess.run(["qemu-img", "bitmap", "-f", "qcow2", "--add", str(disk), "stale"], check=True)
    _write(disk, 0x11, 0)
    views = []
    for last, backup_id, stdin in _chain(run, vm_dir, "prebackup_live", cbt_live_xml):
        expected = ["one-%d-%d" % (VMID, backup_id)] + (["one-%d-%d" % (VMID, last)] if last >= 0 else [])
        assert _bitmaps(disk) == sorted(expected)
        calls = _calls(cbt_virsh)
        if last < 0:
            assert calls == [
                "checkpoint-list --name one-5", "domfsfreeze one-5",
                "snapshot-create-as --name one-5-backup --disk-only --atomic --diskspec vda,snapshot=no --diskspec "
                "vdb,file=%s/tmp/overlay_1.qcow2 one-5" % vm_dir,
                "checkpoint-create --xmlfile %s/tmp/checkpoint.xml one-5" % vm_dir,
                "virsh-xml <domaincheckpoint><name>one-5-0</name><disks><disk name='vdb'/></disks>"
                "</domaincheckpoint>",
                "domfsthaw one-5"], calls
        else:
            assert calls[:3] == ["checkpoint-list --name one-5", "domfsfreeze one-5",
                                 "backup-begin --reuse-external --backupxml %s/tmp/backup.xml --checkpointxml "
                                 "%s/tmp/checkpoint.xml one-5" % (vm_dir, vm_dir)], calls
            assert calls[5:] == ["domfsthaw one-5", "domjobinfo one-5", "domjobabort one-5",
                                 "checkpoint-list --name one-5"] + (
                                     ["checkpoint-delete one-5 one-5-0"] if last == 1 else []), calls
            assert sorted(os.listdir(vm_dir / "tmp")) == ["backup.xml", "checkpoint.xml", "scracth.1.qcow2"]
        assert sorted(os.listdir(vm_dir)) == ["backup", "disk.0", "disk.1", "tmp"]   # no socket left
        assert not _nbd_servers(vm_dir / "backup.socket")
        info = _info(vm_dir / "backup" / ("disk.1.%d" % backup_id))
        assert "backing-filename" not in info and info["virtual-size"] == 4 << 20
        os.rename(vm_dir / "backup" / ("disk.1.%d" % backup_id), saved / ("disk.1.%d" % backup_id))
        views.append(_guest_view(disk))
        assert run("postbackup_live", *args_for(vm_dir, "1"), stdin=stdin).rc == 0
        post = _calls(cbt_virsh)
        if last < 0:   # the snapshot's overlay merged back
            assert [c.split()[0] for c in post] == ["blockcommit", "snapshot-delete"], post
        else:          # an increment took no snapshot
            assert post == []
        assert sorted(os.listdir(vm_dir)) == ["disk.0", "disk.1"]
        _write(disk, 0x20 + backup_id, (1 + backup_id) << 20)
    _assert_cbt_chain(saved, views)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a private mount namespace for the nbdinfo test double)")
def test_cbt_live_a_failed_pull_thaws_and_stops_the_backup_job(run, vm_dir, cbt_virsh, tmp_path, fake_ssh):
    """nbdinfo (a failing test double) fails while libvirt's backup job runs: the job is aborted (its export
    stopped, the temporary bitmap gone), the action fails; the next increment, from the same checkpoint, works."""
    assert run("prebackup_live", *args_for(vm_dir, "1"), stdin=cbt_live_xml(-1)).rc == 0
    assert run("postbackup_live", *args_for(vm_dir, "1"), stdin=cbt_live_xml(-1)).rc == 0
    _write(vm_dir / "disk.1", 0x30, 1 << 20)
    _calls(cbt_virsh)
    fake = tmp_path / "fake-nbdinfo"
    fake.write_text("#!/bin/sh\necho 'nbdinfo: broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    wrapper = _session_ssh(tmp_path, fake_ssh, fake, "/usr/bin/nbdinfo")
    res = run("prebackup_live", *args_for(vm_dir, "1"), stdin=cbt_live_xml(0), SSH=str(wrapper))
    assert res.rc == 1 and "Error preparing disk files" in res.err, res
    calls = _calls(cbt_virsh)
    assert calls[-3:] == ["domfsthaw one-5", "domjobinfo one-5", "domjobabort one-5"], calls
    assert not _nbd_servers(vm_dir / "backup.socket") and not os.path.lexists(vm_dir / "backup.socket")
    assert "backup-vdb" not in _bitmaps(vm_dir / "disk.1")
    res = run("prebackup_live", *args_for(vm_dir, "1"), stdin=cbt_live_xml(0))
    assert res.rc == 0, res
    assert _guest_view(vm_dir / "backup" / "disk.1.1")[1 << 20:(1 << 20) + 65536] == bytes([0x30]) * 65536


def test_cbt_chain_powered_off(run, vm_dir, doubles, tmp_path):
    """A full backup then two increments (stock's backup_full with :cbt, backup_nbd): the disk keeps its layout and
    gets bitmap one-5-N; backup N holds the clusters written since backup N-1 alone; the chain of backup files
    rebuilt (as the rsync datastore's downloader does) is the disk as it was at each backup."""
    saved = tmp_path / "saved"
    saved.mkdir()
    disk = vm_dir / "disk.1"
    _write(disk, 0x11, 0)
    subprocess.run(["qemu-img", "bitmap", "-f", "qcow2", "--add", str(disk), "stale"], check=True)
    views = []
    for last, backup_id, stdin in _chain(run, vm_dir, "prebackup", lambda last: cbt_xml(last, "CBT" if last else "")):
        bck = vm_dir / "backup"
        assert sorted(os.listdir(bck)) == ["disk.1.%d" % backup_id, "vm.xml"]
        assert sorted(os.listdir(vm_dir)) == ["backup", "disk.0", "disk.1"]   # no socket left, no snapshot dir
        expected = ["one-%d-%d" % (VMID, backup_id)] + (["one-%d-%d" % (VMID, last)] if last >= 0 else [])
        assert _bitmaps(disk) == sorted(expected)
        info = _info(bck / ("disk.1.%d" % backup_id))
        assert "backing-filename" not in info and info["virtual-size"] == 4 << 20
        os.rename(bck / ("disk.1.%d" % backup_id), saved / ("disk.1.%d" % backup_id))
        views.append(_guest_view(disk))
        assert run("postbackup", *args_for(vm_dir, "1"), stdin=stdin).rc == 0
        assert not bck.exists()
        _write(disk, 0x20 + backup_id, (1 + backup_id) << 20)
    _assert_cbt_chain(saved, views)


def test_cbt_an_increment_refuses_a_disk_without_the_chains_bitmap(run, vm_dir, doubles):
    assert run("prebackup", *args_for(vm_dir, "1"), stdin=cbt_xml(-1)).rc == 0
    assert run("postbackup", *args_for(vm_dir, "1"), stdin=cbt_xml(-1)).rc == 0
    before = sorted(os.listdir(vm_dir))
    res = run("prebackup", *args_for(vm_dir, "1"), stdin=cbt_xml(3))
    assert res.rc == 1 and "disk 1 has no bitmap one-5-3" in res.err and "onevm backup --reset" in res.err, res
    assert sorted(os.listdir(vm_dir)) == before and _bitmaps(vm_dir / "disk.1") == ["one-5-0"]


def _nbd_servers(sock):
    """Pids of the processes whose command line names ``sock`` (the qemu-nbd of a backup)."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                if str(sock).encode() in handle.read().split(b"\0"):
                    pids.append(int(pid))
        except (OSError, ValueError):
            pass
    return pids


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a private mount namespace for the qemu-io test double)")
@pytest.mark.parametrize("how", ["fails", "cancelled"])
def test_cbt_qemu_nbd_is_stopped_when_the_pull_fails_or_is_cancelled(run, vm_dir, doubles, tmp_path, fake_ssh,
                                                                     how):
    """The increment's qemu-io test double fails (or hangs until oned cancels the backup with SIGTERM): the
    qemu-nbd exporting the disk is stopped, its socket removed, the disk's bitmaps left as they were."""
    assert run("prebackup", *args_for(vm_dir, "1"), stdin=cbt_xml(-1)).rc == 0
    assert run("postbackup", *args_for(vm_dir, "1"), stdin=cbt_xml(-1)).rc == 0
    _write(vm_dir / "disk.1", 0x30, 0)
    marker = tmp_path / "pulling"
    fake = tmp_path / "fake-qemu-io"
    fake.write_text('#!/bin/sh\necho $$ >%s\n%s\n' % (marker, "sleep 2; exit 1" if how == "fails" else "exec sleep 60"))
    fake.chmod(0o755)
    wrapper = _session_ssh(tmp_path, fake_ssh, fake, "/usr/bin/qemu-io")
    sock = vm_dir / "disk.1.socket"
    seen = []
    timer = threading.Thread(target=_cbt_watch, args=(marker, sock, seen, how == "cancelled"))
    timer.start()
    res = run("prebackup", *args_for(vm_dir, "1"), stdin=cbt_xml(0), SSH=str(wrapper))
    timer.join()
    if how == "fails":
        assert res.rc == 1 and "Error preparing disk files" in res.err, res
    else:
        assert res.rc == 128 + signal.SIGTERM and "Backup cancelled" in res.err, res
    assert seen and seen[0], "qemu-nbd was not running while the changes were pulled"
    deadline = time.time() + 10
    while time.time() < deadline and _nbd_servers(sock):
        time.sleep(0.1)
    assert not _nbd_servers(sock) and not os.path.lexists(sock)
    assert _bitmaps(vm_dir / "disk.1") == ["one-5-0"]


def _cbt_watch(marker, sock, seen, cancel):
    deadline = time.time() + 20
    while time.time() < deadline and not marker.exists():
        time.sleep(0.05)
    seen.append(_nbd_servers(sock))
    if cancel and marker.exists():
        os.kill(os.getpid(), signal.SIGTERM)
