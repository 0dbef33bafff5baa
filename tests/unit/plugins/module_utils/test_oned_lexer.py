"""oned_conf reads and writes values as oned does: OpenNebula 7.4.0's own lexer and parser are the oracle.

tests/oned_parser/build.py compiles OpenNebula's template lexer and parser (from the fixture tarball)
into a small harness; the tests compare what it returns with what _oned_template reads, for the
cases of issue 14 and for hypothesis-generated files and values.  If the harness cannot be built, the
tests fail with the reason (they never skip).

The rule for our reader: when it reads a file, oned reads the same attributes with the same values;
when it refuses (TemplateRefused: CR characters, characters oned skips, a quote glued to a word,
']]>' on a value's line), it says where; a plain syntax error only where oned fails too.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ansible_collections.nebula.storage.plugins.module_utils._oned_template import (
    TemplateError,
    TemplateRefused,
    TemplateSyntaxError,
    edit_text,
    parse,
    values,
)
from tests.conftest import FIXTURES
from tests.oned_parser.build import BuildError, harness, oned_read


@pytest.fixture(scope="session")
def oracle_bin():
    try:
        return harness()
    except BuildError as e:  # fail, never skip: the oracle is the point of these tests
        pytest.fail("cannot build OpenNebula's template parser: %s" % e)


@pytest.fixture(scope="session")
def oned(oracle_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("oned_oracle")

    def read(text):
        res = oned_read(oracle_bin, text, work)
        attrs = [(name.upper(), v) for name, v in res["attributes"]]
        return res["rc"], res["error"], attrs
    return read


def ours(text):
    """``("ok", values)``, ``("refused", error)`` or ``("error", error)``."""
    try:
        return "ok", values(parse(text, "oned.conf"))
    except TemplateRefused as e:
        return "refused", e
    except TemplateSyntaxError as e:
        return "error", e


def agree(oned, text):
    """Assert the rule above; return what we read."""
    rc, error, attrs = oned(text)
    kind, got = ours(text)
    if kind == "ok":
        assert rc == 0, "we read %r but oned fails (rc=%d, %s)" % (got, rc, error)
        assert got == attrs, text
    elif kind == "error":
        assert rc != 0, "we fail (%s) but oned reads %r" % (got, attrs)
    else:
        assert str(got).startswith("oned.conf:"), got
    return kind, got


# ---------------------------------------------------------------- the harness itself

@pytest.mark.parametrize("path", sorted((FIXTURES / "oned").glob("oned-*.conf")), ids=lambda p: p.name)
def test_real_oned_conf_files_read_like_oned(oned, path):
    kind, got = agree(oned, path.read_text())
    assert kind == "ok" and len(got) >= 15


# ---------------------------------------------------------------- the issue's cases

CDATA_TOP = 'PORT = 2633\nLISTEN_ADDRESS = "a]]>b"\nDB = [ BACKEND = "sqlite" ]\n'
CDATA_VEC = 'PORT = 2633\nDB = [ BACKEND = "sqlite]]>" ]\nX = 1\n'
CDATA_COMMENT = 'PORT = 2633 # see ]]>\nX = 1\n'


@pytest.mark.parametrize("text", [CDATA_TOP, CDATA_VEC, CDATA_COMMENT])
def test_cdata_end_on_a_value_line_stops_oned_and_we_refuse_the_file(oned, text):
    rc, error, attrs = oned(text)
    assert rc != 0 and error is None  # oned stops without a message
    assert attrs in ([], [("PORT", "2633")])  # ... with a truncated configuration
    kind, err = agree(oned, text)
    assert kind == "refused" and "]]>" in str(err) and "CDATA" in str(err)


def test_cdata_end_on_a_later_line_of_a_quoted_value_is_read(oned):
    kind, got = agree(oned, 'A = "x\n]]>"\n')
    assert kind == "ok" and got == [("A", "x\n]]>")]


@pytest.mark.parametrize("name,value", [("LISTEN_ADDRESS", "a]]>b"), ("LISTEN_ADDRESS", "]]>")])
def test_writing_cdata_end_is_refused_naming_the_attribute(name, value):
    with pytest.raises(TemplateError, match=r"%s: .*\]\]>.*CDATA" % name):
        edit_text("PORT = 2633\n", "f", attributes=[{"name": name, "value": value}])
    with pytest.raises(TemplateError, match=r"DS_MAD_CONF\[NAME=x\]\.X: .*\]\]>"):
        edit_text('DS_MAD_CONF = [ NAME = "x" ]\n', "f", blocks=[{"attribute": "DS_MAD_CONF", "match": {"NAME": "x"},
                                                                  "set": {"X": value}}])


def test_backslash_quote_in_an_unquoted_value(oned):
    kind, got = agree(oned, 'PORT = a\\"b\n')
    assert kind == "ok" and got == [("PORT", 'a"b')]  # oned removes the backslash here too
    # a value with \" is written quoted, even where the old value was unquoted
    new = edit_text("PORT = 2633\n", "f", attributes=[{"name": "PORT", "value": 'a\\"b'}])[0]
    assert new == 'PORT = "a\\\\"b"\n'
    assert oned(new)[2] == [("PORT", 'a\\"b')]


def test_crlf_is_refused_never_unchanged(oned):
    text = "PORT = 2633\r\nDB = [ BACKEND = \"sqlite\" ]\r\n"
    assert oned(text)[2][0] == ("PORT", "2633\r")  # oned keeps the CR
    kind, err = agree(oned, text)
    assert kind == "refused" and "CR" in str(err) and str(err).startswith("oned.conf:1:12:")
    with pytest.raises(TemplateRefused):  # so "PORT: 2633" is never reported unchanged
        edit_text(text, "f", attributes=[{"name": "PORT", "value": "2633"}])


def test_last_line_comment_without_newline_is_read_as_oned_reads_it(oned):
    text = 'PORT = 2633\n# LISTEN_ADDRESS = "127.0.0.1"'
    kind, got = agree(oned, text)
    assert kind == "ok" and got == [("PORT", "2633"), ("LISTEN_ADDRESS", "127.0.0.1")]
    # appending would turn the line into a comment: refused
    with pytest.raises(TemplateError, match="line 2, the last, is a comment without a newline"):
        edit_text(text, "f", attributes=[{"name": "NEW", "value": "1"}])
    # editing the attribute oned reads there keeps the meaning
    new = edit_text(text, "f", attributes=[{"name": "LISTEN_ADDRESS", "value": "0.0.0.0"}])[0]
    assert new == 'PORT = 2633\n# LISTEN_ADDRESS = "0.0.0.0"'
    assert oned(new)[2] == [("PORT", "2633"), ("LISTEN_ADDRESS", "0.0.0.0")]


def test_last_line_comment_that_oned_cannot_read_fails_with_the_line(oned):
    kind, err = agree(oned, "PORT = 2633\n# end")
    assert kind == "error" and "line 2, the last, is a comment without a newline" in str(err)


@pytest.mark.parametrize("text", ['A = "x"B = 1\n', 'A = "x"y\n', 'A = "x"y z = 1\n', 'A = "open\nB = 2\n'])
def test_quoted_value_glued_to_a_word_fails_with_the_line(oned, text):
    kind, err = agree(oned, text)
    assert kind in ("refused", "error") and str(err).startswith("oned.conf:1:5:")


@pytest.mark.parametrize("text", [
    'A = "x" B = 1\n', 'A = x"y\n', 'A = "a\\"b"\n', 'A = "a\\\\"\n', 'K\n= 1\n', 'K # c\n = 1\n',
    'V = [ a = 1, a = 2, A = 3 ]\n', 'V = [\n  # c\n  x = "1" , # d\n  y = 2\n]\n', 'A =\nB = 2\n', 'A =  \n',
    'A = "x\\" \nB = "y"\n', 'A = "\\"\n', 'A = é€\n', 'A = "tab\there"\n', 'V = [ ]\n', 'a = 1 b = 2',
    'A = [ B =\n 1 ]\n', 'A = [ B = 1, ]\n', 'A = [ B = [ C = 1 ] ]\n', '= 1\n', 'A = ]\n', 'A-B = 1\n', 'A = # c\nB = 1\n',
])
def test_edge_cases_agree_with_oned(oned, text):
    agree(oned, text)


# ---------------------------------------------------------------- properties

PIECES = st.sampled_from([
    "A", "b_2", "PORT", " ", "  ", "\t", "\n", " = ", "=", " =\n", "[", "]", ",", " , ", "#", "# c\n", " # x\n",
    '"', '\\"', "\\", '"q"', '"multi\nline"', "]]>", "]]", ">", "\r", "\r\n", "é", "x", "1", "-", ".", "/",
])
TEXTS = st.lists(PIECES, max_size=14).map("".join)
VALUE_CHARS = st.sampled_from(list('"\\]>=#,[ \t\n\raZ9.é€\u2028') + ["]]>", '\\"', '"\\'])
VALUES = st.lists(VALUE_CHARS, max_size=12).map("".join) | st.text(max_size=10)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
@example(text='A = "x\\"\nB = "y"\n')
@example(text="A = 1\n# B = 2")
def test_property_random_files_read_as_oned_reads_them(oned, text):
    agree(oned, text)


KEYS = st.sampled_from(["A", "port", "TM_MAD", "x_1", "LISTEN_ADDRESS"])
QCHARS = st.sampled_from(list('ab \t\n#,=[]>"\\é€') + ['\\"', "]]>", "\r"])
QUOTED = st.lists(QCHARS, max_size=8).map(lambda cs: '"%s"' % "".join(cs))
WORD = st.lists(st.sampled_from(list('ab19./:-_>"\\é') + ['\\"', "\r"]), min_size=1, max_size=6).map("".join)
VALUE_TOKEN = QUOTED | WORD
SEP = st.sampled_from([" = ", "=", " =  ", "\t=\t", "\n= ", " # c\n= "])
TAIL = st.sampled_from(["", " ", " # comment", " # ]]>", "\t# x", ","])
PAIR = st.tuples(KEYS, SEP, VALUE_TOKEN).map("".join)
VECTOR = st.tuples(KEYS, st.sampled_from([" = [", " = [ ", " = [\n  "]),
                   st.lists(PAIR, max_size=3).map(",\n  ".join),
                   st.sampled_from(["]", " ]", "\n]", ",]"])).map("".join)
LINE = st.one_of(st.tuples(PAIR, TAIL).map("".join), VECTOR, st.sampled_from(["", "# note", "A =", "  "]))
FILES = st.tuples(st.lists(LINE, min_size=1, max_size=5).map("\n".join),
                  st.sampled_from(["\n", "", "\n# B = 1", "\n# end"])).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=FILES)
def test_property_structured_files_read_as_oned_reads_them(oned, text):
    agree(oned, text)


BASES = [
    'PORT = 2633\nLISTEN_ADDRESS = "0.0.0.0"  # c\n',
    '# head\nTM_MAD_CONF = [\n    NAME = "ssh",\n    LN_TARGET = "SYSTEM" # c\n]\nA = x\n',
    'A = 1',
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES, base=st.sampled_from(BASES), where=st.sampled_from(["A", "LISTEN_ADDRESS", "NEW", "block", "newblock"]),
       raw=st.booleans())
def test_property_written_values_read_back_by_oned(oned, value, base, where, raw):
    """Whatever value oned_conf writes, oned reads back exactly; what it cannot write is refused with the name."""
    assume("\0" not in value)
    if where == "block":
        edits = {"blocks": [{"attribute": "TM_MAD_CONF", "match": {"NAME": "ssh"}, "set": {"LN_TARGET": value}, "raw": raw}]}
    elif where == "newblock":
        edits = {"blocks": [{"attribute": "DS_MAD_CONF", "match": {"NAME": "n"}, "set": {"X": value}, "raw": raw}]}
    else:
        edits = {"attributes": [{"name": where, "value": value, "raw": raw}]}
    try:
        new, _changes = edit_text(base, "oned.conf", **edits)
    except TemplateError as e:
        # refused: only values oned cannot read back as written
        assert "]]>" in value or value.endswith("\\") or raw, (value, e)
        return
    rc, error, attrs = oned(new)
    assert rc == 0, (new, error)
    assert values(parse(new)) == attrs
    got = dict((k, v) for k, v in attrs if not isinstance(v, dict))
    vecs = dict((k, v) for k, v in attrs if isinstance(v, dict))
    if where == "block":
        assert vecs["TM_MAD_CONF"]["LN_TARGET"] == value
    elif where == "newblock":
        assert vecs["DS_MAD_CONF"]["X"] == value
    else:
        assert got[where] == value
    before = [a for a in oned(base)[2] if a[0] not in (where, "TM_MAD_CONF", "DS_MAD_CONF")]
    assert [a for a in attrs if a[0] not in (where, "TM_MAD_CONF", "DS_MAD_CONF")] == before
