# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""nfs_shared: the NFS_AUTO_* attributes of the role's datastores (plugins/module_utils/_nfs_plan.py)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
name: nfs_auto_attributes
short_description: Plan the OpenNebula NFS auto-mount attributes of the nfs_shared datastores
version_added: 0.2.0
description:
  - OpenNebula 7.0+ mounts a datastore on its hosts itself when the datastore has C(NFS_AUTO_ENABLE=YES), from
    C(NFS_AUTO_HOST):C(NFS_AUTO_PATH) with C(NFS_AUTO_OPTS), at the datastore's directory, keeping fstab lines of its
    own. This filter decides which datastores of the C(nebula.storage.nfs_shared) role need which change.
  - With O(mount_by=opennebula) the datastores get C(NFS_AUTO_ENABLE=YES), C(NFS_AUTO_HOST=server_address),
    C(NFS_AUTO_PATH) = the datastore's directory (the exports are at the same path on the server and the hosts) and
    C(NFS_AUTO_OPTS) = the mount options of the export holding it. A datastore whose directory is in no export is
    an error.
  - With O(mount_by=role) no C(NFS_AUTO_*) attribute may stay, so that OpenNebula and the role never write the
    same fstab line; a datastore having them gets an C(exact) update without them.
  - OpenNebula refuses to change any C(NFS_AUTO_*) attribute of a datastore that holds images
    (C(Cannot update option NFS_AUTO_ENABLE in a datastore with existing images)); such a change is an error here,
    naming the datastore, its images and the attributes, before anything is sent.
positional: _input
options:
  _input:
    description: The C(results) of a looped C(nebula.storage.one_datastore) task (C(item.name), C(item.type),
      C(datastore)); datastores that do not exist yet are left out.
    type: list
    elements: dict
    required: true
  mount_by:
    description: Who mounts the datastores on the hosts.
    type: str
    choices: [role, opennebula]
    default: role
  server_address:
    description: Address the hosts mount from (C(NFS_AUTO_HOST)).
    type: str
    default: ""
  exports:
    description: The checked exports (C(exports) of C(nebula.storage.nfs_exports)).
    type: list
    elements: dict
    default: []
  mount_options:
    description: Mount options of exports without their own.
    type: str
    default: ""
'''

EXAMPLES = r'''
- name: Plan the NFS_AUTO_* changes
  ansible.builtin.set_fact:
    nfs_auto: >-
      {{ datastores.results | nebula.storage.nfs_auto_attributes(mount_by='opennebula', server_address='nfs-fe',
         exports=plan.exports, mount_options='rw,hard,_netdev') }}
'''

RETURN = r'''
_value:
  description: The plan.
  type: dict
  contains:
    errors:
      description: Changes OpenNebula would refuse, and datastores outside the exports; each names the datastore.
      type: list
      elements: str
    updates:
      description: The C(nebula.storage.one_datastore) calls to make, each with C(name), C(type), C(attributes)
        (C(merge) to set the attributes, C(exact) to drop them) and C(template).
      type: list
      elements: dict
    paths:
      description: With O(mount_by=opennebula), the datastores' directories (C(NFS_AUTO_PATH)), which must exist on
        the NFS server.
      type: list
      elements: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.nebula.storage.plugins.module_utils._nfs_plan import nfs_auto_plan


def nfs_auto_attributes(datastores, mount_by='role', server_address='', exports=None, mount_options=''):
    """The NFS_AUTO_* plan (see DOCUMENTATION)."""
    if not isinstance(datastores, list):
        raise AnsibleFilterError('nfs_auto_attributes expects the results list of nebula.storage.one_datastore')
    return nfs_auto_plan(datastores, mount_by, server_address, exports or [], mount_options)


class FilterModule(object):
    """nfs_shared filters."""

    def filters(self):
        return {'nfs_auto_attributes': nfs_auto_attributes}
