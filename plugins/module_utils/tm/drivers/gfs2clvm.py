# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``gfs2clvm``: VM disks as logical volumes of a clustered volume group on a SAN.

Running disks are ``lv-one-<vmid>-<diskid>``, images registered by OpenNebula
``lv-oneimg-<hash>``; ``disk.N`` in the VM directory (on the hosts' shared GFS2
``/var/lib/one``) is a symlink to ``<DEV_DIR>/<vg>/<lv>``. The front-end reaches
the hosts over ssh only. LVM commands run as ``<SUDO> <LVM_WRAPPER> <command> ...``:
the role's sudoers file allows oneadmin only that root-owned wrapper, which
accepts exactly the calls made here (``module_utils/_lvm_wrapper.py``); everything
else runs as oneadmin, who owns the LVs through udev.

``ACTIONS`` are the OpenNebula 7.x TM actions, ``LEGACY_ACTIONS`` the 3.x
``tm_<action>.sh SRC DST`` ones, and ``DS_ACTIONS`` the datastore (image)
actions ``cp mkfs rm mv monitor stat`` (``<action> <base64 DRV_ACTION> <ID>``),
run by :func:`datastore_main`.
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import uuid

from ..actions import SCRIPT_LINK, check_delete, checked_image, context, image_format_arg, make_context, number_arg
from ..common import (Context, TMError, arg_path, check_host, error_message, exec_and_log, fail, forget, host_path,
                      is_yes, lock_for, log, log_error, need_args, remote_argv, run_action, runs_local, spawn,
                      ssh_capture, ssh_exec_and_log, ssh_make_path)
from ..copy import is_url
from ..rc import RcError, read_rc

NAME = "gfs2clvm"

DEFAULT_RC = [
    ("SSH", "ssh"),
    ("SSH_OPTS", "-o BatchMode=yes -o ConnectTimeout=15"),
    ("VG_NAME", "vg-one"),
    ("DEFAULT_LV_SIZE", "1024"),
    ("DD_BS", "64M"),
    ("SUDO", "sudo -n"),
    ("LVM_WRAPPER", "/usr/local/sbin/one-gfs2clvm-lvm"),
    ("DEV_DIR", "/dev"),
    ("DS_HOST", ""),
    ("LOCAL_SHORTCUT", "yes"),
    ("LEGACY_ERRORS", "no"),
    ("LOCK_DIR", "/var/lock/one"),
    ("LOCK_TIMEOUT", "600"),
    ("COMMAND_TIMEOUT", "0"),
    ("DOWNLOAD_TIMEOUT", "60"),
]

RC_HEADER = """gfs2clvm driver settings (KEY=value), managed by nebula.storage.tm_driver.
VG_NAME: the clustered volume group; DEFAULT_LV_SIZE: MiB for sources of unknown size (URLs).
DD_BS: dd block size. SUDO, LVM_WRAPPER: LVM commands run as "$SUDO $LVM_WRAPPER <command> ...",
the root-owned wrapper that is all the sudoers file allows. DEV_DIR: where device-mapper links <vg>/<lv>.
DS_HOST: host running the datastore actions when the datastore has no BRIDGE_LIST."""

LVM_COMMANDS = ("lvcreate", "lvremove", "lvs", "vgs")

_VG = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$")
_BS = re.compile(r"^[0-9]+[KMG]?$")
_LVM_SRC = re.compile(r"^lvm://([0-9]+)/([0-9]+)$")
_IMG_LV = re.compile(r"^lv-oneimg-[0-9a-f]{32}$")

# ---------------------------------------------------------------------------
# Constant remote scripts (data only through "$1", "$2", ...)
# ---------------------------------------------------------------------------

SCRIPT_RMDIR = 'if [ -e "$1" ] || [ -L "$1" ]; then rm -rf -- "$1"; fi\n'


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _number(ctx, value, what):
    return int(number_arg(ctx, value, what))


def vg_name(ctx, override=None):
    name = override or ctx.setting("VG_NAME", "vg-one")
    if not _VG.match(name) or name.startswith("-"):
        fail("Invalid volume group name %r" % (name,))
    return name


def lv_path(ctx, vg, lv):
    return os.path.join(ctx.setting("DEV_DIR", "/dev"), vg, lv)


def vm_lv(vmid, diskid):
    return "lv-one-%d-%d" % (int(vmid), int(diskid))


