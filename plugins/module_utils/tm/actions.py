# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Building blocks the drivers' actions share.

* Constant remote ``sh`` scripts. Their data arrive only as ``"$1"``,
  ``"$2"``...; no path is ever pasted into script text. A file is written
  under a temp name next to its destination and renamed into place only when
  complete (``SH_TEMP`` ... ``SH_COMMIT``).
* Checks of action arguments: numbers, filesystem types, the delete guard.
* ``pipe``: one command's stdout into another's stdin, both machines remote or
  local, with both exit codes checked; ``transfer_tree`` streams a file or a
  directory between two machines through it.
* ``make_context``: the context ISO, built on the front-end, put on the host.
* ``mkimage``, ``mkswap``, ``context``, ``resize``: the OpenNebula 7.x actions
  that are the same in every driver whose disks are files on the hosts.
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import re

from .common import (TMError, exec_and_log, fail, fix_dir_slashes, forget, host_path, is_disk, log, need_args, remote_argv,
                     run_command, runs_local, spawn, ssh_capture, ssh_exec_and_log, ssh_make_path, ssh_script)
from .copy import copy_local, copy_remote, download, is_url

# ---------------------------------------------------------------------------
# Constant remote scripts
# ---------------------------------------------------------------------------

SH_PRELUDE = "set -e\nexport PATH=/usr/sbin:/sbin:/usr/bin:/bin:$PATH\n"

# Needs $dst; leaves the temp file in $t, removed on any exit before SH_COMMIT.
SH_TEMP = (
    'd=$(dirname -- "$dst"); mkdir -p -- "$d"\n'
    't=$(mktemp "$d/.$(basename -- "$dst").tmcopy-XXXXXX")\n'
    "trap 'rm -f -- \"$t\"' EXIT\n"
    "trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP\n"
)

SH_COMMIT = 'chmod 0644 "$t"\nmv -fT -- "$t" "$dst"\ntrap - EXIT\n'

# A sparse (reflinked where possible) copy on one machine: $1 src, $2 dst.
SCRIPT_COPY = SH_PRELUDE + 'src=$1; dst=$2\n' + SH_TEMP + \
    'cp --sparse=always --reflink=auto -- "$src" "$t"\n' + SH_COMMIT

# $2 becomes a symlink to $1.
SCRIPT_LINK = SH_PRELUDE + 'mkdir -p -- "$(dirname -- "$2")"\nrm -f -- "$2"\nln -sT -- "$1" "$2"\n'

# The host probes monitor a system datastore whose directory holds .monitor (the TM_MAD
# that keeps disks local, e.g. "ssh"): $1 a directory in the datastore (the VM dir), $2 the word.
SCRIPT_LOCAL_MONITORING = (
    'm="$(dirname -- "$1")/.monitor"; mkdir -p -- "$1"\n'
    '[ "$(cat -- "$m" 2>/dev/null)" = "$2" ] || echo "$2" > "$m"\n'
)

# A new image of $1 MiB and format $2 (qcow2, swap, raw or a mkfs type) at $3.
SCRIPT_MKIMAGE = SH_PRELUDE + 'size=$1; fmt=$2; dst=$3\n' + SH_TEMP + (
    'case "$fmt" in\n'
    '  qcow2) qemu-img create -q -f qcow2 "$t" "${size}M" ;;\n'
    '  swap) truncate -s "${size}M" "$t"; mkswap -L swap "$t" >/dev/null ;;\n'
    '  raw) truncate -s "${size}M" "$t" ;;\n'
    '  *) truncate -s "${size}M" "$t"; mkfs -t "$fmt" -F "$t" >/dev/null 2>&1 || mkfs -t "$fmt" "$t" >/dev/null ;;\n'
    'esac\n'
) + SH_COMMIT

