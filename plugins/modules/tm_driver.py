#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
---
module: tm_driver
short_description: Install an OpenNebula transfer-manager driver written in Python
version_added: 0.1.0
author: nebula.storage maintainers (@nebula-storage)
description:
  - Installs a transfer-manager (TM) driver of this collection on a front-end, or removes it.
  - The runtime and the driver are taken from the module's own payload, so no copy of them is needed in a role.
    They are written as a plain Python package in a private C(lib/) directory, next to one small executable per
    action that imports the installed runtime, plus the driver's rc file.
  - With O(layout=remotes) (OpenNebula 4.x to 7.x) the actions are C(<dest>/tm/<name>/<action>) and the rc file is
    C(<dest>/tm/<name>/<name>rc).
  - With O(layout=legacy) (OpenNebula 3.x) the actions are C(<dest>/<name>/tm_<action>.sh), and the mapping file
    C(<legacy_conf_dir>/tm_<name>/tm_<name>.conf) and the rc file C(<legacy_conf_dir>/tm_<name>/tm_<name>rc) are written.
  - Files are compared by content hash; a second run changes nothing. An rc file the operator edited is kept;
    only the keys given in O(settings) are enforced.
  - After a change, run C(onehost sync --force) as oneadmin so that the hosts receive the new remotes.
options:
  name:
    description: The driver to install.
    type: str
    required: true
    choices: [gfs2clvm, nfs_shared, onestor]
  layout:
    description: Where OpenNebula looks for TM actions.
    type: str
    default: remotes
    choices: [remotes, legacy]
  dest:
    description:
      - Base directory. Defaults to V(/var/lib/one/remotes) with O(layout=remotes) and
        V(/usr/lib/one/tm_commands) with O(layout=legacy).
    type: path
  legacy_conf_dir:
    description: Directory holding C(tm_<name>/tm_<name>.conf) and the rc file with O(layout=legacy).
    type: path
    default: /etc/one
  owner:
    description: Owner of the installed files and of the directories this module creates.
    type: str
  group:
    description: Group of the installed files and of the directories this module creates.
    type: str
  mode:
    description: Mode of the action executables. Library files and the rc file are not executable.
    type: str
    default: '0755'
  rc_mode:
    description: Mode of the rc file.
    type: str
    default: '0644'
  settings:
    description:
      - rc settings (C(KEY=value)) that override the driver's defaults, for example C(QCOW2_OVERLAY=yes) or
        C(SSH_OPTS="-p 2222").
      - In an existing rc file, only these keys are changed.
    type: dict
    default: {}
  follow:
    description:
      - Follow symbolic links at the files and directories this module writes or removes.
      - By default a symbolic link at any of them is refused, and so is a link among their parent directories that
        root does not own, because oneadmin owns C(remotes/) and could point a link at a root-only file to make this
        module, run as root, copy its content into a readable file or the diff. Such a file is never read.
    type: bool
    default: false
  state:
    description: Install (V(present)) or remove (V(absent)) the driver.
    type: str
    default: present
    choices: [present, absent]
notes:
  - Supports check mode and diff mode; the diff lists the files added or changed, and the rc file's changes.
  - The actions need Python 3.6 or newer on the front-end and C(python3) on the hosts for streamed copies.
"""

EXAMPLES = r"""
- name: Install the NFS shared TM driver
  nebula.storage.tm_driver:
    name: nfs_shared
    layout: remotes
    owner: oneadmin
    group: oneadmin
    settings:
      QCOW2_OVERLAY: "yes"
  notify: Sync OpenNebula remotes

- name: Install the driver for OpenNebula 3.x
  nebula.storage.tm_driver:
    name: nfs_shared
    layout: legacy
"""

RETURN = r"""
changed:
  description: Whether a file was (or, in check mode, would be) added, changed or removed.
  returned: always
  type: bool
files:
  description: The files the driver consists of (removed ones with O(state=absent)).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/one/remotes/tm/nfs_shared/clone, /var/lib/one/remotes/tm/nfs_shared/nfs_sharedrc]
changed_files:
  description: The files added, changed or removed.
  returned: always
  type: list
  elements: str
actions:
  description: The TM actions installed.
  returned: always
  type: list
  elements: str
  sample: [clone, ln, mv, delete]
