# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``nfs_shared``: the shared-filesystem (NFS) TM driver.

The image and system datastores are on a filesystem every host mounts at the
same path. Arguments follow OpenNebula 7.x (``src/tm_mad/shared`` -> ``qcow2``
and ``common``); ``LEGACY_ACTIONS`` implements the 3.x ``tm_<action>.sh SRC
DST`` protocol, where every action runs on the front-end.

Remote work is either one argument list or a constant ``sh -c`` script whose
data arrive as ``"$1"``, ``"$2"``...; no path is ever pasted into code.

Without oned's XML-RPC (``onevm show``), the driver reads what it needs from the
files themselves: the image format from ``qemu-img info``, the snapshot chain
from the ``disk.N -> disk.N.snap/K`` link made by a qcow2 overlay clone. As in
OpenNebula, backing files inside the chain are ``disk.N.snap/K`` (relative),
and ``disk.N.snap/disk.N.snap -> .`` makes that resolve from both directories.
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

from ..actions import (SCRIPT_COPY, SCRIPT_LINK, SH_COMMIT, SH_PRELUDE, SH_TEMP, check_delete, checked_image, context,
                       disk_id_of, download_image, enable_local_monitoring, grow, id_arg, last_history, make_context,
                       make_image, mv_local_disks, number_arg, resize_vm_disk, transfer_tree, vm_disk, vm_document,
                       xml_quoteattr)
from ..common import (arg_path, exec_and_log, fail, host_path, is_disk, lock_for, log, need_args,
                      runs_local, ssh_capture, ssh_exec_and_log, ssh_make_path, ssh_script)
from .. import backup
from ..copy import copy_local, copy_remote, is_url

NAME = "nfs_shared"

DEFAULT_RC = [
    ("SSH", "ssh"),
    ("SSH_OPTS", "-o BatchMode=yes -o ConnectTimeout=15"),
    ("REMOTE_PYTHON", "python3"),
    ("QCOW2_OVERLAY", "no"),
    ("CLONE_COPY", "stream"),
    ("MV_TRANSFER", "auto"),
    ("LOCAL_SHORTCUT", "yes"),
    ("LEGACY_ERRORS", "no"),
    ("LOCK_DIR", "/var/lock/one"),
    ("LOCK_TIMEOUT", "600"),
    ("COMMAND_TIMEOUT", "0"),
    ("DOWNLOAD_TIMEOUT", "60"),
    ("DELETE_RETRIES", "10"),
    ("VM_DIR", ""),
    ("VM_RDIR", ""),
    ("LIBVIRT_URI", "qemu:///system"),
    ("VIRSH_TIMEOUT", "60"),
]

RC_HEADER = """nfs_shared TM driver settings (KEY=value), managed by nebula.storage.tm_driver.
SSH, SSH_OPTS: ssh client and options for every host command and copy.
QCOW2_OVERLAY=yes: clone a qcow2 image as a qcow2 overlay backed by it.
CLONE_COPY: stream (front-end streams the image to the host) or host (cp on the host).
MV_TRANSFER: auto (copy between hosts when the source is not visible on the target), always or no.
LOCAL_SHORTCUT=yes: run locally, without ssh, when the host is this machine.
LEGACY_ERRORS=yes: wrap errors in ERROR MESSAGE markers (OpenNebula < 6.0.3).
LIBVIRT_URI, VIRSH_TIMEOUT: virsh's connection and domfsfreeze timeout for live snapshots (stock: kvmrc)."""

# ---------------------------------------------------------------------------
# Constant remote scripts (data only through "$1", "$2", ...)
# ---------------------------------------------------------------------------

SCRIPT_OVERLAY = SH_PRELUDE + (
    'dst=$1; src=$2; fmt=$3\n'
    'b=$(basename -- "$dst"); mkdir -p -- "$(dirname -- "$dst")"\n'
    'rm -rf -- "$dst.snap"; mkdir -p -- "$dst.snap"\n'
    'qemu-img create -q -f qcow2 -o backing_fmt="$fmt" -b "$src" "$dst.snap/0"\n'
    'ln -sfn . "$dst.snap/$b.snap"\n'
    'rm -f -- "$dst"\n'
    'ln -sT -- "$b.snap/0" "$dst"\n'
)

# $1 (a qcow2 image, not raw) is linked as stock shared/ln does: $1.snap/N (N the highest
# snapshot, 0 -> $1 when there is none) with the traversal link $1.snap/$1.snap -> .; $2 -> $1.snap/N.
SCRIPT_LN_SNAP = SH_PRELUDE + (
    'src=$1; dst=$2; sd="$src.snap"; sn=$(basename -- "$sd")\n'
    'mkdir -p -- "$sd" "$(dirname -- "$dst")"\n'
    '[ -L "$sd/$sn" ] || ln -s . "$sd/$sn"\n'
    'snap=$(ls -- "$sd" | grep -E "^[0-9]+$" | sort -n | tail -n 1 || :)\n'
    'if [ -z "$snap" ]; then snap=0; ln -sfT -- "$src" "$sd/0"; fi\n'
    'rm -f -- "$dst"\n'
    'ln -sfT -- "$sd/$snap" "$dst"\n'
    'rm -rf -- "$dst.snap"\n'
)

# $2 becomes a standalone qcow2 copy of $1 in the snapshot layout ($2.snap/0, $2 -> $2.snap/0).
SCRIPT_STANDALONE = SH_PRELUDE + (
    'dst=$1; src=$2; sparse=$3; fmt=$4\n'
    'b=$(basename -- "$dst"); mkdir -p -- "$(dirname -- "$dst")"\n'
    'rm -rf -- "$dst.snap"; mkdir -p -- "$dst.snap"\n'
    'if [ "$sparse" = no ]; then qemu-img convert -q -f "$fmt" -O qcow2 -S 0 "$src" "$dst.snap/0"\n'
    'else qemu-img convert -q -f "$fmt" -O qcow2 "$src" "$dst.snap/0"; fi\n'
    'ln -sfn . "$dst.snap/$b.snap"\n'
    'rm -f -- "$dst"\n'
    'ln -sT -- "$b.snap/0" "$dst"\n'
)