def image_lv(seed=None):
    """``lv-oneimg-<hash>``: 32 hex digits, unique per registration."""
    import hashlib
    seed = seed if seed is not None else uuid.uuid4().hex
    return "lv-oneimg-" + hashlib.md5(seed.encode("utf-8")).hexdigest()  # nosec: a name, not security


def lvm(ctx, command):
    """``<SUDO> <LVM_WRAPPER> <command>``: the wrapper is all the sudoers file allows."""
    if command not in LVM_COMMANDS:
        raise ValueError(command)
    wrapper = ctx.setting("LVM_WRAPPER", "/usr/local/sbin/one-gfs2clvm-lvm")
    if not wrapper.startswith("/"):
        fail("rc setting LVM_WRAPPER=%r is not an absolute path" % (wrapper,))
    return shlex.split(ctx.setting("SUDO", "sudo -n")) + [wrapper, command]


def dd_bs(ctx):
    value = ctx.setting("DD_BS", "64M")
    if not _BS.match(value):
        fail("rc setting DD_BS=%r is not a dd block size" % (value,))
    return value


def default_size(ctx):
    return _number(ctx, ctx.setting("DEFAULT_LV_SIZE", "1024"), "DEFAULT_LV_SIZE")


def mib(size_bytes):
    return max(1, int(math.ceil(size_bytes / 1048576.0)))


def _lvs_size(ctx, host, device):
    argv = lvm(ctx, "lvs") + ["--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size", device]
    rc, out, err = ssh_capture(ctx, host, argv)
    if rc != 0:
        fail("Cannot read the size of %s on %s: %s" % (device, host or "localhost", err.strip()))
    try:
        return int(math.ceil(float(out.strip().replace(",", "."))))
    except ValueError:
        fail("Cannot read the size of %s on %s: bad lvs output %r" % (device, host or "localhost", out))


def list_lvs(ctx, host, vg):
    rc, out, err = ssh_capture(ctx, host, lvm(ctx, "lvs") + ["--noheadings", "-o", "lv_name", vg])
    if rc != 0:
        fail("Cannot list the logical volumes of %s on %s: %s" % (vg, host or "localhost", err.strip()))
    return out.split()


def lvcreate(ctx, host, vg, lv, size_mb, origin=None):
    argv = lvm(ctx, "lvcreate")
    if origin:
        argv += ["-s"]
    argv += ["-L", "%dM" % size_mb, "-n", lv] + ([origin] if origin else [vg])
    snapshot = " as a snapshot of %s" % origin if origin else ""
    log(ctx, "Creating %s/%s (%d MiB)%s on %s" % (vg, lv, size_mb, snapshot, host or "localhost"))
    ssh_exec_and_log(ctx, host, argv, "Error creating logical volume %s/%s on %s" % (vg, lv, host or "localhost"))


def lvremove(ctx, host, vg, lv):
    log(ctx, "Removing %s/%s on %s" % (vg, lv, host or "localhost"))
    ssh_exec_and_log(ctx, host, lvm(ctx, "lvremove") + ["-f", "%s/%s" % (vg, lv)],
                     "Error removing logical volume %s/%s on %s" % (vg, lv, host or "localhost"))


def _undo_lv(ctx, host, vg, lv):
    try:
        lvremove(ctx, host, vg, lv)
    except TMError as exc:
        log_error(ctx, "cleanup of %s/%s failed: %s" % (vg, lv, exc.msg))


def _pipe_into(ctx, host, device, feed, msg):
    """Run ``dd of=device`` on ``host`` and ``feed(stdin)`` it the data."""
    import subprocess
    argv = remote_argv(ctx, host, ["dd", "of=%s" % device, "bs=%s" % dd_bs(ctx), "iflag=fullblock",
                                   "conv=notrunc,fsync", "status=none"])
    err = tempfile.TemporaryFile()
    try:
        proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        ok = False
        try:
            feed(proc.stdin)
            ok = True
        except (IOError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except (IOError, OSError):
                pass
        rc = proc.wait()
        forget(proc)
        if rc != 0 or not ok:
            err.seek(0)
            fail("%s: %s" % (msg, err.read().decode("utf-8", "replace").strip() or "rc=%d" % rc))
    finally:
        err.close()


def _feed_file(path):
    def feed(stream):
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, stream, 1 << 20)
    return feed


