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
    assert set(meta["dependencies"]) == {"ansible.posix", "community.crypto", "community.general"}


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


def test_requires_ansible_is_the_oldest_release_make_test_runs():
    """make test's "oldest" steps install requirements/ansible-X.Y.in for the X.Y that runtime.yml claims.

    2.19, not 2.16: under 2.16 to 2.18 the template lookup turns JSON text into a dict (convert_data), so
    nfs_shared's preflight (``lookup('ansible.builtin.template', 'plan.json.j2') | from_json``) fails; see
    CHANGELOG.rst (0.2.0, breaking changes).
    """
    import re

    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    m = re.fullmatch(r">=(\d+\.\d+)\.0", runtime["requires_ansible"])
    assert m, runtime["requires_ansible"]
    assert m.group(1) == "2.19"
    pins = (ROOT / "requirements" / ("ansible-%s.in" % m.group(1))).read_text()
    assert re.search(r"^ansible-core==%s\.\d+$" % re.escape(m.group(1)), pins, re.M)
    constraints = (ROOT / "requirements" / ("constraints-%s.txt" % m.group(1))).read_text()
    assert re.search(r"^ansible-core==%s\.\d+$" % re.escape(m.group(1)), constraints, re.M)


def test_version_is_the_newest_changelog_release():
    meta = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    changes = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())
    newest = max(changes["releases"], key=lambda v: tuple(int(x) for x in v.split(".")))
    assert meta["version"] == newest == "0.2.0"
    assert (ROOT / "CHANGELOG.rst").is_file() and not (ROOT / "CHANGELOG.md").exists()


def test_every_role_has_argument_specs_and_readme():
    roles = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert {r.name for r in roles} >= {"nfs_shared", "onestor_replica", "gfs2_clvm", "storpool_addon"}
    for role in roles:
        specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
        assert "main" in specs["argument_specs"], role.name
        assert (role / "README.md").read_text().strip(), role.name