SCRIPT_MV = SH_PRELUDE + (
    'if [ ! -e "$1" ] && [ ! -L "$1" ]; then echo "Source $1 does not exist" >&2; exit 1; fi\n'
    'mkdir -p -- "$(dirname -- "$2")"\n'
    'mv -fT -- "$1" "$2"\n'
)

SCRIPT_DELETE = (
    'p=$1; tries=$2\n'
    'if [ ! -e "$p" ] && [ ! -L "$p" ]; then exit 0; fi\n'
    'i=1\n'
    'until rm -rf -- "$p"; do\n'
    '  if [ "$i" -ge "$tries" ]; then exit 1; fi\n'
    '  i=$((i + 1)); sleep 1\n'
    'done\n'
)

SCRIPT_CPDS = SH_PRELUDE + 'src=$1; dst=$2; fmt=$3\n' + SH_TEMP + (
    'if [ "$fmt" = qcow2 ]; then qemu-img convert -q -f qcow2 -O qcow2 "$src" "$t"\n'
    'else cp --sparse=always -- "$src" "$t"; fi\n'
) + SH_COMMIT

_SH_SNAP = SH_PRELUDE + (
    'disk=$1; b=$(basename -- "$disk"); snap="$disk.snap"\n'
    'cur=$(readlink -- "$disk" || true)\n'
    'case "$cur" in\n'
    '  "$b.snap/"*) active=${cur#"$b.snap/"} ;;\n'
    '  *) echo "Operation not supported: $disk is not a qcow2 overlay (disk -> $b.snap/N)" >&2; exit 3 ;;\n'
    'esac\n'
)

# Disk snapshots as stock shared/snap_create and snap_revert. $1 the VM's disk.N, $2 the disk
# that holds the snapshots (disk.N itself when cloned, the image for a persistent disk), $3
# the snapshot id, $4 the name the disk link uses for the snapshot directory (relative
# "disk.N.snap" when cloned, the absolute "<image>.snap" when persistent).
SCRIPT_SNAP_CREATE = SH_PRELUDE + (
    'sys=$1; disk=$2; id=$3; short=$4; sd="$disk.snap"; next=$((id + 1))\n'
    'mkdir -p -- "$sd"\n'
    'prev=$(readlink -- "$sys")\n'
    'cd -- "$sd"\n'
    'if [ -e "$sd/$next" ]; then echo "Snapshot file $sd/$next already exists." >&2; exit 1; fi\n'
    'qemu-img create -q -f qcow2 -o backing_fmt=qcow2 -b "$prev" "$sd/$next"\n'
    'ln -sfnT -- "$short/$next" "$sys"\n'
)

SCRIPT_SNAP_CREATE_RAW = SH_PRELUDE + (
    'disk=$2; id=$3; sd="$disk.snap"\n'
    'mkdir -p -- "$sd"\n'
    'cp --sparse=always -- "$disk" "$sd/$id"\n'
)

SCRIPT_SNAP_REVERT = SH_PRELUDE + (
    'sys=$1; disk=$2; id=$3; short=$4; sd="$disk.snap"\n'
    'if [ ! -f "$sd/$id" ]; then echo "Snapshot $sd/$id does not exist" >&2; exit 1; fi\n'
    'if [ -f "$sd/$id.current" ]; then cur=$(cat -- "$sd/$id.current"); back="$short/${cur##*/}"\n'
    'else back="$short/$id"; fi\n'
    'active=$(readlink -f -- "$disk")\n'
    'cd -- "$sd"\n'
    't=$(mktemp "$sd/.revert-XXXXXX")\n'
    "trap 'rm -f -- \"$t\"' EXIT\n"
    'qemu-img create -q -f qcow2 -o backing_fmt=qcow2 -b "$back" "$t"\n'
    'chmod 0644 "$t"\n'
    'mv -fT -- "$t" "$active"\n'
    'trap - EXIT\n'
)

SCRIPT_SNAP_REVERT_RAW = SH_PRELUDE + (
    'disk=$2; id=$3; sd="$disk.snap"\n'
    'if [ ! -f "$sd/$id" ]; then echo "Snapshot $sd/$id does not exist" >&2; exit 1; fi\n'
    'dst=$disk\n' + SH_TEMP + 'cp --sparse=always -- "$sd/$id" "$t"\n' + SH_COMMIT
)

SCRIPT_ACTIVE = _SH_SNAP + 'echo "$active"\nls -1 -- "$snap"\n'

SCRIPT_IN_DIR = 'cd -- "$1"\nshift\nexec "$@"\n'


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _exists_on(ctx, host, path):
    rc, _out, _err = ssh_capture(ctx, host, ["test", "-e", path])
    return rc == 0


# ---------------------------------------------------------------------------
# Action cores (host "" means this machine)
# ---------------------------------------------------------------------------

