# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The StorPool addon's install plan: which addon file goes where, for which OpenNebula release.

Private module of the nebula.storage collection; its API may change without notice.

The rules are read from the addon's own ``install.sh`` and ``scripts/install-6.4.sh``
(the script that OpenNebula 6.4 to 7.2 use, through symlinks): the role models that
script, in Python, and never runs it.  Inputs are plain data (the source tree as
``{relative path: checksum}``, with symlinks followed, as ``ansible.builtin.find``
with ``follow: true`` lists it), so every rule is unit-tested without a machine.

* :func:`releases` / :func:`check_release`: install.sh picks
  ``scripts/install-<VERSION>.sh``, else ``scripts/install-<MAJOR>.<MINOR>.sh``;
  a release is supported when that script is the modelled one (same content).
* :func:`plan_files`: the files install.sh copies, as ``{src, dest, base, mode, force}``
  entries, ``base`` being ``remotes`` (``ONE_VAR/remotes``, oneadmin) or ``etc`` (``/etc``, root).
* :func:`plan_absent`: the upgrade cleanup (old checkpoint helpers, old cron files).
* :func:`plan_patches`: ``patches/<mad>/<VERSION>`` else ``patches/<mad>/<MAJOR>.<MINOR>``
  for mad in im, vmm, vnm, datastore, every ``*.patch`` in name order, applied in ``ONE_VAR``.
* :func:`tm_mad_conf`: the ``TM_MAD_CONF NAME="storpool"`` block for the release.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import posixpath
import re
import shlex

try:
    from typing import Dict, List, Optional, Tuple  # noqa: F401  pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass

MODELLED_SCRIPT = 'scripts/install-6.4.sh'
SCRIPT_RE = re.compile(r'^scripts/install-(\d+(?:\.\d+)+)\.sh$')
PATCH_MADS = ('im', 'vmm', 'vnm', 'datastore')

# (regex over the source path, base, destination, mode, force); the first match wins.
# A destination containing \1 takes the regex's first group; force=False installs only a missing file.
RULES = [
    (r'^datastore/storpool/([^/.][^/]*)$', 'remotes', r'datastore/storpool/\1', '0755', True),
    (r'^tm/storpool/([^/.][^/]*)$', 'remotes', r'tm/storpool/\1', '0755', True),
    (r'^datastore/(xpath_multi\.py|xpath-sp\.rb)$', 'remotes', r'datastore/\1', '0755', True),
    (r'^hooks/volumecare/(volumecare|vc-policy\.sh)$', 'remotes', r'hooks/volumecare/\1', '0755', True),
    # not copied by install.sh (it runs onehook create on its own checkout): the role's template for onehook
    (r'^misc/(volumecare\.hook)$', 'remotes', r'hooks/volumecare/\1', '0644', True),
    (r'^misc/etc/(tmpfiles\.d/addon-storpool-monitor\.conf)$', 'etc', r'\1', '0644', True),
    (r'^misc/etc/(systemd/system/(?:monitor_helper-sync|vc-policy)\.(?:service|timer))$', 'etc', r'\1', '0644', True),
    (r'^vmm/kvm/(deploy-tweaks[^/]*(?:/.+)?)$', 'remotes', r'vmm/kvm/\1', '0755', True),
    (r'^vmm/kvm/((?:attach|detach)_disk\.(?:storpool|cdrom))$', 'remotes', r'vmm/kvm/\1', '0755', True),
    (r'^vmm/kvm/(tm[^/]*)$', 'remotes', r'vmm/kvm/\1', '0755', True),
    (r'^vmm/kvm/(snapshot_[^/]*-storpool)$', 'remotes', r'vmm/kvm/\1', '0755', True),
    (r'^misc/(reserved\.sh)$', 'remotes', r'\1', '0755', True),
    (r'^misc/(storpool_probe\.sh)$', 'probe', r'im/kvm-probes.d/host/system/\1', '0755', True),
    (r'^(addon-storpoolrc)$', 'remotes', r'\1', '0644', False),
]
TWEAKS_EXAMPLE = 'vmm/kvm/deploy-tweaks.d.example/'
TWEAKS_DIR = 'vmm/kvm/deploy-tweaks.d/'
REQUIRED_DIRS = ('datastore/storpool/', 'tm/storpool/')

