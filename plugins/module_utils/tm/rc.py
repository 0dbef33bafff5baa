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

_NAME_EQ = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAPPING = re.compile(r"^\s*([A-Z_]+)\s*=\s*(\S+)\s*$")
_META = " \t\n;&|<>()"
# after "$": what makes bash expand instead of keeping a literal "$"
_EXPANSION = re.compile(r"[A-Za-z0-9_{(@*#?$!-]")


class RcError(ValueError):
    """A line of an rc or mapping file that cannot be read; names the line."""


class _Scanner(object):
    """Reads ``KEY=value`` statements as bash does, without running a shell.

    Values may be unquoted, in ``'...'`` or ``"..."`` (spanning lines), with backslash escapes and
    line continuations.  What needs a shell to know its value (``$VAR``, ``$(...)``, backquotes,
    ``$'...'``, a leading ``~``) or is not an assignment (a command) is an error naming the line.
    """

    def __init__(self, text):
        self.text = text
        self.pos = 0

    def line(self, pos=None):
        return self.text.count("\n", 0, self.pos if pos is None else pos) + 1

    def fail(self, what, pos=None):
        raise RcError("line %d: %s" % (self.line(pos), what))

    def statements(self):
        """``[(key, value, start, end)]`` in file order; ``start``/``end`` span ``KEY=word``."""
        text, n = self.text, len(self.text)
        out = []
        at_command_start = True
        exported = False
        while self.pos < n:
            c = text[self.pos]
            if c in " \t":
                self.pos += 1
            elif c == "\\" and text.startswith("\\\n", self.pos):
                self.pos += 2
            elif c in "\n;":
                self.pos += 1
                at_command_start, exported = True, False
            elif c == "#":
                nl = text.find("\n", self.pos)
                self.pos = n if nl < 0 else nl
            else:
                start = self.pos
                m = _NAME_EQ.match(text, start)
                if m is None:
                    word_end = self._word_end(start)
                    word = text[start:word_end]
                    if word == "export" and at_command_start and not exported:
                        exported = True
                        self.pos = word_end
                        continue
                    if exported and _NAME.match(word) and _NAME.match(word).end() == len(word):
                        self.pos = word_end  # ``export NAME``: no value given
                        continue
                    self.fail("not a KEY=value assignment: %r" % text[start:text.find("\n", start) if "\n" in text[start:] else n])
                if not at_command_start and not exported:
                    pass  # ``A=1 B=2``: both are assignments
                self.pos = m.end()
                value = self._value()
                out.append((m.group()[:-1], value, start, self.pos))
                if self.pos < n and text[self.pos] not in _META:
                    self.fail("unexpected %r after the value of %s" % (text[self.pos], m.group()[:-1]))
                at_command_start = False
        return out

    def _word_end(self, pos):
        text, n = self.text, len(self.text)
        while pos < n and text[pos] not in _META:
            c = text[pos]
            if c in "'\"":
                close = pos + 1
                while True:
                    close = text.find(c, close)
                    if close < 0:
                        self.fail("no closing %s for the quote opened here" % c, pos)
                    if c == '"' and _escaped(text, close):
                        close += 1
                        continue
                    break
                pos = close + 1
            elif c == "\\":
                pos += 2
            else:
                pos += 1
        return min(pos, n)

    def _value(self):
        text, n = self.text, len(self.text)
        out = []
        first = True
        while self.pos < n:
            c = text[self.pos]
            if c in _META:
                break
            if c == "'":
                close = text.find("'", self.pos + 1)
                if close < 0:
                    self.fail("no closing ' for the quote opened here")
                out.append(text[self.pos + 1:close])
                self.pos = close + 1
            elif c == '"':
                self._double_quoted(out)
            elif c == "\\":
                if self.pos + 1 >= n:
                    self.pos += 1  # a backslash at the very end stays
                    out.append("\\")
                elif text[self.pos + 1] == "\n":
                    self.pos += 2  # line continuation
                else:
                    out.append(text[self.pos + 1])
                    self.pos += 2
            elif c == "$" and self.pos + 1 < n and (_EXPANSION.match(text[self.pos + 1]) or text[self.pos + 1] in "'\""):
                self.fail("the value needs a shell to expand %r" % text[self.pos:self.pos + 2])
            elif c == "`":
                self.fail("the value needs a shell to run a command (backquote)")
            elif c == "~" and (first or out and out[-1].endswith(":") and text[self.pos - 1] == ":"):
                self.fail("the value starts with ~ (tilde expansion); quote it")
            else:
                out.append(c)
                self.pos += 1
            first = False
        return "".join(out)

    def _double_quoted(self, out):
        text, n = self.text, len(self.text)
        start = self.pos
        self.pos += 1
        while True:
            if self.pos >= n:
                self.fail('no closing " for the quote opened here', start)
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return
            if c == "\\" and self.pos + 1 < n and text[self.pos + 1] in '$`"\\\n':
                if text[self.pos + 1] != "\n":
                    out.append(text[self.pos + 1])
                self.pos += 2
            elif c == "$" and self.pos + 1 < n and _EXPANSION.match(text[self.pos + 1]):
                self.fail("the value needs a shell to expand %r" % text[self.pos:self.pos + 2])
            elif c == "`":
                self.fail("the value needs a shell to run a command (backquote)")
            else:
                out.append(c)
                self.pos += 1


def _escaped(text, pos):
    """True if the character at ``pos`` follows an odd number of backslashes."""
    k = pos
    while k > 0 and text[k - 1] == "\\":
        k -= 1
    return (pos - k) % 2 == 1


def assignments(text):
    """``[(key, value, start, end)]`` of rc text, values read as bash reads them."""
    return _Scanner(text).statements()


def parse_rc(text):
    """``KEY=value`` pairs from rc text, as ``bash -c 'source FILE'`` would set them.

    Comments and blank lines are skipped; a later assignment wins.
    """
    return dict((key, value) for key, value, _s, _e in assignments(text))


def read_rc(path):
    """Settings of an rc file; a missing file gives no settings."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "surrogateescape")
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
    return "'" + value.replace("'", "'\\''") + "'"


def render_rc(settings, header=None):
    lines = []
    if header:
        lines.extend("# " + h if h else "#" for h in header.splitlines())
    for key in settings:
        lines.append("%s=%s" % (key, format_value(settings[key])))
    return "\n".join(lines) + "\n"


def update_rc(text, settings):
    """Set the given keys in existing rc text, keeping every other byte as it is."""
    out = []
    last = 0
    seen = set()
    for key, _value, start, end in assignments(text):
        if key in settings:
            out.append(text[last:start])
            out.append("%s=%s" % (key, format_value(settings[key])))
            last = end
            seen.add(key)
    out.append(text[last:])
    new = "".join(out)
    missing = [key for key in settings if key not in seen]
    if missing:
        if new and not new.endswith("\n"):
            new += "\n"
        new += "".join("%s=%s\n" % (key, format_value(settings[key])) for key in missing)
    return new


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