def _feed_url(ctx, url):
    import urllib.request

    def feed(stream):
        try:
            response = urllib.request.build_opener().open(url, timeout=ctx.number("DOWNLOAD_TIMEOUT", 60))
        except Exception as exc:  # pylint: disable=broad-except
            raise TMError("Error downloading %s: %s" % (url, exc))
        try:
            shutil.copyfileobj(response, stream, 1 << 20)
        finally:
            response.close()
    return feed


def image_info(path):
    """``(format, virtual size in bytes)`` of a local image file; refused when it reads other files."""
    return checked_image(None, "", path)


def url_size(ctx, url):
    """Content-Length of an http(s) source in bytes, or None."""
    import urllib.request
    try:
        request = urllib.request.Request(url, method="HEAD")
        response = urllib.request.build_opener().open(request, timeout=ctx.number("DOWNLOAD_TIMEOUT", 60))
        try:
            length = response.headers.get("Content-Length")
        finally:
            response.close()
        return int(length) if length else None
    except Exception:  # pylint: disable=broad-except
        return None


def source_size(ctx, host, vg, source):
    """Size in MiB of an LV (``/dev/...``), a snapshot origin, a URL or a local image file."""
    if is_url(source):
        length = url_size(ctx, source)
        return mib(length) if length else default_size(ctx)
    if source.startswith(ctx.setting("DEV_DIR", "/dev").rstrip("/") + "/"):
        return _lvs_size(ctx, host, source)
    if not os.path.isfile(source):
        fail("Source %s does not exist" % source)
    return mib(image_info(source)[1])


def fill(ctx, host, source, device):
    """Write ``source`` (an LV/device on ``host``, a URL or a front-end file) raw into ``device``."""
    where = "%s:%s" % (host, device) if host else device
    if is_url(source):
        log(ctx, "Streaming %s into %s" % (source, where))
        _pipe_into(ctx, host, device, _feed_url(ctx, source), "Error downloading %s into %s" % (source, where))
        return
    if source.startswith(ctx.setting("DEV_DIR", "/dev").rstrip("/") + "/"):
        log(ctx, "Copying %s into %s" % (source, where))
        ssh_exec_and_log(ctx, host, ["dd", "if=%s" % source, "of=%s" % device, "bs=%s" % dd_bs(ctx),
                                     "conv=notrunc,fsync", "status=none"],
                         "Error copying %s into %s" % (source, where))
        return
    fmt = image_info(source)[0]
    if runs_local(ctx, host):
        log(ctx, "Converting %s (%s) into %s" % (source, fmt, where))
        exec_and_log(ctx, ["qemu-img", "convert", "-q", "-f", fmt, "-O", "raw", source, device],
                     "Error converting %s into %s" % (source, where))
        return
    if fmt == "raw":
        log(ctx, "Streaming %s into %s" % (source, where))
        _pipe_into(ctx, host, device, _feed_file(source), "Error copying %s into %s" % (source, where))
        return
    work = tempfile.mkdtemp(prefix="one-gfs2clvm-")
    try:
        raw = os.path.join(work, "image.raw")
        log(ctx, "Converting %s (%s) to raw and streaming it into %s" % (source, fmt, where))
        exec_and_log(ctx, ["qemu-img", "convert", "-q", "-f", fmt, "-O", "raw", source, raw],
                     "Error converting %s" % source)
        _pipe_into(ctx, host, device, _feed_file(raw), "Error copying %s into %s" % (source, where))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def link(ctx, host, target, path):
    log(ctx, "Linking %s to %s" % (path, target))
    ssh_exec_and_log(ctx, host, ["sh", "-c", SCRIPT_LINK, "sh", target, path],
                     "Error linking %s to %s on %s" % (path, target, host or "localhost"))


# ---------------------------------------------------------------------------
# Action cores
# ---------------------------------------------------------------------------

def do_clone(ctx, source, host, dst, vmid, diskid):
    vg = vg_name(ctx)
    lv = vm_lv(vmid, diskid)
    device = lv_path(ctx, vg, lv)
    with lock_for(ctx, "%s:%s" % (host, dst)):
        ssh_make_path(ctx, host, os.path.dirname(dst))
        snap = _LVM_SRC.match(source)
        if snap:
            origin = lv_path(ctx, vg, vm_lv(snap.group(1), snap.group(2)))
            lvcreate(ctx, host, vg, lv, _lvs_size(ctx, host, origin), origin=origin)
            link(ctx, host, device, dst)
            return
        if source.lower().endswith(".iso"):
            log(ctx, "ISO image %s gets its own logical volume %s" % (source, lv))
        size = source_size(ctx, host, vg, source)
        lvcreate(ctx, host, vg, lv, size)
        try:
            fill(ctx, host, source, device)
            link(ctx, host, device, dst)
        except TMError:
            _undo_lv(ctx, host, vg, lv)
            raise


