"""onestor_replica role: argument specs, defaults, README and the tasks agree with each other."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[4] / "roles" / "onestor_replica"


def load(rel):
    return yaml.safe_load((ROLE / rel).read_text())


def spec():
    return load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]


def test_defaults_match_the_argument_specs():
    defaults = load("defaults/main.yml")
    options = spec()
    assert set(defaults) == set(options)
    for name, option in options.items():
        assert defaults[name] == option.get("default"), name
        assert name.startswith("onestor_replica_")
        assert option.get("description"), name


def test_readme_documents_every_variable():
    readme = (ROLE / "README.md").read_text()
    for name in spec():
        assert re.search(r"^\| `%s` " % re.escape(name), readme, re.M), name


def test_every_variable_used_in_the_tasks_is_specified():
    used = set()
    for path in list((ROLE / "tasks").glob("*.yml")) + [ROLE / "handlers" / "main.yml"]:
        used.update(re.findall(r"\bonestor_replica_[a-z0-9_]+", path.read_text()))
    internal = {u for u in used if u.startswith("onestor_replica__")}
    assert used - internal <= set(spec()), sorted(used - internal - set(spec()))


def test_private_key_and_slurped_keys_are_no_log():
    tasks = load("tasks/ssh_mesh.yml")
    for task in tasks:
        if "id_{{ onestor_replica_ssh_key_type }}" in str(task.get("ansible.builtin.copy", {}).get("dest", "")) \
                and task["ansible.builtin.copy"].get("mode") == "0600":
            assert task.get("no_log") is True
        if "ansible.builtin.slurp" in task and "keypair" in task.get("register", ""):
            assert task.get("no_log") is True
    assert "StrictHostKeyChecking" not in (ROLE / "tasks" / "ssh_mesh.yml").read_text()


def test_tm_mad_conf_has_the_ssh_semantics_of_opennebula_7_4():
    from tests.conftest import FIXTURES
    conf = (FIXTURES / "oned" / "oned-7.4.0.conf").read_text()
    stock = re.search(r'TM_MAD_CONF = \[\s*NAME = "ssh",(.*?)\]', conf, re.S).group(1)
    stock_attrs = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', stock))
    ours = next(t for t in load("tasks/frontend.yml") if t["name"] == "Register the driver with oned")
    block = ours["nebula.storage.oned_conf"]["blocks"][0]
    assert block["match"] == {"NAME": "onestor"}
    assert "nebula.storage.tm_mad_conf(onestor_replica_one_version)" in block["set"]
    attrs = ours["vars"]["onestor_replica__tm_mad_conf"]
    for key in ("LN_TARGET", "CLONE_TARGET", "SHARED", "DS_MIGRATE", "ALLOW_ORPHANS", "DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"):
        assert str(attrs[key]) == stock_attrs[key], key
    assert attrs["DRIVER"] == "raw"
