#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: patch_tree
short_description: Apply a series of unified diffs to a directory tree, all or nothing, idempotently
version_added: 0.2.0
author: nebula.storage maintainers (@nebula-storage)
description:
  - Applies patches in order with GNU C(patch), as an installer such as the StorPool addon's C(install.sh) does,
    but all or nothing, with check mode and diff, and without leaving backup or reject files.
  - The files the patches name are copied into a private temporary directory; there each patch is first tried
    reversed (C(--dry-run --reverse)); when that applies, it is already applied and skipped; else it is tried
    forward (C(--dry-run --forward)) and applied. A patch that applies neither way fails the task, naming it, before
    any file of O(basedir) is changed.
  - Only then are the files whose content changed written back, each atomically (temporary file and rename),
    keeping their owner, group and mode. No C(.orig) or C(.rej) file is ever made in O(basedir).
  - Files named by the patches must be regular files under O(basedir) reached without symlinks.
  - Unlike M(ansible.posix.patch) (one patch per task, no diff, a failing patch in the middle of a series leaves
    the earlier ones applied), a whole release's series is checked before anything changes.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Returns the unified diff of every changed file.
    support: full
requirements:
  - GNU patch on the target.
options:
  basedir:
    description: Directory the patches apply in.
    type: path
    required: true
  strip:
    description: Leading path components removed from the file names of the patches (C(patch -p)).
    type: int
    default: 0
  patches:
    description: The patches, applied in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name used in messages and results.
        type: str
        required: true
      content:
        description: The unified diff. One of O(patches[].content) and O(patches[].src) is required.
        type: str
      src:
        description: Path of the unified diff on the target.
        type: path
'''

EXAMPLES = r'''
- name: Apply the addon's patches for OpenNebula 7.2
  nebula.storage.patch_tree:
    basedir: /var/lib/one
    patches:
      - name: vmm/7.2/00-attach_disk-fixes.patch
        content: "{{ lookup('ansible.builtin.file', '/srv/addon-storpool/patches/vmm/7.2/00-attach_disk-fixes.patch', rstrip=false) }}"
'''

RETURN = r'''
applied:
  description: Names of the patches applied by this run (or that would be, in check mode).
  returned: always
  type: list
  elements: str
already_applied:
  description: Names of the patches found applied already.
  returned: always
  type: list
  elements: str
files:
  description: Files (relative to O(basedir)) whose content changed.
  returned: always
  type: list
  elements: str
'''

import os
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.nebula.storage.plugins.module_utils._file_tree import TreeError, patch_targets, write_atomic


def read_regular(basedir, rel):
    """(bytes, stat) of basedir/rel, refusing symlinks anywhere below basedir."""
    path = basedir
    parts = rel.split('/')
    for i, part in enumerate(parts):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except OSError:
            raise TreeError('%s does not exist' % path)
        if stat.S_ISLNK(st.st_mode):
            raise TreeError('%s is a symlink: refusing to patch through it' % path)
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise TreeError('%s is not a directory' % path)
    if not stat.S_ISREG(st.st_mode):
        raise TreeError('%s is not a regular file' % path)
    with open(path, 'rb') as f:
        return f.read(), st


def main():
    module = AnsibleModule(
        argument_spec=dict(
            basedir=dict(type='path', required=True),
            strip=dict(type='int', default=0),
            patches=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                content=dict(type='str'),
                src=dict(type='path'),
            ), required_one_of=[('content', 'src')], mutually_exclusive=[('content', 'src')]),
        ),
        supports_check_mode=True,
    )
    basedir = module.params['basedir']
    strip = module.params['strip']
    patch_bin = module.get_bin_path('patch', required=True)
    result = dict(changed=False, applied=[], already_applied=[], files=[])
    work = tempfile.mkdtemp(prefix='patch_tree.')
    try:
        originals = {}
        series = []
        for p in module.params['patches']:
            text = p['content']
            if text is None:
                try:
                    with open(p['src'], 'rb') as f:
                        text = f.read().decode('utf-8', 'surrogateescape')
                except (IOError, OSError) as e:
                    module.fail_json(msg='patch %s: cannot read %s: %s' % (p['name'], p['src'], to_native(e)))
            if not text.endswith('\n'):
                text += '\n'
            try:
                targets = patch_targets(text, strip)
                for rel in targets:
                    if rel not in originals:
                        originals[rel] = read_regular(basedir, rel)
            except TreeError as e:
                module.fail_json(msg='patch %s: %s (in %s); nothing was changed' % (p['name'], e, basedir), **result)
            series.append((p['name'], text, targets))
        for rel, (data, st) in originals.items():
            path = os.path.join(work, rel)
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            with open(path, 'wb') as f:
                f.write(data)
        base = [patch_bin, '-p%d' % strip, '--batch', '--directory', work]
        for name, text, targets in series:
            rc, out, err = module.run_command(base + ['--dry-run', '--reverse', '--forward'], data=text,
                                              binary_data=True)
            if rc == 0:
                result['already_applied'].append(name)
                continue
            rc, out, err = module.run_command(base + ['--dry-run', '--forward'], data=text, binary_data=True)
            if rc != 0:
                module.fail_json(msg='patch %s applies neither forward nor reversed to %s in %s: nothing was changed. '
                                     'patch said: %s' % (name, ', '.join(targets), basedir, (out + err).strip()),
                                 **result)
            rc, out, err = module.run_command(base + ['--forward', '--no-backup-if-mismatch', '--reject-file=-'],
                                              data=text, binary_data=True)
            if rc != 0:
                module.fail_json(msg='patch %s failed in the scratch copy: %s; nothing was changed' % (name, (out + err).strip()),
                                 **result)
            result['applied'].append(name)
        diffs = []
        for rel in sorted(originals):
            with open(os.path.join(work, rel), 'rb') as f:
                new = f.read()
            old, st = originals[rel]
            if new == old:
                continue
            result['files'].append(rel)
            if module._diff:
                diffs.append({'before_header': os.path.join(basedir, rel), 'after_header': os.path.join(basedir, rel),
                              'before': old.decode('utf-8', 'replace'), 'after': new.decode('utf-8', 'replace')})
            if not module.check_mode:
                # the file must still be the one read above (no symlink planted meanwhile)
                data, now = read_regular(basedir, rel)
                if data != old:
                    module.fail_json(msg='%s changed during the run; not patched' % os.path.join(basedir, rel), **result)
                write_atomic(os.path.join(basedir, rel), new, stat.S_IMODE(now.st_mode), now.st_uid, now.st_gid)
        result['changed'] = bool(result['files'])
        if diffs:
            result['diff'] = diffs
    except TreeError as e:
        module.fail_json(msg=str(e), **result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
