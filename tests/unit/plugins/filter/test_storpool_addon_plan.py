"""Filter nebula.storage.storpool_addon_plan on the REAL addon tree (extracted from ../shared/fixtures at test time)."""
from __future__ import annotations

import hashlib
import os

import pytest
from ansible.errors import AnsibleFilterError

from tests.conftest import FIXTURES
from tests.functional.storpool_addon.addon_layout import extract_addon

from ansible_collections.nebula.storage.plugins.filter.storpool_addon_plan import storpool_addon_plan


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    return extract_addon(FIXTURES / "addon-storpool" / "addon-storpool-b279d18.tar.gz", tmp_path_factory.mktemp("addon"))


def test_controller_source_for_7_2(addon, tmp_path):
    scratch = str(tmp_path / "scratch")
    plan = storpool_addon_plan(None, str(addon), "7.2.0", tweaks=["volatile2dev.py", "persistent-cdrom.py"], scratch=scratch)
    assert plan["release"] == "7.2" and len(plan["files"]) == 94
    # xpath-sp.rb is installed from the patched copy; its patch is not applied again on the front-end
    xpath = [e for e in plan["files"] if e["dest"] == "datastore/xpath-sp.rb"][0]
    assert xpath["src"] == scratch + "/remotes/datastore/xpath-sp.rb"
    assert [p["name"] for p in plan["self_patches"]] == ["patches/datastore/7.2/00-xpath-sp.patch"]
    assert [p["name"] for p in plan["patches"]] == ["patches/vmm/7.2/00-attach_disk-fixes.patch",
                                                    "patches/vnm/7.2/00-tproxy-disable-arp_ignore_in_netns.patch",
                                                    "patches/vnm/7.2/01-tproxy-add-local-config.patch"]
    assert all(p["content"].startswith("---") or "\n--- " in p["content"] for p in plan["patches"])
    assert plan["tm_mad_conf"]["set"]["DS_LIVE_MIGRATE"] == "YES"
    assert all(os.path.isfile(e["src"]) for e in plan["files"] if e is not xpath)


def test_front_end_source_uses_the_find_listing_and_the_script_links(addon):
    # what ansible.builtin.find (follow: true) reports: symlinks without a checksum
    found = []
    for dirpath, _d, names in os.walk(addon, followlinks=True):
        for n in names:
            p = os.path.join(dirpath, n)
            entry = {"path": p, "isdir": False, "islnk": os.path.islink(p)}
            if not entry["islnk"]:
                entry["checksum"] = hashlib.sha1(open(p, "rb").read()).hexdigest()
            found.append(entry)
    with pytest.raises(AnsibleFilterError, match="OpenNebula 6.10.5 uses the addon's scripts/install-6.10.sh"):
        storpool_addon_plan(found, str(addon), "6.10.5")
    links = {os.path.relpath(e["path"], addon): hashlib.sha1(open(e["path"], "rb").read()).hexdigest()
             for e in found if e["islnk"] and "/scripts/install-" in e["path"]}
    plan = storpool_addon_plan(found, str(addon), "6.10.5", links=links)
    assert plan["release"] == "6.10" and plan["self_patched"] == []
    assert all("content" not in p for p in plan["patches"])  # read on the front-end (src)


def test_unsupported_release_is_a_filter_error_naming_the_list(addon):
    with pytest.raises(AnsibleFilterError) as e:
        storpool_addon_plan(None, str(addon), "7.4.0")
    assert "(supported: 6.4, 6.6, 6.7, 6.8, 6.10, 7.0, 7.2)" in str(e.value)
