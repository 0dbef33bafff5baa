"""Hole-keeping, atomic copies (tm/copy.py): local, streamed through the fake ssh, downloads, signals."""
from __future__ import annotations

import filecmp
import http.server
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.nebula.storage.plugins.module_utils.tm import copy as tm_copy
from ansible_collections.nebula.storage.plugins.module_utils.tm.common import Context, TMError
from tests.conftest import ROOT
from tm_helpers import allocated, make_sparse, ssh_hosts

MiB = 1 << 20


def leftovers(directory):
    return [p for p in os.listdir(directory) if tm_copy.TEMP_TAG in p]


@pytest.fixture
def sparse_src(tmp_path):
    return make_sparse(str(tmp_path / "src.img"), 64 * MiB, data_at=(0, 10 * MiB, 40 * MiB, 63 * MiB))


def test_data_extents_finds_the_data(sparse_src):
    fd = os.open(sparse_src, os.O_RDONLY)
    try:
        extents = tm_copy.data_extents(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    assert sum(length for _off, length in extents) == 4 * MiB
    assert [off for off, _len in extents] == [0, 10 * MiB, 40 * MiB, 63 * MiB]


def test_data_extents_of_an_empty_and_a_hole_only_file(tmp_path):
    hole = tmp_path / "hole"
    hole.write_bytes(b"")
    os.truncate(hole, 8 * MiB)
    fd = os.open(hole, os.O_RDONLY)
    try:
        assert tm_copy.data_extents(fd, 8 * MiB) == []
        assert tm_copy.data_extents(fd, 0) == []
    finally:
        os.close(fd)


@pytest.mark.parametrize("force_rw", [False, True], ids=["copy_file_range", "pread-pwrite"])
def test_copy_local_keeps_holes_and_content(tmp_path, sparse_src, monkeypatch, force_rw):
    if force_rw:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    dst = str(tmp_path / "out" / "disk.0")
    os.mkdir(os.path.dirname(dst))
    os.chmod(sparse_src, 0o640)
    method = tm_copy.copy_local(sparse_src, dst)
    assert method in ("reflink", "copy_file_range", "read/write")
    if force_rw:
        assert method in ("reflink", "read/write")
    assert filecmp.cmp(sparse_src, dst, shallow=False)
    assert os.path.getsize(dst) == 64 * MiB
    assert abs(allocated(dst) - allocated(sparse_src)) <= 0.01 * allocated(sparse_src) + 64 * 1024
    assert os.stat(dst).st_mode & 0o777 == 0o640
    assert leftovers(os.path.dirname(dst)) == []


def test_copy_local_replaces_existing_destination(tmp_path, sparse_src):
    dst = tmp_path / "disk.0"
    dst.write_text("old")
    tm_copy.copy_local(sparse_src, str(dst))
    assert filecmp.cmp(sparse_src, dst, shallow=False)


def test_copy_local_missing_source_leaves_nothing(tmp_path):
    dst = tmp_path / "disk.0"
    with pytest.raises(TMError, match="No such file"):
        tm_copy.copy_local(str(tmp_path / "nope"), str(dst))
    assert os.listdir(tmp_path) == []


def test_copy_local_into_missing_directory_fails_cleanly(tmp_path, sparse_src):
    with pytest.raises(TMError, match="Error copying"):
        tm_copy.copy_local(sparse_src, str(tmp_path / "no" / "dir" / "disk.0"))


def test_cleanup_stale_removes_only_that_destinations_temps(tmp_path):
    (tmp_path / ".disk.0.tmcopy-abc123").write_text("partial")
    (tmp_path / ".disk.1.tmcopy-abc123").write_text("other")
    (tmp_path / "disk.0").write_text("real")
    removed = tm_copy.cleanup_stale(str(tmp_path / "disk.0"))
    assert [os.path.basename(p) for p in removed] == [".disk.0.tmcopy-abc123"]
    assert sorted(os.listdir(tmp_path)) == [".disk.1.tmcopy-abc123", "disk.0"]


# --------------------------------------------------------------------------- signals

CHILD = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import tests.conftest
    from ansible_collections.nebula.storage.plugins.module_utils.tm import copy as tm_copy
    from ansible_collections.nebula.storage.plugins.module_utils.tm.common import TMError
    try:
        with tm_copy.atomic_target({dst!r}) as (fd, tmp):
            os.write(fd, b"x" * 65536)
            print(tmp, flush=True)
            time.sleep(30)
    except TMError as exc:
        sys.stderr.write(exc.msg + "\\n")
        sys.exit(exc.rc)
""")


def _start_child(dst):
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), dst=dst)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    assert tmp and os.path.exists(tmp), proc.stderr.read()
    return proc, tmp


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_during_copy_leaves_no_partial_file(tmp_path, sig):
    dst = str(tmp_path / "disk.0")
    proc, tmp = _start_child(dst)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 128 + sig
    assert "interrupted by signal %d" % sig in err
    assert not os.path.exists(tmp) and not os.path.exists(dst)
    assert os.listdir(tmp_path) == []


def test_sigkill_leftover_is_removed_by_the_next_copy(tmp_path, sparse_src):
    """SIGKILL cannot be caught: the temp file stays, hidden, and the next copy to that disk removes it."""
    dst = str(tmp_path / "disk.0")
    proc, tmp = _start_child(dst)
    proc.kill()
    proc.wait(10)
    assert os.path.exists(tmp) and not os.path.exists(dst)
    assert os.path.basename(tmp).startswith(".disk.0.tmcopy-")
    tm_copy.copy_local(sparse_src, dst)
    assert not os.path.exists(tmp)
    assert sorted(os.listdir(tmp_path)) == ["disk.0", "src.img"]


# --------------------------------------------------------------------------- remote stream

@pytest.fixture
def ctx(fake_ssh):
    return Context("clone", {"SSH": str(fake_ssh), "LOCAL_SHORTCUT": "no"}, stderr=io.StringIO())


def test_copy_remote_streams_with_holes_over_one_connection(tmp_path, sparse_src, ctx, fake_ssh):
    dst = str(tmp_path / "host" / "ds" / "0" / "7" / "disk.0")
    tm_copy.copy_remote(ctx, sparse_src, "node1", dst, mode=0o600)
    assert ssh_hosts(fake_ssh) == ["node1"]
    assert filecmp.cmp(sparse_src, dst, shallow=False)
    assert abs(allocated(dst) - allocated(sparse_src)) <= 0.01 * allocated(sparse_src) + 64 * 1024
    assert os.stat(dst).st_mode & 0o777 == 0o600
    assert leftovers(os.path.dirname(dst)) == []


def test_receiver_runs_on_python_36(tmp_path, sparse_src, fake_ssh):
    """Hosts may run an old python3: the receiver is plain Python 3.6."""
    py36 = Path.home() / ".pyenv" / "versions" / "3.6.15" / "bin" / "python3.6"
    if not py36.exists():
        pytest.skip("no Python 3.6 interpreter at %s" % py36)
    ctx36 = Context("clone", {"SSH": str(fake_ssh), "LOCAL_SHORTCUT": "no", "REMOTE_PYTHON": str(py36)},
                    stderr=io.StringIO())
    dst = str(tmp_path / "host36" / "disk.0")
    tm_copy.copy_remote(ctx36, sparse_src, "node1", dst)
    assert filecmp.cmp(sparse_src, dst, shallow=False)
    assert allocated(dst) <= allocated(sparse_src) * 1.01


def test_copy_rejects_a_non_regular_source(tmp_path, ctx):
    with pytest.raises(TMError, match="not a regular file"):
        tm_copy.copy_local(str(tmp_path), str(tmp_path / "x"))
    with pytest.raises(TMError, match="not a regular file"):
        tm_copy.copy_remote(ctx, str(tmp_path), "node1", str(tmp_path / "y"))


def test_copy_local_from_a_block_device(tmp_path):
    """A block device reports st_size 0; its size comes from seeking to its end."""
    backing = make_sparse(str(tmp_path / "backing"), 8 * MiB, data_at=(2 * MiB,))
    proc = subprocess.run(["losetup", "--find", "--show", backing], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("no loop device here: %s" % proc.stderr.strip())
    loop = proc.stdout.strip()
    try:
        tm_copy.copy_local(loop, str(tmp_path / "copy"))
        assert filecmp.cmp(backing, tmp_path / "copy", shallow=False)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def test_copy_remote_of_an_empty_file(tmp_path, ctx):
    src = tmp_path / "empty"
    src.write_bytes(b"")
    tm_copy.copy_remote(ctx, str(src), "node1", str(tmp_path / "dst"))
    assert (tmp_path / "dst").read_bytes() == b""


def test_receiver_rejects_a_truncated_stream_and_cleans_up(tmp_path):
    dst = str(tmp_path / "disk.0")
    stream = tm_copy.MAGIC + b"D" + (0).to_bytes(8, "big") + (1 * MiB).to_bytes(8, "big") + b"x" * 1000
    proc = subprocess.run([sys.executable, "-c", tm_copy.RECEIVER, dst, "644"], input=stream, capture_output=True, check=False)
    assert proc.returncode != 0 and b"truncated stream" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_copy_remote_failure_reports_receiver_error(tmp_path, sparse_src, ctx):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    with pytest.raises(TMError, match="Error copying to node1"):
        tm_copy.copy_remote(ctx, sparse_src, "node1", str(tmp_path / "blocker" / "disk.0"))


SENDER = textwrap.dedent("""
    import io, os, sys, time
    sys.path.insert(0, {root!r})
    import tests.conftest
    from ansible_collections.nebula.storage.plugins.module_utils.tm import copy as tm_copy
    from ansible_collections.nebula.storage.plugins.module_utils.tm.common import Context, TMError
    ctx = Context("clone", {{"SSH": {ssh!r}, "LOCAL_SHORTCUT": "no"}}, stderr=io.StringIO())
    try:
        with tm_copy._stream_to(ctx, "node1", {dst!r}, 0o644) as stream:
            stream.write(tm_copy.MAGIC)
            stream.record(0, 10 << 20)
            stream.write(b"x" * (1 << 20))
            print("sent", flush=True)
            time.sleep(30)
    except TMError as exc:
        sys.stderr.write(exc.msg + "\\n")
        sys.exit(exc.rc)
""")


def test_killed_remote_copy_leaves_no_partial_file_on_the_host(tmp_path, fake_ssh):
    dst = str(tmp_path / "host" / "disk.0")
    proc = subprocess.Popen([sys.executable, "-c", SENDER.format(root=str(ROOT), ssh=str(fake_ssh), dst=dst)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout.readline().strip() == "sent", proc.stderr.read()
    deadline = time.time() + 5
    while not leftovers(os.path.dirname(dst)) and time.time() < deadline:
        time.sleep(0.05)
    assert leftovers(os.path.dirname(dst)), "the receiver should be writing its temp file"
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM, err
    deadline = time.time() + 5
    while leftovers(os.path.dirname(dst)) and time.time() < deadline:
        time.sleep(0.05)
    assert os.listdir(os.path.dirname(dst)) == []


# --------------------------------------------------------------------------- downloads

class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path != "/image.raw":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_url():
    _Handler.payload = os.urandom(3 * MiB + 17)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_port
    server.shutdown()
    server.server_close()


def test_download_local_and_streamed(tmp_path, http_url, ctx, fake_ssh):
    tm_copy.download(ctx, http_url + "/image.raw", None, str(tmp_path / "local.img"))
    assert (tmp_path / "local.img").read_bytes() == _Handler.payload
    tm_copy.download(ctx, http_url + "/image.raw", "node1", str(tmp_path / "remote" / "disk.0"))
    assert (tmp_path / "remote" / "disk.0").read_bytes() == _Handler.payload
    assert ssh_hosts(fake_ssh) == ["node1"]
    assert "INFO: clone: Downloading http://127.0.0.1" in ctx.stderr.getvalue()


def test_download_error_leaves_nothing(tmp_path, http_url, ctx):
    with pytest.raises(TMError, match="Error downloading .*404"):
        tm_copy.download(ctx, http_url + "/missing", None, str(tmp_path / "x.img"))
    with pytest.raises(TMError, match="Not a downloadable URL"):
        tm_copy.download(ctx, "file:///etc/passwd", None, str(tmp_path / "y.img"))
    assert os.listdir(tmp_path) == ["tools"]
