"""Install the gfs2_clvm role's LVM wrapper for a test: the role's own template (lvm_wrapper.j2) rendered by Ansible's
templar with the collection's module_utils/_lvm_wrapper.py, as the role installs it, but with a test configuration
and interpreter.

The template's ``lookup()`` needs Ansible's plugin loader, whose collection finder must not be configured inside the
test process (it would take over ``ansible_collections.nebula.storage`` for every later test), so the templar runs in
a subprocess, once per interpreter: the configuration line is then set per test, exactly as ``to_json`` writes it
(``test_rendered_config_line_matches_the_templar`` checks that)."""
from __future__ import annotations

import functools
import json
import os
import stat
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE = os.path.join(ROOT, "roles", "gfs2_clvm")
SOURCE = os.path.join(ROOT, "plugins", "module_utils", "_lvm_wrapper.py")
SENTINEL = {"vgs": ["vg-sentinel"], "lvm_bin_dir": "/sentinel/bin", "dev_dir": "/sentinel/dev"}

_TEMPLAR = r"""
import json, sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
variables = json.loads(sys.argv[1])
with open(sys.argv[2]) as handle:
    template = handle.read()
sys.stdout.write(Templar(loader=DataLoader(), variables=variables).template(trust_as_template(template)))
"""


def role_vars(**overrides):
    """The role's defaults and vars, raw (not templated), with overrides."""
    data = {}
    for name in ("defaults", "vars"):
        with open(os.path.join(ROLE, name, "main.yml")) as handle:
            data.update(yaml.safe_load(handle))
    data.update(overrides)
    return data


def render_template(name, **overrides):
    """A template of the role rendered by Ansible's templar (lookups included) in a subprocess."""
    variables = role_vars(**overrides)
    proc = subprocess.run([sys.executable, "-c", _TEMPLAR, json.dumps(variables), os.path.join(ROLE, "templates", name)],
                          capture_output=True, text=True, cwd="/", check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return proc.stdout if proc.stdout.endswith("\n") else proc.stdout + "\n"


@functools.lru_cache(maxsize=None)
def _rendered(python):
    return render_template("lvm_wrapper.j2", gfs2_clvm_lvm_wrapper_source=SOURCE, gfs2_clvm_lvm_wrapper_python=python,
                           gfs2_clvm_lvm_wrapper_config=SENTINEL)


def render_wrapper(vgs=("vg-one",), lvm_bin_dir="/usr/sbin", dev_dir="/dev", python=None):
    """Text of the installed wrapper for this configuration."""
    text = _rendered(python or sys.executable)
    line = "\nCONFIG = %s\n" % json.dumps(SENTINEL)
    assert text.count(line) == 1, text[-400:]
    config = {"vgs": list(vgs), "lvm_bin_dir": str(lvm_bin_dir), "dev_dir": str(dev_dir)}
    return text.replace(line, "\nCONFIG = %s\n" % json.dumps(config))


def install_wrapper(path, **kwargs):
    """Write the rendered wrapper to ``path`` (mode 0755) and return ``path``."""
    with open(str(path), "w") as handle:
        handle.write(render_wrapper(**kwargs))
    os.chmod(str(path), stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path
