# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The nfs_shared role's rules: exports, their clients, and OpenNebula's NFS auto-mount attributes.

Private module of the nebula.storage collection; its API may change without notice.
The role calls it through the filters of ``plugins/filter/nfs_exports.py``; it only
computes and checks, it never touches a machine.

Client networks are normalised with the standard library's ``ipaddress``: host
bits cleared, ``address/netmask`` turned into CIDR, nested and adjacent networks
merged, duplicates dropped, IPv4 before IPv6. IPv4 written as IPv6 (mapped
``::ffff:a.b.c.d``, translated ``::ffff:0:a.b.c.d``, compatible ``::a.b.c.d``,
NAT64 ``64:ff9b::a.b.c.d``) is judged as the IPv4 network it stands for, because
an NFS server matches IPv4 clients against those forms too.

An export is *root-owning* when a client's root acts as uid 0 or gid 0 on the
server: ``no_root_squash``, or ``anonuid=0``/``anongid=0`` (squashed users become
root). A root-owning export to ``*`` or to a network wider than the allowed
prefix (/16 IPv4, /48 IPv6 by default) is refused unless explicitly allowed.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import ipaddress
import json
import posixpath
import re

try:
    from typing import Any, Dict, List, Optional, Tuple  # noqa: F401  pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass

HINT = ' (expected CIDR such as 192.168.0.0/24, address/netmask such as 192.168.0.0/255.255.255.0, an address, or *)'
EXPORT_KEYS = ('path', 'options', 'clients', 'mount_options', 'mode')
MODES = ('per_host', 'networks')

# IPv6 prefixes whose last 32 bits carry an IPv4 address.
V4_IN_V6 = tuple(ipaddress.ip_network(n) for n in ('::ffff:0:0/96', '::ffff:0:0:0/96', '::/96', '64:ff9b::/96'))

# Never exported: the root, the system's own trees and oneadmin's home (its one_auth and ssh keys).
SYSTEM_DIRS = frozenset((
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/media', '/mnt', '/opt',
    '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/lib', '/usr/lib32',
    '/usr/lib64', '/usr/libexec', '/usr/local', '/usr/sbin', '/usr/share', '/var', '/var/backups', '/var/cache',
    '/var/lib', '/var/local', '/var/lock', '/var/log', '/var/mail', '/var/opt', '/var/run', '/var/spool', '/var/tmp',
    '/var/lib/one',
))
# Nothing below these is exported either.
SYSTEM_TREES = ('/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/root', '/run',
                '/sbin', '/sys', '/usr', '/var/lib/one/.one', '/var/lib/one/.ssh')

OPTION_RE = re.compile(r'^[a-z_]+(=[A-Za-z0-9_.:/@-]+)?$')
PATH_RE = re.compile(r'^/[^\s"\'\\#(),]*$')
MODE_RE = re.compile(r'^[0-7]{3,4}$')

NFS_AUTO = ('NFS_AUTO_ENABLE', 'NFS_AUTO_HOST', 'NFS_AUTO_PATH', 'NFS_AUTO_OPTS')


class PlanError(ValueError):
    """Bad input; the message names the variable."""


def _flat(value):
    """AWX surveys and -e give flat strings: "a, b" is a list of two."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(',') if v.strip()]
    return value


def _bool(value, name):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('1', 'true', 'yes', 'on', 'y', 't'):
        return True
    if text in ('0', 'false', 'no', 'off', 'n', 'f', ''):
        return False
    raise PlanError('%s: %s is not a boolean' % (name, json.dumps(str(value))))


def _int(value, name, low, high):
    try:
        number = int(str(value).strip())
    except ValueError:
        raise PlanError('%s: %s is not an integer' % (name, json.dumps(str(value))))
    if not low <= number <= high:
        raise PlanError('%s: %d is not between %d and %d' % (name, number, low, high))
    return number


def as_ipv4(net):
    """The IPv4 network an IPv4-in-IPv6 network stands for, the whole IPv4 space for a network holding one of those
    prefixes, else None."""
    if net.version == 4:
        return net
    for prefix in V4_IN_V6:
        if net.subnet_of(prefix):
            v4 = int(net.network_address) & 0xFFFFFFFF
            return ipaddress.IPv4Network((v4, net.prefixlen - 96))
        if prefix.subnet_of(net):
            return ipaddress.IPv4Network('0.0.0.0/0')
    return None


def parse_network(value):
    # type: (Any) -> Optional[Any]
    """An ``ipaddress`` network for CIDR, ``address/netmask`` or an address; None if invalid."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not re.match(r'^([0-9]{1,3}(\.[0-9]{1,3}){3}(/([0-9]{1,2}|[0-9]{1,3}(\.[0-9]{1,3}){3}))?'
                    r'|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?)$', text):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


