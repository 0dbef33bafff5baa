# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runtime helpers with the semantics of OpenNebula's tm_common.sh / scripts_common.sh.

Every command is an argument list. Local commands never go through a shell;
remote commands are joined with ``shlex.quote`` so the remote shell sees every
argument as one word of data. Multi-step remote work uses :func:`ssh_script`,
which runs a *constant* ``sh -c`` script and passes paths as positional
parameters (``"$1"``), never by pasting them into the script text.
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import fcntl
import os
import re
import shlex
import signal
import sys
import threading
import time
from contextlib import contextmanager

# ipaddress, socket, subprocess and tempfile are imported where they are used:
# a local action then starts faster (oned runs one process per action).

LEGACY_BEGIN = "ERROR MESSAGE --8<------"
LEGACY_END = "ERROR MESSAGE ------>8--"

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


class TMError(Exception):
    """An action failure: ``msg`` goes to stderr, ``rc`` is the exit code."""

    def __init__(self, msg, rc=1):
        super(TMError, self).__init__(msg)
        self.msg = msg
        self.rc = rc if rc else 1


class Context(object):
    """What an action needs: its name, the driver's rc settings and I/O streams."""

    def __init__(self, action, rc=None, legacy=False, stderr=None, driver_dir=None):
        self.action = action
        self.rc = dict(rc or {})
        self.legacy = legacy
        self.stderr = stderr if stderr is not None else sys.stderr
        self.driver_dir = driver_dir

    def setting(self, key, default=None):
        value = self.rc.get(key)
        return default if value is None or value == "" else value

    def flag(self, key, default=False):
        value = self.rc.get(key)
        if value is None or value == "":
            return default
        return is_yes(value)

    def number(self, key, default):
        value = self.rc.get(key)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except ValueError:
            raise TMError("rc setting %s=%r is not a number" % (key, value))


def is_yes(value):
    return str(value).strip().lower() in ("yes", "true", "1", "on", "y")


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------

def fix_dir_slashes(path):
    """Collapse repeated slashes and drop a trailing one (``/`` stays ``/``)."""
    path = re.sub(r"/+", "/", path)
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


def arg_host(arg):
    """Host part of ``host:path``; an argument with no colon has no host ("")."""
    if ":" not in arg:
        return ""
    return arg.split(":", 1)[0]


def arg_path(arg, fix=True):
    """Path part of ``host:path`` (slashes normalised); no colon: all path."""
    path = arg.split(":", 1)[1] if ":" in arg else arg
    return fix_dir_slashes(path) if fix else path


def is_disk(path):
    """True when the path names a VM disk (``.../disk.N``), as tm_common's is_disk."""
    return re.search(r"/disk\.[0-9]+", path) is not None


# --------------------------------------------------------------------------
# Logging and failures
# --------------------------------------------------------------------------

def _write(ctx, text):
    stream = ctx.stderr
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def log(ctx, msg):
    """``INFO: <action>: msg`` on stderr, as OpenNebula >= 6.0.3 reads it."""
    _write(ctx, "INFO: %s: %s" % (ctx.action, msg))


def log_error(ctx, msg):
    _write(ctx, "ERROR: %s: %s" % (ctx.action, msg))


def error_message(ctx, msg):
    """The error text oned shows; wrapped in the legacy markers on request."""
    if ctx.legacy:
        _write(ctx, "%s\n%s\n%s" % (LEGACY_BEGIN, msg, LEGACY_END))
    else:
        _write(ctx, msg)


def fail(msg, rc=1):
    raise TMError(msg, rc)


# --------------------------------------------------------------------------
# Hosts
# --------------------------------------------------------------------------

def is_valid_host(host):
    """A hostname (RFC 1123 labels) or an IPv4/IPv6 address; nothing else."""
    if not host or len(host) > 253:
        return False
    import ipaddress
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
        return True
    except ValueError:
        pass
    if candidate != host:
        return False
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    return all(_HOST_LABEL.match(label) for label in labels)


def check_host(host):
    if not is_valid_host(host):
        raise TMError("Invalid host %r: not a hostname or an IP address" % (host,))
    return host


