# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``onestor``: the ssh TM driver with a per-cluster replica image cache.

VM disks live on each host's local storage. When the system datastore has a
``REPLICA_HOST``, ``clone`` goes front-end -> replica (only when the replica's
copy is outdated) -> hypervisor; without it, it is a plain ssh copy front-end
-> hypervisor. Every copy keeps holes and lands under a temp name that is
renamed into place only when complete.

* Freshness: a checksum of the image is cached next to it on the front-end
  (``.<image>.onestor-sum``: size, mtime, inode and sha256), recomputed only
  when the image's size, mtime or inode change; the replica keeps the checksum
  of its copy next to it (``<copy>.sum``). Equal checksums: the copy is current.
* Locking: the check and the front-end -> replica copy run under a flock on the
  front-end keyed on (replica, image), waited for at most
  ``REPLICA_COPY_LOCK_TIMEOUT`` seconds.
* Eviction: before a copy to the replica, least recently used images (by the
  mtime of their ``.sum``, touched on every use) are removed until the cache
  fits ``REPLICA_MAX_SIZE_MB`` (or, when that is empty, ``REPLICA_MAX_USED_PERC``
  of the filesystem). An image in use is pinned (a shared flock on the
  front-end, from its check until its pull ends) and never evicted.
* Replica -> hypervisor: the replica pushes the copy to the hypervisor over
  ssh, as stock ssh/clone.replica: to the hypervisor's ``REPLICA_STORAGE_IP``
  (its address on the storage network, from its host template; else its
  name), with ``REPLICA_SSH_OPTS``; ``tar -S`` into a temp name, renamed into
  place only when the whole stream arrived. A local sparse copy when the
  replica is the hypervisor. ``REPLICA_SSH_FE_OPTS`` applies to the front-end
  -> replica copy only.

``REPLICA_HOST`` comes from the template of the VM's system datastore (the
last history record's DS_ID, from ``onevm show -x``; for clone and ln the DSID
argument is the image datastore) and ``REPLICA_STORAGE_IP`` from the
destination hypervisor's host template, read with ``onedatastore show -x`` /
``onehost show -x`` as the stock scripts read them. rc keys
``DS_<ID>_REPLICA_HOST`` and ``HOST_<NAME>_REPLICA_STORAGE_IP`` override them
(``ONE_LOOKUP=no``: rc keys only). The ``REPLICA_*`` tuning keys are read from
the driver's rc file, then from ``TUNING_RC`` (the stock ``sshrc``).
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import re
import tempfile
from contextlib import ExitStack, contextmanager

from ..actions import (SCRIPT_COPY, SH_COMMIT, SH_PRELUDE, SH_TEMP, check_delete, checked_image, context,
                       disk_id_of, download_image, enable_local_monitoring, grow, id_arg, last_history, mkimage,
                       mkswap, mv_local_disks, number_arg, resize_vm_disk, transfer_tree, vm_disk, vm_document)
from ..common import (Context, TMError, arg_path, check_host, exec_and_log, fail, flock, lock_dir, run_command,
                      lock_for, log, runs_local, ssh_capture, ssh_exec_and_log,
                      ssh_make_path, ssh_script,
                      host_path, need_args)
from .. import backup
from ..copy import copy_local, copy_remote, is_url
from ..rc import RcError, read_rc

NAME = "onestor"

DEFAULT_CACHE_DIR = "/var/lib/one/datastores/replica_cache"
DEFAULT_RECOVERY_DIR = "/var/lib/one/datastores/replica_snaps"   # stock sshrc REPLICA_RECOVERY_SNAPS_DIR

DEFAULT_RC = [
    ("SSH", "ssh"),
    ("SSH_OPTS", "-o BatchMode=yes -o ConnectTimeout=15"),
    ("REMOTE_PYTHON", "python3"),
    ("LOCAL_SHORTCUT", "yes"),
    ("LEGACY_ERRORS", "no"),
    ("LOCK_DIR", "/var/lock/one"),
    ("LOCK_TIMEOUT", "600"),
    ("COMMAND_TIMEOUT", "0"),
    ("DOWNLOAD_TIMEOUT", "60"),
    ("TUNING_RC", "/var/lib/one/remotes/etc/tm/ssh/sshrc"),
    ("ONE_LOOKUP", "yes"),
    ("REPLICA_CACHE_DIR", DEFAULT_CACHE_DIR),
    ("REPLICA_CACHE_LAYOUT", "own"),
    ("LIBVIRT_URI", "qemu:///system"),
]

RC_HEADER = """onestor TM driver settings (KEY=value), managed by nebula.storage.tm_driver.
SSH, SSH_OPTS: ssh client and options for every host command and copy.
TUNING_RC: rc file whose REPLICA_* keys apply when this file does not set them (the stock sshrc).
REPLICA_CACHE_DIR: the image cache directory on replica hosts (REPLICA_CACHE_LAYOUT=own).
REPLICA_CACHE_LAYOUT: own (REPLICA_CACHE_DIR/<datastore>/<image>, sha256 in <image>.sum) or stock (the image's
  front-end path on the replica, md5 in <image>.md5sum, the directory marked .monitor=replica: a stock cache is
  reused, and stock reuses ours).
ONE_LOOKUP=yes: read REPLICA_HOST / REPLICA_STORAGE_IP with onedatastore / onehost show -x, as stock.
DS_<ID>_REPLICA_HOST, HOST_<NAME>_REPLICA_STORAGE_IP: overrides of those lookups.
LIBVIRT_URI: virsh's connection for live snapshots (stock: kvmrc)."""

TUNING_KEYS = ("REPLICA_COPY_LOCK_TIMEOUT", "REPLICA_RECOVERY_SNAPS_DIR", "REPLICA_SSH_OPTS", "REPLICA_SSH_FE_OPTS",
               "REPLICA_MAX_SIZE_MB", "REPLICA_MAX_USED_PERC")

FE_SUM_TAG = ".onestor-sum"

# ---------------------------------------------------------------------------
# Constant remote programs (data only as arguments)
# ---------------------------------------------------------------------------

