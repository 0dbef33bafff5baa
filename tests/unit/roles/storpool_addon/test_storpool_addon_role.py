# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""storpool_addon role: argument spec, defaults and README agree; the install rules pick install.sh's files."""

from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[4] / "roles" / "storpool_addon"


def load(rel):
    with open(ROLE / rel, encoding="utf-8") as f:
        return yaml.safe_load(f)


SPEC = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
DEFAULTS = load("defaults/main.yml")


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


def test_the_install_plan_is_python_not_jinja():
    """The rules live in plugins/module_utils/_storpool_plan.py (tests/unit/plugins/module_utils/test_storpool_plan.py)."""
    tasks = (ROLE / "tasks" / "frontend.yml").read_text(encoding="utf-8")
    assert "nebula.storage.storpool_addon_plan" in tasks and "nebula.storage.file_tree" in tasks
    assert ".append(" not in tasks and "namespace(plan" not in tasks
    assert "__storpool_addon_rules" not in (ROLE / "vars" / "main.yml").read_text(encoding="utf-8")
