# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Safe, check-mode and diff aware replacement of a text file's content.

Private module of the nebula.storage collection; its API may change without notice.

Typical use in a module::

    old, exists = read_text(path)
    new = edit(old)
    result = update_file(module, path, old, new, reparse=parse, validate=module.params['validate'],
                         backup=module.params['backup'], exists=exists)
    module.exit_json(**result)

``update_file`` never touches the file when the content is unchanged or in
check mode.  Otherwise it writes a temporary file in the same directory,
re-reads and re-parses it, runs the optional ``validate`` command on it and
renames it over the target, keeping the target's owner, group, mode and SELinux
context.

Links: the module runs as root on directories a less privileged user (oneadmin)
may own, so paths are walked one directory at a time from ``/`` with
``O_NOFOLLOW``.  A symbolic link at the edited path is refused unless the caller
opted in (``follow=True``, as ``ansible.builtin.file`` names it); a symbolic link
among the parent directories is followed only if root owns it (no other user can
have planted it).  The temporary file is created and renamed through the
directory's descriptor, so a link planted while the module runs is replaced,
never written through.  Error messages name paths, never the content of a file
the module did not mean to edit.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import binascii
import errno
import os
import stat

try:
    from typing import Any, Callable, Dict, List, Optional, Tuple  # noqa: F401  pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass

from ansible.module_utils.common.text.converters import to_native


class FileUpdateError(Exception):
    """The update was refused; the target file is untouched.  ``str()`` is for the user."""


_MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)


def _follow_hint(path):
    # type: (str) -> str
    return ('%s is a symbolic link; refusing to follow it (a less privileged user may have planted it); '
            'set follow: true to edit the file it points to' % path)


def open_dir(path, follow=False, mkdir_mode=None, on_create=None):
    # type: (str, bool, Optional[int], Optional[Callable[[int, str], None]]) -> int
    """Descriptor of directory ``path``, walked from ``/`` without following links others may have planted.

    A symbolic link among the components is followed only if root owns it, or if ``follow`` is true.
    With ``mkdir_mode``, missing directories are created (``on_create(fd, path)`` is called for each).
    The caller closes the descriptor.
    """
    path = os.path.abspath(path)
    fd = os.open('/', _DIR_FLAGS)
    todo = [c for c in path.split('/') if c]
    todo.reverse()  # a stack: the next component is at the end
    cur = []  # type: List[str]
    links = 0
    try:
        while todo:
            name = todo.pop()
            if name == '.':
                continue
            where = '/' + '/'.join(cur + [name])
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno == errno.ENOENT and mkdir_mode is not None:
                    try:
                        os.mkdir(name, mkdir_mode, dir_fd=fd)
                        nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError as e2:
                        raise FileUpdateError('cannot create directory %s: %s' % (where, to_native(e2.strerror or e2)))
                    if on_create is not None:
                        on_create(nfd, where)
                elif e.errno in (errno.ELOOP, errno.ENOTDIR):
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        raise FileUpdateError('%s: %s' % (where, to_native(e.strerror or e)))
                    if not stat.S_ISLNK(st.st_mode):
                        raise FileUpdateError('%s is not a directory' % where)
                    if st.st_uid != 0 and not follow:
                        raise FileUpdateError('%s is a symbolic link owned by uid %d; refusing to follow it (a less '
                                              'privileged user may have planted it); set follow: true to allow it'
                                              % (where, st.st_uid))
                    links += 1
                    if links > _MAX_LINKS:
                        raise FileUpdateError('%s: too many levels of symbolic links' % path)
                    target = os.readlink(name, dir_fd=fd)
                    if target.startswith('/'):
                        os.close(fd)
                        fd = os.open('/', _DIR_FLAGS)
                        cur = []
                    parts = [c for c in target.split('/') if c]
                    parts.reverse()
                    todo.extend(parts)
                    continue
                else:
                    raise FileUpdateError('%s: %s' % (where, to_native(e.strerror or e)))
            os.close(fd)
            fd = nfd
            if name == '..':
                if cur:
                    cur.pop()
            else:
                cur.append(name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path, follow=False, missing_ok=False):
    # type: (str, bool, bool) -> Tuple[Optional[int], int, str]
    """``(file_fd or None if missing, dir_fd, basename)`` for a regular file, opened read-only without following links.

    With ``follow``, links are resolved first (the operator opted in).  The caller closes both descriptors.
    """
    if follow:
        path = os.path.realpath(path)
    directory, base = os.path.split(os.path.abspath(path))
    dfd = open_dir(directory, follow)
    try:
        try:
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0), dir_fd=dfd)
        except OSError as e:
            if e.errno == errno.ENOENT and missing_ok:
                return None, dfd, base
            if e.errno == errno.ELOOP:
                raise FileUpdateError(_follow_hint(path))
            raise FileUpdateError('%s: cannot read: %s' % (path, to_native(e.strerror or e)))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise FileUpdateError('%s: cannot read: not a regular file' % path)
    except BaseException:
        os.close(dfd)
        raise
    return fd, dfd, base


def read_chunks(fd, size=1 << 20):
    # type: (int, int) -> Any
    """The rest of the open file ``fd``, in chunks of at most ``size`` bytes."""
    while True:
        chunk = os.read(fd, size)
        if not chunk:
            return
        yield chunk


