# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``nebula.storage.storage_report`` filter: what playbooks/report.yml collected, as aligned text."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
name: storage_report
short_description: The operator's view of the storage backends, as aligned text
version_added: 0.2.0
author: nebula.storage maintainers
description:
  - Turns what C(playbooks/report.yml) read on each machine into one section per backend with aligned columns, listing
    the NFS exports with their clients and options, each host's NFS mounts, the datastores as
    C(onedatastore list) shows them (ID, NAME, TM, DS, CLUSTERS, and REPLICA_HOST where set), the replica host
    of each cluster, and the installed transfer drivers with a hash of their content.
  - Reads text only; it contacts nothing.
options:
  _input:
    description:
      - Per machine (inventory name), a dictionary with any of C(frontend) (bool), C(backends) (list),
        C(exports) (text of the kernel exports file), C(ganesha) (text of the nfs-ganesha EXPORT blocks),
        C(fstab) (text), C(datastores) (oned's XML-RPC answer to C(one.datastorepool.info)) and
        C(tm_files) (the C(ansible.builtin.find) result list of the transfer drivers' files with checksums).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Print the report
  ansible.builtin.debug:
    msg: "{{ collected | nebula.storage.storage_report }}"
"""

RETURN = r"""
_value:
  description: The report, one line per row.
  type: str
"""

import hashlib
import re
import xml.etree.ElementTree as ET

from ansible.errors import AnsibleFilterError

# backend -> its transfer driver (TM_MAD)
BACKENDS = (
    ('nfs_shared', 'nfs_shared'),
    ('onestor_replica', 'onestor'),
    ('gfs2_clvm', 'gfs2clvm'),
    ('storpool_addon', 'storpool'),
)


def table(header, rows, indent='  '):
    """Aligned columns; the last column is not padded."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    out = []
    for r in [header] + rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths[:-1])] + [r[-1]]
        out.append((indent + '  '.join(cells)).rstrip())
    return out


def kernel_exports(text):
    """exports(5) lines -> [(path, client, options)]."""
    out = []
    for line in (text or '').splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        words = line.split()
        for client in words[1:]:
            m = re.match(r'^([^()]*)\((.*)\)$', client)
            out.append((words[0], m.group(1) if m else client, m.group(2) if m else ''))
    return out


def ganesha_exports(text):
    """nfs-ganesha EXPORT blocks -> [(path, clients, 'access,squash')]."""
    out = []
    text = re.sub(r'#[^\n]*', '', text or '')
    for block in re.findall(r'EXPORT\s*\{(.*?)\n\}', text, re.S):
        path = re.search(r'\bPath\s*=\s*"?([^";]+)"?\s*;', block)
        for client in re.findall(r'CLIENT\s*\{(.*?)\}', block, re.S):
            clients = re.search(r'\bClients\s*=\s*([^;]+);', client)
            access = re.search(r'\bAccess_Type\s*=\s*([^;]+);', client)
            squash = re.search(r'\bSquash\s*=\s*([^;]+);', client)
            out.append((path.group(1).strip() if path else '?',
                        clients.group(1).strip().replace(' ', '') if clients else '?',
                        ','.join(x.group(1).strip() for x in (access, squash) if x)))
    return out


def nfs_mounts(text):
    """fstab lines of type nfs/nfs4 -> [(source, mount point, options)]."""
    out = []
    for line in (text or '').splitlines():
        words = line.split('#', 1)[0].split()
        if len(words) >= 4 and words[2] in ('nfs', 'nfs4'):
            out.append((words[0], words[1], words[3]))
    return out


