#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: file_tree
short_description: Install a planned set of files under one directory in one task
version_added: 0.2.0
author: nebula.storage maintainers (@nebula-storage)
description:
  - Installs many files under one base directory O(dest) in a single task, for example the StorPool addon's
    hundred scripts into C(/var/lib/one/remotes).
  - The files' sha256 are compared on the target; only files that are missing or differ are transferred
    (the action plugin sends the controller's contents in a second call only when some are needed), and
    files whose content is right but whose mode or owner differ are only chmod/chown-ed.
  - Each file is written to a temporary file in its directory and renamed into place (atomic per file).
  - Symlinks are never followed at the destination, as the tree may belong to a less privileged user; a
    destination that is a symlink is replaced by the file, a symlinked directory on the way fails the task
    before anything is changed.
  - Missing directories are created with mode 0755 and O(owner)/O(group).
  - O(absent) files are removed (upgrade cleanup).
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Lists the added, changed and removed files.
    support: full
options:
  dest:
    description: The base directory on the target; it must exist and must not be a symlink.
    type: path
    required: true
  files:
    description: The planned files.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description:
          - The source file on the controller (read by the action plugin, symlinks followed), or on the target
            with O(remote_src=true).
        type: path
        required: true
      dest:
        description: Path of the file relative to O(dest); C(..) and absolute paths are refused.
        type: str
        required: true
      mode:
        description: Octal mode of the installed file, for example C('0755').
        type: str
        default: '0644'
      force:
        description: When false, an existing file keeps its content (only mode and owner are corrected).
        type: bool
        default: true
      sha256:
        description: The source's sha256; set by the action plugin.
        type: str
      content:
        description: The source's content, base64; set by the action plugin for the files the target needs.
        type: str
  absent:
    description: Files (relative to O(dest)) to remove when present.
    type: list
    elements: str
    default: []
  owner:
    description: Owner of the installed files and created directories. Default is the connecting user.
    type: str
  group:
    description: Group of the installed files and created directories. Default is the owner's primary group.
    type: str
  remote_src:
    description: The O(files[].src) are on the target; the module reads them there (symlinks followed).
    type: bool
    default: false
notes:
  - The action plugin reads O(files[].src) on the controller, sends their sha256 first and their contents only
    when the target lacks them; a run with nothing to do is one round trip.
seealso:
  - module: ansible.builtin.copy
'''

EXAMPLES = r'''
- name: Install the addon's remotes in one task
  nebula.storage.file_tree:
    dest: /var/lib/one/remotes
    owner: oneadmin
    group: oneadmin
    files:
      - {src: /srv/addon-storpool/tm/storpool/clone, dest: tm/storpool/clone, mode: '0755'}
      - {src: /srv/addon-storpool/addon-storpoolrc, dest: addon-storpoolrc, mode: '0644', force: false}
    absent:
      - vmm/kvm/save.storpool
'''

RETURN = r'''
added:
  description: Files (relative to O(dest)) that were missing.
  returned: always
  type: list
  elements: str
changed_files:
  description: Files whose content differed (or that were symlinks or special files).
  returned: always
  type: list
  elements: str
attrs:
  description: Files whose content was right but mode or owner differed.
  returned: always
  type: list
  elements: str
removed:
  description: O(absent) files that were present.
  returned: always
  type: list
  elements: str
unchanged:
  description: Number of files already as planned.
  returned: always
  type: int
need_content:
  description: Files whose content the target needs; the action plugin then calls the module again with them.
  returned: when contents are missing
  type: list
  elements: str
'''

import base64
import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.nebula.storage.plugins.module_utils._file_tree import (
    TreeError, apply, diff_text, inspect, safe_rel, sha256_bytes)


def ids(module):
    owner, group = module.params['owner'], module.params['group']
    try:
        pw = pwd.getpwnam(owner) if owner else pwd.getpwuid(os.geteuid())
    except KeyError:
        module.fail_json(msg='owner: no such user: %s' % owner)
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            module.fail_json(msg='group: no such group: %s' % group)
    else:
        gid = pw.pw_gid
    return pw.pw_uid, gid


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            files=dict(type='list', elements='dict', default=[], options=dict(
                src=dict(type='path', required=True),
                dest=dict(type='str', required=True),
                mode=dict(type='str', default='0644'),
                force=dict(type='bool', default=True),
                sha256=dict(type='str'),
                content=dict(type='str', no_log=True),
            )),
            absent=dict(type='list', elements='str', default=[]),
            owner=dict(type='str'),
            group=dict(type='str'),
            remote_src=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    base = module.params['dest'].rstrip('/') or '/'
    uid, gid = ids(module)
    files, contents = [], {}
    try:
        for item in module.params['files']:
            rel = safe_rel(item['dest'])
            try:
                mode = int(item['mode'], 8)
            except ValueError:
                module.fail_json(msg='files[].mode: %r is not an octal mode (%s)' % (item['mode'], rel))
            sha = item['sha256']
            if module.params['remote_src']:
                try:
                    with open(item['src'], 'rb') as f:
                        contents[rel] = f.read()
                except (IOError, OSError) as e:
                    module.fail_json(msg='files[].src: cannot read %s: %s' % (item['src'], to_native(e)))
                sha = sha256_bytes(contents[rel])
            elif item['content'] is not None:
                contents[rel] = base64.b64decode(item['content'])
            if not sha:
                module.fail_json(msg='files[].sha256 is required for %s (the action plugin sets it)' % rel)
            files.append({'dest': rel, 'sha256': sha, 'mode': mode, 'force': item['force'], 'src': item['src']})
        report = inspect(base, files, module.params['absent'], uid, gid)
        todo = report['added'] + report['changed']
        changed = bool(todo or report['attrs'] or report['removed'])
        result = dict(changed=changed, dest=base, added=report['added'], changed_files=report['changed'],
                      attrs=report['attrs'], removed=report['removed'], unchanged=len(report['unchanged']))
        if changed and module._diff:
            result['diff'] = diff_text(report, base)
        if not changed or module.check_mode:
            module.exit_json(**result)
        missing = [rel for rel in todo if rel not in contents]
        if missing:
            result.update(changed=False, need_content=missing)
            result.pop('diff', None)
            module.exit_json(**result)
        apply(base, files, module.params['absent'], uid, gid, contents, report)
    except TreeError as e:
        module.fail_json(msg=str(e))
    except (IOError, OSError) as e:
        module.fail_json(msg='%s: %s' % (base, to_native(e)))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