def do_clone(ctx, src, host, dst, disk=None):
    """Copy ``src`` to ``host:dst``; a qcow2 disk (``disk``: its VM template) becomes an overlay as in stock."""
    disk = disk or {}
    label = "%s:%s" % (host, dst) if host else dst
    local = runs_local(ctx, host)
    with lock_for(ctx, label):
        if local:
            ssh_make_path(ctx, host, os.path.dirname(dst))
        # on a remote host, the receiver or the script makes the directory: one ssh connection in all
        if is_url(src):
            download_image(ctx, src, None if local else host, dst)
            return
        if not os.path.exists(src):
            fail("Error copying %s to %s: source does not exist" % (src, label))
        fmt = None if os.path.isdir(src) else checked_image(ctx, "", src)[0]
        if disk.get("FORMAT") == "qcow2" and disk.get("QCOW2_STANDALONE", "").lower() in ("yes", "true"):
            log(ctx, "Cloning %s in %s as a standalone qcow2" % (src, label))
            ssh_script(ctx, host, SCRIPT_STANDALONE, [dst, src, disk.get("SPARSE", "").lower(), fmt or "raw"],
                       "Error copying %s to %s" % (src, label))
            return
        if fmt and (disk.get("FORMAT") == "qcow2" or ctx.flag("QCOW2_OVERLAY")):
            if fmt == "qcow2" or disk.get("FORMAT") == "qcow2":
                log(ctx, "Creating qcow2 overlay %s backed by %s" % (label, src))
                ssh_script(ctx, host, SCRIPT_OVERLAY, [dst, src, fmt], "Error creating overlay %s of %s" % (label, src))
                return
        log(ctx, "Cloning %s in %s" % (src, label))
        if os.path.isdir(src):
            if local:
                exec_and_log(ctx, ["cp", "-a", "--sparse=always", "--", src, dst], "Error copying %s to %s" % (src, label))
                return
            fail("Error copying %s to %s: directories are only cloned locally" % (src, label))
        if local:
            copy_local(src, dst)
        elif ctx.setting("CLONE_COPY", "stream") == "host":
            ssh_script(ctx, host, SCRIPT_COPY, [src, dst], "Error copying %s to %s" % (src, label))
        else:
            copy_remote(ctx, src, host, dst)


def do_ln(ctx, src, host, dst):
    log(ctx, "Linking %s in %s" % (src, dst))
    if os.path.isfile(src) and checked_image(ctx, "", src)[0] != "raw":
        # a qcow2 image gets the snapshot layout, so that disk snapshots work (stock shared/ln)
        ssh_script(ctx, host, SCRIPT_LN_SNAP, [src, dst], "Error linking %s to %s" % (src, dst))
        return
    ssh_script(ctx, host, SCRIPT_LINK, [src, dst], "Error linking %s to %s" % (src, dst))


def do_delete(ctx, host, path, dsid=None, vmid=None, legacy=False):
    path = check_delete(ctx, path, dsid, vmid, legacy)
    log(ctx, "Deleting %s" % path)
    retries = str(int(ctx.number("DELETE_RETRIES", 10)) or 1)
    ssh_script(ctx, host, SCRIPT_DELETE, [path, retries], "Error deleting %s" % path)


def do_mv(ctx, src_host, src, dst_host, dst):
    both_local = runs_local(ctx, src_host) and runs_local(ctx, dst_host)
    if src == dst and (src_host == dst_host or both_local):
        log(ctx, "Will not move, source and destination are equal")
        return
    policy = ctx.setting("MV_TRANSFER", "auto")
    transfer = src_host != dst_host and not both_local and (
        policy == "always" or (policy == "auto" and not _exists_on(ctx, dst_host, src)))
    if not transfer:
        log(ctx, "Moving %s to %s" % (src, dst))
        ssh_script(ctx, dst_host, SCRIPT_MV, [src, dst],
                   "Error moving VM files: %s to %s in %s" % (src, dst, dst_host or "localhost"))
        return
    log(ctx, "Moving %s:%s to %s:%s" % (src_host, src, dst_host, dst))
    transfer_tree(ctx, src_host, src, dst_host, dst, "Error moving %s:%s to %s:%s" % (src_host, src, dst_host, dst))
    do_delete(ctx, src_host, src)


# ---------------------------------------------------------------------------
# OpenNebula 7.x actions
# ---------------------------------------------------------------------------

def clone(ctx, args):
    """clone fe:SRC host:DST VMID DSID"""
    src, dst, vmid = need_args(ctx, args, 4, "fe:SRC host:DST VMID DSID")[:3]
    raw_src = arg_path(src, fix=False)
    src_path = src if is_url(src) else (raw_src if is_url(raw_src) else arg_path(src))
    host, dst_path = host_path(dst)
    if not is_url(src_path) and not src_path.startswith("/"):
        fail("Path %r is not absolute" % src_path)
    disk = vm_disk(vm_document(ctx, id_arg(ctx, vmid, "VM id")), disk_id_of(dst_path))
    do_clone(ctx, src_path, host, dst_path, disk)
    grow(ctx, host, dst_path, disk)


SUPPORTED_FS = ("ext2", "ext3", "ext4", "xfs")   # stock datastore.conf SUPPORTED_FS

SCRIPT_TO_QCOW2 = SH_PRELUDE + 'dst=$1\n' + SH_TEMP + 'qemu-img convert -q -f raw -O qcow2 "$dst" "$t"\n' + SH_COMMIT


def mkimage_disk(ctx, args):
    """mkimage SIZE FORMAT host:DST VMID DSID; the disk's FS (VM template) is made on it, as stock does."""
    size, fmt, dst, vmid = need_args(ctx, args, 5, "SIZE FORMAT host:DST VMID DSID", at_least=True)[:4]
    host, dst_path = host_path(dst)
    size = number_arg(ctx, size, "size")
    fs = vm_disk(vm_document(ctx, id_arg(ctx, vmid, "VM id")), disk_id_of(dst_path)).get("FS", "")
    if not fs or fmt == "swap":
        make_image(ctx, size, fmt, host, dst_path)
        return
    if fs not in SUPPORTED_FS:
        fail("Unsupported file system type: %s. Supported types are: %s" % (fs, ",".join(SUPPORTED_FS)))
    make_image(ctx, size, fs, host, dst_path)
    if fmt == "qcow2":
        ssh_script(ctx, host, SCRIPT_TO_QCOW2, [dst_path], "Could not create image %s" % dst_path)


def mkswap_disk(ctx, args):
    """mkswap SIZE host:DST VMID DSID"""
    size, dst = need_args(ctx, args, 4, "SIZE host:DST VMID DSID", at_least=True)[:2]
    host, dst_path = host_path(dst)
    make_image(ctx, number_arg(ctx, size, "size"), "swap", host, dst_path)


def ln(ctx, args):
    """ln fe:SRC host:DST VMID DSID"""
    src, dst = need_args(ctx, args, 4, "fe:SRC host:DST VMID DSID")[:2]
    _src_host, src_path = host_path(src)
    host, dst_path = host_path(dst)
    do_ln(ctx, src_path, host, dst_path)