# Send the file or directory $2 of directory $1 as a tar stream, then TREE_END, but only when tar
# succeeded: a tar stream cut at a member boundary (the sender killed or failing between two files)
# unpacks without an error, so the receiver commits only when the end line follows the archive.
# tar writes whole records (-b 2048) and the receiver's tar reads whole records (-B) and no further,
# so the line is left on stdin for the receiver's shell.
TREE_END = "TM-TREE-END"
SCRIPT_SEND_TREE = SH_PRELUDE + 'tar -b 2048 -C "$1" -cSf - -- "$2"\nprintf "%s\\n" ' + TREE_END + '\n'

# On a source host: the sender script $1 for the tree $3 in directory $2, into the receiver command that follows
# (an ssh to the destination host). The pipeline's status is the receiver's, which fails unless the sender's end
# line came, so a failed sender fails the whole.
SCRIPT_PIPE_TREE = 'send=$1; dir=$2; name=$3; shift 3\nsh -c "$send" sh "$dir" "$name" | "$@"\n'

# Receive a SCRIPT_SEND_TREE stream holding the file or directory $2 on stdin; it replaces $1.
SCRIPT_RECV_TREE = SH_PRELUDE + (
    'dst=$1; name=$2\n'
    'd=$(dirname -- "$dst"); mkdir -p -- "$d"\n'
    't=$(mktemp -d "$d/.$(basename -- "$dst").tmmv-XXXXXX")\n'
    "trap 'rm -rf -- \"$t\"' EXIT\n"
    "trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP\n"
    'tar -b 2048 -B -C "$t" -xSf -\n'
    'IFS= read -r end || end=\n'
    '[ "$end" = ' + TREE_END + ' ] || { echo "the stream of $name ended early: $dst left as it was" >&2; exit 1; }\n'
    'rm -rf -- "$dst"\n'
    'mv -fT -- "$t/$name" "$dst"\n'
)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------

_NUMBER = re.compile(r"^[0-9]+$")
_ID = re.compile(r"^-?[0-9]+$")
_FS_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.]*$")


def number_arg(ctx, value, what):
    """``value`` (a string of digits) or fail naming the argument ``what``."""
    if not _NUMBER.match(str(value)):
        fail("%s: %s %r is not a number" % (ctx.action, what, value))
    return str(value)


def id_arg(ctx, value, what):
    """``value`` as an int (an OpenNebula id; -1 included) or fail naming the argument ``what``."""
    if not _ID.match(str(value)):
        fail("%s: %s %r is not a number" % (ctx.action, what, value))
    return int(value)


def image_format_arg(ctx, fmt, formats):
    """``fmt`` if it is one of ``formats`` or a plausible mkfs type (``ext4``, ``vfat``...)."""
    if fmt not in formats and not _FS_TYPE.match(fmt):
        fail("%s: format %r not supported" % (ctx.action, fmt))
    return fmt


DATASTORE_LOCATION = "/var/lib/one/datastores"


def safe_to_delete(path, dsid=None, vmid=None, locations=(DATASTORE_LOCATION,), levels=2):
    """True when ``path`` is a VM directory ``<location>/<dsid>/<vmid>`` or lies below one.

    ``path`` must be absolute and normal (no ``.`` or ``..`` component); a
    given ``vmid`` must match, a given ``dsid`` only for the VM directory
    itself: oned deletes ``<system ds dir>/<vmid>/disk.N`` with the id of the
    disk's image datastore, and the VM directory with the system datastore's.
    ``levels=1`` is the 3.x layout ``<VM_DIR>/<vmid>``, with no ``dsid``.
    """
    path = fix_dir_slashes(path) if path else ""
    parts = path.split("/")
    if not path.startswith("/") or "." in parts or ".." in parts:
        return False
    wanted = ([] if levels == 1 else [dsid]) + [vmid]
    for base in locations:
        base = fix_dir_slashes(base).rstrip("/")
        if not base or not path.startswith(base + "/"):
            continue
        rest = path[len(base) + 1:].split("/")
        if len(rest) < levels or not all(part.isdigit() for part in rest[:levels]):
            continue
        ids = [None] + wanted[1:] if levels == 2 and len(rest) > levels else wanted
        if all(want is None or str(want) == part for want, part in zip(ids, rest)):
            return True
    return False


