"""Each role's TM_MAD_CONF block, written by the role's own oned_conf task through a real
ansible-playbook, against copies of the stock oned.conf of OpenNebula 6.10.5 and 7.4.0.

The oracle is OpenNebula's own stock blocks in each file: our block carries no attribute that no stock
block of the release has, every attribute that all stock blocks of the release carry, and the values of
the stock block whose semantics the role follows (shared, ssh, lvm).
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.nebula.storage.plugins.module_utils._oned_template import parse
from tests.conftest import FIXTURES, ROOT

BIN = Path(sys.executable).parent  # the venv running the tests: 2.21's .venv or the oldest release's

# role -> (task file, task name, version var, oned.conf path var, vars the task's `when` needs, stock model)
ROLES = {
    "nfs_shared": ("opennebula.yml", "Register the driver in oned.conf (TM_MAD list and TM_MAD_CONF)",
                   "nfs_shared_one_version", "nfs_shared_oned_conf", {"nfs_shared__oned_layout": "tm_mad_conf"},
                   "nfs_shared", "shared"),
    "onestor_replica": ("frontend.yml", "Register the driver with oned", "onestor_replica_one_version",
                        "onestor_replica_oned_conf_path", {}, "onestor", "ssh"),
    "gfs2_clvm": ("frontend.yml", "Register the gfs2clvm drivers with oned", "gfs2_clvm_one_version",
                  "gfs2_clvm_oned_conf", {"gfs2_clvm_legacy": False}, "gfs2clvm", "lvm"),
}
RELEASES = ("6.10.5", "7.4.0")


def blocks(text: str) -> dict[str, dict[str, str]]:
    """NAME -> {ATTRIBUTE: value} of every TM_MAD_CONF block."""
    out = {}
    for pair in parse(text).find("TM_MAD_CONF"):
        attrs = {p.ukey: p.value for p in pair.node.pairs}
        out[attrs["NAME"]] = attrs
    return out


def role_play(role: str, release: str, conf: Path) -> dict:
    task_file, task_name, version_var, path_var, when_vars, _name, _model = ROLES[role]
    role_dir = ROOT / "roles" / role
    tasks = yaml.safe_load((role_dir / "tasks" / task_file).read_text())
    task = copy.deepcopy(next(t for t in tasks if t.get("name") == task_name))
    task.pop("notify", None)
    task.pop("become", None)
    play_vars = {}
    for part in ("defaults", "vars"):
        f = role_dir / part / "main.yml"
        if f.exists():
            play_vars.update(yaml.safe_load(f.read_text()) or {})
    play_vars.update(when_vars)
    play_vars[version_var] = release
    play_vars[path_var] = str(conf)
    return {"name": "%s on %s" % (role, release), "hosts": "localhost", "gather_facts": False,
            "vars": play_vars, "tasks": [task]}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[tuple[str, str], tuple[dict, dict]]:
    """(role, release) -> (our block, the stock blocks), from one ansible-playbook run over every case."""
    tmp = tmp_path_factory.mktemp("tm_mad_conf")
    plays, stock = [], {}
    for release in RELEASES:
        text = (FIXTURES / "oned" / ("oned-%s.conf" % release)).read_text()
        stock[release] = blocks(text)
        for role in ROLES:
            conf = tmp / ("%s-%s.conf" % (role, release))
            conf.write_text(text)
            plays.append(role_play(role, release, conf))
    playbook = tmp / "play.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    run = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          "-e", json.dumps({"ansible_python_interpreter": sys.executable}), str(playbook)],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    out = {}
    for release in RELEASES:
        for role, spec in ROLES.items():
            ours = blocks((tmp / ("%s-%s.conf" % (role, release))).read_text())
            out[role, release] = ours[spec[5]], stock[release]
    return out


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("role", sorted(ROLES))
def test_block_has_the_attributes_of_the_release(written, role, release):
    ours, stock = written[role, release]
    stock_blocks = [b for name, b in stock.items() if name != ROLES[role][5]]
    known = set().union(*stock_blocks)
    in_every = set.intersection(*(set(b) for b in stock_blocks))
    assert set(ours) <= known, "attributes OpenNebula %s's stock blocks never carry: %s" % (release, set(ours) - known)
    assert in_every <= set(ours), "attributes every stock block of %s carries: %s" % (release, in_every - set(ours))
    model = stock[ROLES[role][6]]
    for key in ("DS_MIGRATE", "DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP", "SHARED", "LN_TARGET", "CLONE_TARGET"):
        if key in model and key in ours:
            assert ours[key].upper() == model[key].upper(), (key, ours[key], model[key])


def test_7_2_attributes_only_where_the_release_has_them(written):
    for role in ROLES:
        assert {"DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"} <= set(written[role, "7.4.0"][0]), role
        assert not {"DS_LIVE_MIGRATE", "DS_MIGRATE_SNAP"} & set(written[role, "6.10.5"][0]), role
    # the stock blocks agree: every 7.4.0 block has them, no 6.10.5 block does
    assert all("DS_LIVE_MIGRATE" in b for b in written["nfs_shared", "7.4.0"][1].values())
    assert not any("DS_LIVE_MIGRATE" in b for b in written["nfs_shared", "6.10.5"][1].values())
