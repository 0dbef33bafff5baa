# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TM_MAD_CONF attributes each OpenNebula release knows.

This is a private module of the nebula.storage collection; its API may change
without notice.  The roles reach it through the ``nebula.storage.tm_mad_conf``
filter.

Every role that registers a transfer driver writes one ``TM_MAD_CONF`` block
in oned.conf.  OpenNebula copies its attributes into each new datastore, and
the set of attributes has grown over the releases: 7.2 added
``DS_LIVE_MIGRATE`` and ``DS_MIGRATE_SNAP`` (oned 7.x reads both as "NO" when
they are missing, so a block without them forbids live migration across system
datastores).  :func:`tm_mad_conf_for_release` turns a role's block, written
for the newest release, into the block the target release's own stock blocks
would have: it drops what the release does not know, and refuses a block that
lacks what every stock block of the release carries.

The release table records, for each attribute, the first release among the
oned.conf files of the test fixtures (3.0, 3.8.5, 4.14.2, 5.4.15, 5.12.13,
6.10.5, 7.4.0) whose stock blocks carry it, except for the two 7.2 attributes,
which OpenNebula's 7.2 release added.  That is conservative: an attribute is
never written for a release that may not know it.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

try:
    from typing import Any, Dict, Tuple  # noqa: F401  pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass

# attribute -> first release whose stock TM_MAD_CONF blocks carry it
SINCE = {
    'NAME': (4, 0),
    'LN_TARGET': (4, 0),
    'CLONE_TARGET': (4, 0),
    'SHARED': (4, 0),
    'DS_MIGRATE': (5, 4),
    'ALLOW_ORPHANS': (5, 4),
    'DRIVER': (5, 4),
    'TM_MAD_SYSTEM': (5, 12),
    'DISK_TYPE': (6, 10),
    'DS_LIVE_MIGRATE': (7, 2),
    'DS_MIGRATE_SNAP': (7, 2),
    'PERSISTENT_SNAPSHOTS': (7, 4),
}  # type: Dict[str, Tuple[int, int]]

# LN_TARGET_<MODE>, CLONE_TARGET_<MODE>, DISK_TYPE_<MODE>: one per TM_MAD_SYSTEM mode
MODE_ATTRS = ('LN_TARGET_', 'CLONE_TARGET_', 'DISK_TYPE_')

# attributes every stock block of a release carries from that release on
REQUIRED_SINCE = {
    'LN_TARGET': (4, 0),
    'CLONE_TARGET': (4, 0),
    'SHARED': (4, 0),
    'DS_MIGRATE': (7, 2),
    'DS_LIVE_MIGRATE': (7, 2),
    'DS_MIGRATE_SNAP': (7, 2),
}  # type: Dict[str, Tuple[int, int]]

# TM_MAD_CONF blocks exist from OpenNebula 4.0 on (3.x has TM_MAD blocks)
FIRST_RELEASE = (4, 0)

_RELEASE_RE = re.compile(r'^\s*(\d+)\.(\d+)(?:\.\d+)*\s*$')


class TmMadConfError(ValueError):
    """A block or a release the function cannot use; the message says why."""


def parse_release(release):
    # type: (Any) -> Tuple[int, int]
    """``"7.4"``, ``"7.4.0"``, ``"6.10.5"`` or ``7.4`` -> ``(major, minor)``."""
    text = str(release)
    m = _RELEASE_RE.match(text)
    if not m:
        raise TmMadConfError('release %r is not an OpenNebula version such as "7.4" or "6.10.5"' % (release,))
    return int(m.group(1)), int(m.group(2))


def attribute_since(name):
    # type: (str) -> Tuple[int, int]
    """The first release that knows attribute ``name`` (case-insensitive)."""
    key = name.upper()
    if key in SINCE:
        return SINCE[key]
    for prefix in MODE_ATTRS:
        if key.startswith(prefix) and len(key) > len(prefix):
            return SINCE['TM_MAD_SYSTEM']
    raise TmMadConfError('%s is not a TM_MAD_CONF attribute of any OpenNebula release' % name)


def known_attributes(release):
    # type: (Any) -> Tuple[str, ...]
    """The fixed attribute names ``release`` knows (the per-mode ones not included)."""
    rel = parse_release(release)
    return tuple(sorted(k for k, v in SINCE.items() if v <= rel))


def tm_mad_conf_for_release(attrs, release):
    # type: (Dict[str, Any], Any) -> Dict[str, Any]
    """The block ``attrs`` as release ``release`` knows it.

    ``attrs`` maps attribute names to values (any case; ``NAME`` is the block's
    match key and may be left out).  Attributes the release does not know are
    left out; a block that lacks an attribute every stock block of the release
    carries (``DS_LIVE_MIGRATE`` and ``DS_MIGRATE_SNAP`` from 7.2 on) is an
    error, as is an attribute no release knows.  The order of ``attrs`` is kept.
    """
    rel = parse_release(release)
    if rel < FIRST_RELEASE:
        raise TmMadConfError('OpenNebula %d.%d has no TM_MAD_CONF blocks (they start with 4.0)' % rel)
    if not isinstance(attrs, dict):
        raise TmMadConfError('the TM_MAD_CONF attributes must be a mapping, not %s' % type(attrs).__name__)
    out = {}
    for name, value in attrs.items():
        if not isinstance(name, str):
            raise TmMadConfError('TM_MAD_CONF attribute name %r is not a string' % (name,))
        if attribute_since(name) <= rel:
            out[name] = value
    have = set(k.upper() for k in out)
    missing = sorted(k for k, since in REQUIRED_SINCE.items() if since <= rel and k not in have)
    if missing:
        raise TmMadConfError('OpenNebula %d.%d expects %s in every TM_MAD_CONF block; the block has no %s'
                             % (rel + (', '.join(missing), ', '.join(missing))))
    return out