_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def is_local_host(host):
    """True for this machine: empty host, its hostname, FQDN or a loopback address."""
    if not host:
        return True
    import ipaddress
    import socket
    candidate = host.strip("[]")
    try:
        return ipaddress.ip_address(candidate).is_loopback
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    if name in _LOOPBACK_NAMES:
        return True
    try:
        own = socket.gethostname().lower()
        if name in (own, own.split(".")[0]):
            return True
        # an FQDN has a dot; only then is the (possibly DNS-backed) lookup worth it
        return "." in name and name == socket.getfqdn().lower().rstrip(".")
    except (OSError, socket.error):
        return False


def runs_local(ctx, host):
    """Whether an action on ``host`` runs here (local shortcut, rc LOCAL_SHORTCUT)."""
    if not host:
        return True
    check_host(host)
    return ctx.flag("LOCAL_SHORTCUT", True) and is_local_host(host)


# --------------------------------------------------------------------------
# Command execution
# --------------------------------------------------------------------------

def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


# Every process an action starts runs in its own session (a process group of
# its own, so a timeout can kill it with all its children). Those groups are
# remembered here until they are reaped; stop_children() ends the ones left
# when the action is interrupted (SIGTERM, SIGINT, SIGHUP) or exits.
_CHILDREN = {}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised by the signal handlers of :func:`signals_raise` (SIGTERM, SIGINT, SIGHUP)."""

    def __init__(self, signum):
        super(Interrupted, self).__init__(signum)
        self.signum = signum


def _block_signals():
    """Block the stop signals; returns the mask to restore (None where unsupported)."""
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    except (AttributeError, ValueError, OSError):
        return None


def _restore_signals(mask):
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def spawn(argv, **kwargs):
    """``subprocess.Popen`` in a new session, remembered until :func:`forget` or :func:`stop_children`.

    The stop signals are blocked while the child starts, so an interruption
    never leaves a started child unrecorded.
    """
    import subprocess
    mask = _block_signals()
    try:
        # The runtime runs without Ansible (oned calls it), so no AnsibleModule.run_command here.
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)  # pylint: disable=ansible-bad-function
        proc.tm_owner = threading.get_ident()
        _CHILDREN[proc.pid] = proc
    finally:
        _restore_signals(mask)
    return proc


def forget(proc):
    """``proc`` was reaped normally: its group is no longer ours to stop."""
    _CHILDREN.pop(proc.pid, None)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except OSError as exc:
        return exc.errno == errno.EPERM


def stop_children(grace=5.0):
    """SIGTERM every process group the action (this thread) started and still owns, wait, SIGKILL the rest.

    Returns when every group is gone (or after ``grace`` seconds and SIGKILL).
    """
    mask = _block_signals()
    try:
        me = threading.get_ident()
        procs = [p for p in list(_CHILDREN.values()) if p.tm_owner == me]
        for proc in procs:
            _CHILDREN.pop(proc.pid, None)
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.time() + grace
        for proc in procs:
            while time.time() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
                time.sleep(0.02)
            if proc.poll() is None or _group_alive(proc.pid):
                _kill_group(proc)
            proc.wait()
            while _group_alive(proc.pid) and time.time() < deadline + grace:
                time.sleep(0.02)
    finally:
        _restore_signals(mask)


@contextmanager
def signals_raise():
    """Turn SIGTERM/SIGINT/SIGHUP into :class:`Interrupted` so ``finally`` blocks run (main thread only)."""

    def handler(signum, _frame):
        raise Interrupted(signum)

    saved = {}
    try:
        for sig in STOP_SIGNALS:
            saved[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals stay as they are
        for sig, old in saved.items():
            signal.signal(sig, old)
        saved = {}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def run_command(argv, data=None, timeout=None):
    """Run an argument list (no shell). Returns ``(rc, stdout, stderr)`` as text.

    ``timeout`` (seconds) kills the whole process group and returns rc 124.
    """
    import subprocess
    if isinstance(argv, str):
        raise TypeError("commands are argument lists, not shell strings")
    argv = [str(a) for a in argv]
    try:
        proc = spawn(argv, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return 127, "", "%s: %s" % (argv[0], exc.strerror or exc)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        out, err = proc.communicate(payload, timeout=timeout or None)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        forget(proc)
        return 124, out.decode("utf-8", "replace"), "Timeout after %ss" % timeout
    except BaseException:
        _kill_group(proc)
        proc.wait()
        forget(proc)
        raise
    forget(proc)
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _shown(argv):
    return " ".join(shlex.quote(str(a)) for a in argv)


def exec_and_log(ctx, argv, msg=None, timeout=None, data=None):
    """Run locally; on failure log the command and its stderr, then fail with ``msg``."""
    if timeout is None:
        timeout = ctx.number("COMMAND_TIMEOUT", 0) or None
    rc, out, err = run_command(argv, data=data, timeout=timeout)
    if rc != 0:
        log_error(ctx, 'Command "%s" failed: %s' % (_shown(argv), err.strip()))
        raise TMError(msg or 'Error executing "%s": %s' % (_shown(argv), err.strip()), rc if rc > 0 else 1)
    return out


def timeout_exec_and_log(ctx, timeout, argv, msg=None):
    """:func:`exec_and_log` that kills the command after ``timeout`` seconds."""
    return exec_and_log(ctx, argv, msg or "Timeout executing %s" % _shown(argv), timeout=timeout)


def ssh_command(ctx):
    """The ssh client argv prefix: rc ``SSH`` (binary) and ``SSH_OPTS`` (options)."""
    return shlex.split(ctx.setting("SSH", "ssh")) + shlex.split(ctx.setting("SSH_OPTS", ""))


def remote_argv(ctx, host, argv):
    """The argv that runs ``argv`` on ``host``: local when the shortcut applies, else ssh.

    The remote command line is ``shlex.quote``-d word by word, so the remote
    shell never interprets a path.
    """
    if runs_local(ctx, host):
        return [str(a) for a in argv]
    return ssh_command(ctx) + ["--", host, _shown(argv)]


def ssh_exec_and_log(ctx, host, argv, msg=None, timeout=None, data=None):
    """Run ``argv`` on ``host`` (or here, for this machine) and fail with ``msg``."""
    return exec_and_log(ctx, remote_argv(ctx, host, argv), msg, timeout=timeout, data=data)


def ssh_script(ctx, host, script, args, msg=None, timeout=None):
    """Run a constant POSIX sh script on ``host`` with ``args`` as ``$1``, ``$2``..."""
    return ssh_exec_and_log(ctx, host, ["sh", "-c", script, "sh"] + [str(a) for a in args], msg, timeout=timeout)


def ssh_capture(ctx, host, argv, timeout=None):
    """Run ``argv`` on ``host``; returns ``(rc, stdout, stderr)`` without failing."""
    if timeout is None:
        timeout = ctx.number("COMMAND_TIMEOUT", 0) or None
    return run_command(remote_argv(ctx, host, argv), timeout=timeout)


def ssh_make_path(ctx, host, path):
    """``mkdir -p path`` on ``host``."""
    if runs_local(ctx, host):
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise TMError("Error creating directory %s at %s: %s" % (path, host or "localhost", exc.strerror or exc))
        return
    ssh_exec_and_log(ctx, host, ["mkdir", "-p", "--", path], "Error creating directory %s at %s" % (path, host))


# --------------------------------------------------------------------------
# Locking
# --------------------------------------------------------------------------

def _own_dir(path):
    """Create ``path`` (mode 0700) or accept it when it is a real directory of this user; else TMError.

    The default lock directory is under the world-writable /run/lock (and the
    fallback under /tmp), where anyone can create it first: a directory that is
    a symlink, or owned by another user, is refused rather than used.
    """
    try:
        os.mkdir(path, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    info = os.lstat(path)
    import stat
    if not stat.S_ISDIR(info.st_mode):
        raise TMError("Lock directory %s is not a directory (a symlink or a file is never used for locks)" % path)
    if info.st_uid != os.geteuid():
        raise TMError("Lock directory %s is owned by uid %d, not by the driver's user (uid %d): "
                      "remove it, or set LOCK_DIR to a directory of that user" % (path, info.st_uid, os.geteuid()))
    if info.st_mode & 0o022:
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o022)
    return path


def lock_dir(ctx):
    """The lock directory: rc LOCK_DIR, created 0700; else ``<tmp>/one-tm-locks-<uid>``, same rules."""
    path = ctx.setting("LOCK_DIR", "/var/lock/one")
    try:
        parent = os.path.dirname(path.rstrip("/")) or "/"
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        return _own_dir(path)
    except OSError:
        pass
    import tempfile
    try:
        return _own_dir(os.path.join(tempfile.gettempdir(), "one-tm-locks-%d" % os.geteuid()))
    except OSError as exc:
        raise TMError("Cannot create the lock directory %s nor its fallback: %s" % (path, exc.strerror or exc))


@contextmanager
def flock(path, timeout=60.0, poll=0.05, shared=False):
    """Hold an exclusive (``shared``: a shared) ``flock`` on ``path``; TMError after ``timeout`` seconds."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise TMError("Cannot open the lock file %s: %s" % (path, exc.strerror or exc))
    try:
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.time() >= deadline:
                    raise TMError("Could not acquire %s lock on %s within %ss"
                                  % ("a shared" if shared else "exclusive", path, timeout))
                time.sleep(poll)
        yield path
    finally:
        os.close(fd)


