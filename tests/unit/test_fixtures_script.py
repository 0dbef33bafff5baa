"""scripts/fixtures.sh: the fixtures from a plain clone.

The upstream hosts are not reachable here, so the download is tested against local mirrors laid out as
upstream (<base>/raw.githubusercontent.com/..., <base>/github.com/.../archive/...), made from
../shared/fixtures: over file:// and over http://127.0.0.1. The mirror's archives have GitHub's top
directories (one-release-7.4.0/, addon-storpool-b279d18/) and another gzip, as GitHub's have.
"""
from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import fixtures_fetch  # noqa: E402  pylint: disable=wrong-import-position

SCRIPT = ROOT / "scripts" / "fixtures.sh"
ROWS = fixtures_fetch.read_manifest(ROOT / "tests" / "fixtures.sha256")


def run(*args, **env):
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env={**base, **env}, timeout=600,
                          check=False)


def test_shared_fixtures_match_the_sums():
    p = run("check", str(FIXTURES))
    assert p.returncode == 0, p.stderr
    assert {r[2] for r in ROWS} >= {"oned/oned-6.10.5.conf", "oned/oned-7.4.0.conf", "rc/addon-storpoolrc",
                                    "opennebula/opennebula-7.4.0-src.tar.gz"}
    # every file of the fixtures directory is in the manifest
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md"
               and not p.name.startswith(".")}
    assert on_disk <= {r[2] for r in ROWS}, on_disk - {r[2] for r in ROWS}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """An upstream-shaped mirror of ../shared/fixtures."""
    m = tmp_path_factory.mktemp("mirror")
    for sha, kind, path, src in ROWS:
        if src.startswith("raw:"):
            _k, repo, ref, inner = src.split(":", 3)
            out = m / "raw.githubusercontent.com" / repo / ref / inner
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes((FIXTURES / path).read_bytes())
        elif src.startswith("archive:"):
            _k, repo, ref = src.split("@")[0].split(":", 2)
            out = m / "github.com" / repo / "archive" / ("%s.tar.gz" % ref)
            out.parent.mkdir(parents=True, exist_ok=True)
            top = "%s-%s" % (repo.split("/")[1], ref)  # GitHub's top directory
            fixtures_fetch.repack(FIXTURES / path, out, top)
            assert fixtures_fetch.tree_hash(out) == sha
    return m


def fetched_ok(cache: Path):
    assert run("check", str(cache)).returncode == 0
    for sha, kind, path, _src in ROWS:
        if kind == "file":
            assert (cache / path).read_bytes() == (FIXTURES / path).read_bytes(), path
        elif kind == "tree":
            assert fixtures_fetch.tree_hash(cache / path) == sha
    # the tarballs have the top directory the tests expect
    import tarfile
    with tarfile.open(cache / "addon-storpool/addon-storpool-b279d18.tar.gz") as t:
        assert t.getnames()[0].split("/")[0] == "addon-storpool"
    with tarfile.open(cache / "opennebula/opennebula-7.4.0-drivers.tar.gz") as t:
        names = t.getnames()
        assert "opennebula-7.4.0/src/tm_mad/ssh/clone" in names
        assert not [n for n in names if n.startswith("opennebula-7.4.0/src/vmm_mad/remotes/lxc/")]


def test_ensure_fetches_from_a_file_mirror_when_shared_is_absent(tmp_path, mirror):
    cache = tmp_path / "cache" / "fixtures"
    p = run("ensure", SHARED_FIXTURES=str(tmp_path / "no-shared"), CACHE_FIXTURES=str(cache),
            FIXTURES_BASE_URL="file://%s/" % mirror)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(cache)
    fetched_ok(cache)
    # a second call uses the complete cache without fetching
    p = run("dir", SHARED_FIXTURES=str(tmp_path / "no-shared"), CACHE_FIXTURES=str(cache),
            FIXTURES_BASE_URL="file:///nonexistent/")
    assert p.returncode == 0 and p.stdout.strip() == str(cache)


def test_fetch_over_http_from_127_0_0_1(tmp_path, mirror):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cache = tmp_path / "fixtures"
        p = run("fetch", CACHE_FIXTURES=str(cache), FIXTURES_BASE_URL="http://127.0.0.1:%d/" % server.server_port)
        assert p.returncode == 0, p.stderr
    finally:
        server.shutdown()
    fetched_ok(cache)


def test_a_tampered_download_is_refused_and_nothing_is_kept(tmp_path, mirror):
    bad = tmp_path / "bad"
    subprocess.run(["cp", "-a", str(mirror), str(bad)], check=True)
    f = bad / "raw.githubusercontent.com/OpenNebula/one/release-6.10.5/share/etc/oned.conf"
    f.write_bytes(f.read_bytes().replace(b'DS_MIGRATE = "YES"', b'DS_MIGRATE = "NO"', 1))
    cache = tmp_path / "cache"
    p = run("ensure", SHARED_FIXTURES=str(tmp_path / "no-shared"), CACHE_FIXTURES=str(cache),
            FIXTURES_BASE_URL="file://%s/" % bad)
    assert p.returncode == 1
    assert "oned/oned-6.10.5.conf from raw:OpenNebula/one:release-6.10.5:share/etc/oned.conf: sha256" in p.stderr
    assert not cache.exists() and not list(tmp_path.glob(".fixtures.*"))


def test_without_fixtures_and_network_one_line_names_the_directory_and_the_command(tmp_path):
    shared, cache = tmp_path / "shared" / "fixtures", tmp_path / ".cache" / "fixtures"
    p = run("ensure", SHARED_FIXTURES=str(shared), CACHE_FIXTURES=str(cache), FIXTURES_BASE_URL="file:///nonexistent/")
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert str(shared) in lines[0] and str(cache) in lines[0] and "scripts/fixtures.sh fetch" in lines[0]


def test_make_test_stops_at_once_with_that_line(tmp_path):
    """scripts/test.sh checks the fixtures before anything else (before the bootstrap and the lab)."""
    p = subprocess.run([str(ROOT / "scripts" / "test.sh")], capture_output=True, text=True, timeout=120, check=False,
                       env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "SHARED_FIXTURES": str(tmp_path / "none"),
                            "CACHE_FIXTURES": str(tmp_path / "nocache"), "FIXTURES_BASE_URL": "file:///nonexistent/"})
    assert p.returncode == 2
    out = (p.stdout + p.stderr).strip().splitlines()
    assert len(out) == 1 and "scripts/fixtures.sh fetch" in out[0] and str(tmp_path / "none") in out[0], out


def test_conftest_names_the_missing_directory_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/unit/test_layout.py")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
                       env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "NEBULA_FIXTURES": str(tmp_path / "none")})
    assert p.returncode != 0
    assert p.stdout.strip() + p.stderr.strip() == \
        "fixtures: NEBULA_FIXTURES=%s does not exist; run scripts/fixtures.sh fetch" % (tmp_path / "none")