def check_delete(ctx, path, dsid=None, vmid=None, legacy=False):
    """Fail unless :func:`safe_to_delete`: ``path`` in DATASTORE_LOCATION/<dsid>/<vmid> (3.x: VM_DIR/<vmid>).

    rc ``DATASTORE_LOCATION`` (default ``/var/lib/one/datastores``) may list
    several locations separated by ``:``, for hosts whose locations differ.
    """
    if legacy:
        locations, levels, shape = [ctx.setting("VM_DIR", "/var/lib/one")], 1, "VM_DIR/<vm id>"
    else:
        locations, levels, shape = ctx.setting("DATASTORE_LOCATION", DATASTORE_LOCATION).split(":"), 2, \
            "DATASTORE_LOCATION/<ds id>/<vm id>"
    if not safe_to_delete(path, dsid, vmid, locations, levels):
        ids = ", ".join("%s %s" % (k, v) for k, v in (("ds", dsid), ("vm", vmid)) if v is not None)
        fail("Refusing to delete %s: not inside a VM directory %s%s (%s)"
             % (path, shape, " of %s" % ids if ids else "", ":".join(locations)))
    return fix_dir_slashes(path)


# ---------------------------------------------------------------------------
# Images from users: no backing file, no external data file
# ---------------------------------------------------------------------------

# $1: an image, $2: the disk it may be a snapshot of. Prints the disk's link
# target (a line, maybe empty), then the JSON of qemu-img info of the chain.
SCRIPT_IMAGE_INFO = 'readlink -- "$2" || echo\nexec qemu-img info -U --output=json --backing-chain "$1"\n'

_SNAP_CHAIN = re.compile(r"^(.*/[^/]+\.snap)/[0-9]+$")


def _outside_files(info):
    """Files other than itself that the image ``info`` (qemu-img info JSON) reads: backing and data files."""
    found = []
    if info.get("backing-filename"):
        found.append(("a backing file", info.get("full-backing-filename") or info["backing-filename"]))
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        found.append(("an external data file", data["data-file"]))
    own = os.path.normpath(info.get("filename") or "")
    for extent in data.get("extents") or []:
        name = extent.get("filename") or ""
        if name and os.path.normpath(os.path.join(os.path.dirname(own), name)) != own:
            found.append(("an external data file", name))
    return found


def _refuse(path, what, name):
    fail("Refusing image %s: it has %s (%s). Images that read other files are not accepted: "
         "make it self-contained first (qemu-img convert -f qcow2 -O qcow2 IMAGE NEW)" % (path, what, name))


def checked_image(ctx, host, path, chain=False):
    """``(format, virtual size)`` of the image ``host:path`` (host "" or None: here), or fail.

    ``qemu-img info`` probes the format (as OpenNebula's drivers do); every
    later qemu-img command gets it with ``-f``. An image that reads another
    file is refused: a backing file (qcow2 ``-b``) or an external data file
    (qcow2 ``data_file``, VMDK extents) would hand the content of any file the
    driver's user can read (one_auth, ssh keys) to the VM or the datastore.

    ``chain=True`` accepts one thing more: the driver's own snapshot chain of
    an overlay disk (``disk.N`` a link to ``disk.N.snap/K``; ``path`` the disk
    or one of its ``disk.N.snap/K``): images inside ``disk.N.snap`` may have a
    backing file, with an explicit backing format; the chain's last image,
    the clone source, may not. A disk that is not such a link is checked as a
    user's image: a qcow2 header a guest wrote into a raw disk gets no trust.
    """
    import json
    snap = _SNAP_CHAIN.match(path) if chain else None
    disk = snap.group(1)[:-len(".snap")] if snap else path
    if chain:
        argv = ["sh", "-c", SCRIPT_IMAGE_INFO, "sh", path, disk]
    else:
        argv = ["qemu-img", "info", "-U", "--output=json", path]
    if host:
        rc, out, err = ssh_capture(ctx, host, argv)
    else:
        rc, out, err = run_command(argv, timeout=(ctx.number("COMMAND_TIMEOUT", 0) if ctx else 0) or 120)
    if rc != 0:
        fail("Cannot read image %s: %s" % (path, err.strip() or "qemu-img info failed (rc=%d)" % rc))
    top, snap_dir = path, None
    if chain:
        link, _sep, out = out.partition("\n")
        link = link.strip()
        if link.startswith(os.path.basename(disk) + ".snap/") and ".." not in link.split("/"):
            snap_dir = disk + ".snap"
            top = path if snap else os.path.join(os.path.dirname(disk), link)
    try:
        infos = json.loads(out)
        infos = infos if isinstance(infos, list) else [infos]
        fmt = infos[0]["format"]
        size = int(infos[0].get("virtual-size") or 0)
    except (ValueError, KeyError, IndexError, TypeError):
        fail("Cannot read image %s: bad qemu-img info output" % path)
    for index, info in enumerate(infos):
        outside = _outside_files(info)
        data_files = [o for o in outside if o[0] != "a backing file"]
        if data_files:
            _refuse(path, *data_files[0])
        if not info.get("backing-filename"):
            continue
        name = os.path.normpath(top if index == 0 else info.get("filename") or "")
        inside = snap_dir is not None and name.startswith(snap_dir + "/")
        if not inside or not info.get("backing-filename-format") or index == len(infos) - 1:
            _refuse(path, *outside[0])
    return fmt, size