# python3 -c REPLICA_PY <command> ARGS... on the replica. SUFFIX names the checksum file next to a cached
# image: ".sum" (our layout, sha256) or ".md5sum" (stock's layout, md5).
#   check PATH SUM SIZE SUFFIX MARK: exit 0 (and touch PATH+SUFFIX) when the copy is current; exit 1 (the stale
#                        checksum file removed) otherwise. In stock's layout a copy without its .md5sum gets one
#                        computed there, as stock's md5sum_with_snaps does; MARK "replica" writes the directory's
#                        .monitor marker (stock: the host probes report the cache).
#   setsum PATH SUM SUFFIX: write PATH+SUFFIX atomically.
#   list DIR SUFFIX:     JSON {"total", "used"} of the filesystem and "entries":
#                        [path, bytes] of the cached images, least recently used first.
#   remove SUFFIX PATH...: remove images and their checksum files; prints "evicted PATH" lines.
REPLICA_PY = r'''
import os, sys, tempfile
def rd(p):
    try:
        with open(p) as f:
            return f.read().strip()
    except (IOError, OSError):
        return None
def md5(p):
    import hashlib
    h = hashlib.md5()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
def check(path, total, size, suffix, mark):
    s = path + suffix
    if mark:
        d = os.path.dirname(path)
        os.makedirs(d, exist_ok=True)
        if rd(os.path.join(d, ".monitor")) != mark:
            with open(os.path.join(d, ".monitor"), "w") as f:
                f.write(mark + "\n")
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and suffix == ".md5sum" and rd(s) is None:
        setsum(path, md5(path), suffix)
    if st is not None and st.st_size == int(size) and rd(s) == total:
        os.utime(s)
        return 0
    try:
        os.unlink(s)
    except OSError:
        pass
    return 1
def setsum(path, total, suffix):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".sum-")
    with os.fdopen(fd, "w") as f:
        f.write(total + "\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path + suffix)
    return 0
def entries(top, suffix):
    out = []
    for root, dirs, files in os.walk(top):
        dirs[:] = [n for n in dirs if not n.endswith(".snap")]
        for n in files:
            if n.startswith(".") or n.endswith(suffix):
                continue
            p = os.path.join(root, n)
            try:
                st = os.stat(p)
            except OSError:
                continue
            try:
                used = os.stat(p + suffix).st_mtime
            except OSError:
                used = st.st_mtime
            out.append((used, p, st.st_blocks * 512))
    return sorted(out)
def listing(top, suffix):
    import json
    os.makedirs(top, exist_ok=True)
    v = os.statvfs(top)
    total = v.f_blocks * v.f_frsize
    print(json.dumps({"total": total, "used": total - v.f_bavail * v.f_frsize,
                      "entries": [[p, size] for _t, p, size in entries(top, suffix)]}))
    return 0
def remove(suffix, *paths):
    for p in paths:
        for q in (p + suffix, p):
            try:
                os.unlink(q)
            except OSError:
                pass
        print("evicted " + p)
    return 0
cmd, args = sys.argv[1], sys.argv[2:]
sys.exit({"check": check, "setsum": setsum, "list": listing, "remove": remove}[cmd](*args))
'''

SCRIPT_MV = SH_PRELUDE + (
    'if [ ! -e "$1" ] && [ ! -L "$1" ]; then echo "Source $1 does not exist" >&2; exit 1; fi\n'
    'mkdir -p -- "$(dirname -- "$2")"\n'
    'rm -rf -- "$2"\n'
    'mv -fT -- "$1" "$2"\n'
)

SCRIPT_SNAP_CREATE = SH_PRELUDE + 'src=$1; dst=$2\n' + SH_TEMP + (
    'if [ -e "$dst" ]; then echo "Snapshot file $dst already exists." >&2; exit 1; fi\n'
    'cp --sparse=always --reflink=auto -- "$src" "$t"\n'
) + SH_COMMIT


# The recovery layout's parts, for the disk $dst whose basename is $name: the self link $dst.snap/$name.snap -> .
# lets the overlay's relative backing file resolve from inside the directory; SH_BASE_OVERLAY makes $dst.snap/base.1,
# a qcow2 overlay of $dst.snap/base, and links $dst to it.
SH_SELF_LINK = 'ln -sfn . "$dst.snap/$name.snap"\n'
SH_BASE_OVERLAY = (
    'cd -- "$dst.snap"\n'
    'qemu-img create -q -b "$name.snap/base" -F qcow2 -f qcow2 base.1\n'
    'ln -sfn -- "$name.snap/base.1" "$dst"\n'
)

# Recovery snapshots (a disk's RECOVERY_SNAPSHOT_FREQ, with a REPLICA_HOST): the layout of stock ssh_utils'
# create_base. $2 becomes a link to $2.snap/base.1, a qcow2 overlay of $2.snap/base, which is $1 copied ($3 cp) or
# moved ($3 mv).
SCRIPT_CREATE_BASE = SH_PRELUDE + (
    'src=$1; dst=$2; how=$3; name=$(basename -- "$dst")\n'
    'mkdir -p -- "$dst.snap"\n'
) + SH_SELF_LINK + (
    'if [ "$how" = mv ]; then mv -fT -- "$src" "$dst.snap/base"; else cp -- "$src" "$dst.snap/base"; fi\n'
) + SH_BASE_OVERLAY

# snap_revert of a recovery-snapshot disk: the snapshot $1, flattened, becomes the new base of $2 (stock removes the
# base first, which a snapshot taken powered off still reads through its backing file); then the self link, overlay
# and disk link as SCRIPT_CREATE_BASE makes them (the self link after the new base, as ever: not before the convert).
SCRIPT_REVERT_BASE = SH_PRELUDE + 'snap=$1; dst=$2; fmt=$3\n' + (
    'qemu-img convert -q -f "$fmt" -O qcow2 "$snap" "$dst.snap/.base.new"\n'
    'rm -f -- "$dst.snap/base.1"\n'
    'mv -fT -- "$dst.snap/.base.new" "$dst.snap/base"\n'
    'name=$(basename -- "$dst")\n'
) + SH_SELF_LINK + SH_BASE_OVERLAY

# On the replica: the recovery directory $2 of a VM gets the disk's base ($1, the replica's copy of the image) and
# the link NAME -> NAME.snap/base.1 that the hosts' recovery snapshots fill (stock clone.replica).
SCRIPT_REPLICA_BASE = SH_PRELUDE + (
    'src=$1; dir=$2; name=$3\n'
    'mkdir -p -- "$dir/$name.snap"\n'
    'ln -sfn -- "$name.snap/base.1" "$dir/$name"\n'
    'cp -- "$src" "$dir/$name.snap/base"\n'
)

# A recovered disk copied from the replica: its .snap directory gets the NAME.snap -> . link.
SCRIPT_SELF_LINK = 'if [ -d "$1.snap" ]; then ln -sfn . "$1.snap/$(basename -- "$1").snap"; fi\n'

# mvds of a disk in the recovery layout ($1 a link to its overlay): flattened into a standalone qcow2 ($2 the
# format of the chain's top), the base, base.1, rs_tmp and the self link removed, as stock ssh/mvds.
SCRIPT_FLATTEN = SH_PRELUDE + (
    'src=$1; fmt=$2; name=$(basename -- "$src")\n'
    '[ -L "$src" ] || exit 0\n'
    'qemu-img convert -q -f "$fmt" -O qcow2 "$src" "$src.full"\n'
    'rm -f -- "$src"\n'
    'if [ -e "$src.snap/base" ]; then\n'
    '  rm -f -- "$src.snap/base" "$src.snap/base.1" "$src.snap/rs_tmp"\n'
    '  if [ "$(ls -A -- "$src.snap")" = "$name.snap" ]; then rm -f -- "$src.snap/$name.snap"; fi\n'
    '  rmdir -- "$src.snap"\n'
    'elif [ -d "$src.snap" ]; then rm -rf -- "$src.snap"; fi\n'
    'mv -fT -- "$src.full" "$src"\n'
)

_KEY_SAFE = re.compile(r"[^A-Za-z0-9_]")


# ---------------------------------------------------------------------------
# Arguments and settings
# ---------------------------------------------------------------------------

