"""The execution environment definition yields a valid ansible-builder context.

Building the image itself needs a container registry for the base image, which
this project's machines cannot reach; `ansible-builder create` is the part that
can be checked here (README, "AWX").
"""
from __future__ import annotations

import shutil
import subprocess
import tarfile

import yaml

from tests.conftest import ROOT

VENV_BIN = ROOT / ".venv" / "bin"


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_collection_builds_without_dev_files(tmp_path):
    _run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(ROOT)], ROOT)
    (artifact,) = tmp_path.glob("nebula-storage-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "plugins/modules/oned_conf.py" in names
    assert "roles/nfs_shared/meta/argument_specs.yml" in names
    assert not [n for n in names if n.startswith(("ansible_collections", ".venv", ".hypothesis", "dist", "lab/", ".ci")) or "__pycache__" in n]


def test_ansible_builder_create_makes_a_build_context(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("execution-environment.yml", "collections", "meta"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, project / name)
    dist = project / "dist"
    dist.mkdir()
    _run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(ROOT)], ROOT)

    _run([str(VENV_BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "--context", "ctx"], project)

    ctx = project / "ctx"
    containerfile = (ctx / "Containerfile").read_text()
    assert "ansible-core==2.21.5" in containerfile
    assert "COPY _build/collection /build/collection" in containerfile
    assert "ansible-galaxy collection install /build/collection/nebula-storage-" in containerfile
    assert list((ctx / "_build" / "collection").glob("nebula-storage-*.tar.gz"))
    reqs = yaml.safe_load((ctx / "_build" / "requirements.yml").read_text())
    assert {c["name"] for c in reqs["collections"]} == {"ansible.posix", "community.crypto", "community.general"}
    assert "netaddr" in (ctx / "_build" / "requirements.txt").read_text()
    assert "openssh" in (ctx / "_build" / "bindep.txt").read_text()


def test_ee_python_needs_match_meta():
    ee = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert ee["version"] == 1
    for key in ("python", "system"):
        assert (ROOT / ee["dependencies"][key]).is_file()
