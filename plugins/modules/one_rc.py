#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: one_rc
short_description: Lossless, keyed edits of OpenNebula shell-style rc files
version_added: 0.1.0
author: nebula.storage maintainers (@nebula-storage)
description:
  - Sets, removes and edits word lists of C(KEY=value) variables in shell-style configuration files such as
    C(sshrc), C(tmrc), C(vmm_execrc), C(addon-storpoolrc), C(fs.conf) and C(datastore.conf), keeping every other
    byte, comment and the order of the file.
  - Also edits the C(KEY = value) lines of OpenNebula 3.x driver configuration files (C(tm_shared.conf)); their values
    are written as they are, without shell quoting.
  - Values are quoted for a POSIX shell when they need it. A variable already set to the wanted value (after shell
    unquoting) is left byte-identical.
  - A commented-out C(#KEY=...) line is kept; a new C(KEY=...) line is written right after it, else at the end of the file.
  - When a variable is assigned more than once, the last assignment (the one the shell uses) is edited.
  - The file is written to a temporary file in the same directory, parsed again, optionally validated and moved into
    place atomically, keeping owner, group and mode.
extends_documentation_fragment:
  - nebula.storage.file_edit
options:
  path:
    description: Path of the file to edit.
    type: path
    required: true
  set:
    description: Variables and their values. Numbers are written as strings.
    type: dict
    default: {}
  unset:
    description: Variables to remove (every assignment; commented-out lines stay).
    type: list
    elements: str
    default: []
  words:
    description: Variables holding a list of words, for example C(LIVE_DISK_SNAPSHOTS="kvm-qcow2 kvm-ceph").
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Variable name.
        type: str
        required: true
      add:
        description: Words to add at the end of the list (the variable is created if missing).
        type: list
        elements: str
        default: []
      remove:
        description: Words to remove.
        type: list
        elements: str
        default: []
      separator:
        description: Separator between words. With the default blank, any run of blanks separates words.
        type: str
        default: ' '
  create:
    description: Create the file if it does not exist. When false, a missing file fails the task.
    type: bool
    default: false
seealso:
  - module: nebula.storage.oned_conf
'''

EXAMPLES = r'''
- name: Tune the SSH replica cache
  nebula.storage.one_rc:
    path: /var/lib/one/remotes/etc/tm/ssh/sshrc
    set:
      REPLICA_COPY_LOCK_TIMEOUT: 900
      REPLICA_SSH_OPTS: "-c aes128-gcm@openssh.com"
    unset: [REPLICA_MAX_SIZE_MB]
    validate: sh -n %s

- name: Allow live disk snapshots on StorPool
  nebula.storage.one_rc:
    path: /var/lib/one/remotes/etc/vmm/kvm/vmm_execrc
    words:
      - {name: LIVE_DISK_SNAPSHOTS, add: [kvm-storpool]}
'''

RETURN = r'''
changed:
  description: Whether the file was (or, in check mode, would be) changed.
  returned: always
  type: bool
changes:
  description: What was changed, one readable line per edit.
  returned: always
  type: list
  elements: str
  sample: ['REPLICA_COPY_LOCK_TIMEOUT: set to 900 (was 600, line 9)', 'LIVE_DISK_SNAPSHOTS: added "kvm-storpool"']
backup_file:
  description: Path of the backup copy.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /var/lib/one/remotes/etc/tm/ssh/sshrc.12345.2026-01-01@00:00:00~
diff:
  description: Before and after text, in diff mode.
  returned: in diff mode
  type: dict
path:
  description: The edited file.
  returned: always
  type: str
  sample: /var/lib/one/remotes/etc/tm/ssh/sshrc
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nebula.storage.plugins.module_utils._file_update import (
    FileUpdateError,
    read_text,
    update_file,
)
from ansible_collections.nebula.storage.plugins.module_utils._shell_rc import (
    RcError,
    apply_edits,
    parse,
)


def argument_spec():
    return dict(
        path=dict(type='path', required=True),
        set=dict(type='dict', default={}),
        unset=dict(type='list', elements='str', default=[]),
        words=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            add=dict(type='list', elements='str', default=[]),
            remove=dict(type='list', elements='str', default=[]),
            separator=dict(type='str', default=' '),
        )),
        create=dict(type='bool', default=False),
        backup=dict(type='bool', default=False),
        validate=dict(type='str'),
        follow=dict(type='bool', default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    path = p['path']
    result = dict(changed=False, changes=[], path=path)
    for n, w in enumerate(p['words']):
        if not w['add'] and not w['remove']:
            module.fail_json(msg='words[%d] (%s): give add or remove' % (n, w['name']), **result)
    try:
        old, exists = read_text(path, missing_ok=p['create'], follow=p['follow'])
        doc = parse(old, path)
        changes = apply_edits(doc, set=p['set'], unset=p['unset'], words=p['words'])
        new = doc.render() if changes else old
        if not exists:
            changes.insert(0, '%s: created' % path)
        result['changes'] = changes
        result.update(update_file(module, path, old, new, reparse=lambda text: parse(text, path),
                                  validate=p['validate'], backup=p['backup'], exists=exists, follow=p['follow']))
    except (RcError, FileUpdateError) as e:
        result['msg'] = str(e)
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