def do_mkimage(ctx, size, fmt, host, dst, vmid, diskid):
    image_format_arg(ctx, fmt, ("raw", "swap"))
    if fmt == "qcow2":
        fail("%s: format qcow2 not supported on a logical volume (use raw or a filesystem)" % ctx.action)
    vg = vg_name(ctx)
    lv = vm_lv(vmid, diskid)
    device = lv_path(ctx, vg, lv)
    with lock_for(ctx, "%s:%s" % (host, dst)):
        ssh_make_path(ctx, host, os.path.dirname(dst))
        lvcreate(ctx, host, vg, lv, size)
        try:
            if fmt == "swap":
                log(ctx, "Making swap on %s" % device)
                ssh_exec_and_log(ctx, host, ["mkswap", device], "Error making swap on %s" % device)
            elif fmt != "raw":
                log(ctx, "Making a %s filesystem on %s" % (fmt, device))
                ssh_exec_and_log(ctx, host, ["mkfs", "-t", fmt, device], "Error making a %s filesystem on %s" % (fmt, device))
            link(ctx, host, device, dst)
        except TMError:
            _undo_lv(ctx, host, vg, lv)
            raise


def do_delete(ctx, host, path, vmid, dsid=None, legacy=False):
    """Remove the VM's ``lv-one-<vmid>-*`` LVs (only disk N's for ``.../disk.N``), then ``path``."""
    path = check_delete(ctx, path, dsid, vmid, legacy)
    vg = vg_name(ctx)
    disk = re.search(r"/disk\.([0-9]+)$", path)
    if disk:
        wanted = re.compile(r"^%s$" % re.escape(vm_lv(vmid, disk.group(1))))
    else:
        wanted = re.compile(r"^lv-one-%d-[0-9]+$" % int(vmid))
    for lv in sorted(n for n in list_lvs(ctx, host, vg) if wanted.match(n)):
        lvremove(ctx, host, vg, lv)
    log(ctx, "Deleting %s" % path)
    ssh_exec_and_log(ctx, host, ["sh", "-c", SCRIPT_RMDIR, "sh", path], "Error deleting %s" % path)


def _clone_source(src):
    """The source of a clone: a URL or lvm:// source as given, else the path of ``fe:PATH``."""
    for candidate in (src, arg_path(src, fix=False)):
        if is_url(candidate) or _LVM_SRC.match(candidate):
            return candidate
    path = arg_path(src)
    if not path.startswith("/"):
        fail("Path %r is not absolute" % (path,))
    return path


def _disk_id(ctx, path):
    match = re.search(r"/disk\.([0-9]+)$", path)
    if not match:
        fail("%s: %s is not a VM disk (.../disk.N)" % (ctx.action, path))
    return int(match.group(1))


# ---------------------------------------------------------------------------
# OpenNebula 7.x TM actions
# ---------------------------------------------------------------------------

def clone(ctx, args):
    """clone fe:SRC host:DST VMID DSID"""
    src, dst, vmid = need_args(ctx, args, 4, "fe:SRC host:DST VMID DSID")[:3]
    host, path = host_path(dst)
    do_clone(ctx, _clone_source(src), host, path, _number(ctx, vmid, "VMID"), _disk_id(ctx, path))


def ln(ctx, args):
    """ln fe:SRC host:DST VMID DSID: the disk links to the persistent image's LV."""
    src, dst = need_args(ctx, args, 4, "fe:SRC host:DST VMID DSID")[:2]
    src_path = host_path(src)[1]
    host, path = host_path(dst)
    ssh_make_path(ctx, host, os.path.dirname(path))
    link(ctx, host, src_path, path)


def mkimage(ctx, args):
    """mkimage SIZE FORMAT host:DST VMID DSID"""
    size, fmt, dst, vmid = need_args(ctx, args, 5, "SIZE FORMAT host:DST VMID DSID", at_least=True)[:4]
    host, path = host_path(dst)
    do_mkimage(ctx, _number(ctx, size, "size"), fmt, host, path, _number(ctx, vmid, "VMID"), _disk_id(ctx, path))