# upgrade cleanup of install.sh: files it removes when present
ABSENT_REMOTES = ['vmm/kvm/%s.storpool%s' % (a, s) for a in ('save', 'restore') for s in ('', '-pre', '-post')]
ABSENT_ETC = ['cron.d/addon-storpool', 'cron.d/vc-policy']
# crontab lines install.sh drops: {user: substring}
CRONTAB_CLEANUP = {'oneadmin': 'monitor_helper-sync', 'root': 'storpool -j '}

TM_MAD_CONF_CURRENT = {
    'LN_TARGET': 'NONE', 'CLONE_TARGET': 'SELF', 'SHARED': 'yes', 'DS_MIGRATE': 'yes',
    'DRIVER': 'raw', 'ALLOW_ORPHANS': 'yes', 'TM_MAD_SYSTEM': '',
}
TM_MAD_CONF_LEGACY_SYSTEM = {
    'TM_MAD_SYSTEM': 'ssh,shared',
    'LN_TARGET_SSH': 'NONE', 'CLONE_TARGET_SSH': 'SELF', 'DISK_TYPE_SSH': 'BLOCK',
    'LN_TARGET_SHARED': 'NONE', 'CLONE_TARGET_SHARED': 'SELF', 'DISK_TYPE_SHARED': 'BLOCK',
}
# OpenNebula 7.2 added these to every stock TM_MAD_CONF block
TM_MAD_CONF_72 = ('DS_LIVE_MIGRATE', 'DS_MIGRATE_SNAP')


class PlanError(Exception):
    """The plan cannot be made; ``str()`` is for the user.  Nothing has been changed."""


def version_tuple(version):
    # type: (str) -> Tuple[int, ...]
    """``'6.10.0.1'`` -> ``(6, 10, 0, 1)``; PlanError for anything else."""
    text = (version or '').strip()
    if not re.match(r'^\d+(\.\d+)+$', text):
        raise PlanError('not an OpenNebula version: %r (remotes/VERSION holds e.g. 6.10.5)' % version)
    return tuple(int(p) for p in text.split('.'))


def major_minor(version):
    # type: (str) -> str
    parts = version_tuple(version)
    return '%d.%d' % parts[:2]


def releases(files):
    # type: (Dict[str, str]) -> Dict[str, str]
    """``{release: checksum of its install script}`` for every ``scripts/install-<release>.sh``."""
    out = {}
    for rel, checksum in files.items():
        m = SCRIPT_RE.match(rel)
        if m:
            out[m.group(1)] = checksum
    return out


def script_for(version, files):
    # type: (str, Dict[str, str]) -> Optional[str]
    """The release key install.sh would use for ``version`` (exact, else MAJOR.MINOR), or None."""
    known = releases(files)
    text = version.strip()
    if text in known:
        return text
    mm = major_minor(text)
    return mm if mm in known else None


def supported_releases(files):
    # type: (Dict[str, str]) -> List[str]
    """Releases whose install script is the modelled one, in version order."""
    wanted = files.get(MODELLED_SCRIPT)
    if wanted is None:
        return []
    return sorted((r for r, c in releases(files).items() if c == wanted), key=version_tuple)


