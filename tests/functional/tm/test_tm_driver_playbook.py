"""Real ansible-playbook installs the nfs_shared TM driver; the installed actions then run for real,
locally and over real ssh to a private sshd on 127.0.0.1."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tm_functional import ROOT, run_playbook

MiB = 1 << 20
RUNTIME = ROOT / "plugins" / "module_utils" / "tm"
PY36 = Path.home() / ".pyenv" / "versions" / "3.6.15" / "bin" / "python3.6"

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Install the driver
      nebula.storage.tm_driver:
        name: nfs_shared
        layout: {layout}
        dest: {dest}
        legacy_conf_dir: {conf}
        settings: {settings}
      register: result
    - name: Save the result
      ansible.builtin.copy:
        content: "{{{{ result | to_json }}}}"
        dest: {out}
      check_mode: false
      diff: false
      changed_when: false
"""


def install(playbook, dest, layout="remotes", settings=None, extra=()):
    out = Path(dest).parent / "result.json"
    path = playbook(PLAY.format(layout=layout, dest=dest, conf=Path(dest).parent / "etc",
                                settings=json.dumps(settings or {}), out=out))
    proc = run_playbook(path, *extra)
    return proc, json.loads(out.read_text())


def recap_changed(stdout):
    return int(re.search(r"changed=(\d+)", stdout).group(1))


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sparse(path, size, data_at):
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset in data_at:
            handle.seek(offset)
            handle.write(os.urandom(MiB))
    return path


def test_playbook_check_diff_install_and_idempotence(playbook, tmp_path):
    dest = tmp_path / "remotes"
    proc, _res = install(playbook, dest, extra=("--check", "--diff"))
    assert "added: %s/tm/nfs_shared/clone" % dest in proc.stdout
    assert not dest.exists()
    proc, res = install(playbook, dest)
    assert recap_changed(proc.stdout) == 1
    assert res["changed"] and "clone" in res["actions"]
    lib = dest / "tm" / "nfs_shared" / "lib" / "nebula_tm"
    # read from the AnsiballZ payload, the runtime lands byte for byte
    for rel in ("__init__.py", "actions.py", "common.py", "copy.py", "rc.py", "registry.py", "drivers/__init__.py",
                "drivers/nfs_shared.py"):
        assert (lib / rel).read_bytes() == (RUNTIME / rel).read_bytes()
    proc, res = install(playbook, dest, extra=("--diff",))
    assert recap_changed(proc.stdout) == 0 and res["changed"] is False


@pytest.mark.parametrize("python", ["env", "3.6"])
def test_installed_actions_run_locally(playbook, tmp_path, python):
    if python == "3.6" and not PY36.exists():
        pytest.skip("no Python 3.6 interpreter at %s" % PY36)
    dest = tmp_path / "remotes"
    install(playbook, dest, settings={"LOCK_DIR": str(tmp_path / "locks"), "DATASTORE_LOCATION": str(tmp_path / "ds")})
    actions = dest / "tm" / "nfs_shared"
    prefix = [] if python == "env" else [str(PY36)]
    src = sparse(tmp_path / "image.raw", 64 * MiB, (0, 32 * MiB))
    vm = tmp_path / "ds" / "0" / "7"

    def act(*args):
        return subprocess.run(prefix + [str(actions / args[0]), *args[1:]], capture_output=True, text=True, timeout=120, check=False)

    proc = act("clone", "fe:%s" % src, "localhost:%s/disk.0" % vm, "7", "1")
    assert proc.returncode == 0, proc.stderr
    assert sha256(vm / "disk.0") == sha256(src)
    assert os.stat(vm / "disk.0").st_blocks <= os.stat(src).st_blocks * 1.01
    assert act("mkswap", "8", "localhost:%s/disk.1" % vm, "7", "0").returncode == 0
    proc = act("clone", "fe:%s/nope" % tmp_path, "localhost:%s/disk.2" % vm, "7", "1")
    assert proc.returncode == 1 and "source does not exist" in proc.stderr
    assert act("delete", "localhost:%s" % vm, "7", "0").returncode == 0
    assert not vm.exists()