def mkswap(ctx, args):
    """mkswap SIZE host:DST VMID DSID"""
    size, dst, vmid = need_args(ctx, args, 4, "SIZE host:DST VMID DSID", at_least=True)[:3]
    host, path = host_path(dst)
    do_mkimage(ctx, _number(ctx, size, "size"), "swap", host, path, _number(ctx, vmid, "VMID"), _disk_id(ctx, path))


def delete(ctx, args):
    """delete host:PATH VMID DSID"""
    target, vmid, dsid = need_args(ctx, args, 3, "host:PATH VMID DSID", at_least=True)[:3]
    host, path = host_path(target)
    do_delete(ctx, host, path, _number(ctx, vmid, "VMID"), _number(ctx, dsid, "DSID"))


def mv(ctx, args):
    """mv host:SRC host:DST VMID DSID: LVs and GFS2 are shared, nothing moves."""
    src, dst = need_args(ctx, args, 4, "host:SRC host:DST VMID DSID")[:2]
    log(ctx, "Not moving %s to %s: the volume group and /var/lib/one are shared" % (src, dst))


def mvds(ctx, args):
    """mvds host:SRC fe:DST VMID DSID: a persistent disk stays in its LV."""
    need_args(ctx, args, 4, "host:SRC fe:DST VMID DSID")
    log(ctx, "Nothing to move: the image is a logical volume of the shared volume group")


def _noop(ctx, args):
    log(ctx, "Nothing to do: the storage is shared")


premigrate = postmigrate = failmigrate = _noop


def _not_supported(ctx, args):
    fail("%s: Operation not supported by the %s driver" % (ctx.action, NAME))


ACTIONS = {
    "clone": clone,
    "ln": ln,
    "mkimage": mkimage,
    "mkswap": mkswap,
    "delete": delete,
    "mv": mv,
    "mvds": mvds,
    "context": context,
    "premigrate": premigrate,
    "postmigrate": postmigrate,
    "failmigrate": failmigrate,
}
for _name in ("cpds", "resize", "snap_create", "snap_delete", "snap_revert", "snap_create_live"):
    ACTIONS[_name] = _not_supported


# ---------------------------------------------------------------------------
# OpenNebula 3.x: tm_<action>.sh SRC DST, DST = host:<VM_DIR>/<vmid>/images/disk.N
# ---------------------------------------------------------------------------

_LEGACY_DISK = re.compile(r"/([0-9]+)/images/disk\.([0-9]+)$")
_LEGACY_VM = re.compile(r"/([0-9]+)(?:/images)?$")


def _legacy_disk(ctx, arg):
    host, path = host_path(arg)
    match = _LEGACY_DISK.search(path)
    if not match:
        fail("%s: %s is not a VM disk (<vmid>/images/disk.N)" % (ctx.action, path))
    return host, path, int(match.group(1)), int(match.group(2))


def legacy_clone(ctx, args):
    """tm_clone.sh SRC DST"""
    src, dst = need_args(ctx, args, 2, "SRC DST")
    host, path, vmid, diskid = _legacy_disk(ctx, dst)
    do_clone(ctx, _clone_source(src), host, path, vmid, diskid)


def legacy_ln(ctx, args):
    """tm_ln.sh SRC DST"""
    src, dst = need_args(ctx, args, 2, "SRC DST")
    host, path = host_path(dst)
    ssh_make_path(ctx, host, os.path.dirname(path))
    link(ctx, host, host_path(src)[1], path)


def legacy_mkswap(ctx, args):
    """tm_mkswap.sh SIZE DST"""
    size, dst = need_args(ctx, args, 2, "SIZE DST")
    host, path, vmid, diskid = _legacy_disk(ctx, dst)
    do_mkimage(ctx, _number(ctx, size, "size"), "swap", host, path, vmid, diskid)


def legacy_mkimage(ctx, args):
    """tm_mkimage.sh SIZE FSTYPE DST"""
    size, fstype, dst = need_args(ctx, args, 3, "SIZE FSTYPE DST")
    host, path, vmid, diskid = _legacy_disk(ctx, dst)
    do_mkimage(ctx, _number(ctx, size, "size"), fstype, host, path, vmid, diskid)


