# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``nebula.storage.tm_mad_conf`` filter: a TM_MAD_CONF block as a release knows it."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: tm_mad_conf
short_description: A TM_MAD_CONF block with the attributes an OpenNebula release knows
version_added: 0.2.0
author: nebula.storage maintainers
description:
  - Takes the attributes of a transfer driver's C(TM_MAD_CONF) block in oned.conf, written for the
    newest OpenNebula release, and returns the block the target release's own stock blocks would have.
  - Attributes the release does not know are left out, for example C(DS_LIVE_MIGRATE) and
    C(DS_MIGRATE_SNAP) before 7.2, C(DISK_TYPE) before 6.10, C(PERSISTENT_SNAPSHOTS) before 7.4.
  - A block that lacks an attribute every stock block of the release carries is an error that names it
    (C(DS_MIGRATE), C(DS_LIVE_MIGRATE) and C(DS_MIGRATE_SNAP) from 7.2 on; oned 7.x reads a missing
    C(DS_LIVE_MIGRATE) as C(NO)), and so is an attribute that no release knows.
  - Every role of the collection that writes a C(TM_MAD_CONF) block passes it through this filter.
options:
  _input:
    description: The block's attributes (name to value). C(NAME) may be left out.
    type: dict
    required: true
  release:
    description: The target OpenNebula release, for example C(7.4), C(7.4.0) or C(6.10.5).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Register a driver with the attributes of the installed release
  nebula.storage.oned_conf:
    path: /etc/one/oned.conf
    blocks:
      - attribute: TM_MAD_CONF
        match: {NAME: mydriver}
        set: "{{ my_attrs | nebula.storage.tm_mad_conf('6.10') }}"
  vars:
    my_attrs: {LN_TARGET: NONE, CLONE_TARGET: SYSTEM, SHARED: "YES", DS_MIGRATE: "YES",
               DS_LIVE_MIGRATE: "YES", DS_MIGRATE_SNAP: "YES"}
# -> {LN_TARGET: NONE, CLONE_TARGET: SYSTEM, SHARED: "YES", DS_MIGRATE: "YES"}
"""

RETURN = r"""
_value:
  description: The attributes of the input that the release knows, in their order.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.nebula.storage.plugins.module_utils._tm_mad_conf import (
    TmMadConfError,
    tm_mad_conf_for_release,
)


def tm_mad_conf(attrs, release):
    """See DOCUMENTATION."""
    try:
        return tm_mad_conf_for_release(attrs, release)
    except TmMadConfError as exc:
        raise AnsibleFilterError('nebula.storage.tm_mad_conf: %s' % exc)


class FilterModule(object):
    """nebula.storage filters."""

    def filters(self):
        return {'tm_mad_conf': tm_mad_conf}
