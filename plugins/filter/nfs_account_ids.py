# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""nfs_shared: oneadmin's uid and gid on every machine (plugins/module_utils/_nfs_plan.py)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
name: nfs_account_ids
short_description: An account's uid and gid on each machine, from the getent facts
version_added: 0.2.0
description:
  - NFS stores owners as numbers, so oneadmin must have the same uid and gid everywhere. This filter reads the
    C(getent_passwd) fact (C(ansible.builtin.getent)) of each machine and returns C(uid=U gid=G), or C(missing).
positional: _input
options:
  _input:
    description: The machines.
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: raw
    required: true
  user:
    description: The account.
    type: str
    default: oneadmin
'''

EXAMPLES = r'''
- name: Same uid and gid everywhere
  ansible.builtin.assert:
    that: ids | map(attribute=1) | unique | length == 1
  vars:
    ids: "{{ ansible_play_hosts | nebula.storage.nfs_account_ids(hostvars, 'oneadmin') }}"
'''

RETURN = r'''
_value:
  description: C([machine, "uid=U gid=G"]) or C([machine, "missing"]) per machine, in order.
  type: list
  elements: list
'''

from ansible_collections.nebula.storage.plugins.module_utils._nfs_plan import account_ids


def nfs_account_ids(machines, hostvars, user='oneadmin'):
    """The account's ids per machine (see DOCUMENTATION)."""
    return account_ids(machines or [], hostvars or {}, user)


class FilterModule(object):
    """nfs_shared filters."""

    def filters(self):
        return {'nfs_account_ids': nfs_account_ids}
