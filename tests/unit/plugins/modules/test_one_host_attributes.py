"""one_host_attributes through AnsibleModule, against the oned TEST DOUBLE on 127.0.0.1 (not oned)."""
from __future__ import annotations

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


def tmpl(d, hid=0):
    return {k: v for k, v in d.state.hosts[hid]["template"] if isinstance(v, str)}


def test_set_is_idempotent_and_keeps_other_keys(run_module, oned):
    before = tmpl(oned)
    r = run_module("one_host_attributes", args(oned, name="cluster100-host1", attributes={"replica_storage_ip": "198.18.5.21"}), diff=True)
    assert not r["failed"] and r["changed"] and r["id"] == 0
    assert tmpl(oned) == dict(before, REPLICA_STORAGE_IP="198.18.5.21")
    assert 'REPLICA_STORAGE_IP = "198.18.5.21"' in r["diff"]["after"] and "REPLICA_STORAGE_IP" not in r["diff"]["before"]
    (update,) = [a for m, a in oned.state.calls if m == "one.host.update"]
    assert update[2] == 1  # merge mode
    oned.state.calls.clear()
    r = run_module("one_host_attributes", args(oned, name="cluster100-host1", attributes={"REPLICA_STORAGE_IP": "198.18.5.21"}))
    assert not r["changed"] and [m for m, unused in oned.state.calls if m == "one.host.update"] == []
    assert tmpl(oned, 1).get("REPLICA_STORAGE_IP") is None  # other host untouched


def test_check_mode_and_absent(run_module, oned):
    a = args(oned, name="cluster100-host1", attributes={"REPLICA_STORAGE_IP": "198.18.5.21", "OTHER": "x"})
    r = run_module("one_host_attributes", a, check_mode=True, diff=True)
    assert r["changed"] and "REPLICA_STORAGE_IP" not in tmpl(oned)
    run_module("one_host_attributes", a)
    rm = args(oned, name="cluster100-host1", attributes={"REPLICA_STORAGE_IP": None}, state="absent")
    r = run_module("one_host_attributes", rm, check_mode=True)
    assert r["changed"] and "REPLICA_STORAGE_IP" in tmpl(oned)
    r = run_module("one_host_attributes", rm, diff=True)
    assert r["changed"] and "REPLICA_STORAGE_IP" not in tmpl(oned) and tmpl(oned)["OTHER"] == "x"
    assert tmpl(oned)["HOSTNAME"] == "cluster100-host1"
    assert not run_module("one_host_attributes", rm)["changed"]


def test_absent_keeps_vector_attributes(run_module, oned):
    oned.state.hosts[0]["template"].append(["PCI_FILTER", [["VENDOR", "10de"], ["CLASS", "0300"]]])
    oned.state.hosts[0]["template"].append(["GONE", "1"])
    r = run_module("one_host_attributes", args(oned, name="cluster100-host1", attributes={"gone": ""}, state="absent"))
    assert r["changed"]
    assert ["PCI_FILTER", [["VENDOR", "10de"], ["CLASS", "0300"]]] in oned.state.hosts[0]["template"]


def test_unknown_and_duplicate_hosts(run_module):
    seed = dict(DEFAULT_SEED, hosts=[{"id": 3, "name": "twin", "cluster_id": 100}, {"id": 4, "name": "twin", "cluster_id": 100}])
    with running_double(seed) as d:
        r = run_module("one_host_attributes", args(d, name="nohost", attributes={"A": "1"}))
        assert r["failed"] and "no OpenNebula host is named 'nohost'" in r["msg"]
        r = run_module("one_host_attributes", args(d, name="twin", attributes={"A": "1"}))
        assert r["failed"] and "(IDs 3, 4)" in r["msg"]


def test_auth_failure(run_module, oned):
    r = run_module("one_host_attributes", dict(api_url=oned.url, api_username="oneadmin", api_password="nope",
                                               name="cluster100-host1", attributes={"A": "1"}))
    assert r["failed"] and "[one.hostpool.info] User couldn't be authenticated, aborting call." in r["msg"]


def test_value_ending_with_backslash_goes_through_xml(run_module, oned):
    """oned's text syntax cannot end a value with a backslash; the module sends XML, so it arrives intact."""
    a = args(oned, name="cluster100-host1", attributes={"SHARE": "\\\\srv\\share\\"})
    r = run_module("one_host_attributes", a, diff=True)
    assert not r["failed"] and r["changed"] and tmpl(oned)["SHARE"] == "\\\\srv\\share\\"
    assert not run_module("one_host_attributes", a)["changed"]
