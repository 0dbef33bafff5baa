# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# Apache License 2.0 (see LICENSE)
"""The options every module that edits one configuration file in place shares (one_rc, oned_conf)."""
from __future__ import annotations


class ModuleDocFragment(object):  # pylint: disable=too-few-public-methods
    """Options of the safe-write layer (module_utils/_file_update.py): backup, validate, follow."""

    DOCUMENTATION = r'''
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
options:
  backup:
    description: Make a timestamped copy of the file before changing it; its path is returned as RV(backup_file).
    type: bool
    default: false
  validate:
    description:
      - Command run on the temporary file before it replaces O(path); C(%s) is replaced with its path, for example
        C(sh -n %s).
      - The file is not changed when the command exits non-zero.
    type: str
  follow:
    description:
      - When O(path) is a symbolic link, edit the file it points to.
      - By default such a link is refused, and so is a link among the parent directories that root does not own,
        because a less privileged user (oneadmin) may have planted it to make this module, run as root, read or
        overwrite another file. The file is never read through such a link, and its content never appears in
        errors or in the diff.
    type: bool
    default: false
'''
