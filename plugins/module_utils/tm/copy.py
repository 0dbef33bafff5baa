# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copies that keep holes and never leave a partial destination behind.

* :func:`copy_local` tries a reflink (``FICLONE``), then copies only the data
  extents found with ``SEEK_DATA``/``SEEK_HOLE``, with ``copy_file_range`` where
  the kernel and filesystem allow it (``sendfile``/``pread`` otherwise).
* :func:`copy_remote` streams the data extents over one ssh connection to a
  small receiver run by the host's ``python3``; the receiver seeks over holes.
* :func:`download` fetches ``http://``, ``https://`` or ``ftp://`` sources
  straight to the destination (locally, or streamed to a host).

Every writer goes to a temp name ``.<name>.tmcopy-XXXXXX`` in the destination
directory and renames it into place only when complete. A failure, SIGTERM,
SIGINT or SIGHUP removes the temp file; a temp file left by SIGKILL is removed
by the next copy to the same destination (:func:`cleanup_stale`).
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import fcntl
import os
import signal
import stat
import struct
from contextlib import contextmanager

from .common import Interrupted, TMError, forget, log, remote_argv, signals_raise, spawn

FICLONE = 0x40049409
CHUNK = 1 << 20
SPARSE_BLOCK = 1 << 12   # a hole for every 4 KiB block of zeros (a filesystem block)
TEMP_TAG = ".tmcopy-"
URL_PREFIXES = ("http://", "https://", "ftp://")
MAGIC = b"TMS1"


def is_url(source):
    return source.startswith(URL_PREFIXES)


def temp_prefix(dst):
    return "." + os.path.basename(dst) + TEMP_TAG


def cleanup_stale(dst):
    """Remove temp files an interrupted (even SIGKILLed) copy to ``dst`` left behind."""
    removed = []
    directory = os.path.dirname(dst) or "."
    prefix = temp_prefix(dst)
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for path in (os.path.join(directory, n) for n in names if n.startswith(prefix)):
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


@contextmanager
def atomic_target(dst, mode=None):
    """Yield ``(fd, temp_path)`` in ``dst``'s directory; rename to ``dst`` on success."""
    import tempfile
    directory = os.path.dirname(dst) or "."
    cleanup_stale(dst)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(dst))
    done = False
    try:
        with signals_raise():
            try:
                yield fd, tmp
                os.fchmod(fd, 0o644 if mode is None else mode)
                os.close(fd)
                fd = -1
                os.rename(tmp, dst)
                done = True
            except Interrupted as exc:
                raise TMError("Copy to %s interrupted by signal %d" % (dst, exc.signum), 128 + exc.signum)
    finally:
        if fd >= 0:
            os.close(fd)
        if not done:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def data_extents(fd, size):
    """``(offset, length)`` of the data regions of ``fd``; whole file if seeking is unsupported."""
    try:
        first = os.lseek(fd, 0, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return []
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
            return [(0, size)] if size else []
        raise
    extents = []
    offset = first
    while offset < size:
        hole = min(os.lseek(fd, offset, os.SEEK_HOLE), size)
        extents.append((offset, hole - offset))
        if hole >= size:
            break
        try:
            offset = os.lseek(fd, hole, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            raise
    return extents


def _write_all(fd, data, offset=None):
    view = memoryview(data)
    while view:
        if offset is None:
            written = os.write(fd, view)
        else:
            written = os.pwrite(fd, view, offset)
            offset += written
        view = view[written:]


def _copy_range_rw(src_fd, dst_fd, offset, length):
    while length > 0:
        chunk = os.pread(src_fd, min(CHUNK, length), offset)
        if not chunk:
            raise TMError("source shrank while copying (short read at %d)" % offset)
        _write_all(dst_fd, chunk, offset)
        offset += len(chunk)
        length -= len(chunk)


def _copy_range(src_fd, dst_fd, offset, length, state):
    """Copy one extent; ``state['cfr']`` drops to False once copy_file_range is refused."""
    if state.get("cfr", True) and hasattr(os, "copy_file_range"):
        pos = offset
        end = offset + length
        try:
            while pos < end:
                done = os.copy_file_range(src_fd, dst_fd, min(end - pos, 1 << 30), pos, pos)
                if done == 0:
                    raise TMError("source shrank while copying (short copy at %d)" % pos)
                pos += done
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTSUP):
                raise
            state["cfr"] = False
            offset, length = pos, end - pos
    _copy_range_rw(src_fd, dst_fd, offset, length)


def copy_fd(src_fd, dst_fd, size, reflink=True):
    """Copy ``size`` bytes of ``src_fd`` into an empty ``dst_fd``, keeping holes."""
    if reflink:
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
            return "reflink"
        except (IOError, OSError):
            pass
    state = {}
    for offset, length in data_extents(src_fd, size):
        _copy_range(src_fd, dst_fd, offset, length, state)
    os.ftruncate(dst_fd, size)
    return "copy_file_range" if state.get("cfr", True) and hasattr(os, "copy_file_range") else "read/write"


def _source_size(fd, info):
    """Size of a regular file, or of a block device (whose st_size is 0)."""
    if stat.S_ISBLK(info.st_mode):
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, 0, os.SEEK_SET)
        return size
    if not stat.S_ISREG(info.st_mode):
        raise TMError("the source is not a regular file or a block device")
    return info.st_size


