# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter nebula.storage.storpool_addon_plan: the StorPool addon's install plan (see module_utils/_storpool_plan.py)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
name: storpool_addon_plan
short_description: The StorPool addon's install plan for an OpenNebula release
version_added: 0.2.0
author: nebula.storage maintainers (@nebula-storage)
description:
  - Takes the addon's source tree as listed by M(ansible.builtin.find) (C(recurse), C(follow), C(get_checksum)) and
    returns which file goes where, the patches and the C(TM_MAD_CONF) block for the release, or fails naming the
    release and the supported list.
  - The supported releases are those whose C(scripts/install-<release>.sh) is the addon's C(scripts/install-6.4.sh).
positional: src_dir, version
options:
  _input:
    description:
      - The C(files) of an M(ansible.builtin.find) result over a source tree on the front-end (C(recurse), C(follow),
        C(get_checksum)), or V(None) for a source on the controller, which is then walked by the filter itself.
    type: list
    elements: dict
    required: true
  src_dir:
    description: The source directory the paths start with.
    type: str
    required: true
  version:
    description: OpenNebula's version on the front-end (C(remotes/VERSION)).
    type: str
    required: true
  force:
    description: A supported release to install for instead of O(version).
    type: str
    default: ''
  probes:
    description: Whether C(remotes/im/kvm-probes.d/host/system) exists.
    type: bool
    default: true
  tweaks:
    description: Deploy tweaks to enable.
    type: list
    elements: str
    default: []
  enabled:
    description: Deploy tweaks already in C(deploy-tweaks.d) (refreshed from the source).
    type: list
    elements: str
    default: []
  rc_text:
    description: The installed addon-storpoolrc (its C(DEPLOY_TWEAKS) are refreshed too).
    type: str
    default: ''
  legacy:
    description: Write the 5.10-era C(TM_MAD_CONF) block.
    type: bool
    default: false
  tm_extra:
    description: C(TM_MAD_CONF) keys that override the computed ones.
    type: dict
    default: {}
  links:
    description: Checksums (a dict of relative path to sha1) of the symlinks of a front-end source that the plan compares.
    type: dict
    default: {}
  scratch:
    description:
      - A directory on the controller for patched copies of addon files that the addon's patches change; empty
        when the source is on the front-end (then the patches are read there).
    type: str
    default: ''
'''

EXAMPLES = r'''
plan: "{{ tree.files | nebula.storage.storpool_addon_plan('/srv/addon-storpool', '7.2.0') }}"
'''

RETURN = r'''
_value:
  description: C(version), C(release), C(forced), C(warning), C(files) (C(src), C(dest), C(base), C(mode), C(force)),
    C(absent), C(patches), C(self_patched), C(self_patches), C(tm_mad_conf) (C(set), C(unset)), C(units), C(timers).
  type: dict
'''

import hashlib
import os

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible.utils.display import Display

from ansible_collections.nebula.storage.plugins.module_utils._file_tree import TreeError, patch_targets

from ansible_collections.nebula.storage.plugins.module_utils._storpool_plan import PlanError, plan


def tree_checksums(found, src_dir, links=None):
    """{relative path: checksum} of the files under src_dir, symlinks followed.

    With ``found`` (a find listing, for a source on the front-end) symlinks have no checksum there:
    ``links`` gives those the plan compares (``{relative path: checksum}``, from stat with follow).
    Without it, the source is on the controller and is walked here.
    """
    prefix = src_dir.rstrip('/') + '/'
    out = {}
    if found is None:
        for dirpath, dirnames, names in os.walk(src_dir, followlinks=True):
            dirnames[:] = [d for d in dirnames if not (dirpath == src_dir.rstrip('/') and d in ('.git', '.github'))]
            for name in names:
                path = os.path.join(dirpath, name)
                if not os.path.isfile(path):
                    continue
                h = hashlib.sha1()
                with open(path, 'rb') as f:
                    h.update(f.read())
                out[path[len(prefix):]] = h.hexdigest()
        return out
    for f in found:
        path = f.get('path', '')
        if f.get('isdir') or not path.startswith(prefix):
            continue
        rel = path[len(prefix):]
        if rel.startswith('.git/') or rel.startswith('.github/'):
            continue
        out[rel] = f.get('checksum', '')
    out.update(links or {})
    return out


def storpool_addon_plan(found, src_dir, version, force='', probes=True, tweaks=(), enabled=(), rc_text='',
                        legacy=False, tm_extra=None, scratch='', links=None):
    files = tree_checksums(found, src_dir, links)
    if not files:
        raise AnsibleFilterError('storpool_addon_src: %s has no files' % src_dir)
    try:
        result = plan(files, to_native(version), force=to_native(force or ''), probes=bool(probes), tweaks=list(tweaks or []),
                      enabled=list(enabled or []), rc_text=to_native(rc_text or ''), legacy=bool(legacy),
                      tm_extra=dict(tm_extra or {}), label=src_dir)
    except PlanError as e:
        raise AnsibleFilterError(to_native(e))
    if result['warning']:
        Display().warning(result['warning'])
    prefix = src_dir.rstrip('/') + '/'
    patches = []
    for name in result['patches']:
        entry = {'name': name, 'src': prefix + name}
        if scratch:  # the source is on the controller: read the patch here
            try:
                with open(prefix + name, 'rb') as f:
                    entry['content'] = f.read().decode('utf-8', 'surrogateescape')
                entry['targets'] = patch_targets(entry['content'])
            except (IOError, OSError, TreeError) as e:
                raise AnsibleFilterError('storpool_addon_src: cannot read the patch %s: %s' % (prefix + name, to_native(e)))
        patches.append(entry)
    # addon files that a patch changes after install.sh copied them (7.x: datastore/xpath-sp.rb):
    # the role installs them already patched, from a patched copy in `scratch` on the controller
    self_patched = []
    for entry in result['files']:
        entry['src'] = prefix + entry['src']
        target = 'remotes/' + entry['dest']
        names = [p['name'] for p in patches if entry['base'] == 'remotes' and target in p.get('targets', [])]
        if names and scratch:
            self_patched.append({'src': entry['src'], 'dest': target, 'scratch': scratch.rstrip('/') + '/' + target,
                                 'patches': names})
            entry['src'] = scratch.rstrip('/') + '/' + target
    mine = [s['dest'] for s in self_patched]
    result['self_patched'] = self_patched
    result['self_patches'] = [dict(name=p['name'], content=p['content']) for p in patches
                              if p.get('targets') and all(t in mine for t in p['targets'])]
    # the patches of OpenNebula's own files, applied on the front-end (those of addon files are in the
    # patched copies already, so that a check run on a fresh front-end does not look for files not yet there)
    done = [p['name'] for p in result['self_patches']]
    result['all_patches'] = [p['name'] for p in patches]
    result['patches'] = [p for p in patches if p['name'] not in done]
    return result


class FilterModule(object):
    def filters(self):
        return {'storpool_addon_plan': storpool_addon_plan}
