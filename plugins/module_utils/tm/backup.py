# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups and restores of VM disks that are files on the hosts, as OpenNebula 7.4's stock ``shared`` and ``ssh``.

oned's KVM driver runs a backup as three steps (``one_vmm_exec.rb``), the VM's XML on the TM actions' stdin:

* ``prebackup`` (``prebackup_live`` for a running VM) ``host:VM_DIR DISK_ID:..:DISK_ID DEPLOY_ID BJ_ID VM_ID DS_ID``
  leaves in the backup directory (``VM_DIR/backup``, or ``BACKUP_BASE_PATH/VM_ID/backup`` when datastore.conf
  sets it) ``vm.xml`` (the VM's XML, base64), ``disk.N.0`` (each disk, flattened to qcow2) and ``disk.tpm.0``;
* the backup datastore's ``backup`` action uploads that directory;
* ``postbackup`` (``postbackup_live``) removes it; for a live backup it first merges the writes the VM made
  meanwhile back into its disks (``virsh blockcommit --pivot``).

Incremental backups (``BACKUP_CONFIG MODE=INCREMENT``) with ``INCREMENT_MODE=SNAPSHOT`` of qcow2 disks, powered off
and live, keep stock's layout (``backup_kvm.rb``'s ``:snapshot``), so that the stock backup datastores upload them
and stock's restore reads them:

* the first backup of a chain (``LAST_INCREMENT_ID`` -1) is a full ``disk.N.0``; the disk becomes
  ``disk.N -> disk.N.snap/1``, an empty overlay on ``disk.N.snap/0`` (a disk that is a file, the ssh layout, is
  moved to ``disk.N.snap/0`` first; live, with ``virsh blockcopy``);
* backup N (``LAST_INCREMENT_ID`` N-1) takes the overlay ``disk.N.snap/N`` alone (no backing file) as
  ``disk.N.N``, commits it into ``disk.N.snap/0`` and moves the disk to a new overlay ``disk.N.snap/N+1``; live,
  ``snapshot-create-as --reuse-external --no-metadata`` first moves the domain to the new overlay and
  ``virsh blockcommit`` merges the old one.

