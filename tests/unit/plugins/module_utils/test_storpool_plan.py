"""_storpool_plan: one test per rule of the StorPool addon's install plan (what install-6.4.sh does)."""
from __future__ import annotations

import pytest

from ansible_collections.nebula.storage.plugins.module_utils import _storpool_plan as P

SCRIPT = "aaaa"  # checksum of scripts/install-6.4.sh in these trees
TREE = {
    "scripts/install-6.4.sh": SCRIPT, "scripts/install-7.2.sh": SCRIPT, "scripts/install-6.10.sh": SCRIPT,
    "scripts/install-6.0.sh": "older", "scripts/install-5.10.3.sh": "older",
    "datastore/storpool/cp": "", "datastore/storpool/.hidden": "", "datastore/xpath_multi.py": "", "datastore/xpath-sp.rb": "",
    "datastore/other.py": "", "tm/storpool/clone": "", "tm/storpool/postbackup_live": "",
    "hooks/volumecare/volumecare": "", "hooks/volumecare/vc-policy.sh": "", "hooks/volumecare/README": "",
    "hooks/hookmux.sh": "", "misc/volumecare.hook": "", "misc/reserved.sh": "", "misc/storpool_probe.sh": "",
    "misc/etc/tmpfiles.d/addon-storpool-monitor.conf": "",
    "misc/etc/systemd/system/monitor_helper-sync.service": "", "misc/etc/systemd/system/monitor_helper-sync.timer": "",
    "misc/etc/systemd/system/vc-policy.service": "", "misc/etc/systemd/system/vc-policy.timer": "",
    "misc/etc/systemd/system/other.service": "", "misc/autoconf.rb": "",
    "vmm/kvm/deploy-tweaks": "", "vmm/kvm/deploy-tweaks.d.example/volatile2dev.py": "",
    "vmm/kvm/deploy-tweaks.d.example/persistent-cdrom.py": "", "vmm/kvm/deploy-tweaks.d.example/cpu.py": "",
    "vmm/kvm/attach_disk.storpool": "", "vmm/kvm/detach_disk.cdrom": "", "vmm/kvm/tmsave": "", "vmm/kvm/tmsaverestore": "",
    "vmm/kvm/snapshot_create-storpool": "", "vmm/kvm/save.storpool": "", "vmm/kvm/migrate-tweaks": "",
    "addon-storpoolrc": "", "install.sh": "",
    "patches/vmm/6.10/01-a.patch": "", "patches/vmm/6.10/02-b.patch": "", "patches/vmm/6.10.0/00-c.patch": "",
    "patches/vnm/6.10.5/00-d.patch": "", "patches/datastore/7.2/00-x.patch": "", "patches/vmm/7.2/00-e.patch": "",
    "patches/sunstone/6.10/00-s.patch": "", "patches/tm/6.10/00-t.patch": "",
}


def dests(entries):
    return {(e["base"], e["dest"]): e for e in entries}


def planned(**kw):
    return dests(P.plan_files(TREE, **kw))


# --- releases ------------------------------------------------------------------------
def test_supported_releases_are_those_whose_script_is_install_6_4():
    assert P.supported_releases(TREE) == ["6.4", "6.10", "7.2"]


def test_release_exact_script_first_then_major_minor():
    assert P.script_for("5.10.3", TREE) == "5.10.3"
    assert P.script_for("6.10.5", TREE) == "6.10"
    assert P.script_for("7.4.0", TREE) is None


def test_unsupported_release_names_version_and_supported_list():
    with pytest.raises(P.PlanError) as e:
        P.check_release("7.4.0", TREE)
    assert "OpenNebula 7.4.0 is not supported" in str(e.value) and "(supported: 6.4, 6.10, 7.2)" in str(e.value)
    assert "storpool_addon_force_version" in str(e.value)


def test_release_with_an_older_install_script_is_refused():
    with pytest.raises(P.PlanError) as e:
        P.check_release("6.0.1", TREE)
    assert "scripts/install-6.0.sh" in str(e.value) and "supported: 6.4, 6.10, 7.2" in str(e.value)


def test_force_version_installs_that_release_with_a_warning():
    r = P.check_release("7.4.0", TREE, force="7.2.0")
    assert r["forced"] and r["version"] == "7.2.0" and r["release"] == "7.2"
    assert "7.2.0" in r["warning"] and "7.4.0" in r["warning"]
    with pytest.raises(P.PlanError, match="storpool_addon_force_version: 7.4.0 is not a release"):
        P.check_release("7.4.0", TREE, force="7.4.0")