MAPPED = ipaddress.ip_network('::ffff:0:0/96')


def network_text(net):
    """``str(net)``, except that an IPv4-mapped network is always written ``::ffff:a.b.c.d/len``: Python 3.13
    writes it so, 3.12 and older write ``::ffff:a0b:c0d/len``, and /etc/exports must not change with the
    controller's Python."""
    if net.version == 6 and net.subnet_of(MAPPED):
        return '::ffff:%s/%d' % (ipaddress.IPv4Address(int(net.network_address) & 0xFFFFFFFF), net.prefixlen)
    return str(net)


def merge(networks):
    """Merged networks, IPv4 first, as strings; ``*`` swallows everything."""
    if '*' in networks:
        return ['*']
    out = []
    for version in (4, 6):
        nets = [n for n in networks if n.version == version]
        out.extend(network_text(n) for n in ipaddress.collapse_addresses(nets))
    return out


def normalise_path(value):
    """The path as the server resolves it lexically: no ``//``, ``.``, ``..`` or trailing slash."""
    path = posixpath.normpath(value)
    return '/' + path.lstrip('/')


def system_path(path):
    """Why ``path`` (normalised) must not be exported, or None."""
    if path in SYSTEM_DIRS:
        return 'it is / or a system directory'
    for tree in SYSTEM_TREES:
        if path == tree or path.startswith(tree + '/'):
            return 'it lies in %s' % tree
    return None


def root_owning(options):
    """True when a client's root (or every client user) acts as uid 0 or gid 0 on the server."""
    if 'no_root_squash' in options:
        return True
    for opt in options:
        key, sep, value = opt.partition('=')
        if sep and key in ('anonuid', 'anongid'):
            try:
                if int(value) == 0:
                    return True
            except ValueError:
                pass
    return False


def too_wide(client, min_v4, min_v6):
    """Why ``client`` (``*`` or a network string) is too wide for a root-owning export, or None."""
    if client == '*':
        return '* (every machine)'
    net = ipaddress.ip_network(client)
    if net.version == 6 and net.prefixlen < min_v6:
        return '%s (wider than /%d)' % (client, min_v6)
    v4 = as_ipv4(net)
    if v4 is not None:
        if v4.prefixlen < min_v4:
            label = client if v4 is net else '%s (IPv4 %s)' % (client, v4)
            return '%s (wider than /%d)' % (label, min_v4)
    return None


def host_addresses(hosts, hostvars):
    """[(value, source)] of the hosts: nfs_shared_host_address, else the default IPv4 address/prefix fact."""
    out, errors = [], []
    for name in hosts:
        hv = hostvars[name] if name in hostvars else {}
        explicit = hv.get('nfs_shared_host_address') or ''
        facts = hv.get('ansible_facts') or {}
        ip4 = facts.get('default_ipv4') or {}
        if explicit:
            out.append((explicit, 'nfs_shared_host_address of %s' % name))
        elif ip4.get('address'):
            out.append(('%s/%s' % (ip4['address'], ip4.get('prefix') or '32'), 'address of %s' % name))
        else:
            errors.append('no address for %s: set nfs_shared_host_address for it, or nfs_shared_clients' % name)
    return out, errors