def copy_local(src, dst, mode=None, reflink=True):
    """Hole-keeping atomic copy of a regular file ``src`` to ``dst``."""
    try:
        src_fd = os.open(src, os.O_RDONLY)
    except OSError as exc:
        raise TMError("Error copying %s to %s: %s" % (src, dst, exc.strerror or exc))
    try:
        info = os.fstat(src_fd)
        try:
            size = _source_size(src_fd, info)
            if stat.S_ISBLK(info.st_mode):
                reflink = False
            with atomic_target(dst, mode if mode is not None else (info.st_mode & 0o7777)) as (fd, _tmp):
                return copy_fd(src_fd, fd, size, reflink=reflink)
        except OSError as exc:
            raise TMError("Error copying %s to %s: %s" % (src, dst, exc.strerror or exc))
    finally:
        os.close(src_fd)


# --------------------------------------------------------------------------
# Remote streaming
# --------------------------------------------------------------------------

# Run on the host as ``python3 -c RECEIVER DST MODE``. It is a constant: the
# destination only ever arrives as sys.argv[1].
RECEIVER = r'''
import glob, os, signal, struct, sys, tempfile
def main():
    dst = sys.argv[1]
    mode = int(sys.argv[2], 8)
    d = os.path.dirname(dst) or "."
    os.makedirs(d, exist_ok=True)
    pfx = "." + os.path.basename(dst) + ".tmcopy-"
    for old in glob.glob(os.path.join(glob.escape(d), glob.escape(pfx) + "*")):
        try:
            os.unlink(old)
        except OSError:
            pass
    fd, tmp = tempfile.mkstemp(dir=d, prefix=pfx)
    def stop(signum, frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(s, stop)
    inp = sys.stdin.buffer
    def need(n):
        b = inp.read(n)
        if len(b) != n:
            raise SystemExit("truncated stream for " + dst)
        return b
    ok = False
    try:
        if need(4) != b"TMS1":
            raise SystemExit("bad stream header for " + dst)
        while True:
            tag = need(1)
            if tag == b"D":
                off, n = struct.unpack(">QQ", need(16))
                while n:
                    b = inp.read(min(n, 1048576))
                    if not b:
                        raise SystemExit("truncated stream for " + dst)
                    v = memoryview(b)
                    while v:
                        w = os.pwrite(fd, v, off)
                        off += w
                        v = v[w:]
                    n -= len(b)
            elif tag == b"E":
                size, = struct.unpack(">Q", need(8))
                os.ftruncate(fd, size)
                os.fchmod(fd, mode)
                os.close(fd)
                fd = -1
                os.rename(tmp, dst)
                ok = True
                return
            else:
                raise SystemExit("bad stream record for " + dst)
    finally:
        if fd >= 0:
            os.close(fd)
        if not ok:
            try:
                os.unlink(tmp)
            except OSError:
                pass
main()
'''


def receiver_argv(ctx, dst, mode):
    python = ctx.setting("REMOTE_PYTHON", "python3")
    return [python, "-S", "-c", RECEIVER, dst, "%o" % mode]  # -S: no site import, a faster start


