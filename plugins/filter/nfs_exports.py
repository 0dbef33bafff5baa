# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the nfs_shared role: its planning and checks, in Python (plugins/module_utils/_nfs_plan.py)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
name: nfs_exports
short_description: Check and normalise the NFS exports of the nfs_shared role
version_added: 0.2.0
description:
  - Computes the exports of the C(nebula.storage.nfs_shared) role and every error in its inputs, on the controller,
    before anything changes. Every error names the variable it comes from.
  - Client networks are normalised (host bits cleared, C(address/netmask) turned into CIDR, nested and adjacent
    networks merged, IPv4 first). Without O(clients), they come from the hosts' addresses, one /32 (/128) per host
    (O(mode=per_host)) or the hosts' whole networks (O(mode=networks)).
  - An export is root-owning when it has C(no_root_squash), C(anonuid=0) or C(anongid=0). A root-owning export to
    C(*) or to a network wider than O(min_prefix_v4) (IPv4) or O(min_prefix_v6) (IPv6) is refused unless
    O(allow_wide=true). IPv4 written as IPv6 (C(::ffff:0.0.0.0/96) and the other IPv4-in-IPv6 prefixes) is judged as
    the IPv4 network it stands for.
  - Export paths are normalised (C(//), C(.), C(..), trailing slashes); C(/), the system directories (C(/etc),
    C(/usr), C(/var), C(/var/lib), ...) and oneadmin's home C(/var/lib/one) are refused.
positional: _input
options:
  _input:
    description: The exports (C(nfs_shared_exports)), a list of paths or of dicts with C(path), C(options),
      C(clients), C(mount_options), C(mode); or a comma-separated string of paths.
    type: raw
    required: true
  clients:
    description: Client networks of exports without their own (C(nfs_shared_clients)); a list or a comma-separated
      string. Empty computes them from O(hosts).
    type: raw
    default: []
  hosts:
    description: Names of the hosts whose addresses give the clients when O(clients) is empty.
    type: list
    elements: str
    default: []
  hostvars:
    description: C(hostvars); a host's address is its C(nfs_shared_host_address), else its default IPv4 fact.
    type: raw
    default: {}
  hosts_group:
    description: Name of the hosts group, for messages.
    type: str
    default: hosts
  mode:
    description: How clients are computed from the hosts' addresses.
    type: str
    default: per_host
    choices: [per_host, networks]
  export_options:
    description: Export options of exports without their own (C(nfs_shared_export_options)).
    type: raw
    default: rw,sync,no_subtree_check,no_root_squash
  export_mode:
    description: Mode of exported directories without their own.
    type: str
    default: "0750"
  allow_wide:
    description: Allow root-owning exports to C(*) and to networks wider than the prefixes below.
    type: bool
    default: false
  min_prefix_v4:
    description: Shortest IPv4 prefix a root-owning export may have as client.
    type: int
    default: 16
  min_prefix_v6:
    description: Shortest IPv6 prefix a root-owning export may have as client.
    type: int
    default: 48
'''

EXAMPLES = r'''
- name: Plan the exports
  ansible.builtin.set_fact:
    plan: >-
      {{ nfs_shared_exports | nebula.storage.nfs_exports(clients=nfs_shared_clients,
         hosts=groups['hosts'], hostvars=hostvars, mode='per_host') }}

- name: Refuse bad input
  ansible.builtin.assert:
    that: plan.errors | length == 0
    fail_msg: "{{ plan.errors | join('; ') }}"
'''

RETURN = r'''
_value:
  description: The plan.
  type: dict
  contains:
    errors:
      description: Every error in the inputs, each naming its variable; empty when the inputs are usable.
      type: list
      elements: str
    exports:
      description: The exports, each with C(path) (normalised), C(options) (list), C(clients) (merged networks or
        C(*)), C(access) (C(RW)/C(RO)), C(squash) (ganesha's C(No_Root_Squash)/C(Root_Squash)/C(All_Squash)),
        C(anonuid), C(anongid), C(mount_options) and C(mode).
      type: list
      elements: dict
    clients:
      description: The client networks of exports without their own.
      type: list
      elements: str
    source:
      description: Where those clients came from, for messages.
      type: str
'''

from ansible_collections.nebula.storage.plugins.module_utils._nfs_plan import (
    host_addresses,
    plan_exports,
)


def nfs_exports(exports, clients=None, hosts=None, hostvars=None, hosts_group='hosts', mode='per_host',
                export_options='rw,sync,no_subtree_check,no_root_squash', export_mode='0750',
                allow_wide=False, min_prefix_v4=16, min_prefix_v6=48):
    """The exports plan of the nfs_shared role (see DOCUMENTATION)."""
    host_values, errors = [], []
    if not clients:
        host_values, errors = host_addresses(hosts or [], hostvars or {})
    plan = plan_exports(exports, clients=clients, host_values=host_values, hosts_group=hosts_group, mode=mode,
                        export_options=export_options, export_mode=export_mode, allow_wide=allow_wide,
                        min_prefix_v4=min_prefix_v4, min_prefix_v6=min_prefix_v6)
    plan['errors'] = errors + plan['errors']
    return plan


class FilterModule(object):
    """nfs_shared filters."""

    def filters(self):
        return {
            'nfs_exports': nfs_exports,
        }