def plan_exports(exports, clients=None, host_values=None, hosts_group='hosts', mode='per_host',
                 export_options='rw,sync,no_subtree_check,no_root_squash', export_mode='0750',
                 allow_wide=False, min_prefix_v4=16, min_prefix_v6=48):
    """Check and normalise the exports.

    ``host_values`` is ``[(address, source)]`` of the hosts (see host_addresses), used when ``clients`` is empty.
    Returns ``{'errors': [...], 'exports': [...], 'clients': [...], 'source': str}``; every error names the variable.
    """
    errors = []  # type: List[str]
    try:
        allow_wide = _bool(allow_wide, 'nfs_shared_allow_wide_no_root_squash')
        min_v4 = _int(min_prefix_v4, 'nfs_shared_no_root_squash_min_prefix_ipv4', 0, 32)
        min_v6 = _int(min_prefix_v6, 'nfs_shared_no_root_squash_min_prefix_ipv6', 0, 128)
    except PlanError as e:
        return {'errors': [str(e)], 'exports': [], 'clients': [], 'source': ''}
    if mode not in MODES:
        errors.append('nfs_shared_client_networks_mode: %s is not one of %s' % (json.dumps(str(mode)), ', '.join(MODES)))
        mode = 'per_host'

    clients_in = _flat(clients) or []
    explicit = len(clients_in) > 0
    if explicit:
        raw = [(v, 'nfs_shared_clients[%d]' % i) for i, v in enumerate(clients_in)]
        source = 'nfs_shared_clients'
    else:
        raw = list(host_values or [])
        source = 'the addresses of group %s (nfs_shared_client_networks_mode=%s)' % (hosts_group, mode)
    nets = []  # type: List[Any]
    for value, where in raw:
        if explicit and isinstance(value, str) and value.strip() == '*':
            nets.append('*')
            continue
        net = parse_network(value)
        if net is None:
            errors.append('%s: invalid network %s%s' % (where, json.dumps(str(value)), HINT))
        elif not explicit and mode == 'per_host':
            addr = ipaddress.ip_interface(value.strip()).ip
            nets.append(ipaddress.ip_network(addr))
        else:
            nets.append(net)
    default_clients = merge(nets)

    exports_in = _flat(exports)
    out, seen = [], []
    if not isinstance(exports_in, list) or not exports_in:
        errors.append('nfs_shared_exports must be a non-empty list of {path: ...} items')
        exports_in = []
    for index, item in enumerate(exports_in):
        name = 'nfs_shared_exports[%d]' % index
        e = {'path': item} if isinstance(item, str) else item
        if not isinstance(e, dict) or 'path' not in e:
            errors.append('%s must be a dict with a path' % name)
            continue
        unknown = sorted(set(e) - set(EXPORT_KEYS))
        if unknown:
            errors.append('%s: unknown keys %s (known: %s)' % (name, ', '.join(unknown), ', '.join(EXPORT_KEYS)))
        raw_path = e['path']
        path = normalise_path(raw_path) if isinstance(raw_path, str) and raw_path.startswith('/') else None
        if path is None or not PATH_RE.match(raw_path):
            errors.append('%s.path: %s must be an absolute path without blanks, quotes, commas or parentheses'
                          % (name, json.dumps(str(raw_path))))
            path = str(raw_path)
        else:
            why = system_path(path)
            if why:
                errors.append('%s.path: refusing to export %s: %s' % (name, path, why)
                              + ('' if path == raw_path else ' (given as %s)' % json.dumps(raw_path)))
            elif path in seen:
                errors.append('%s.path: %s is exported twice' % (name, path))
        seen.append(path)

        oname = '%s.options' % name if 'options' in e else 'nfs_shared_export_options'
        oraw = e.get('options', export_options)
        olist = oraw.split(',') if isinstance(oraw, str) else (oraw or [])
        options = []
        for o in olist:
            o = str(o).strip()
            if o and o not in options:
                options.append(o)
        if not options:
            errors.append('%s: no export options given' % oname)
        for o in options:
            if not OPTION_RE.match(o):
                errors.append('%s: invalid export option %s' % (oname, json.dumps(o)))

        if e.get('clients') is not None:
            cname = '%s.clients' % name
            enets = []
            for i, v in enumerate(_flat(e['clients'])):
                if isinstance(v, str) and v.strip() == '*':
                    enets.append('*')
                    continue
                net = parse_network(v)
                if net is None:
                    errors.append('%s[%d]: invalid network %s%s' % (cname, i, json.dumps(str(v)), HINT))
                else:
                    enets.append(net)
            eclients = merge(enets)
        else:
            cname = source
            eclients = default_clients
        if not eclients:
            errors.append('%s: no client networks (set %s, or put machines in group %s)'
                          % (name, 'nfs_shared_clients' if cname == source else cname, hosts_group))

        if root_owning(options) and not allow_wide:
            wide = [w for w in (too_wide(c, min_v4, min_v6) for c in eclients) if w]
            if wide:
                errors.append(
                    '%s (%s): refusing to export with no_root_squash (or anonuid/anongid=0) to %s (from %s): '
                    'root on every machine there would own the datastores. Restrict the clients, or set '
                    'nfs_shared_allow_wide_no_root_squash: true to allow it.' % (name, path, ', '.join(wide), cname))

        mode_value = str(e.get('mode', export_mode))
        if not MODE_RE.match(mode_value):
            errors.append('%s.mode: %s is not an octal mode such as 0750' % (name, json.dumps(mode_value)))
        if 'mount_options' in e and not isinstance(e['mount_options'], str):
            errors.append('%s.mount_options must be a string' % name)
        anon = dict((o.split('=', 1)[0], o.split('=', 1)[1]) for o in options if '=' in o)
        out.append({
            'path': path,
            'options': options,
            'clients': eclients,
            'access': 'RO' if 'ro' in options else 'RW',
            'squash': 'All_Squash' if 'all_squash' in options else
                      ('No_Root_Squash' if 'no_root_squash' in options else 'Root_Squash'),
            'anonuid': anon.get('anonuid', '65534'),
            'anongid': anon.get('anongid', '65534'),
            'mount_options': e.get('mount_options') or '',
            'mode': mode_value if len(mode_value) == 4 else '0' + mode_value,
        })
    return {'errors': errors, 'exports': out, 'clients': default_clients, 'source': source}