def tuning(ctx, key, default=""):
    """A REPLICA_* tuning key: the driver rc first, then TUNING_RC (the stock sshrc)."""
    value = ctx.setting(key)
    if value is not None:
        return value
    cache = ctx.rc.get("__tuning__")
    if cache is None:
        path = ctx.setting("TUNING_RC", "")
        try:
            cache = read_rc(path) if path else {}
        except RcError as exc:
            raise TMError("Cannot read %s: %s" % (path, exc))
        ctx.rc["__tuning__"] = cache
    value = cache.get(key)
    return default if value is None or value == "" else value


def tuning_number(ctx, key, default):
    value = tuning(ctx, key, "")
    if value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise TMError("%s=%r is not a number" % (key, value))


def _sub_ctx(ctx, extra_opts):
    """The context with ``extra_opts`` appended to SSH_OPTS."""
    settings = dict(ctx.rc)
    settings["SSH_OPTS"] = (ctx.setting("SSH_OPTS", "") + " " + extra_opts).strip()
    sub = Context(ctx.action, settings, legacy=ctx.legacy, stderr=ctx.stderr, driver_dir=ctx.driver_dir)
    return sub


def replica_ssh_ctx(ctx, front_end=False):
    """The context of an ssh that copies to or from a replica, as stock sets it: SSH_OPTS plus REPLICA_SSH_OPTS.

    That ssh is a host's own, run on the replica to a hypervisor or on a
    hypervisor to the replica (the copy goes straight between them, either
    way); ``front_end``: the front-end's ssh to the replica (its copy of an
    image), with REPLICA_SSH_FE_OPTS instead.
    """
    return _sub_ctx(ctx, tuning(ctx, "REPLICA_SSH_FE_OPTS" if front_end else "REPLICA_SSH_OPTS", ""))


# ---------------------------------------------------------------------------
# oned lookups: REPLICA_HOST of a system datastore, REPLICA_STORAGE_IP of a host
# ---------------------------------------------------------------------------

def replica_host(ctx, dsid):
    """REPLICA_HOST of system datastore ``dsid``, or "" when it has none.

    Read as stock ssh_utils' get_replica_host reads it: ``onedatastore show -x DSID``.
    """
    override = ctx.setting("DS_%s_REPLICA_HOST" % dsid)
    if override is not None or not ctx.flag("ONE_LOOKUP", True):
        return override or ""
    import xml.etree.ElementTree as ET
    rc, out, _err = run_command(["onedatastore", "show", "-x", str(dsid)], timeout=60)
    if rc != 0:
        return ""
    try:
        return (ET.fromstring(out).findtext("TEMPLATE/REPLICA_HOST") or "").strip()
    except ET.ParseError:
        return ""


def system_datastore(ctx, vmid, fallback, doc=None):
    """The VM's system datastore (DS_ID of its last history record), where the OneStor guide puts REPLICA_HOST.

    Stock ssh/clone reads it from ``onevm show -x`` (``doc`` when already read); when the VM cannot be read,
    ``fallback``.
    """
    value = last_history(vm_document(ctx, vmid) if doc is None else doc, "DS_ID")
    return int(value) if value.isdigit() else fallback


def storage_address(ctx, host):
    """The address the replica pushes images to hypervisor ``host`` at: its REPLICA_STORAGE_IP, else its name.

    Stock 7.4 ssh/clone.replica reads REPLICA_STORAGE_IP from the destination host's template.
    """
    override = ctx.setting("HOST_%s_REPLICA_STORAGE_IP" % _KEY_SAFE.sub("_", host))
    if override is not None or not ctx.flag("ONE_LOOKUP", True):
        return override or host
    import xml.etree.ElementTree as ET
    rc, out, _err = run_command(["onehost", "show", "-x", host], timeout=60)
    if rc != 0:
        return host
    try:
        return (ET.fromstring(out).findtext("TEMPLATE/REPLICA_STORAGE_IP") or "").strip() or host
    except ET.ParseError:
        return host


# ---------------------------------------------------------------------------
# Image checksums cached on the front-end
# ---------------------------------------------------------------------------

def _fe_sum_path(src):
    return os.path.join(os.path.dirname(src), "." + os.path.basename(src) + FE_SUM_TAG)


def image_checksum(src, algorithm="sha256"):
    """``(hex digest, size)`` of ``src`` (``sha256`` or ``md5``); read from the cached sum file while the image's
    size, mtime and inode still match."""
    import hashlib
    import json
    info = os.stat(src)
    stamp = {"size": info.st_size, "mtime_ns": getattr(info, "st_mtime_ns", int(info.st_mtime * 1e9)),
             "ino": info.st_ino}
    cache = _fe_sum_path(src)
    saved = {}
    try:
        with open(cache) as handle:
            saved = json.load(handle)
        if not all(saved.get(k) == v for k, v in stamp.items()):
            saved = {}
        elif saved.get(algorithm):
            return saved[algorithm], info.st_size
    except (IOError, OSError, ValueError, AttributeError):
        saved = {}
    if algorithm == "md5":  # only to recognise stock's .md5sum files, never for security
        try:
            digest = hashlib.md5(usedforsecurity=False)  # nosec
        except TypeError:  # Python < 3.9
            digest = hashlib.md5()  # nosec
    else:
        digest = hashlib.sha256()
    with open(src, "rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
    stamp.update({k: v for k, v in saved.items() if k in ("sha256", "md5")})
    stamp[algorithm] = digest.hexdigest()
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(src), prefix=".onestor-sum-")
        with os.fdopen(fd, "w") as handle:
            json.dump(stamp, handle)
        os.rename(tmp, cache)
    except (IOError, OSError):
        pass  # a read-only datastore: the checksum is computed on every clone
    return stamp[algorithm], info.st_size


def stock_layout(ctx):
    """REPLICA_CACHE_LAYOUT=stock: the replica keeps an image at its front-end path with ``.md5sum``, as stock."""
    layout = (ctx.setting("REPLICA_CACHE_LAYOUT", "") or "own").strip().lower()
    if layout not in ("own", "stock"):
        fail("REPLICA_CACHE_LAYOUT=%r: use own or stock" % layout)
    return layout == "stock"


def cache_dir(ctx):
    """REPLICA_CACHE_DIR: the cache directory of our own layout on the replicas."""
    return ctx.setting("REPLICA_CACHE_DIR", DEFAULT_CACHE_DIR)


def sum_suffix(ctx):
    return ".md5sum" if stock_layout(ctx) else ".sum"


def cache_path(ctx, src):
    """Where replica hosts keep ``src``: ``<REPLICA_CACHE_DIR>/<datastore dir>/<image name>``, or in stock's
    layout ``src`` itself (the front-end's path, mirrored on the replica)."""
    if stock_layout(ctx):
        return src
    base = cache_dir(ctx).rstrip("/")
    parent = os.path.basename(os.path.dirname(src)) or "root"
    return "%s/%s/%s" % (base, parent, os.path.basename(src))


def cache_top(ctx, cached):
    """The directory whose least recently used images are evicted: REPLICA_CACHE_DIR, or in stock's layout the
    image's datastore directory on the replica (stock's clean_cache)."""
    if stock_layout(ctx):
        return os.path.dirname(cached)
    return cache_dir(ctx)


# ---------------------------------------------------------------------------
# Clone through the replica
# ---------------------------------------------------------------------------