def lock_key(key):
    """The resolved path a lock on ``host:path`` (or ``path``) is keyed on.

    The host is dropped: ``vm:/x``, ``localhost:/x`` and ``/x`` name one
    destination (a shared datastore is one file for every host; on local
    disks, one path on two hosts at once is the rare case, only serialised).
    The directory is resolved where it exists here (symlinks, ``..``).
    """
    path = fix_dir_slashes(key[key.find("/"):] if "/" in key else key)  # a host never holds a "/"
    directory, name = os.path.split(path)
    if name in ("", ".", ".."):
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(directory or "/"), name)


def lock_for(ctx, key):
    """A flock on the destination ``key`` (``host:path`` or ``path``, see :func:`lock_key`)."""
    import hashlib
    path = lock_key(key)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", path)[-120:]
    digest = hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]  # nosec: a name
    return flock(os.path.join(lock_dir(ctx), "tm-%s-%s.lock" % (safe, digest)), timeout=ctx.number("LOCK_TIMEOUT", 600))


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------

def run_action(ctx, func, args):
    """Run ``func(ctx, args)``; returns the process exit code (0 on success).

    SIGTERM, SIGINT and SIGHUP end the action with ``128 + signal``; on any
    exit, the process groups the action started and still owns are stopped
    and waited for (:func:`stop_children`), so no transfer goes on without it.
    """
    try:
        with signals_raise():
            try:
                func(ctx, list(args))
                return 0
            except TMError as exc:
                error_message(ctx, exc.msg)
                return exc.rc
            except Interrupted as exc:
                error_message(ctx, "%s: interrupted by signal %d" % (ctx.action, exc.signum))
                return 128 + exc.signum
            except KeyboardInterrupt:
                error_message(ctx, "%s: interrupted" % ctx.action)
                return 130
            except Exception as exc:  # pylint: disable=broad-except
                error_message(ctx, "%s: unexpected error: %s: %s" % (ctx.action, type(exc).__name__, exc))
                return 1
            finally:
                stop_children()
    except Interrupted as exc:  # a second signal while the first one was handled
        stop_children()
        return 128 + exc.signum


def need_args(ctx, args, count, usage, at_least=False):
    """``args`` if there are ``count`` of them (at least ``count`` with ``at_least``), else fail with the usage."""
    if len(args) < count or (not at_least and len(args) > count):
        fail("%s: expected arguments %s, got %d: %s" % (ctx.action, usage, len(args), " ".join(args)))
    return args


def host_path(arg):
    """``(host, path)`` of ``host:path``; the host must be valid and the path absolute."""
    host = arg_host(arg)
    path = arg_path(arg)
    if host:
        check_host(host)
    if not path.startswith("/"):
        fail("Path %r is not absolute" % (path,))
    return host, path