Incremental backups with ``INCREMENT_MODE=CBT`` (changed block tracking, oned's default for ``MODE=INCREMENT``) of
qcow2 disks of a powered-off VM, as stock's ``backup_full`` with ``:cbt`` and ``backup_nbd``; the disk keeps its
layout, its qcow2 bitmap ``one-<VM_ID>-<N>`` records what the guest wrote since backup N:

* the first backup of a chain is a full ``disk.N.0``; every bitmap of the disk is removed, ``one-<VM_ID>-0`` added;
* backup N exports the disk read-only with ``qemu-nbd -B one-<VM_ID>-<N-1>`` (socket ``VM_DIR/disk.N.socket``),
  lists the dirty extents with ``nbdinfo --map=qemu:dirty-bitmap:...`` and pulls them with ``qemu-io``
  copy-on-read into ``disk.N.N``, a qcow2 file over the export; the qemu-nbd is stopped and its socket removed on
  any exit (it is in the backup's process group, which a cancel stops too); then every bitmap but
  ``one-<VM_ID>-<N-1>`` is removed and ``one-<VM_ID>-<N>`` added.

Live, with ``INCREMENT_MODE=CBT``, libvirt keeps those bitmaps as the domain's checkpoints (stock's
``backup_full_live`` with ``:cbt``, ``define_parent``, ``backup_nbd_live``, ``clean_checkpoints``):

* the first backup deletes every checkpoint of the domain (those only the first disk's bitmaps know are redefined
  first), removes the bitmaps left, takes the disk-only snapshot and creates checkpoint ``one-<VM_ID>-0`` with it;
  postbackup_live merges the snapshot back as for a full live backup;
* backup N redefines checkpoint ``one-<VM_ID>-<N-1>`` if libvirt does not know it (a powered-off backup made it)
  and runs a pull-mode ``virsh backup-begin`` from it, creating ``one-<VM_ID>-<N>``; libvirt exports each disk on
  ``VM_DIR/backup.socket`` (export name the TARGET) with the bitmap ``backup-<TARGET>``, whose dirty extents are
  pulled as above; the job is aborted (``domjobinfo``/``domjobabort``) on any exit once the guest was frozen; then
  the checkpoints before N-1 are deleted. postbackup_live only removes the backup files.

The backup runs confined as stock's ``cmd_confinement`` confines it: in the systemd user slice
``backup.<DS_ID>.slice`` (``~/.config/systemd/user``, through ``systemd-run --user``) when the backup datastore sets
``<DS_MAD>_CPU_QUOTA``, ``_MEMORY_MAX_MB``, ``_MAX_RIOPS`` or ``_MAX_WIOPS``, else with its ``<DS_MAD>_NICE`` and
``_IONICE``.

``restore host:VM_DIR VM_ID IMAGE_ID INCREMENT_ID DISK_ID`` asks the backup datastore's own ``ls -i`` for the
backup's disk URLs, downloads them with the stock ``downloader.sh`` and puts them in place of the VM's disks. For
an increment the URL names the chain up to it (rsync: ``0:<id>,1:<id>...``), which ``downloader.sh`` rebuilds and
merges into one qcow2 file on the backup server: what is downloaded is the whole disk, as for a full backup.

Where these differ from stock, on purpose:

* every disk is read with an explicit format (convert's ``-f``) after its chain was checked: the
  template's raw disks as raw, a qcow2 disk only when each file it reads (backing files) lies in a datastore.
  Stock lets qemu-img probe the format, so a guest that writes a qcow2 header with a backing file such as
  ``/var/lib/one/.one/one_auth`` into its raw disk gets that file into its backup;
* a downloaded backup disk that reads other files is refused before it replaces a disk;
* interactive backups and raw disks in an incremental backup are refused with an error that names the setting,
  before a file is touched;
* a CBT increment file has no backing file (stock leaves in it ``nbd+unix:///...?socket=...``, the export it was
  pulled through, which is gone); a CBT increment of a disk without the chain's bitmap ``one-<VM_ID>-<N-1>`` (or
  with it inconsistent) is refused before a file is touched (stock's qemu-nbd fails midway);
* an increment whose disk is not on the overlay the last backup left (``disk.N.snap/<LAST_INCREMENT_ID+1>``) is
  refused (stock copies and commits whatever ``disk.N`` is); ``LAST_INCREMENT_ID`` absent or empty counts as -1;
* a live increment gives the disks not in the backup ``snapshot=no`` (stock leaves them to libvirt's default), and
  postbackup_live after the first live SNAPSHOT-mode backup leaves the new overlay alone (stock runs a full live
  backup's ``blockcommit --pivot``/``snapshot-delete`` there too);
* the backup datastore's confinement values are checked before a file is touched (stock's ``Integer()`` fails
  after the backup directory was made, and writes a zero or negative limit into the slice);
* a ``postbackup_live`` whose block commit fails keeps the overlays (the running VM writes to them), where
  stock stops there too but reports success without saying which disk is left on its overlay.
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import base64
import json
import os
import posixpath
import re
import sys
from collections import namedtuple

from .actions import DATASTORE_LOCATION, SH_PRELUDE, _outside_files, checked_image, id_arg, vm_disk, xml_quoteattr
from .common import (Interrupted, TMError, fail, host_path, log_error, need_args, run_command, ssh_capture,
                     ssh_exec_and_log)
from .copy import fetch_command

DATASTORE_CONF = "/var/lib/one/remotes/etc/datastore/datastore.conf"
_MAD = re.compile(r"^[A-Za-z0-9_-]+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9_.:+-]+$")

# ---------------------------------------------------------------------------
# Host scripts (data only as "$1", "$2"...)
# ---------------------------------------------------------------------------

# Shared by the backup scripts: $bck (backup dir), $dir (VM dir), $tpm (yes: save the TPM state), $dom,
# the confinement $nice and $ionice (numbers or empty). The VM's XML (base64) comes on stdin. The process
# group is written to $bck/.pgid so that a cancelled backup (SIGTERM to the action) can stop it.
_SH_BACKUP_DIR = (
    'rm -rf -- "$bck"; mkdir -p -- "$bck"\n'
    'ps -o pgid= -p $$ | tr -d " " >"$bck/.pgid"\n'
    'cat >"$bck/vm.xml"\n'
    'if [ "$tpm" = yes ]; then\n'
    '  if sudo -n -l 2>/dev/null | grep -q vtpm_setup; then sudo -n /var/tmp/one/vtpm_setup backup "$dom" "$dir"; fi\n'
    '  tar zcf "$bck/disk.tpm.0" -C "$dir" tpm\n'
    'fi\n'
    'c=\n'
    'if [ -n "$nice" ]; then c="nice -n $nice"; fi\n'
    'if [ -n "$ionice" ]; then c="$c ionice -c2 -n$ionice"; fi\n'
)

# prebackup: $1 bck, $2 dir, $3 tpm, $4 dom, $5 nice, $6 ionice, then pairs DISK_ID FORMAT.
SCRIPT_PREBACKUP = SH_PRELUDE + 'bck=$1; dir=$2; tpm=$3; dom=$4; nice=$5; ionice=$6; shift 6\n' + _SH_BACKUP_DIR + (
    'while [ $# -gt 0 ]; do\n'
    '  $c qemu-img convert -m 4 -f "$2" -O qcow2 -U "$dir/disk.$1" "$bck/disk.$1.0"\n'
    '  shift 2\n'
    'done\n'
    'rm -f -- "$bck/.pgid"\n'
)

# prebackup_live: as SCRIPT_PREBACKUP, then $7 LIBVIRT_URI, $8 the domain snapshot name, $9 FS_FREEZE (AGENT,
# SUSPEND or NONE), ${10} the checkpoint document stock leaves in $dir/tmp (unused by a full backup), then, for
# every disk of the VM in template order, TARGET DISK_ID FORMAT (DISK_ID "-": the disk is not in the backup).
# The domain gets an external disk-only snapshot on empty overlays in $dir/tmp (the guest frozen meanwhile,
# thawed on any exit), then each backed-up disk's file, which the domain no longer writes, is converted.
# postbackup_live merges the overlays back.
# Shared by the live backup scripts. _SH_GUEST: guest_freeze freezes the guest for FS_FREEZE $freeze (AGENT:
# domfsfreeze, SUSPEND: suspend), guest_thaw undoes it if it was done; $uri, $dom. _SH_LIVE_TMP: an empty $dir/tmp.
# _SH_LIVE_ARGS: the first ten arguments of SCRIPT_PREBACKUP_LIVE read, the backup directory made, the guest
# thawed on any exit.
_SH_GUEST = (
    'thaw=\n'
    'guest_freeze() {\n'
    '  case "$freeze" in\n'
    '    AGENT) virsh --connect "$uri" domfsfreeze "$dom"; thaw=domfsthaw ;;\n'
    '    SUSPEND) virsh --connect "$uri" suspend "$dom"; thaw=resume ;;\n'
    '  esac\n'
    '}\n'
    'guest_thaw() {\n'
    '  if [ -n "$thaw" ]; then virsh --connect "$uri" "$thaw" "$dom"; thaw=; fi\n'
    '}\n'
)
_SH_LIVE_TMP = 'tmp="$dir/tmp"\nrm -rf -- "$tmp"; mkdir -p -- "$tmp"\n'
_SH_LIVE_ARGS = SH_PRELUDE + (
    'bck=$1; dir=$2; tpm=$3; dom=$4; nice=$5; ionice=$6; uri=$7; name=$8; freeze=$9; ckpt=${10}; shift 10\n'
) + _SH_LIVE_TMP + _SH_BACKUP_DIR + _SH_GUEST + "trap 'guest_thaw' EXIT\n"

# Shared by the live CBT scripts (stock backup_kvm.rb's checkpoints, redefine_checkpoints, clean_checkpoints): $uri,
# $dom, $tmp, $vid (VM_ID), $ckdisks (the <disks> of the backup's targets), $firstbm (the checkpoint ids of the first
# disk's bitmaps one-<VM>-<ID>, read before the backup). ck_ids: $ids, libvirt's checkpoint ids (one-<VM>-<ID>, as
# stock matches them); clean all|P: the first disk's bitmaps libvirt does not know are redefined, then every
# checkpoint (all) or those before P is deleted; $gone names them.
_SH_CHECKPOINTS = (
    'has() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }\n'
    'ck_ids() {\n'
    '  out=$(virsh --connect "$uri" checkpoint-list --name "$dom")\n'
    '  ids=$(printf "%s\\n" "$out" | sed -n "s/^.*one-[0-9][0-9]*-0*\\([0-9][0-9]*\\).*$/\\1/p" | tr "\\n" " ")\n'
    '}\n'
    'redefine() {\n'
    '  for cid in "$@"; do\n'
    '    printf "<domaincheckpoint>\\n    <name>one-%s-%s</name>\\n    <creationTime>%s</creationTime>\\n    %s\\n'
    '</domaincheckpoint>\\n" "$vid" "$cid" "$(date +%s)" "$ckdisks" >"$tmp/checkpoint.xml"\n'
    '    virsh --connect "$uri" checkpoint-create --xmlfile "$tmp/checkpoint.xml" --redefine "$dom"\n'
    '  done\n'
    '}\n'
    'clean() {\n'
    '  ck_ids; new=\n'
    '  for cid in $firstbm; do if ! has "$cid" "$ids"; then new="$new $cid"; ids="$ids $cid"; fi; done\n'
    '  redefine $new\n'
    '  gone=\n'
    '  for cid in $ids; do\n'
    '    if [ "$1" = all ] || [ "$cid" -lt "$1" ]; then\n'
    '      virsh --connect "$uri" checkpoint-delete "$dom" "one-$vid-$cid"; gone="$gone one-$vid-$cid"\n'
    '    fi\n'
    '  done\n'
    '}\n'
)


def _prebackup_live_script(cbt):
    """The live full backup's script; ``cbt``: INCREMENT_MODE=CBT's first backup (stock's clean_checkpoints(all),
    the disks' bitmaps removed, the checkpoint one-<VM_ID>-0 created with the snapshot)."""
    return _SH_LIVE_ARGS + ((
        'vid=$1; ckdisks=$2; firstbm=$3; shift 3\n'
    ) + _SH_CHECKPOINTS + (
        'clean all\n'
        'n=$1; shift\n'
        'while [ "$n" -gt 0 ]; do\n'
        '  id=$1; k=$2; shift 2; n=$((n - 1))\n'
        '  while [ "$k" -gt 0 ]; do\n'
        '    if ! has "$1" "$gone"; then qemu-img bitmap --remove "$(readlink -f -- "$dir/disk.$id")" "$1"; fi\n'
        '    shift; k=$((k - 1))\n'
        '  done\n'
        'done\n'
    ) if cbt else '') + (
        'set -- "$@" -END-\n'
        'spec=; srcs=\n'
        'while [ "$1" != -END- ]; do\n'
        '  tgt=$1; id=$2; fmt=$3; shift 3\n'
        '  if [ "$id" = - ]; then set -- "$@" --diskspec "$tgt,snapshot=no"; continue; fi\n'
        '  : >"$tmp/overlay_$id.qcow2"\n'
        '  src=$(readlink -f -- "$dir/disk.$id")\n'
        '  srcs="$srcs$id $fmt $src\n"\n'
        '  set -- "$@" --diskspec "$tgt,file=$tmp/overlay_$id.qcow2"\n'
        'done\n'
        'shift\n'
        'printf "%s" "$ckpt" >"$tmp/checkpoint.xml"\n'
        'guest_freeze\n'
        'virsh --connect "$uri" snapshot-create-as --name "$name" --disk-only --atomic "$@" "$dom"\n'
    ) + (
        'virsh --connect "$uri" checkpoint-create --xmlfile "$tmp/checkpoint.xml" "$dom"\n' if cbt else ''
    ) + (
        'guest_thaw\n'
        'printf "%s" "$srcs" | while read -r id fmt src; do\n'
        '  $c qemu-img convert -m 4 -f "$fmt" -O qcow2 -U "$src" "$bck/disk.$id.0"\n'
        'done\n'
        'rm -f -- "$bck/.pgid"\n'
    )


SCRIPT_PREBACKUP_LIVE = _prebackup_live_script(False)

# INCREMENT_MODE=CBT, live, first backup: as SCRIPT_PREBACKUP_LIVE, with after ${10}: VM_ID, the <disks> of the
# backup's targets, the first disk's checkpoint ids, then N and N records DISK_ID K BITMAP... (each disk's bitmaps,
# removed unless their checkpoint was deleted), then the TARGET DISK_ID FORMAT triples.
SCRIPT_PREBACKUP_CBT_LIVE_FULL = _prebackup_live_script(True)

# postbackup: $1 the backup dir, $2 a directory to remove too (BACKUP_BASE_PATH/VM_ID) or "".
SCRIPT_POSTBACKUP = 'rm -rf -- "$1"\nif [ -n "$2" ]; then rm -rf -- "$2"; fi\n'

# postbackup_live: $1 bck, $2 dir, $3 extra dir or "", $4 LIBVIRT_URI, $5 dom, $6 snapshot name, then pairs
# TARGET DISK_ID. Each disk's overlay is committed into it and the domain pivots back; only when all
# succeeded are the snapshot's metadata and the overlays removed.
SCRIPT_POSTBACKUP_LIVE = SH_PRELUDE + (
    'bck=$1; dir=$2; extra=$3; uri=$4; dom=$5; name=$6; shift 6\n'
    'while [ $# -gt 0 ]; do\n'
    '  virsh --connect "$uri" blockcommit --base "$dir/disk.$2" --active --pivot --keep-relative "$dom" "$1"\n'
    '  shift 2\n'
    'done\n'
    'virsh --connect "$uri" snapshot-delete --snapshotname "$name" --metadata "$dom"\n'
    'rm -rf -- "$dir/tmp" "$bck"\n'
    'if [ -n "$extra" ]; then rm -rf -- "$extra"; fi\n'
)

# The backup confined in a systemd user slice (stock's systemd_cmd): $1 the slice's name, $2 its unit file, then the
# command. The unit file is written under the lock stock takes, the user manager reloaded, and the command run in the
# slice with its stdin, stdout, stderr and exit status. The session's PATH finds systemd-run, as stock's does.
SCRIPT_SLICE = (
    'set -e\n'
    'name=$1; text=$2; shift 2\n'
    'dir=~/.config/systemd/user\n'
    'mkdir -p -- "$dir"\n'
    '(flock -w 180 9 || exit 1\n'
    ' printf "%s\\n" "$text" >"$dir/$name"\n'
    ' systemctl --user daemon-reload\n'
    ') 9>"$dir/.lock"\n'
    'exec systemd-run --user --quiet --pipe --collect --wait --slice="$name" "$@"\n'
)

# A cancelled backup: stop the process group recorded in $1/.pgid.
SCRIPT_CANCEL = 'p=$(cat -- "$1/.pgid" 2>/dev/null) || exit 0\ncase "$p" in ""|*[!0-9]*) exit 0 ;; esac\n' \
    'kill -TERM "-$p" 2>/dev/null || :\n'   # no "--": dash's kill does not take it

# restore, shared layout (stock shared/restore's replace_np): $1 the downloaded file, $2 the VM dir, $3 DISK_ID.
# The disk becomes disk.N -> disk.N.snap/0, the backup.
SCRIPT_RESTORE_SHARED = SH_PRELUDE + (
    'new=$1; dir=$2; id=$3; sd="$dir/disk.$id.snap"\n'
    'rm -rf -- "$sd"; mkdir -p -- "$sd"\n'
    'mv -fT -- "$new" "$sd/0"\n'
    'rm -f -- "$dir/disk.$id"\n'
    'ln -sfT -- "disk.$id.snap/0" "$dir/disk.$id"\n'
    'ln -sfnT -- . "$sd/disk.$id.snap"\n'
)

# restore, shared layout, a persistent disk (stock replace_p): $1 the downloaded file, $2 the VM dir, $3 DISK_ID,
# $4 the image's SOURCE. The image itself is replaced; its snapshots go.
SCRIPT_RESTORE_PERSISTENT = SH_PRELUDE + (
    'new=$1; dir=$2; id=$3; src=$4; sd="$src.snap"\n'
    'rm -rf -- "$sd"; mkdir -p -- "$sd"\n'
    'mv -fT -- "$new" "$src"\n'
    'ln -sfT -- "$src" "$sd/0"\n'
    'ln -sfnT -- . "$sd/$(basename -- "$sd")"\n'
    'rm -f -- "$dir/disk.$id"\n'
    'ln -sfT -- "$sd/0" "$dir/disk.$id"\n'
    'rm -rf -- "$dir/disk.$id.snap"\n'
)

# restore, ssh layout (stock ssh/restore): $1 the downloaded file, $2 the VM dir, $3 DISK_ID.
SCRIPT_RESTORE_LOCAL = SH_PRELUDE + (
    'new=$1; dir=$2; id=$3\n'
    'rm -rf -- "$dir/disk.$id.snap"\n'
    'mv -fT -- "$new" "$dir/disk.$id"\n'
)

# restore of the TPM state (stock restore_tpm_sh): $1 the downloaded tar, $2 the VM dir.
SCRIPT_RESTORE_TPM = SH_PRELUDE + 'rm -rf -- "$2/tpm"\ntar zxf "$1" -C "$2" tpm\nrm -f -- "$1"\n'


# ---------------------------------------------------------------------------
# Incremental backups, INCREMENT_MODE=SNAPSHOT (stock backup_kvm.rb's :snapshot layout)
# ---------------------------------------------------------------------------
#
#   first backup (LAST_INCREMENT_ID -1)        backup N (LAST_INCREMENT_ID N-1)
#   backup/disk.I.0 (the disk, flattened)      backup/disk.I.N (disk.I.snap/N alone: no backing file)
#   disk.I -> disk.I.snap/1                    disk.I -> disk.I.snap/N+1
#   disk.I.snap/0 (the disk)                   disk.I.snap/0 (disk.I.snap/N committed into it)
#   disk.I.snap/1 (empty, backing file 0)      disk.I.snap/N+1 (empty, backing file 0)
#
# Each disk is a record of positional parameters; how the first backup finds the disk (HOW):
#   folder: disk.I is a file (ssh layout): it becomes disk.I.snap/0;
#   zero:   disk.I already is disk.I.snap/0 (or an image's .snap/0);
#   commit: disk.I is a later snapshot: it is committed into its backing file first.

# Where each disk.I is: for every DISK_ID ($2...), NUL-separated: id, kind (link, file or missing), the link's
# target (one level), the resolved path.
SCRIPT_DISK_LINKS = (
    'dir=$1; shift\n'
    'for id in "$@"; do\n'
    '  p="$dir/disk.$id"; l=; k=file\n'
    '  if [ -L "$p" ]; then k=link; l=$(readlink -- "$p"); fi\n'
    '  if [ ! -e "$p" ]; then k=missing; fi\n'
    '  r=$(readlink -f -- "$p") || r=\n'
    '  printf "%s\\0%s\\0%s\\0%s\\0" "$id" "$k" "$l" "$r"\n'
    'done\n'
)

# Read as qcow2 (never probed): the chain of $1.
SCRIPT_QCOW2_CHAIN_INFO = 'exec qemu-img info -U -f qcow2 --output=json --backing-chain "$1"\n'

# powered off, first backup: $1..$6 as SCRIPT_PREBACKUP, then records ID HOW SRC SNAP SLINK BASE (SRC the disk's
# resolved path, SNAP its snapshot directory, SLINK what disk.I links to, BASE the backing file of the new overlay).
SCRIPT_PREBACKUP_SNAPSHOT_FULL = SH_PRELUDE + 'bck=$1; dir=$2; tpm=$3; dom=$4; nice=$5; ionice=$6; shift 6\n' + \
    _SH_BACKUP_DIR + (
        'while [ $# -gt 0 ]; do\n'
        '  id=$1; how=$2; src=$3; snap=$4; slink=$5; base=$6; shift 6; disk="$dir/disk.$id"\n'
        '  $c qemu-img convert -m 4 -f qcow2 -O qcow2 -U "$src" "$bck/disk.$id.0"\n'
        '  case "$how" in\n'
        '    folder) mkdir -- "$snap"; mv -f -- "$disk" "$snap/0"; ln -s -- "disk.$id.snap/0" "$disk" ;;\n'
        '    commit) $c qemu-img commit -q -f qcow2 "$src"; rm -f -- "$src" ;;\n'
        '  esac\n'
        '  qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$snap/1"\n'
        '  rm -f -- "$disk"; ln -s -- "$slink/1" "$disk"\n'
        'done\n'
        'rm -f -- "$bck/.pgid"\n'
    )

# powered off, backup N: $1..$6 as SCRIPT_PREBACKUP, $7 N, then records ID SRC SNAP SLINK BFILE (SRC the overlay
# disk.I is, disk.I.snap/N; BFILE its backing file). The overlay, alone, is the increment; it is then committed.
SCRIPT_PREBACKUP_SNAPSHOT_INCREMENT = SH_PRELUDE + (
    'bck=$1; dir=$2; tpm=$3; dom=$4; nice=$5; ionice=$6; b=$7; shift 7; n=$((b + 1))\n'
) + _SH_BACKUP_DIR + (
    'while [ $# -gt 0 ]; do\n'
    '  id=$1; src=$2; snap=$3; slink=$4; bfile=$5; shift 5; disk="$dir/disk.$id"; out="$bck/disk.$id.$b"\n'
    '  $c cp --sparse=never -- "$src" "$out"\n'
    '  qemu-img rebase -q -U -u -f qcow2 -F qcow2 -b "" "$out"\n'
    '  $c qemu-img commit -q -f qcow2 "$src"\n'
    '  qemu-img create -q -f qcow2 -F qcow2 -b "$bfile" "$snap/$n"\n'
    '  rm -f -- "$src" "$disk"; ln -s -- "$slink/$n" "$disk"\n'
    'done\n'
    'rm -f -- "$bck/.pgid"\n'
)

# Live: $1..$10 as SCRIPT_PREBACKUP_LIVE ($8: the domain snapshot's name for the first backup, N for backup N),
# then K, K records TGT ID HOW SRC SNAP SLINK (first backup) or TGT ID SRC SNAP NAME SLINK (backup N; NAME:
# disk.I.snap/NAME is the overlay), then the --diskspec arguments. The domain is frozen for the snapshot only.
_SH_LIVE_HEAD = _SH_LIVE_ARGS + (
    'snapshot() {\n'
    '  shift $((1 + 6 * $1))\n'
    '  guest_freeze\n'
    '  if [ "$first" = yes ]; then\n'
    '    virsh --connect "$uri" snapshot-create-as --name "$name" --disk-only --atomic "$@" --no-metadata '
    '--reuse-external "$dom"\n'
    '  else\n'
    '    virsh --connect "$uri" snapshot-create-as --disk-only --atomic --reuse-external --no-metadata "$@" "$dom"\n'
    '  fi\n'
    '  guest_thaw\n'
    '}\n'
)

SCRIPT_PREBACKUP_SNAPSHOT_LIVE_FULL = _SH_LIVE_HEAD + (
    'prepare() {\n'
    '  k=$1; shift\n'
    '  while [ "$k" -gt 0 ]; do\n'
    '    tgt=$1; id=$2; how=$3; src=$4; snap=$5; k=$((k - 1)); shift 6; disk="$dir/disk.$id"\n'
    '    case "$how" in\n'
    '      folder) mkdir -- "$snap"; : >"$snap/0"\n'
    '        virsh --connect "$uri" blockcopy --path "$disk" --dest "$snap/0" --pivot --format qcow2 "$dom"\n'
    '        rm -f -- "$disk"; ln -s -- "disk.$id.snap/0" "$disk" ;;\n'
    '      commit) virsh --connect "$uri" blockcommit --active --pivot --wait --top "$src" --base "$snap/0" '
    '"$dom" "$tgt"\n'
    '        rm -f -- "$src" "$disk"; ln -s -- "$snap/0" "$disk" ;;\n'
    '    esac\n'
    '    qemu-img create -q -f qcow2 -F qcow2 -b "$snap/0" "$snap/1"\n'
    '  done\n'
    '}\n'
    'export_disks() {\n'
    '  k=$1; shift\n'
    '  while [ "$k" -gt 0 ]; do\n'
    '    id=$2; slink=$6; k=$((k - 1)); shift 6; disk="$dir/disk.$id"\n'
    '    $c qemu-img convert -m 4 -f qcow2 -O qcow2 -U "$(readlink -f -- "$disk")" "$bck/disk.$id.0"\n'
    '    rm -f -- "$disk"; ln -s -- "$slink/1" "$disk"\n'
    '  done\n'
    '}\n'
    'prepare "$@"\n'
    'printf "%s" "$ckpt" >"$tmp/checkpoint.xml"\n'
    'first=yes\n'
    'snapshot "$@"\n'
    'export_disks "$@"\n'
    'rm -f -- "$bck/.pgid"\n'
)

SCRIPT_PREBACKUP_SNAPSHOT_LIVE_INCREMENT = _SH_LIVE_HEAD + (
    'b=$name; n=$((b + 1))\n'
    'prepare() {\n'
    '  k=$1; shift\n'
    '  while [ "$k" -gt 0 ]; do\n'
    '    snap=$4; nm=$5; k=$((k - 1)); shift 6\n'
    '    qemu-img create -q -f qcow2 -F qcow2 -b "$snap/$nm" "$snap/$n"\n'
    '  done\n'
    '}\n'
    'export_disks() {\n'
    '  k=$1; shift\n'
    '  while [ "$k" -gt 0 ]; do\n'
    '    tgt=$1; id=$2; src=$3; snap=$4; nm=$5; slink=$6; k=$((k - 1)); shift 6\n'
    '    disk="$dir/disk.$id"; out="$bck/disk.$id.$b"\n'
    '    $c cp --sparse=never -- "$src" "$out"\n'
    '    qemu-img rebase -q -U -u -f qcow2 -F qcow2 -b "" "$out"\n'
    '    virsh --connect "$uri" blockcommit --wait --top "$snap/$nm" --base "$snap/0" "$dom" "$tgt"\n'
    '    rm -f -- "$src" "$disk"; ln -s -- "$slink/$n" "$disk"\n'
    '  done\n'
    '}\n'
    'prepare "$@"\n'
    'first=no\n'
    'snapshot "$@"\n'
    'export_disks "$@"\n'
    'rm -f -- "$bck/.pgid"\n'
)

# postbackup_live of a SNAPSHOT-mode backup: $1 bck, $2 dir, $3 extra dir or "". The overlays stay: they are the
# disks' next increments.
SCRIPT_POSTBACKUP_SNAPSHOT_LIVE = 'rm -rf -- "$2/tmp" "$1"\nif [ -n "$3" ]; then rm -rf -- "$3"; fi\n'


# ---------------------------------------------------------------------------
# Incremental backups, INCREMENT_MODE=CBT, powered off (stock backup_kvm.rb's backup_full with :cbt, backup_nbd)
# ---------------------------------------------------------------------------
#
# The disk keeps its layout; its qcow2 bitmap one-<VM_ID>-<N> records the clusters written since backup N.
#   first backup (LAST_INCREMENT_ID -1): backup/disk.I.0 the disk, flattened; every bitmap of the disk removed,
#     one-<VM_ID>-0 added;
#   backup N (LAST_INCREMENT_ID N-1): a read-only qemu-nbd exports the disk with the bitmap one-<VM_ID>-<N-1>;
#     backup/disk.I.N, a qcow2 file on that export, pulls (copy-on-read) the extents nbdinfo --map reports dirty,
#     then loses the export as backing file; every bitmap but one-<VM_ID>-<N-1> removed, one-<VM_ID>-<N> added.
# Each disk is a record ID SRC K BITMAP... (SRC VM_DIR/disk.I, as its chain was checked, then the K bitmaps to remove).

# Reads longer than this are split (qemu's limit for one request is 2 GiB; stock splits at 1 GiB too).
MAX_READ = 1 << 30

# Shared by the CBT scripts: $new, the bitmap to add. marks(): records ID SRC K BITMAP...; removes the bitmaps
# named, then adds $new.
_SH_CBT_MARKS = (
    'marks() {\n'
    '  while [ $# -gt 0 ]; do\n'
    '    src=$2; k=$3; shift 3\n'
    '    while [ "$k" -gt 0 ]; do qemu-img bitmap -f qcow2 --remove "$src" "$1"; shift; k=$((k - 1)); done\n'
    '    qemu-img bitmap -f qcow2 --add "$src" "$new"\n'
    '  done\n'
    '}\n'
)

# Shared by the CBT increments: pull_changes URI MAP OUT: OUT, a qcow2 file over the NBD export URI, pulls
# (copy-on-read) the extents the export's MAP (qemu:dirty-bitmap:NAME) marks dirty, then loses URI as its backing
# file. Reads longer than MAX_READ are split.
_SH_PULL = (
    'max=' + str(MAX_READ) + '\n'
    'reads=\'$4 == "dirty" { o = $1; l = $2; while (l > 0) { n = l > max ? max : l; \'\n'
    'reads="$reads"\'printf "read -q %.0f %.0f\\n", o, n; o += n; l -= n } }\'\n'
    'pull_changes() {\n'
    '  nbdinfo --map="$2" "$1" >"$bck/.extents"\n'
    '  awk -v max="$max" "$reads" "$bck/.extents" >"$bck/.reads"\n'
    '  qemu-img create -q -f qcow2 -F raw -b "$1" "$3"\n'
    '  $c qemu-io -C -t none -i native -f qcow2 "$3" <"$bck/.reads" >/dev/null\n'
    '  qemu-img rebase -q -u -f qcow2 -b "" "$3"\n'
    '  rm -f -- "$bck/.extents" "$bck/.reads"\n'
    '}\n'
)

# powered off, first backup: $1..$6 as SCRIPT_PREBACKUP, $7 the bitmap to add, then the records.
SCRIPT_PREBACKUP_CBT_FULL = SH_PRELUDE + 'bck=$1; dir=$2; tpm=$3; dom=$4; nice=$5; ionice=$6; new=$7; shift 7\n' + \
    _SH_BACKUP_DIR + _SH_CBT_MARKS + (
        'convert() {\n'
        '  while [ $# -gt 0 ]; do\n'
        '    id=$1; src=$2; k=$3; shift $((3 + k))\n'
        '    $c qemu-img convert -m 4 -f qcow2 -O qcow2 -U "$src" "$bck/disk.$id.0"\n'
        '  done\n'
        '}\n'
        'convert "$@"\n'
        'marks "$@"\n'
        'rm -f -- "$bck/.pgid"\n'
    )

# powered off, backup N: $1..$6 as SCRIPT_PREBACKUP, $7 N, $8 the bitmap of backup N-1, $9 the bitmap to add, then
# the records. The qemu-nbd (socket VM_DIR/disk.I.socket) is stopped and its socket removed on any exit; it is in
# the script's process group, which a cancelled backup stops (SCRIPT_CANCEL).
SCRIPT_PREBACKUP_CBT_INCREMENT = SH_PRELUDE + (
    'bck=$1; dir=$2; tpm=$3; dom=$4; nice=$5; ionice=$6; b=$7; map=$8; new=$9; shift 9\n'
    'pid=; sock=\n'
    'stop_nbd() {\n'
    '  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || :; wait "$pid" 2>/dev/null || :; pid=; fi\n'
    '  if [ -n "$sock" ]; then rm -f -- "$sock"; sock=; fi\n'
    '}\n'
    "trap 'stop_nbd' EXIT\n"
    "trap 'exit 129' HUP\n"
    "trap 'exit 130' INT\n"
    "trap 'exit 143' TERM\n"
) + _SH_BACKUP_DIR + _SH_CBT_MARKS + _SH_PULL + (
    'pull() {\n'
    '  while [ $# -gt 0 ]; do\n'
    '    id=$1; src=$2; k=$3; shift $((3 + k)); out="$bck/disk.$id.$b"\n'
    '    sock="$dir/disk.$id.socket"; rm -f -- "$sock"\n'
    '    $c qemu-nbd -r -k "$sock" -f qcow2 -t -B "$map" "$src" &\n'
    '    pid=$!; i=0\n'
    '    while [ ! -S "$sock" ]; do\n'
    '      if ! kill -0 "$pid" 2>/dev/null; then pid=; echo "qemu-nbd of $src failed" >&2; exit 1; fi\n'
    '      i=$((i + 1)); if [ "$i" -gt 600 ]; then echo "qemu-nbd of $src did not start" >&2; exit 1; fi\n'
    '      sleep 0.1\n'
    '    done\n'
    '    pull_changes "nbd+unix:///?socket=$sock" "qemu:dirty-bitmap:$map" "$out"\n'
    '    stop_nbd\n'
    '  done\n'
    '}\n'
    'pull "$@"\n'
    'marks "$@"\n'
    'rm -f -- "$bck/.pgid"\n'
)


# live, backup N (stock define_parent, backup_nbd_live, clean_checkpoints): $1..$6 as SCRIPT_PREBACKUP, $7
# LIBVIRT_URI, $8 FS_FREEZE, $9 VM_ID, ${10} N, ${11} N-1, ${12} the <disks> of the backup's targets, ${13} the first
# disk's checkpoint ids, ${14} the backup document, ${15} the checkpoint document, then records TARGET DISK_ID SIZE_MB.
# libvirt's pull-mode backup (backup-begin, with the new checkpoint one-<VM>-<N>) exports each disk on
# $dir/backup.socket with the bitmap backup-<TARGET> (the changes since one-<VM>-<N-1>); the job is stopped on any
# exit once the guest was frozen (stock's ensure). The scratch files keep stock's name (scracth.I.qcow2).
SCRIPT_PREBACKUP_CBT_LIVE_INCREMENT = SH_PRELUDE + (
    'bck=$1; dir=$2; tpm=$3; dom=$4; nice=$5; ionice=$6; uri=$7; freeze=$8; vid=$9; b=${10}; p=${11}\n'
    'ckdisks=${12}; firstbm=${13}; bxml=${14}; cxml=${15}; shift 15\n'
) + _SH_LIVE_TMP + _SH_BACKUP_DIR + _SH_GUEST + _SH_CHECKPOINTS + _SH_PULL + (
    'job=\n'
    'stop_job() {\n'
    '  job=\n'
    '  info=$(virsh --connect "$uri" domjobinfo "$dom")\n'
    '  jt=$(printf "%s\\n" "$info" | sed -n "s/^Job type:[[:space:]]*//p" | sed "s/[[:space:]]*$//")\n'
    '  op=$(printf "%s\\n" "$info" | sed -n "s/^Operation:[[:space:]]*//p" | sed "s/[[:space:]]*$//")\n'
    '  if [ -n "$jt" ] && [ "$jt" != None ] && [ "$op" = Backup ]; then\n'
    '    virsh --connect "$uri" domjobabort "$dom"\n'
    '  fi\n'
    '}\n'
    'cleanup() {\n'
    '  guest_thaw || :\n'
    '  if [ -n "$job" ]; then stop_job || :; fi\n'
    '}\n'
    "trap 'cleanup' EXIT\n"
    "trap 'exit 129' HUP\n"
    "trap 'exit 130' INT\n"
    "trap 'exit 143' TERM\n"
    'ck_ids\n'
    'if has "$b" "$ids"; then\n'
    '  virsh --connect "$uri" checkpoint-delete --checkpointname "one-$vid-$b" "$dom" ||\n'
    '    virsh --connect "$uri" checkpoint-delete --checkpointname "one-$vid-$b" --metadata "$dom"\n'
    'fi\n'
    'if ! has "$p" "$ids"; then redefine "$p"; fi\n'
    'job=yes\n'
    'guest_freeze\n'
    'set -- "$@" -END-\n'
    'while [ "$1" != -END- ]; do\n'
    '  tgt=$1; id=$2; size=$3; shift 3\n'
    '  qemu-img create -q -f qcow2 "$tmp/scracth.$id.qcow2" "${size}M"\n'
    '  set -- "$@" "$tgt" "$id"\n'
    'done\n'
    'shift\n'
    'printf "%s" "$bxml" >"$tmp/backup.xml"\n'
    'printf "%s" "$cxml" >"$tmp/checkpoint.xml"\n'
    'virsh --connect "$uri" backup-begin --reuse-external --backupxml "$tmp/backup.xml" '
    '--checkpointxml "$tmp/checkpoint.xml" "$dom"\n'
    'guest_thaw\n'
    'while [ $# -gt 0 ]; do\n'
    '  pull_changes "nbd+unix:///$1?socket=$dir/backup.socket" "qemu:dirty-bitmap:backup-$1" "$bck/disk.$2.$b"\n'
    '  shift 2\n'
    'done\n'
    'stop_job\n'
    'clean "$p"\n'
    'rm -f -- "$bck/.pgid"\n'
)


# ---------------------------------------------------------------------------
# oned's data
# ---------------------------------------------------------------------------

def ruby_base64(text):
    """``Base64.encode64(text)`` as Ruby writes it (60 characters a line), then the newline of stock's ``echo``:
    the backup's vm.xml is byte for byte the one stock writes."""
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return "".join(data[i:i + 60] + "\n" for i in range(0, len(data), 60)) + "\n"


def read_vm_xml(ctx):
    """``(text as read, document)`` of the VM's XML on stdin (as oned's KVM driver sends it; base64 accepted)."""
    import xml.etree.ElementTree as ET
    raw = sys.stdin.read()
    text = raw.strip()
    if text and not text.startswith("<"):
        try:
            text = base64.b64decode(text).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            pass
    try:
        doc = ET.fromstring(text)
    except ET.ParseError as exc:
        fail("%s: cannot read the VM's XML on stdin: %s" % (ctx.action, exc))
    if doc.tag != "VM":
        fail("%s: expected the VM's XML on stdin, got <%s>" % (ctx.action, doc.tag))
    return (raw if raw.strip().startswith("<") else text), doc


def _show(ctx, kind, ident):
    """The XML document of ``one<kind> show -x ID``; fails with oned's error."""
    import xml.etree.ElementTree as ET
    rc, out, err = run_command(["one%s" % kind, "show", "-x", str(ident)], timeout=60)
    if rc != 0:
        fail("%s: cannot read %s %s: %s" % (ctx.action, kind, ident, err.strip() or "rc=%d" % rc))
    try:
        return out, ET.fromstring(out)
    except ET.ParseError as exc:
        fail("%s: cannot read %s %s: bad XML: %s" % (ctx.action, kind, ident, exc))


def remotes_dir(ctx):
    """The remotes tree the action runs from (``.../remotes``, whose ``tm/<driver>`` holds the action)."""
    if ctx.driver_dir:
        return os.path.dirname(os.path.dirname(os.path.abspath(ctx.driver_dir)))
    return os.path.dirname(os.path.dirname(DATASTORE_CONF))


def backup_base_path(ctx):
    """BACKUP_BASE_PATH as stock's ``Datastore.load_env`` sets it: datastore.conf, else the environment."""
    value = None
    conf = os.path.join(remotes_dir(ctx), "etc", "datastore", "datastore.conf")
    try:
        with open(conf) as handle:
            for line in handle:
                match = re.match(r'^\s*(?:export\s+)?BACKUP_BASE_PATH\s*=\s*"?([^"\n]*)"?\s*$', line)
                if match:
                    value = match.group(1)
    except (IOError, OSError):
        pass
    if value is None:
        value = os.environ.get("BACKUP_BASE_PATH")
    if not value:
        return None
    if not value.startswith("/") or ".." in value.split("/"):
        fail("BACKUP_BASE_PATH %r must be an absolute path without '..'" % value)
    return os.path.normpath(value)


def backup_dirs(ctx, vm_dir, vmid):
    """``(backup dir, directory postbackup removes too or "")``."""
    base = backup_base_path(ctx)
    if base:
        return os.path.join(base, str(vmid), "backup"), os.path.join(base, str(vmid))
    return os.path.join(vm_dir, "backup"), ""


def _config(doc, name):
    return (doc.findtext("./BACKUPS/BACKUP_CONFIG/%s" % name) or "").strip()


BackupPlan = namedtuple("BackupPlan", "snapshot backup_id parent_id cbt")
BackupPlan.__new__.__defaults__ = (False,)


def backup_plan(ctx, doc, strict=True):
    """What the backup of the VM ``doc`` is, as stock's KVMDomain reads BACKUP_CONFIG: ``snapshot`` (MODE=INCREMENT
    with INCREMENT_MODE=SNAPSHOT), ``cbt`` (MODE=INCREMENT with any other INCREMENT_MODE: CBT, oned's default),
    ``backup_id`` (the N of ``disk.I.N``) and ``parent_id`` (-1: a full backup).

    ``strict``: what this driver does not do (INTERACTIVE=YES) fails here, before a file is touched.
    """
    if strict and _config(doc, "INTERACTIVE").upper() == "YES":
        fail("%s: interactive backups (BACKUP_CONFIG INTERACTIVE=YES) are not supported by this driver (they wait "
             "for an external backup server to pull the disks through OneBEX)" % ctx.action)
    if _config(doc, "MODE").upper() != "INCREMENT":
        return BackupPlan(False, 0, -1)
    snapshot = (_config(doc, "INCREMENT_MODE").upper() or "CBT") == "SNAPSHOT"
    text = _config(doc, "LAST_INCREMENT_ID") or "-1"
    if not re.match(r"^-?[0-9]+$", text) or int(text) < -1:
        fail("%s: BACKUP_CONFIG LAST_INCREMENT_ID %r is not a number from -1 up" % (ctx.action, text))
    return BackupPlan(snapshot, int(text) + 1, int(text), not snapshot)


def check_backup_mode(ctx, doc):
    """The backup's plan; what this driver does not do fails here, before a file is touched."""
    return backup_plan(ctx, doc)


Confinement = namedtuple("Confinement", "nice ionice slice")


def _datastore_number(ctx, ds, dsid, mad, key, low, high):
    """``<DS_MAD>_<key>`` of the backup datastore: None when unset (absent, empty or -1), else a checked int."""
    value = ""
    if mad:
        value = (ds.findtext("./TEMPLATE/%s_%s" % (mad, key)) or "").strip()
    if value in ("", "-1"):
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        fail("%s: datastore %s: %s_%s=%r is not a number from %d %s" % (
            ctx.action, dsid, mad, key, value, low, "up" if high is None else "to %d" % high))
    return number


def confinement(ctx, doc, vm_dir=""):
    """How the backup is confined, as stock's ``cmd_confinement`` reads the backup datastore: a systemd user slice
    ``backup.<DS_ID>.slice`` when any of ``<DS_MAD>_CPU_QUOTA`` (%), ``_MEMORY_MAX_MB``, ``_MAX_RIOPS`` or
    ``_MAX_WIOPS`` (on the device of ``vm_dir``) is set: ``slice`` is ``(name, unit file text)``; else ``nice`` and
    ``ionice`` from ``<DS_MAD>_NICE``/``_IONICE`` ("" when unset)."""
    dsid = _config(doc, "LAST_DATASTORE_ID")
    if not dsid or not dsid.isdigit():
        return Confinement("", "", None)
    _text, ds = _show(ctx, "datastore", dsid)
    mad = (ds.findtext("./DS_MAD") or "").strip().upper()
    cpu, mem, riops, wiops = [_datastore_number(ctx, ds, dsid, mad, key, 1, None)
                              for key in ("CPU_QUOTA", "MEMORY_MAX_MB", "MAX_RIOPS", "MAX_WIOPS")]
    if (cpu, mem, riops, wiops) != (None,) * 4:
        device = posixpath.normpath(vm_dir)
        text = "[Slice]\nCPUQuota=%s\nMemoryMax=%s\nIOReadIOPSMax=%s\nIOWriteIOPSMax=%s\n" % (
            "" if cpu is None else "%d%%" % cpu, "" if mem is None else "%dM" % mem,
            "" if riops is None else "%s %d" % (device, riops), "" if wiops is None else "%s %d" % (device, wiops))
        return Confinement("", "", ("backup.%s.slice" % dsid, text))
    nice, ionice = [_datastore_number(ctx, ds, dsid, mad, key, low, high)
                    for key, low, high in (("NICE", -20, 19), ("IONICE", 0, 7))]
    return Confinement("" if nice is None else str(nice), "" if ionice is None else str(ionice), None)


# ---------------------------------------------------------------------------
# The disks' formats, checked
# ---------------------------------------------------------------------------

SCRIPT_CHAIN_INFO = 'exec qemu-img info -U --output=json --backing-chain "$1"\n'


def _inside(path, locations):
    path = os.path.normpath(path)
    return any(path.startswith(os.path.normpath(loc).rstrip("/") + "/") for loc in locations)


def _locations(ctx, vm_dir):
    return [os.path.dirname(os.path.dirname(vm_dir)), ctx.setting("DATASTORE_LOCATION", DATASTORE_LOCATION)]


def _checked_chain(ctx, host, vm_dir, path, script=SCRIPT_CHAIN_INFO):
    """qemu-img info of every file the image ``path`` reads (``script``: probed or qcow2); fails unless each
    backing file lies in a datastore (the VM dir's own datastore included) and there is nothing else."""
    rc, out, err = ssh_capture(ctx, host, ["sh", "-c", script, "sh", path])
    if rc != 0:
        fail("%s: cannot read disk %s: %s" % (ctx.action, path, err.strip() or "qemu-img info failed"))
    try:
        chain = json.loads(out)
        chain = chain if isinstance(chain, list) else [chain]
        chain[0]["format"]   # pylint: disable=pointless-statement
    except (ValueError, KeyError, IndexError, TypeError):
        fail("%s: cannot read disk %s: bad qemu-img info output" % (ctx.action, path))
    locations = _locations(ctx, vm_dir)
    for item in chain:
        for what, name in _outside_files(item):
            if what != "a backing file":
                fail("%s: refusing disk %s: it has %s (%s)" % (ctx.action, path, what, name))
            if not _inside(name, locations):
                fail("%s: refusing disk %s: its chain reads %s, which is outside the datastores (%s)"
                     % (ctx.action, path, name, ", ".join(locations)))
    return chain


def disk_format(ctx, host, vm_dir, disk_id, info):
    """The format to read ``vm_dir/disk.N`` with: raw when the template says so; else what qemu-img finds,
    provided every file the chain reads is in a datastore (the VM dir's own datastore included)."""
    driver = (info.get("DRIVER") or info.get("FORMAT") or "").lower()
    if driver == "raw":
        return "raw"
    path = os.path.join(vm_dir, "disk.%s" % disk_id)
    fmt = _checked_chain(ctx, host, vm_dir, path)[0]["format"]
    if fmt not in ("raw", "qcow2"):
        fail("%s: disk %s is %s; backups take raw and qcow2 disks" % (ctx.action, path, fmt))
    return fmt


# Where a disk is, as stock's QemuImg (backup_image.rb) reads it: ``path`` the file (links resolved), ``name`` its
# name in the snapshot directory ``snap``, ``slink`` the directory disk.N's link names ("" when disk.N is a file).
DiskLayout = namedtuple("DiskLayout", "disk_id is_link path name snap slink")


def disk_layouts(ctx, host, vm_dir, ids):
    """``{DISK_ID: DiskLayout}`` of the disks ``ids`` of the VM in ``vm_dir`` on ``host``."""
    rc, out, err = ssh_capture(ctx, host, ["sh", "-c", SCRIPT_DISK_LINKS, "sh", vm_dir] + list(ids))
    fields = out.split("\0")[:-1]
    if rc != 0 or len(fields) != 4 * len(ids):
        fail("%s: cannot read the disks in %s: %s" % (ctx.action, vm_dir, err.strip() or "rc=%d" % rc))
    layouts = {}
    for i in range(0, len(fields), 4):
        disk_id, kind, link, real = fields[i:i + 4]
        if kind == "missing" or not real.startswith("/") or "\n" in real + link:
            fail("%s: disk %s: %s/disk.%s is missing" % (ctx.action, disk_id, vm_dir, disk_id))
        if kind == "link":
            target = link if link.startswith("/") else "%s/%s" % (vm_dir, link)
            layouts[disk_id] = DiskLayout(disk_id, True, real, posixpath.basename(link), posixpath.dirname(target),
                                          posixpath.dirname(link))
        else:
            layouts[disk_id] = DiskLayout(disk_id, False, real, "disk.%s" % disk_id,
                                          "%s/disk.%s.snap" % (vm_dir, disk_id), "")
    return layouts


def _backing_file(ctx, host, vm_dir, layout):
    """The backing file of the file disk N is (``full-backing-filename``), checked; fails when there is none."""
    chain = _checked_chain(ctx, host, vm_dir, layout.path, SCRIPT_QCOW2_CHAIN_INFO)
    name = chain[0].get("full-backing-filename") or chain[0].get("backing-filename")
    if not name:
        fail("%s: disk %s: %s has no backing file to commit into" % (ctx.action, layout.disk_id, layout.path))
    return name


def snapshot_layouts(ctx, host, vm_dir, doc, ids, plan):
    """The disks of a SNAPSHOT-mode backup, checked before a file is touched: qcow2 (read as qcow2, chain in the
    datastores) and, for backup N, each disk on the overlay backup N-1 left (``disk.I.snap/N``)."""
    for disk_id in ids:
        info = vm_disk(doc, disk_id)
        if (info.get("DRIVER") or info.get("FORMAT") or "").lower() == "raw":
            fail("%s: disk %s is raw; incremental backups (BACKUP_CONFIG MODE=INCREMENT, INCREMENT_MODE=SNAPSHOT) "
                 "take qcow2 disks only" % (ctx.action, disk_id))
        _checked_chain(ctx, host, vm_dir, os.path.join(vm_dir, "disk.%s" % disk_id), SCRIPT_QCOW2_CHAIN_INFO)
    layouts = disk_layouts(ctx, host, vm_dir, ids)
    if plan.parent_id >= 0:
        for disk_id in ids:
            layout = layouts[disk_id]
            if not layout.is_link or layout.name != str(plan.backup_id):
                fail("%s: disk %s is not on the overlay the last backup left (%s/disk.%s.snap/%d) but on %s: the "
                     "backup chain (LAST_INCREMENT_ID=%d) does not match the disk; start a new chain with a full "
                     "backup (onevm backup --reset)" % (ctx.action, disk_id, vm_dir, disk_id, plan.backup_id,
                                                        layout.path, plan.parent_id))
    return layouts


def cbt_records(ctx, host, vm_dir, doc, ids, plan, vmid, live=False):
    """``(records, bitmaps)`` of a CBT-mode backup: the records ``ID SRC K BITMAP...`` (SRC ``VM_DIR/disk.I``, then
    the K bitmaps that go) and each disk's bitmap names, checked before a file is touched: each disk qcow2 (read as
    qcow2, chain in the datastores) and, for backup N, holding a consistent bitmap ``one-<VM_ID>-<N-1>``, which
    stays. ``live``: the running QEMU has the bitmaps open, so they are ``in-use``."""
    parent = "one-%d-%d" % (vmid, plan.parent_id)
    records, by_disk = [], {}
    for disk_id in ids:
        info = vm_disk(doc, disk_id)
        if (info.get("DRIVER") or info.get("FORMAT") or "").lower() == "raw":
            fail("%s: disk %s is raw; incremental backups (BACKUP_CONFIG MODE=INCREMENT, INCREMENT_MODE=CBT) take "
                 "qcow2 disks only" % (ctx.action, disk_id))
        path = os.path.join(vm_dir, "disk.%s" % disk_id)
        chain = _checked_chain(ctx, host, vm_dir, path, SCRIPT_QCOW2_CHAIN_INFO)
        try:
            bitmaps = [(str(b["name"]), list(b.get("flags") or []))
                       for b in ((chain[0].get("format-specific") or {}).get("data") or {}).get("bitmaps") or []]
        except (KeyError, TypeError, AttributeError):
            fail("%s: cannot read the bitmaps of disk %s: bad qemu-img info output" % (ctx.action, path))
        names = [name for name, _flags in bitmaps]
        by_disk[disk_id] = list(names)
        if plan.parent_id >= 0:
            flags = dict(bitmaps).get(parent)
            if flags is None:
                fail("%s: disk %s has no bitmap %s (the changes since backup %d, INCREMENT_MODE=CBT): the backup "
                     "chain (LAST_INCREMENT_ID=%d) does not match the disk; start a new chain with a full backup "
                     "(onevm backup --reset)" % (ctx.action, disk_id, parent, plan.parent_id, plan.parent_id))
            if "inconsistent" in flags or ("in-use" in flags and not live):
                fail("%s: disk %s: its bitmap %s is inconsistent (the disk was not closed cleanly): start a new "
                     "chain with a full backup (onevm backup --reset)" % (ctx.action, disk_id, parent))
            names.remove(parent)
        records += [disk_id, path, str(len(names))] + names
    return records, by_disk


def _checkpoint_ids(names):
    """The checkpoint ids stock's clean_checkpoints reads from bitmap names (``one-<VM>-<ID>``, any VM)."""
    ids = []
    for name in names:
        match = re.search(r"one-[0-9]+-([0-9]+)", name)
        if match:
            ids.append(str(int(match.group(1))))
    return " ".join(ids)


def _cbt_live_documents(vmid, vm_dir, plan, chosen):
    """``(backup, checkpoint)``: the documents of stock's start_backup (backup-begin in pull mode from checkpoint
    ``one-<VM>-<N-1>``, the new checkpoint ``one-<VM>-<N>``), byte for byte; ``chosen``: ``[(TARGET, DISK_ID)]``."""
    tmp = posixpath.join(vm_dir, "tmp")
    backup = ("<domainbackup mode='pull'>\n  <incremental>one-%d-%d</incremental>\n"
              "  <server transport='unix' socket=%s/>\n  <disks>\n"
              % (vmid, plan.parent_id, xml_quoteattr(posixpath.join(vm_dir, "backup.socket"))))
    for target, disk_id in chosen:
        backup += ("<disk name='%s' backup='yes' type='file'>\n  <scratch file=%s/>\n</disk>\n"
                   % (target, xml_quoteattr("%s/scracth.%s.qcow2" % (tmp, disk_id))))
    backup += "  </disks>\n</domainbackup>\n"
    checkpoint = ("<domaincheckpoint>\n  <name>one-%d-%d</name>\n  <disks>\n%s  </disks>\n</domaincheckpoint>\n"
                  % (vmid, plan.backup_id, _disk_names([target for target, _d in chosen])))
    return backup, checkpoint


def _disk_ids(ctx, text):
    ids = text.split(":")
    for item in ids:
        if not item.isdigit():
            fail("%s: bad disk id list %r (expected DISK_ID:...:DISK_ID)" % (ctx.action, text))
    return ids


# ---------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------

USAGE = "host:VM_DIR DISK_ID:...:DISK_ID DEPLOY_ID BJ_ID VM_ID DS_ID"


def _backup_args(ctx, args):
    loc, disks, deploy_id, _bjid, vmid, _dsid = need_args(ctx, args, 6, USAGE)
    host, vm_dir = host_path(loc)
    vmid = id_arg(ctx, vmid, "VM id")
    return host, vm_dir, _disk_ids(ctx, disks), deploy_id, vmid


def _run_backup(ctx, host, bck, script, argv, data, msg, confined=None):
    """Runs the backup ``script`` on the host (``confined``: in the systemd user slice ``(name, text)``)."""
    command = ["sh", "-c", script, "sh"] + argv
    if confined:
        command = ["sh", "-c", SCRIPT_SLICE, "sh"] + list(confined) + command
    try:
        ssh_exec_and_log(ctx, host, command, msg, data=data)
    except Interrupted:
        ssh_capture(ctx, host, ["sh", "-c", SCRIPT_CANCEL, "sh", bck], timeout=30)
        log_error(ctx, "Backup cancelled: %s" % bck)
        raise


def _targets(ctx, doc):
    """``[(TARGET, DISK_ID)]`` of every disk of the VM, in template order."""
    disks = []
    for item in doc.findall("./TEMPLATE/DISK"):
        disk_id = (item.findtext("DISK_ID") or "").strip()
        target = (item.findtext("TARGET") or "").strip()
        if not re.match(r"^[A-Za-z0-9]+$", target):
            fail("%s: disk %s has no usable TARGET (%r)" % (ctx.action, disk_id, target))
        disks.append((target, disk_id))
    return disks


def _disk_names(targets):
    """The ``<disk name='TARGET'/>`` elements of stock's checkpoint documents (TARGETs checked by _targets)."""
    return "".join("<disk name='%s'/>" % target for target in targets)


def _checkpoint(vmid, targets):
    """The checkpoint document stock leaves in VM_DIR/tmp for a live full backup (with INCREMENT_MODE=CBT, the
    checkpoint one-<VM_ID>-0 created with the snapshot)."""
    return "<domaincheckpoint>\n   <name>one-%d-0</name>\n   <disks>%s</disks>\n </domaincheckpoint>\n" % (
        vmid, _disk_names(targets))


def prebackup(ctx, args, live=False):
    """prebackup(_live) host:VM_DIR DISK_ID:..:DISK_ID DEPLOY_ID BJ_ID VM_ID DS_ID, the VM's XML on stdin."""
    host, vm_dir, ids, deploy_id, vmid = _backup_args(ctx, args)
    raw, doc = read_vm_xml(ctx)
    plan = check_backup_mode(ctx, doc)
    bck, _extra = backup_dirs(ctx, vm_dir, vmid)
    dom = (doc.findtext("./DEPLOY_ID") or deploy_id or "").strip()
    if live and not _DOMAIN.match(dom):
        fail("%s: the VM has no usable DEPLOY_ID (%r)" % (ctx.action, dom))
    for disk_id in ids:
        if not vm_disk(doc, disk_id):
            fail("%s: disk %s is not in the VM's template" % (ctx.action, disk_id))
    records, bitmaps = [], {}
    if plan.snapshot:
        layouts = snapshot_layouts(ctx, host, vm_dir, doc, ids, plan)
        formats = dict((disk_id, "qcow2") for disk_id in ids)
    elif plan.cbt:
        records, bitmaps = cbt_records(ctx, host, vm_dir, doc, ids, plan, vmid, live=live)
        formats = dict((disk_id, "qcow2") for disk_id in ids)
    else:
        formats = dict((disk_id, disk_format(ctx, host, vm_dir, disk_id, vm_disk(doc, disk_id))) for disk_id in ids)
    conf = confinement(ctx, doc, vm_dir)
    tpm = "yes" if (doc.findtext("./TEMPLATE/TPM/MODEL") or "").strip() else "no"
    head = [bck, vm_dir, tpm, dom, conf.nice, conf.ionice]

    def run(script, argv):
        _run_backup(ctx, host, bck, script, argv, ruby_base64(raw), "Error preparing disk files", conf.slice)

    if not live and plan.snapshot:
        script, argv = _snapshot_backup(ctx, host, vm_dir, ids, layouts, plan)
        run(script, head + argv)
        return
    if plan.cbt and not live:
        new = "one-%d-%d" % (vmid, plan.backup_id)
        if plan.parent_id < 0:
            run(SCRIPT_PREBACKUP_CBT_FULL, head + [new] + records)
        else:
            argv = head + [str(plan.backup_id), "one-%d-%d" % (vmid, plan.parent_id), new] + records
            run(SCRIPT_PREBACKUP_CBT_INCREMENT, argv)
        return
    if not live:
        pairs = [x for disk_id in ids for x in (disk_id, formats[disk_id])]
        run(SCRIPT_PREBACKUP, head + pairs)
        return
    freeze = _config(doc, "FS_FREEZE").upper() or "NONE"
    targets = _targets(ctx, doc)
    uri = ctx.setting("LIBVIRT_URI", "qemu:///system")
    chosen = [(target, disk_id) for target, disk_id in targets if disk_id in formats]   # the backup's, in order
    checkpoint = _checkpoint(vmid, [target for target, _d in chosen])
    if plan.snapshot:
        script, argv = _snapshot_backup_live(ctx, vm_dir, targets, layouts, plan)
        name = "one-%d-backup" % vmid if plan.parent_id < 0 else str(plan.backup_id)
        run(script, head + [uri, name, freeze, checkpoint] + argv)
        return
    cbt = []
    if plan.cbt:   # stock's checkpoints: over the backup's disks; the first disk's bitmaps (clean_checkpoints)
        ckdisks = "<disks>%s</disks>" % _disk_names([target for target, _d in chosen])
        firstbm = _checkpoint_ids(bitmaps[ids[0]])
        cbt = [str(vmid), ckdisks, firstbm]
    if plan.cbt and plan.parent_id >= 0:
        disks = []
        for target, disk_id in chosen:
            size = str(vm_disk(doc, disk_id).get("SIZE", "")).strip()
            if not size.isdigit():
                fail("%s: disk %s has no usable SIZE (%r) for its scratch file" % (ctx.action, disk_id, size))
            disks += [target, disk_id, size]
        documents = list(_cbt_live_documents(vmid, vm_dir, plan, chosen))
        argv = head + [uri, freeze, str(vmid), str(plan.backup_id), str(plan.parent_id), ckdisks, firstbm] + documents
        run(SCRIPT_PREBACKUP_CBT_LIVE_INCREMENT, argv + disks)
        return
    if plan.cbt:
        removals = [str(len(ids))] + [x for disk_id in ids
                                      for x in [disk_id, str(len(bitmaps[disk_id]))] + bitmaps[disk_id]]
        cbt += removals
    disks = []
    for target, disk_id in targets:
        disks += [target, disk_id, formats[disk_id]] if disk_id in formats else [target, "-", "-"]
    argv = head + [uri, "one-%d-backup" % vmid, freeze, checkpoint] + cbt + disks
    run(SCRIPT_PREBACKUP_CBT_LIVE_FULL if plan.cbt else SCRIPT_PREBACKUP_LIVE, argv)


def _snapshot_backup(ctx, host, vm_dir, ids, layouts, plan):
    """``(script, its arguments after the first six)`` of a powered-off SNAPSHOT-mode backup (stock's
    ``backup_full`` with ``:snapshot``, ``backup_snapshot``)."""
    records = []
    for disk_id in ids:
        layout = layouts[disk_id]
        if plan.parent_id >= 0:
            records += [disk_id, layout.path, layout.snap, layout.slink, _backing_file(ctx, host, vm_dir, layout)]
        elif not layout.is_link:   # the disk becomes disk.I.snap/0, read where it is then
            records += [disk_id, "folder", layout.path, layout.snap, "disk.%s.snap" % disk_id,
                        "%s/disk.%s.snap/0" % (posixpath.dirname(layout.path), disk_id)]
        elif layout.name != "0":   # a later snapshot: committed into the file it is on, which becomes the base
            records += [disk_id, "commit", layout.path, layout.snap, layout.slink,
                        _backing_file(ctx, host, vm_dir, layout)]
        else:
            records += [disk_id, "zero", layout.path, layout.snap, layout.slink, layout.path]
    if plan.parent_id >= 0:
        return SCRIPT_PREBACKUP_SNAPSHOT_INCREMENT, [str(plan.backup_id)] + records
    return SCRIPT_PREBACKUP_SNAPSHOT_FULL, records


def _snapshot_backup_live(ctx, vm_dir, targets, layouts, plan):
    """``(script, its arguments after the first ten)`` of a live SNAPSHOT-mode backup (stock's ``backup_full_live``
    with ``:snapshot``, ``backup_snapshot_live``): K, K records of six, then the --diskspec arguments. Every disk
    not in the backup gets ``snapshot=no`` (stock's backup_snapshot_live leaves them to libvirt's default)."""
    records, specs = [], []
    for target, disk_id in targets:
        layout = layouts.get(disk_id)
        if layout is None:
            specs += ["--diskspec", "%s,snapshot=no" % target]
            continue
        if plan.parent_id >= 0:
            records += [target, disk_id, layout.path, layout.snap, layout.name, layout.slink]
            specs += ["--diskspec", "%s,file=%s/%d" % (target, layout.snap, plan.backup_id + 1)]
            continue
        if not layout.is_link:
            how, slink = "folder", "disk.%s.snap" % disk_id
        elif layout.name != "0":
            how, slink = "commit", layout.snap
        else:
            how, slink = "zero", layout.slink
        records += [target, disk_id, how, layout.path, layout.snap, slink]
        specs += ["--diskspec", "%s,file=%s/1" % (target, layout.snap)]
    script = SCRIPT_PREBACKUP_SNAPSHOT_LIVE_FULL if plan.parent_id < 0 else SCRIPT_PREBACKUP_SNAPSHOT_LIVE_INCREMENT
    return script, [str(len(records) // 6)] + records + specs


def prebackup_live(ctx, args):
    prebackup(ctx, args, live=True)


def postbackup(ctx, args, live=False):
    """postbackup(_live): the backup files removed (a live full backup's overlays merged back first; a
    SNAPSHOT-mode backup's overlay stays: it is the disk's next increment).

    As in stock, a failure is logged and the action succeeds (the files go with the next backup or the VM).
    """
    host, vm_dir, ids, deploy_id, vmid = _backup_args(ctx, args)
    _text, doc = read_vm_xml(ctx)
    bck, extra = backup_dirs(ctx, vm_dir, vmid)
    plan = backup_plan(ctx, doc, strict=False) if live else None
    if not live:
        argv = ["sh", "-c", SCRIPT_POSTBACKUP, "sh", bck, extra]
    elif plan.parent_id >= 0 or plan.snapshot:
        # a SNAPSHOT-mode backup's overlay stays (the disk's next increment); a CBT increment took no snapshot
        argv = ["sh", "-c", SCRIPT_POSTBACKUP_SNAPSHOT_LIVE, "sh", bck, vm_dir, extra]
    else:
        dom = (doc.findtext("./DEPLOY_ID") or deploy_id or "").strip()
        pairs = []
        for disk_id in ids:
            target = vm_disk(doc, disk_id).get("TARGET", "")
            if not re.match(r"^[A-Za-z0-9]+$", target) or not _DOMAIN.match(dom):
                fail("%s: disk %s: no usable TARGET/DEPLOY_ID; the overlays in %s/tmp are kept"
                     % (ctx.action, disk_id, vm_dir))
            pairs += [target, disk_id]
        argv = ["sh", "-c", SCRIPT_POSTBACKUP_LIVE, "sh", bck, vm_dir, extra,
                ctx.setting("LIBVIRT_URI", "qemu:///system"), dom, "one-%d-backup" % vmid] + pairs
    try:
        ssh_exec_and_log(ctx, host, argv, "Error cleaning backup temporal files")
    except TMError as exc:
        if live:
            raise
        log_error(ctx, exc.msg)


def postbackup_live(ctx, args):
    postbackup(ctx, args, live=True)


def _ls_increment(ctx, ds_text, ds, vm_text, image_text, inc_id, disk_id):
    """The backup's ``{disk id: url}`` from the backup datastore's own ``ls -i`` (as stock's ``ls_increment``)."""
    mad = (ds.findtext("./DS_MAD") or "").strip().lower()
    if not _MAD.match(mad):
        fail("restore: the backup datastore has no usable DS_MAD (%r)" % mad)
    script = os.path.join(remotes_dir(ctx), "datastore", mad, "ls")
    data = "<DS_DRIVER_ACTION_DATA>\n%s\n%s\n%s\n</DS_DRIVER_ACTION_DATA>\n" % (ds_text, vm_text, image_text)
    rc, out, err = run_command([script, "-i", str(inc_id)], data=data, timeout=ctx.number("COMMAND_TIMEOUT", 0) or 600)
    if rc != 0:
        fail("restore: cannot list backup contents: %s" % (err.strip() or "rc=%d" % rc))
    try:
        disks = json.loads(out)
        if not isinstance(disks, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        fail("restore: cannot list backup contents: bad output of %s (%s)" % (script, exc))
    if disk_id != -1:
        disks = {k: v for k, v in disks.items() if k == "tpm" or k == str(disk_id)}
    if "0" not in disks:
        disks.pop("tpm", None)
    for key in disks:
        if key != "tpm" and not key.isdigit():
            fail("restore: bad disk id %r in the backup's list" % key)
    return disks


def restore(ctx, args, layout="shared"):
    """restore host:VM_DIR VM_ID IMAGE_ID INCREMENT_ID DISK_ID (``layout``: shared or local, the stock driver)."""
    loc, vmid, img_id, inc_id, disk_id = need_args(ctx, args, 5, "host:VM_DIR VM_ID IMAGE_ID INCREMENT_ID DISK_ID")
    host, vm_dir = host_path(loc)
    vmid = id_arg(ctx, vmid, "VM id")
    img_id = id_arg(ctx, img_id, "image id")
    try:
        inc_id, disk_id = int(inc_id), int(disk_id)
    except ValueError:
        fail("restore: INCREMENT_ID and DISK_ID must be numbers (got %r, %r)" % (inc_id, disk_id))
    vm_text, vm = _show(ctx, "vm", vmid)
    image_text, image = _show(ctx, "image", img_id)
    ds_text, ds = _show(ctx, "datastore", (image.findtext("./DATASTORE_ID") or "").strip() or "-1")
    disks = _ls_increment(ctx, ds_text, ds, vm_text, image_text, inc_id, disk_id)
    if not [k for k in disks if k != "tpm"]:
        fail("restore: disk %d not found in the backup" % disk_id)
    downloader = os.path.join(remotes_dir(ctx), "datastore", "downloader.sh")
    placed = {}
    for key, url in sorted(disks.items()):
        info = vm_disk(vm, key) if key != "tpm" else {}
        persistent = layout == "shared" and info.get("SAVE", "").upper() == "YES"
        if persistent:
            source = info.get("SOURCE", "")
            if not source.startswith("/") or ".." in source.split("/"):
                fail("restore: disk %s has no usable SOURCE (%r)" % (key, source))
            dst = source + ".backup"
        else:
            source, dst = "", os.path.join(vm_dir, "disk.%s.backup" % key)
        fetch_command(ctx, [downloader, "--nodecomp", url, "-"], host, dst)
        if key != "tpm":
            try:
                checked_image(ctx, host, dst)
            except TMError:
                ssh_capture(ctx, host, ["rm", "-f", "--", dst])
                raise
        placed[key] = (dst, source)
    for key, (dst, source) in sorted(placed.items()):
        if key == "tpm":
            argv = [SCRIPT_RESTORE_TPM, dst, vm_dir]
        elif source:
            argv = [SCRIPT_RESTORE_PERSISTENT, dst, vm_dir, key, source]
        elif layout == "shared":
            argv = [SCRIPT_RESTORE_SHARED, dst, vm_dir, key]
        else:
            argv = [SCRIPT_RESTORE_LOCAL, dst, vm_dir, key]
        ssh_exec_and_log(ctx, host, ["sh", "-c", argv[0], "sh"] + argv[1:], "restore: cannot copy disk backup")
    for key in sorted(k for k in placed if k != "tpm"):
        _remove_bitmaps(ctx, host, os.path.join(vm_dir, "disk.%s" % key))


def _remove_bitmaps(ctx, host, path):
    """The qcow2 bitmaps of a restored disk go (its increment chain starts again), as in stock."""
    rc, out, err = ssh_capture(ctx, host, ["qemu-img", "info", "-U", "--output=json", path])
    if rc != 0:
        fail("restore: cannot clean bitmaps of %s: %s" % (path, err.strip()))
    try:
        names = [b["name"] for b in ((json.loads(out).get("format-specific") or {}).get("data") or {})
                 .get("bitmaps") or []]
    except (ValueError, KeyError, TypeError, AttributeError):
        fail("restore: cannot clean bitmaps of %s: bad qemu-img info output" % path)
    for name in names:
        ssh_exec_and_log(ctx, host, ["qemu-img", "bitmap", "--remove", path, name],
                         "restore: cannot clean bitmaps of %s" % path)


def restore_local(ctx, args):
    restore(ctx, args, layout="local")


ACTIONS = {
    "prebackup": prebackup,
    "prebackup_live": prebackup_live,
    "postbackup": postbackup,
    "postbackup_live": postbackup_live,
    "restore": restore,
}