def mv(ctx, args):
    """mv host:SRC host:DST VMID DSID"""
    src, dst = need_args(ctx, args, 4, "host:SRC host:DST VMID DSID")[:2]
    src_host, src_path = host_path(src)
    dst_host, dst_path = host_path(dst)
    if is_disk(dst_path):
        log(ctx, "Not moving disk %s: shared datastore, the VM directory moves as a whole" % dst_path)
        return
    if src_path == dst_path:
        # cold migration, undeploy, stop, resume: the same directory seen from two hosts (stock shared/mv)
        log(ctx, "Will not move %s: the same path on a shared datastore" % dst_path)
        return
    do_mv(ctx, src_host, src_path, dst_host, dst_path)


def mvds(ctx, args):
    """mvds host:SRC fe:DST VMID DSID: the disk is already in the shared datastore."""
    need_args(ctx, args, 4, "host:SRC fe:DST VMID DSID")
    log(ctx, "Nothing to move: the datastore is shared")


def cpds(ctx, args):
    """cpds host:SRC fe:DST SNAP_ID VMID DSID"""
    src, dst, snap = need_args(ctx, args, 5, "host:SRC fe:DST SNAP_ID VMID DSID", at_least=True)[:3]
    host, src_path = host_path(src)
    _fe, dst_path = host_path(dst)
    snap_id = id_arg(ctx, snap, "snapshot id")
    if snap_id != -1:
        src_path = "%s.snap/%d" % (src_path, snap_id)
    fmt = checked_image(ctx, host, src_path, chain=True)[0]
    log(ctx, "Copying %s to datastore as %s" % (src_path, dst_path))
    ssh_script(ctx, host, SCRIPT_CPDS, [src_path, dst_path, fmt], "Could not copy image %s to %s" % (src_path, dst_path))


def delete(ctx, args):
    """delete host:PATH VMID DSID"""
    target, vmid, dsid = need_args(ctx, args, 3, "host:PATH VMID DSID", at_least=True)[:3]
    host, path = host_path(target)
    do_delete(ctx, host, path, id_arg(ctx, dsid, "datastore id"), id_arg(ctx, vmid, "VM id"))


def _noop(ctx, args):
    log(ctx, "Nothing to do on a shared datastore")


premigrate = failmigrate = _noop


def postmigrate(ctx, args):
    """postmigrate SRC_HOST DST_HOST DST_DIR VMID DSID (template on stdin).

    After a migration that also changed the system datastore (the VM's previous
    history record has another DS_ID), the old VM directory is removed on the
    source host, as stock shared/postmigrate does.
    """
    src_host, _dst_host, dst_dir, vmid, dsid = need_args(
        ctx, args, 5, "SRC_HOST DST_HOST DST_DIR VMID DSID", at_least=True)[:5]
    vmid, dsid = id_arg(ctx, vmid, "VM id"), id_arg(ctx, dsid, "datastore id")
    orig = last_history(vm_document(ctx, vmid), "DS_ID", back=1)   # "" also when there is no previous record
    if not orig or orig == str(dsid):
        return
    old_dir = os.path.normpath(os.path.join(host_path("%s:%s" % (src_host, dst_dir))[1], "..", "..",
                                            str(id_arg(ctx, orig, "previous datastore id")), str(vmid)))
    do_delete(ctx, src_host, old_dir)


def context_iso(ctx, args):
    """context FILE... host:DST VMID DSID; oned quotes the names: ``SOURCE:'name'`` is the file ``name``."""
    files = []
    for item in args[:-3]:
        path, sep, target = item.partition(":")
        if sep and not is_url(item) and len(target) >= 2 and target[0] == target[-1] == "'":
            item = "%s:%s" % (path, target[1:-1])
        files.append(item)
    context(ctx, files + args[-3:])


def _snap_layout(ctx, args, local=False, doc=None):
    """``(host, sys disk, disk holding the snapshots, snapshot id, short name, qcow2?)`` as stock reads them.

    ``local``: the .ssh variants, where the disk is always the system datastore's copy. ``doc``: the VM's
    document when the caller has read it already.
    """
    disk, snap, vmid = need_args(ctx, args, 3, "host:DISK SNAP_ID VMID", at_least=True)[:3]
    host, path = host_path(disk)
    snap_id = id_arg(ctx, snap, "snapshot id")
    disk_id = disk_id_of(path)
    info = vm_disk(doc if doc is not None else vm_document(ctx, id_arg(ctx, vmid, "VM id")), disk_id)
    sys_disk = os.path.join(os.path.dirname(path), "disk.%s" % disk_id) if disk_id is not None else path
    if local or info.get("CLONE", "YES") == "YES" or not info.get("SOURCE", "").startswith("/"):
        holder, short = sys_disk, os.path.basename(sys_disk)
    else:
        holder = short = info["SOURCE"]
    fmt = info.get("FORMAT") or ("qcow2" if _is_overlay(ctx, host, sys_disk) else "raw")
    return host, sys_disk, holder, snap_id, short + ".snap", fmt == "qcow2"


def _is_overlay(ctx, host, disk):
    rc, out, _err = ssh_capture(ctx, host, ["readlink", "--", disk])
    return rc == 0 and ".snap/" in out


def snap_create(ctx, args, local=False):
    """snap_create host:DISK SNAP_ID VMID"""
    host, sys_disk, holder, snap_id, short, qcow2 = _snap_layout(ctx, args, local)
    with lock_for(ctx, "%s:%s" % (host, sys_disk)):
        _snap(ctx, host, SCRIPT_SNAP_CREATE if qcow2 else SCRIPT_SNAP_CREATE_RAW,
              [sys_disk, holder, str(snap_id), short], "Error creating snapshot %d of %s" % (snap_id, sys_disk))


def snap_revert(ctx, args, local=False):
    """snap_revert host:DISK SNAP_ID VMID"""
    host, sys_disk, holder, snap_id, short, qcow2 = _snap_layout(ctx, args, local)
    with lock_for(ctx, "%s:%s" % (host, sys_disk)):
        _snap(ctx, host, SCRIPT_SNAP_REVERT if qcow2 else SCRIPT_SNAP_REVERT_RAW,
              [sys_disk, holder, str(snap_id), short], "Error reverting %s to snapshot %d" % (sys_disk, snap_id))