def legacy_delete(ctx, args):
    """tm_delete.sh host:<VM_DIR>/<vmid>[/images]"""
    need_args(ctx, args, 1, "SRC [DST]", at_least=True)
    host, path = host_path(args[0])
    match = _LEGACY_VM.search(path.rstrip("/")) or _LEGACY_DISK.search(path)
    if not match:
        fail("%s: cannot tell the VM of %s" % (ctx.action, path))
    do_delete(ctx, host, path, int(match.group(1)), legacy=True)


def legacy_mv(ctx, args):
    """tm_mv.sh SRC DST"""
    src, dst = need_args(ctx, args, 2, "SRC DST")
    log(ctx, "Not moving %s to %s: the volume group and /var/lib/one are shared" % (src, dst))


def legacy_context(ctx, args):
    """tm_context.sh FILE... DST"""
    need_args(ctx, args, 2, "FILE... DST", at_least=True)
    host, path = host_path(args[-1])
    make_context(ctx, args[:-1], host, path)


LEGACY_ACTIONS = {
    "clone": legacy_clone,
    "ln": legacy_ln,
    "mkswap": legacy_mkswap,
    "mkimage": legacy_mkimage,
    "delete": legacy_delete,
    "mv": legacy_mv,
    "context": legacy_context,
}


# ---------------------------------------------------------------------------
# Datastore (image) actions: <action> <base64 DRV_ACTION XML> <ID>
# ---------------------------------------------------------------------------

class DriverAction(object):
    """The fields of a DS_DRIVER_ACTION_DATA document the actions read."""

    def __init__(self, encoded):
        import base64
        import binascii
        from xml.etree import ElementTree
        try:
            text = base64.b64decode(encoded.encode("ascii"), validate=True)
            self.root = ElementTree.fromstring(text)
        except (ValueError, binascii.Error, UnicodeEncodeError, ElementTree.ParseError) as exc:
            raise TMError("Cannot decode the driver action: %s" % exc)

    def get(self, path, default=""):
        node = self.root.find(path)
        return default if node is None or node.text is None else node.text.strip()


def _ds(ctx, args, usage="ID, the driver action on stdin (or DRV_ACTION ID)"):
    """The driver action: OpenNebula 7's one_datastore.rb runs ``<action> ID`` with the base64 action on stdin
    (as the stock fs scripts read it, ``DRV_ACTION=$(cat -)``); ``<action> DRV_ACTION ID`` is accepted too."""
    need_args(ctx, args, 1, usage, at_least=True)
    if len(args) >= 2:
        return DriverAction(args[0])
    data = sys.stdin.read().strip()
    if not data:
        fail("%s: no driver action on stdin (expected %s)" % (ctx.action, usage))
    return DriverAction(data)


def _ds_host(ctx, action):
    hosts = action.get("DATASTORE/TEMPLATE/BRIDGE_LIST").split()
    host = hosts[0] if hosts else ctx.setting("DS_HOST", "")
    if not host:
        fail("%s: no host to run LVM commands on: set BRIDGE_LIST in the datastore or DS_HOST in the rc file" % ctx.action)
    check_host(host)
    return host


def _ds_vg(ctx, action):
    return vg_name(ctx, action.get("DATASTORE/TEMPLATE/VG_NAME") or None)