def download_image(ctx, url, host, dst):
    """:func:`download` ``url`` to ``dst`` here (host None) or on ``host``; removed again when :func:`checked_image` refuses it."""
    download(ctx, url, host, dst)
    try:
        checked_image(ctx, host, dst)
    except TMError:
        ssh_capture(ctx, host or "", ["rm", "-f", "--", dst])
        raise


# ---------------------------------------------------------------------------
# oned's data, read as the stock scripts read it (onevm show -x)
# ---------------------------------------------------------------------------

def vm_document(ctx, vmid):
    """The VM's XML from ``onevm show -x VMID`` (as the stock scripts read it), parsed.

    As in stock, a VM that cannot be read leaves every attribute empty (an empty
    document): the action then runs with the defaults.
    """
    import xml.etree.ElementTree as ET
    rc, out, err = run_command(["onevm", "show", "-x", str(vmid)], timeout=60)
    if rc == 0:
        try:
            return ET.fromstring(out)
        except ET.ParseError as exc:
            err = "bad XML: %s" % exc
    log(ctx, "Cannot read VM %s (%s): using the defaults" % (vmid, err.strip()))
    return ET.Element("VM")


def vm_disk(doc, disk_id):
    """``{NAME: text}`` of the VM template's DISK with DISK_ID ``disk_id`` ({} when absent)."""
    for item in doc.findall("./TEMPLATE/DISK"):
        if (item.findtext("DISK_ID") or "").strip() == str(disk_id):
            return {child.tag: (child.text or "").strip() for child in item}
    return {}


def last_history(doc, name, back=0):
    # type: (xml.etree.ElementTree.Element, str, int) -> str
    """The stripped text of ``name`` in the last HISTORY record of the VM document ``doc`` ("" when absent).

    ``doc`` is :func:`vm_document`'s; ``back=1`` reads the record before the
    last (the VM's previous host and system datastore), and so on. A VM that
    could not be read (an empty document) or has too few records gives "".
    """
    records = doc.findall("./HISTORY_RECORDS/HISTORY")
    return (records[-1 - back].findtext(name) or "").strip() if len(records) > back else ""


def xml_quoteattr(value):
    """``value`` as a single-quoted XML attribute value (``'...'``), as stock's libvirt documents quote them."""
    from xml.sax.saxutils import escape  # pylint: disable=import-outside-toplevel
    return "'%s'" % escape(value, {"'": "&apos;", '"': "&quot;"})


def disk_id_of(path):
    """N of ``.../disk.N``; None for other names."""
    name = os.path.basename(path)
    if name.startswith("disk.") and name[5:].isdigit():
        return int(name[5:])
    return None