def set_owner_mode(dir_fd, name, mode, uid=-1, gid=-1):
    # type: (int, str, int, int, int) -> None
    """fchown/fchmod the regular file ``name`` of the directory ``dir_fd``, opened without following a link."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0), dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileUpdateError('%s is not a regular file' % name)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def read_bytes(path, follow=False, missing_ok=False):
    # type: (str, bool, bool) -> Optional[bytes]
    """Content of the regular file ``path`` (None if missing and ``missing_ok``), read without following links."""
    fd, dfd, _base = open_file(path, follow, missing_ok)
    os.close(dfd)
    if fd is None:
        return None
    try:
        return b''.join(read_chunks(fd))
    finally:
        os.close(fd)


def read_text(path, missing_ok=False, follow=False):
    # type: (str, bool, bool) -> Tuple[str, bool]
    """Return ``(text, exists)``.  Bytes that are not UTF-8 survive a round trip (surrogateescape).

    A symbolic link at ``path`` is refused unless ``follow`` (see the module's docstring).
    """
    data = read_bytes(path, follow, missing_ok)
    if data is None:
        return '', False
    return data.decode('utf-8', 'surrogateescape'), True


def write_file(dir_fd, name, data, mode, uid=-1, gid=-1, before_rename=None):
    # type: (int, str, bytes, int, int, int, Optional[Callable[[str], None]]) -> None
    """Atomically replace ``name`` in the directory ``dir_fd`` with ``data``.

    The temporary file is created with ``O_EXCL | O_NOFOLLOW`` and renamed through the directory's
    descriptor: a link at ``name`` is replaced, never followed.  ``before_rename(tmp_name)`` may refuse
    by raising; the temporary file is then removed.
    """
    tmp = None
    for _n in range(100):
        cand = '.%s.%s.tmp' % (name, binascii.hexlify(os.urandom(6)).decode('ascii'))
        try:
            fd = os.open(cand, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0),
                         0o600, dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.EEXIST:
                continue
            raise FileUpdateError('%s: cannot create a temporary file: %s' % (name, to_native(e.strerror or e)))
        tmp = cand
        break
    if tmp is None:
        raise FileUpdateError('%s: cannot create a temporary file' % name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_rename is not None:
            before_rename(tmp)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        tmp = None
    except OSError as e:
        raise FileUpdateError('%s: cannot write: %s' % (name, to_native(e.strerror or e)))
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass


def _encode(text):
    # type: (str) -> bytes
    return text.encode('utf-8', 'surrogateescape')


def update_file(module, path, old_text, new_text, reparse=None, validate=None, backup=False, exists=True,
                follow=False):
    # type: (Any, str, str, str, Optional[Callable[[str], Any]], Optional[str], bool, bool, bool) -> Dict[str, Any]
    """Write ``new_text`` to ``path`` if it differs from ``old_text``.

    :param module: the AnsibleModule (``check_mode``, ``_diff``, ``run_command``, ``backup_local``, SELinux helpers).
    :param reparse: called with the text read back from the temporary file; raise to refuse the write.
    :param validate: command with ``%s`` for the temporary file; a non-zero exit refuses the write.
    :param backup: make a timestamped copy of the old file first (``backup_file`` in the result).
    :param exists: False when the file does not exist yet (it is created).
    :param follow: edit the file a symbolic link at ``path`` points to (else such a link is refused).
    :returns: ``dict(changed=..., diff=..., backup_file=...)`` (``diff`` only in diff mode,
        ``backup_file`` only when a backup was made).
    :raises FileUpdateError: the file is left untouched.
    """
    changed = old_text != new_text or not exists
    result = {'changed': changed}  # type: Dict[str, Any]
    if getattr(module, '_diff', False):
        result['diff'] = {
            'before': old_text,
            'after': new_text,
            'before_header': path if exists else '%s (absent)' % path,
            'after_header': path,
        }
    if validate is not None and '%s' not in validate:
        raise FileUpdateError('validate must contain %%s for the file to check, got: %s' % validate)
    if not changed or module.check_mode:
        return result

    real = os.path.realpath(path) if follow else os.path.abspath(path)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        raise FileUpdateError('%s: directory %s does not exist' % (path, directory))
    fd, dfd, base = open_file(real, False, missing_ok=not exists)
    try:
        if fd is not None:
            st = os.fstat(fd)
            os.close(fd)
            mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode, uid, gid = 0o666 & ~umask, -1, -1
        context = None
        if module.selinux_enabled():
            context = module.selinux_context(real) if fd is not None else module.selinux_default_context(real)

        def check(tmp):
            tmp_path = os.path.join(directory, tmp)
            written = read_text(tmp_path)[0]
            if written != new_text:
                raise FileUpdateError('%s: the temporary file %s does not read back as written' % (path, tmp_path))
            if reparse is not None:
                try:
                    reparse(written)
                except Exception as e:  # pylint: disable=broad-except
                    raise FileUpdateError('%s: the new content does not parse, not written: %s' % (path, to_native(e)))
            if validate is not None:
                rc, out, err = module.run_command(validate % tmp_path)
                if rc != 0:
                    raise FileUpdateError('%s: validate command failed (rc=%d), not written: %s %s'
                                          % (path, rc, to_native(out).strip(), to_native(err).strip()))
            if context is not None:
                module.set_context_if_different(tmp_path, context, False)
            if backup and exists:
                result['backup_file'] = module.backup_local(real)

        write_file(dfd, base, _encode(new_text), mode, uid, gid, before_rename=check)
    finally:
        os.close(dfd)
    return result