def _out(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def ds_cp(ctx, args):
    """cp: a new lv-oneimg-<hash> filled from IMAGE/PATH; prints ``SOURCE FORMAT``."""
    action = _ds(ctx, args)
    source = action.get("IMAGE/PATH")
    if not source:
        fail("cp: the image has no PATH")
    if not is_url(source) and not source.startswith("/"):
        fail("cp: path %r is not absolute" % source)
    host, vg = _ds_host(ctx, action), _ds_vg(ctx, action)
    lv = image_lv()
    device = lv_path(ctx, vg, lv)
    size = source_size(ctx, host, vg, source)
    lvcreate(ctx, host, vg, lv, size)
    try:
        fill(ctx, host, source, device)
    except TMError:
        _undo_lv(ctx, host, vg, lv)
        raise
    _out("%s raw" % device)


def ds_mkfs(ctx, args):
    """mkfs: a new lv-oneimg-<hash> of IMAGE/SIZE MiB with IMAGE/FSTYPE; prints ``SOURCE`` only: oned takes mkfs's
    whole answer as the image's SOURCE (ImageManager::_mkfs; stock fs/mkfs echoes the path alone), where cp's
    answer is ``SOURCE FORMAT``."""
    action = _ds(ctx, args)
    size = _number(ctx, action.get("IMAGE/SIZE"), "IMAGE/SIZE")
    fstype = action.get("IMAGE/FSTYPE") or action.get("IMAGE/FS") or "raw"
    image_format_arg(ctx, fstype, ("raw", "save_as", "swap"))
    host, vg = _ds_host(ctx, action), _ds_vg(ctx, action)
    lv = image_lv()
    device = lv_path(ctx, vg, lv)
    lvcreate(ctx, host, vg, lv, size)
    try:
        if fstype == "swap":
            ssh_exec_and_log(ctx, host, ["mkswap", device], "Error making swap on %s" % device)
        elif fstype not in ("raw", "save_as"):
            ssh_exec_and_log(ctx, host, ["mkfs", "-t", fstype, device], "Error making a %s filesystem on %s" % (fstype, device))
    except TMError:
        _undo_lv(ctx, host, vg, lv)
        raise
    _out(device)


def ds_rm(ctx, args):
    """rm: lvremove of IMAGE/SOURCE, which must be an lv-oneimg-* of the datastore's VG."""
    action = _ds(ctx, args)
    source = action.get("IMAGE/SOURCE")
    host, vg = _ds_host(ctx, action), _ds_vg(ctx, action)
    lv = os.path.basename(source)
    if source != lv_path(ctx, vg, lv) or not _IMG_LV.match(lv):
        fail("rm: refusing to remove %r: not an lv-oneimg-* volume of %s" % (source, vg))
    if lv not in list_lvs(ctx, host, vg):
        log(ctx, "%s does not exist, nothing to remove" % source)
        return
    lvremove(ctx, host, vg, lv)


def ds_mv(ctx, args):
    need_args(ctx, args, 1, "DRV_ACTION ID", at_least=True)
    log(ctx, "Nothing to move: images are logical volumes of the shared volume group")


def ds_monitor(ctx, args):
    """monitor: USED_MB, TOTAL_MB and FREE_MB of the VG, from vgs."""
    action = _ds(ctx, args)
    host, vg = _ds_host(ctx, action), _ds_vg(ctx, action)
    argv = lvm(ctx, "vgs") + ["--noheadings", "--nosuffix", "--units", "m", "-o", "vg_size,vg_free", vg]
    rc, out, err = ssh_capture(ctx, host, argv)
    if rc != 0:
        fail("Error monitoring volume group %s on %s: %s" % (vg, host, err.strip()))
    try:
        total, free = (int(float(v.replace(",", "."))) for v in out.split())
    except ValueError:
        fail("Error monitoring volume group %s on %s: bad vgs output %r" % (vg, host, out))
    _out("USED_MB=%d\nTOTAL_MB=%d\nFREE_MB=%d" % (total - free, total, free))


def ds_stat(ctx, args):
    """stat: size in MiB of IMAGE/PATH (an image file or an http(s) URL)."""
    action = _ds(ctx, args)
    source = action.get("IMAGE/PATH")
    if is_url(source):
        length = url_size(ctx, source)
        if length is None:
            fail("stat: cannot tell the size of %s" % source)
        _out(str(mib(length)))
        return
    if not source.startswith("/") or not os.path.isfile(source):
        fail("stat: %s is not a file" % (source or "(no PATH)"))
    _out(str(mib(image_info(source)[1])))


DS_ACTIONS = {
    "cp": ds_cp,
    "mkfs": ds_mkfs,
    "rm": ds_rm,
    "mv": ds_mv,
    "monitor": ds_monitor,
    "stat": ds_stat,
}


def datastore_main(action, argv=None, rc_path=None, stderr=None):
    """Entry point of the installed datastore actions; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    settings, rc_error = {}, None
    if rc_path:
        try:
            settings = read_rc(rc_path)
        except RcError as exc:
            rc_error = str(exc)
    ctx = Context(action, settings, legacy=is_yes(settings.get("LEGACY_ERRORS", "no")), stderr=stderr)
    if rc_error:
        error_message(ctx, "%s: %s" % (action, rc_error))
        return 1
    func = DS_ACTIONS.get(action)
    if func is None:
        error_message(ctx, "%s: Operation not supported by the %s datastore driver" % (action, NAME))
        return 1
    return run_action(ctx, func, argv)