def _replica_py(ctx, host, args):
    python = ctx.setting("REMOTE_PYTHON", "python3")
    return ssh_capture(ctx, host, [python, "-c", REPLICA_PY] + [str(a) for a in args])


def copy_lock_path(ctx, replica, src):
    """The front-end lock file serialising the replica copy of ``src`` on ``replica``."""
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", "%s:%s" % (replica, src))[-170:]
    return os.path.join(lock_dir(ctx), "onestor-%s.lock" % key)


def pin_lock_path(ctx, replica, cached):
    """The front-end lock file pinning ``replica:cached``: shared by its users, exclusive for its eviction."""
    import hashlib
    key = "%s:%s" % (replica, cached)
    digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]  # nosec: a name
    return os.path.join(lock_dir(ctx), "onestor-pin-%s-%s.lock" % (re.sub(r"[^A-Za-z0-9_.-]", "_", key)[-100:], digest))


@contextmanager
def pinned(ctx, replica, cached, timeout):
    """Keep ``replica:cached`` out of eviction for the block (a shared flock on its pin lock)."""
    try:
        with flock(pin_lock_path(ctx, replica, cached), timeout=timeout, shared=True):
            yield
    except TMError as exc:
        if exc.msg.startswith("Could not acquire a shared lock"):
            raise TMError("Timeout after %ss (REPLICA_COPY_LOCK_TIMEOUT) waiting to pin %s on %s"
                          % (int(timeout), cached, replica))
        raise


def make_room(ctx, fe_ctx, replica, keep, incoming, timeout):
    """Evict least recently used images of the replica cache until ``incoming`` bytes fit; True when they do.

    An image in use (pinned: being copied to the replica or pulled from it)
    is never evicted; its pin lock is held exclusively while it is removed.
    """
    import json
    base = cache_top(ctx, keep)
    suffix = sum_suffix(ctx)
    cap = tuning_number(ctx, "REPLICA_MAX_SIZE_MB", 0) * 1048576  # 0 or empty: REPLICA_MAX_USED_PERC instead
    max_perc = tuning_number(ctx, "REPLICA_MAX_USED_PERC", 90)
    evict_lock = os.path.join(lock_dir(ctx), "onestor-evict-%s.lock" % re.sub(r"[^A-Za-z0-9_.-]", "_", replica))
    with flock(evict_lock, timeout=timeout), ExitStack() as held:
        rc, out, err = _replica_py(fe_ctx, replica, ["list", base, suffix])
        try:
            state = json.loads(out)
            entries = [(str(p), int(n)) for p, n in state["entries"] if p != keep]
            total, used = int(state["total"]), int(state["used"])
        except (ValueError, KeyError, TypeError):
            why = err.strip() or out.strip() or "rc=%d" % rc
            fail("Error making room in the replica cache %s:%s: %s" % (replica, base, why))
        cached_bytes = sum(n for _p, n in entries)

        def over():
            if cap > 0:
                return cached_bytes + incoming > cap
            return total > 0 and (used + incoming) * 100.0 / total > max_perc

        victims = []
        for path, size in entries:
            if not over():
                break
            try:
                held.enter_context(flock(pin_lock_path(ctx, replica, path), timeout=0))
            except TMError:
                log(ctx, "Not evicting %s from the replica cache of %s: in use" % (path, replica))
                continue
            victims.append(path)
            cached_bytes -= size
            used -= size
        if victims:
            rc, out, err = _replica_py(fe_ctx, replica, ["remove", suffix] + victims)
            if rc != 0:
                fail("Error making room in the replica cache %s:%s: %s" % (replica, base, err.strip() or "rc=%d" % rc))
            for line in out.splitlines():
                if line.startswith("evicted "):
                    log(ctx, "Evicted %s from the replica cache of %s" % (line[8:], replica))
        return not over()


def ensure_replica_copy(ctx, src, replica):
    """Make the replica's copy of ``src`` current; returns ``(cache path, copied?)`` or ``(None, False)``."""
    fe_ctx = replica_ssh_ctx(ctx, front_end=True)
    cached = cache_path(ctx, src)
    timeout = tuning_number(ctx, "REPLICA_COPY_LOCK_TIMEOUT", 600)
    try:
        with flock(copy_lock_path(ctx, replica, src), timeout=timeout):
            stock, suffix = stock_layout(ctx), sum_suffix(ctx)
            total, size = image_checksum(src, "md5" if stock else "sha256")
            rc, _out, err = _replica_py(fe_ctx, replica, ["check", cached, total, size, suffix,
                                                          "replica" if stock else ""])
            if rc == 0:
                log(ctx, "Replica copy %s:%s of %s is current" % (replica, cached, src))
                return cached, False
            if rc != 1:
                fail("Error checking the replica copy %s:%s of %s: %s" % (replica, cached, src,
                                                                          err.strip() or "rc=%d" % rc))
            if not make_room(ctx, fe_ctx, replica, cached, os.stat(src).st_blocks * 512, timeout):
                log(ctx, "%s (%d bytes) does not fit in the replica cache of %s; copying without it" % (src, size, replica))
                return None, False
            log(ctx, "Copying %s to the replica %s:%s" % (src, replica, cached))
            try:
                copy_remote(fe_ctx, src, replica, cached, mode=0o644)
            except TMError as exc:
                raise TMError("Error copying %s to the replica %s: %s" % (src, replica, exc.msg), exc.rc)
            rc, _out, err = _replica_py(fe_ctx, replica, ["setsum", cached, total, suffix])
            if rc != 0:
                fail("Error recording the checksum of %s:%s: %s" % (replica, cached, err.strip()))
            return cached, True
    except TMError as exc:
        if exc.msg.startswith("Could not acquire exclusive lock"):
            raise TMError("Timeout after %ss (REPLICA_COPY_LOCK_TIMEOUT) waiting for the replica copy lock of %s on %s"
                          % (int(timeout), src, replica))
        raise


def copy_from_replica(ctx, replica, cached, host, dst):
    """Copy ``replica:cached`` to ``host:dst``: locally on the replica, or pushed by the replica to the host."""
    if host == replica or (runs_local(ctx, host) and runs_local(ctx, replica)):
        log(ctx, "Copying %s to %s on the replica itself" % (cached, dst))
        ssh_script(ctx, host, SCRIPT_COPY, [cached, dst], "Error copying %s to %s on %s" % (cached, dst, host))
        return
    push_tree(ctx, replica, cached, host, dst)


def push_tree(ctx, replica, src, host, dst):
    """``replica:src`` (a file, link or directory) to ``host:dst``, pushed by the replica over its own ssh."""
    address = storage_address(ctx, host)
    log(ctx, "Copying %s:%s to %s:%s" % (replica, src, address, dst))
    # REPLICA_SSH_OPTS on the replica's ssh to the hypervisor (stock); the tree protocol commits only whole copies
    push = replica_ssh_ctx(ctx)
    transfer_tree(ctx, replica, src, host, dst, "Error copying %s:%s to %s:%s" % (replica, src, address, dst),
                  direct=True, dst_ctx=push, dst_address=address)


