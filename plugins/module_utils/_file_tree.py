# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Install a planned set of files under one base directory, by content hash, without following planted links.

Private module of the nebula.storage collection; its API may change without notice.

Used by the ``file_tree`` module (and usable by any module that ships files, such as
``tm_driver``).  Every destination is a path *relative* to ``base``:

* :func:`safe_rel` refuses absolute paths, ``..`` and empty components;
* :func:`inspect` lstat()s every existing component below ``base``: a directory component that is
  a symlink (planted, for instance, by the less privileged owner of the tree) fails the whole
  plan before anything is written; a destination that is a symlink or not a regular file is
  reported as changed and *replaced* (rename() replaces the link itself, never its target);
* :func:`apply` creates missing directories (mode 0755, owner/group), writes each changed file to a
  temporary file in its directory (fchmod/fchown before the rename) and renames it into place,
  fixes mode/owner of files whose content is already right, and removes the ``absent`` files.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import hashlib
import os
import re
import stat

from ansible_collections.nebula.storage.plugins.module_utils._file_update import (
    FileUpdateError,
    read_chunks,
    set_owner_mode,
    write_file,
)

try:
    from typing import Dict, List  # noqa: F401  pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass


class TreeError(Exception):
    """The plan is refused; nothing was changed.  ``str()`` is for the user."""


def sha256_bytes(data):
    # type: (bytes) -> str
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    # type: (str) -> str
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    try:
        for chunk in read_chunks(fd):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def safe_rel(rel):
    # type: (str) -> str
    """A normalised relative path, or TreeError."""
    if not rel or rel.startswith('/'):
        raise TreeError('%r: a destination must be a path relative to the base directory' % (rel,))
    parts = rel.split('/')
    if any(p in ('', '.', '..') for p in parts):
        raise TreeError('%r: empty, "." and ".." path components are refused' % (rel,))
    return '/'.join(parts)


