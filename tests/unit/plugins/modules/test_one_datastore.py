"""one_datastore through AnsibleModule, against the oned TEST DOUBLE on 127.0.0.1 (not oned)."""
from __future__ import annotations

# pylint: disable=repeated-keyword  # false positive on args(d, **dict(BASE, key=...)) merges

import json

import pytest

from tests.oned_double.testing import DEFAULT_SEED, running_double


@pytest.fixture
def oned():
    with running_double() as d:
        yield d


def args(d, **kw):
    out = dict(d.api())
    out.update(kw)
    return out


REPLICA = dict(name="system_replica_1", type="system", template={"TM_MAD": "ssh", "REPLICA_HOST": "cluster100-host1"},
               clusters=[100])


def snapshot(d):
    """A deep, comparable copy of the double's whole state."""
    return json.dumps(d.state.to_json(), sort_keys=True)


def writes(d):
    return [m for m, unused in d.state.calls if not m.endswith(".info")]


def test_create_then_idempotent(run_module, oned):
    r = run_module("one_datastore", args(oned, **REPLICA), diff=True)
    assert not r["failed"], r
    assert r["changed"] and r["id"] == 100
    ((oid, ds),) = oned.ds_by_name("system_replica_1")
    assert oid == 100 and ds["clusters"] == [100] and ds["type"] == 1 and ds["tm_mad"] == "ssh"
    assert ["REPLICA_HOST", "cluster100-host1"] in ds["template"]
    assert r["datastore"]["template"]["SHARED"] == "NO"  # filled in by oned from TM_MAD_CONF
    assert r["diff"]["before"] == ""
    assert 'REPLICA_HOST = "cluster100-host1"' in r["diff"]["after"]
    oned.state.calls.clear()
    r2 = run_module("one_datastore", args(oned, **REPLICA))
    assert not r2["failed"] and not r2["changed"] and r2["id"] == 100
    assert writes(oned) == []


def test_check_mode_writes_nothing(run_module, oned):
    before = snapshot(oned)
    r = run_module("one_datastore", args(oned, **REPLICA), check_mode=True, diff=True)
    assert r["changed"] and r["id"] is None and 'TM_MAD = "ssh"' in r["diff"]["after"]
    assert snapshot(oned) == before and writes(oned) == []
    run_module("one_datastore", args(oned, **REPLICA))
    before = snapshot(oned)
    changed = dict(REPLICA, template={"TM_MAD": "ssh", "REPLICA_HOST": "cluster100-host2"})
    r = run_module("one_datastore", args(oned, **changed), check_mode=True, diff=True)
    assert r["changed"] and 'REPLICA_HOST = "cluster100-host1"' in r["diff"]["before"]
    assert 'REPLICA_HOST = "cluster100-host2"' in r["diff"]["after"]
    assert snapshot(oned) == before


def test_keys_are_case_insensitive_and_values_normalised(run_module, oned):
    spec = dict(name="imgs", type="image", template={"ds_mad": "fs", "tm_mad": "shared", "LIMIT_MB": 1024, "COMPATIBLE_SYS_DS": "0"})
    assert run_module("one_datastore", args(oned, **spec))["changed"]
    spec["template"] = {"DS_MAD": "fs", "Tm_Mad": "shared", "limit_mb": "1024", "compatible_sys_ds": 0}
    r = run_module("one_datastore", args(oned, **spec))
    assert not r["failed"] and not r["changed"]


def test_merge_keeps_other_keys_exact_removes_them(run_module, oned):
    spec = dict(name="imgs", type="image", template={"DS_MAD": "fs", "TM_MAD": "ssh", "BRIDGE_LIST": "node1 node2", "LIMIT_MB": "10"})
    run_module("one_datastore", args(oned, **spec))
    spec["template"] = {"DS_MAD": "fs", "TM_MAD": "ssh", "BRIDGE_LIST": "node1"}
    r = run_module("one_datastore", args(oned, **spec), diff=True)
    assert r["changed"]
    t = r["datastore"]["template"]
    assert t["BRIDGE_LIST"] == "node1" and t["LIMIT_MB"] == "10"
    r = run_module("one_datastore", args(oned, attributes="exact", **spec), diff=True)
    assert r["changed"] and 'LIMIT_MB = "10"' in r["diff"]["before"] and "LIMIT_MB" not in r["diff"]["after"]
    t = r["datastore"]["template"]
    assert "LIMIT_MB" not in t
    # oned's own attributes survive exact mode
    for key in ("LN_TARGET", "CLONE_TARGET", "ALLOW_ORPHANS", "SAFE_DIRS", "RESTRICTED_DIRS", "DISK_TYPE"):
        assert key in t, key
    r = run_module("one_datastore", args(oned, attributes="exact", **spec))
    assert not r["changed"]