def check_release(version, files, force=''):
    # type: (str, Dict[str, str], str) -> Dict[str, object]
    """Decide the release to install for; PlanError names the version and the supported list.

    Returns ``{'version', 'release', 'forced', 'warning'}``; ``version`` is the one whose
    patches and TM_MAD_CONF are used (``force`` when given).
    """
    if MODELLED_SCRIPT not in files:
        raise PlanError('the source has no %s, the install script this role models' % MODELLED_SCRIPT)
    supported = supported_releases(files)
    listing = ', '.join(supported)
    if force:
        key = script_for(force, files)
        if key not in supported:
            raise PlanError('storpool_addon_force_version: %s is not a release the addon supports with %s '
                            '(supported: %s)' % (force, MODELLED_SCRIPT, listing))
        return {'version': force.strip(), 'release': key, 'forced': True,
                'warning': 'storpool_addon_force_version: installing the files and patches of OpenNebula %s '
                           'on a front-end with OpenNebula %s, as asked' % (force.strip(), version.strip())}
    key = script_for(version, files)
    if key is None:
        raise PlanError('OpenNebula %s is not supported by this StorPool addon: it has no scripts/install-%s.sh '
                        'nor scripts/install-%s.sh (supported: %s). Set storpool_addon_force_version to a supported '
                        'release only after checking its files and patches yourself.'
                        % (version.strip(), version.strip(), major_minor(version), listing))
    if key not in supported:
        raise PlanError('OpenNebula %s uses the addon\'s scripts/install-%s.sh, an older install procedure than %s, '
                        'which this role does not model (supported: %s)' % (version.strip(), key, MODELLED_SCRIPT, listing))
    return {'version': version.strip(), 'release': key, 'forced': False, 'warning': ''}


def check_tree(files, tweaks, label='the source'):
    # type: (Dict[str, str], List[str], str) -> None
    """PlanError when the tree is not the addon or lacks a tweak the operator asked for."""
    missing = [d.rstrip('/') for d in REQUIRED_DIRS if not any(p.startswith(d) for p in files)]
    if missing:
        raise PlanError('storpool_addon_src: %s does not look like the StorPool addon (OpenNebula/addon-storpool): '
                        'it has no %s' % (label, ' or '.join(missing)))
    lacking = [TWEAKS_EXAMPLE + t for t in tweaks if TWEAKS_EXAMPLE + t not in files]
    if lacking:
        raise PlanError('storpool_addon_deploy_tweaks: %s has no %s' % (label, ', '.join(lacking)))


def rc_deploy_tweaks(text):
    # type: (str) -> List[str]
    """The names in ``DEPLOY_TWEAKS=`` of an addon-storpoolrc (the last assignment wins, as in a shell)."""
    names = []  # type: List[str]
    for line in (text or '').splitlines():
        m = re.match(r'^\s*(?:export\s+)?DEPLOY_TWEAKS=(.*)$', line)
        if m:
            try:
                words = shlex.split(m.group(1), comments=True)
            except ValueError:
                words = []
            names = ' '.join(words).split()
    return names


def plan_files(files, probes=True, tweaks=(), enabled=()):
    # type: (Dict[str, str], bool, List[str], List[str]) -> List[Dict[str, object]]
    """Every file to install: ``{src, dest, base, mode, force}``, sorted by base and destination.

    ``probes``: whether ``remotes/im/kvm-probes.d/host/system`` exists on the front-end.
    ``tweaks``: the tweaks to enable in ``deploy-tweaks.d``; ``enabled``: those already there or named by
    ``DEPLOY_TWEAKS`` (refreshed when the source has an example of that name, as install.sh does).
    """
    out = {}  # type: Dict[Tuple[str, str], Dict[str, object]]
    for rel in sorted(files):
        for regex, base, dest, mode, force in RULES:
            m = re.match(regex, rel)
            if not m:
                continue
            if base == 'probe':
                if not probes:
                    break
                base = 'remotes'
            out[(base, m.expand(dest))] = {'src': rel, 'dest': m.expand(dest), 'base': base, 'mode': mode, 'force': force}
            break
    for name in list(tweaks) + [n for n in enabled if n not in tweaks]:
        if '/' in name or name in ('', '.', '..'):
            continue
        src = TWEAKS_EXAMPLE + name
        if src in files:
            dest = TWEAKS_DIR + name
            out[('remotes', dest)] = {'src': src, 'dest': dest, 'base': 'remotes', 'mode': '0755', 'force': True}
    return [out[k] for k in sorted(out)]


