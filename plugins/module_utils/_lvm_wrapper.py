# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules of the root-owned LVM wrapper the gfs2_clvm role installs on the hypervisor hosts.

The sudoers rule of the role lets oneadmin run this wrapper as root, and nothing
else. The wrapper accepts exactly the LVM calls the ``gfs2clvm`` driver makes
(``plugins/module_utils/tm/drivers/gfs2clvm.py``), on the configured volume
group(s) and on ``lv-one-<vmid>-<diskid>`` / ``lv-oneimg-<32 hex>`` volumes only:

=============  ==============================================================
``vgs``        ``--noheadings --nosuffix --units m -o vg_size,vg_free VG``
``lvs``        ``--noheadings -o lv_name VG``
``lvs``        ``--noheadings --nosuffix --units m -o lv_size DEV_DIR/VG/LV``
``lvcreate``   ``-L <n>M -n LV VG``
``lvcreate``   ``-s -L <n>M -n LV DEV_DIR/VG/LV``
``lvremove``   ``-f VG/LV``
=============  ==============================================================

Any other subcommand, option (``--config``, ``--profile``, ``--commandprofile``
included), order, volume group or name is refused before anything runs. An
accepted call runs ``<lvm_bin_dir>/<subcommand>`` by absolute path with an
argument list (``os.execve``: no shell) and a fixed environment, so nothing of
the caller's environment (``LVM_SYSTEM_DIR``, ``LD_PRELOAD``...) reaches LVM.

The role installs this file as the wrapper, behind ``#!<python3> -I`` (isolated
mode: no ``PYTHON*`` variables, no user site, not the script's directory on
``sys.path``) and followed by its configuration (``CONFIG``) and a call of
:func:`main`. Standard library only, Python 3.6 or newer.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import re
import sys

try:
    from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple  # noqa: F401 (type hints)
except ImportError:  # pragma: no cover - typing is in every Python 3
    pass

PROG = "one-gfs2clvm-lvm"

#: The fixed environment of the LVM command.
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

#: Exit code of a refused call (the LVM commands use 1 to 5).
REFUSED = 64

SUBCOMMANDS = ("lvcreate", "lvremove", "lvs", "vgs")

# Placeholders of the forms below.
VG, LV, DEVICE, VG_LV, SIZE = "<VG>", "<LV>", "<DEV_DIR>/<VG>/<LV>", "<VG>/<LV>", "<n>M"

#: Every call the gfs2clvm driver makes, token by token.
FORMS = {
    "vgs": [
        ("--noheadings", "--nosuffix", "--units", "m", "-o", "vg_size,vg_free", VG),
    ],
    "lvs": [
        ("--noheadings", "-o", "lv_name", VG),
        ("--noheadings", "--nosuffix", "--units", "m", "-o", "lv_size", DEVICE),
    ],
    "lvcreate": [
        ("-L", SIZE, "-n", LV, VG),
        ("-s", "-L", SIZE, "-n", LV, DEVICE),
    ],
    "lvremove": [
        ("-f", VG_LV),
    ],
}  # type: Dict[str, List[Tuple[str, ...]]]

#: Options LVM reads configuration or code from; named in the refusal.
DANGEROUS_OPTIONS = ("--config", "--profile", "--commandprofile", "--metadataprofile", "--driverloaded",
                     "--devicesfile", "--devices", "--journal", "--reportformat")

MAX_ARGS = 8
MAX_ARG_LEN = 255
_SAFE_ARG = re.compile(r"\A[A-Za-z0-9_.,/+-]{1,255}\Z")
_VG_NAME = re.compile(r"\A[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}\Z")
_LV_NAME = re.compile(r"\A(?:lv-one-(?:0|[1-9][0-9]{0,9})-(?:0|[1-9][0-9]{0,9})|lv-oneimg-[0-9a-f]{32})\Z")
_SIZE = re.compile(r"\A[1-9][0-9]{0,9}M\Z")
_ABS_DIR = re.compile(r"\A/[A-Za-z0-9_./-]*\Z")


class Refused(Exception):
    """A call the wrapper does not run; the message says why."""


def check_config(config):
    # type: (Dict[str, object]) -> Tuple[List[str], str, str]
    """``(volume groups, LVM bin dir, device dir)`` of a wrapper configuration, or :class:`Refused`."""
    vgs = config.get("vgs")
    bin_dir = config.get("lvm_bin_dir")
    dev_dir = config.get("dev_dir", "/dev")
    if not isinstance(vgs, list) or not vgs or not all(isinstance(v, str) and _VG_NAME.match(v) for v in vgs):
        raise Refused("bad configuration: vgs must be a list of volume group names, not %r" % (vgs,))
    for key, value in (("lvm_bin_dir", bin_dir), ("dev_dir", dev_dir)):
        if not isinstance(value, str) or not _ABS_DIR.match(value) or "/../" in value + "/" or "/./" in value + "/":
            raise Refused("bad configuration: %s must be an absolute, normalised directory, not %r" % (key, value))
    return list(vgs), str(bin_dir).rstrip("/") or "/", str(dev_dir).rstrip("/") or "/"


