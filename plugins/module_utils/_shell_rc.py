# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lossless parser and editor for shell-style ``KEY=value`` rc files.

Private module of the nebula.storage collection; its API may change without notice.

Recognised lines (anything else is kept as opaque text):

* ``KEY=word`` with an optional ``export`` prefix, an optional trailing
  comment; ``word`` is a POSIX shell word (unquoted, ``'...'``, ``"..."``,
  backslash escapes), and may span lines inside quotes;
* ``KEY = value`` (blanks around ``=``), the OpenNebula 3.x driver
  configuration form (``tm_shared.conf``); the value is the raw rest of the line.

Commented-out assignments (``#KEY=...``) are comments: they are never changed;
a new assignment of that key is written on the line after the last of them.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

try:
    from typing import Any, List, Optional, Sequence, Tuple  # noqa: F401  pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass


class RcError(Exception):
    """An error about an rc file; ``str()`` is ready for the user."""


class RcSyntaxError(RcError):
    """The text does not parse; carries ``path``, ``line`` and ``column`` (1-based)."""

    def __init__(self, path, line, column, expected):
        # type: (str, int, int, str) -> None
        self.path = path
        self.line = line
        self.column = column
        super(RcSyntaxError, self).__init__('%s:%d:%d: %s' % (path, line, column, expected))


_NAME_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')
_ASSIGN_RE = re.compile(r'([ \t]*(?:export[ \t]+)?)([A-Za-z_][A-Za-z0-9_]*)=')
_CONF_RE = re.compile(r'([ \t]*)([A-Za-z_][A-Za-z0-9_]*)([ \t]+=[ \t]*|=[ \t]+)([^\n]*?)([ \t]*)(?=\n|\Z)')
# one piece of a shell word
_PIECE_RE = re.compile(r'''
  (?P<sq>'[^']*')
| (?P<dq>"(?:[^"\\]|\\.)*")
| (?P<esc>\\.)
| (?P<lit>[^\s'"\\;&|<>()`$]+)
| (?P<exp>\$\{[^}\n]*\}|\$\([^)\n]*\)|`[^`\n]*`|\$)
''', re.X | re.S)
_TAIL_RE = re.compile(r'[ \t]*(?:#[^\n]*)?(?=\n|\Z)')
_SAFE_RE = re.compile(r'[A-Za-z0-9_@%+=:,./-]+\Z')
_DQ_ESCAPE_RE = re.compile(r'([\\"$`])')


def shell_unquote(raw):
    # type: (str) -> Optional[str]
    """Literal value of a shell word, or None if it contains expansions ($, backquotes)."""
    out = []  # type: List[str]
    pos = 0
    n = len(raw)
    while pos < n:
        m = _PIECE_RE.match(raw, pos)
        if m is None:
            return None
        kind = m.lastgroup
        tok = m.group()
        if kind == 'sq':
            out.append(tok[1:-1])
        elif kind == 'dq':
            body = tok[1:-1]
            i = 0
            buf = []
            while i < len(body):
                c = body[i]
                if c == '\\' and i + 1 < len(body) and body[i + 1] in '$`"\\\n':
                    if body[i + 1] != '\n':
                        buf.append(body[i + 1])
                    i += 2
                    continue
                if c in '$`':
                    return None
                buf.append(c)
                i += 1
            out.append(''.join(buf))
        elif kind == 'esc':
            if tok[1] != '\n':
                out.append(tok[1])
        elif kind == 'lit':
            out.append(tok)
        else:
            return None
        pos = m.end()
    return ''.join(out)


def shell_quote(value, style=None):
    # type: (str, Optional[str]) -> str
    """POSIX shell word for ``value``.

    ``style`` is the quoting of the value being replaced: ``'"'``, ``"'"`` or
    None (unquoted/new).  Values that need no quotes keep that style; values
    that need quotes get double quotes (single quotes if ``style`` is ``"'"``).
    """
    if value == '':
        return "''" if style == "'" else '""'
    if _SAFE_RE.match(value):
        if style == '"':
            return '"%s"' % value
        if style == "'":
            return "'%s'" % value
        return value
    if style == "'":
        return "'" + value.replace("'", "'\\''") + "'"
    return '"' + _DQ_ESCAPE_RE.sub(r'\\\1', value) + '"'


def _quote_style(raw):
    # type: (str) -> Optional[str]
    if raw[:1] in ('"', "'"):
        return raw[:1]
    return None


class Assignment:
    """One ``KEY=value`` line (without its newline)."""

    __slots__ = ('prefix', 'key', 'sep', 'raw', 'tail', 'conf', 'offset')

    def __init__(self, prefix, key, sep, raw, tail, conf=False, offset=None):
        # type: (str, str, str, str, str, bool, Optional[int]) -> None
        self.prefix = prefix
        self.key = key
        self.sep = sep
        self.raw = raw
        self.tail = tail
        self.conf = conf
        self.offset = offset

    @property
    def value(self):
        # type: () -> Optional[str]
        if self.conf:
            return self.raw
        return shell_unquote(self.raw)

    def render(self):
        # type: () -> str
        return self.prefix + self.key + self.sep + self.raw + self.tail


class RcDocument:
    """``parts`` alternates opaque text and :class:`Assignment` objects."""

    def __init__(self, parts, text, path):
        # type: (List[Any], str, str) -> None
        self.parts = parts
        self.text = text
        self.path = path

    @property
    def assignments(self):
        # type: () -> List[Assignment]
        return [p for p in self.parts if p.__class__ is Assignment]

    def find(self, key):
        # type: (str) -> List[Assignment]
        return [p for p in self.parts if p.__class__ is Assignment and p.key == key]

    def get(self, key):
        # type: (str) -> Optional[str]
        found = self.find(key)
        return found[-1].value if found else None

    def render(self):
        # type: () -> str
        return ''.join(p.render() if p.__class__ is Assignment else p for p in self.parts)

    def line_of(self, a):
        # type: (Assignment) -> Optional[int]
        return None if a.offset is None else self.text.count('\n', 0, a.offset) + 1


def _scan_word(text, pos, path):
    # type: (str, int, str) -> int
    """End of the shell word starting at ``pos``."""
    n = len(text)
    while pos < n:
        c = text[pos]
        if c.isspace() or c in ';&|<>()':
            return pos
        m = _PIECE_RE.match(text, pos)
        if m is None:
            line = text.count('\n', 0, pos) + 1
            col = pos - (text.rfind('\n', 0, pos) + 1) + 1
            what = {'"': 'a closing "', "'": "a closing '", '\\': 'a character after \\'}.get(c, 'a shell word')
            raise RcSyntaxError(path, line, col, 'expected %s for the value started here' % what)
        pos = m.end()
    return pos


def parse(text, path='<string>'):
    # type: (str, str) -> RcDocument
    """Parse an rc file; raise :class:`RcSyntaxError` for an unterminated quote."""
    parts = []  # type: List[Any]
    opaque = []  # type: List[str]
    pos = 0
    n = len(text)
    while pos < n:
        m = _ASSIGN_RE.match(text, pos)
        if m is not None:
            start = m.end()
            end = _scan_word(text, start, path)
            t = _TAIL_RE.match(text, end)
            if t is not None:
                parts.append(''.join(opaque))
                opaque = []
                parts.append(Assignment(m.group(1), m.group(2), '=', text[start:end], t.group(), False, pos))
                pos = t.end()
                if pos < n:
                    opaque.append('\n')
                    pos += 1
                continue
        else:
            c = _CONF_RE.match(text, pos)
            if c is not None and not c.group(4).startswith('#'):
                parts.append(''.join(opaque))
                opaque = []
                parts.append(Assignment(c.group(1), c.group(2), c.group(3), c.group(4), c.group(5), True, pos))
                pos = c.end()
                if pos < n:
                    opaque.append('\n')
                    pos += 1
                continue
        nl = text.find('\n', pos)
        nl = n if nl < 0 else nl + 1
        opaque.append(text[pos:nl])
        pos = nl
    parts.append(''.join(opaque))
    return RcDocument(parts, text, path)


def _commented_re(key):
    # type: (str) -> Any
    return re.compile(r'^[ \t]*#[ \t]*(?:export[ \t]+)?%s[ \t]*=[^\n]*(?:\n|\Z)' % re.escape(key), re.M)


def _new_assignment(doc, key, value):
    # type: (RcDocument, str, str) -> Assignment
    existing = doc.assignments
    if existing and all(a.conf for a in existing):
        if '\n' in value:
            raise RcError('%s: %s: a value with a newline cannot be written in a KEY = value file' % (doc.path, key))
        return Assignment('', key, existing[-1].sep, value, '', True)
    return Assignment('', key, '=', shell_quote(value), '')


def _insert(doc, new):
    # type: (RcDocument, Assignment) -> None
    """Insert after the last commented-out ``#KEY=`` line, else at the end."""
    parts = doc.parts
    rx = _commented_re(new.key)
    for i in range(len(parts) - 1, -1, -1):
        p = parts[i]
        if p.__class__ is not str:
            continue
        last = None
        for m in rx.finditer(p):
            last = m
        if last is None:
            continue
        cut = last.end()
        head, tail = p[:cut], p[cut:]
        if not head.endswith('\n'):
            head += '\n'
            tail = tail or ''
            parts[i:i + 1] = [head, new, tail]
        else:
            parts[i:i + 1] = [head, new, '\n' + tail]
        return
    last = parts[-1]
    text = doc.render()
    if text and not text.endswith('\n'):
        last += '\n'
    parts[-1:] = [last, new, '\n']


def _remove(doc, a):
    # type: (RcDocument, Assignment) -> None
    parts = doc.parts
    i = parts.index(a)
    before, after = parts[i - 1], parts[i + 1]
    if after.startswith('\n'):
        after = after[1:]
    elif before.endswith('\n'):
        before = before[:-1]
    parts[i - 1:i + 2] = [before + after]


def _to_str(value, what):
    # type: (Any, str) -> str
    if isinstance(value, bool):
        raise RcError('%s: got a boolean; quote the value (for example "yes" or "1")' % what)
    if value is None or isinstance(value, (dict, list)):
        raise RcError('%s: expected a string or a number' % what)
    return str(value)


def set_value(doc, key, value):
    # type: (RcDocument, str, Any) -> List[str]
    if not _NAME_RE.match(key):
        raise RcError('set: %r is not a valid shell variable name' % key)
    value = _to_str(value, 'set.%s' % key)
    found = doc.find(key)
    if found:
        a = found[-1]
        if a.value == value:
            return []
        old = a.raw
        if a.conf:
            if '\n' in value:
                raise RcError('%s: %s: a value with a newline cannot be written in a KEY = value line' % (doc.path, key))
            a.raw = value
        else:
            a.raw = shell_quote(value, _quote_style(a.raw))
        return ['%s: set to %s (was %s, line %d)' % (key, a.raw, old if old else 'empty', doc.line_of(a) or 0)]
    new = _new_assignment(doc, key, value)
    _insert(doc, new)
    return ['%s: added %s' % (key, new.raw)]


def unset_value(doc, key):
    # type: (RcDocument, str) -> List[str]
    changes = []  # type: List[str]
    for a in doc.find(key):
        changes.append('%s: removed (line %d)' % (key, doc.line_of(a) or 0))
        _remove(doc, a)
    return changes


def edit_words(doc, key, add=(), remove=(), separator=' '):
    # type: (RcDocument, str, Sequence[Any], Sequence[Any], str) -> List[str]
    """Add/remove words of a list-valued variable (e.g. LIVE_DISK_SNAPSHOTS)."""
    if not _NAME_RE.match(key):
        raise RcError('words: %r is not a valid shell variable name' % key)
    if not separator:
        raise RcError('words[%s]: separator must not be empty' % key)
    add = [_to_str(w, 'words[%s].add' % key) for w in add or ()]
    remove = [_to_str(w, 'words[%s].remove' % key) for w in remove or ()]
    both = [w for w in add if w in remove]
    if both:
        raise RcError('words[%s]: %s is both in add and remove' % (key, ', '.join(both)))
    for what, ws in (('add', add), ('remove', remove)):
        for w in ws:
            # a word that the list would split differently is added again on every run
            if not w or (w.split() != [w] if separator == ' ' else separator in w):
                raise RcError('words[%s].%s: %r is not a single word for separator %r (empty, blanks or the separator)'
                              % (key, what, w, separator))
    found = doc.find(key)
    current = ''
    if found:
        current = found[-1].value
        if current is None:
            raise RcError('%s: %s at line %d contains shell expansions; cannot edit its words'
                          % (doc.path, key, doc.line_of(found[-1]) or 0))
    words = current.split() if separator == ' ' else [w for w in current.split(separator) if w]
    added = []  # type: List[str]
    for w in add:
        if w not in words and w not in added:
            added.append(w)
    removed = [w for w in words if w in remove]
    if not added and not removed:
        return []
    new_words = [w for w in words if w not in remove] + added
    changes = ['%s: added "%s"' % (key, w) for w in added] + ['%s: removed "%s"' % (key, w) for w in removed]
    if found:
        a = found[-1]
        new = separator.join(new_words)
        a.raw = new if a.conf else shell_quote(new, _quote_style(a.raw))
    else:
        _insert(doc, _new_assignment(doc, key, separator.join(new_words)))
    return changes


def apply_edits(doc, set=None, unset=None, words=None):  # pylint: disable=redefined-builtin
    # type: (RcDocument, Any, Optional[Sequence[str]], Any) -> List[str]
    """Apply ``set`` (dict), ``unset`` (list) and ``words`` (list of dicts) in that order."""
    changes = []  # type: List[str]
    set = set or {}
    unset = list(unset or ())
    for k in unset:
        if k in set:
            raise RcError('%s is both in set and unset' % k)
    for w in words or ():
        if w['name'] in set or w['name'] in unset:
            raise RcError('%s is both in words and in set/unset' % w['name'])
    for k, v in set.items():
        changes.extend(set_value(doc, str(k), v))
    for k in unset:
        changes.extend(unset_value(doc, str(k)))
    for w in words or ():
        changes.extend(edit_words(doc, str(w['name']), w.get('add') or (), w.get('remove') or (),
                                  w.get('separator') if w.get('separator') is not None else ' '))
    return changes


def edit_text(text, path='<string>', **edits):
    # type: (str, str, Any) -> Tuple[str, List[str]]
    """Parse, edit and render; returns ``(new_text, changes)``."""
    doc = parse(text, path)
    changes = apply_edits(doc, **edits)
    return (doc.render() if changes else text), changes