def test_clusters_add_and_exclusive(run_module, oned):
    run_module("one_datastore", args(oned, **REPLICA))
    r = run_module("one_datastore", args(oned, **dict(REPLICA, clusters=[101])), diff=True)
    assert r["changed"] and r["datastore"]["clusters"] == [100, 101]
    assert "# CLUSTERS = 100\n" in r["diff"]["before"] and "# CLUSTERS = 100,101\n" in r["diff"]["after"]
    r = run_module("one_datastore", args(oned, clusters_exclusive=True, **dict(REPLICA, clusters=[101])))
    assert r["changed"] and r["datastore"]["clusters"] == [101]
    r = run_module("one_datastore", args(oned, clusters_exclusive=True, **dict(REPLICA, clusters=[101])))
    assert not r["changed"]


def test_new_datastore_without_clusters_goes_to_default(run_module, oned):
    r = run_module("one_datastore", args(oned, name="s", type="system", template={"TM_MAD": "shared"}))
    assert r["datastore"]["clusters"] == [0]
    r = run_module("one_datastore", args(oned, name="t", type="system", template={"TM_MAD": "shared"}, clusters=[]))
    assert r["datastore"]["clusters"] == [0]
    r = run_module("one_datastore", args(oned, name="u", type="system", template={"TM_MAD": "shared"}, clusters=[],
                                         clusters_exclusive=True), diff=True)
    assert r["changed"] and r["datastore"]["clusters"] == []
    r = run_module("one_datastore", args(oned, name="u", type="system", template={"TM_MAD": "shared"}, clusters=[],
                                         clusters_exclusive=True))
    assert not r["changed"]


def test_enabled_toggles_system_only(run_module, oned):
    run_module("one_datastore", args(oned, **REPLICA))
    r = run_module("one_datastore", args(oned, enabled=False, **REPLICA))
    assert r["changed"] and oned.state.datastores[100]["state"] == 1
    assert not run_module("one_datastore", args(oned, enabled=False, **REPLICA))["changed"]
    assert run_module("one_datastore", args(oned, enabled=True, **REPLICA))["changed"]
    assert oned.state.datastores[100]["state"] == 0
    r = run_module("one_datastore", args(oned, name="default", type="image", template={"DS_MAD": "fs", "TM_MAD": "ssh"}, enabled=True))
    assert r["failed"] and "system datastores only" in r["msg"]


def test_absent_refuses_images_unless_force(run_module):
    seed = dict(DEFAULT_SEED, datastores=[{"id": 105, "name": "full", "template": {"DS_MAD": "fs", "TM_MAD": "ssh", "TYPE": "IMAGE_DS"},
                                           "images": [7, 8]}])
    with running_double(seed) as d:
        r = run_module("one_datastore", args(d, name="full", state="absent"))
        assert r["failed"] and "still holds images 7, 8" in r["msg"] and "force" in r["msg"]
        assert 105 in d.state.datastores
        # force skips the module's check; oned itself refuses non-empty datastores
        r = run_module("one_datastore", args(d, name="full", state="absent", force=True))
        assert r["failed"] and "[one.datastore.delete] Cannot delete datastore. Datastore 105 is not empty." in r["msg"]
        d.state.datastores[105]["images"] = []
        r = run_module("one_datastore", args(d, name="full", state="absent"), check_mode=True)
        assert r["changed"] and 105 in d.state.datastores
        r = run_module("one_datastore", args(d, name="full", state="absent"))
        assert r["changed"] and 105 not in d.state.datastores
        assert not run_module("one_datastore", args(d, name="full", state="absent"))["changed"]


def test_duplicate_names_fail_listing_ids(run_module):
    tmpl = {"TM_MAD": "ssh", "TYPE": "SYSTEM_DS"}
    seed = dict(DEFAULT_SEED, datastores=[{"id": 110, "name": "dup", "template": tmpl}, {"id": 111, "name": "dup", "template": tmpl}])
    with running_double(seed) as d:
        r = run_module("one_datastore", args(d, name="dup", type="system", template={"TM_MAD": "ssh"}))
        assert r["failed"] and "(IDs 110, 111)" in r["msg"]