# --------------------------------------------------------------------------
# OpenNebula 7.x NFS auto-mount (NFS_AUTO_* datastore attributes)
# --------------------------------------------------------------------------

def _yes(value):
    return str(value or '').strip().lower() == 'yes'


def _change(key, have, want):
    return '%s (%s -> %s)' % (key, json.dumps(str(have.get(key, ''))), json.dumps(str(want.get(key, ''))))


def nfs_auto_plan(datastores, mount_by, server_address, exports, mount_options):
    """What to do with the NFS_AUTO_* attributes of the role's datastores.

    ``datastores``: the results of ``nebula.storage.one_datastore`` (items with ``item.name``, ``id`` and
    ``datastore``: the summary with ``images``, ``base_path`` and ``template``; empty when it does not exist yet).
    ``mount_by``: ``role`` (no NFS_AUTO_* may stay) or ``opennebula`` (OpenNebula mounts
    ``NFS_AUTO_HOST:NFS_AUTO_PATH`` at the datastore's directory on each host, see src/mad/sh/scripts_common.sh).

    Returns ``{'errors': [...], 'updates': [{name, type, attributes, template}], 'paths': [...]}`` (``paths``: the
    datastores' directories, which must exist on the NFS server for OpenNebula to mount them): ``attributes`` is ``merge``
    with the NFS_AUTO_* values to set, or ``exact`` with the current template minus NFS_AUTO_*. OpenNebula refuses
    to change any NFS_AUTO_* attribute of a datastore that holds images (Datastore::post_update_template), so such
    a change is an error here, naming the datastore, before anything is sent.
    """
    if mount_by not in ('role', 'opennebula'):
        return {'errors': ['nfs_shared_mount_by: %s is not one of role, opennebula' % json.dumps(str(mount_by))],
                'updates': [], 'paths': []}
    errors, updates, paths = [], [], []
    for result in datastores:
        item = result.get('item') or {}
        name = item.get('name', '?')
        ds = result.get('datastore') or {}
        if not ds:
            continue  # does not exist yet: created first, then planned again
        current = dict((k.upper(), v) for k, v in (ds.get('template') or {}).items())
        have = dict((k, current[k]) for k in NFS_AUTO if k in current)
        if mount_by == 'opennebula':
            base = normalise_path(ds.get('base_path') or '/')
            holder = None
            for e in exports:
                if base == e['path'] or base.startswith(e['path'].rstrip('/') + '/'):
                    holder = e
            if holder is None:
                errors.append('nfs_shared_datastores: datastore %s (ID %s) has its directory %s in none of '
                              'nfs_shared_exports (%s), so OpenNebula could not mount it from the NFS server'
                              % (name, ds.get('id'), base, ', '.join(e['path'] for e in exports)))
                continue
            paths.append(base)
            want = {'NFS_AUTO_ENABLE': 'YES', 'NFS_AUTO_HOST': server_address, 'NFS_AUTO_PATH': base,
                    'NFS_AUTO_OPTS': holder.get('mount_options') or mount_options}
            differ = [k for k in NFS_AUTO if str(have.get(k, '')) != want[k]
                      and not (k == 'NFS_AUTO_ENABLE' and _yes(have.get(k)))]
            if not differ:
                continue
            update = {'name': name, 'type': item.get('type', 'image'), 'attributes': 'merge', 'template': want}
        else:
            differ = [k for k in NFS_AUTO if k in have]
            if not differ:
                continue
            keep = dict((k, v) for k, v in current.items() if k not in NFS_AUTO and k != 'TYPE')
            update = {'name': name, 'type': item.get('type', 'image'), 'attributes': 'exact', 'template': keep}
        if ds.get('images'):
            errors.append(
                'nfs_shared_datastores: datastore %s (ID %s) holds images (%s), and OpenNebula refuses to change %s '
                'in a datastore with existing images; nfs_shared_mount_by=%s would change %s. Move the images, or '
                'keep nfs_shared_mount_by as the datastore was set up.'
                % (name, ds.get('id'), ', '.join(str(i) for i in ds['images']), ', '.join(differ), mount_by,
                   ', '.join(_change(k, have, update['template']) for k in differ)))
            continue
        updates.append(update)
    return {'errors': errors, 'updates': updates, 'paths': paths}


