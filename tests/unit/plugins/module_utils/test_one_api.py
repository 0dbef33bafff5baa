"""Tests of plugins/module_utils/_one_api.py against real files, sockets and the oned TEST DOUBLE."""
from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.nebula.storage.plugins.module_utils import _one_api as api
from tests.conftest import FIXTURES
from tests.oned_double import server as double
from tests.oned_double.testing import running_double

DOC_FIXTURES = Path(double.__file__).parent / "fixtures"


# --- endpoint and credentials (the CLI's rules) ------------------------------

def test_endpoint_order(tmp_path):
    assert api.discover_endpoint(None, {}, str(tmp_path)) == "http://localhost:2633/RPC2"
    (tmp_path / ".one").mkdir()
    (tmp_path / ".one" / "one_endpoint").write_text("http://127.0.0.1:9869/RPC2\n")
    assert api.discover_endpoint(None, {}, str(tmp_path)) == "http://127.0.0.1:9869/RPC2"
    env = {"ONE_XMLRPC": "http://127.0.0.2:2633/RPC2"}
    assert api.discover_endpoint(None, env, str(tmp_path)) == "http://127.0.0.2:2633/RPC2"
    assert api.discover_endpoint("http://127.0.0.3/RPC2", env, str(tmp_path)) == "http://127.0.0.3/RPC2"


def test_session_order(tmp_path):
    (tmp_path / ".one").mkdir()
    (tmp_path / ".one" / "one_auth").write_text("oneadmin:fromhome\nignored second line\n")
    assert api.discover_session(None, None, {}, str(tmp_path)) == "oneadmin:fromhome"
    other = tmp_path / "auth"
    other.write_text("serveradmin:fromenv")
    assert api.discover_session(None, None, {"ONE_AUTH": str(other)}, str(tmp_path)) == "serveradmin:fromenv"
    assert api.discover_session("u", "p:w", {"ONE_AUTH": str(other)}, str(tmp_path)) == "u:p:w"


def test_session_errors_name_the_source(tmp_path):
    with pytest.raises(api.OneConfigError, match=r"one_auth.*No such file"):
        api.discover_session(None, None, {}, str(tmp_path))
    bad = tmp_path / "bad"
    bad.write_text("no-colon-here\n")
    with pytest.raises(api.OneConfigError, match=r"ONE_AUTH=.*bad.*user:password"):
        api.discover_session(None, None, {"ONE_AUTH": str(bad)}, str(tmp_path))
    with pytest.raises(api.OneConfigError, match="together"):
        api.discover_session("u", None, {}, str(tmp_path))


# --- templates ---------------------------------------------------------------

def test_render_text_escapes_quotes_only():
    text = api.render_template_text([("A", 'say "hi"'), ("B", r"C:\dir\x"), ("V", [("X", "1"), ("Y", "two words")])])
    assert text == 'A = "say \\"hi\\""\nB = "C:\\dir\\x"\nV = [\n  X = "1",\n  Y = "two words" ]\n'


def test_render_text_refuses_trailing_backslash():
    with pytest.raises(ValueError, match="backslash"):
        api.render_template_text([("A", "ends\\")])


def test_parse_text_template_forms():
    text = '# comment\nTM_MAD = ssh\nbridge_list="node1 node2"\nEMPTY =\nV = [ A = "1", b = 2 ]\nQ = "a \\"q\\""\n'
    assert api.parse_template_text(text) == [
        ("TM_MAD", "ssh"), ("BRIDGE_LIST", "node1 node2"), ("EMPTY", ""), ("V", [("A", "1"), ("B", "2")]), ("Q", 'a "q"')]


def test_parse_text_template_errors():
    with pytest.raises(ValueError, match="syntax error"):
        api.parse_template_text("= value")
    with pytest.raises(ValueError, match="not closed"):
        api.parse_template_text("V = [ A = 1")


_keys = st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True)
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=30).filter(
    lambda v: not v.endswith("\\"))
_vector = st.lists(st.tuples(_keys, _values), min_size=1, max_size=3)
_pairs = st.lists(st.tuples(_keys, st.one_of(_values, _vector)), max_size=6)


@settings(max_examples=100, deadline=None)
@given(_pairs)
def test_text_roundtrip_and_double_agrees(pairs):
    text = api.render_template_text(pairs)
    assert api.parse_template_text(text) == pairs
    # The double's parser is written independently, after oned's lexer.
    assert [(k, [tuple(x) for x in v] if isinstance(v, list) else v) for k, v in double.parse_text_template(text)] == pairs


_xml_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_keys, st.one_of(_xml_values, st.lists(st.tuples(_keys, _xml_values), min_size=1, max_size=3))),
                max_size=6))
def test_xml_roundtrip(pairs):
    xml = api.render_template_xml(pairs)
    assert api.parse_template_xml(xml) == pairs
    assert api.parse_template(xml) == pairs