# ---------------------------------------------------------------------------
# Recovery snapshots (stock ssh: clone.replica, recovery_snap_create_live, snap_revert, delete)
# ---------------------------------------------------------------------------

def recovery_dir(ctx):
    """REPLICA_RECOVERY_SNAPS_DIR: where replicas keep the VMs' recovery snapshots (``<dir>/<VMID>``)."""
    path = tuning(ctx, "REPLICA_RECOVERY_SNAPS_DIR", DEFAULT_RECOVERY_DIR).rstrip("/")
    if not path.startswith("/") or ".." in path.split("/"):
        fail("REPLICA_RECOVERY_SNAPS_DIR=%r must be an absolute path without '..'" % path)
    return path


def recovery_freq(ctx, disk):
    """The disk's RECOVERY_SNAPSHOT_FREQ (seconds) as a string, "" when unset."""
    freq = disk.get("RECOVERY_SNAPSHOT_FREQ", "")
    if freq:
        number_arg(ctx, freq, "RECOVERY_SNAPSHOT_FREQ")
    return freq


def recovery_snap_exists(ctx, replica, vmid, name):
    """Whether the replica holds a recovery snapshot of disk ``name`` of VM ``vmid`` (its base and base.1)."""
    snap = "%s/%d/%s.snap" % (recovery_dir(ctx), vmid, name)
    rc, _out, _err = ssh_capture(ctx, replica, ["sh", "-c", 'test -f "$1/base" && test -f "$1/base.1"', "sh", snap])
    return rc == 0


def recover_from_replica(ctx, replica, vmid, host, dst):
    """A VM recreated (its id reused) gets its disk back from the replica's recovery snapshot (stock)."""
    src = "%s/%d/%s" % (recovery_dir(ctx), vmid, os.path.basename(dst))
    log(ctx, "Cloning %s via replica %s in %s:%s (recovery snapshot)" % (src, replica, host, dst))
    ssh_make_path(ctx, host, os.path.dirname(dst))
    push_tree(ctx, replica, src, host, dst)
    push_tree(ctx, replica, src + ".snap", host, dst + ".snap")
    ssh_script(ctx, host, SCRIPT_SELF_LINK, [dst], "Error linking %s.snap" % dst)


def replica_base(ctx, replica, cached, vmid, name):
    """The replica keeps the disk's base for its recovery snapshots (``<dir>/<VMID>/<disk>.snap/base``)."""
    folder = "%s/%d" % (recovery_dir(ctx), vmid)
    ssh_script(ctx, replica, SCRIPT_REPLICA_BASE, [cached, folder, name], "Error uploading base image to replica")


def create_base(ctx, host, src, dst, how="cp"):
    """The recovery layout on the host: ``dst`` -> ``dst.snap/base.1`` over ``dst.snap/base`` (``src``)."""
    ssh_script(ctx, host, SCRIPT_CREATE_BASE, [src, dst, how], "Error creating the recovery layout of %s" % dst)


def do_clone(ctx, src, host, dst, dsid, vmid=None, disk=None):
    """Clone ``src`` to ``host:dst``, through the replica of system datastore ``dsid`` when it has one.

    ``disk`` (the VM template's DISK) with a RECOVERY_SNAPSHOT_FREQ and a replica: the disk gets the recovery
    layout, and the replica its base; a recovery snapshot the replica already holds for this VM (it was
    recreated with its id) is used instead of the image. Returns True when it was.
    """
    label = "%s:%s" % (host, dst) if host else dst
    disk = disk or {}
    if is_url(src):
        ssh_make_path(ctx, host, os.path.dirname(dst))
        download_image(ctx, src, None if runs_local(ctx, host) else host, dst)
        return False
    replica = replica_host(ctx, dsid) if dsid is not None else ""
    freq = recovery_freq(ctx, disk) if replica and vmid is not None else ""
    if freq:
        check_host(replica)
        if recovery_snap_exists(ctx, replica, vmid, os.path.basename(dst)):
            recover_from_replica(ctx, replica, vmid, host, dst)
            return True
    if not os.path.isfile(src):
        fail("Error copying %s to %s: source does not exist or is not a file" % (src, label))
    fmt = checked_image(ctx, "", src)[0]
    if freq and fmt != "qcow2":   # the layout's overlay names a qcow2 base; stock fails after the copy
        fail("Error cloning %s to %s: RECOVERY_SNAPSHOT_FREQ needs a qcow2 image (this one is %s)" % (src, label, fmt))
    if replica and stock_layout(ctx) and runs_local(ctx, replica):
        # stock's layout mirrors the image's own path: on this machine that is the image itself
        log(ctx, "The replica %s is this machine: the image is not cached (REPLICA_CACHE_LAYOUT=stock)" % replica)
        replica = ""
    if replica:
        check_host(replica)
        # pinned from the check until the pull ends: no eviction removes it in between
        with pinned(ctx, replica, cache_path(ctx, src), tuning_number(ctx, "REPLICA_COPY_LOCK_TIMEOUT", 600)):
            cached, _copied = ensure_replica_copy(ctx, src, replica)
            if cached:
                if freq:
                    replica_base(ctx, replica, cached, vmid, os.path.basename(dst))
                copy_from_replica(ctx, replica, cached, host, dst)
                if freq:
                    create_base(ctx, host, dst, dst, "mv")
                return False
    log(ctx, "Cloning %s in %s" % (src, label))
    with lock_for(ctx, label):
        ssh_make_path(ctx, host, os.path.dirname(dst))
        if runs_local(ctx, host):
            copy_local(src, dst, mode=0o644)
        else:
            copy_remote(ctx, src, host, dst, mode=0o644)
    if freq:
        create_base(ctx, host, dst, dst, "mv")
    return False


# ---------------------------------------------------------------------------
# Other action cores
# ---------------------------------------------------------------------------

def do_delete(ctx, host, path, dsid=None, vmid=None):
    path = check_delete(ctx, path, dsid, vmid)
    log(ctx, "Deleting %s" % path)
    ssh_exec_and_log(ctx, host, ["rm", "-rf", "--", path], "Error deleting %s" % path)


def do_mv(ctx, src_host, src, dst_host, dst):
    same = src_host == dst_host or (runs_local(ctx, src_host) and runs_local(ctx, dst_host))
    if same:
        if src == dst:
            log(ctx, "Will not move, source and destination are equal")
            return
        log(ctx, "Moving %s to %s" % (src, dst))
        ssh_script(ctx, dst_host, SCRIPT_MV, [src, dst], "Error moving %s to %s in %s" % (src, dst, dst_host))
        return
    log(ctx, "Moving %s:%s to %s:%s" % (src_host, src, dst_host, dst))
    # host to host straight over the hosts' own ssh mesh, as stock ssh/mv; HOST_TO_HOST_COPY=no relays through
    # the front-end (hosts that cannot reach each other)
    transfer_tree(ctx, src_host, src, dst_host, dst, direct=ctx.flag("HOST_TO_HOST_COPY", True))
    do_delete(ctx, src_host, src)


# ---------------------------------------------------------------------------
# OpenNebula 7.x actions (arguments of the stock ssh driver)
# ---------------------------------------------------------------------------