# --------------------------------------------------------------------------
# sudo's view of ONE_NFS
# --------------------------------------------------------------------------

# OpenNebula 7.4's Cmnd_Alias ONE_NFS (share/pkgs/sudoers/*/opennebula).
ONE_NFS = ('/usr/bin/mount', '/usr/bin/umount', '/usr/bin/sed -i -f /proc/self/fd/0 /etc/fstab')


def sudo_listing_commands(listing):
    """``[(command, nopasswd)]`` that ``sudo -l -U user`` lists as runnable as root, in sudoers order.

    sudo prints one entry per line (``(ALL : ALL) NOPASSWD: /usr/bin/mount, /usr/bin/umount``), with aliases
    expanded; a tag holds for the following commands of the entry until another tag changes it; long entries
    continue on lines indented deeper. As in sudoers, the last entry matching a command decides.
    """
    entries = []
    for line in listing.splitlines():
        if re.match(r'^\s+\(', line):
            entries.append(line.strip())
        elif entries and re.match(r'^\s{5,}\S', line):
            entries[-1] += ' ' + line.strip()
    out = []
    for entry in entries:
        m = re.match(r'^\(([^)]*)\)\s*(.*)$', entry)
        if not m:
            continue
        runas = m.group(1).split(':')[0].strip()
        if runas not in ('ALL', 'root'):
            continue
        nopasswd = False
        for part in m.group(2).split(','):
            part = part.strip()
            while True:
                tag = re.match(r'^(NOPASSWD|PASSWD|SETENV|NOSETENV|EXEC|NOEXEC|LOG_INPUT|NOLOG_INPUT|LOG_OUTPUT|'
                               r'NOLOG_OUTPUT|MAIL|NOMAIL|FOLLOW|NOFOLLOW|INTERCEPT|NOINTERCEPT):\s*', part)
                if not tag:
                    break
                if tag.group(1) in ('NOPASSWD', 'PASSWD'):
                    nopasswd = tag.group(1) == 'NOPASSWD'
                part = part[tag.end():]
            if part:
                out.append((part, nopasswd))
    return out


def one_nfs_missing(host, user, checks, listing):
    """Errors for ``host`` where sudo does not let ``user`` run ONE_NFS as OpenNebula does.

    ``checks``: ``{command: rc}`` of ``sudo -l -U user COMMAND`` (0: sudo allows it); ``listing``: ``sudo -l -U
    user`` output, read for NOPASSWD (OpenNebula's drivers run sudo without a terminal).
    """
    refused = [c for c in ONE_NFS if checks.get(c) != 0]
    if refused:
        return ['%s: sudo does not let %s run %s (OpenNebula mounts NFS_AUTO datastores through the ONE_NFS sudo '
                'alias of its opennebula-node package; nfs_shared_mount_by=opennebula needs it)'
                % (host, user, '; '.join(refused))]
    listed = sudo_listing_commands(listing)
    needs_password = []
    for command in ONE_NFS:
        binary = command.split()[0]
        decided = [nopasswd for listed_command, nopasswd in listed
                   if listed_command in ('ALL', command, binary)]
        if not decided or not decided[-1]:
            needs_password.append(command)
    if needs_password:
        return ['%s: sudo asks %s for a password for %s (ONE_NFS must be NOPASSWD, as in OpenNebula\'s sudoers)'
                % (host, user, '; '.join(needs_password))]
    return []


# --------------------------------------------------------------------------
# oneadmin's uid/gid on every machine
# --------------------------------------------------------------------------

def account_ids(machines, hostvars, user):
    """``[[machine, 'uid=U gid=G' or 'missing']]`` from each machine's ``getent_passwd`` fact."""
    out = []
    for name in machines:
        hv = hostvars[name] if name in hostvars else {}
        facts = hv.get('ansible_facts') or {}
        entry = (facts.get('getent_passwd') or {}).get(user)
        out.append([name, 'uid=%s gid=%s' % (entry[1], entry[2]) if entry else 'missing'])
    return out