def test_bad_version_text():
    with pytest.raises(P.PlanError, match="not an OpenNebula version"):
        P.check_release("seven", TREE)


def test_tree_without_the_drivers_is_not_the_addon():
    with pytest.raises(P.PlanError, match="does not look like the StorPool addon"):
        P.check_tree({"scripts/install-6.4.sh": ""}, [])
    with pytest.raises(P.PlanError, match="storpool_addon_deploy_tweaks: the source has no vmm/kvm/deploy-tweaks.d.example/nope.py"):
        P.check_tree(TREE, ["nope.py"])


# --- files: one test per rule ---------------------------------------------------------------
def test_rule_datastore_and_tm_drivers_not_hidden_files():
    p = planned()
    assert p[("remotes", "datastore/storpool/cp")]["mode"] == "0755"
    assert ("remotes", "tm/storpool/postbackup_live") in p
    assert ("remotes", "datastore/storpool/.hidden") not in p


def test_rule_xpath_helpers_only():
    p = planned()
    assert ("remotes", "datastore/xpath_multi.py") in p and ("remotes", "datastore/xpath-sp.rb") in p
    assert ("remotes", "datastore/other.py") not in p


def test_rule_volumecare_two_files_and_the_hook_template():
    p = planned()
    assert ("remotes", "hooks/volumecare/volumecare") in p and ("remotes", "hooks/volumecare/vc-policy.sh") in p
    assert ("remotes", "hooks/volumecare/README") not in p and ("remotes", "hooks/hookmux.sh") not in p
    assert p[("remotes", "hooks/volumecare/volumecare.hook")]["mode"] == "0644"


def test_rule_tmpfiles_and_the_two_timers_under_etc():
    p = planned()
    assert p[("etc", "tmpfiles.d/addon-storpool-monitor.conf")]["mode"] == "0644"
    units = sorted(d for b, d in p if b == "etc" and d.startswith("systemd/"))
    assert units == ["systemd/system/%s.%s" % (n, t) for n in ("monitor_helper-sync", "vc-policy") for t in ("service", "timer")]


def test_rule_vmm_scripts():
    p = planned()
    for d in ("deploy-tweaks", "deploy-tweaks.d.example/cpu.py", "attach_disk.storpool", "detach_disk.cdrom", "tmsave",
              "tmsaverestore", "snapshot_create-storpool"):
        assert ("remotes", "vmm/kvm/" + d) in p, d
    assert ("remotes", "vmm/kvm/save.storpool") not in p and ("remotes", "vmm/kvm/migrate-tweaks") not in p


def test_rule_reserved_sh_at_the_top_of_remotes():
    assert ("remotes", "reserved.sh") in planned()


def test_rule_probe_only_where_the_probe_directory_exists():
    assert ("remotes", "im/kvm-probes.d/host/system/storpool_probe.sh") in planned(probes=True)
    assert ("remotes", "im/kvm-probes.d/host/system/storpool_probe.sh") not in planned(probes=False)


def test_rule_rc_installed_only_when_missing():
    assert planned()[("remotes", "addon-storpoolrc")]["force"] is False
    assert planned()[("remotes", "tm/storpool/clone")]["force"] is True


def test_rule_nothing_else_is_installed():
    srcs = {e["src"] for e in P.plan_files(TREE)}
    for rel in ("install.sh", "misc/autoconf.rb", "misc/etc/systemd/system/other.service", "scripts/install-6.4.sh"):
        assert rel not in srcs


def test_rule_tweaks_enabled_and_refreshed():
    p = planned(tweaks=["volatile2dev.py"], enabled=["cpu.py", "my-own.py", "../evil"])
    assert p[("remotes", "vmm/kvm/deploy-tweaks.d/volatile2dev.py")]["src"] == "vmm/kvm/deploy-tweaks.d.example/volatile2dev.py"
    assert ("remotes", "vmm/kvm/deploy-tweaks.d/cpu.py") in p  # already enabled: refreshed
    assert not [d for b, d in p if d.endswith("my-own.py") or "evil" in d]  # no example of that name: left alone


def test_rc_deploy_tweaks_last_assignment_wins():
    assert P.rc_deploy_tweaks('DEPLOY_TWEAKS="a.py"\n# DEPLOY_TWEAKS=x\nexport DEPLOY_TWEAKS="cpu.py  uuid.py"\n') == ["cpu.py", "uuid.py"]
    assert P.rc_deploy_tweaks("") == []


