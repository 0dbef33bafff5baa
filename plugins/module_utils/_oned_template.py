# -*- coding: utf-8 -*-
# Copyright (c) nebula.storage contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lossless parser, editor and renderer for OpenNebula template files (oned.conf).

This is a private module of the nebula.storage collection; its API may change
without notice.

The grammar follows oned's own template parser:

* keys are ``[A-Za-z0-9_]+`` and case-insensitive;
* a value is ``"..."`` (may span lines, ``\\"`` escapes a quote) or an unquoted
  word without blanks and ``= # , [ ]``; the value starts on the line of ``=``;
  a top-level ``KEY =`` followed by a newline is an empty value;
* vectors are ``KEY = [ K = V, K = V ]``; they do not nest, ``[ ]`` may be empty
  and a trailing comma is an error;
* comments run from ``#`` to the end of the line, also inside vectors;
* top-level keys may repeat.

The document is kept as a tree of string parts, so that rendering an unedited
document gives back every byte, and an edit replaces only the tokens it must.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

try:
    from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union  # noqa: F401  pylint: disable=unused-import
except ImportError:  # pragma: no cover
    pass


class TemplateError(Exception):
    """An error about a template file; ``str()`` is ready for the user."""


class TemplateSyntaxError(TemplateError):
    """The text does not parse; carries ``path``, ``line`` and ``column`` (1-based)."""

    def __init__(self, path, line, column, expected):
        # type: (str, int, int, str) -> None
        self.path = path
        self.line = line
        self.column = column
        self.expected = expected
        super(TemplateSyntaxError, self).__init__('%s:%d:%d: %s' % (path, line, column, expected))


class TemplateRefused(TemplateSyntaxError):
    """oned would read the text, but not as it looks (a CR, a skipped character, a quote glued to a word)."""


# --------------------------------------------------------------------------
# Lexer: OpenNebula's src/parsers/template_parser.l, rule for rule
# --------------------------------------------------------------------------
# flex takes the longest match of the rules active in the current start
# condition, the first rule on a tie, and echoes (skips) a character no rule
# matches.  [[:blank:]] is space and tab; "." is anything but a newline.
#
# INITIAL: comment "[ \t]*#.*\n" (needs the newline), blanks "[ \t\n]+",
#   VARIABLE "[[:alnum:]_]+", EQUAL "[ \t]*=[ \t]*" (-> VALUE),
#   EQUAL_EMPTY "[ \t]*=[ \t]*\n", COMMA "[ \t\n]*,[ \t\n]*", CBRACKET "[ \t\n]*\][ \t\n]*".
# VALUE: OBRACKET "[ \t]*\[[ \t\n]*", CCDATA ".*\]\]>.*" (oned then stops
#   reading: YYABORT, no message), quoted "\"([^\"]|\\\")*\"", STRING "[^=# \t\n,\[\]]+".
# The parser (template_syntax.y) removes the backslash of every \" in a value,
# quoted or not; a vector keeps the first of repeated keys (map::insert).

# In INITIAL, the blanks a rule takes before or after its symbol only ever become trivia, so one
# alternation that cuts blanks, comments and symbols apart gives the same tokens as the rules'
# longest match (test_oned_lexer checks it against the real lexer).  EQUAL must keep its trailing
# blanks: the VALUE rules do not skip blanks.
_INITIAL_RE = re.compile(r"""
  (?P<t>(?:[ \t\n]+|\#[^\n]*\n)+)
| (?P<v>[A-Za-z0-9_]+)
| (?P<eqe>=)(?P<eqe_t>[ \t]*\n)
| (?P<eq>=)(?P<eq_t>[ \t]*)
| (?P<p>[,\]])
""", re.X)
_OBRACKET_RE = re.compile(r'([ \t]*)(\[)([ \t\n]*)')
_STRING_RE = re.compile(r'[^=# \t\n,\[\]]+')
CDATA_END = ']]>'

_KEY_RE = re.compile(r'[A-Za-z0-9_]+\Z')
_BARE_RE = re.compile(r'[^\s=#,\[\]"][^\s=#,\[\]]*\Z')
_BLANKS_RE = re.compile(r'[ \t]*\Z')
_SAME_LINE_TAIL_RE = re.compile(r'[ \t]*(?:#[^\n]*)?')
_LINE_END_RE = re.compile(r'[ \t]*(?:#[^\n]*)?(?:\n|\Z)')


def _quoted_end(text, pos):
    # type: (str, int) -> int
    """End of flex's longest ``"([^"]|\\")*"`` match at ``pos`` (text[pos] is a quote), or -1."""
    end = -1
    q = pos
    while True:
        q = text.find('"', q + 1)
        if q < 0:
            return end
        end = q + 1
        if text[q - 1] != '\\' or q - 1 == pos:
            return end  # a quote without a backslash before it can only close


def _position(text, pos):
    # type: (str, int) -> Tuple[int, int]
    line = text.count('\n', 0, pos) + 1
    col = pos - (text.rfind('\n', 0, pos) + 1) + 1
    return line, col


def _lex(text, path):
    # type: (str, str) -> Tuple[List[Tuple[str, str, int]], List[int]]
    """Tokens ``(kind, text, offset)`` as oned's lexer cuts them, and where it skipped a ``#``.

    Kinds: ``t`` trivia (blanks, newlines, comments), ``v`` a name, ``eq``/``eqe`` (``=``, ``=`` then
    end of line), ``[ , ]``, ``s`` a value (raw, quotes included), ``cdata``; then ``eof``.  What
    oned reads differently from how it looks raises :class:`TemplateRefused`.
    """
    toks = []  # type: List[Tuple[str, str, int]]
    n = len(text)
    pos = 0
    value = False
    skipped_hash = []  # type: List[int]

    def refuse(at, what):
        line, col = _position(text, at)
        raise TemplateRefused(path, line, col, what)

    def emit(kind, tok, at):
        if kind == 't' and toks and toks[-1][0] == 't':
            toks[-1] = ('t', toks[-1][1] + tok, toks[-1][2])
        elif tok or kind != 't':
            toks.append((kind, tok, at))

    def emit3(m, kind):
        emit('t', m.group(1), m.start(1))
        emit(kind, m.group(2), m.start(2))
        emit('t', m.group(3), m.start(3))

    while pos < n:
        if value:
            value = False
            best = None  # type: Optional[Tuple[int, int, Any]]
            m = _OBRACKET_RE.match(text, pos)
            cands = []  # type: List[Tuple[int, str, Any]]
            if m:
                cands.append((m.end(), '[', m))
            eol = text.find('\n', pos)
            eol = n if eol < 0 else eol
            if text.find(CDATA_END, pos, eol) >= 0:
                cands.append((eol, 'cdata', None))
            if text[pos] == '"':
                e = _quoted_end(text, pos)
                if e > 0:
                    cands.append((e, 'q', None))
            m2 = _STRING_RE.match(text, pos)
            if m2:
                cands.append((m2.end(), 's', m2))
            for order, c in enumerate(cands):
                if best is None or c[0] > best[0]:
                    best = (c[0], order, c)
            if best is None:
                what = {'#': 'a comment', '\n': 'end of line', '\r': 'a CR character'}.get(text[pos], repr(text[pos]))
                keys = [t[1] for t in toks if t[0] == 'v']
                refuse(pos, 'expected a value on the same line as %s=, found %s (oned would skip it and read what '
                            'follows as the value)' % (keys[-1] + ' ' if keys else '', what))
            end, kind, m = best[2]
            if kind == '[':
                emit3(m, '[')
            elif kind == 'cdata':
                refuse(text.find(CDATA_END, pos, eol),
                       "']]>' on a value's line: oned reads it as the end of a CDATA section and stops reading "
                       "the file there (a syntax error in a vector; at the top level, silently, with the rest of "
                       "the configuration missing)")
            elif kind == 'q':
                tok = text[pos:end]
                emit('s', tok, pos)
            else:
                tok = text[pos:end]
                if '\r' in tok:
                    refuse(pos + tok.index('\r'), 'a CR character (CRLF line ending?): oned reads it as part of the '
                                                  'value (%r); convert the file to LF line endings' % tok)
                if tok.startswith('"'):
                    if _quoted_end(text, pos) < 0:
                        refuse(pos, 'an unterminated quoted string (oned would read %r, quote included, as the value)'
                               % tok)
                    refuse(pos, 'a quoted value glued to a word: oned reads %r, quotes included, as the value; '
                                'put a blank after the closing quote' % tok)
                emit('s', tok, pos)
            pos = end
            continue
        m = _INITIAL_RE.match(text, pos)
        if m is None:
            c = text[pos]
            if c == '#':
                # "#" without a newline after it: the comment rule does not match, flex skips the "#"
                # and oned reads the rest of the last line as tokens.  So do we.
                emit('t', c, pos)
                skipped_hash.append(pos)
                pos += 1
                continue
            if c == '\r':
                refuse(pos, 'a CR character (CRLF line ending?): oned reads it as part of values (PORT = 2633 as '
                            '"2633\\r"); convert the file to LF line endings')
            refuse(pos, 'unexpected %r: oned skips it without a message' % c)
        kind = m.lastgroup
        tok = m.group()
        if kind == 't':
            if '\r' in tok:
                refuse(pos + tok.index('\r'), 'a CR character (CRLF line ending?) in a comment; oned reads CRs in '
                                              'values as part of them; convert the file to LF line endings')
            emit('t', tok, pos)
        elif kind == 'v':
            toks.append(('v', tok, pos))
        elif kind == 'p':
            toks.append((tok, tok, pos))
        elif kind == 'eqe_t':
            toks.append(('eqe', '=', pos))
            emit('t', m.group('eqe_t'), pos + 1)
        else:
            toks.append(('eq', '=', pos))
            emit('t', m.group('eq_t'), pos + 1)
            value = True
        pos = m.end()
    toks.append(('eof', '', n))
    return toks, skipped_hash


def unquote(raw):
    # type: (str) -> str
    """Value of a raw value token as oned reads it: quotes removed, every ``\\"`` becomes ``"``."""
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        raw = raw[1:-1]
    return raw.replace('\\"', '"')


def check_value(value, what='value'):
    # type: (str, str) -> None
    """Refuse a value oned cannot read back as written, wherever it goes."""
    if CDATA_END in value:
        raise TemplateError("%s: %r contains ']]>', which oned reads as the end of a CDATA section: it would stop "
                            "reading oned.conf there" % (what, value))


def quote(value):
    # type: (str) -> str
    """Quoted form of ``value``, as oned writes it."""
    if value.endswith('\\'):
        raise TemplateError('value %r ends with a backslash, which oned cannot read inside quotes' % value)
    check_value(value)
    return '"' + value.replace('"', '\\"') + '"'


def is_bare(value):
    # type: (str) -> bool
    """True if ``value`` reads back the same written without quotes."""
    return bool(_BARE_RE.match(value)) and '\\"' not in value


def render_value(value, old_raw=None, raw=False, what='value'):
    # type: (str, Optional[str], bool, str) -> str
    """Token text for ``value``: quoted, unless ``raw`` or the old token was unquoted.

    The token always reads back as ``value`` with oned's rules; else :class:`TemplateError` names ``what``.
    """
    check_value(value, what)
    if raw:
        if not is_bare(value):
            raise TemplateError('%s: %r cannot be written unquoted (raw): it is empty or contains blanks, quotes, '
                                '\\" or = # , [ ]' % (what, value))
        tok = value
    elif old_raw is not None and old_raw != '' and not old_raw.startswith('"') and is_bare(value):
        tok = value
    elif value.endswith('\\'):
        if not is_bare(value):
            raise TemplateError('%s: %r ends with a backslash and needs quotes; oned cannot read that' % (what, value))
        tok = value
    else:
        tok = quote(value)
    if unquote(tok) != value:  # pragma: no cover - guarded by the rules above
        raise TemplateError('%s: %r cannot be written so that oned reads it back' % (what, value))
    return tok


class Pair:
    """``KEY = VALUE``: ``parts`` is ``[key, blanks, '=', blanks, value]``.

    ``value`` is a raw token string (``""`` for an empty top-level value) or a
    :class:`Vector`.  ``offset`` is the position in the parsed text, or None for
    a pair added by an edit.
    """

    __slots__ = ('parts', 'offset')

    def __init__(self, key, value, ws1=' ', ws2=' ', offset=None):
        # type: (str, Union[str, Vector], str, str, Optional[int]) -> None
        self.parts = [key, ws1, '=', ws2, value]  # type: List[Any]
        self.offset = offset

    @property
    def key(self):
        # type: () -> str
        return self.parts[0]

    @property
    def ukey(self):
        # type: () -> str
        return self.parts[0].upper()

    @property
    def node(self):
        # type: () -> Union[str, Vector]
        return self.parts[4]

    @property
    def is_vector(self):
        # type: () -> bool
        return isinstance(self.parts[4], Vector)

    @property
    def raw(self):
        # type: () -> str
        return self.parts[4]

    @property
    def value(self):
        # type: () -> str
        return unquote(self.parts[4])

    def set_raw(self, raw):
        # type: (str) -> None
        if self.parts[4] == '' and self.parts[3] == '':
            self.parts[3] = ' '
        self.parts[4] = raw

    def render_into(self, out):
        # type: (List[str]) -> None
        parts = self.parts
        out.append(parts[0])
        out.append(parts[1])
        out.append('=')
        out.append(parts[3])
        v = parts[4]
        if v.__class__ is Vector:
            out.extend(v.flat())
        else:
            out.append(v)


class Vector:
    """``[ ... ]``: parts are ``['[', trivia, Pair, trivia, ',', trivia, Pair, trivia, ']']``.

    An empty vector is ``['[', trivia, ']']``.  Trivia strings may be empty.
    """

    __slots__ = ('parts',)

    def __init__(self, parts):
        # type: (List[Any]) -> None
        self.parts = parts

    @property
    def pairs(self):
        # type: () -> List[Pair]
        return [p for p in self.parts if p.__class__ is Pair]

    def find(self, key):
        # type: (str) -> List[Pair]
        ukey = key.upper()
        return [p for p in self.parts if p.__class__ is Pair and p.parts[0].upper() == ukey]

    def get(self, key):
        # type: (str) -> Optional[str]
        found = self.find(key)
        return found[0].value if found else None

    def flat(self):
        # type: () -> List[str]
        out = []  # type: List[str]
        for p in self.parts:
            if p.__class__ is Pair:
                p.render_into(out)
            else:
                out.append(p)
        return out

    def render(self):
        # type: () -> str
        return ''.join(self.flat())


class Document:
    """A parsed template: ``parts`` alternates trivia strings and top-level :class:`Pair`."""

    def __init__(self, parts, text, path):
        # type: (List[Any], str, str) -> None
        self.parts = parts
        self.text = text
        self.path = path
        # the last line is a comment without a newline: oned reads its text as attributes
        self.eof_comment_line = None  # type: Optional[int]

    @property
    def attributes(self):
        # type: () -> List[Pair]
        return [p for p in self.parts if p.__class__ is Pair]

    def find(self, name):
        # type: (str) -> List[Pair]
        uname = name.upper()
        return [p for p in self.parts if p.__class__ is Pair and p.parts[0].upper() == uname]

    def render(self):
        # type: () -> str
        out = []  # type: List[str]
        for p in self.parts:
            if p.__class__ is Pair:
                p.render_into(out)
            else:
                out.append(p)
        return ''.join(out)

    def line_of(self, pair):
        # type: (Pair) -> Optional[int]
        if pair.offset is None:
            return None
        return self.text.count('\n', 0, pair.offset) + 1

    def where(self, pair):
        # type: (Pair) -> str
        line = self.line_of(pair)
        return 'line %d' % line if line is not None else 'a block added by this task'


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------

def _describe(kind, tok):
    # type: (str, str) -> str
    if kind == 'eof':
        return 'end of file'
    if kind == 't':
        if '#' in tok and not tok.lstrip(' \t').startswith('\n'):
            return 'a comment'
        return 'end of line' if '\n' in tok else 'blanks'
    if kind == 'eqe':
        return "'=' at the end of the line"
    return repr(tok)


def parse(text, path='<string>'):
    # type: (str, str) -> Document
    """Parse ``text`` as oned does; raise :class:`TemplateSyntaxError` with the position on error.

    Where oned would read the text differently from how it looks, :class:`TemplateRefused` (a
    :class:`TemplateSyntaxError`) says how.
    """
    toks, eof_hash = _lex(text, path)
    n = len(toks) - 1

    def fail(i, expected):
        kind, tok, pos = toks[i]
        if kind == 't':  # point at what follows the blanks
            pos += len(tok) - len(tok.lstrip(' \t'))
        line, col = _position(text, pos)
        msg = 'expected %s, found %s' % (expected, _describe(kind, tok))
        if eof_hash:
            msg += ('; note: line %d, the last, is a comment without a newline at its end, which oned reads as '
                    'attributes' % _position(text, eof_hash[0])[0])
        raise TemplateSyntaxError(path, line, col, msg)

    def pair_at(i, top):
        # toks[i] is a 'v' token in key position.
        kind, key, pos = toks[i]
        i += 1
        ws1 = ''
        if toks[i][0] == 't':
            ws1 = toks[i][1]
            i += 1
        kind = toks[i][0]
        if kind == 'eqe':
            if top:
                # ``KEY =`` at the end of the line: an empty value.  The
                # trivia (blanks, newline) stays in the document.
                return Pair(key, '', ws1, '', pos), i + 1
            fail(i + 1, 'a value on the same line as %s =' % key)
        if kind != 'eq':
            fail(i, "'=' after attribute name %s" % key)
        i += 1
        ws2 = ''
        kind, tok = toks[i][:2]
        if kind == 't':
            ws2 = tok
            i += 1
            kind, tok = toks[i][:2]
        if kind == 's':
            return Pair(key, tok, ws1, ws2, pos), i + 1
        if kind == '[':
            if not top:
                fail(i, 'a value (vectors do not nest)')
            vec, i = vector_at(i)
            return Pair(key, vec, ws1, ws2, pos), i
        return fail(i, 'a value for %s' % key)

    def vector_at(i):
        # toks[i] is '['
        parts = ['[']  # type: List[Any]
        i += 1
        if toks[i][0] == 't':
            parts.append(toks[i][1])
            i += 1
        else:
            parts.append('')
        if toks[i][0] == ']':
            parts.append(']')
            return Vector(parts), i + 1
        while True:
            if toks[i][0] != 'v':
                fail(i, "an attribute name or ']'" if len(parts) == 2 else "an attribute name after ','")
            pair, i = pair_at(i, False)
            parts.append(pair)
            if toks[i][0] == 't':
                parts.append(toks[i][1])
                i += 1
            else:
                parts.append('')
            kind, tok = toks[i][:2]
            if kind == ']':
                parts.append(']')
                return Vector(parts), i + 1
            if kind == ',':
                parts.append(',')
                i += 1
                if toks[i][0] == 't':
                    parts.append(toks[i][1])
                    i += 1
                else:
                    parts.append('')
                continue
            fail(i, "',' or ']'")

    parts = []  # type: List[Any]
    trivia = ''
    i = 0
    while i < n:
        kind, tok, pos = toks[i]
        if kind == 't':
            trivia += tok
            i += 1
        elif kind == 'v':
            parts.append(trivia)
            trivia = ''
            pair, i = pair_at(i, True)
            parts.append(pair)
        else:
            fail(i, 'an attribute name')
    parts.append(trivia)
    doc = Document(parts, text, path)
    if eof_hash:
        doc.eof_comment_line = _position(text, eof_hash[0])[0]
    return doc


# --------------------------------------------------------------------------
# Style helpers
# --------------------------------------------------------------------------

def _key_case(keys):
    # type: (Iterable[str]) -> Optional[str]
    """'lower' or 'upper' if every key with letters has that case, else None."""
    lower = upper = False
    for k in keys:
        if k.lower() != k.upper():
            if k == k.lower():
                lower = True
            elif k == k.upper():
                upper = True
            else:
                return None
    if lower and not upper:
        return 'lower'
    if upper and not lower:
        return 'upper'
    return None


def _apply_case(key, case):
    # type: (str, Optional[str]) -> str
    if case == 'lower':
        return key.lower()
    if case == 'upper':
        return key.upper()
    return key


def _indent_after(trivia):
    # type: (str) -> Optional[str]
    """Indentation of the line a trivia string leads into, or None if it has no newline."""
    nl = trivia.rfind('\n')
    if nl < 0:
        return None
    rest = trivia[nl + 1:]
    return rest if _BLANKS_RE.match(rest) else None


class _VecStyle:
    """Layout of an existing vector, used to add pairs that look alike."""

    def __init__(self, vec):
        # type: (Vector) -> None
        parts = vec.parts
        pairs = []  # type: List[Tuple[Pair, str]]
        for idx, p in enumerate(parts):
            if p.__class__ is Pair:
                pairs.append((p, parts[idx - 1]))
        self.multiline = any('\n' in p for p in parts if p.__class__ is str)
        starts = [p for p, before in pairs if _indent_after(before) is not None]
        self.one_per_line = self.multiline and len(starts) == len(pairs) and bool(pairs)
        self.indent = '    '
        for p, before in pairs:
            ind = _indent_after(before)
            if ind is not None:
                self.indent = ind
        last = pairs[-1][0] if pairs else None
        self.ws1 = last.parts[1] if last is not None else ' '
        self.ws2 = last.parts[3] if last is not None else ' '
        if '\n' in self.ws1 or '#' in self.ws1:
            self.ws1 = ' '
        self.align = None  # type: Optional[int]
        if self.one_per_line and len(pairs) >= 2:
            widths = set(len(p.parts[0]) + len(p.parts[1]) for p, _before in pairs)
            if len(widths) == 1 and len(set(len(p.parts[0]) for p, _before in pairs)) > 1:
                self.align = widths.pop()
        self.case = _key_case(p.parts[0] for p, _before in pairs)
        lines = vec.render().split('\n')
        self.width = max([80] + [len(line) for line in lines[1:]])
        self.t0 = parts[1]
        self.closing = parts[-2] if len(parts) > 3 else ('\n' if self.multiline else ' ')

    def ws1_for(self, key):
        # type: (str) -> str
        if self.align is not None:
            return ' ' * max(1, self.align - len(key))
        return self.ws1


def _current_column(vec, upto):
    # type: (Vector, int) -> Optional[int]
    """Column after rendering ``vec.parts[:upto]``, or None if no newline was seen."""
    out = []  # type: List[str]
    for p in vec.parts[:upto]:
        if p.__class__ is Pair:
            p.render_into(out)
        else:
            out.append(p)
    text = ''.join(out)
    nl = text.rfind('\n')
    if nl < 0:
        return None
    return len(text) - nl - 1


def _append_pair(vec, key, raw, style=None):
    # type: (Vector, str, str, Optional[_VecStyle]) -> Pair
    """Add ``key = raw`` at the end of ``vec``, in the vector's own layout."""
    style = style or _VecStyle(vec)
    key = _apply_case(key, style.case)
    new = Pair(key, raw, style.ws1_for(key), style.ws2)
    parts = vec.parts
    if len(parts) == 3:  # empty vector
        t0 = parts[1]
        if '\n' in t0:
            vec.parts = ['[', '\n' + style.indent, new, t0, ']']
        else:
            vec.parts = ['[', ' ', new, ' ', ']']
        return new
    last_trivia = parts[-2]
    rendered = []  # type: List[str]
    new.render_into(rendered)
    new_len = len(''.join(rendered))
    newline = style.one_per_line
    if style.multiline and not newline:
        col = _current_column(vec, len(parts) - 2)
        newline = col is None or col + 2 + new_len > style.width
    if not newline:
        # same line: ``last, KEY = V`` and keep what followed the last pair
        parts[-2:-1] = ['', ',', ' ', new, last_trivia]
        return new
    head = _SAME_LINE_TAIL_RE.match(last_trivia).group()
    if '#' in head:
        # a comment on the last pair's line stays on that line
        parts[-2:-1] = ['', ',', head + '\n' + style.indent, new, last_trivia[len(head):]]
    else:
        parts[-2:-1] = ['', ',', '\n' + style.indent, new, last_trivia]
    return new


def _remove_pair(vec, pair):
    # type: (Vector, Pair) -> None
    """Remove ``pair`` and one adjacent comma, keeping the vector's layout."""
    parts = vec.parts
    i = parts.index(pair)
    if parts[i + 2] == ']':
        if i == 2:  # the only pair
            t0, after = parts[1], parts[3]
            if not t0.strip() and not after.strip():
                vec.parts = ['[', '\n' if '\n' in t0 + after else ' ', ']']
            else:
                vec.parts = ['[', t0 + after, ']']
            return
        # last pair: drop ',' + trivia + pair; keep the trivia after both pairs
        a, c = parts[i - 3], parts[i + 1]
        parts[i - 3:i + 2] = [a + c]
        return
    if i == 2 or '\n' in parts[i - 1]:
        # first pair of the vector or of its line: the next pair takes its place
        del parts[i:i + 4]
        return
    # in the middle of a line: drop ', ' before it
    a, c = parts[i - 3], parts[i + 1]
    parts[i - 3:i + 2] = [a + c]


# --------------------------------------------------------------------------
# Document edits
# --------------------------------------------------------------------------

def _remove_top(doc, pair):
    # type: (Document, Pair) -> None
    parts = doc.parts
    i = parts.index(pair)
    before, after = parts[i - 1], parts[i + 1]
    m = _LINE_END_RE.match(after)
    line_start = i == 1 and _BLANKS_RE.match(before) or _indent_after(before) is not None
    if line_start and m:
        before = before.rstrip(' \t')
        after = after[m.end():]
        if m.group().endswith('\n') and (before.endswith('\n\n') or before == '') and after.startswith('\n'):
            after = after[1:]
    parts[i - 1:i + 2] = [before + after]


def _insert_after(doc, ref, new, sep):
    # type: (Document, Pair, Pair, str) -> None
    """Insert ``new`` right after the top-level ``ref`` (after a comment on its line)."""
    parts = doc.parts
    i = parts.index(ref)
    after = parts[i + 1]
    head = _SAME_LINE_TAIL_RE.match(after).group()
    if '#' not in head:
        head = ''
    parts[i + 1:i + 2] = [head + sep, new, after[len(head):]]


def _append_top(doc, new, blank_line):
    # type: (Document, Pair, bool) -> None
    if doc.eof_comment_line is not None:
        raise TemplateError('%s: line %d, the last, is a comment without a newline at its end; oned reads its text '
                            'as attributes, and adding %s after it would make it a comment; end the file with a '
                            'newline (or remove the line) first' % (doc.path, doc.eof_comment_line, new.key))
    parts = doc.parts
    last = parts[-1]
    text_before = doc.render() if len(parts) > 1 or last else ''
    if text_before and not text_before.endswith('\n'):
        last += '\n'
    if blank_line and text_before and not (text_before + last[len(parts[-1]):]).endswith('\n\n'):
        last += '\n'
    parts[-1:] = [last, new, '\n']


def _line_indent(doc, pair):
    # type: (Document, Pair) -> str
    i = doc.parts.index(pair)
    ind = _indent_after(doc.parts[i - 1])
    return ind or ''


def _label(attribute, match):
    # type: (str, Optional[Dict[str, str]]) -> str
    if not match:
        return attribute
    return '%s[%s]' % (attribute, ','.join('%s=%s' % (k, v) for k, v in match.items()))


def _lines(doc, pairs):
    # type: (Document, Sequence[Pair]) -> str
    return ', '.join(doc.where(p) for p in pairs)


def _to_str(value, what):
    # type: (Any, str) -> str
    if isinstance(value, bool):
        raise TemplateError('%s: got a boolean; quote the value (for example "yes" or "YES")' % what)
    if value is None:
        raise TemplateError('%s: a value is required' % what)
    if isinstance(value, (dict, list)):
        raise TemplateError('%s: expected a string, got a %s' % (what, type(value).__name__))
    return str(value)


_OPT_WORD_RE = re.compile(r'\S+')


def edit_option_words(args, option, add=(), remove=(), if_present=False):
    # type: (str, str, Sequence[str], Sequence[str], bool) -> Tuple[str, List[str], List[str]]
    """Add/remove words of the comma list that follows ``option`` in an ARGUMENTS string.

    Returns ``(new_args, added, removed)``; only the list token changes. ``if_present``: leave ARGUMENTS
    alone when it has no ``option`` (a release whose driver does not know the option).
    """
    tokens = [(m.start(), m.end(), m.group()) for m in _OPT_WORD_RE.finditer(args)]
    idx = [k for k, t in enumerate(tokens) if t[2] == option]
    if if_present and not idx:
        return args, [], []
    have_list = False
    words = []  # type: List[str]
    if idx:
        k = idx[-1]
        if k + 1 < len(tokens) and not tokens[k + 1][2].startswith('-'):
            have_list = True
            words = [w for w in tokens[k + 1][2].split(',') if w]
    added = [w for w in add if w not in words and w not in remove]
    removed = [w for w in words if w in remove]
    if not added and not removed:
        return args, [], []
    new_words = [w for w in words if w not in remove] + [w for i, w in enumerate(added) if w not in added[:i]]
    added = [w for i, w in enumerate(added) if w not in added[:i]]
    new_list = ','.join(new_words)
    if idx:
        k = idx[-1]
        if new_words:
            if have_list:
                s, e = tokens[k + 1][:2]
                return args[:s] + new_list + args[e:], added, removed
            e = tokens[k][1]
            return args[:e] + ' ' + new_list + args[e:], added, removed
        # empty list: drop the option, its list and the blanks before it
        s = tokens[k][0]
        e = tokens[k + 1][1] if have_list else tokens[k][1]
        while s > 0 and args[s - 1] in ' \t':
            s -= 1
        if s == 0:
            while e < len(args) and args[e] in ' \t':
                e += 1
        return args[:s] + args[e:], added, removed
    sep = '' if not args or args[-1] in ' \t' else ' '
    return args + sep + option + ' ' + new_list, added, removed


def _is_3x_driver_block(pair):
    # type: (Pair) -> bool
    return pair.is_vector and pair.node.get('NAME') is not None


DRIVER_NAME_RE = re.compile(r'[A-Za-z0-9_.-]+\Z')
_OPTION_RE = re.compile(r'-[A-Za-z0-9][A-Za-z0-9_-]*\Z')


def check_driver_names(what, option, add=(), remove=()):
    # type: (str, str, Sequence[Any], Sequence[Any]) -> None
    """Refuse an option or a driver name that would inject options or words into ARGUMENTS.

    A driver name is ``[A-Za-z0-9_.-]+``: blanks would add options (``storpool -t 1 -d evil``),
    a comma would add two drivers that the next run cannot find as one (``x,y``).
    """
    if not isinstance(option, str) or not _OPTION_RE.match(option):
        raise TemplateError('%s.option: %r is not an option such as -d or -s' % (what, option))
    for key, words in (('add', add), ('remove', remove)):
        for w in words or ():
            if not isinstance(w, str) or not DRIVER_NAME_RE.match(w):
                raise TemplateError('%s.%s: %r is not a driver name (letters, digits, _ . - only)' % (what, key, w))


def edit_drivers(doc, attribute, option='-d', add=(), remove=(), if_present=False):
    # type: (Document, str, str, Sequence[str], Sequence[str], bool) -> List[str]
    """Add/remove drivers in the ``option`` list of the ARGUMENTS of the single ``attribute`` vector
    (``if_present``: only when ARGUMENTS has the option)."""
    check_driver_names('drivers[%s]' % attribute, option, add, remove)
    nodes = doc.find(attribute)
    if not nodes:
        raise TemplateError('%s: no %s attribute in the file' % (doc.path, attribute))
    if any(_is_3x_driver_block(p) for p in nodes):
        raise TemplateError(
            '%s: %s at %s uses the OpenNebula 3.x form (one %s = [ name = ... ] block per driver), which has no %s list; '
            'use a blocks entry with attribute: %s and match: {NAME: <driver>} instead'
            % (doc.path, attribute, _lines(doc, nodes), attribute, option, attribute))
    if len(nodes) > 1:
        raise TemplateError('%s: %s is ambiguous: it occurs at %s' % (doc.path, attribute, _lines(doc, nodes)))
    node = nodes[0]
    if not node.is_vector:
        raise TemplateError('%s: %s at %s is not a vector attribute' % (doc.path, attribute, doc.where(node)))
    found = node.node.find('ARGUMENTS')
    if len(found) != 1:
        if not found:
            raise TemplateError('%s: %s at %s has no ARGUMENTS' % (doc.path, attribute, doc.where(node)))
        raise TemplateError('%s: %s at %s has ARGUMENTS more than once' % (doc.path, attribute, doc.where(node)))
    argp = found[0]
    new_args, added, removed = edit_option_words(argp.value, option, add, remove, if_present)
    changes = []  # type: List[str]
    if not added and not removed:
        return changes
    argp.set_raw(render_value(new_args, argp.raw, what='%s.ARGUMENTS' % attribute))
    for w in added:
        changes.append('%s: added "%s" to %s' % (attribute, w, option))
    for w in removed:
        changes.append('%s: removed "%s" from %s' % (attribute, w, option))
    return changes


def _norm_map(mapping, what):
    # type: (Optional[Dict[str, Any]], str) -> List[Tuple[str, str]]
    out = []  # type: List[Tuple[str, str]]
    seen = {}  # type: Dict[str, str]
    for k, v in (mapping or {}).items():
        k = str(k)
        if not _KEY_RE.match(k):
            raise TemplateError('%s: %r is not a valid attribute name ([A-Za-z0-9_]+)' % (what, k))
        if k.upper() in seen:
            raise TemplateError('%s: keys %s and %s differ only in case' % (what, seen[k.upper()], k))
        seen[k.upper()] = k
        out.append((k, _to_str(v, '%s.%s' % (what, k))))
    return out


def _doc_vector_case(doc):
    # type: (Document) -> Optional[str]
    keys = []  # type: List[str]
    for p in doc.attributes:
        if p.is_vector:
            keys.extend(q.parts[0] for q in p.node.pairs)
    lower = sum(1 for k in keys if k.lower() != k.upper() and k == k.lower())
    return 'lower' if keys and lower * 2 > len(keys) else None


def _new_block(doc, attribute, items, ref, raw):
    # type: (Document, str, List[Tuple[str, str]], Optional[Pair], bool) -> Pair
    if ref is not None and ref.is_vector and ref.node.pairs:
        style = _VecStyle(ref.node)
        ws1, ws2 = ref.parts[1], ref.parts[3]
        name = attribute if ref.key.upper() != attribute.upper() else ref.key
    else:
        style = None
        ws1, ws2 = ' ', ' '
        name = attribute
    case = style.case if style is not None else _doc_vector_case(doc)
    keys = [_apply_case(k, case) for k, _v in items]
    if style is None or style.one_per_line or not style.multiline:
        multiline = style is None or style.multiline
        indent = style.indent if style is not None else '    '
        kws1 = style.ws1 if style is not None else ' '
        kws2 = style.ws2 if style is not None else ' '
        align = style.align if style is not None else None
        if align is not None:
            align = max(align, max(len(k) for k in keys) + 1)
        parts = ['[', (style.t0 if style is not None and '\n' in style.t0 else '\n' + indent) if multiline else ' ']  # type: List[Any]
        for n, (k, (_k, v)) in enumerate(zip(keys, items)):
            if n:
                parts.extend([',', '\n' + indent if multiline else ' '])
            w1 = ' ' * max(1, align - len(k)) if align is not None else kws1
            parts.append(Pair(k, render_value(v, None, raw, '%s.%s' % (attribute, k)), w1, kws2))
            parts.append('')
        closing = style.closing if style is not None else '\n'
        if multiline and '\n' not in closing and closing.strip(' \t'):
            closing = '\n'
        parts[-1] = closing if (style is not None or multiline) else ' '
        parts.append(']')
        vec = Vector(parts)
    else:
        # packed: several pairs per line, wrapped like the reference block
        first_key, first_v = keys[0], items[0][1]
        first = Pair(first_key, render_value(first_v, None, raw, '%s.%s' % (attribute, first_key)), style.ws1, style.ws2)
        vec = Vector(['[', style.t0, first, style.closing, ']'])
        for k, (_k, v) in zip(keys[1:], items[1:]):
            _append_pair(vec, k, render_value(v, None, raw, '%s.%s' % (attribute, k)), style)
    return Pair(name, vec, ws1, ws2)


def edit_block(doc, attribute, match=None, set=None, unset=None, state='present', raw=False):  # pylint: disable=redefined-builtin
    # type: (Document, str, Optional[Dict[str, Any]], Optional[Dict[str, Any]], Optional[Sequence[str]], str, bool) -> List[str]
    """Merge (present), replace (exact) or remove (absent) a vector attribute."""
    what = 'blocks[%s]' % attribute
    match_items = _norm_map(match, what + '.match')
    set_items = _norm_map(set, what + '.set')
    unset = [str(k) for k in (unset or [])]
    if state not in ('present', 'exact', 'absent'):
        raise TemplateError('%s: state must be present, exact or absent' % what)
    mkeys = dict((k.upper(), v) for k, v in match_items)
    for k, v in set_items:
        if k.upper() in mkeys and mkeys[k.upper()].upper() != v.upper():
            raise TemplateError('%s: set.%s=%s conflicts with match.%s=%s' % (what, k, v, k, mkeys[k.upper()]))
    for k in unset:
        if k.upper() in mkeys:
            raise TemplateError('%s: cannot unset %s, it is part of match' % (what, k))
        if any(k.upper() == s.upper() for s, _v in set_items):
            raise TemplateError('%s: %s is both in set and unset' % (what, k))
    label = _label(attribute, dict(match_items) if match_items else None)
    candidates = doc.find(attribute)
    if match_items:
        sel = []
        for p in candidates:
            if not p.is_vector:
                continue
            vec = p.node
            ok = True
            for k, v in match_items:
                got = vec.find(k)
                if not got or not any(g.value.upper() == v.upper() for g in got):
                    ok = False
                    break
            if ok:
                sel.append(p)
    else:
        sel = candidates
        for p in sel:
            if not p.is_vector:
                raise TemplateError('%s: %s at %s is not a vector attribute' % (doc.path, attribute, doc.where(p)))
    if len(sel) > 1:
        raise TemplateError('%s: %s is ambiguous: it matches %d blocks, at %s' % (doc.path, label, len(sel), _lines(doc, sel)))
    changes = []  # type: List[str]
    if state == 'absent':
        if sel:
            line = doc.where(sel[0])
            _remove_top(doc, sel[0])
            changes.append('%s: removed the block at %s' % (label, line))
        return changes
    if not sel:
        items = list(match_items)
        items.extend((k, v) for k, v in set_items if k.upper() not in mkeys)
        if not items:
            raise TemplateError('%s: cannot add an empty block; give match or set' % what)
        ref = candidates[-1] if candidates else None
        new = _new_block(doc, attribute, items, ref, raw)
        if ref is not None:
            i = doc.parts.index(ref)
            before = doc.parts[i - 1]
            sep = before if (before.strip() == '' and '\n' in before) else '\n\n'
            indent = _line_indent(doc, ref)
            _insert_after(doc, ref, new, sep[:sep.rfind('\n') + 1] + indent)
        else:
            _append_top(doc, new, True)
        changes.append('%s: added block (%s)' % (label, ', '.join('%s=%s' % (k, render_value(v, None, raw)) for k, v in items)))
        return changes
    pair = sel[0]
    vec = pair.node
    for k, v in set_items:
        found = vec.find(k)
        if len(found) > 1:
            raise TemplateError('%s: %s at %s has %s more than once' % (doc.path, label, doc.where(pair), k))
        if found:
            p = found[0]
            if p.value != v:
                old = p.raw
                p.set_raw(render_value(v, p.raw, raw, '%s.%s' % (label, k)))
                changes.append('%s: set %s=%s (was %s)' % (label, p.key, p.raw, old if old else 'empty'))
        else:
            newp = _append_pair(vec, k, render_value(v, None, raw, '%s.%s' % (label, k)))
            changes.append('%s: set %s=%s' % (label, newp.key, newp.raw))
    drop = [k.upper() for k in unset]
    if state == 'exact':
        keep = [k.upper() for k, _v in set_items] + list(mkeys)
        drop.extend(p.ukey for p in vec.pairs if p.ukey not in keep)
    for p in list(vec.pairs):
        if p.ukey in drop:
            _remove_pair(vec, p)
            changes.append('%s: removed %s' % (label, p.key))
    return changes


def edit_attribute(doc, name, value=None, state='present', raw=False):
    # type: (Document, str, Any, str, bool) -> List[str]
    """Set (present) or remove (absent) a single-valued top-level attribute."""
    if not _KEY_RE.match(str(name)):
        raise TemplateError('attributes: %r is not a valid attribute name ([A-Za-z0-9_]+)' % (name,))
    found = doc.find(name)
    if len(found) > 1:
        raise TemplateError('%s: %s is ambiguous: it occurs at %s; use lists for repeated attributes' % (doc.path, name, _lines(doc, found)))
    if state == 'absent':
        if found:
            line = doc.where(found[0])
            _remove_top(doc, found[0])
            return ['%s: removed (%s)' % (name, line)]
        return []
    value = _to_str(value, 'attributes[%s].value' % name)
    if found:
        p = found[0]
        if p.is_vector:
            raise TemplateError('%s: %s at %s is a vector attribute; use blocks' % (doc.path, name, doc.where(p)))
        if p.value == value:
            return []
        old = p.raw
        p.set_raw(render_value(value, p.raw, raw, name))
        return ['%s: set to %s (was %s)' % (p.key, p.raw, old if old else 'empty')]
    new = Pair(name, render_value(value, None, raw, name))
    _append_top(doc, new, False)
    return ['%s: added %s' % (name, new.raw)]


def edit_list(doc, name, add=(), remove=(), raw=False):
    # type: (Document, str, Sequence[Any], Sequence[Any], bool) -> List[str]
    """Add/remove values of a repeated top-level attribute (e.g. VM_RESTRICTED_ATTR)."""
    if not _KEY_RE.match(str(name)):
        raise TemplateError('lists: %r is not a valid attribute name ([A-Za-z0-9_]+)' % (name,))
    add = [_to_str(v, 'lists[%s].add' % name) for v in add or ()]
    remove = [_to_str(v, 'lists[%s].remove' % name) for v in remove or ()]
    both = [v for v in add if v in remove]
    if both:
        raise TemplateError('lists[%s]: %s is both in add and remove' % (name, ', '.join(both)))
    changes = []  # type: List[str]
    found = doc.find(name)
    for p in found:
        if p.is_vector:
            raise TemplateError('%s: %s at %s is a vector attribute; use blocks' % (doc.path, name, doc.where(p)))
    for p in found:
        if p.value in remove:
            line = doc.where(p)
            _remove_top(doc, p)
            changes.append('%s: removed %s (%s)' % (name, p.raw, line))
    have = set(p.value for p in found if p.value not in remove)
    ref = ([p for p in found if p.value not in remove] or [None])[-1]
    for v in add:
        if v in have:
            continue
        have.add(v)
        if ref is not None:
            new = Pair(ref.key, render_value(v, ref.raw, raw, name), ref.parts[1], ref.parts[3] or ' ')
            _insert_after(doc, ref, new, '\n' + _line_indent(doc, ref))
        else:
            new = Pair(name, render_value(v, None, raw, name))
            _append_top(doc, new, False)
        ref = new
        changes.append('%s: added %s' % (name, new.raw))
    return changes


def apply_edits(doc, drivers=None, blocks=None, attributes=None, lists=None):
    # type: (Document, Optional[List[Dict[str, Any]]], Optional[List[Dict[str, Any]]], Optional[List[Dict[str, Any]]], Optional[List[Dict[str, Any]]]) -> List[str]  # noqa: E501  pylint: disable=line-too-long
    """Apply all edits (dicts shaped like the oned_conf module options) in order; return the change list."""
    changes = []  # type: List[str]
    for n, d in enumerate(drivers or ()):
        check_driver_names('drivers[%d] (%s)' % (n, d['attribute']), d.get('option') or '-d', d.get('add') or (),
                           d.get('remove') or ())
    for d in drivers or ():
        changes.extend(edit_drivers(doc, d['attribute'], d.get('option') or '-d', d.get('add') or (), d.get('remove') or (),
                                    bool(d.get('if_present'))))
    for b in blocks or ():
        changes.extend(edit_block(doc, b['attribute'], b.get('match'), b.get('set'), b.get('unset'),
                                  b.get('state') or 'present', bool(b.get('raw'))))
    for a in attributes or ():
        changes.extend(edit_attribute(doc, a['name'], a.get('value'), a.get('state') or 'present', bool(a.get('raw'))))
    for li in lists or ():
        changes.extend(edit_list(doc, li['name'], li.get('add') or (), li.get('remove') or (), bool(li.get('raw'))))
    return changes


def values(doc):
    # type: (Document) -> List[Tuple[str, Any]]
    """What oned gets from ``doc``: ``[(NAME, value or {KEY: value})]`` in file order.

    Names are upper-cased; a vector keeps the first of repeated keys, as oned's parser does.
    """
    out = []  # type: List[Tuple[str, Any]]
    for p in doc.attributes:
        if p.is_vector:
            vec = {}  # type: Dict[str, str]
            for q in p.node.pairs:
                vec.setdefault(q.ukey, q.value)
            out.append((p.ukey, vec))
        else:
            out.append((p.ukey, p.value))
    return out


def verify_written(doc, text):
    # type: (Document, str) -> None
    """Raise :class:`TemplateError` unless oned reads ``text`` (the rendered ``doc``) as ``doc`` says."""
    got = values(parse(text, doc.path))
    want = values(doc)
    if got == want:
        return
    for n, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise TemplateError('%s: oned would read the edited file differently: attribute %d would be %s = %r '
                                'instead of %s = %r; not written' % (doc.path, n + 1, g[0], g[1], w[0], w[1]))
    raise TemplateError('%s: oned would read %d attributes from the edited file instead of %d; not written'
                        % (doc.path, len(got), len(want)))


def edit_text(text, path='<string>', **edits):
    # type: (str, str, Any) -> Tuple[str, List[str]]
    """Parse ``text``, apply ``edits`` (see :func:`apply_edits`) and return ``(new_text, changes)``."""
    doc = parse(text, path)
    changes = apply_edits(doc, **edits)
    if not changes:
        return text, changes
    new = doc.render()
    verify_written(doc, new)
    return new, changes