def clone(ctx, args):
    """clone fe:SRC host:DST VMID DSID"""
    src, dst, vmid, dsid = need_args(ctx, args, 4, "fe:SRC host:DST VMID DSID", at_least=True)[:4]
    raw = arg_path(src, fix=False)
    src_path = src if is_url(src) else (raw if is_url(raw) else arg_path(src))
    if not is_url(src_path) and not src_path.startswith("/"):
        fail("Path %r is not absolute" % src_path)
    host, dst_path = host_path(dst)
    # the host probes monitor the system datastore only when it holds .monitor (stock ssh/clone)
    enable_local_monitoring(ctx, host, os.path.dirname(dst_path), "ssh")
    vmid = id_arg(ctx, vmid, "VM id")
    doc = vm_document(ctx, vmid)
    disk = vm_disk(doc, disk_id_of(dst_path))
    # DSID is the image datastore for clone and ln; REPLICA_HOST belongs to the VM's system datastore
    sys_ds = system_datastore(ctx, vmid, id_arg(ctx, dsid, "datastore id"), doc)
    if not do_clone(ctx, src_path, host, dst_path, sys_ds, vmid, disk):
        grow(ctx, host, dst_path, disk)   # stock: SIZE above ORIGINAL_SIZE, not for a recovered disk


ln = clone


def mv(ctx, args):
    """mv host:SRC host:DST VMID DSID, as stock ssh/mv (see actions.mv_local_disks)."""
    mv_local_disks(ctx, args, do_mv)


def mvds(ctx, args):
    """mvds host:SRC fe:DST VMID DSID: the disk goes back to the image datastore (copied, as stock)."""
    src, dst = need_args(ctx, args, 4, "host:SRC fe:DST VMID DSID", at_least=True)[:2]
    host, src_path = host_path(src)
    _fe, dst_path = host_path(dst)
    fmt = checked_image(ctx, host, src_path, chain=True)[0]
    # a disk in the recovery layout (or any link) goes back as one standalone qcow2, as stock ssh/mvds
    ssh_script(ctx, host, SCRIPT_FLATTEN, [src_path, fmt], "Error converting %s:%s to standalone image"
               % (host, src_path))
    log(ctx, "Moving %s:%s to the datastore as %s" % (host, src_path, dst_path))
    transfer_tree(ctx, host, src_path, "", dst_path)
    # as stock ssh/mvds: the host's copy goes with the VM directory; a stale replica checksum goes now
    try:
        os.unlink(dst_path + ".md5sum")
    except OSError:
        pass


def cpds(ctx, args):
    """cpds host:SRC fe:DST SNAP_ID VMID DSID"""
    src, dst, snap = need_args(ctx, args, 5, "host:SRC fe:DST SNAP_ID VMID DSID", at_least=True)[:3]
    host, src_path = host_path(src)
    _fe, dst_path = host_path(dst)
    snap_id = id_arg(ctx, snap, "snapshot id")
    if snap_id != -1:
        src_path = "%s.snap/%d" % (src_path, snap_id)
    checked_image(ctx, host, src_path)
    log(ctx, "Copying %s:%s to the datastore as %s" % (host, src_path, dst_path))
    transfer_tree(ctx, host, src_path, "", dst_path)


def delete(ctx, args):
    """delete host:PATH VMID DSID

    As stock ssh/delete: when datastore DSID has a REPLICA_HOST, the VM's recovery snapshots go from the
    replica, unless the VM is being recreated (its last history ACTION 14, delete-recreate), whose clone then
    takes the disks from them.
    """
    target, vmid, dsid = need_args(ctx, args, 3, "host:PATH VMID DSID", at_least=True)[:3]
    host, path = host_path(target)
    vmid, dsid = id_arg(ctx, vmid, "VM id"), id_arg(ctx, dsid, "datastore id")
    replica = replica_host(ctx, dsid)
    if replica:
        check_host(replica)
        action = last_history(vm_document(ctx, vmid), "ACTION")
        if action.isdigit() and action != "14":   # stock skips it too when the VM cannot be read
            folder = "%s/%d" % (recovery_dir(ctx), vmid)
            ssh_exec_and_log(ctx, replica, ["rm", "-rf", "--", folder], "Error deleting %s" % folder)
    do_delete(ctx, host, path, dsid, vmid)


def premigrate(ctx, args):
    """premigrate SRC_HOST DST_HOST VM_DIR VMID DSID (template on stdin), as stock ssh/premigrate.

    The KVM driver's migrate copies the disks (7.4: ``migrate`` with
    ``--copy-storage``): here the destination's stale VM directory is only removed.
    """
    src_host, dst_host, vm_dir = need_args(ctx, args, 5, "SRC_HOST DST_HOST VM_DIR VMID DSID", at_least=True)[:3]
    check_host(src_host)
    check_host(dst_host)
    _host, path = host_path(vm_dir)
    if src_host == dst_host:
        log(ctx, "Not moving %s to %s, they are the same host" % (src_host, dst_host))
        return
    do_delete(ctx, dst_host, path, id_arg(ctx, args[4], "datastore id"), id_arg(ctx, args[3], "VM id"))


def postmigrate(ctx, args):
    """postmigrate SRC_HOST DST_HOST VM_DIR VMID DSID: the source host's copy goes (stock ssh/postmigrate).

    The source directory is in the previous system datastore (the VM's
    previous history record) when the migration also changed it.
    """
    src_host, dst_host, vm_dir, vmid, dsid = need_args(
        ctx, args, 5, "SRC_HOST DST_HOST VM_DIR VMID DSID", at_least=True)[:5]
    check_host(src_host)
    _host, path = host_path(vm_dir)
    vmid, dsid = id_arg(ctx, vmid, "VM id"), id_arg(ctx, dsid, "datastore id")
    orig = last_history(vm_document(ctx, vmid), "DS_ID", back=1)
    orig = orig if orig.isdigit() else str(dsid)
    if orig == str(dsid) and src_host == dst_host:
        log(ctx, "Not moving %s to %s, they are the same host" % (src_host, dst_host))
        return
    do_delete(ctx, src_host, os.path.normpath(os.path.join(path, "..", "..", orig, str(vmid))), int(orig), vmid)


def failmigrate(ctx, args):
    """failmigrate SRC_HOST DST_HOST VM_DIR VMID DSID: nothing to undo (stock: common/failmigrate)."""
    need_args(ctx, args, 5, "SRC_HOST DST_HOST VM_DIR VMID DSID", at_least=True)
    log(ctx, "Nothing to undo: the KVM driver's migrate copied the disks")


def _snap_paths(ctx, args):
    disk, snap = need_args(ctx, args, 3, "host:DISK SNAP_ID VMID", at_least=True)[:2]
    host, path = host_path(disk)
    return host, path, "%s.snap/%d" % (path, id_arg(ctx, snap, "snapshot id"))


def push_snapshot(ctx, doc, vmid, host, path, snap):
    """A new disk snapshot goes to the replica of the VM's system datastore too, as
    ``<REPLICA_RECOVERY_SNAPS_DIR>/<VMID>/<disk>.replica_snap`` (stock snap_create and snap_create_live)."""
    sys_ds = system_datastore(ctx, vmid, None, doc)
    replica = replica_host(ctx, sys_ds) if sys_ds is not None else ""
    if not replica:
        return
    check_host(replica)
    folder = "%s/%d" % (recovery_dir(ctx), vmid)
    push = replica_ssh_ctx(ctx)
    log(ctx, "Copying snapshot %s:%s to the replica %s" % (host, snap, replica))
    transfer_tree(ctx, host, snap, replica, "%s/%s.replica_snap" % (folder, os.path.basename(path)),
                  "Error copying snapshot %s to the replica %s" % (snap, replica), direct=True, dst_ctx=push)


