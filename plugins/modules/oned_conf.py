#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: oned_conf
short_description: Lossless, keyed edits of OpenNebula's oned.conf
version_added: 0.1.0
author: nebula.storage maintainers (@nebula-storage)
description:
  - Edits C(/etc/one/oned.conf) (or any file in oned's template syntax) by key, keeping every other byte,
    comment and blank of the file as it was.
  - Adds or removes drivers in the C(-d) or C(-s) list of the C(ARGUMENTS) of C(TM_MAD) and C(DATASTORE_MAD).
  - Adds, merges, replaces or removes vector attributes such as C(TM_MAD_CONF) and C(DS_MAD_CONF), identified by
    C(NAME) or any other keys, and the OpenNebula 3.x per-driver C(TM_MAD = [ name = ... ]) blocks.
  - Sets single-valued top-level attributes and adds or removes values of repeated ones such as C(VM_RESTRICTED_ATTR).
  - Keys are case-insensitive, as in oned. Existing key spelling is kept; new keys follow the case of the block or file.
  - Values are written quoted, unless the value being replaced was unquoted or O(blocks[].raw)/O(attributes[].raw) is set.
  - The file is written to a temporary file in the same directory, parsed again, optionally validated and moved into
    place atomically, keeping owner, group and mode. A file that does not parse is never changed.
  - 'Edits are applied in this order: O(drivers), O(blocks), O(attributes), O(lists).'
extends_documentation_fragment:
  - nebula.storage.file_edit
options:
  path:
    description: Path of the file to edit.
    type: path
    default: /etc/one/oned.conf
  drivers:
    description: Word lists inside the C(ARGUMENTS) option of a single vector attribute such as C(TM_MAD).
    type: list
    elements: dict
    default: []
    suboptions:
      attribute:
        description:
          - The vector attribute, for example C(TM_MAD) or C(DATASTORE_MAD). It must occur once.
          - On OpenNebula 3.0 files, where each transfer driver has its own C(TM_MAD) block, the task fails;
            use O(blocks) with O(blocks[].match=NAME) instead.
        type: str
        required: true
      option:
        description: The option whose comma-separated list is edited, for example C(-d) or C(-s).
        type: str
        default: -d
      add:
        description:
          - Drivers to add at the end of the list (missing option is appended to C(ARGUMENTS)).
          - Each is C([A-Za-z0-9_.-]+).
        type: list
        elements: str
        default: []
      remove:
        description: Words to remove from the list. An option whose list becomes empty is removed.
        type: list
        elements: str
        default: []
      if_present:
        description:
          - Edit the list only when C(ARGUMENTS) already has O(drivers[].option); otherwise leave it as it is.
          - For options that only some releases' drivers know, such as C(-s) of C(DATASTORE_MAD) (the transfer
            drivers whose system datastores oned monitors, OpenNebula 5.x and later).
        type: bool
        default: false
  blocks:
    description: Vector attributes (C(KEY = [ K = V, ... ])).
    type: list
    elements: dict
    default: []
    suboptions:
      attribute:
        description: Name of the vector attribute, for example C(TM_MAD_CONF).
        type: str
        required: true
      match:
        description:
          - 'Keys and values that identify the block, for example C({NAME: storpool}). Keys and values compare case-insensitively.'
          - Without O(blocks[].match), the attribute must occur at most once.
          - More than one matching block fails the task and names their lines.
        type: dict
      set:
        description: Keys and values the block must have. A new block gets the O(blocks[].match) keys first, then these.
        type: dict
        default: {}
      unset:
        description: Keys the block must not have.
        type: list
        elements: str
        default: []
      state:
        description:
          - V(present) merges O(blocks[].set) into the block (adding it after the last block of the same attribute if none matches).
          - V(exact) also removes every key not in O(blocks[].match) or O(blocks[].set).
          - V(absent) removes the matching block.
        type: str
        choices: [present, exact, absent]
        default: present
      raw:
        description: Write new values unquoted. Fails for values that oned could only read quoted.
        type: bool
        default: false
  attributes:
    description: Single-valued top-level attributes. An attribute that occurs more than once fails the task.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Attribute name, for example C(DEFAULT_DEVICE_PREFIX).
        type: str
        required: true
      value:
        description: The value; required with O(attributes[].state=present).
        type: str
      state:
        description: Whether the attribute is set (added at the end of the file if missing) or removed.
        type: str
        choices: [present, absent]
        default: present
      raw:
        description: Write the value unquoted.
        type: bool
        default: false
  lists:
    description: Repeated top-level attributes, for example C(VM_RESTRICTED_ATTR).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Attribute name.
        type: str
        required: true
      add:
        description: Values to add, each as its own line after the last occurrence of the attribute.
        type: list
        elements: str
        default: []
      remove:
        description: Values to remove (every occurrence).
        type: list
        elements: str
        default: []