def test_legacy_layout_runs_the_3x_protocol(playbook, tmp_path):
    dest = tmp_path / "tm_commands"
    _proc, res = install(playbook, dest, layout="legacy", settings={"LOCK_DIR": str(tmp_path / "locks")})
    assert sorted(res["actions"]) == ["clone", "context", "delete", "ln", "mkimage", "mkswap", "mv"]
    conf = (tmp_path / "etc" / "tm_nfs_shared" / "tm_nfs_shared.conf").read_text()
    assert re.search(r"^CLONE\s+= nfs_shared/tm_clone.sh$", conf, re.M)
    src = sparse(tmp_path / "image.raw", 8 * MiB, (MiB,))
    dst = tmp_path / "vms" / "3" / "images" / "disk.0"
    proc = subprocess.run([str(dest / "nfs_shared" / "tm_clone.sh"), "fe:%s" % src, "node1:%s" % dst],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert sha256(dst) == sha256(src)
    proc = subprocess.run([str(dest / "nfs_shared" / "tm_clone.sh"), "fe:%s/nope" % tmp_path, "node1:%s" % dst],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "ERROR MESSAGE --8<------\n" in proc.stderr and proc.stderr.endswith("ERROR MESSAGE ------>8--\n")


# --------------------------------------------------------------------------- real ssh

@pytest.fixture(scope="module")
def ssh_driver(tmp_path_factory, loopback_sshd):
    """The driver installed by ansible-playbook, reaching 127.0.0.1 through the private sshd."""
    work = tmp_path_factory.mktemp("tmssh")
    dest = work / "remotes"
    settings = {"SSH_OPTS": loopback_sshd.options(), "LOCAL_SHORTCUT": "no", "QCOW2_OVERLAY": "yes",
                "MV_TRANSFER": "always", "LOCK_DIR": str(work / "locks"), "DATASTORE_LOCATION": str(work / "datastores")}
    play = work / "play.yml"
    play.write_text(PLAY.format(layout="remotes", dest=dest, conf=work / "etc", settings=json.dumps(settings),
                                out=work / "result.json"))
    run_playbook(play)
    return work, dest / "tm" / "nfs_shared"


def test_actions_over_real_ssh(ssh_driver):
    work, actions = ssh_driver
    ds = work / "datastores"
    (ds / "1").mkdir(parents=True)

    def act(*args):
        proc = subprocess.run([str(actions / args[0]), *args[1:]], capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, (args, proc.stderr)
        return proc

    raw = sparse(ds / "1" / "raw.img", 128 * MiB, (0, 64 * MiB, 127 * MiB))
    qcow = ds / "1" / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "256M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x42 0 2M", str(qcow)], check=True, capture_output=True)
    vm = ds / "0" / "9"

    # clone raw: streamed over ssh, holes kept
    act("clone", "fe:%s" % raw, "127.0.0.1:%s/disk.0" % vm, "9", "1")
    assert sha256(vm / "disk.0") == sha256(raw)
    assert os.stat(vm / "disk.0").st_blocks * 512 <= os.stat(raw).st_blocks * 512 * 1.01
    # clone qcow2: an overlay made on the host by qemu-img
    act("clone", "fe:%s" % qcow, "127.0.0.1:%s/disk.1" % vm, "9", "1")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(vm / "disk.1")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["backing-filename"] == str(qcow)
    # ln, mkswap, context
    act("ln", "fe:%s" % raw, "127.0.0.1:%s/disk.2" % vm, "9", "1")
    assert os.readlink(vm / "disk.2") == str(raw)
    act("mkswap", "16", "127.0.0.1:%s/disk.3" % vm, "9", "0")
    assert subprocess.run(["blkid", "-o", "value", "-s", "TYPE", str(vm / "disk.3")], capture_output=True,
                          text=True, check=False).stdout.strip() == "swap"
    ctx = work / "context.sh"
    ctx.write_text("ETH0_IP=192.0.2.5\n")
    act("context", str(ctx), "127.0.0.1:%s/disk.4" % vm, "9", "0")
    files = subprocess.run(["isoinfo", "-R", "-f", "-i", str(vm / "disk.4")], capture_output=True, text=True, check=False).stdout
    assert files.split() == ["/context.sh"]
    # snapshot of the overlay over ssh
    act("snap_create", "127.0.0.1:%s/disk.1" % vm, "0", "9")
    assert os.readlink(vm / "disk.1") == "disk.1.snap/1"
    # mv between two hosts (two names for the loopback sshd): tar over two ssh connections
    checksum = sha256(vm / "disk.0")
    moved = ds / "100" / "9"
    act("mv", "127.0.0.1:%s" % vm, "localhost:%s" % moved, "9", "0")
    assert not vm.exists() and sha256(moved / "disk.0") == checksum
    assert os.stat(moved / "disk.0").st_blocks * 512 <= os.stat(raw).st_blocks * 512 * 1.01
    assert os.readlink(moved / "disk.1") == "disk.1.snap/1"
    # delete
    act("delete", "localhost:%s" % moved, "9", "100")
    assert not moved.exists()


def test_hostile_path_over_real_ssh(ssh_driver, monkeypatch):
    work, actions = ssh_driver
    monkeypatch.chdir(work)
    name = "x $(touch PWNED1);touch PWNED2 `touch PWNED3` 'q\""
    src = sparse(work / ("img " + name), 4 * MiB, (0,))
    dst = work / "datastores" / "0" / "1" / ("disk " + name)  # the delete guard wants a VM directory
    for action, args in (("clone", ["fe:%s" % src, "127.0.0.1:%s" % dst, "1", "1"]),
                         ("delete", ["127.0.0.1:%s" % dst, "1", "1"]),
                         ("delete", ["127.0.0.1:%s" % dst.parent, "1", "0"])):
        proc = subprocess.run([str(actions / action), *args], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
    assert not list(work.rglob("PWNED*")) and not list(Path("/root").glob("PWNED*"))
    assert not dst.parent.exists()


def test_remote_failure_over_real_ssh_leaves_nothing(ssh_driver):
    work, actions = ssh_driver
    blocker = work / "blocker"
    blocker.write_text("a file where the VM directory should be")
    src = sparse(work / "img-fail", 4 * MiB, (0,))
    proc = subprocess.run([str(actions / "clone"), "fe:%s" % src, "127.0.0.1:%s/disk.0" % blocker, "1", "1"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "Error" in proc.stderr
    assert shutil.which("ssh")


def test_killed_clone_over_real_ssh_leaves_no_partial_file(ssh_driver):
    """SIGTERM to the clone action mid-stream: the host side (receiver behind sshd) removes its temp file."""
    work, actions = ssh_driver
    src = work / "zeros.img"
    subprocess.run(["dd", "if=/dev/zero", "of=%s" % src, "bs=1M", "count=512", "status=none"], check=True)
    target = work / "killed" / "0" / "3"
    proc = subprocess.Popen([str(actions / "clone"), "fe:%s" % src, "127.0.0.1:%s/disk.0" % target, "3", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not (target.is_dir() and any(".tmcopy-" in p.name for p in target.iterdir())):
            time.sleep(0.02)
        assert any(".tmcopy-" in p.name for p in target.iterdir()), "the host never started writing"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        src.unlink()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by signal 15" in err
    deadline = time.time() + 15
    while time.time() < deadline and list(target.iterdir()):
        time.sleep(0.1)
    assert list(target.iterdir()) == []


def _processes_naming(text):
    """Pids of the processes whose command line contains ``text`` (the sshd-side ones included)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                if text.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def test_killed_mv_over_real_ssh_stops_both_ends(ssh_driver):
    """Issue 14 item 7: SIGTERM to mv between two hosts: no tar, ssh or receiver survives, no destination lands.

    Over loopback the whole disk moves in well under a second, so the sending tar (on the sshd side) is frozen
    (SIGSTOP) once the receiver holds part of the disk, and thawed after the action has ended: the signal always
    lands in the middle of the data, and a thawed sender must find no one to send to.
    """
    work, actions = ssh_driver
    ds = work / "datastores"
    vm = ds / "0" / "21"
    vm.mkdir(parents=True)
    # data, not zeros: tar -S sends holes as nothing, and a sparse disk's transfer could end before the signal
    subprocess.run("head -c %d /dev/zero | tr '\\0' '\\1' > %s" % (768 * MiB, shlex.quote(str(vm / "disk.0"))),
                   shell=True, check=True)
    dst = ds / "100" / "21"
    proc = subprocess.Popen([str(actions / "mv"), "127.0.0.1:%s" % vm, "localhost:%s" % dst, "21", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    senders = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not senders:
            senders = [pid for pid in _processes_naming("-cSf") if pid in _processes_naming(str(vm.parent))]
        assert senders, "the sending tar never started"
        received = []
        while time.time() < deadline and not (received and received[0] >= 8 * MiB):
            received = [p.stat().st_size for p in dst.parent.glob(".21.tmmv-*/21/disk.0")]
        for pid in senders:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(1)  # the stream in flight reaches the receiver
        received = [p.stat().st_size for p in dst.parent.glob(".21.tmmv-*/21/disk.0")]
        assert received and received[0] < 768 * MiB, ("the receiver never started, or the transfer ended first",
                                                      received)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        for pid in senders:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    deadline = time.time() + 15
    while time.time() < deadline and (_processes_naming(str(ds)) or list(dst.parent.iterdir())):
        time.sleep(0.1)
    assert _processes_naming(str(ds)) == [], "a transfer process outlived the action"
    time.sleep(2)
    assert list(dst.parent.iterdir()) == [], (err, subprocess.run(["find", str(dst.parent), "-ls"], capture_output=True, text=True, check=False).stdout)
    assert (vm / "disk.0").stat().st_size == 768 * MiB