def _check_vg(value, vgs):
    # type: (str, List[str]) -> None
    if value not in vgs:
        raise Refused("volume group %r is not the configured one (%s)" % (value, ", ".join(vgs)))


def _check_lv(value):
    # type: (str) -> None
    if not _LV_NAME.match(value):
        raise Refused("logical volume %r is neither lv-one-<vmid>-<diskid> nor lv-oneimg-<32 hex digits>" % (value,))


def _check_placeholder(kind, value, vgs, dev_dir):
    # type: (str, str, List[str], str) -> None
    """Refused unless ``value`` is a valid ``kind`` (one of the placeholders)."""
    if kind == VG:
        _check_vg(value, vgs)
    elif kind == LV:
        _check_lv(value)
    elif kind == SIZE:
        if not _SIZE.match(value):
            raise Refused("size %r is not <n>M (1 to 10 digits, no leading zero)" % (value,))
    elif kind == VG_LV:
        vg, sep, lv = value.partition("/")
        if not sep:
            raise Refused("%r is not <VG>/<LV>" % (value,))
        _check_vg(vg, vgs)
        _check_lv(lv)
    elif kind == DEVICE:
        prefix = dev_dir.rstrip("/") + "/"
        rest = value[len(prefix):] if value.startswith(prefix) else ""
        vg, sep, lv = rest.partition("/")
        if not sep:
            raise Refused("%r is not a device %s<VG>/<LV>" % (value, prefix))
        _check_vg(vg, vgs)
        _check_lv(lv)
    else:  # pragma: no cover - the forms use only the placeholders above
        raise Refused("unknown placeholder %s" % kind)


def _match(form, args, vgs, dev_dir):
    # type: (Tuple[str, ...], Sequence[str], List[str], str) -> Optional[Tuple[int, str]]
    """None if ``args`` is ``form``, else ``(index of the first mismatch, reason)``."""
    if len(form) != len(args):
        return (-1, "expected %d arguments, got %d" % (len(form), len(args)))
    for index, (want, value) in enumerate(zip(form, args)):
        if want in (VG, LV, DEVICE, VG_LV, SIZE):
            try:
                _check_placeholder(want, value, vgs, dev_dir)
            except Refused as exc:
                return (index, str(exc))
        elif value != want:
            return (index, "argument %d is %r, expected %r" % (index + 1, value, want))
    return None


def check(argv, config):
    # type: (Sequence[str], Dict[str, object]) -> List[str]
    """The LVM argv (absolute path first) for the wrapper's ``argv``, or :class:`Refused` naming the rule."""
    vgs, bin_dir, dev_dir = check_config(config)
    if not argv:
        raise Refused("no LVM command given (one of %s)" % ", ".join(SUBCOMMANDS))
    if len(argv) > MAX_ARGS:
        raise Refused("too many arguments (%d)" % len(argv))
    for value in argv:
        name = value.split("=", 1)[0] if isinstance(value, str) else ""
        if name in DANGEROUS_OPTIONS or name.startswith(("--config", "--profile", "--commandprofile")):
            raise Refused("option %r is never allowed" % name)
    for index, value in enumerate(argv):
        if not isinstance(value, str) or not _SAFE_ARG.match(value):
            raise Refused("argument %d (%r) is empty, longer than %d characters or has characters outside "
                          "[A-Za-z0-9_.,/+-]" % (index + 1, value, MAX_ARG_LEN))
    command, args = argv[0], list(argv[1:])
    if command not in FORMS:
        raise Refused("%r is not an allowed LVM command (%s)" % (command, ", ".join(SUBCOMMANDS)))
    allowed_options = set(t for form in FORMS[command] for t in form if t.startswith("-"))
    for value in args:
        if value.startswith("-") and value not in allowed_options:
            raise Refused("option %s is not allowed with %s (only %s)" % (value, command, " ".join(sorted(allowed_options))))
    failures = []
    for form in FORMS[command]:
        failure = _match(form, args, vgs, dev_dir)
        if failure is None:
            return [os.path.join(bin_dir, command)] + args
        failures.append(failure)
    index, reason = max(failures, key=lambda f: f[0])
    if index < 0:
        reason = "%s takes exactly: %s" % (command, " | ".join(" ".join(f) for f in FORMS[command]))
    raise Refused("%s: %s" % (command, reason))


def main(argv, config, stderr=None, execve=None):
    # type: (Sequence[str], Dict[str, object], Optional[TextIO], Optional[Callable[..., object]]) -> int
    """Check ``argv`` and replace this process with the LVM command; the exit code of a refusal or failure."""
    stderr = stderr if stderr is not None else sys.stderr
    execve = execve if execve is not None else os.execve
    try:
        lvm_argv = check(argv, config)
    except Refused as exc:
        stderr.write("%s: refused: %s\n" % (PROG, exc))
        stderr.flush()
        return REFUSED
    try:
        execve(lvm_argv[0], lvm_argv, dict(ENV))
    except OSError as exc:
        stderr.write("%s: cannot run %s: %s\n" % (PROG, lvm_argv[0], exc))
        stderr.flush()
        return 127
    return 0
