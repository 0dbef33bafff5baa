# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""nfs_shared: does sudo let oneadmin run OpenNebula's ONE_NFS commands (plugins/module_utils/_nfs_plan.py)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
name: nfs_one_nfs_sudo
short_description: Check that sudo lets oneadmin run OpenNebula's ONE_NFS commands without a password
version_added: 0.2.0
description:
  - OpenNebula 7.0+ mounts C(NFS_AUTO_ENABLE) datastores on a host through its C(ONE_NFS) sudo alias
    (C(/usr/bin/mount), C(/usr/bin/umount), C(/usr/bin/sed -i -f /proc/self/fd/0 /etc/fstab)), run by its drivers
    without a terminal.
  - The input is sudo's own answer, so that sudo's parser judges the sudoers files, includes and aliases (the
    results of C(sudo -l -U oneadmin COMMAND) for each command (return code 0 means allowed), and the listing of
    C(sudo -l -U oneadmin), read for C(NOPASSWD)).
  - Returns the errors, each naming the host; empty when the three commands are allowed without a password.
positional: _input
options:
  _input:
    description: The C(results) of a task looping over the three commands with C(sudo -l -U oneadmin {{ item }}).
    type: list
    elements: dict
    required: true
  host:
    description: The host's name, for the messages.
    type: str
    default: ""
  user:
    description: The OpenNebula account.
    type: str
    default: oneadmin
  listing:
    description: The output of C(sudo -l -U oneadmin).
    type: str
    default: ""
'''

EXAMPLES = r'''
- name: Fail where OpenNebula could not mount
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: >-
      {{ checks.results | nebula.storage.nfs_one_nfs_sudo(host=inventory_hostname, listing=listing.stdout) }}
'''

RETURN = r'''
_value:
  description: The errors, each naming the host and the commands sudo refuses or asks a password for.
  type: list
  elements: str
'''

from ansible_collections.nebula.storage.plugins.module_utils._nfs_plan import one_nfs_missing


def nfs_one_nfs_sudo(checks, host='', user='oneadmin', listing=''):
    """Errors where sudo does not let ``user`` run ONE_NFS without a password."""
    rcs = dict((r['item'], r.get('rc')) for r in checks or [] if isinstance(r, dict) and 'item' in r)
    return one_nfs_missing(host, user, rcs, listing or '')


class FilterModule(object):
    """nfs_shared filters."""

    def filters(self):
        return {'nfs_one_nfs_sudo': nfs_one_nfs_sudo}