def snap_create(ctx, args):
    """snap_create host:DISK SNAP_ID VMID: a sparse copy of the disk in DISK.snap/ID (and on the replica)."""
    host, path, snap = _snap_paths(ctx, args)
    vmid = id_arg(ctx, args[2], "VM id")
    doc = vm_document(ctx, vmid)
    log(ctx, "Creating snapshot %s of %s" % (snap, path))
    ssh_script(ctx, host, SCRIPT_SNAP_CREATE, [path, snap], "Error creating snapshot %s" % snap)
    push_snapshot(ctx, doc, vmid, host, path, snap)


# A disk snapshot of a running VM, as stock ssh/snap_create_live: libvirt copies the disk the domain
# uses ($1, or the file its link names) to $2 (blockcopy --wait --finish), tried 3 times 5 s apart
# while libvirt reports another active block job. $3 the domain, $4 LIBVIRT_URI. $5 lxc: the container
# is frozen (sudo lxc-freeze) while the disk is copied.
SCRIPT_SNAP_CREATE_LIVE = SH_PRELUDE + (
    'path=$1; snap=$2; dom=$3; uri=$4; vmm=$5\n'
    'mkdir -p -- "$path.snap"\n'
    ': >"$snap"\n'
    'if [ -L "$path" ]; then real="$(dirname -- "$path")/$(readlink -- "$path")"; else real=$path; fi\n'
    'if [ "$vmm" = lxc ]; then\n'
    '  if sudo lxc-freeze -n "$dom"; then trap \'sudo lxc-unfreeze -n "$dom"\' EXIT\n'
    '  else echo "Could not freeze container $dom" >&2; exit 1; fi\n'
    '  cp -- "$real" "$snap"\n'
    '  exit 0\n'
    'fi\n'
    'tries=3\n'
    'while :; do\n'
    '  if err=$(virsh -q -c "$uri" blockcopy "$dom" --path "$real" --dest "$snap" --wait --finish 2>&1 >/dev/null)\n'
    '  then break; fi\n'
    '  tries=$((tries - 1))\n'
    '  case $err in *"active block job"*) if [ "$tries" -gt 0 ]; then sleep 5; continue; fi ;; esac\n'
    '  printf "%s\\n" "$err" >&2; exit 1\n'
    'done\n'
)


def snap_create_live(ctx, args):
    """snap_create_live host:DISK SNAP_ID VMID: a copy of a running VM's disk in DISK.snap/ID, made by libvirt."""
    host, path, snap = _snap_paths(ctx, args)
    vmid = id_arg(ctx, args[2], "VM id")
    doc = vm_document(ctx, vmid)
    deploy_id = (doc.findtext("DEPLOY_ID") or "").strip()
    if not deploy_id:
        fail("Error creating snapshot %s: the VM has no DEPLOY_ID (is it running?)" % snap)
    log(ctx, "Creating snapshot %s of %s" % (snap, path))
    vmm = last_history(doc, "VM_MAD")
    ssh_script(ctx, host, SCRIPT_SNAP_CREATE_LIVE, [path, snap, deploy_id, ctx.setting("LIBVIRT_URI", "qemu:///system"),
                                                    "lxc" if vmm == "lxc" else "kvm"],
               "Error creating snapshot %s" % snap)
    push_snapshot(ctx, doc, vmid, host, path, snap)


def snap_revert(ctx, args):
    """snap_revert host:DISK SNAP_ID VMID: the disk becomes a copy of DISK.snap/ID.

    A disk with RECOVERY_SNAPSHOT_FREQ keeps the recovery layout: the snapshot becomes its base.
    """
    host, path, snap = _snap_paths(ctx, args)
    disk = vm_disk(vm_document(ctx, id_arg(ctx, args[2], "VM id")), disk_id_of(path))
    log(ctx, "Reverting %s to %s" % (path, snap))
    if recovery_freq(ctx, disk):
        fmt = checked_image(ctx, host, snap, chain=True)[0]
        ssh_script(ctx, host, SCRIPT_REVERT_BASE, [snap, path, fmt], "Error reverting snapshot to %s" % snap)
        return
    ssh_script(ctx, host, SCRIPT_COPY, [snap, path], "Error reverting %s to %s" % (path, snap))


def snap_delete(ctx, args):
    """snap_delete host:DISK SNAP_ID VMID"""
    host, path, snap = _snap_paths(ctx, args)
    log(ctx, "Deleting snapshot %s" % snap)
    ssh_exec_and_log(ctx, host, ["rm", "-f", "--", snap], "Error deleting snapshot %s" % snap)


def monitor(ctx, args):
    """monitor DSID, the driver action on stdin: nothing to report, as stock ssh/monitor.

    A system datastore whose disks are local is monitored by the hosts' probes
    (monitor_ds), in the directories clone marks with ``.monitor``.
    """
    import sys
    need_args(ctx, args, 1, "DSID", at_least=True)
    sys.stdin.read()