# A disk snapshot of a running VM, as stock shared/snap_create_live: the guest's filesystems frozen
# (domfsfreeze, else the domain suspended) and thawed on any exit; for qcow2 ($9 = yes) a new overlay
# $disk.snap/<id+1> on the active one, which libvirt switches the domain to (snapshot-create
# --disk-only --reuse-external, the domain snapshot XML in $8, written to a private temp file where
# stock uses a fixed name in /tmp), then the disk link; for raw a copy to $disk.snap/<id>. When libvirt
# refuses the snapshot (--atomic: the domain is unchanged) the new overlay is removed, so that a retry
# can work (stock leaves it, and every retry fails with "already exists").
# $1..$4 as SCRIPT_SNAP_CREATE, $5 the domain, $6 LIBVIRT_URI, $7 VIRSH_TIMEOUT.
SCRIPT_SNAP_CREATE_LIVE = SH_PRELUDE + (
    'sys=$1; disk=$2; id=$3; short=$4; dom=$5; uri=$6; tmo=$7; xml=$8; qcow2=$9; vmm=${10}\n'
    'sd="$disk.snap"; next=$((id + 1)); f=; made=\n'
    'mkdir -p -- "$sd"\n'
    'if [ "$vmm" = lxc ]; then\n'
    '  if sudo lxc-freeze -n "$dom"; then thaw=lxc; else echo "Could not freeze container $dom" >&2; exit 1; fi\n'
    'elif timeout "$tmo" virsh -c "$uri" domfsfreeze "$dom"; then thaw=domfsthaw\n'
    'elif virsh -c "$uri" suspend "$dom"; then thaw=resume\n'
    'else echo "Could not domfsfreeze or suspend domain" >&2; exit 1; fi\n'
    "trap 'for t in \"$f\" \"$made\"; do if [ -n \"$t\" ]; then rm -f -- \"$t\"; fi; done; "
    "if [ \"$thaw\" = lxc ]; then sudo lxc-unfreeze -n \"$dom\"; else virsh -c \"$uri\" \"$thaw\" \"$dom\"; fi' EXIT\n"
    'if [ "$qcow2" = yes ]; then\n'
    '  prev=$(readlink -- "$sys")\n'
    '  f=$(mktemp); printf "%s\\n" "$xml" >"$f"\n'
    '  cd -- "$sd"\n'
    '  if [ -e "$sd/$next" ]; then echo "Snapshot file $sd/$next already exists." >&2; exit 1; fi\n'
    '  made="$sd/$next"\n'
    '  qemu-img create -q -f qcow2 -o backing_fmt=qcow2 -b "$prev" "$sd/$next"\n'
    '  virsh -c "$uri" snapshot-create "$dom" --disk-only --atomic --no-metadata --reuse-external --xmlfile "$f"\n'
    '  made=\n'
    '  ln -sfnT -- "$short/$next" "$sys"\n'
    'else\n'
    '  cp -- "$disk" "$sd/$id"\n'
    'fi\n'
)


def _domain_snapshot_xml(doc, disk_id, snap_id, snap_path):
    """The domainsnapshot document stock writes: the disk (by TARGET) external at ``snap_path``, every other no."""
    from xml.sax.saxutils import escape

    target = vm_disk(doc, disk_id).get("TARGET", "")
    disks = []
    for item in doc.findall("./TEMPLATE/DISK"):
        name = (item.findtext("TARGET") or "").strip()
        if name == target:
            disks.append("<disk name=%s snapshot='external'><source file=%s/></disk>" % (
                xml_quoteattr(name), xml_quoteattr(snap_path)))
        else:
            disks.append("<disk name=%s snapshot='no'/>" % xml_quoteattr(name))
    return ("<domainsnapshot><name>%s</name><description>%s</description><disks>%s</disks></domainsnapshot>" % (
        escape("%s-%s" % (disk_id, snap_id)), escape("snap %s-%s" % (disk_id, snap_id)), "".join(disks)))


def snap_create_live(ctx, args, local=False):
    """snap_create_live host:DISK SNAP_ID VMID: a disk snapshot of a running VM (virsh on the host; an LXC
    container, the history's VM_MAD lxc, is frozen with ``sudo lxc-freeze`` while its raw disk is copied)."""
    vmid = need_args(ctx, args, 3, "host:DISK SNAP_ID VMID", at_least=True)[2]
    doc = vm_document(ctx, id_arg(ctx, vmid, "VM id"))
    host, sys_disk, holder, snap_id, short, qcow2 = _snap_layout(ctx, args, local, doc)
    deploy_id = (doc.findtext("DEPLOY_ID") or "").strip()
    if not deploy_id:
        fail("Error creating snapshot %d of %s: the VM has no DEPLOY_ID (is it running?)" % (snap_id, sys_disk))
    disk_id = disk_id_of(sys_disk)
    vmm = last_history(doc, "VM_MAD")
    if vmm == "lxc" and qcow2:   # stock: refused before anything runs on the host
        fail("LXC driver does not support live qcow2 snapshots")
    snap_path = "%s.snap/%d" % (holder, snap_id + 1 if qcow2 else snap_id)
    xml = _domain_snapshot_xml(doc, disk_id, snap_id, snap_path) if qcow2 else ""
    with lock_for(ctx, "%s:%s" % (host, sys_disk)):
        _snap(ctx, host, SCRIPT_SNAP_CREATE_LIVE,
              [sys_disk, holder, str(snap_id), short, deploy_id, ctx.setting("LIBVIRT_URI", "qemu:///system"),
               "%g" % ctx.number("VIRSH_TIMEOUT", 60), xml, "yes" if qcow2 else "no", "lxc" if vmm == "lxc" else "kvm"],
              "Error creating snapshot %s" % snap_path)


