#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: one_host_attributes
short_description: Set or remove attributes of an OpenNebula host template through oned's XML-RPC API
version_added: 0.1.0
description:
  - Merges the given attributes into the template of the host named O(name), or removes them, and leaves every
    other attribute alone. For example C(REPLICA_STORAGE_IP) on the replica host of a OneStor cluster.
  - Talks to oned's XML-RPC API with the Python standard library only (C(one.hostpool.info), C(one.host.update)).
  - The endpoint comes from O(api_url), E(ONE_XMLRPC), C(~/.one/one_endpoint) or C(http://localhost:2633/RPC2);
    credentials from O(api_username)/O(api_password), the file named by E(ONE_AUTH) or C(~/.one/one_auth).
author: nebula.storage maintainers (@nebula-storage)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
options:
  name:
    description: Name of the host in OpenNebula. If two hosts have this name the module fails and lists their IDs.
    type: str
    required: true
  attributes:
    description:
      - Attributes to set (O(state=present)) or remove (O(state=absent)). Keys are case-insensitive.
      - With O(state=absent) only the keys count; the values are ignored.
    type: dict
    required: true
  state:
    description:
      - V(present) sets the attributes with C(one.host.update) in merge mode.
      - V(absent) removes them, rewriting the template without them (C(one.host.update) in replace mode).
    type: str
    choices: [present, absent]
    default: present
  api_url:
    description: URL of oned's XML-RPC endpoint.
    type: str
  api_username:
    description: OpenNebula user.
    type: str
  api_password:
    description: Password of O(api_username).
    type: str
notes:
  - Attributes that the monitoring probes fill in (C(HOSTNAME), C(ARCH), C(HYPERVISOR), ...) come back on the next
    monitoring cycle; the module warns when asked to remove one.
seealso:
  - module: nebula.storage.one_datastore
'''

EXAMPLES = r'''
- name: Storage IP of the OneStor replica host
  nebula.storage.one_host_attributes:
    name: cluster100-host1
    attributes:
      REPLICA_STORAGE_IP: 198.18.5.21

- name: Remove it again
  nebula.storage.one_host_attributes:
    name: cluster100-host1
    attributes:
      REPLICA_STORAGE_IP: ""
    state: absent
'''

RETURN = r'''
id:
  description: ID of the host.
  returned: success
  type: int
  sample: 0
diff:
  description: Host template before and after, in oned's C(KEY = "value") syntax.
  returned: success
  type: dict
attributes:
  description: The single-value attributes of the host template after the run.
  returned: success
  type: dict
  sample: {REPLICA_STORAGE_IP: 198.18.5.21, HOSTNAME: cluster100-host1}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nebula.storage.plugins.module_utils._one_api import (
    API_ARGUMENT_SPEC,
    check_key,
    find_by_name,
    is_oned_owned,
    normalize_value,
    render_template_text,
    run_api_module,
    singles,
)


def wanted(params):
    out = []
    seen = {}
    for raw_key, raw_value in params['attributes'].items():
        try:
            key = check_key(raw_key)
        except ValueError as e:
            raise ValueError('attributes: %s' % e)
        if key in seen:
            raise ValueError('attributes.%s and attributes.%s name the same attribute %s' % (seen[key], raw_key, key))
        seen[key] = raw_key
        if params['state'] == 'absent':
            out.append((key, None))
            continue
        if isinstance(raw_value, (dict, list)):
            raise ValueError('attributes.%s: vector attributes are not supported, give a string' % raw_key)
        try:
            out.append((key, normalize_value(raw_value)))
        except TypeError as e:
            raise ValueError('attributes.%s: %s' % (raw_key, e))
    return out


def run(module, client):
    p = module.params
    pairs = wanted(p)
    host = find_by_name(client.hosts(), p['name'], 'host')
    if host is None:
        module.fail_json(msg='no OpenNebula host is named %r' % p['name'])
    current = singles(host['template'])
    if p['state'] == 'present':
        changes = [(k, v) for k, v in pairs if current.get(k) != v]
        removals = []
    else:
        changes = []
        names = set(k for k, unused in pairs)
        removals = [k for k in names if any(key == k for key, unused in host['template'])]
        owned = sorted(k for k in names if is_oned_owned(k, 'HOST'))
        if owned:
            module.warn('oned monitoring sets %s itself; removed values come back on the next monitoring cycle' % ', '.join(owned))
    changed_keys = set(k for k, unused in changes)
    new_template = [(k, v) for k, v in host['template'] if k not in removals and k not in changed_keys] + changes
    result = dict(changed=bool(changes or removals), id=host['id'], attributes=singles(host['template']),
                  diff=dict(before=render_template_text(host['template'], strict=False), after=render_template_text(new_template, strict=False)))
    if not result['changed'] or module.check_mode:
        if module.check_mode:
            result['attributes'] = singles(new_template)
        return result
    if removals:
        client.host_update(host['id'], new_template, merge=False)
    else:
        client.host_update(host['id'], changes, merge=True)
    after = client.host(host['id'])
    result['attributes'] = singles(after['template'])
    result['diff']['after'] = render_template_text(after['template'], strict=False)
    return result


def argument_spec():
    spec = dict(
        name=dict(type='str', required=True),
        attributes=dict(type='dict', required=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    spec.update(API_ARGUMENT_SPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_together=[('api_username', 'api_password')],
                           supports_check_mode=True)
    run_api_module(module, wanted, run)


if __name__ == '__main__':
    main()