def _du_mib(path):
    """``du -mL PATH``: MiB allocated (rounded up), links followed; None when unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return -(-st.st_blocks * 512 // (1 << 20))


def monitor_ds(ctx, args):
    """monitor_ds DS_DIR, run by the host probes: one ``VM = [ ID = N, MONITOR = "<base64>"]`` line per VM.

    The MONITOR text is stock's: ``DISK_SIZE = [ ID=i, SIZE=MiB]`` per disk and
    ``SNAPSHOT_SIZE = [ ID=s, DISK_ID=i, SIZE=MiB]`` per snapshot (ids 0-9 as stock).
    """
    import base64
    import re as _re
    top = need_args(ctx, args, 1, "DS_DIR", at_least=True)[0]
    if not top.startswith("/"):
        fail("Path %r is not absolute" % top)
    lines = []
    try:
        vms = sorted(n for n in os.listdir(top) if _re.match(r"^[0-9]+$", n))
    except OSError:
        vms = []
    for vm in vms:
        vm_dir = os.path.join(top, vm)
        try:
            disks = sorted(n for n in os.listdir(vm_dir) if _re.match(r"^disk\.[0-9]+$", n))
        except OSError:
            continue
        if not disks:
            continue
        text = ""
        for name in disks:
            disk_id = name.split(".")[1]
            size = _du_mib(os.path.join(vm_dir, name))
            if size is None:
                continue
            text += "\nDISK_SIZE = [ ID=%s, SIZE=%d]" % (disk_id, size)
            snap_dir = os.path.join(vm_dir, name + ".snap")
            if os.path.exists(snap_dir):
                for snap in sorted(n for n in os.listdir(snap_dir) if _re.match(r"^[0-9]$", n)):
                    snap_size = _du_mib(os.path.join(snap_dir, snap))
                    if snap_size is not None:
                        text += "\nSNAPSHOT_SIZE = [ ID=%s, DISK_ID=%s, SIZE=%d]" % (snap, disk_id, snap_size)
        encoded = base64.b64encode((text + "\n").encode()).decode()
        lines.append('VM = [ ID = %s, MONITOR = "%s"]\n' % (vm, encoded))
    _stdout_write("".join(lines))


# recovery_snap_create_live, on the host (the KVM probes' vm/snapshot/recovery.rb runs it): before the snapshot.
# $1 VMID, $2 the disk (a link to its overlay base.1), $3 RECOVERY_SNAPSHOT_FREQ, $4 LIBVIRT_URI. Prints
# "FRESH <mtime>" when the last snapshot is younger than FREQ, "SNAP <disk file>" once libvirt moved the domain's
# writes to DISK.snap/rs_tmp (base.1 is then stable, to be copied); errors on stdout, as the probe reads them.
SCRIPT_RECOVERY_SNAP = SH_PRELUDE + (
    'vmid=$1; disk=$2; freq=$3; uri=$4; dom="one-$vmid"; snap="$disk.snap/rs_tmp"\n'
    'mkdir -p -- "$disk.snap"\n'
    'real="$(dirname -- "$disk")/$(readlink -- "$disk" || :)"\n'
    'virsh -c "$uri" domblkinfo "$dom" "$real" >/dev/null 2>&1 || real=$disk\n'
    'if [ -f "$snap" ]; then\n'
    '  old=$(stat -c %Y -- "$snap")\n'
    '  if [ "$(( $(date +%s) - old ))" -lt "$freq" ]; then echo "FRESH $old"; exit 0; fi\n'
    '  if virsh -c "$uri" domblklist "$dom" | grep "snap/rs_tmp"; then\n'
    '    virsh -c "$uri" blockcommit "$dom" "$snap" --base "$real" --top "$snap" --active --pivot --wait >/dev/null\n'
    '    exit 1\n'
    '  fi\n'
    '  rm -f -- "$snap"\n'
    'fi\n'
    'if [ ! -L "$disk" ]; then echo "$disk not a symlink"; exit 1; fi\n'
    'if [ "$(virsh -c "$uri" domstate "$dom" 2>/dev/null)" != running ]; then echo "VM $vmid is not running"; exit 1; fi\n'
    'others=$(virsh -c "$uri" domblklist "$dom" | awk \'/disk/ {print $2}\')\n'
    'set -f; old_ifs=$IFS; IFS=\'\n\'\n'
    'set --\n'
    'for d in $others; do [ "$d" = "$real" ] || set -- "$@" --diskspec "$d,snapshot=no"; done\n'
    'IFS=$old_ifs; set +f\n'
    ': >"$snap"\n'
    'virsh -c "$uri" snapshot-create-as "$dom" recovery_snap --diskspec "$real,file=$snap" "$@" --disk-only --atomic \\\n'
    '  --no-metadata --quiesce >/dev/null \\\n'
    '|| virsh -c "$uri" snapshot-create-as "$dom" recovery_snap --diskspec "$real,file=$snap" "$@" --disk-only --atomic \\\n'
    '  --no-metadata >/dev/null\n'
    'echo "SNAP $real"\n'
)


def _host_tuning(ctx):
    """On a host the stock sshrc is in the remotes copy (``<driver dir>/../../etc/tm/ssh/sshrc``)."""
    configured = ctx.setting("TUNING_RC", "")
    if configured and os.path.exists(configured):
        return
    near = os.path.normpath(os.path.join(ctx.driver_dir or ".", "..", "..", "etc", "tm", "ssh", "sshrc"))
    ctx.rc["TUNING_RC"] = near if os.path.exists(near) else ""
    ctx.rc.pop("__tuning__", None)


def recovery_snap_create_live(ctx, args):
    """recovery_snap_create_live VMID DISK_PATH FREQ REPLICA_HOST, on the host, as stock ssh's (run by the KVM
    probe vm/snapshot/recovery.rb for each disk in the recovery layout).

    At most every FREQ seconds: libvirt moves the running domain's writes to ``DISK.snap/rs_tmp`` (an external
    snapshot, quiesced when the guest agent answers), ``base.1`` is copied to the replica's recovery directory,
    and ``rs_tmp`` is committed back into ``base.1``, also when the copy fails. Prints the snapshot's time.
    """
    vmid, disk, freq, replica = need_args(ctx, args, 4, "VMID DISK_PATH FREQ REPLICA_HOST")
    vmid = id_arg(ctx, vmid, "VM id")
    freq = number_arg(ctx, freq, "FREQ")
    check_host(replica)
    if not disk.startswith("/") or ".." in disk.split("/") or disk_id_of(disk) is None:
        fail("DISK_PATH %r is not an absolute path to a disk.N" % disk)
    _host_tuning(ctx)
    folder = "%s/%d/%s.snap" % (recovery_dir(ctx), vmid, os.path.basename(disk))
    uri = ctx.setting("LIBVIRT_URI", "qemu:///system")
    rc, out, err = run_command(["sh", "-c", SCRIPT_RECOVERY_SNAP, "sh", str(vmid), disk, str(freq), uri])
    ctx.stderr.write(err)
    word, _sep, rest = out.strip().rpartition("\n")[2].partition(" ")
    if rc != 0 or word not in ("FRESH", "SNAP"):
        _stdout_write(out)
        raise TMError(out.strip() or err.strip() or "recovery snapshot of %s failed" % disk, rc or 1)
    if word == "FRESH":
        _stdout_write(rest + "\n")
        return
    snap = disk + ".snap/rs_tmp"
    try:
        ssh_make_path(ctx, replica, folder)
        transfer_tree(ctx, "", rest, replica, "%s/%s" % (folder, os.path.basename(rest)),
                      "Error copying %s to the replica %s" % (rest, replica))
    finally:
        exec_and_log(ctx, ["virsh", "-c", uri, "blockcommit", "one-%d" % vmid, snap, "--base", rest, "--top", snap,
                           "--active", "--pivot", "--wait"], "Error committing %s" % snap)
    _stdout_write("%d\n" % int(os.stat(snap).st_mtime))


def _stdout_write(text):
    import sys
    sys.stdout.write(text)
    sys.stdout.flush()


ACTIONS = {
    "clone": clone,
    "ln": ln,
    "mv": mv,
    "mvds": mvds,
    "cpds": cpds,
    "delete": delete,
    "mkimage": mkimage,
    "mkswap": mkswap,
    "context": context,
    "resize": resize_vm_disk,
    "premigrate": premigrate,
    "postmigrate": postmigrate,
    "failmigrate": failmigrate,
    "snap_create": snap_create,
    "snap_create_live": snap_create_live,
    "snap_delete": snap_delete,
    "snap_revert": snap_revert,
    "monitor": monitor,
    "monitor_ds": monitor_ds,
    "recovery_snap_create_live": recovery_snap_create_live,
}
ACTIONS.update(backup.ACTIONS)
ACTIONS["restore"] = backup.restore_local   # stock ssh's restore: the disk replaces disk.N, its snapshots go

# OpenNebula 3.x had no replica; the driver only speaks the 7.x protocol.
LEGACY_ACTIONS = {}