def snap_create_live_ssh(ctx, args):
    """snap_create_live.ssh host:DISK SNAP_ID VMID: on the system datastore's copy of the disk."""
    snap_create_live(ctx, args, local=True)


def _snap(ctx, host, script, args, msg):
    rc, _out, err = ssh_capture(ctx, host, ["sh", "-c", script, "sh"] + args)
    if rc == 3:
        fail("%s: %s" % (ctx.action, err.strip()))
    if rc != 0:
        fail("%s: %s" % (msg, err.strip()))


def _qemu_backing(ctx, host, snap_dir, name):
    import json
    rc, out, err = ssh_capture(ctx, host, ["qemu-img", "info", "-U", "--output=json", os.path.join(snap_dir, name)])
    if rc != 0:
        fail("Cannot read %s/%s: %s" % (snap_dir, name, err.strip()))
    try:
        info = json.loads(out)
    except ValueError:
        fail("Cannot read %s/%s: bad qemu-img output" % (snap_dir, name))
    return info.get("backing-filename"), info.get("backing-filename-format") or "qcow2"


def snap_delete(ctx, args):
    """snap_delete host:DISK SNAP_ID VMID: merge the snapshot into its children, then remove it."""
    disk, snap = need_args(ctx, args, 3, "host:DISK SNAP_ID VMID", at_least=True)[:2]
    host, path = host_path(disk)
    snap_id = str(id_arg(ctx, snap, "snapshot id"))
    snap_dir = path + ".snap"
    with lock_for(ctx, "%s:%s" % (host, path)):
        rc, out, err = ssh_capture(ctx, host, ["sh", "-c", SCRIPT_ACTIVE, "sh", path])
        if rc == 3:
            fail("%s: %s" % (ctx.action, err.strip()))
        if rc != 0:
            fail("Error deleting snapshot %s of %s: %s" % (snap_id, path, err.strip()))
        lines = out.split()
        active, names = lines[0], [n for n in lines[1:] if n.isdigit()]
        if snap_id == active:
            fail("Error deleting snapshot %s of %s: it is the active image" % (snap_id, path))
        if snap_id not in names:
            log(ctx, "Snapshot %s of %s does not exist, nothing to delete" % (snap_id, path))
            return
        parent, parent_fmt = _qemu_backing(ctx, host, snap_dir, snap_id)
        for name in names:
            if name == snap_id:
                continue
            backing, _fmt = _qemu_backing(ctx, host, snap_dir, name)
            if backing is not None and os.path.basename(backing) == snap_id:
                rebase = ["qemu-img", "rebase", "-q", "-f", "qcow2", "-b", parent or ""]
                if parent:
                    rebase += ["-F", parent_fmt]
                log(ctx, "Merging snapshot %s into %s" % (snap_id, name))
                ssh_exec_and_log(ctx, host, ["sh", "-c", SCRIPT_IN_DIR, "sh", snap_dir] + rebase + [name],
                                 "Error merging snapshot %s into %s" % (snap_id, name))
        ssh_exec_and_log(ctx, host, ["rm", "-f", "--", os.path.join(snap_dir, snap_id)],
                         "Error deleting snapshot %s of %s" % (snap_id, path))


SCRIPT_MONITOR = (
    'mkdir -p -- "$1"\n'
    'df -B1M -P -- "$1" | tail -n 1\n'
)


def monitor(ctx, args):
    """monitor DSID, the driver action (base64 XML) on stdin: "USED_MB=.. FREE_MB=.. TOTAL_MB=.." on stdout.

    As stock shared/monitor: df of DATASTORE_LOCATION/DSID, on the front-end, or
    on the first host of the datastore's BRIDGE_LIST when it has one.
    """
    import base64
    import sys
    import xml.etree.ElementTree as ET
    dsid = id_arg(ctx, need_args(ctx, args, 1, "DSID", at_least=True)[0], "datastore id")
    try:
        doc = ET.fromstring(base64.b64decode(sys.stdin.read().strip() or "", validate=False))
    except (ValueError, ET.ParseError) as exc:
        fail("monitor: cannot read the driver action on stdin: %s" % exc)
    location = (doc.findtext("DATASTORE_LOCATION") or "").strip()
    if not location.startswith("/"):
        fail("monitor: no DATASTORE_LOCATION in the driver action")
    bridges = (doc.findtext("DATASTORE/TEMPLATE/BRIDGE_LIST") or "").split()
    base = "%s/%d" % (location.rstrip("/"), dsid)
    out = ssh_exec_and_log(ctx, bridges[0] if bridges else "", ["sh", "-c", SCRIPT_MONITOR, "sh", base],
                           "Monitor script failed")
    fields = out.split()
    if len(fields) < 4 or not all(f.isdigit() for f in fields[1:4]):
        fail("Empty value found: %s" % out.strip())
    sys.stdout.write("USED_MB=%s FREE_MB=%s TOTAL_MB=%s\n" % (fields[2], fields[3], fields[1]))
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# .ssh variants: an image datastore of this driver serving a system datastore
# whose TM_MAD is ssh (TM_MAD_SYSTEM): the disks are local to each host.
# ---------------------------------------------------------------------------

def clone_ssh(ctx, args):
    """clone.ssh fe:SRC host:DST VMID DSID: the host copies the image from the shared datastore to its disk."""
    src, dst, vmid = need_args(ctx, args, 3, "fe:SRC host:DST VMID [DSID]", at_least=True)[:3]
    src_path = arg_path(src)
    host, dst_path = host_path(dst)
    disk = vm_disk(vm_document(ctx, id_arg(ctx, vmid, "VM id")), disk_id_of(dst_path))
    enable_local_monitoring(ctx, host, os.path.dirname(dst_path), "ssh")
    log(ctx, "Copying %s in %s" % (src_path, dst_path))
    fmt = checked_image(ctx, host, src_path)[0]
    if disk.get("FORMAT") == "qcow2":
        ssh_script(ctx, host, SCRIPT_STANDALONE, [dst_path, src_path, disk.get("SPARSE", "").lower(), fmt],
                   "Error copying %s TO %s" % (src, dst_path))
    else:
        ssh_script(ctx, host, SCRIPT_COPY, [src_path, dst_path], "Error copying %s TO %s" % (src, dst_path))
    grow(ctx, host, dst_path, disk)