def test_absent_files_of_the_upgrade_cleanup():
    a = P.plan_absent()
    assert sorted(a["remotes"]) == sorted("vmm/kvm/%s.storpool%s" % (x, s) for x in ("save", "restore") for s in ("", "-pre", "-post"))
    assert a["etc"] == ["cron.d/addon-storpool", "cron.d/vc-policy"]


# --- patches ----------------------------------------------------------------------------------
def test_patches_exact_release_directory_wins_over_major_minor():
    assert P.plan_patches(TREE, "6.10.0") == ["patches/vmm/6.10.0/00-c.patch"]


def test_patches_major_minor_in_name_order_and_mads_in_install_sh_order():
    assert P.plan_patches(TREE, "6.10.5") == ["patches/vmm/6.10/01-a.patch", "patches/vmm/6.10/02-b.patch",
                                              "patches/vnm/6.10.5/00-d.patch"]
    assert P.plan_patches(TREE, "7.2.0") == ["patches/vmm/7.2/00-e.patch", "patches/datastore/7.2/00-x.patch"]


def test_patches_of_sunstone_and_tm_are_not_applied():
    assert not [p for p in P.plan_patches(TREE, "6.10.5") if "/sunstone/" in p or "/tm/" in p]


# --- TM_MAD_CONF ---------------------------------------------------------------------------------
def test_tm_mad_conf_current_block_on_6_10_has_no_7_2_attributes():
    b = P.tm_mad_conf("6.10.5")
    assert b["set"] == P.TM_MAD_CONF_CURRENT and b["set"]["TM_MAD_SYSTEM"] == ""
    assert "DS_LIVE_MIGRATE" in b["unset"] and "LN_TARGET_SSH" in b["unset"]


def test_tm_mad_conf_7_2_adds_live_migrate_and_migrate_snap():
    b = P.tm_mad_conf("7.2.0")
    assert b["set"]["DS_LIVE_MIGRATE"] == "YES" and b["set"]["DS_MIGRATE_SNAP"] == "NO"
    assert "DS_LIVE_MIGRATE" not in b["unset"]


def test_tm_mad_conf_legacy_and_overrides():
    b = P.tm_mad_conf("6.10.5", legacy=True, extra={"ds_migrate": "no"})
    assert b["set"]["TM_MAD_SYSTEM"] == "ssh,shared" and b["set"]["DISK_TYPE_SHARED"] == "BLOCK"
    assert b["set"]["DS_MIGRATE"] == "no" and "LN_TARGET_SSH" not in b["unset"]


def test_plan_puts_it_together():
    r = P.plan(TREE, "6.10.5", tweaks=["volatile2dev.py"], rc_text='DEPLOY_TWEAKS="cpu.py"\n')
    assert r["release"] == "6.10" and not r["forced"]
    assert r["timers"] == ["monitor_helper-sync.timer", "vc-policy.timer"]
    assert any(e["dest"] == "vmm/kvm/deploy-tweaks.d/cpu.py" for e in r["files"])


# --- the block against the release's stock blocks (issue 15, section 5) ---------------------------
def stock_tm_blocks(name):
    from tests.conftest import FIXTURES
    from ansible_collections.nebula.storage.plugins.module_utils._oned_template import parse
    doc = parse((FIXTURES / "oned" / name).read_text())
    return [{p.ukey for p in pair.node.pairs} for pair in doc.find("TM_MAD_CONF") if pair.is_vector]


@pytest.mark.parametrize("fixture,version", [("oned-6.10.5.conf", "6.10.5"), ("oned-7.4.0.conf", "7.4.0")])
def test_tm_mad_conf_carries_exactly_the_attributes_of_the_release_stock_blocks(fixture, version):
    blocks = stock_tm_blocks(fixture)
    assert len(blocks) > 5
    every = set.intersection(*blocks)
    known = set.union(*blocks)
    ours = P.tm_mad_conf(version)
    keys = set(ours["set"]) | {"NAME"}
    # every attribute that all stock blocks of the release carry is in ours ...
    assert every <= keys, every - keys
    # ... and ours has none the release does not know (NAME aside, every key is in some stock block)
    assert keys <= known, keys - known
    # the 7.2 attributes: present on 7.4.0 (as in every stock block), absent and removed on 6.10.5
    has72 = {"DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"} <= every
    assert has72 == (version >= "7.2")
    assert bool({"DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"} & set(ours["set"])) == has72
    assert bool({"DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"} & set(ours["unset"])) == (not has72)
