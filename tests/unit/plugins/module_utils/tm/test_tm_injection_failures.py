"""Hostile paths never run code; failures (missing source, full disk) leave no partial file."""
from __future__ import annotations

import filecmp
import functools
import os
import subprocess
import uuid

import pytest

from tm_helpers import make_sparse

MiB = 1 << 20

# Each name tries a different way into a shell. If any of them ran, a file
# named PWNED* would appear in the working directory (or a marker elsewhere).
HOSTILE = [
    "with space",
    "semi;touch PWNED1;x",
    "subst$(touch PWNED2)",
    "back`touch PWNED3`tick",
    "quote'q;touch PWNED4;'",
    'dquote"$(touch PWNED5)"',
    "amp&&touch PWNED6",
    "nl\ntouch PWNED7",
    "-rf",
]


@pytest.fixture
def hostile_ds(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def pwned(root):
    return sorted(str(p) for p in root.parent.rglob("PWNED*"))


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_paths_are_data_through_every_action(tm, hostile_ds, tmp_path, name):
    root = hostile_ds
    img_dir = root / ("1 " + name)
    img_dir.mkdir()
    src = make_sparse(str(img_dir / name), 4 * MiB, data_at=(MiB,))
    location = root / ("ds " + name)  # the delete guard wants <DATASTORE_LOCATION>/<ds id>/<vm id>
    tm = functools.partial(tm, DATASTORE_LOCATION=str(location))
    vm = location / "0" / "5"
    disk = vm / ("disk.0")
    odd = vm / name
    for host in ("node1", "localhost"):
        shortcut = "yes" if host == "localhost" else "no"
        assert tm("clone", "fe:%s" % src, "%s:%s" % (host, odd), "5", "1", LOCAL_SHORTCUT=shortcut).rc == 0
        assert filecmp.cmp(src, odd, shallow=False)
        assert tm("clone", "fe:%s" % src, "%s:%s" % (host, odd), "5", "1", LOCAL_SHORTCUT=shortcut,
                  CLONE_COPY="host").rc == 0
        assert tm("ln", "fe:%s" % src, "%s:%s.lnk" % (host, odd), "5", "1", LOCAL_SHORTCUT=shortcut).rc == 0
        assert os.readlink(str(odd) + ".lnk") == src
        assert tm("mkimage", "4", "raw", "%s:%s.img" % (host, odd), "5", "0", LOCAL_SHORTCUT=shortcut).rc == 0
        assert os.path.getsize(str(odd) + ".img") == 4 * MiB
        assert tm("mkswap", "4", "%s:%s.swap" % (host, odd), "5", "0", LOCAL_SHORTCUT=shortcut).rc == 0
        ctx_file = img_dir / "context.sh"
        ctx_file.write_text("X=1\n")
        res = tm("context", str(ctx_file), "%s:%s" % (img_dir / name, "f;touch PWNED8"), "%s:%s.iso" % (host, odd),
                 "5", "0", LOCAL_SHORTCUT=shortcut)
        assert res.rc == 0, res
        assert tm("cpds", "%s:%s" % (host, odd), "fe:%s.saved" % odd, "-1", "5", "1", LOCAL_SHORTCUT=shortcut).rc == 0
        assert filecmp.cmp(src, str(odd) + ".saved", shallow=False)
        assert tm("resize", "%s:%s.img" % (host, odd), "8", "5", LOCAL_SHORTCUT=shortcut).rc == 0
        moved = location / "0" / "6"
        assert tm("mv", "%s:%s" % (host, vm), "%s:%s" % (host, moved), "5", "0", LOCAL_SHORTCUT=shortcut).rc == 0
        assert (moved / name).exists()
        assert tm("mv", "node1:%s" % moved, "node2:%s" % vm, "5", "0", MV_TRANSFER="always").rc == 0
        assert (vm / name).exists() and not moved.exists()
        assert tm("delete", "%s:%s" % (host, vm), "5", "0", LOCAL_SHORTCUT=shortcut).rc == 0
        assert not vm.exists()
    assert not disk.exists()
    assert pwned(root) == []


def test_hostile_overlay_and_snapshots(tm, hostile_ds):
    name = "snap $(touch PWNED9) `touch PWNED10`;touch PWNED11"
    base = hostile_ds / ("base " + name)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    disk = hostile_ds / ("0 " + name) / "5" / "disk.0"
    assert tm("clone", "fe:%s" % base, "node1:%s" % disk, "5", "1", QCOW2_OVERLAY="yes").rc == 0
    assert tm("snap_create", "node1:%s" % disk, "0", "5").rc == 0
    assert tm("snap_revert", "node1:%s" % disk, "0", "5").rc == 0
    assert tm("snap_create", "node1:%s" % disk, "1", "5").rc == 0
    res = tm("snap_delete", "node1:%s" % disk, "1", "5")
    assert res.rc == 0, res
    assert pwned(hostile_ds) == []


def test_hostile_host_names_are_rejected_before_any_command(tm, hostile_ds, fake_ssh):
    from tm_helpers import ssh_hosts
    for host in ("node1;touch PWNED12", "$(touch PWNED13)", "-oProxyCommand=touch PWNED14", "`touch PWNED15`"):
        res = tm("delete", "%s:%s/x/y" % (host, hostile_ds), "5", "0")
        assert res.rc == 1 and "Invalid host" in res.err
    assert ssh_hosts(fake_ssh) == []
    assert pwned(hostile_ds) == []


# --------------------------------------------------------------------------- full disk

@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs (root only); unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs-tm-%s" % uuid.uuid4().hex[:8], str(mnt)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): %s" % proc.stderr.strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("route", ["local", "stream", "host-cp"])
def test_full_disk_leaves_no_partial_file(tm, tmp_path, small_fs, route):
    src = make_sparse(str(tmp_path / "big.img"), 16 * MiB, data_at=(0, 4 * MiB, 8 * MiB, 12 * MiB))
    dst = small_fs / "0" / "5" / "disk.0"
    host = "localhost" if route == "local" else "node1"
    extra = {"CLONE_COPY": "host"} if route == "host-cp" else {}
    res = tm("clone", "fe:%s" % src, "%s:%s" % (host, dst), "5", "1",
             LOCAL_SHORTCUT="yes" if route == "local" else "no", **extra)
    assert res.rc != 0
    assert "No space left on device" in res.err or "Error copying" in res.err, res
    assert os.listdir(dst.parent) == []
    # the filesystem is empty again: nothing partial hides anywhere
    assert subprocess.run(["du", "-sk", str(small_fs)], capture_output=True, text=True, check=False).stdout.split()[0] in ("0", "4")


def test_full_disk_mkimage_leaves_nothing(tm, small_fs):
    dst = small_fs / "0" / "5" / "disk.1"
    dst.parent.mkdir(parents=True)
    filler = small_fs / "filler"
    subprocess.run(["dd", "if=/dev/zero", "of=%s" % filler, "bs=64k"], capture_output=True, check=False)
    res = tm("mkimage", "16", "ext4", "node1:%s" % dst, "5", "0")
    assert res.rc != 0 and "Could not create image" in res.err
    assert os.listdir(dst.parent) == []


def test_full_disk_context_leaves_nothing(tm, tmp_path, small_fs):
    big = make_sparse(str(tmp_path / "blob"), 3 * MiB, data_at=(0, MiB, 2 * MiB))
    dst = small_fs / "0" / "5" / "disk.2"
    res = tm("context", big, "node1:%s" % dst, "5", "0")
    assert res.rc != 0
    assert os.listdir(dst.parent) == []