# ---------------------------------------------------------------------------
# Between machines
# ---------------------------------------------------------------------------

def pipe(src_argv, dst_argv, msg):
    """``src_argv | dst_argv``; both must succeed, else fail with ``msg`` and their stderr."""
    import subprocess
    import tempfile
    err_a = tempfile.TemporaryFile()
    err_b = tempfile.TemporaryFile()
    try:
        first = spawn(src_argv, stdout=subprocess.PIPE, stderr=err_a, stdin=subprocess.DEVNULL)
        second = spawn(dst_argv, stdin=first.stdout, stderr=err_b, stdout=subprocess.DEVNULL)
        first.stdout.close()
        rc_b = second.wait()
        rc_a = first.wait()
        forget(first)
        forget(second)
        if rc_a or rc_b:
            errors = []
            for handle in (err_a, err_b):
                handle.seek(0)
                errors.append(handle.read().decode("utf-8", "replace").strip())
            fail("%s: %s" % (msg, "; ".join(e for e in errors if e) or "rc=%s/%s" % (rc_a, rc_b)))
    finally:
        err_a.close()
        err_b.close()


def transfer_tree(ctx, src_host, src, dst_host, dst, msg=None, direct=False, dst_ctx=None, dst_address=None):
    """Copy file or directory ``src_host:src`` to ``dst_host:dst`` with tar (holes kept), atomically.

    The sender (SCRIPT_SEND_TREE) streams ``src`` as tar and an end line; the
    receiver (SCRIPT_RECV_TREE) unpacks it next to ``dst`` and renames it into
    place only when the end line came: never after a sender that failed or was
    stopped, even between two files of the tree.

    Between two hosts that are not this machine the stream goes through this
    machine, unless ``direct``: then the source host runs the sender into its
    own ssh to the destination (SCRIPT_PIPE_TREE), as stock ssh/mv does, and
    the data never crosses the front-end. That ssh uses ``dst_ctx``'s ssh
    settings (default: ``ctx``'s) and reaches ``dst_host`` at ``dst_address``
    (default: its name).
    """
    msg = msg or "Error copying %s:%s to %s:%s" % (src_host, src, dst_host, dst)
    send_args = [os.path.dirname(src) or "/", os.path.basename(src)]
    recv_argv = ["sh", "-c", SCRIPT_RECV_TREE, "sh", dst, os.path.basename(src)]
    if direct and src_host != dst_host and not runs_local(ctx, src_host) and not runs_local(ctx, dst_host):
        receiver = remote_argv(dst_ctx or ctx, dst_address or dst_host, recv_argv)
        exec_and_log(ctx, remote_argv(ctx, src_host, ["sh", "-c", SCRIPT_PIPE_TREE, "sh", SCRIPT_SEND_TREE]
                                      + send_args + receiver), msg)
        return
    sender = remote_argv(ctx, src_host, ["sh", "-c", SCRIPT_SEND_TREE, "sh"] + send_args)
    pipe(sender, remote_argv(ctx, dst_host, recv_argv), msg)


# ---------------------------------------------------------------------------
# Moving the VM directory of a system datastore whose disks are local
# ---------------------------------------------------------------------------

SCRIPT_READ_MONITOR = 'if [ -r "$1/.monitor" ]; then cat -- "$1/.monitor" 2>/dev/null || :; fi\n'


def _same_storage(ctx, src_host, dst_host, directory):
    """Whether ``directory`` on both hosts is one storage: a temp file made on one is seen on the other."""
    marker = ssh_exec_and_log(ctx, dst_host, ["mktemp", "-p", directory], "Error checking %s on %s" % (
        directory, dst_host)).strip()
    try:
        rc, _out, _err = ssh_capture(ctx, src_host, ["test", "-f", marker])
        return rc == 0
    finally:
        ssh_capture(ctx, dst_host, ["rm", "-f", "--", marker])