def plan_absent():
    # type: () -> Dict[str, List[str]]
    """Files install.sh removes on upgrade, per base."""
    return {'remotes': list(ABSENT_REMOTES), 'etc': list(ABSENT_ETC)}


def plan_patches(files, version):
    # type: (Dict[str, str], str) -> List[str]
    """The addon's patches for ``version``, in install.sh's order (source paths)."""
    out = []  # type: List[str]
    mm = major_minor(version)
    for mad in PATCH_MADS:
        for ver in (version.strip(), mm):
            prefix = 'patches/%s/%s/' % (mad, ver)
            found = sorted(p for p in files if p.startswith(prefix) and p.endswith('.patch') and '/' not in p[len(prefix):])
            if found or any(p.startswith(prefix) for p in files):
                out.extend(found)
                break
    return out


def tm_mad_conf(version, legacy=False, extra=None):
    # type: (str, bool, Optional[Dict[str, str]]) -> Dict[str, object]
    """``{'set': {...}, 'unset': [...]}`` for the ``TM_MAD_CONF NAME="storpool"`` block.

    The current block is the addon's autoconf one (``TM_MAD_SYSTEM=""``, no per-system keys);
    ``legacy`` gives the 5.10-era ``TM_MAD_SYSTEM="ssh,shared"`` block.  From OpenNebula 7.2 on the
    block carries ``DS_LIVE_MIGRATE`` and ``DS_MIGRATE_SNAP`` like every stock block; before 7.2 they are
    removed, as that release does not know them.  ``extra`` keys override.
    """
    block = dict(TM_MAD_CONF_CURRENT)
    unset = []  # type: List[str]
    if legacy:
        block.update(TM_MAD_CONF_LEGACY_SYSTEM)
    else:
        unset.extend(k for k in sorted(TM_MAD_CONF_LEGACY_SYSTEM) if k != 'TM_MAD_SYSTEM')
    if version_tuple(version)[:2] >= (7, 2):
        # StorPool volumes are shared block devices: live migration across system datastores works;
        # migrating the VM's StorPool snapshots with it does not (they stay on the volume).
        block.update({'DS_LIVE_MIGRATE': 'YES', 'DS_MIGRATE_SNAP': 'NO'})
    else:
        unset.extend(TM_MAD_CONF_72)
    for key, value in (extra or {}).items():
        block[key.upper()] = value
        if key.upper() in unset:
            unset.remove(key.upper())
    return {'set': block, 'unset': unset}


def plan(files, version, force='', probes=True, tweaks=(), enabled=(), rc_text='', legacy=False, tm_extra=None,
         label='the source'):
    # type: (...) -> Dict[str, object]
    """Everything the role needs, in one call (the filter plugin's body)."""
    check_tree(files, list(tweaks), label)
    release = check_release(version, files, force)
    enabled_all = list(enabled) + [n for n in rc_deploy_tweaks(rc_text) if n not in enabled]
    entries = plan_files(files, probes=probes, tweaks=list(tweaks), enabled=enabled_all)
    result = dict(release)
    result.update({
        'files': entries,
        'absent': plan_absent(),
        'patches': plan_patches(files, release['version']),
        'tm_mad_conf': tm_mad_conf(release['version'], legacy=legacy, extra=tm_extra),
        'units': sorted(posixpath.basename(e['dest']) for e in entries if e['dest'].startswith('systemd/system/')),
        'timers': sorted(posixpath.basename(e['dest']) for e in entries
                         if e['dest'].startswith('systemd/system/') and e['dest'].endswith('.timer')),
    })
    return result
