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
moves it over the target with ``module.atomic_move``, which keeps the target's
owner, group, mode and SELinux context.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import io
import os
import tempfile

try:
    from typing import Any, Callable, Dict, Optional, Tuple  # noqa: F401  pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass

from ansible.module_utils.common.text.converters import to_native


class FileUpdateError(Exception):
    """The update was refused; the target file is untouched.  ``str()`` is for the user."""


def read_text(path, missing_ok=False):
    # type: (str, bool) -> Tuple[str, bool]
    """Return ``(text, exists)``.  Bytes that are not UTF-8 survive a round trip (surrogateescape)."""
    try:
        with io.open(path, 'rb') as f:
            data = f.read()
    except (IOError, OSError) as e:
        if missing_ok and not os.path.lexists(path):
            return '', False
        raise FileUpdateError('%s: cannot read: %s' % (path, to_native(e)))
    return data.decode('utf-8', 'surrogateescape'), True


def _encode(text):
    # type: (str) -> bytes
    return text.encode('utf-8', 'surrogateescape')


def update_file(module, path, old_text, new_text, reparse=None, validate=None, backup=False, exists=True):
    # type: (Any, str, str, str, Optional[Callable[[str], Any]], Optional[str], bool, bool) -> Dict[str, Any]
    """Write ``new_text`` to ``path`` if it differs from ``old_text``.

    :param module: the AnsibleModule (``check_mode``, ``_diff``, ``tmpdir`` helpers, ``atomic_move``).
    :param reparse: called with the text read back from the temporary file; raise to refuse the write.
    :param validate: command with ``%s`` for the temporary file; a non-zero exit refuses the write.
    :param backup: make a timestamped copy of the old file first (``backup_file`` in the result).
    :param exists: False when the file does not exist yet (it is created).
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

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileUpdateError('%s: directory %s does not exist' % (path, directory))
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(_encode(new_text))
            f.flush()
            os.fsync(f.fileno())
        written = read_text(tmp)[0]
        if written != new_text:
            raise FileUpdateError('%s: the temporary file %s does not read back as written' % (path, tmp))
        if reparse is not None:
            try:
                reparse(written)
            except Exception as e:  # pylint: disable=broad-except
                raise FileUpdateError('%s: the new content does not parse, not written: %s' % (path, to_native(e)))
        if validate is not None:
            rc, out, err = module.run_command(validate % tmp)
            if rc != 0:
                raise FileUpdateError('%s: validate command failed (rc=%d), not written: %s %s'
                                      % (path, rc, to_native(out).strip(), to_native(err).strip()))
        if backup and exists:
            result['backup_file'] = module.backup_local(path)
        module.atomic_move(tmp, path, unsafe_writes=bool(module.params.get('unsafe_writes')))
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return result