def mv_local_disks(ctx, args, move):
    """mv host:SRC host:DST VMID DSID of a system datastore with local disks, as stock ssh/mv.

    ``move(ctx, src_host, src, dst_host, dst)`` moves the VM directory.

    oned moves each disk, then the VM directory: the disks move with the
    directory (a disk move does nothing). In host-failure recovery (LCM states
    60, 61) the source host is gone: nothing moves. The same directory seen by
    two host names (shared storage) does not move either.
    """
    src, dst, vmid = need_args(ctx, args, 4, "host:SRC host:DST VMID DSID", at_least=True)[:3]
    src_host, src_path = host_path(src)
    dst_host, dst_path = host_path(dst)
    if is_disk(dst_path):
        log(ctx, "Not moving disk %s: it moves with the VM directory" % dst_path)
        return
    lcm = (vm_document(ctx, id_arg(ctx, vmid, "VM id")).findtext("LCM_STATE") or "").strip()
    if lcm in ("60", "61"):
        log(ctx, "Not moving files from %s in FT mode" % src_host)
        return
    src_dir, dst_dir = os.path.dirname(src_path), os.path.dirname(dst_path)
    _rc, marker, _err = ssh_capture(ctx, src_host, ["sh", "-c", SCRIPT_READ_MONITOR, "sh", src_dir])
    enable_local_monitoring(ctx, dst_host, dst_dir, marker.strip())
    if src_dir == dst_dir and src_host != dst_host and _same_storage(ctx, src_host, dst_host, dst_dir):
        log(ctx, "Not moving %s to %s, they are the same path" % (src, dst))
        return
    move(ctx, src_host, src_path, dst_host, dst_path)


# ---------------------------------------------------------------------------
# Context ISO
# ---------------------------------------------------------------------------

def iso_tool():
    """The argv prefix of the first ISO 9660 builder found (context disks)."""
    import shutil
    for tool in ("genisoimage", "mkisofs"):
        path = shutil.which(tool)
        if path:
            return [path]
    path = shutil.which("xorriso")
    if path:
        return [path, "-as", "mkisofs"]
    fail("No genisoimage, mkisofs or xorriso found to build the context ISO")


def make_context(ctx, files, host, dst):
    """Build the context ISO from ``files`` (``path``, ``path:name`` or URLs) and put it at ``host:dst``.

    Directories are copied in whole. The ISO is a plain file on the host:
    copied locally when the host is this machine, else streamed over ssh
    (the receiver makes the directory, so one connection in all).
    """
    import shutil
    import tempfile
    log(ctx, "Generating context block device at %s" % dst)
    tool = iso_tool()
    work = tempfile.mkdtemp(prefix="one-context-")
    try:
        content = os.path.join(work, "iso")
        os.mkdir(content)
        for item in files:
            if is_url(item):
                name = os.path.basename(item.split("?", 1)[0].rstrip("/")) or "download"
                download(ctx, item, None, os.path.join(content, name))
                continue
            path, _sep, target = item.partition(":")
            name = os.path.basename(target) if target else os.path.basename(path.rstrip("/"))
            if not name or name in (".", ".."):
                fail("Bad context file name in %r" % item)
            if not os.path.exists(path):
                fail("Error copying %s to the context ISO: no such file" % path)
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(content, name), symlinks=True)
            else:
                shutil.copyfile(path, os.path.join(content, name))
        iso = os.path.join(work, "context.iso")
        exec_and_log(ctx, tool + ["-quiet", "-o", iso, "-V", "CONTEXT", "-J", "-R", content], "Error creating iso fs")
        if runs_local(ctx, host):
            ssh_make_path(ctx, host, os.path.dirname(dst))
            copy_local(iso, dst, mode=0o644)
        else:
            copy_remote(ctx, iso, host, dst, mode=0o644)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------
# Image files
# ---------------------------------------------------------------------------

def enable_local_monitoring(ctx, host, vm_dir, tm_mad):
    """Make ``vm_dir`` and mark its datastore for the hosts' probes (``<ds>/.monitor`` = tm_mad), as stock."""
    ssh_script(ctx, host, SCRIPT_LOCAL_MONITORING, [vm_dir, tm_mad], "Error creating %s/.monitor at %s" % (
        os.path.dirname(vm_dir), host or "localhost"))


