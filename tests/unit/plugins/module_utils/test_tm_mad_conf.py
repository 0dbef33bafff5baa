"""The release table behind the nebula.storage.tm_mad_conf filter, checked against the stock
TM_MAD_CONF blocks of every oned.conf fixture (4.14.2 to 7.4.0)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nebula.storage.plugins.filter.tm_mad_conf import FilterModule
from ansible_collections.nebula.storage.plugins.module_utils._oned_template import parse
from ansible_collections.nebula.storage.plugins.module_utils._tm_mad_conf import (
    TmMadConfError,
    attribute_since,
    parse_release,
    tm_mad_conf_for_release,
)
from tests.conftest import FIXTURES

FULL = {"LN_TARGET": "NONE", "CLONE_TARGET": "SYSTEM", "SHARED": "YES", "DS_MIGRATE": "YES",
        "TM_MAD_SYSTEM": "ssh", "LN_TARGET_SSH": "SYSTEM", "CLONE_TARGET_SSH": "SYSTEM", "DISK_TYPE_SSH": "FILE",
        "ALLOW_ORPHANS": "FORMAT", "DRIVER": "raw", "DISK_TYPE": "FILE",
        "DS_LIVE_MIGRATE": "YES", "DS_MIGRATE_SNAP": "YES"}
TM_CONF_FIXTURES = ["4.14.2", "5.4.15", "5.12.13", "6.10.5", "7.4.0"]


def stock_attributes(version):
    blocks = [[p.ukey for p in pair.node.pairs]
              for pair in parse((FIXTURES / "oned" / ("oned-%s.conf" % version)).read_text()).find("TM_MAD_CONF")]
    assert blocks
    return blocks


@pytest.mark.parametrize("version", TM_CONF_FIXTURES)
def test_table_knows_every_stock_attribute_by_its_release(version):
    """Every attribute of a release's stock blocks is known to that release (the table is not too strict)."""
    rel = parse_release(version)
    for block in stock_attributes(version):
        for name in block:
            assert attribute_since(name) <= rel, (version, name)


@pytest.mark.parametrize("version", TM_CONF_FIXTURES)
def test_stock_blocks_pass_the_filter_unchanged(version):
    """A stock block of a release, run through the filter for that release, keeps every attribute."""
    doc = parse((FIXTURES / "oned" / ("oned-%s.conf" % version)).read_text())
    for pair in doc.find("TM_MAD_CONF"):
        attrs = {p.ukey: p.value for p in pair.node.pairs}
        if parse_release(version) >= (7, 2) and not {"DS_MIGRATE", "DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"} <= set(attrs):
            pytest.fail("a 7.x stock block without the 7.2 attributes: %s" % attrs)
        assert tm_mad_conf_for_release(attrs, version) == attrs


@pytest.mark.parametrize("version,absent", [
    ("4.14.2", {"DS_MIGRATE", "ALLOW_ORPHANS", "DRIVER", "TM_MAD_SYSTEM", "LN_TARGET_SSH", "CLONE_TARGET_SSH",
                "DISK_TYPE_SSH", "DISK_TYPE", "DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"}),
    ("5.12.13", {"DISK_TYPE", "DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"}),
    ("6.10", {"DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"}),
    ("7.0.1", {"DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"}),
    ("7.2", set()),
    ("7.4.0", set()),
])
def test_attributes_a_release_does_not_know_are_left_out(version, absent):
    out = tm_mad_conf_for_release(FULL, version)
    assert set(out) == set(FULL) - absent
    assert list(out) == [k for k in FULL if k in out]  # order kept


def test_7_2_and_later_need_the_migrate_attributes():
    no_live = {k: v for k, v in FULL.items() if k != "DS_LIVE_MIGRATE"}
    assert "DS_LIVE_MIGRATE" not in tm_mad_conf_for_release(no_live, "7.0")
    with pytest.raises(TmMadConfError, match=r"OpenNebula 7\.2 expects .*the block has no DS_LIVE_MIGRATE"):
        tm_mad_conf_for_release(no_live, "7.2.0")


@pytest.mark.parametrize("release,attrs,message", [
    ("seven", FULL, "is not an OpenNebula version"),
    ("3.8.5", FULL, "has no TM_MAD_CONF blocks"),
    ("7.4", {"LN_TARGET": "NONE", "BOGUS": "1"}, "BOGUS is not a TM_MAD_CONF attribute"),
    ("7.4", ["LN_TARGET"], "must be a mapping"),
])
def test_bad_input_is_named(release, attrs, message):
    with pytest.raises(TmMadConfError, match=message):
        tm_mad_conf_for_release(attrs, release)


def test_filter_wraps_the_function():
    f = FilterModule().filters()["tm_mad_conf"]
    assert f({"ln_target": "NONE", "CLONE_TARGET": "SELF", "shared": "yes", "DS_LIVE_MIGRATE": "NO"}, 6.10) == \
        {"ln_target": "NONE", "CLONE_TARGET": "SELF", "shared": "yes"}
    with pytest.raises(AnsibleFilterError, match="nebula.storage.tm_mad_conf: .*DS_MIGRATE_SNAP"):
        f({"LN_TARGET": "NONE", "CLONE_TARGET": "SELF", "SHARED": "YES", "DS_MIGRATE": "NO", "DS_LIVE_MIGRATE": "NO"}, "7.4")
