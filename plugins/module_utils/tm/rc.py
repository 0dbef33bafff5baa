# -*- coding: utf-8 -*-
# Copyright: nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The driver rc file: shell-style ``KEY=value`` lines, read without running a shell.

Also reads and renders the OpenNebula 3.x TM mapping file
(``/etc/one/tm_<name>/tm_<name>.conf``: ``CLONE = <name>/tm_clone.sh``).
"""
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re
import shlex

_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_MAPPING = re.compile(r"^\s*([A-Z_]+)\s*=\s*(\S+)\s*$")


class RcError(ValueError):
    """A line of an rc or mapping file that cannot be read; names the line."""


def _value(raw, lineno):
    raw = raw.strip()
    if raw == "":
        return ""
    try:
        words = shlex.split(raw, comments=True)
    except ValueError as exc:
        raise RcError("line %d: cannot parse value %r: %s" % (lineno, raw, exc))
    return " ".join(words)


def parse_rc(text):
    """``KEY=value`` pairs from rc text; comments and blank lines are skipped."""
    result = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ASSIGN.match(line)
        if not match:
            raise RcError("line %d: not a KEY=value assignment: %r" % (lineno, line))
        result[match.group(1)] = _value(match.group(2), lineno)
    return result


def read_rc(path):
    """Settings of an rc file; a missing file gives no settings."""
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except (IOError, OSError):
        return {}
    try:
        return parse_rc(text)
    except RcError as exc:
        raise RcError("%s: %s" % (path, exc))


def format_value(value):
    """Render a value for an rc line; quoted only when it needs quoting."""
    value = str(value)
    if value and re.match(r"^[A-Za-z0-9_./:,+@%=-]+$", value):
        return value
    return shlex.quote(value)


def render_rc(settings, header=None):
    lines = []
    if header:
        lines.extend("# " + h if h else "#" for h in header.splitlines())
    for key in settings:
        lines.append("%s=%s" % (key, format_value(settings[key])))
    return "\n".join(lines) + "\n"


def update_rc(text, settings):
    """Set the given keys in existing rc text, keeping every other line as it is."""
    lines = text.splitlines()
    seen = set()
    for index, line in enumerate(lines):
        match = _ASSIGN.match(line)
        if match and match.group(1) in settings:
            key = match.group(1)
            lines[index] = "%s=%s" % (key, format_value(settings[key]))
            seen.add(key)
    for key in settings:
        if key not in seen:
            lines.append("%s=%s" % (key, format_value(settings[key])))
    return "\n".join(lines) + "\n"


def parse_mapping(text):
    """``ACTION = driver/tm_action.sh`` pairs of a 3.x mapping file."""
    result = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _MAPPING.match(line)
        if not match:
            raise RcError("line %d: not an ACTION = script mapping: %r" % (lineno, line))
        result[match.group(1)] = match.group(2)
    return result


def render_mapping(name, actions, header=None):
    lines = []
    if header:
        lines.extend("# " + h if h else "#" for h in header.splitlines())
        lines.append("")
    width = max(len(a) for a in actions) if actions else 0
    for action in actions:
        lines.append("%s = %s/tm_%s.sh" % (action.upper().ljust(width), name, action))
    return "\n".join(lines) + "\n"