def make_image(ctx, size, fmt, host, dst):
    """A new image file of ``size`` MiB: qcow2, raw, swap or a filesystem (mkfs type)."""
    image_format_arg(ctx, fmt, ("raw", "qcow2", "swap"))
    log(ctx, "Making image of %sM and type %s at %s" % (size, fmt, dst))
    ssh_script(ctx, host, SCRIPT_MKIMAGE, [size, fmt, dst], "Could not create image %s" % dst)


# ---------------------------------------------------------------------------
# OpenNebula 7.x actions, the same in every driver whose disks are files
# ---------------------------------------------------------------------------

def mkimage(ctx, args):
    """mkimage SIZE FORMAT host:DST VMID DSID"""
    size, fmt, dst = need_args(ctx, args, 5, "SIZE FORMAT host:DST VMID DSID", at_least=True)[:3]
    host, dst_path = host_path(dst)
    make_image(ctx, number_arg(ctx, size, "size"), fmt, host, dst_path)


def mkswap(ctx, args):
    """mkswap SIZE host:DST VMID DSID"""
    size, dst = need_args(ctx, args, 4, "SIZE host:DST VMID DSID", at_least=True)[:2]
    host, dst_path = host_path(dst)
    make_image(ctx, number_arg(ctx, size, "size"), "swap", host, dst_path)


def context(ctx, args):
    """context FILE... host:DST VMID DSID"""
    need_args(ctx, args, 3, "FILE... host:DST VMID DSID", at_least=True)
    host, dst_path = host_path(args[-3])
    make_context(ctx, args[:-3], host, dst_path)


def grow(ctx, host, path, disk):
    """A disk whose SIZE is above its image's ORIGINAL_SIZE grows to SIZE MiB (stock clone)."""
    size, original = disk.get("SIZE", ""), disk.get("ORIGINAL_SIZE", "")
    if not (size.isdigit() and original.isdigit() and int(size) > int(original)):
        return
    fmt = checked_image(ctx, host, path, chain=True)[0]
    argv = ["qemu-img", "resize", "-q", "-f", fmt]
    if disk.get("SPARSE", "").lower() == "no":
        argv.append("--preallocation=falloc")
    log(ctx, "Growing %s to %sM" % (path, size))
    ssh_exec_and_log(ctx, host, argv + [path, "%sM" % size], "Error resizing image %s" % path)


def resize_vm_disk(ctx, args):
    """resize host:DISK SIZE VMID; a running VM's disk (LCM state 62) is resized by the KVM driver."""
    disk, size, vmid = need_args(ctx, args, 3, "host:DISK SIZE VMID", at_least=True)[:3]
    doc = vm_document(ctx, id_arg(ctx, vmid, "VM id"))
    host, path = host_path(disk)
    if (doc.findtext("LCM_STATE") or "").strip() == "62":
        log(ctx, "Not resizing disk %s for running virt. machine directly" % path)
        return
    fmt = checked_image(ctx, host, path, chain=True)[0]
    argv = ["qemu-img", "resize", "-q", "-f", fmt]
    if vm_disk(doc, disk_id_of(path)).get("SPARSE", "").lower() == "no":
        argv.append("--preallocation=falloc")
    log(ctx, "Resizing %s to %sM" % (path, number_arg(ctx, size, "size")))
    ssh_exec_and_log(ctx, host, argv + [path, "%sM" % size], "Error resizing image %s" % path)


def resize(ctx, args):
    """resize host:DISK SIZE VMID"""
    disk, size = need_args(ctx, args, 3, "host:DISK SIZE VMID", at_least=True)[:2]
    host, path = host_path(disk)
    fmt = checked_image(ctx, host, path, chain=True)[0]
    log(ctx, "Resizing %s to %sM" % (path, number_arg(ctx, size, "size")))
    ssh_exec_and_log(ctx, host, ["qemu-img", "resize", "-q", "-f", fmt, path, "%sM" % size],
                     "Error resizing image %s" % path)
