#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: one_datastore
short_description: Manage OpenNebula datastores through oned's XML-RPC API, idempotent by name
version_added: 0.1.0
description:
  - Creates, updates and deletes an OpenNebula datastore identified by its O(name), talking to oned's XML-RPC API
    with the Python standard library only (no C(pyone), no C(onedatastore) CLI needed).
  - Templates are compared key by key, case-insensitively on keys, ignoring the attributes that oned fills in
    itself from C(TM_MAD_CONF)/C(DS_MAD_CONF) (C(SHARED), C(DS_MIGRATE), C(LN_TARGET), C(CLONE_TARGET), C(DISK_TYPE),
    C(ALLOW_ORPHANS), C(SAFE_DIRS), C(RESTRICTED_DIRS), ...) unless they are set explicitly.
  - The endpoint comes from O(api_url), E(ONE_XMLRPC), C(~/.one/one_endpoint) or C(http://localhost:2633/RPC2);
    credentials from O(api_username)/O(api_password), the file named by E(ONE_AUTH) or C(~/.one/one_auth),
    the same rules as OpenNebula's CLI.
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
    description: Name of the datastore. If two datastores have this name the module fails and lists their IDs.
    type: str
    required: true
  type:
    description:
      - Datastore type, sent as C(TYPE=SYSTEM_DS), C(IMAGE_DS) or C(FILE_DS). Required with O(state=present).
    type: str
    choices: [system, image, file]
  template:
    description:
      - Template attributes, for example C(TM_MAD), C(DS_MAD), C(BRIDGE_LIST), C(REPLICA_HOST).
      - Keys are case-insensitive; values are strings, numbers or booleans (booleans become C(YES)/C(NO)).
      - C(NAME) is not allowed here (use O(name)) and C(TYPE) comes from O(type).
    type: dict
    default: {}
  clusters:
    description:
      - Cluster IDs the datastore must belong to. Missing memberships are added.
      - When omitted, memberships are not managed. A new datastore without clusters goes to oned's default cluster 0
        (with O(clusters=[]) and O(clusters_exclusive=true) it is removed from there).
    type: list
    elements: int
  clusters_exclusive:
    description: Also remove the datastore from clusters not listed in O(clusters).
    type: bool
    default: false
  attributes:
    description:
      - V(merge) sets only the given keys and leaves the others alone.
      - V(exact) also removes the keys not given, except the ones oned fills in itself and C(TM_MAD)/C(DS_MAD)/C(TYPE).
    type: str
    choices: [merge, exact]
    default: merge
  state:
    description:
      - V(present) creates or updates the datastore, V(absent) deletes it.
      - V(absent) refuses a datastore that still holds images, unless O(force=true).
    type: str
    choices: [present, absent]
    default: present
  enabled:
    description:
      - Enable or disable a system datastore (oned only enables or disables C(SYSTEM_DS)).
      - When omitted the datastore state is not managed.
    type: bool
  force:
    description:
      - With O(state=absent), skip the module's own check for images and send the delete to oned anyway.
      - oned itself still refuses to drop a datastore that holds images (C(Datastore N is not empty)).
    type: bool
    default: false
  api_url:
    description: URL of oned's XML-RPC endpoint. Defaults to E(ONE_XMLRPC), C(~/.one/one_endpoint), C(http://localhost:2633/RPC2).
    type: str
  api_username:
    description: OpenNebula user. Defaults to the user in E(ONE_AUTH) or C(~/.one/one_auth).
    type: str
  api_password:
    description: Password of O(api_username).
    type: str
notes:
  - oned rewrites some attributes from C(TM_MAD_CONF) on every update; setting one of them to another value makes the
    module fail after the update and name the attribute, instead of reporting a change on every run.
seealso:
  - module: nebula.storage.one_host_attributes
'''

EXAMPLES = r'''
- name: OneStor system datastore of cluster 100
  nebula.storage.one_datastore:
    name: system_replica_1
    type: system
    template:
      TM_MAD: ssh
      REPLICA_HOST: cluster100-host1
    clusters: [100]
    enabled: true

- name: StorPool image datastore
  nebula.storage.one_datastore:
    name: storpool_images
    type: image
    template:
      DS_MAD: storpool
      TM_MAD: storpool
      DISK_TYPE: block
      BRIDGE_LIST: node1 node2
    attributes: exact

- name: Remove a datastore
  nebula.storage.one_datastore:
    name: old_images
    state: absent
'''

RETURN = r'''
id:
  description: ID of the datastore (null when it does not exist or would be created in check mode).
  returned: always
  type: int
  sample: 100
diff:
  description: Template before and after, in oned's C(KEY = "value") syntax, with clusters and state as comments.
  returned: always
  type: dict
  sample: {before: "", after: "TYPE = \"SYSTEM_DS\"\nTM_MAD = \"ssh\"\n"}
datastore:
  description: Summary of the datastore after the run (empty when absent).
  returned: always
  type: dict
  sample: {id: 100, name: system_replica_1, type: SYSTEM_DS, tm_mad: ssh, ds_mad: "-", state: 0, clusters: [100],
           images: [], template: {TM_MAD: ssh, TYPE: SYSTEM_DS}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nebula.storage.plugins.module_utils._one_api import (
    API_ARGUMENT_SPEC,
    DATASTORE_TYPES,
    check_key,
    find_by_name,
    is_oned_owned,
    normalize_value,
    render_template_text,
    run_api_module,
    same_value,
    singles,
)

# Never removed in exact mode: oned needs them.
_KEEP = ('TM_MAD', 'DS_MAD', 'TYPE')


def desired_pairs(params):
    """The (KEY, value) pairs the user asks for, TYPE first."""
    ds_type = DATASTORE_TYPES[params['type']]
    pairs = [('TYPE', ds_type)]
    seen = {'TYPE': 'type'}
    for raw_key, raw_value in (params['template'] or {}).items():
        try:
            key = check_key(raw_key)
        except ValueError as e:
            raise ValueError('template: %s' % e)
        if key == 'NAME':
            raise ValueError('template.%s: set the datastore name with the name option' % raw_key)
        if isinstance(raw_value, (dict, list)):
            raise ValueError('template.%s: vector attributes are not supported, give a string' % raw_key)
        try:
            value = normalize_value(raw_value)
        except TypeError as e:
            raise ValueError('template.%s: %s' % (raw_key, e))
        if key == 'TYPE':
            if value.upper() != ds_type:
                raise ValueError('template.%s=%s contradicts type=%s (%s)' % (raw_key, value, params['type'], ds_type))
            continue
        if key in seen:
            raise ValueError('template.%s and template.%s name the same attribute %s' % (seen[key], raw_key, key))
        seen[key] = raw_key
        pairs.append((key, value))
    return pairs


def summary(ds):
    if ds is None:
        return {}
    out = dict((k, v) for k, v in ds.items() if k != 'template')
    out['template'] = singles(ds['template'])
    return out


def diff_text(ds_template, clusters, enabled):
    head = ''
    if clusters is not None:
        head += '# CLUSTERS = %s\n' % ','.join(str(c) for c in sorted(clusters))
    if enabled is not None:
        head += '# STATE = %s\n' % ('READY' if enabled else 'DISABLED')
    return head + render_template_text(ds_template, strict=False)


def plan_template(ds, desired, mode):
    """Return (changes, removals, new_template) for an existing datastore."""
    current = singles(ds['template'])
    changes = [(k, v) for k, v in desired if not same_value(k, current.get(k), v)]
    removals = []
    if mode == 'exact':
        wanted = set(k for k, unused in desired)
        for key, unused in ds['template']:
            if key not in wanted and key not in _KEEP and not is_oned_owned(key, ds['type']) and key not in removals:
                removals.append(key)
    changed_keys = set(k for k, unused in changes)
    new_template = [(k, v) for k, v in ds['template'] if k not in removals and k not in changed_keys] + changes
    return changes, removals, new_template


def run(module, client):
    p = module.params
    name = p['name']
    ds = find_by_name(client.datastores(), name, 'datastore')
    result = dict(changed=False, id=ds['id'] if ds else None, datastore=summary(ds), diff=dict(before='', after=''))

    if p['state'] == 'absent':
        if ds is None:
            return result
        if ds['images'] and not p['force']:
            module.fail_json(msg='datastore %r (ID %d) still holds images %s; remove them first or set force=true'
                             % (name, ds['id'], ', '.join(str(i) for i in ds['images'])), id=ds['id'])
        result['diff'] = dict(before=diff_text(ds['template'], ds['clusters'], None), after='')
        result['changed'] = True
        result['datastore'] = {}
        if not module.check_mode:
            client.datastore_delete(ds['id'])
        return result

    desired = desired_pairs(p)
    is_system = DATASTORE_TYPES[p['type']] == 'SYSTEM_DS'
    if p['enabled'] is not None and not is_system:
        module.fail_json(msg='enabled applies to system datastores only (oned: "Only SYSTEM_DS can be disabled or enabled"); '
                             'datastore %r has type=%s' % (name, p['type']))
    clusters = p['clusters']

    if ds is None:
        # oned puts a datastore allocated without a cluster into the default cluster 0.
        after_clusters = clusters if clusters else ([] if clusters == [] and p['clusters_exclusive'] else [0])
        result['diff'] = dict(before='', after=diff_text(desired, after_clusters, p['enabled']))
        result['changed'] = True
        if module.check_mode:
            return result
        first = clusters[0] if clusters else -1
        oid = client.datastore_allocate([('NAME', name)] + desired, first)
        for cid in (clusters or [])[1:]:
            client.cluster_add_datastore(cid, oid)
        if clusters == [] and p['clusters_exclusive']:
            client.cluster_del_datastore(0, oid)
        if p['enabled'] is False:
            client.datastore_enable(oid, False)
        return verify(module, client, oid, desired, result, after_clusters)

    changes, removals, new_template = plan_template(ds, desired, p['attributes'])
    add, remove = [], []
    if clusters is not None:
        add = [c for c in clusters if c not in ds['clusters']]
        if p['clusters_exclusive']:
            remove = [c for c in ds['clusters'] if c not in clusters]
    toggle = p['enabled'] is not None and (ds['state'] == 0) != p['enabled']
    cur_enabled = None if p['enabled'] is None else ds['state'] == 0
    after_clusters = [c for c in ds['clusters'] if c not in remove] + add
    result['diff'] = dict(before=diff_text(ds['template'], ds['clusters'], cur_enabled),
                          after=diff_text(new_template, after_clusters, p['enabled']))
    if not (changes or removals or add or remove or toggle):
        return result
    result['changed'] = True
    if module.check_mode:
        return result
    if removals:
        client.datastore_update(ds['id'], new_template, merge=False)
    elif changes:
        client.datastore_update(ds['id'], changes, merge=True)
    for cid in add:
        client.cluster_add_datastore(cid, ds['id'])
    for cid in remove:
        client.cluster_del_datastore(cid, ds['id'])
    if toggle:
        client.datastore_enable(ds['id'], p['enabled'])
    return verify(module, client, ds['id'], desired, result, after_clusters)


def verify(module, client, oid, desired, result, after_clusters):
    """Re-read the datastore; fail if oned did not keep what was asked."""
    ds = client.datastore(oid)
    result['id'] = oid
    result['datastore'] = summary(ds)
    result['diff']['after'] = diff_text(ds['template'], ds['clusters'], None if module.params['enabled'] is None else ds['state'] == 0)
    current = singles(ds['template'])
    rewritten = ['%s=%s (asked %s)' % (k, current.get(k, '<unset>'), v) for k, v in desired if not same_value(k, current.get(k), v)]
    if rewritten:
        module.fail_json(msg='oned changed or dropped attributes of datastore %r (ID %d) after the update, so they would never converge: %s. '
                             'These are set by oned from TM_MAD_CONF/DS_MAD_CONF; remove them from template.'
                         % (module.params['name'], oid, '; '.join(rewritten)), **result)
    return result


def argument_spec():
    spec = dict(
        name=dict(type='str', required=True),
        type=dict(type='str', choices=['system', 'image', 'file']),
        template=dict(type='dict', default={}),
        clusters=dict(type='list', elements='int'),
        clusters_exclusive=dict(type='bool', default=False),
        attributes=dict(type='str', choices=['merge', 'exact'], default='merge'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        enabled=dict(type='bool'),
        force=dict(type='bool', default=False),
    )
    spec.update(API_ARGUMENT_SPEC)
    return spec


def validate(params):
    """Only a datastore that is to be present has a template to check."""
    if params['state'] == 'present':
        desired_pairs(params)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[('state', 'present', ('type',))],
        required_together=[('api_username', 'api_password')],
        supports_check_mode=True,
    )
    run_api_module(module, validate, run)


if __name__ == '__main__':
    main()