class _Stream(object):
    """A writer to the receiver process (local or over one ssh connection)."""

    def __init__(self, ctx, host, dst, mode):
        import subprocess
        import tempfile
        self.dst = dst
        self.host = host
        self.err = tempfile.TemporaryFile()
        argv = remote_argv(ctx, host, receiver_argv(ctx, dst, mode))
        try:
            self.proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.err)
        except OSError as exc:
            self.err.close()
            raise TMError("Error starting copy to %s:%s: %s" % (host, dst, exc.strerror or exc))
        self.fd = self.proc.stdin.fileno()

    def write(self, data):
        _write_all(self.fd, data)

    def record(self, offset, length):
        _write_all(self.fd, b"D" + struct.pack(">QQ", offset, length))

    def send_range(self, src_fd, offset, length):
        self.record(offset, length)
        sent_total = 0
        use_sendfile = hasattr(os, "sendfile")
        while sent_total < length:
            want = min(length - sent_total, 8 * CHUNK)
            if use_sendfile:
                try:
                    sent = os.sendfile(self.fd, src_fd, offset + sent_total, want)
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                        raise
                    use_sendfile = False
                    continue
            else:
                chunk = os.pread(src_fd, min(want, CHUNK), offset + sent_total)
                _write_all(self.fd, chunk)
                sent = len(chunk)
            if sent == 0:
                raise TMError("source shrank while copying to %s" % self.dst)
            sent_total += sent

    def finish(self, size):
        _write_all(self.fd, b"E" + struct.pack(">Q", size))
        self.proc.stdin.close()
        rc = self.proc.wait()
        forget(self.proc)
        if rc != 0:
            raise TMError("Error copying to %s:%s: %s" % (self.host, self.dst, self.error() or "rc=%d" % rc), rc)

    def error(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace").strip()

    def abort(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            self.proc.stdin.close()
        except (IOError, OSError):
            pass
        self.proc.wait()
        forget(self.proc)

    def close(self):
        self.err.close()


@contextmanager
def _stream_to(ctx, host, dst, mode):
    stream = _Stream(ctx, host, dst, mode)
    ok = False
    try:
        with signals_raise():
            try:
                yield stream
                ok = True
            except Interrupted as exc:
                raise TMError("Copy to %s:%s interrupted by signal %d" % (host, dst, exc.signum), 128 + exc.signum)
            except (IOError, OSError) as exc:
                if exc.errno == errno.EPIPE:
                    stream.abort()
                    raise TMError("Error copying to %s:%s: %s" % (host, dst, stream.error() or "connection closed"))
                raise
    finally:
        if not ok:
            stream.abort()
        stream.close()


def copy_remote(ctx, src, host, dst, mode=None):
    """Stream local ``src`` to ``host:dst`` over one ssh connection, holes kept."""
    try:
        src_fd = os.open(src, os.O_RDONLY)
    except OSError as exc:
        raise TMError("Error copying %s to %s:%s: %s" % (src, host, dst, exc.strerror or exc))
    try:
        info = os.fstat(src_fd)
        size = _source_size(src_fd, info)
        with _stream_to(ctx, host, dst, (info.st_mode & 0o7777) if mode is None else mode) as stream:
            stream.write(MAGIC)
            for offset, length in data_extents(src_fd, size):
                stream.send_range(src_fd, offset, length)
            stream.finish(size)
    finally:
        os.close(src_fd)


def _send_nonzero(stream, view, offset, zero):
    """Send the blocks of ``view`` (at ``offset``) that are not all zeros, runs of them as one record."""
    if view == bytes(len(view)):
        return
    start = None
    for pos in range(0, len(view), SPARSE_BLOCK):
        empty = view[pos:pos + SPARSE_BLOCK] == zero[:min(SPARSE_BLOCK, len(view) - pos)]
        if not empty and start is None:
            start = pos
        elif empty and start is not None:
            stream.record(offset + start, pos - start)
            stream.write(view[start:pos])
            start = None
    if start is not None:
        stream.record(offset + start, len(view) - start)
        stream.write(view[start:])


def fetch_command(ctx, argv, host, dst, mode=0o644):
    """Stream the stdout of ``argv`` (run here, e.g. the stock ``downloader.sh URL -``) to ``host:dst``.

    Every 4 KiB block of zeros becomes a hole, so the file arrives sparse (stock pipes into ``dd bs=64k
    conv=sparse``, which leaves holes only where a whole read from the pipe is zeros). ``dst``
    appears only when the command succeeded and all of its output arrived.
    """
    import subprocess
    import tempfile
    zero = bytes(SPARSE_BLOCK)
    err = tempfile.TemporaryFile()
    try:
        try:
            proc = spawn(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise TMError("Error running %s: %s" % (argv[0], exc.strerror or exc))
        try:
            with _stream_to(ctx, host, dst, mode) as stream:
                stream.write(MAGIC)
                offset = 0
                while True:
                    chunk = proc.stdout.read(CHUNK)
                    if not chunk:
                        break
                    _send_nonzero(stream, memoryview(chunk), offset, zero)
                    offset += len(chunk)
                rc = proc.wait()
                if rc != 0:
                    err.seek(0)
                    raise TMError("Error downloading to %s:%s: %s failed (rc=%d): %s" % (
                        host, dst, os.path.basename(argv[0]), rc, err.read().decode("utf-8", "replace").strip()))
                stream.finish(offset)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            forget(proc)
    finally:
        err.close()


def _open_url(url, timeout):
    import urllib.request  # imported here: only downloads pay for it
    try:
        # the standard library opener: the runtime runs on hosts without Ansible
        return urllib.request.build_opener().open(url, timeout=timeout)
    except Exception as exc:  # pylint: disable=broad-except
        raise TMError("Error downloading %s: %s" % (url, exc))


def download(ctx, url, host, dst, mode=0o644):
    """Download ``url`` straight to ``dst`` (here) or to ``host:dst`` (streamed)."""
    if not is_url(url):
        raise TMError("Not a downloadable URL: %s" % url)
    timeout = ctx.number("DOWNLOAD_TIMEOUT", 60)
    log(ctx, "Downloading %s" % url)
    response = _open_url(url, timeout)
    try:
        if host is None:
            try:
                with atomic_target(dst, mode) as (fd, _tmp):
                    while True:
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        _write_all(fd, chunk)
            except OSError as exc:
                raise TMError("Error downloading %s to %s: %s" % (url, dst, exc.strerror or exc))
            return
        with _stream_to(ctx, host, dst, mode) as stream:
            stream.write(MAGIC)
            offset = 0
            while True:
                try:
                    chunk = response.read(CHUNK)
                except Exception as exc:  # pylint: disable=broad-except
                    raise TMError("Error downloading %s: %s" % (url, exc))
                if not chunk:
                    break
                stream.record(offset, len(chunk))
                stream.write(chunk)
                offset += len(chunk)
            stream.finish(offset)
    finally:
        response.close()