def _move_local_dir(ctx, src_host, src, dst_host, dst):
    """The VM directory from one host's disk to another's (tar, holes kept), or renamed on one host."""
    if src_host == dst_host or (runs_local(ctx, src_host) and runs_local(ctx, dst_host)):
        log(ctx, "Moving %s to %s" % (src, dst))
        ssh_script(ctx, dst_host, SCRIPT_MV, [src, dst], "Error moving %s to %s in %s" % (src, dst, dst_host))
        return
    log(ctx, "Moving %s:%s to %s:%s" % (src_host, src, dst_host, dst))
    # host to host, as stock ssh/mv (HOST_TO_HOST_COPY=no relays through the front-end)
    transfer_tree(ctx, src_host, src, dst_host, dst, "Error copying disk directory to target host",
                  direct=ctx.flag("HOST_TO_HOST_COPY", True))
    do_delete(ctx, src_host, src)


def mv_ssh(ctx, args):
    """mv.ssh host:SRC host:DST VMID DSID: stock links it to ssh/mv (disks local to each host)."""
    mv_local_disks(ctx, args, _move_local_dir)


def snap_create_ssh(ctx, args):
    """snap_create.ssh host:DISK SNAP_ID VMID: on the system datastore's copy of the disk."""
    snap_create(ctx, args, local=True)


def snap_revert_ssh(ctx, args):
    """snap_revert.ssh host:DISK SNAP_ID VMID: on the system datastore's copy of the disk."""
    snap_revert(ctx, args, local=True)


# Re-point the backing files of the snapshots in the directory $1 (<disk>.snap) to "$2/<name>" ($2 the
# traversal link <disk>.snap -> .), as stock rebase_backing_files (its variables rs_* are global, sh has no locals): only a backing file that names a file of
# that directory (stock rewrites any name, and a name from elsewhere then dangles).
SH_REBASE_SNAPS = (
    'rebase_snaps() {\n'
    '  for rs_f in "$1"/*; do\n'
    '    [ -f "$rs_f" ] && [ ! -L "$rs_f" ] || continue\n'
    '    rs_b=$(qemu-img info -U --output=json "$rs_f" | sed -n \'s/^ *"backing-filename": "\\(.*\\)",\\{0,1\\}$/\\1/p\')\n'
    '    [ -n "$rs_b" ] || continue\n'
    '    rs_b=$(basename -- "$rs_b")\n'
    '    [ -f "$1/$rs_b" ] || continue\n'
    '    qemu-img rebase -q -f qcow2 -F qcow2 -u -b "$2/$rs_b" "$rs_f"\n'
    '  done\n'
    '}\n'
)

# The disk $2 of a system datastore with TM_MAD ssh gets a copy of the shared image $1 (stock ln.ssh):
# the image's snapshots ($1.snap/*, link targets copied as files) and, for qcow2 ($3), the snapshot
# layout ($2.snap/N, $2.snap/<b>.snap -> ., $2 -> <b>.snap/N, N the highest, 0 a copy of $1 when none).
SCRIPT_LN_SSH = SH_PRELUDE + SH_REBASE_SNAPS + (
    'src=$1; dst=$2; fmt=$3; sd="$src.snap"; dd="$dst.snap"; b=$(basename -- "$dst")\n'
    'mkdir -p -- "$(dirname -- "$dst")"\n'
    'if [ -d "$sd" ]; then\n'
    '  mkdir -p -- "$dd"\n'
    '  for f in "$sd"/*; do if [ -f "$f" ]; then cp -- "$f" "$dd/"; fi; done\n'
    'fi\n'
    'if [ "$fmt" = qcow2 ]; then\n'
    '  mkdir -p -- "$dd"; rm -f -- "$dd/$b.snap"; ln -s . "$dd/$b.snap"\n'
    '  rebase_snaps "$dd" "$b.snap"\n'
    '  snap=$(ls -- "$dd" | grep -E "^[0-9]+$" | sort -n | tail -n 1 || :)\n'
    '  if [ -z "$snap" ]; then snap=0; cp -- "$src" "$dd/0"; fi\n'
    '  rm -f -- "$dst"; ln -sT -- "$b.snap/$snap" "$dst"\n'
    'else\n'
    '  cp -- "$src" "$dst"\n'
    'fi\n'
)

# The disk $1 (a host's copy made by ln.ssh) goes back to the shared image $2 (stock mvds.ssh, run on
# the host, which mounts the image datastore): its snapshots move to $2.snap and, for qcow2 ($3), $2
# becomes the link <b>.snap/N to the highest one; a raw disk replaces $2.
SCRIPT_MVDS_SSH = SH_PRELUDE + SH_REBASE_SNAPS + (
    'src=$1; dst=$2; fmt=$3; sd="$src.snap"; dd="$dst.snap"; b=$(basename -- "$dst")\n'
    'if [ -d "$sd" ]; then\n'
    '  mkdir -p -- "$dd"\n'
    '  for f in "$sd"/*; do if [ -f "$f" ]; then mv -f -- "$f" "$dd/"; fi; done\n'
    'fi\n'
    'if [ "$fmt" = qcow2 ]; then\n'
    '  mkdir -p -- "$dd"; [ -L "$dd/$b.snap" ] || ln -s . "$dd/$b.snap"\n'
    '  rebase_snaps "$dd" "$b.snap"\n'
    '  snap=$(ls -- "$dd" | grep -E "^[0-9]+$" | sort -n | tail -n 1 || :)\n'
    '  rm -f -- "$dst"; ln -sT -- "$b.snap/$snap" "$dst"\n'
    'else\n'
    '  mv -fT -- "$src" "$dst"\n'
    'fi\n'
)