"""

import grp
import hashlib
import os
import pwd
import re
import shutil
import stat
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.nebula.storage.plugins.module_utils._file_update import (
    FileUpdateError,
    open_dir,
    open_file,
    read_chunks,
    set_owner_mode,
    write_file,
)
from ansible_collections.nebula.storage.plugins.module_utils import tm as tm_package
from ansible_collections.nebula.storage.plugins.module_utils.tm import actions as tm_actions
from ansible_collections.nebula.storage.plugins.module_utils.tm import backup as tm_backup
from ansible_collections.nebula.storage.plugins.module_utils.tm import common as tm_common
from ansible_collections.nebula.storage.plugins.module_utils.tm import copy as tm_copy
from ansible_collections.nebula.storage.plugins.module_utils.tm import rc as tm_rc
from ansible_collections.nebula.storage.plugins.module_utils.tm import registry as tm_registry
from ansible_collections.nebula.storage.plugins.module_utils.tm import drivers as tm_drivers
from ansible_collections.nebula.storage.plugins.module_utils.tm.drivers import nfs_shared as drv_nfs_shared
from ansible_collections.nebula.storage.plugins.module_utils.tm.drivers import onestor as drv_onestor
from ansible_collections.nebula.storage.plugins.module_utils.tm.drivers import gfs2clvm as drv_gfs2clvm

PACKAGE = "nebula_tm"
DRIVER_MODULES = {"nfs_shared": drv_nfs_shared, "gfs2clvm": drv_gfs2clvm, "onestor": drv_onestor}
RUNTIME_MODULES = [
    ("__init__.py", tm_package),
    ("actions.py", tm_actions),
    ("backup.py", tm_backup),
    ("common.py", tm_common),
    ("copy.py", tm_copy),
    ("rc.py", tm_rc),
    ("registry.py", tm_registry),
    ("drivers/__init__.py", tm_drivers),
]
DEFAULT_DEST = {"remotes": "/var/lib/one/remotes", "legacy": "/usr/lib/one/tm_commands"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SYSTEM_PYTHON = "/usr/bin/python3"


def interpreter():
    """The actions' shebang: the system Python 3 with -S where it is at /usr/bin/python3 (the runtime needs only
    the standard library, and skipping site saves about 20 ms of every action's start), else env's python3."""
    if os.access(SYSTEM_PYTHON, os.X_OK):
        return SYSTEM_PYTHON + " -S"
    return "/usr/bin/env python3"


EXECUTABLE = '''#!{interpreter}
# -*- coding: utf-8 -*-
# OpenNebula TM action "{action}" of the {driver} driver ({protocol} protocol).
# Installed by nebula.storage.tm_driver; changes are overwritten.
import os
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

from {package}.registry import main  # noqa: E402

raise SystemExit(main({driver!r}, {action!r}, sys.argv[1:], protocol={protocol!r}, rc_path={rc_path}))
'''


def module_source(mod):
    """Source text of an imported module, read through its loader (works inside the AnsiballZ zip)."""
    loader = getattr(mod, "__loader__", None)
    source = None
    if loader is not None and hasattr(loader, "get_source"):
        try:
            source = loader.get_source(mod.__name__)
        except (ImportError, IOError, OSError):
            source = None
    if source is None:
        if loader is not None and hasattr(loader, "get_data"):
            source = loader.get_data(mod.__file__)
        else:
            with open(mod.__file__, "rb") as handle:
                source = handle.read()
    return to_bytes(source)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Installer(object):
    def __init__(self, module):
        self.module = module
        params = module.params
        self.name = params["name"]
        self.layout = params["layout"]
        self.dest = params["dest"] or DEFAULT_DEST[self.layout]
        self.driver = DRIVER_MODULES[self.name]
        if self.layout == "remotes":
            self.base = os.path.join(self.dest, "tm", self.name)
            self.conf_dir = None
            self.rc_path = os.path.join(self.base, self.name + "rc")
            self.actions = sorted(self.driver.ACTIONS)
        else:
            self.base = os.path.join(self.dest, self.name)
            self.conf_dir = os.path.join(params["legacy_conf_dir"], "tm_" + self.name)
            self.rc_path = os.path.join(self.conf_dir, "tm_%src" % self.name)
            self.actions = sorted(self.driver.LEGACY_ACTIONS)
        self.added = []
        self.updated = []
        self.removed = []
        self.rc_diff = None

    # -- desired state ----------------------------------------------------
    def action_path(self, action):
        if self.layout == "remotes":
            return os.path.join(self.base, action)
        return os.path.join(self.base, "tm_%s.sh" % action)

    def executable(self, action):
        if self.layout == "remotes":
            rc_expr = 'os.path.join(HERE, %r)' % (self.name + "rc")
            protocol = "7"
        else:
            rc_expr = repr(self.rc_path)
            protocol = "3"
        return to_bytes(EXECUTABLE.format(action=action, driver=self.name, protocol=protocol, package=PACKAGE,
                                          rc_path=rc_expr, interpreter=interpreter()))

    def library_files(self):
        lib = os.path.join(self.base, "lib", PACKAGE)
        files = [(os.path.join(lib, rel), module_source(mod)) for rel, mod in RUNTIME_MODULES]
        files.append((os.path.join(lib, "drivers", self.name + ".py"), module_source(self.driver)))
        return files

    def mapping_text(self):
        header = "TM mapping of the %s driver, installed by nebula.storage.tm_driver." % self.name
        return to_bytes(tm_rc.render_mapping(self.name, self.actions, header=header))

    # -- file operations --------------------------------------------------
    # Every path is walked from / without following links others may have planted (open_dir); files are
    # read with O_NOFOLLOW and replaced by a rename through the directory's descriptor, so that a link
    # oneadmin plants in remotes/ is refused, never read or written through.
    def ids(self):
        if getattr(self, "_ids", None) is None:
            params = self.module.params
            uid = gid = -1
            try:
                if params["owner"] is not None:
                    owner = params["owner"]
                    uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
                if params["group"] is not None:
                    group = params["group"]
                    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except KeyError as exc:
                self.module.fail_json(msg="owner/group: no such user or group: %s" % to_native(exc))
            self._ids = (uid, gid)
        return self._ids

    def real(self, path):
        return os.path.realpath(path) if self.module.params["follow"] else os.path.abspath(path)

    def open_parent(self, path, create):
        """Descriptor of the directory of ``path`` (created if ``create``), or None if it is missing."""
        uid, gid = self.ids()

        def created(fd, _where):
            os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o755)

        directory = os.path.dirname(self.real(path))
        if not create and not os.path.isdir(directory):
            return None
        try:
            return open_dir(directory, self.module.params["follow"], 0o755 if create else None, created)
        except FileUpdateError as exc:
            self.module.fail_json(msg=str(exc))

    def read_existing(self, path):
        """``(content or None, stat or None)`` of the regular file ``path``, read without following links."""
        real = self.real(path)
        if not os.path.isdir(os.path.dirname(real)):
            return None, None  # a planted dangling link is refused when the directory is created
        try:
            fd, dfd, _base = open_file(real, False, missing_ok=True)
        except FileUpdateError as exc:
            self.module.fail_json(msg=str(exc))
        os.close(dfd)
        if fd is None:
            return None, None
        try:
            return b"".join(read_chunks(fd)), os.fstat(fd)
        finally:
            os.close(fd)

    def write(self, path, data, mode):
        existing, st = self.read_existing(path)
        want_mode = int(mode, 8)
        uid, gid = self.ids()
        if existing is not None and sha256(existing) == sha256(data):
            drift = stat.S_IMODE(st.st_mode) != want_mode or uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid)
            if drift and path not in self.updated and path not in self.added:
                self.updated.append(path)
            if drift and not self.module.check_mode:
                dfd = self.open_parent(path, False)
                try:
                    set_owner_mode(dfd, os.path.basename(self.real(path)), want_mode, uid, gid)
                except (OSError, FileUpdateError) as exc:
                    self.module.fail_json(msg="%s: cannot set owner or mode: %s" % (path, to_native(exc)))
                finally:
                    os.close(dfd)
            return False
        (self.added if existing is None else self.updated).append(path)
        if not self.module.check_mode:
            if st is not None:
                uid = st.st_uid if uid == -1 else uid
                gid = st.st_gid if gid == -1 else gid
            dfd = self.open_parent(path, True)
            try:
                write_file(dfd, os.path.basename(self.real(path)), data, want_mode, uid, gid)
            except FileUpdateError as exc:
                self.module.fail_json(msg="%s: %s" % (path, exc))
            finally:
                os.close(dfd)
        return True

    # -- rc file ----------------------------------------------------------
    def settings(self):
        result = {}
        for key, value in (self.module.params["settings"] or {}).items():
            if not _KEY.match(str(key)):
                self.module.fail_json(msg="settings: %r is not a valid rc variable name" % (key,))
            if isinstance(value, bool):
                value = "yes" if value else "no"
            value = "" if value is None else to_native(value)
            if "\n" in value or "\r" in value:
                self.module.fail_json(msg="settings.%s: the value must be a single line" % key)
            result[key] = value
        return result

    def rc_content(self):
        wanted = self.settings()
        old = self.read_existing(self.rc_path)[0]
        if old is not None:
            text = to_native(old)
            try:
                current = tm_rc.parse_rc(text)
            except tm_rc.RcError as exc:
                self.module.fail_json(msg="Cannot read the existing rc file %s: %s" % (self.rc_path, to_native(exc)))
            changes = dict((k, v) for k, v in wanted.items() if current.get(k) != v)
            if not changes:
                return old, old
            return old, to_bytes(tm_rc.update_rc(text, changes))
        merged = [(k, wanted.pop(k, v)) for k, v in self.driver.DEFAULT_RC]
        merged.extend(sorted(wanted.items()))
        ordered = tm_rc.render_rc(dict(merged), header=self.driver.RC_HEADER)
        return None, to_bytes(ordered)

    # -- run --------------------------------------------------------------
    def present(self):
        files = []
        for path, data in self.library_files():
            self.write(path, data, "0644")
            files.append(path)
        for action in self.actions:
            path = self.action_path(action)
            self.write(path, self.executable(action), self.module.params["mode"])
            files.append(path)
        if self.conf_dir:
            path = os.path.join(self.conf_dir, "tm_%s.conf" % self.name)
            self.write(path, self.mapping_text(), "0644")
            files.append(path)
        old, new = self.rc_content()
        if old != new:
            self.rc_diff = dict(before_header=self.rc_path, after_header=self.rc_path,
                                before=to_native(old or b""), after=to_native(new))
        self.write(self.rc_path, new, self.module.params["rc_mode"])
        files.append(self.rc_path)
        return files

    def absent(self):
        trees = [self.base] + ([self.conf_dir] if self.conf_dir else [])
        files = []
        for tree in trees:
            tree = self.real(tree)
            if not os.path.lexists(tree):
                continue
            dfd = self.open_parent(tree, False)
            try:
                st = os.stat(os.path.basename(tree), dir_fd=dfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    self.module.fail_json(msg="%s is not a directory (a symbolic link?); not removed; set follow: true "
                                              "to remove what it points to" % tree)
                for root, _dirs, names in os.walk(tree):
                    files.extend(os.path.join(root, n) for n in names)
                self.removed.append(tree)
                if not self.module.check_mode:
                    if sys.version_info >= (3, 11):
                        shutil.rmtree(os.path.basename(tree), dir_fd=dfd)  # pylint: disable=unexpected-keyword-arg
                    else:
                        shutil.rmtree(tree)
            except OSError as exc:
                self.module.fail_json(msg="%s: cannot remove: %s" % (tree, to_native(exc)))
            finally:
                os.close(dfd)
        return sorted(files)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True, choices=sorted(DRIVER_MODULES)),
            layout=dict(type="str", default="remotes", choices=["remotes", "legacy"]),
            dest=dict(type="path"),
            legacy_conf_dir=dict(type="path", default="/etc/one"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="str", default="0755"),
            rc_mode=dict(type="str", default="0644"),
            settings=dict(type="dict", default={}),
            follow=dict(type="bool", default=False),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    for key in ("mode", "rc_mode"):
        if not re.match(r"^0?[0-7]{3,4}$", module.params[key]):
            module.fail_json(msg="%s: %r is not an octal file mode" % (key, module.params[key]))
    installer = Installer(module)
    if module.params["state"] == "present":
        files = installer.present()
    else:
        files = installer.absent()
    changed_files = installer.added + installer.updated + installer.removed
    result = dict(changed=bool(changed_files), files=files, changed_files=changed_files,
                  actions=installer.actions if module.params["state"] == "present" else [])
    if module._diff and changed_files:
        lines = ["added: %s" % p for p in installer.added] + ["changed: %s" % p for p in installer.updated]
        lines += ["removed: %s" % p for p in installer.removed]
        diffs = [dict(prepared="\n".join(lines) + "\n")]
        if installer.rc_diff:
            diffs.append(installer.rc_diff)
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