def _check_dirs(base, rel, seen):
    # type: (str, str, Dict[str, bool]) -> bool
    """True when every parent directory of rel exists; TreeError on a symlinked or non-directory parent."""
    parts = rel.split('/')[:-1]
    path = base
    for part in parts:
        path = os.path.join(path, part)
        if path in seen:
            if not seen[path]:
                return False
            continue
        try:
            st = os.lstat(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise TreeError('%s: %s' % (path, e.strerror))
            seen[path] = False
            return False
        if stat.S_ISLNK(st.st_mode):
            raise TreeError('%s is a symlink: refusing to write through it (remove it or make it a directory)' % path)
        if not stat.S_ISDIR(st.st_mode):
            raise TreeError('%s is not a directory' % path)
        seen[path] = True
    return True


def inspect(base, files, absent, uid, gid):
    # type: (str, List[Dict], List[str], int, int) -> Dict[str, List]
    """Compare the plan with the disk; no change.  ``files``: ``{dest, sha256, mode (int), force}``.

    Returns ``{'added': [...], 'changed': [...], 'attrs': [...], 'removed': [...], 'unchanged': [...]}``:
    added/changed need content; attrs need only mode/owner; removed are present ``absent`` files.
    """
    try:
        st = os.lstat(base)
    except OSError as e:
        raise TreeError('%s: the base directory %s' % (base, 'does not exist' if e.errno == errno.ENOENT else e.strerror))
    if not stat.S_ISDIR(st.st_mode):
        raise TreeError('%s: the base directory is %s' % (base, 'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory'))
    out = {'added': [], 'changed': [], 'attrs': [], 'removed': [], 'unchanged': []}  # type: Dict[str, List]
    seen = {}  # type: Dict[str, bool]
    for item in files:
        rel = safe_rel(item['dest'])
        path = os.path.join(base, rel)
        if not _check_dirs(base, rel, seen):
            out['added'].append(rel)
            continue
        try:
            st = os.lstat(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise TreeError('%s: %s' % (path, e.strerror))
            out['added'].append(rel)
            continue
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise TreeError('%s is a directory where a file is planned' % path)
            out['changed'].append(rel)  # a symlink or special file: replaced, never followed
            continue
        if item.get('force', True) and sha256_file(path) != item['sha256']:
            out['changed'].append(rel)
        elif stat.S_IMODE(st.st_mode) != item['mode'] or st.st_uid != uid or st.st_gid != gid:
            out['attrs'].append(rel)
        else:
            out['unchanged'].append(rel)
    for rel in absent:
        rel = safe_rel(rel)
        path = os.path.join(base, rel)
        if _check_dirs(base, rel, seen) and os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                raise TreeError('%s is a directory; only files are removed' % path)
            out['removed'].append(rel)
    return out


def _makedirs(base, rel, uid, gid, created):
    # type: (str, str, int, int, List[str]) -> None
    path = base
    for part in rel.split('/')[:-1]:
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o755)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise TreeError('%s is not a directory (it changed during the run)' % path)
            continue
        os.chmod(path, 0o755)
        os.lchown(path, uid, gid)
        created.append(path)


def _open_parent(path):
    # type: (str) -> int
    return os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_NOFOLLOW', 0))


def write_atomic(path, data, mode, uid, gid):
    # type: (str, bytes, int, int, int) -> None
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path`` (a link is replaced), with
    the safe-write layer's writer (_file_update.write_file)."""
    dfd = _open_parent(path)
    try:
        write_file(dfd, os.path.basename(path), data, mode, uid, gid)
    except FileUpdateError as e:
        raise TreeError('%s: %s' % (path, e))
    finally:
        os.close(dfd)


def set_attrs(path, mode, uid, gid):
    # type: (str, int, int, int) -> None
    """chmod/chown a regular file through an O_NOFOLLOW descriptor."""
    dfd = _open_parent(path)
    try:
        set_owner_mode(dfd, os.path.basename(path), mode, uid, gid)
    except FileUpdateError:
        raise TreeError('%s is not a regular file' % path)
    finally:
        os.close(dfd)


def apply(base, files, absent, uid, gid, contents, report):
    # type: (str, List[Dict], List[str], int, int, Dict[str, bytes], Dict[str, List]) -> List[str]
    """Carry out ``report`` (from :func:`inspect`); ``contents``: ``{dest: bytes}`` for added and changed files.

    Every content is checked against its planned sha256 before anything is written.  Returns the
    directories created.
    """
    by_dest = dict((safe_rel(f['dest']), f) for f in files)
    for rel in report['added'] + report['changed']:
        data = contents.get(rel)
        if data is None:
            raise TreeError('%s: no content was sent for it' % rel)
        if sha256_bytes(data) != by_dest[rel]['sha256']:
            raise TreeError('%s: the content sent does not match its sha256 (the source changed during the run?)' % rel)
    created = []  # type: List[str]
    for rel in report['added'] + report['changed']:
        _makedirs(base, rel, uid, gid, created)
        write_atomic(os.path.join(base, rel), contents[rel], by_dest[rel]['mode'], uid, gid)
    for rel in report['attrs']:
        set_attrs(os.path.join(base, rel), by_dest[rel]['mode'], uid, gid)
    for rel in report['removed']:
        os.unlink(os.path.join(base, rel))
    return created


def diff_text(report, base):
    # type: (Dict[str, List], str) -> Dict[str, str]
    """An Ansible diff listing added, changed and removed files."""
    before, after = [], []
    for rel in report['changed'] + report['attrs']:
        before.append('%s/%s\n' % (base, rel))
        after.append('%s/%s (%s)\n' % (base, rel, 'changed' if rel in report['changed'] else 'mode/owner'))
    for rel in report['removed']:
        before.append('%s/%s\n' % (base, rel))
    for rel in report['added']:
        after.append('%s/%s (added)\n' % (base, rel))
    return {'before': ''.join(sorted(before)), 'after': ''.join(sorted(after)),
            'before_header': '%s (files)' % base, 'after_header': '%s (files)' % base}


TIMESTAMP = re.compile(r'\s+\d{4}-\d\d-\d\d[\d:. +-]*$')


def patch_targets(text, strip=0):
    # type: (str, int) -> List[str]
    """The files a unified diff changes (its +++ names, or --- for deletions), with ``strip`` components removed."""
    out = []
    old = None
    for line in text.splitlines():
        if line.startswith('--- '):
            old = line[4:]
        elif line.startswith('+++ ') and old is not None:
            name = line[4:]
            if name.split('\t')[0].strip() == '/dev/null':
                name = old
            name = TIMESTAMP.sub('', name.split('\t')[0]).strip()
            if name.startswith('"') and name.endswith('"'):
                name = name[1:-1]
            parts = [p for p in name.split('/') if p]
            if len(parts) <= strip:
                raise TreeError('cannot strip %d components from %r' % (strip, name))
            rel = safe_rel('/'.join(parts[strip:]))
            if rel not in out:
                out.append(rel)
            old = None
    if not out:
        raise TreeError('no file names (no ---/+++ lines): not a unified diff')
    return out
