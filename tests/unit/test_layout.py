"""The collection resolves as nebula.storage and its metadata is coherent."""
from __future__ import annotations

import yaml

from tests.conftest import ROOT


def test_collection_symlink_points_at_root():
    link = ROOT / "ansible_collections" / "nebula" / "storage"
    assert link.is_symlink()
    assert link.resolve() == ROOT


def test_galaxy_metadata():
    meta = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert (meta["namespace"], meta["name"]) == ("nebula", "storage")
    assert set(meta["dependencies"]) == {"ansible.posix", "ansible.utils", "community.crypto", "community.general"}


def test_every_collection_the_code_uses_is_a_dependency():
    """galaxy.yml and collections/requirements.yml list exactly what roles and playbooks call."""
    import re

    used = set()
    for path in list((ROOT / "roles").rglob("*")) + list((ROOT / "playbooks").rglob("*")):
        if path.is_file() and path.suffix in (".yml", ".j2", ".yaml"):
            used |= set(re.findall(r"\b(ansible\.posix|ansible\.utils|community\.[a-z_]+|containers\.podman)\.", path.read_text()))
    meta = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    reqs = yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())
    assert used == set(meta["dependencies"])
    assert used == {c["name"] for c in reqs["collections"]}


def test_requires_ansible():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=2.16.0"


def test_every_role_has_argument_specs_and_readme():
    roles = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert {r.name for r in roles} >= {"nfs_shared", "onestor_replica", "gfs2_clvm", "storpool_addon"}
    for role in roles:
        specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
        assert "main" in specs["argument_specs"], role.name
        assert (role / "README.md").read_text().strip(), role.name
