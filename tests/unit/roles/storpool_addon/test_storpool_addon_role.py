# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""storpool_addon role: argument spec, defaults and README agree; the install rules pick install.sh's files."""

import re
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[4] / "roles" / "storpool_addon"


def load(rel):
    with open(ROLE / rel, encoding="utf-8") as f:
        return yaml.safe_load(f)


SPEC = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
DEFAULTS = load("defaults/main.yml")
RULES = load("vars/main.yml")["__storpool_addon_rules"]


def test_every_default_is_in_the_argument_spec_and_back():
    assert set(DEFAULTS) == set(SPEC)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_spec_default_matches_defaults_file(name):
    assert SPEC[name].get("default") == DEFAULTS[name], name
    assert name.startswith("storpool_addon_")
    assert SPEC[name]["description"]


def test_spec_types_fit_the_defaults():
    kinds = {"str": str, "bool": bool, "list": list, "dict": dict, "path": str, "int": int}
    for name, opt in SPEC.items():
        assert isinstance(DEFAULTS[name], kinds[opt["type"]]), name
        if "choices" in opt:
            assert DEFAULTS[name] in opt["choices"], name


def test_readme_documents_every_variable():
    readme = (ROLE / "README.md").read_text(encoding="utf-8")
    for name in SPEC:
        assert "| `%s` |" % name in readme, name
    for sub in SPEC["storpool_addon_datastores"]["options"]:
        assert "`storpool_addon_datastores[].%s`" % sub in readme, sub


def plan(paths):
    """The rules as the role applies them: first matching rule wins; returns {rel: dest}."""
    out = {}
    for rel in paths:
        for rule in RULES:
            if re.match(rule["re"], rel):
                dest = rule["dest"] + rel[len(rule.get("strip", "")):] if rule["dest"].endswith("/") else rule["dest"]
                out[rel] = dest if dest.startswith("/") else "/var/lib/one/" + dest
                break
    return out


# A FIXTURE list of paths laid out as in OpenNebula/addon-storpool (names only).
TREE = [
    "addon-storpoolrc", "install.sh", "README.md",
    "datastore/storpool/cp", "datastore/storpool/monitor_helper-sync", "datastore/xpath_multi.py",
    "datastore/xpath-sp.rb", "tm/storpool/clone", "tm/storpool/storpool_common.sh",
    "hooks/volumecare/volumecare", "hooks/volumecare/vc-policy.sh", "hooks/hookmux.sh", "hooks/ft/sp_host_error.rb",
    "misc/volumecare.hook", "misc/reserved.sh", "misc/storpool_probe.sh", "misc/autoconf.rb", "misc/augeas/oneserver.aug",
    "misc/etc/tmpfiles.d/addon-storpool-monitor.conf", "misc/etc/systemd/system/vc-policy.service",
    "misc/etc/systemd/system/vc-policy.timer",
    "vmm/kvm/deploy-tweaks", "vmm/kvm/deploy-tweaks.d.example/cpu.py", "vmm/kvm/attach_disk.storpool",
    "vmm/kvm/detach_disk.cdrom", "vmm/kvm/tmsave", "vmm/kvm/tmsaverestore", "vmm/kvm/snapshot_create-storpool",
    "vmm/kvm/save.storpool", "vmm/kvm/restore.storpool-post", "vmm/kvm/migrate-tweaks", "vmm/kvm/vmTweakVirtioBlkDataPlane.py",
    "patches/vmm/7.0/00-attach_disk-fixes.patch", "scripts/install-6.8.sh", "tm/storpool/sub/dir",
]


def test_rules_install_what_install_sh_installs():
    got = plan(TREE)
    r = "/var/lib/one/remotes/"
    assert got == {
        "addon-storpoolrc": r + "addon-storpoolrc",
        "datastore/storpool/cp": r + "datastore/storpool/cp",
        "datastore/storpool/monitor_helper-sync": r + "datastore/storpool/monitor_helper-sync",
        "datastore/xpath_multi.py": r + "datastore/xpath_multi.py",
        "datastore/xpath-sp.rb": r + "datastore/xpath-sp.rb",
        "tm/storpool/clone": r + "tm/storpool/clone",
        "tm/storpool/storpool_common.sh": r + "tm/storpool/storpool_common.sh",
        "hooks/volumecare/volumecare": r + "hooks/volumecare/volumecare",
        "hooks/volumecare/vc-policy.sh": r + "hooks/volumecare/vc-policy.sh",
        "misc/volumecare.hook": r + "hooks/volumecare/volumecare.hook",
        "misc/reserved.sh": r + "reserved.sh",
        "misc/storpool_probe.sh": r + "im/kvm-probes.d/host/system/storpool_probe.sh",
        "misc/etc/tmpfiles.d/addon-storpool-monitor.conf": "/etc/tmpfiles.d/addon-storpool-monitor.conf",
        "misc/etc/systemd/system/vc-policy.service": "/etc/systemd/system/vc-policy.service",
        "misc/etc/systemd/system/vc-policy.timer": "/etc/systemd/system/vc-policy.timer",
        "vmm/kvm/deploy-tweaks": r + "vmm/kvm/deploy-tweaks",
        "vmm/kvm/deploy-tweaks.d.example/cpu.py": r + "vmm/kvm/deploy-tweaks.d.example/cpu.py",
        "vmm/kvm/attach_disk.storpool": r + "vmm/kvm/attach_disk.storpool",
        "vmm/kvm/detach_disk.cdrom": r + "vmm/kvm/detach_disk.cdrom",
        "vmm/kvm/tmsave": r + "vmm/kvm/tmsave",
        "vmm/kvm/tmsaverestore": r + "vmm/kvm/tmsaverestore",
        "vmm/kvm/snapshot_create-storpool": r + "vmm/kvm/snapshot_create-storpool",
    }


def test_rule_modes_and_kinds():
    for rule in RULES:
        assert rule["kind"] in ("remotes", "hook", "probe", "rc", "tmpfiles", "unit")
        if rule["kind"] in ("remotes", "probe"):
            assert rule["mode"] == "0755", rule
        else:
            assert rule["mode"] == "0644", rule
        assert rule["dest"].startswith("/") == (rule["kind"] in ("tmpfiles", "unit")), rule