def datastores(answer):
    """oned's XML-RPC answer to one.datastorepool.info -> [dict] (ID, NAME, TM, DS, CLUSTERS, REPLICA_HOST)."""
    if not answer:
        return []
    try:
        resp = ET.fromstring(answer)
        values = resp.findall('./params/param/value/array/data/value')
        ok = values[0].find('boolean').text.strip() == '1'
        body = values[1].find('string')
        body = body.text if body is not None else values[1].text
        if not ok:
            raise AnsibleFilterError('nebula.storage.storage_report: oned answered: %s' % body)
        pool = ET.fromstring(body)
    except (ET.ParseError, IndexError, AttributeError) as exc:
        raise AnsibleFilterError('nebula.storage.storage_report: not a datastore pool answer: %s' % exc)
    out = []
    for ds in pool.findall('DATASTORE'):
        out.append({
            'ID': ds.findtext('ID', ''), 'NAME': ds.findtext('NAME', ''),
            'TM': ds.findtext('TM_MAD', ''), 'DS': ds.findtext('DS_MAD', '') or '-',
            'CLUSTERS': ','.join(c.text for c in ds.findall('CLUSTERS/ID') if c.text) or '-',
            'REPLICA_HOST': ds.findtext('TEMPLATE/REPLICA_HOST', ''),
        })
    return sorted(out, key=lambda d: int(d['ID']) if d['ID'].isdigit() else 0)


def driver_hashes(files):
    """find results under .../tm/<driver>/ -> {driver: (sha256 of 'relpath checksum' lines, file count)}."""
    per = {}
    for f in files or []:
        m = re.search(r'/tm/([^/]+)/(.+)$', f.get('path', ''))
        if m:
            per.setdefault(m.group(1), []).append('%s %s' % (m.group(2), f.get('checksum', '')))
    return {d: (hashlib.sha256('\n'.join(sorted(lines)).encode()).hexdigest(), len(lines)) for d, lines in per.items()}


def storage_report(collected):
    """See DOCUMENTATION."""
    if not isinstance(collected, dict):
        raise AnsibleFilterError('nebula.storage.storage_report: expects a dict of machines')
    machines = sorted(collected)
    out = []
    for backend, tm in BACKENDS:
        members = [m for m in machines if backend in (collected[m].get('backends') or [])]
        if not members:
            continue
        fes = [m for m in members if collected[m].get('frontend')]
        hosts = [m for m in members if not collected[m].get('frontend')]
        out.append('== %s ' % backend + '=' * max(3, 70 - len(backend)))
        out.append('machines: front-end %s; hosts %s' % (', '.join(fes) or '-', ', '.join(hosts) or '-'))
        if backend == 'nfs_shared':
            rows = []
            for m in fes:
                rows += [(m, p, c, o) for p, c, o in kernel_exports(collected[m].get('exports'))]
                rows += [(m, p, c, o) for p, c, o in ganesha_exports(collected[m].get('ganesha'))]
            out.append('exports:')
            out += table(['SERVER', 'PATH', 'CLIENTS', 'OPTIONS'], rows) if rows else ['  (none)']
            rows = [(m, s, p, o) for m in hosts for s, p, o in nfs_mounts(collected[m].get('fstab'))]
            out.append('mounts:')
            out += table(['HOST', 'SOURCE', 'MOUNT POINT', 'OPTIONS'], rows) if rows else ['  (none)']
        dss = [d for m in fes for d in datastores(collected[m].get('datastores')) if d['TM'] == tm]
        out.append('datastores (TM %s):' % tm)
        if dss:
            header = ['ID', 'NAME', 'TM', 'DS', 'CLUSTERS'] + (['REPLICA_HOST'] if any(d['REPLICA_HOST'] for d in dss) else [])
            out += table(header, [[d[k] or '-' for k in header] for d in dss])
        else:
            out.append('  (none)')
        if backend == 'onestor_replica':
            rows = sorted({(c, d['REPLICA_HOST']) for d in dss if d['REPLICA_HOST'] for c in d['CLUSTERS'].split(',')})
            out.append('replica hosts:')
            out += table(['CLUSTER', 'REPLICA_HOST'], rows) if rows else ['  (none)']
        rows = []
        for m in fes:
            for name, (digest, count) in sorted(driver_hashes(collected[m].get('tm_files')).items()):
                if name == tm:
                    rows.append((m, name, 'sha256:%s' % digest[:16], count))
        out.append('transfer driver:')
        out += table(['FRONT-END', 'DRIVER', 'CONTENT', 'FILES'], rows) if rows else ['  %s not installed' % tm]
        out.append('')
    if not out:
        out.append('no machine is in a backend group (nfs_shared, onestor_replica, gfs2_clvm, storpool_addon)')
    return '\n'.join(out).rstrip('\n')


class FilterModule(object):
    """nebula.storage filters."""

    def filters(self):
        return {'storage_report': storage_report}