notes:
  - The parser follows oned's template grammar; a file that oned cannot read fails with C(path:line:column) and what was expected.
  - The file is read as OpenNebula's own lexer reads it (tested against OpenNebula 7.4.0's flex lexer and bison parser).
    Where oned reads the text differently from how it looks, the task fails with the line instead of guessing
    C(]]>) on a value's line (oned takes it for the end of a CDATA section and stops reading the file, without a message
    at the top level), CR characters (CRLF files; oned keeps the CR in values), characters oned skips, and a quoted value
    glued to a word (C(A = "x"y)). A last line that is a comment without a newline is read as oned reads it (its text
    as attributes), and nothing is appended after it.
  - A value containing C(]]>) is refused. A value containing C(\") is written quoted, because oned removes the backslash
    in unquoted values too. After an edit, the new text is read again and must give exactly the intended attributes.
  - Driver names in O(drivers[].add) and O(drivers[].remove) are C([A-Za-z0-9_.-]+), so that they cannot add options
    to C(ARGUMENTS).
seealso:
  - module: nebula.storage.one_rc
'''

EXAMPLES = r'''
- name: Register the StorPool drivers with oned
  nebula.storage.oned_conf:
    backup: true
    drivers:
      - {attribute: TM_MAD, add: [storpool]}
      - {attribute: DATASTORE_MAD, add: [storpool]}
      - {attribute: DATASTORE_MAD, option: -s, add: [storpool]}
    blocks:
      - attribute: TM_MAD_CONF
        match: {NAME: storpool}
        set: {LN_TARGET: NONE, CLONE_TARGET: SELF, SHARED: "yes", DS_MIGRATE: "yes"}
      - attribute: DS_MAD_CONF
        match: {NAME: storpool}
        set: {REQUIRED_ATTRS: DISK_TYPE, PERSISTENT_ONLY: "NO", MARKETPLACE_ACTIONS: export}
    lists:
      - {name: VM_RESTRICTED_ATTR, add: [VMSNAPSHOT_LIMIT, DISKSNAPSHOT_LIMIT]}
  notify: Restart opennebula

- name: OpenNebula 3.0 has one TM_MAD block per driver
  nebula.storage.oned_conf:
    path: /etc/one/oned.conf
    blocks:
      - attribute: TM_MAD
        match: {NAME: tm_shared}
        set: {EXECUTABLE: one_tm, ARGUMENTS: tm_shared/tm_shared.conf}

- name: Use SCSI device names and drop a block
  nebula.storage.oned_conf:
    attributes:
      - {name: DEFAULT_DEVICE_PREFIX, value: sd}
    blocks:
      - {attribute: DS_MAD_CONF, match: {NAME: vcenter}, state: absent}
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
  sample: ['TM_MAD: added "storpool" to -d', 'TM_MAD_CONF[NAME=storpool]: added block (NAME="storpool", LN_TARGET="NONE")']
backup_file:
  description: Path of the backup copy.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/one/oned.conf.12345.2026-01-01@00:00:00~
diff:
  description: Before and after text, in diff mode.
  returned: in diff mode
  type: dict
path:
  description: The edited file.
  returned: always
  type: str
  sample: /etc/one/oned.conf
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nebula.storage.plugins.module_utils._file_update import (
    FileUpdateError,
    read_text,
    update_file,
)
from ansible_collections.nebula.storage.plugins.module_utils._oned_template import (
    TemplateError,
    apply_edits,
    parse,
    verify_written,
)


def argument_spec():
    return dict(
        path=dict(type='path', default='/etc/one/oned.conf'),
        backup=dict(type='bool', default=False),
        validate=dict(type='str'),
        follow=dict(type='bool', default=False),
        drivers=dict(type='list', elements='dict', default=[], options=dict(
            attribute=dict(type='str', required=True),
            option=dict(type='str', default='-d'),
            add=dict(type='list', elements='str', default=[]),
            remove=dict(type='list', elements='str', default=[]),
            if_present=dict(type='bool', default=False),
        )),
        blocks=dict(type='list', elements='dict', default=[], options=dict(
            attribute=dict(type='str', required=True),
            match=dict(type='dict'),
            set=dict(type='dict', default={}),
            unset=dict(type='list', elements='str', default=[]),
            state=dict(type='str', choices=['present', 'exact', 'absent'], default='present'),
            raw=dict(type='bool', default=False),
        )),
        attributes=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            value=dict(type='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            raw=dict(type='bool', default=False),
        ), required_if=[('state', 'present', ['value'])]),
        lists=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            add=dict(type='list', elements='str', default=[]),
            remove=dict(type='list', elements='str', default=[]),
        )),
    )


def _check_combinations(module):
    for n, b in enumerate(module.params['blocks']):
        if b['state'] == 'absent' and (b['set'] or b['unset']):
            module.fail_json(msg='blocks[%d] (%s): set and unset cannot be used with state=absent' % (n, b['attribute']))
    for n, a in enumerate(module.params['attributes']):
        if a['state'] == 'absent' and a['value'] is not None:
            module.fail_json(msg='attributes[%d] (%s): value cannot be used with state=absent' % (n, a['name']))
    for key in ('drivers', 'lists'):
        for n, d in enumerate(module.params[key]):
            if not d['add'] and not d['remove']:
                module.fail_json(msg='%s[%d] (%s): give add or remove' % (key, n, d.get('attribute') or d.get('name')))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    _check_combinations(module)
    p = module.params
    path = p['path']
    result = dict(changed=False, changes=[], path=path)
    try:
        old = read_text(path, follow=p['follow'])[0]
        doc = parse(old, path)
        changes = apply_edits(doc, drivers=p['drivers'], blocks=p['blocks'], attributes=p['attributes'], lists=p['lists'])
        new = doc.render() if changes else old
        result['changes'] = changes
        result.update(update_file(module, path, old, new, reparse=lambda text: verify_written(doc, text),
                                  validate=p['validate'], backup=p['backup'], follow=p['follow']))
    except (TemplateError, FileUpdateError) as e:
        result['msg'] = str(e)
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