def test_unknown_tm_mad_reports_oned_text(run_module, oned):
    r = run_module("one_datastore", args(oned, name="x", type="system", template={"TM_MAD": "onestor_typo"}))
    assert r["failed"]
    assert '[one.datastore.allocate] TM_MAD named "onestor_typo" is not defined in oned.conf' in r["msg"]
    assert oned.ds_by_name("x") == []
    r = run_module("one_datastore", args(oned, name="y", type="image", template={"TM_MAD": "ssh", "DS_MAD": "nope"}))
    assert r["failed"] and 'DS_MAD named "nope" is not defined in oned.conf' in r["msg"]


def test_update_to_unknown_tm_mad_reports_oned_text(run_module, oned):
    run_module("one_datastore", args(oned, **REPLICA))
    r = run_module("one_datastore", args(oned, **dict(REPLICA, template={"TM_MAD": "bogus"})))
    assert r["failed"] and "[one.datastore.update] Cannot update template. TM_MAD named \"bogus\"" in r["msg"]
    assert oned.state.datastores[100]["tm_mad"] == "ssh"


def test_storpool_required_attrs(run_module, oned):
    sp = dict(name="sp", type="image", template={"DS_MAD": "storpool", "TM_MAD": "storpool", "BRIDGE_LIST": "node1 node2"})
    r = run_module("one_datastore", args(oned, **sp))
    assert r["failed"] and "missing the \"DISK_TYPE\" attribute" in r["msg"]
    sp["template"]["DISK_TYPE"] = "block"  # as in the StorPool docs; oned stores it upper-case
    r = run_module("one_datastore", args(oned, **sp))
    assert not r["failed"] and r["changed"] and r["datastore"]["template"]["DISK_TYPE"] == "BLOCK"
    assert not run_module("one_datastore", args(oned, **sp))["changed"]


def test_owned_attribute_that_oned_rewrites_fails_clearly(run_module, oned):
    r = run_module("one_datastore", args(oned, name="s", type="system", template={"TM_MAD": "ssh", "SHARED": "YES"}))
    assert r["failed"] and "SHARED=NO (asked YES)" in r["msg"] and "TM_MAD_CONF" in r["msg"]


def test_auth_failure_message(run_module, oned):
    r = run_module("one_datastore", dict(REPLICA, api_url=oned.url, api_username="oneadmin", api_password="wrong"))
    assert r["failed"] and "User couldn't be authenticated, aborting call." in r["msg"] and r["oned_error_code"] == 256


def test_credentials_from_one_auth_and_one_xmlrpc(run_module, oned, tmp_path, monkeypatch):
    auth = tmp_path / "one_auth"
    auth.write_text(oned.auth + "\n")
    monkeypatch.setenv("ONE_AUTH", str(auth))
    monkeypatch.setenv("ONE_XMLRPC", oned.url)
    r = run_module("one_datastore", dict(REPLICA))
    assert not r["failed"] and r["changed"]


def test_bad_input_fails_before_talking_to_oned(run_module, oned):
    for template, needle in (({"NAME": "x"}, "name option"), ({"TYPE": "IMAGE_DS"}, "contradicts type=system"),
                             ({"tm_mad": "ssh", "TM_MAD": "ssh"}, "same attribute TM_MAD"), ({"BAD-KEY": "1"}, "not valid"),
                             ({"V": {"A": "1"}}, "vector attributes")):
        r = run_module("one_datastore", args(oned, name="x", type="system", template=template))
        assert r["failed"] and needle in r["msg"], (template, r["msg"])
    assert oned.state.calls == []


@pytest.mark.parametrize("module_name", ["one_datastore", "one_host_attributes"])
def test_documentation_matches_argument_spec(module_name):
    import importlib

    import yaml

    mod = importlib.import_module(f"ansible_collections.nebula.storage.plugins.modules.{module_name}")
    doc = yaml.safe_load(mod.DOCUMENTATION)
    yaml.safe_load(mod.EXAMPLES)
    yaml.safe_load(mod.RETURN)
    assert doc["module"] == module_name and doc["version_added"] == "0.1.0"
    spec = mod.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, opt in spec.items():
        d = doc["options"][name]
        assert d["type"] == opt["type"], name
        assert d.get("default") == opt.get("default"), name
        assert d.get("choices") == opt.get("choices"), name
        assert d.get("elements") == opt.get("elements"), name
        assert bool(d.get("required")) == bool(opt.get("required")), name
    assert spec["api_password"]["no_log"] is True
