"""Unit tests of the lossless shell rc parser/editor; quoting is checked with a real /bin/sh."""
from __future__ import annotations

import difflib
import subprocess

import pytest

from ansible_collections.nebula.storage.plugins.module_utils._shell_rc import (
    RcError,
    RcSyntaxError,
    edit_text,
    parse,
    shell_quote,
    shell_unquote,
)
from tests.conftest import FIXTURES

RC = FIXTURES / "rc"
ALL_RC = sorted(p for p in RC.iterdir() if p.is_file())


def diff_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), n=0, lineterm=""):
        if line[:3] in ("---", "+++") or line.startswith("@@"):
            continue
        (removed if line.startswith("-") else added).append(line[1:])
    return removed, added


def sh_value(text: str, key: str, tmp_path) -> str:
    """Value of ``key`` after a real POSIX shell sources ``text``."""
    f = tmp_path / "rc"
    f.write_text(text)
    out = subprocess.run(["sh", "-c", '. "$1"; printf %s "$' + key + '"', "sh", str(f)],
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_rc_corpus_present():
    names = {p.name for p in ALL_RC}
    assert {"sshrc", "tmrc", "vmm_execrc", "addon-storpoolrc", "fs.conf", "datastore.conf"} <= names


@pytest.mark.parametrize("path", ALL_RC, ids=lambda p: p.name)
def test_rc_fixture_round_trip(path):
    text = path.read_text()
    assert parse(text, str(path)).render() == text


def test_parsed_values_match_the_shell(tmp_path):
    text = (RC / "sshrc").read_text()
    doc = parse(text)
    for a in doc.assignments:
        assert a.value == sh_value(text, a.key, tmp_path), a.key
    assert doc.get("REPLICA_SSH_OPTS") == "-c aes128-gcm@openssh.com -m umac-64@openssh.com"


def test_sshrc_edit(tmp_path):
    text = (RC / "sshrc").read_text()
    edits = dict(set={"REPLICA_COPY_LOCK_TIMEOUT": 900, "REPLICA_SSH_OPTS": "-c aes128-gcm@openssh.com"},
                 unset=["REPLICA_MAX_SIZE_MB"])
    new, changes = edit_text(text, "sshrc", **edits)
    assert diff_lines(text, new) == (
        ["REPLICA_COPY_LOCK_TIMEOUT=600", 'REPLICA_SSH_OPTS="-c aes128-gcm@openssh.com -m umac-64@openssh.com"',
         'REPLICA_MAX_SIZE_MB=""'],
        ["REPLICA_COPY_LOCK_TIMEOUT=900", 'REPLICA_SSH_OPTS="-c aes128-gcm@openssh.com"'],
    )
    assert changes == ["REPLICA_COPY_LOCK_TIMEOUT: set to 900 (was 600, line 9)",
                       'REPLICA_SSH_OPTS: set to "-c aes128-gcm@openssh.com" (was "-c aes128-gcm@openssh.com -m umac-64@openssh.com", line 17)',
                       "REPLICA_MAX_SIZE_MB: removed (line 24)"]
    assert sh_value(new, "REPLICA_SSH_OPTS", tmp_path) == "-c aes128-gcm@openssh.com"
    again, changes2 = edit_text(new, "sshrc", **edits)
    assert changes2 == [] and again == new


def test_same_value_left_byte_identical():
    text = (RC / "sshrc").read_text()
    # 600 is an int, "" is written as "", the quoted path is compared after unquoting
    new, changes = edit_text(text, set={"REPLICA_COPY_LOCK_TIMEOUT": 600, "REPLICA_SSH_FE_OPTS": "",
                                        "REPLICA_RECOVERY_SNAPS_DIR": "/var/lib/one/datastores/replica_snaps"})
    assert changes == [] and new == text


def test_quoted_value_keeps_its_quote_style():
    text = "A=\"x\"\nB='y'\nC=z\n"
    new = edit_text(text, set={"A": "x2", "B": "y2", "C": "z2"})[0]
    assert new == "A=\"x2\"\nB='y2'\nC=z2\n"


@pytest.mark.parametrize("value", [
    "with spaces", 'double "quotes"', "single 'quotes'", "$HOME and ${X}", "back\\slash", "`cmd`", "tab\there",
    "new\nline", "", "trailing\\", "#hash", "semi;colon", "a'b\"c$d\\e`f", "*glob?",
])
def test_rc_quoting_survives_a_real_shell(value, tmp_path):
    for style in (None, '"', "'"):
        word = shell_quote(value, style)
        assert sh_value("K=%s\n" % word, "K", tmp_path) == value, (style, word)
        assert shell_unquote(word) == value
    text = "# header\nK=old\n"
    new, changes = edit_text(text, set={"K": value})
    assert sh_value(new, "K", tmp_path) == value
    assert parse(new).get("K") == value
    assert edit_text(new, set={"K": value}) == (new, [])


def test_values_that_need_no_quotes_get_none():
    assert shell_quote("64k") == "64k"
    assert shell_quote("/usr/sbin/mkswap") == "/usr/sbin/mkswap"
    assert shell_quote("a b") == '"a b"'
    assert shell_quote("") == '""'


def test_commented_out_key_stays_and_new_line_goes_after_it():
    text = (RC / "addon-storpoolrc").read_text()
    new, changes = edit_text(text, set={"SP_CHECKPOINT_BD": 1, "DELAY_DELETE": "24h", "BRAND_NEW": "x y"})
    lines = new.split("\n")
    i = lines.index("#SP_CHECKPOINT_BD=0")
    assert lines[i + 1] == "SP_CHECKPOINT_BD=1"
    i = lines.index('#DELAY_DELETE="48h"')
    assert lines[i + 1] == "DELAY_DELETE=24h"
    assert new.endswith('\nBRAND_NEW="x y"\n')
    removed, added = diff_lines(text, new)
    assert removed == [] and added == ["SP_CHECKPOINT_BD=1", "DELAY_DELETE=24h", 'BRAND_NEW="x y"']
    assert changes == ["SP_CHECKPOINT_BD: added 1", "DELAY_DELETE: added 24h", 'BRAND_NEW: added "x y"']


def test_vmm_execrc_words():
    text = (RC / "vmm_execrc").read_text()
    edits = dict(words=[{"name": "LIVE_DISK_SNAPSHOTS", "add": ["kvm-storpool", "kvm-qcow2"], "remove": ["lxc-lvm"]}])
    new, changes = edit_text(text, **edits)
    old_words = parse(text).get("LIVE_DISK_SNAPSHOTS").split()
    assert parse(new).get("LIVE_DISK_SNAPSHOTS").split() == [w for w in old_words if w != "lxc-lvm"] + ["kvm-storpool"]
    removed, added = diff_lines(text, new)
    assert len(removed) == 1 and len(added) == 1 and added[0].startswith('LIVE_DISK_SNAPSHOTS="kvm-qcow2 ')
    assert changes == ['LIVE_DISK_SNAPSHOTS: added "kvm-storpool"', 'LIVE_DISK_SNAPSHOTS: removed "lxc-lvm"']
    assert edit_text(new, **edits) == (new, [])


def test_words_create_and_custom_separator():
    new = edit_text("# x\n", words=[{"name": "L", "add": ["a", "b"]}])[0]
    assert new == '# x\nL="a b"\n'
    new = edit_text("FS=ext4\n", words=[{"name": "FS", "add": ["xfs"], "separator": ","}])[0]
    assert new == "FS=ext4,xfs\n"


def test_words_refuse_expansions():
    with pytest.raises(RcError, match="expansions"):
        edit_text('L="$X a"\n', words=[{"name": "L", "add": ["b"]}])


def test_unset_removes_every_assignment_but_not_comments():
    text = "#A=0\nA=1\nB=2\nexport A=3\n"
    new, changes = edit_text(text, unset=["A"])
    assert new == "#A=0\nB=2\n"
    assert changes == ["A: removed (line 2)", "A: removed (line 4)"]


def test_last_assignment_is_edited_and_export_kept():
    new = edit_text("A=1\nexport A=2 # note\n", set={"A": 3})[0]
    assert new == "A=1\nexport A=3 # note\n"


def test_3x_driver_conf_style():
    text = (RC / "tm_shared-3.0.conf").read_text()
    new, changes = edit_text(text, set={"CLONE": "storpool/tm_clone.sh", "SNAP": "storpool/tm_snap.sh"})
    assert diff_lines(text, new) == (["CLONE   = shared/tm_clone.sh"],
                                     ["CLONE   = storpool/tm_clone.sh", "SNAP = storpool/tm_snap.sh"])


def test_multiline_double_quoted_value_round_trips_and_is_one_assignment():
    text = 'A="one\ntwo"\nB=3\n'
    doc = parse(text)
    assert [(a.key, a.value) for a in doc.assignments] == [("A", "one\ntwo"), ("B", "3")]
    assert edit_text(text, set={"B": 4})[0] == 'A="one\ntwo"\nB=4\n'


def test_unterminated_quote_reports_position():
    with pytest.raises(RcSyntaxError) as e:
        parse('# c\nA=1\nB="open\n', "/x/sshrc")
    assert str(e.value).startswith('/x/sshrc:3:3: expected a closing "')


def test_opaque_lines_are_kept():
    text = 'if [ -f x ]; then\n  . x\nfi\nA=1 B=2\nA=5\n'
    new = edit_text(text, set={"A": 6})[0]
    assert new == 'if [ -f x ]; then\n  . x\nfi\nA=1 B=2\nA=6\n'


def test_bad_names_and_conflicts():
    with pytest.raises(RcError, match="valid shell variable"):
        edit_text("", set={"A-B": 1})
    with pytest.raises(RcError, match="both"):
        edit_text("", set={"A": 1}, unset=["A"])
    with pytest.raises(RcError, match="boolean"):
        edit_text("", set={"A": True})


def test_file_without_trailing_newline():
    assert edit_text("A=1", set={"B": 2})[0] == "A=1\nB=2\n"
    assert edit_text("", set={"B": 2})[0] == "B=2\n"


def test_crlf_lines_are_kept():
    text = "A=1\r\nB=2\n"
    assert parse(text).render() == text
    assert edit_text(text, set={"B": 3})[0] == "A=1\r\nB=3\n"