def test_xml_render_escapes_markup():
    xml = api.render_template_xml([("A", "<b>&]]>")])
    assert ET.fromstring(xml).find("A").text == "<b>&]]>"


def test_normalize_and_keys():
    assert api.normalize_value(True) == "YES"
    assert api.normalize_value(False) == "NO"
    assert api.normalize_value(100) == "100"
    assert api.check_key("tm_mad") == "TM_MAD"
    with pytest.raises(ValueError, match="not valid"):
        api.check_key("TM-MAD")
    with pytest.raises(TypeError):
        api.normalize_value({"a": 1})


def test_same_value_follows_oned_normalisation():
    assert api.same_value("DISK_TYPE", "BLOCK", "block")
    assert api.same_value("type", "SYSTEM_DS", "system_ds")
    assert not api.same_value("BRIDGE_LIST", "Node1", "node1")
    assert not api.same_value("X", None, "")


def test_oned_owned_attributes():
    assert api.is_oned_owned("shared", "SYSTEM_DS")
    assert api.is_oned_owned("LN_TARGET_SSH", "IMAGE_DS")
    assert not api.is_oned_owned("LN_TARGET", "SYSTEM_DS")  # oned removes it there
    assert not api.is_oned_owned("REPLICA_HOST", "SYSTEM_DS")
    assert not api.is_oned_owned("BRIDGE_LIST", "IMAGE_DS")
    assert api.is_oned_owned("HOSTNAME", "HOST")


def test_owned_list_covers_what_the_double_adds():
    """Every attribute the double adds on its own is in the owned list (else exact mode would fight oned)."""
    state = double.OnedState("a:b", fresh=False)
    for dtype, tmpl in (("SYSTEM_DS", [["TM_MAD", "shared"], ["TYPE", "SYSTEM_DS"]]),
                        ("IMAGE_DS", [["TM_MAD", "qcow2"], ["DS_MAD", "fs"], ["TYPE", "IMAGE_DS"]]),
                        ("IMAGE_DS", [["TM_MAD", "ceph"], ["DS_MAD", "virtiofs"], ["TYPE", "IMAGE_DS"]]),
                        ("FILE_DS", [["TM_MAD", "ssh"], ["DS_MAD", "fs"], ["TYPE", "FILE_DS"]])):
        ds = state._build_ds(100, "x", tmpl)
        added = {k for k, unused in ds["template"]} - {k for k, unused in tmpl}
        assert added, dtype
        assert all(api.is_oned_owned(k, dtype) for k in added), (dtype, added)


# --- response fixtures written from OpenNebula's documentation ------------------

def test_parse_documented_datastore_pool():
    root = ET.parse(DOC_FIXTURES / "datastore_pool_devel_sched.xml").getroot()
    (ds,) = [api.datastore_from_xml(el) for el in root.findall("DATASTORE")]
    assert ds["id"] == 0 and ds["name"] == "system" and ds["type"] == "SYSTEM_DS"
    assert ds["tm_mad"] == "dummy" and ds["ds_mad"] == "-" and ds["clusters"] == [0] and ds["images"] == []
    assert api.singles(ds["template"]) == {"ALLOW_ORPHANS": "NO", "DS_MIGRATE": "YES", "SHARED": "YES",
                                           "TM_MAD": "dummy", "TYPE": "SYSTEM_DS"}


def test_parse_documented_host_pool():
    root = ET.parse(DOC_FIXTURES / "host_pool_devel_sched.xml").getroot()
    (h,) = [api.host_from_xml(el) for el in root.findall("HOST")]
    assert (h["id"], h["name"], h["cluster_id"], h["cluster"]) == (0, "host0", 100, "test_cluster")
    assert api.singles(h["template"])["HOSTNAME"] == "ubuntu2204-kvm-ssh-6-99-c94e-1.test"


def _tags(el):
    return [c.tag for c in el]


def test_double_answers_with_documented_layout():
    doc_ds = ET.parse(DOC_FIXTURES / "datastore_sd.xml").getroot()
    doc_host = ET.parse(DOC_FIXTURES / "host_pool_devel_sched.xml").getroot().find("HOST")
    state = double.OnedState("a:b", fresh=False)
    state._insert_ds(0, "system", [["TM_MAD", "qcow2"], ["TYPE", "SYSTEM_DS"]], [0])
    ours = state.ds_element(0)
    assert _tags(ours) == _tags(doc_ds)
    assert _tags(ours.find("PERMISSIONS")) == _tags(doc_ds.find("PERMISSIONS"))
    for tag in ("ID", "NAME", "DS_MAD", "TM_MAD", "BASE_PATH", "TYPE", "DISK_TYPE", "STATE"):
        assert ours.findtext(tag) == doc_ds.findtext(tag), tag
    doc_tmpl = {c.tag: c.text for c in doc_ds.find("TEMPLATE")}
    our_tmpl = {c.tag: c.text for c in ours.find("TEMPLATE")}
    # Newer oned adds more (DS_LIVE_MIGRATE, SAFE_DIRS...); the documented keys are all there.
    assert set(doc_tmpl) <= set(our_tmpl)
    assert {k: our_tmpl[k] for k in ("DS_MIGRATE", "SHARED", "TM_MAD", "TYPE")} == \
        {k: doc_tmpl[k] for k in ("DS_MIGRATE", "SHARED", "TM_MAD", "TYPE")}
    state.add_host("host0", 100, oid=0)
    host_tags = _tags(state.host_element(0))
    doc_tags = _tags(doc_host)
    assert [t for t in doc_tags if t in host_tags] == host_tags  # same order, documented elements only


