"""The runtime's rc reader (tm/rc.py) against real bash: every value one_rc can write reads back as
``bash -c 'source FILE; printf %s "$VAR"'`` prints it (issue 14, item 13)."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.nebula.storage.plugins.module_utils import _shell_rc
from ansible_collections.nebula.storage.plugins.module_utils.tm import rc as tm_rc
from tests.conftest import FIXTURES

BASH = shutil.which("bash")
assert BASH, "bash is needed: these tests compare with it"


def bash_values(path, keys):
    """What bash sets each key to after sourcing path (None: unset)."""
    script = 'source "$1" >/dev/null 2>&1 || exit 99; shift; for k; do if [ -n "${!k+x}" ]; then printf "%s\\0%s\\0" "$k" "${!k}"; fi; done'
    proc = subprocess.run([BASH, "--norc", "--noprofile", "-c", script, "bash", str(path), *keys],
                          capture_output=True, check=False, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    assert proc.returncode == 0, proc.stderr
    fields = proc.stdout.split(b"\0")[:-1]
    got = dict(zip(fields[0::2], fields[1::2]))
    return {k: got[k.encode()].decode("utf-8", "surrogateescape") if k.encode() in got else None for k in keys}


def ours(path):
    return tm_rc.read_rc(str(path))


def write_with_one_rc(path, base, values):
    """The file one_rc makes from ``base`` with ``set: values`` (its renderer, _shell_rc)."""
    text, _changes = _shell_rc.edit_text(base, str(path), set=values)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return text


TUNING = 'REPLICA_SSH_OPTS="-c aes128-gcm@openssh.com\n  -m umac-64@openssh.com"\n'


def test_multi_line_tuning_value_in_sshrc(tmp_path):
    """The issue's case: a multi-line value one_rc wrote in sshrc broke the reader (No closing quotation)."""
    p = tmp_path / "sshrc"
    write_with_one_rc(p, (FIXTURES / "rc" / "sshrc").read_text(),
                      {"REPLICA_SSH_OPTS": "-c aes128-gcm@openssh.com\n  -m umac-64@openssh.com",
                       "REPLICA_COPY_LOCK_TIMEOUT": "it's \"quoted\" $HOME `x` \\n"})
    got = ours(p)
    assert got == bash_values(p, list(got))
    assert got["REPLICA_SSH_OPTS"] == "-c aes128-gcm@openssh.com\n  -m umac-64@openssh.com"
    assert got["REPLICA_COPY_LOCK_TIMEOUT"] == "it's \"quoted\" $HOME `x` \\n"


@pytest.mark.parametrize("name", ["sshrc", "tmrc", "vmm_execrc", "addon-storpoolrc", "datastore.conf", "fs.conf"])
def test_stock_rc_files_read_as_bash_reads_them(name):
    path = FIXTURES / "rc" / name
    got = ours(path)
    assert got == bash_values(path, list(got))


@pytest.mark.parametrize("text,want", [
    ("A='x'\"y\"z\\ w\n", "xyz w"),
    ("A=\"a\\\\b\\$c\\`d\\\"e\\nf\"\n", "a\\b$c`d\"e\\nf"),
    ("A='one\ntwo'\n", "one\ntwo"),
    ("A=\"one\\\ntwo\"\n", "onetwo"),
    ("A=one\\\ntwo\n", "onetwo"),
    ("export A=1 B=2\n", "1"),
    ("A=x#y # comment\n", "x#y"),
    ("A=1; A=2\n", "2"),
    ("A=$\n", "$"),
    ("A='it'\\''s'\n", "it's"),
    ("A=a\r\n", "a\r"),
    ("A=\n", ""),
])
def test_quoting_forms(tmp_path, text, want):
    p = tmp_path / "rc"
    p.write_text(text)
    assert ours(p)["A"] == want == bash_values(p, ["A"])["A"]


@pytest.mark.parametrize("text", ["A=$HOME\n", "A=\"$(id)\"\n", "A=`id`\n", "A=$'x'\n", "A=~/x\n", "A=1 cmd\n",
                                  "A='open\n", "A=\"open\n", "rm -rf /\n"])
def test_what_needs_a_shell_is_an_error_naming_the_line(tmp_path, text):
    p = tmp_path / "rc"
    p.write_text("# c\n" + text)
    with pytest.raises(tm_rc.RcError, match="line 2"):
        ours(p)


def test_update_rc_keeps_the_tail_and_multi_line_values(tmp_path):
    text = "# note\nA='x\ny=1\n'  # keep\nB=2\n"
    new = tm_rc.update_rc(text, {"A": "new value", "C": "3"})
    assert new == "# note\nA='new value'  # keep\nB=2\nC=3\n"
    p = tmp_path / "rc"
    p.write_text(new)
    assert ours(p) == bash_values(p, ["A", "B", "C"]) == {"A": "new value", "B": "2", "C": "3"}


NASTY = st.text(st.sampled_from(list("'\"\\$`\n\r\t !#;&|<>(){}[]*?~:=,.-_aZ09é€\u2028")) | st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30)
KEYS = st.sampled_from(["REPLICA_SSH_OPTS", "REPLICA_MAX_SIZE_MB", "NEW_KEY", "QCOW2_OVERLAY"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(KEYS, NASTY, min_size=1, max_size=3),
       base=st.sampled_from(["", "QCOW2_OVERLAY='no'\n# REPLICA_SSH_OPTS=x\n", 'REPLICA_MAX_SIZE_MB="1"  # c\nX=1\n']))
def test_property_one_rc_values_read_back_as_bash(tmp_path, values, base):
    p = tmp_path / "prop_rc"
    write_with_one_rc(p, base, values)
    got = ours(p)
    assert got == bash_values(p, list(set(got) | set(values)))
    for k, v in values.items():
        assert got[k] == v
