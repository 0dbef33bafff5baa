# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of nebula.storage.file_tree: the controller's files travel by hash first, by content when needed.

1. Read every ``files[].src`` on the controller (symlinks followed, as ``cp -L``) and hash it.
2. Call the module with the hashes only: it compares them on the target and, with nothing to do
   (or in check mode), answers at once: one round trip.
3. When it answers ``need_content``, call it once more with those files' contents (base64).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import base64
import hashlib

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

MODULE = 'nebula.storage.file_tree'


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('dest', 'files', 'absent', 'owner', 'group', 'remote_src'))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if args.get('remote_src'):
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        files = args.get('files') or []
        if not isinstance(files, list):
            raise AnsibleActionFail('files: a list of {src, dest, mode} is expected')
        contents = {}
        planned = []
        for item in files:
            if not isinstance(item, dict) or 'src' not in item or 'dest' not in item:
                raise AnsibleActionFail('files: every entry needs src and dest (got %r)' % (item,))
            src = self._loader.path_dwim(to_native(item['src']))
            try:
                with open(src, 'rb') as f:
                    data = f.read()
            except (IOError, OSError) as e:
                raise AnsibleActionFail('files[].src: cannot read %s on the controller: %s' % (src, to_native(e)))
            entry = dict(item)
            entry['src'] = src
            entry['sha256'] = hashlib.sha256(data).hexdigest()
            entry.pop('content', None)
            contents[str(item['dest'])] = data
            planned.append(entry)
        args['files'] = planned
        first = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        if first.get('failed') or not first.get('need_content'):
            result.update(first)
            return result
        need = set(first['need_content'])
        args['files'] = [dict(e, content=to_native(base64.b64encode(contents[str(e['dest'])])))
                         if str(e['dest']) in need else e for e in planned]
        second = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        second.pop('need_content', None)
        result.update(second)
        return result