def test_stock_driver_table_matches_oned_7_4_conf():
    tm, ds = double.read_oned_conf(FIXTURES / "oned" / "oned-7.4.0.conf")
    assert tm == double.STOCK_TM_MAD_CONF
    assert ds == double.STOCK_DS_MAD_CONF


# --- the client against the double ---------------------------------------------

def test_client_pool_and_errors():
    with running_double() as d:
        client = api.OneClient(d.url, d.auth)
        names = {ds["name"] for ds in client.datastores()}
        assert names == {"system", "default", "files"}
        oid = client.datastore_allocate([("NAME", "x"), ("TYPE", "SYSTEM_DS"), ("TM_MAD", "ssh")], 100)
        assert client.datastore(oid)["clusters"] == [100]
        with pytest.raises(api.OneError) as e:
            client.datastore_allocate([("NAME", "y"), ("TYPE", "SYSTEM_DS"), ("TM_MAD", "nope")])
        assert 'TM_MAD named "nope" is not defined in oned.conf' in e.value.message
        assert "[one.datastore.allocate]" in e.value.message and e.value.code == 0x2000
        with pytest.raises(api.OneError) as e:
            client.datastore(999)
        assert e.value.code == 0x0400 and "Error getting datastore [999]" in e.value.message

        bad = api.OneClient(d.url, "oneadmin:wrong")
        with pytest.raises(api.OneError) as e:
            bad.datastores()
        assert e.value.code == 256
        assert "[one.datastorepool.info] User couldn't be authenticated, aborting call." in e.value.message
        assert "ONE_AUTH" in e.value.message


def test_client_unreachable_endpoint():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = api.OneClient(f"http://127.0.0.1:{port}/RPC2", "a:b", timeout=2)
    with pytest.raises(api.OneError, match=r"cannot reach oned at http://127\.0\.0\.1"):
        client.datastores()


def test_find_by_name_lists_duplicate_ids():
    objs = [{"id": 100, "name": "a"}, {"id": 104, "name": "a"}, {"id": 2, "name": "b"}]
    assert api.find_by_name(objs, "b", "datastore")["id"] == 2
    assert api.find_by_name(objs, "c", "datastore") is None
    with pytest.raises(api.OneError, match=r"2 datastores are named 'a' \(IDs 100, 104\)"):
        api.find_by_name(objs, "a", "datastore")


def _pyenv_python(version):
    path = Path.home() / ".pyenv" / "versions" / version / "bin" / "python"
    return path if path.exists() else None


PY36 = _pyenv_python("3.6.15")
PY311 = Path("/usr/bin/python3.11") if Path("/usr/bin/python3.11").exists() else None

_PY36_CLIENT = r'''
import importlib.util, sys
spec = importlib.util.spec_from_file_location("one_api", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
c = m.OneClient(sys.argv[2], sys.argv[3])
oid = c.datastore_allocate([("NAME", "py36"), ("TYPE", "SYSTEM_DS"), ("TM_MAD", "ssh"), ("Q", 'a "b" \\c')], 100)
t = m.singles(c.datastore(oid)["template"])
assert t["Q"] == 'a "b" \\c' and t["SHARED"] == "NO", t
try:
    m.OneClient(sys.argv[2], "oneadmin:bad").datastores()
except m.OneError as e:
    print(e.code)
'''


@pytest.mark.skipif(PY36 is None or PY311 is None, reason="needs pyenv Python 3.6.15 and /usr/bin/python3.11")
def test_module_utils_on_python36_against_double_on_python311(tmp_path):
    """The oldest target Python runs the client; the double runs on the lab's Python (3.11), standalone."""
    import subprocess

    port_file = tmp_path / "port"
    proc = subprocess.Popen([str(PY311), str(Path(double.__file__)), "--port", "0", "--port-file", str(port_file),
                             "--auth", "oneadmin:secret", "--cluster", "100:c100"], stdout=subprocess.DEVNULL)
    try:
        for unused in range(200):
            if port_file.exists():
                break
            import time
            time.sleep(0.05)
        url = f"http://127.0.0.1:{int(port_file.read_text())}/RPC2"
        out = subprocess.run([str(PY36), "-c", _PY36_CLIENT, api.__file__, url, "oneadmin:secret"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "256"
    finally:
        proc.terminate()
        proc.wait(10)