def ln_ssh(ctx, args):
    """ln.ssh fe:SRC host:DST VMID DSID: a persistent shared image used from a system datastore with TM_MAD ssh.

    The host copies the image (it mounts the image datastore) to its own disk; mvds.ssh moves it back.
    """
    src, dst = need_args(ctx, args, 3, "fe:SRC host:DST VMID [DSID]", at_least=True)[:2]
    src_path = arg_path(src)
    host, dst_path = host_path(dst)
    enable_local_monitoring(ctx, host, os.path.dirname(dst_path), "ssh")
    fmt = checked_image(ctx, host, src_path, chain=True)[0]   # its snapshots back it from <image>.snap
    log(ctx, "Copying %s in %s" % (src_path, dst))
    ssh_script(ctx, host, SCRIPT_LN_SSH, [src_path, dst_path, fmt], "Error copying %s to %s" % (src, dst))


def mvds_ssh(ctx, args):
    """mvds.ssh host:SRC fe:DST VMID DSID: the host's copy of a persistent image goes back to the image datastore."""
    src, dst, vmid = need_args(ctx, args, 3, "host:SRC fe:DST VMID [DSID]", at_least=True)[:3]
    host, src_path = host_path(src)
    dst_path = arg_path(dst)
    fmt = vm_disk(vm_document(ctx, id_arg(ctx, vmid, "VM id")), disk_id_of(src_path)).get("FORMAT", "")
    log(ctx, "Moving %s to datastore as %s" % (src, dst_path))
    ssh_script(ctx, host, SCRIPT_MVDS_SSH, [src_path, dst_path, fmt],
               "Error moving disk %s to %s on %s" % (src_path, dst_path, host))


ACTIONS = {
    "clone": clone,
    "ln": ln,
    "mv": mv,
    "mvds": mvds,
    "cpds": cpds,
    "delete": delete,
    "mkimage": mkimage_disk,
    "mkswap": mkswap_disk,
    "context": context_iso,
    "resize": resize_vm_disk,
    "premigrate": premigrate,
    "postmigrate": postmigrate,
    "failmigrate": failmigrate,
    "snap_create": snap_create,
    "snap_delete": snap_delete,
    "snap_revert": snap_revert,
    "monitor": monitor,
    "clone.ssh": clone_ssh,
    "mv.ssh": mv_ssh,
    "snap_create.ssh": snap_create_ssh,
    "snap_revert.ssh": snap_revert_ssh,
    "snap_delete.ssh": snap_delete,   # stock: a link to snap_delete
    "cpds.ssh": cpds,                 # the host copies its disk to the shared image datastore, as cpds
    "ln.ssh": ln_ssh,
    "mvds.ssh": mvds_ssh,
    "snap_create_live": snap_create_live,
    "snap_create_live.ssh": snap_create_live_ssh,
}
ACTIONS.update(backup.ACTIONS)   # restore: stock shared's layout (disk.N -> disk.N.snap/0; persistent: the image)


# ---------------------------------------------------------------------------
# OpenNebula 3.x protocol: tm_<action>.sh, run on the front-end
# ---------------------------------------------------------------------------

def _legacy_path(ctx, arg):
    """Path of a 3.x ``host:path`` argument, VM_RDIR mapped to VM_DIR (fix_paths)."""
    path = arg_path(arg)
    remote_dir, local_dir = ctx.setting("VM_RDIR", ""), ctx.setting("VM_DIR", "")
    if remote_dir and local_dir and (path == remote_dir or path.startswith(remote_dir.rstrip("/") + "/")):
        path = local_dir.rstrip("/") + path[len(remote_dir.rstrip("/")):]
    if not path.startswith("/"):
        fail("Path %r is not absolute" % (path,))
    return path


def legacy_clone(ctx, args):
    """tm_clone.sh SRC DST"""
    src, dst = need_args(ctx, args, 2, "SRC DST")
    source = src if is_url(src) else _legacy_path(ctx, src)
    do_clone(ctx, source, "", _legacy_path(ctx, dst))


def legacy_ln(ctx, args):
    """tm_ln.sh SRC DST"""
    src, dst = need_args(ctx, args, 2, "SRC DST")
    dst_path = _legacy_path(ctx, dst)
    ssh_make_path(ctx, "", os.path.dirname(dst_path))
    do_ln(ctx, _legacy_path(ctx, src), "", dst_path)


def legacy_mkswap(ctx, args):
    """tm_mkswap.sh SIZE DST"""
    size, dst = need_args(ctx, args, 2, "SIZE DST")
    make_image(ctx, number_arg(ctx, size, "size"), "swap", "", _legacy_path(ctx, dst))


def legacy_mkimage(ctx, args):
    """tm_mkimage.sh SIZE FSTYPE DST"""
    size, fstype, dst = need_args(ctx, args, 3, "SIZE FSTYPE DST")
    make_image(ctx, number_arg(ctx, size, "size"), fstype, "", _legacy_path(ctx, dst))


def legacy_delete(ctx, args):
    """tm_delete.sh SRC [DST]"""
    need_args(ctx, args, 1, "SRC [DST]", at_least=True)
    do_delete(ctx, "", _legacy_path(ctx, args[0]), legacy=True)


def legacy_mv(ctx, args):
    """tm_mv.sh SRC DST"""
    src, dst = need_args(ctx, args, 2, "SRC DST")
    src_path, dst_path = _legacy_path(ctx, src), _legacy_path(ctx, dst)
    if src_path == dst_path:
        log(ctx, "Will not move, source and destination are equal")
    elif os.path.isdir(src_path):
        log(ctx, "Will not move, is not saving image")
    else:
        do_mv(ctx, "", src_path, "", dst_path)


def legacy_context(ctx, args):
    """tm_context.sh FILE... DST"""
    need_args(ctx, args, 2, "FILE... DST", at_least=True)
    make_context(ctx, args[:-1], "", _legacy_path(ctx, args[-1]))


LEGACY_ACTIONS = {
    "clone": legacy_clone,
    "ln": legacy_ln,
    "mkswap": legacy_mkswap,
    "mkimage": legacy_mkimage,
    "delete": legacy_delete,
    "mv": legacy_mv,
    "context": legacy_context,
}
